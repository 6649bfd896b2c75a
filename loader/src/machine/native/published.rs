//! What the native machine tells the rest of the process about each published module: its
//! frames to the unwinder ([`super::unwind`]) and its debug object to gdb ([`super::jit`]),
//! kept per reservation until the reservation is released.

use std::collections::HashMap;
use std::sync::Mutex;

use dlkm_linker::EH_FRAME_TERMINATOR;

use super::jit::JitRegistration;
use super::unwind::{self, FrameRegistration};
use super::NativeMachine;
use crate::machine::PublishedModule;

/// One module's registrations; dropping it withdraws them.
struct Registrations {
    /// Declared first, so it goes first: the debugger stops looking before the unwinder does.
    _jit: Option<JitRegistration>,
    _frames: Vec<FrameRegistration>,
}

/// The registrations of the modules published in a machine, by base address.
#[derive(Default)]
pub(super) struct PublishedModules {
    modules: Mutex<HashMap<u64, Registrations>>,
}

impl PublishedModules {
    /// Registers the module's frames and its debug object.
    pub(super) fn publish(&self, machine: &NativeMachine, module: &PublishedModule<'_>) {
        let base = module.base;
        let mut frames = Vec::new();
        let mut eh_frames = Vec::new();
        for area in module.eh_frames {
            let begin = base + area.offset;
            // Only a terminated .eh_frame inside a published reservation of this machine.
            let inside =
                machine.check_range(begin, area.size + EH_FRAME_TERMINATOR, "register frames");
            if !matches!(inside, Ok(true)) {
                continue;
            }
            // SAFETY: the range is inside a reservation of this machine that is published, so
            // every page of it is readable; no module code has run yet to write to it, and
            // the slices are dropped before this function returns.
            let bytes = unsafe {
                std::slice::from_raw_parts(
                    begin as *const u8,
                    (area.size + EH_FRAME_TERMINATOR) as usize,
                )
            };
            let (section, terminator) = bytes.split_at(area.size as usize);
            if terminator.iter().any(|&b| b != 0) {
                continue;
            }
            if unwind::available() {
                // SAFETY: a linked .eh_frame followed by its zero terminator (checked above),
                // in a published reservation of this machine; the registration lives in
                // `self.modules` until `forget` drops it, which the machine does before it
                // unmaps the reservation, and published images are not written again.
                frames.extend(unsafe { FrameRegistration::register(begin) });
            }
            // The debug object copies the linked section; no copy of it is needed here.
            eh_frames.push(section);
        }
        let jit = (module.debug_object)(&eh_frames).map(JitRegistration::register);
        let previous = self.lock().insert(
            base,
            Registrations {
                _jit: jit,
                _frames: frames,
            },
        );
        // A reservation is published once; a second report replaces the first.
        drop(previous);
    }

    /// Withdraws what was registered for the module at `base`.
    pub(super) fn forget(&self, base: u64) {
        let registrations = self.lock().remove(&base);
        drop(registrations);
    }

    /// Withdraws everything.
    pub(super) fn forget_all(&self) {
        let all = std::mem::take(&mut *self.lock());
        drop(all);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Registrations>> {
        self.modules.lock().unwrap_or_else(|e| e.into_inner())
    }
}
