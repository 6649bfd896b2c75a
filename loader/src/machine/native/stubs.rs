//! Auto-loading stubs in this process: generated entries that forward a call, with every
//! argument register and the stack untouched, to the module function behind them, loading the
//! module first when it is not there.
//!
//! Each stub is a 32-byte entry in a read-execute page, written once before the page is
//! published and never patched: it loads the address of its [`Slot`] (ordinary Rust memory)
//! into a scratch register and jumps to the architecture's common trampoline (`x86_64.rs`,
//! `aarch64.rs`). The trampoline saves the argument registers and asks [`stub_enter`] where
//! to go; that counts the call in flight and keeps the caller's return address on a
//! per-thread stack; the trampoline then calls the target in the caller's place, so stack
//! arguments sit where the callee expects them, and on its return [`stub_exit`] uncounts the
//! call and gives back the caller's return address. "Patching" is the slot's target: once the
//! module is loaded, a call costs two atomic operations and no lock.
//!
//! Unwinding (C++ exceptions, `longjmp`) through a stub is not supported: the trampoline has
//! no unwind information, and a `longjmp` past it leaves the call counted, so the module
//! stays busy rather than being unloaded under a live frame.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Weak};

use super::super::{StubResolver, StubUse};
use crate::error::MachineError;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
use aarch64 as arch;
#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
use x86_64 as arch;

/// Bytes of one stub entry.
const ENTRY_SIZE: usize = 32;
type ResolverCell = Mutex<Option<Weak<dyn StubResolver>>>;

/// What one stub's entry points at.
struct Slot {
    number: u32,
    /// The module function, or 0 while armed.
    target: AtomicU64,
    in_flight: AtomicUsize,
    calls: AtomicU64,
    resolver: Arc<ResolverCell>,
}

impl Slot {
    /// Where the call goes, counted in flight; `None` when the module cannot be loaded.
    fn enter(&self) -> Option<u64> {
        // Counted before the target is read; an unloading kernel arms the stub before it
        // reads the count, so one of the two sees the other.
        self.in_flight.fetch_add(1, SeqCst);
        let target = self.target.load(SeqCst);
        if target != 0 {
            self.calls.fetch_add(1, Relaxed);
            return Some(target);
        }
        self.in_flight.fetch_sub(1, SeqCst);
        // The kernel counts the call (`StubTable::enter`) when it answers.
        self.resolve().ok()
    }

    /// A call the kernel resolved: counted where the module cannot be unloaded meanwhile.
    fn count(&self) {
        self.in_flight.fetch_add(1, SeqCst);
        self.calls.fetch_add(1, Relaxed);
    }

    fn resolve(&self) -> Result<u64, String> {
        let resolver = self
            .resolver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(Weak::upgrade)
            .ok_or_else(|| "no kernel loads modules for this stub any more".to_string())?;
        resolver.resolve(self.number)
    }
}

thread_local! {
    /// The return addresses of the calls this thread has made through stubs, innermost last.
    static RETURNS: RefCell<Vec<(u64, *const Slot)>> = const { RefCell::new(Vec::new()) };
}

/// Called by the trampoline with the stub's slot and its caller's return address: the
/// address to call, or 0 (errno set to ENOSYS) when the module could not be loaded.
extern "C" fn stub_enter(slot: *const Slot, return_address: u64) -> u64 {
    // SAFETY: the only caller is the trampoline, which passes the slot its entry was
    // generated for; slots live as long as the machine that made the entry.
    let slot = unsafe { &*slot };
    match slot.enter() {
        Some(target) => {
            RETURNS.with(|r| r.borrow_mut().push((return_address, slot)));
            target
        }
        None => {
            // SAFETY: __errno_location returns this thread's errno, always valid.
            unsafe { *libc::__errno_location() = libc::ENOSYS };
            0
        }
    }
}

