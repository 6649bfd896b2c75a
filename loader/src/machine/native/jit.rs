//! gdb's JIT interface: how a debugger learns of code that appears at run time.
//!
//! The protocol (gdb manual, "JIT Compilation Interface"): the program defines a global
//! `__jit_debug_descriptor` (version 1, an action, the entry the action concerns, and a
//! doubly linked list of entries, each pointing to an in-memory object file) and a function
//! `__jit_debug_register_code` that does nothing and is never inlined. gdb finds both by name
//! when the program starts, breaks on the function, and when it is hit reads the descriptor:
//! on `JIT_REGISTER_FN` it reads the relevant entry's object file out of the process and adds
//! it as a symbol file, on `JIT_UNREGISTER_FN` it drops the symbol file it made from that
//! entry. Without a debugger the function returns at once.
//!
//! Every native module is registered with its debug object ([`dlkm_linker::debug_object`]:
//! its sections at their load addresses, its symbols, its relocated DWARF and its
//! `.eh_frame`), so that `gdb --args msyms -c '…'` shows module frames with function names and
//! source lines. The descriptor is process-wide; a mutex serialises its updates, as the
//! protocol asks. A program that links another JIT library defining the same two symbols (LLVM,
//! wasmtime) would get a duplicate-symbol error at link time: one process has one descriptor.

use std::sync::Mutex;

use crate::machine::DebugObjectBytes;

const JIT_NOACTION: u32 = 0;
const JIT_REGISTER_FN: u32 = 1;
const JIT_UNREGISTER_FN: u32 = 2;

/// `struct jit_code_entry`.
#[repr(C)]
struct JitCodeEntry {
    next_entry: *mut JitCodeEntry,
    prev_entry: *mut JitCodeEntry,
    symfile_addr: *const u8,
    symfile_size: u64,
}

/// `struct jit_descriptor`.
#[repr(C)]
pub struct JitDescriptor {
    version: u32,
    action_flag: u32,
    relevant_entry: *mut JitCodeEntry,
    first_entry: *mut JitCodeEntry,
}

/// The descriptor gdb reads, by this name. Changed only under [`LOCK`].
#[allow(non_upper_case_globals, reason = "the name is the protocol's")]
#[no_mangle]
pub static mut __jit_debug_descriptor: JitDescriptor = JitDescriptor {
    version: 1,
    action_flag: JIT_NOACTION,
    relevant_entry: std::ptr::null_mut(),
    first_entry: std::ptr::null_mut(),
};

/// The function gdb breaks on, by this name: called after each change to the descriptor.
#[no_mangle]
#[inline(never)]
pub extern "C" fn __jit_debug_register_code() {
    // A volatile read, so that the compiler can neither drop the calls to this function as
    // having no effect nor fold it into its callers.
    // SAFETY: a read of the descriptor's action, a plain integer of a static that lives for
    // the whole program; its writers hold LOCK, and so do the callers of this function.
    unsafe {
        std::ptr::read_volatile(&raw const __jit_debug_descriptor.action_flag);
    }
}

/// Serialises every change to the descriptor and its list.
static LOCK: Mutex<()> = Mutex::new(());

/// A module's object file, registered with gdb until this is dropped.
pub(super) struct JitRegistration {
    /// The list entry (a leaked `Box<JitCodeEntry>`), as an address so that the registration
    /// is `Send` and `Sync`: only code holding [`LOCK`] dereferences it.
    entry: usize,
    /// The object file the entry points to; it must outlive the entry.
    _symfile: DebugObjectBytes,
}

impl JitRegistration {
    /// Adds `symfile` to the list and tells gdb.
    pub(super) fn register(symfile: DebugObjectBytes) -> JitRegistration {
        let _serial = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let descriptor = &raw mut __jit_debug_descriptor;
        let entry = Box::into_raw(Box::new(JitCodeEntry {
            next_entry: std::ptr::null_mut(),
            prev_entry: std::ptr::null_mut(),
            symfile_addr: (*symfile).as_ref().as_ptr(),
            symfile_size: (*symfile).as_ref().len() as u64,
        }));
        // SAFETY: LOCK is held, so nothing else reads or writes the descriptor or the entries
        // (gdb reads them only while the process is stopped in __jit_debug_register_code);
        // `entry` is a fresh allocation and every entry on the list is one that a live
        // JitRegistration owns.
        unsafe {
            let first = (*descriptor).first_entry;
            (*entry).next_entry = first;
            if !first.is_null() {
                (*first).prev_entry = entry;
            }
            (*descriptor).first_entry = entry;
            (*descriptor).relevant_entry = entry;
            (*descriptor).action_flag = JIT_REGISTER_FN;
            __jit_debug_register_code();
            (*descriptor).action_flag = JIT_NOACTION;
            (*descriptor).relevant_entry = std::ptr::null_mut();
        }
        JitRegistration {
            entry: entry as usize,
            _symfile: symfile,
        }
    }
}

impl Drop for JitRegistration {
    /// Takes the entry off the list, tells gdb, and frees it.
    fn drop(&mut self) {
        let _serial = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let descriptor = &raw mut __jit_debug_descriptor;
        let entry = self.entry as *mut JitCodeEntry;
        // SAFETY: LOCK is held (see register); `entry` came from Box::into_raw in register and
        // is still on the list, which only this drop takes it off; after unlinking it nothing
        // points to it, so it is freed once.
        unsafe {
            let (prev, next) = ((*entry).prev_entry, (*entry).next_entry);
            if prev.is_null() {
                (*descriptor).first_entry = next;
            } else {
                (*prev).next_entry = next;
            }
            if !next.is_null() {
                (*next).prev_entry = prev;
            }
            (*descriptor).relevant_entry = entry;
            (*descriptor).action_flag = JIT_UNREGISTER_FN;
            __jit_debug_register_code();
            (*descriptor).action_flag = JIT_NOACTION;
            (*descriptor).relevant_entry = std::ptr::null_mut();
            drop(Box::from_raw(entry));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries come and go in any order; the list stays linked both ways.
    #[test]
    fn the_list_stays_linked() {
        let list = || {
            let _serial = LOCK.lock().unwrap_or_else(|e| e.into_inner());
            let mut sizes = Vec::new();
            let descriptor = &raw const __jit_debug_descriptor;
            // SAFETY: LOCK is held; the entries are live registrations'.
            unsafe {
                let mut entry = (*descriptor).first_entry;
                let mut prev = std::ptr::null_mut();
                while !entry.is_null() {
                    assert_eq!((*entry).prev_entry, prev);
                    sizes.push((*entry).symfile_size);
                    prev = entry;
                    entry = (*entry).next_entry;
                }
            }
            sizes
        };
        // Other tests of this binary may register modules meanwhile: look only at ours, which
        // have sizes no debug object has.
        let ours = |sizes: Vec<u64>| -> Vec<u64> {
            sizes.into_iter().filter(|s| (1..=3).contains(s)).collect()
        };
        let a = JitRegistration::register(Box::new(vec![0u8; 1]));
        let b = JitRegistration::register(Box::new(vec![0u8; 2]));
        let c = JitRegistration::register(Box::new(vec![0u8; 3]));
        assert_eq!(ours(list()), [3, 2, 1]);
        drop(b);
        assert_eq!(ours(list()), [3, 1]);
        drop(c);
        assert_eq!(ours(list()), [1]);
        drop(a);
        assert_eq!(ours(list()), Vec::<u64>::new());
    }
}
