//! Module frames for the unwinder: each native module's `.eh_frame` is registered with the
//! unwinder this process uses (libgcc's, from `libgcc_s.so.1`, which Rust programs on
//! linux-gnu link and libstdc++ throws through), so that C++ exceptions thrown in a module
//! unwind through its frames, and backtraces taken below a module frame (a kernel function a
//! module called) walk on through it into the caller.
//!
//! The unwinder finds the frame information of a linked program's and shared libraries' code
//! itself (`PT_GNU_EH_FRAME`, through `dl_iterate_phdr`); code it cannot find that way must
//! be registered: `__register_frame(begin)` with the start of an `.eh_frame`, withdrawn with
//! `__deregister_frame(begin)` before the memory goes. libgcc walks the section's CIEs and
//! FDEs from `begin` until an entry of length zero, which a linked program gets from
//! `crtend.o`; the layout reserves those four zero bytes after each module's `.eh_frame`
//! ([`dlkm_linker::EH_FRAME_TERMINATOR`]).
//!
//! The two functions are looked up among the process's dynamic symbols rather than linked, so
//! that a process without them (a static build, another unwinder) loads modules all the same,
//! without unwinding through them.

use std::ffi::CStr;
use std::sync::OnceLock;

type FrameFn = unsafe extern "C" fn(begin: *const u8);

/// libgcc's registration functions.
struct Unwinder {
    register: FrameFn,
    deregister: FrameFn,
}

fn unwinder() -> Option<&'static Unwinder> {
    static UNWINDER: OnceLock<Option<Unwinder>> = OnceLock::new();
    UNWINDER
        .get_or_init(|| {
            let lookup = |name: &CStr| {
                // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name.
                let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
                // SAFETY: both symbols are libgcc's `void f(void *begin)`.
                (!address.is_null())
                    .then(|| unsafe { std::mem::transmute::<*mut libc::c_void, FrameFn>(address) })
            };
            Some(Unwinder {
                register: lookup(c"__register_frame")?,
                deregister: lookup(c"__deregister_frame")?,
            })
        })
        .as_ref()
}

/// Whether module frames can be registered in this process.
pub(super) fn available() -> bool {
    unwinder().is_some()
}

/// One `.eh_frame`, registered with the unwinder until this is dropped.
pub(super) struct FrameRegistration {
    begin: u64,
}

impl FrameRegistration {
    /// Registers the `.eh_frame` at `begin`.
    ///
    /// # Safety
    ///
    /// `begin` is the start of a module's linked `.eh_frame` followed by a zero terminator, in
    /// readable memory that stays mapped and unchanged until the registration is dropped.
    pub(super) unsafe fn register(begin: u64) -> Option<FrameRegistration> {
        let unwinder = unwinder()?;
        // SAFETY: the caller's promise: a terminated .eh_frame that outlives the registration.
        unsafe { (unwinder.register)(begin as *const u8) };
        Some(FrameRegistration { begin })
    }
}

impl Drop for FrameRegistration {
    fn drop(&mut self) {
        if let Some(unwinder) = unwinder() {
            // SAFETY: `begin` was registered by `register` (so the unwinder is there) and is
            // still mapped (the machine drops registrations before unmapping); libgcc finds
            // the registration by this address, and skips one it did not make because the
            // section was empty.
            unsafe { (unwinder.deregister)(self.begin as *const u8) };
        }
    }
}
