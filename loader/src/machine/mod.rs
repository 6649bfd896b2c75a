//! Where modules run. The kernel and the registry talk to a [`Machine`] only, so they never know
//! whether it is this process or an emulator.

#[cfg(feature = "emulated")]
pub mod emulated;
pub mod native;

use std::fs::File;
use std::sync::Weak;

use dlkm_linker::{ArchKind, Area, ExternalSymbol};

use crate::error::MachineError;

/// The kernel side of auto-loading stubs: a call through an armed stub asks it to load the
/// module behind the stub. Called on the calling thread, with nothing of the machine locked.
pub trait StubResolver: Send + Sync {
    /// Loads what stub `stub` stands for and gives the address the call goes to, with the
    /// call already counted in flight through the stub ([`Machine::enter_stub`]): the module
    /// cannot be unloaded between the answer and the call, however often others unload it.
    /// While the module's own `_load` runs on this thread (calling through the stub), the
    /// address is its function and the stub stays armed until the load succeeds. An error
    /// makes the call fail (it returns -1 with errno ENOSYS) and is recorded as the module's
    /// failure.
    fn resolve(&self, stub: u32) -> Result<u64, String>;
}

/// How a stub is used right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StubUse {
    /// Calls that went through the stub and have not returned.
    pub in_flight: usize,
    /// Calls forwarded through it so far: the kernel's sign that its module is not idle.
    pub calls: u64,
}

/// Where the image of a module may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// As close to this address as the machine can manage, so that direct calls to the
    /// kernel's exports stay in reach.
    Near(u64),
    /// Entirely below 2 GiB, for code that stores its own addresses in 32 bits.
    Low2GiB,
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Placement::Near(a) => write!(f, "near {a:#x}"),
            Placement::Low2GiB => write!(f, "below 2 GiB"),
        }
    }
}

/// The protection of a published range; never writable and executable at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    ReadExecute,
    ReadOnly,
    ReadWrite,
}

/// A module whose image a machine has just published (written and protected), before its
/// constructors run: what a machine needs to tell debuggers and unwinders about it.
pub struct PublishedModule<'a> {
    pub name: &'a str,
    /// Where its image starts.
    pub base: u64,
    /// Its `.eh_frame` sections in the image, each followed by a zero terminator.
    pub eh_frames: &'a [Area],
    /// Makes its debug object (an ELF file describing the image, for gdb's JIT interface)
    /// from the linked `.eh_frame` sections: only a machine that registers one pays for it.
    pub debug_object: &'a dyn Fn(&[&[u8]]) -> Option<DebugObjectBytes>,
}

/// A debug object's bytes, wherever they are kept: built on the heap, or mapped from the
/// image cache.
pub type DebugObjectBytes = Box<dyn AsRef<[u8]> + Send + Sync>;

/// A machine that holds module images and runs their code.
pub trait Machine: Send + Sync {
    fn arch(&self) -> ArchKind;

    fn page_size(&self) -> u64;

    /// Reserves `size` bytes, readable and writable, aligned to `align`; returns the base.
    fn reserve(&self, size: u64, align: u64, placement: Placement) -> Result<u64, MachineError>;

    /// Gives back a reservation made by [`Machine::reserve`].
    fn release(&self, base: u64) -> Result<(), MachineError>;

    /// Writes into a reservation that is not yet published.
    fn write(&self, address: u64, bytes: &[u8]) -> Result<(), MachineError>;

    /// Lets `fill` write the first `len` bytes of the unpublished reservation at `base`, which
    /// it finds zeroed: a machine whose memory is this process's hands over the reservation
    /// itself, so that an image is written once, in place.
    fn fill_image(
        &self,
        base: u64,
        len: u64,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), MachineError> {
        self.write(base, &filled_image(base, len, fill)?)
    }

    /// Reserves exactly `base..base + len` (whole pages) as the private, writable, unpublished
    /// mapping of `file` from `offset` (a multiple of the page size): an image kept in a file
    /// is then neither read nor copied whole; its pages come in as they are touched, and only
    /// those written are copied. `None` where the machine's memory is not this process's, or
    /// the range is taken; the caller then reserves and fills as usual.
    fn map_file(&self, _base: u64, _len: u64, _file: &File, _offset: u64) -> Option<()> {
        None
    }

    /// Whether [`Machine::map_file`] can ever map a file.
    fn can_map_files(&self) -> bool {
        false
    }

    /// Sets the protection of a page-aligned range inside a reservation and, for executable
    /// ranges, makes the instruction cache see the new code.
    fn protect(&self, address: u64, len: u64, protection: Protection) -> Result<(), MachineError>;