/// Called by the trampoline when the forwarded call returns: uncounts it and gives back the
/// caller's return address.
extern "C" fn stub_exit() -> u64 {
    let Some((return_address, slot)) = RETURNS.with(|r| r.borrow_mut().pop()) else {
        // Only a longjmp into the middle of a stubbed call gets here; there is nowhere to
        // return to.
        eprintln!("dlkm: a call through a stub returned, but none was entered on this thread");
        std::process::abort();
    };
    // SAFETY: pushed by stub_enter from a live slot; slots outlive every call through them.
    unsafe { &*slot }.in_flight.fetch_sub(1, SeqCst);
    return_address
}

/// The architecture's common trampoline (defined in its `global_asm!`).
fn common_trampoline() -> u64 {
    extern "C" {
        fn dlkm_stub_common();
    }
    dlkm_stub_common as *const () as usize as u64
}

/// The stubs of one native machine.
pub(super) struct StubTable {
    resolver: Arc<ResolverCell>,
    /// Every slot made; a stub's number is its index.
    #[allow(
        clippy::vec_box,
        reason = "entries hold the slots' addresses, which must not move"
    )]
    slots: Vec<Box<Slot>>,
    /// Stubs handed out; the rest of `slots` is ready in published pages.
    used: usize,
    /// Entry addresses, by number.
    entries: Vec<u64>,
}

impl StubTable {
    pub fn new() -> StubTable {
        StubTable {
            resolver: Arc::new(Mutex::new(None)),
            slots: Vec::new(),
            used: 0,
            entries: Vec::new(),
        }
    }

    pub fn set_resolver(&self, resolver: Weak<dyn StubResolver>) {
        *self.resolver.lock().unwrap_or_else(|e| e.into_inner()) = Some(resolver);
    }

    /// Hands out a stub, publishing a new page of entries when the last one is used up.
    /// `map_page` returns a private read-write page; `publish` makes it read-execute.
    pub fn create(
        &mut self,
        page_size: usize,
        map_page: impl FnOnce() -> Result<u64, MachineError>,
        publish: impl FnOnce(u64, &[u8]) -> Result<(), MachineError>,
    ) -> Result<(u32, u64), MachineError> {
        if self.used == self.slots.len() {
            self.add_page(page_size, map_page, publish)?;
        }
        let number = self.used;
        self.used += 1;
        Ok((number as u32, self.entries[number]))
    }

    fn add_page(
        &mut self,
        page_size: usize,
        map_page: impl FnOnce() -> Result<u64, MachineError>,
        publish: impl FnOnce(u64, &[u8]) -> Result<(), MachineError>,
    ) -> Result<(), MachineError> {
        let page = map_page()?;
        let count = page_size / ENTRY_SIZE;
        let first = self.slots.len();
        let mut code = vec![0u8; page_size];
        let slots: Vec<Box<Slot>> = (0..count)
            .map(|i| {
                Box::new(Slot {
                    number: (first + i) as u32,
                    target: AtomicU64::new(0),
                    in_flight: AtomicUsize::new(0),
                    calls: AtomicU64::new(0),
                    resolver: Arc::clone(&self.resolver),
                })
            })
            .collect();
        for (i, slot) in slots.iter().enumerate() {
            let entry = arch::entry(&**slot as *const Slot as u64, common_trampoline());
            code[i * ENTRY_SIZE..(i + 1) * ENTRY_SIZE].copy_from_slice(&entry);
        }
        publish(page, &code)?;
        self.entries
            .extend((0..count).map(|i| page + (i * ENTRY_SIZE) as u64));
        self.slots.extend(slots);
        Ok(())
    }

    pub fn set_target(&self, stub: u32, target: Option<u64>) {
        if let Some(slot) = self.slots.get(stub as usize) {
            slot.target.store(target.unwrap_or(0), SeqCst);
        }
    }

    pub fn enter(&self, stub: u32) {
        if let Some(slot) = self.slots.get(stub as usize) {
            slot.count();
        }
    }

    pub fn stub_use(&self, stub: u32) -> StubUse {
        self.slots
            .get(stub as usize)
            .map(|slot| StubUse {
                in_flight: slot.in_flight.load(SeqCst),
                calls: slot.calls.load(Relaxed),
            })
            .unwrap_or_default()
    }
}