    /// Reads memory; fails, never faults, where nothing is mapped.
    fn read(&self, address: u64, len: u64) -> Result<Vec<u8>, MachineError>;

    /// Calls the function at `address` with integer arguments, returning its integer result.
    fn call(&self, address: u64, args: &[u64]) -> Result<u64, MachineError>;

    /// Copies `bytes` into memory the module can see; returns the address. Freed with
    /// [`Machine::free_data`].
    fn alloc_data(&self, bytes: &[u8]) -> Result<u64, MachineError>;

    fn free_data(&self, address: u64);

    /// A symbol the machine's host provides (for the native machine: the process's dynamic
    /// symbols, libc among them).
    fn host_symbol(&self, name: &str) -> Option<ExternalSymbol>;

    /// An address inside the kernel's own code, where modules are best placed.
    fn kernel_anchor(&self) -> u64;

    /// Pushes out what module code has written to buffered output (C stdio), so that it
    /// appears before whatever the caller prints next.
    fn flush_output(&self);

    /// The host symbol `address` falls in, with its start, where the machine can tell.
    fn host_symbol_at(&self, _address: u64) -> Option<(String, u64)> {
        None
    }

    /// Breakpoints and stepping, where the machine can stop module code.
    fn debugger(&self) -> Option<&dyn Debugger> {
        None
    }

    /// Makes a stub: code that forwards a call, arguments intact, to the stub's target, and
    /// while it has none (armed) asks the resolver first. Returns its number and address.
    fn create_stub(&self) -> Result<(u32, u64), MachineError> {
        Err(MachineError::NoStubs)
    }

    /// Points stub `stub` at `target`, or arms it again (`None`).
    fn set_stub_target(&self, _stub: u32, _target: Option<u64>) {}

    /// Calls in flight through stub `stub`. A kernel that unloads a module first arms its
    /// stubs, then checks this: a call either is counted here or finds the stub armed.
    fn stub_use(&self, _stub: u32) -> StubUse {
        StubUse::default()
    }

    /// Counts a call through stub `stub` in flight for a caller the kernel has just resolved
    /// it for (see [`StubResolver::resolve`]); the call's return uncounts it.
    fn enter_stub(&self, _stub: u32) {}

    /// Who loads modules for armed stubs.
    fn set_stub_resolver(&self, _resolver: Weak<dyn StubResolver>) {}

    /// Tells the machine that a module's image is published, before its constructors run, so
    /// it can make the module known to the tools that look at its code: the native machine
    /// registers the module's `.eh_frame` with the unwinder (C++ exceptions and backtraces
    /// through module frames) and describes the module to gdb. Best effort: a module the
    /// machine cannot describe still loads. What it registers is withdrawn when the
    /// reservation is released ([`Machine::release`]).
    fn module_published(&self, _module: &PublishedModule<'_>) {}
}

/// A machine that can stop module code: a call that reaches a breakpoint pauses, and is
/// inspected, stepped or continued before anything else is called.
pub trait Debugger {
    /// Stops calls at `address`; returns the breakpoint's number.
    fn set_breakpoint(&self, address: u64) -> Result<u32, MachineError>;

    fn delete_breakpoint(&self, id: u32) -> Result<(), MachineError>;

    /// The breakpoints: number and address.
    fn breakpoints(&self) -> Vec<(u32, u64)>;

    /// Goes on with the paused call: `steps` instructions, or until it returns (or stops
    /// again). Returns its result once it has returned.
    fn resume(&self, steps: Option<u64>) -> Result<u64, MachineError>;

    /// The paused call's registers, by their ABI names.
    fn registers(&self) -> Result<Vec<(&'static str, u64)>, MachineError>;

    /// The paused call's code addresses, innermost first.
    fn backtrace(&self) -> Result<Vec<u64>, MachineError>;

    /// How many instructions one call may run before it is stopped.
    fn set_budget(&self, budget: u64) -> Result<(), MachineError>;
}

/// A zeroed buffer of `len` bytes that `fill` has written: the image of a machine whose memory
/// is not this process's, for [`Machine::fill_image`].
pub(crate) fn filled_image(
    base: u64,
    len: u64,
    fill: &mut dyn FnMut(&mut [u8]),
) -> Result<Vec<u8>, MachineError> {
    let len = usize::try_from(len).map_err(|_| MachineError::bad_access(base, len, "fill"))?;
    let mut image = vec![0u8; len];
    fill(&mut image);
    Ok(image)
}
