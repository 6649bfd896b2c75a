//! Load-then-unload in the emulated machine, no module code run: the `load_emulated` target's
//! driver, and the machine the `msyms_commands` target's session runs on.
//!
//! [`InertMachine`] is the emulated machine (placing, writing, protecting, reading, stubs:
//! Unicorn's memory, as in a real load) whose calls run nothing: each answers at once with what
//! the driver asks for — a return value or a stop, as a module whose `_load` fails or faults
//! would give. (An instruction budget of 0 does not do this: Unicorn takes a count of 0 as no
//! limit at all.) So a fuzzed object's "code" never runs, and the kernel's placing, linking,
//! publishing, rollback and unloading are what is fuzzed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use dlkm_linker::{ArchKind, ExternalSymbol};
use dlkm_loader::machine::emulated::EmulatedMachine;
use dlkm_loader::machine::{StubResolver, StubUse};
use dlkm_loader::{
    Debugger, Kernel, KernelOptions, LoadError, Machine, MachineError, ModuleId, ModuleInfo,
    ModuleState, Owner, Placement, Protection, Stop,
};

/// What every call into an [`InertMachine`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Returns this value, as a function that did nothing else.
    Return(u64),
    /// Stops, as a call that ran out of its instruction budget.
    Stop,
}

/// The answer to calls, and how many were made; shared by the machine and its driver.
#[derive(Debug)]
pub struct Calls {
    answer: Mutex<Answer>,
    made: AtomicUsize,
}

impl Calls {
    pub fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap_or_else(|e| e.into_inner()) = answer;
    }

    pub fn made(&self) -> usize {
        self.made.load(Ordering::Relaxed)
    }
}

/// The emulated machine, except that calls run nothing (see the module's documentation).
pub struct InertMachine {
    inner: EmulatedMachine,
    calls: Arc<Calls>,
}

impl InertMachine {
    /// A machine for `arch` (aarch64, MIPS, MIPSel) and the handle that steers its calls.
    pub fn new(arch: ArchKind) -> Result<(InertMachine, Arc<Calls>), MachineError> {
        let calls = Arc::new(Calls {
            answer: Mutex::new(Answer::Return(0)),
            made: AtomicUsize::new(0),
        });
        let machine = InertMachine {
            inner: EmulatedMachine::new(arch)?,
            calls: Arc::clone(&calls),
        };
        Ok((machine, calls))
    }
}

impl Machine for InertMachine {
    fn arch(&self) -> ArchKind {
        self.inner.arch()
    }

    fn page_size(&self) -> u64 {
        self.inner.page_size()
    }

    fn reserve(&self, size: u64, align: u64, placement: Placement) -> Result<u64, MachineError> {
        self.inner.reserve(size, align, placement)
    }

    fn release(&self, base: u64) -> Result<(), MachineError> {
        self.inner.release(base)
    }

    fn write(&self, address: u64, bytes: &[u8]) -> Result<(), MachineError> {
        self.inner.write(address, bytes)
    }

    fn protect(&self, address: u64, len: u64, protection: Protection) -> Result<(), MachineError> {
        self.inner.protect(address, len, protection)
    }

    fn read(&self, address: u64, len: u64) -> Result<Vec<u8>, MachineError> {
        self.inner.read(address, len)
    }

    fn call(&self, address: u64, _args: &[u64]) -> Result<u64, MachineError> {
        self.calls.made.fetch_add(1, Ordering::Relaxed);
        match *self.calls.answer.lock().unwrap_or_else(|e| e.into_inner()) {
            Answer::Return(value) => Ok(value),
            Answer::Stop => Err(MachineError::Stopped(Stop::Budget {
                pc: address,
                budget: 0,
            })),
        }
    }

    fn alloc_data(&self, bytes: &[u8]) -> Result<u64, MachineError> {
        self.inner.alloc_data(bytes)
    }

    fn free_data(&self, address: u64) {
        self.inner.free_data(address)
    }

    fn host_symbol(&self, name: &str) -> Option<ExternalSymbol> {
        self.inner.host_symbol(name)
    }

    fn kernel_anchor(&self) -> u64 {
        self.inner.kernel_anchor()
    }

    fn flush_output(&self) {
        self.inner.flush_output()
    }

    fn host_symbol_at(&self, address: u64) -> Option<(String, u64)> {
        self.inner.host_symbol_at(address)
    }

    fn debugger(&self) -> Option<&dyn Debugger> {
        self.inner.debugger()
    }

    fn create_stub(&self) -> Result<(u32, u64), MachineError> {
        self.inner.create_stub()
    }

    fn set_stub_target(&self, stub: u32, target: Option<u64>) {
        self.inner.set_stub_target(stub, target)
    }

    fn stub_use(&self, stub: u32) -> StubUse {
        self.inner.stub_use(stub)
    }

    fn set_stub_resolver(&self, resolver: Weak<dyn StubResolver>) {
        self.inner.set_stub_resolver(resolver)
    }
}

/// A kernel on an [`InertMachine`], and the handle to its calls.
pub struct InertKernel {
    pub kernel: Kernel,
    pub calls: Arc<Calls>,
}

impl InertKernel {
    pub fn new(arch: ArchKind) -> InertKernel {
        let (machine, calls) = InertMachine::new(arch)
            .unwrap_or_else(|e| panic!("cannot start the emulated machine for {arch:?}: {e}"));
        InertKernel {
            kernel: Kernel::with_machine(Box::new(machine), KernelOptions::default()),
            calls,
        }
    }
}

/// The architecture the emulated machine runs an object in, from its ELF header: aarch64,
/// MIPS or MIPSel. `None` for anything else (x86_64 runs natively; not an object at all).
pub fn arch_of(data: &[u8]) -> Option<ArchKind> {
    if data.len() < 20 || data[..4] != *b"\x7fELF" {
        return None;
    }
    let big_endian = match data[5] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let machine = if big_endian {
        u16::from_be_bytes([data[18], data[19]])
    } else {
        u16::from_le_bytes([data[18], data[19]])
    };
    match machine {
        183 if !big_endian => Some(ArchKind::Aarch64),
        8 => Some(ArchKind::Mips { big_endian }),
        _ => None,
    }
}

/// How the loads of one input ended.
#[derive(Debug)]
pub struct LoadOutcome {
    /// The first load, every call returning 0: loaded (and unloaded) or why not.
    pub load: Result<(), LoadError>,
    /// The second, calls failing (`_load` returning an errno, or a stop): loaded (and
    /// unloaded) or why not.
    pub failing_load: Result<(), LoadError>,
}

/// Loads `data` into `inert`'s kernel and unloads it, twice: with every call returning 0, and
/// with calls that fail. Returns how each load ended; panics where an invariant breaks (a
/// failed load leaves something behind, a module that cannot be unloaded once nothing holds
/// it, an export left behind, memory not released).
pub fn load_then_unload(inert: &InertKernel, data: &[u8]) -> LoadOutcome {
    let kernel = &inert.kernel;
    let baseline = kernel.exports().len();
    inert.calls.answer(Answer::Return(0));
    let load = kernel
        .load_bytes("fuzz", data)
        .map(|id| unload_checked(inert, id));
    check_clean(kernel, baseline, "after the first load and unload");

    // A `_load` that fails with EINVAL, or every call stopping (a fault in a constructor).
    let failing = if data.iter().map(|&b| u32::from(b)).sum::<u32>() % 2 == 0 {
        Answer::Return(22u64.wrapping_neg())
    } else {
        Answer::Stop
    };
    inert.calls.answer(failing);
    let before = inert.calls.made();
    let failing_load = kernel.load_bytes("fuzz", data).map(|id| {
        // Loaded only if nothing was called (no constructor, no `_load`), or only
        // constructors, whose results do not count.
        if failing == Answer::Stop {
            assert_eq!(
                inert.calls.made(),
                before,
                "a load whose calls stopped succeeded"
            );
        }
        unload_checked(inert, id)
    });
    check_clean(kernel, baseline, "after the failing load");
    LoadOutcome { load, failing_load }
}

/// Checks a loaded module, then unloads it: held (refused), vetoed by `_unload` (refused if it
/// has one), then for good.
fn unload_checked(inert: &InertKernel, id: ModuleId) {
    let kernel = &inert.kernel;
    let info = kernel
        .module_info(id)
        .expect("a module just loaded has its info");
    assert_eq!(info.state, ModuleState::Loaded);
    assert_eq!(kernel.find_module(&info.name), Some(id));
    let end = info.base.checked_add(info.size).expect("image past 2^64");
    for section in &info.sections {
        assert!(
            section.address >= info.base
                && section
                    .address
                    .checked_add(section.size)
                    .is_some_and(|e| e <= end),
            "section {} at {:#x}+{:#x} outside the image {:#x}+{:#x}",
            section.name,
            section.address,
            section.size,
            info.base,
            info.size
        );
    }
    if info.size > 0 {
        kernel
            .machine()
            .read(info.base, info.size)
            .unwrap_or_else(|e| panic!("the published image cannot be read: {e}"));
    }
    let symbols = kernel
        .module_symbols(id)
        .expect("a loaded module has symbols");
    for symbol in symbols.iter().take(64) {
        let _ = kernel.describe_address(symbol.address);
        if symbol.exported {
            let entry = kernel
                .lookup(symbol.name)
                .unwrap_or_else(|| panic!("export {} is not in the kernel table", symbol.name));
            assert!(
                matches!(entry.owner, Owner::Module(owner, _) if owner == id),
                "export {} belongs to {}",
                symbol.name,
                entry.owner
            );
        }
    }

    // Held: busy.
    assert_eq!(kernel.hold(id).ok(), Some(1));
    assert!(matches!(kernel.unload(id), Err(LoadError::Busy { .. })));
    assert_eq!(kernel.release(id).ok(), Some(0));

    // A call stops (a fault in `_unload` or a destructor), or `_unload` vetoes with EBUSY:
    // the unload fails and the module stays, loaded, ready for another try.
    let has_unload = info
        .entry_points
        .iter()
        .any(|(name, _)| name.ends_with("_unload"));
    let has_fini = info
        .entry_points
        .iter()
        .any(|(name, _)| name == ".fini_array");
    for (answer, can_fail) in [
        (Answer::Stop, has_unload || has_fini),
        (Answer::Return(16u64.wrapping_neg()), has_unload),
    ] {
        inert.calls.answer(answer);
        match kernel.unload(id) {
            Ok(()) => {
                assert!(!can_fail, "unloaded although a call answered {answer:?}");
                check_gone(inert, &info);
                return;
            }
            Err(e) => {
                let after = kernel
                    .module_info(id)
                    .unwrap_or_else(|| panic!("the unload failed ({e}), yet the module is gone"));
                assert_eq!(
                    after.state,
                    ModuleState::Loaded,
                    "the unload failed ({e}) and left the module {}",
                    after.state
                );
            }
        }
    }
    inert.calls.answer(Answer::Return(0));
    if let Err(e) = kernel.unload(id) {
        panic!("a module nothing holds cannot be unloaded: {e}");
    }
    check_gone(inert, &info);
}

/// After the unload of `info`'s module: no info, no image.
fn check_gone(inert: &InertKernel, info: &ModuleInfo) {
    let kernel = &inert.kernel;
    assert!(kernel.module_info(info.id).is_none());
    assert!(kernel.find_module(&info.name).is_none());
    if info.size > 0 {
        assert!(
            kernel.machine().read(info.base, 1).is_err(),
            "the image at {:#x} is still mapped after the unload",
            info.base
        );
    }
}

/// Nothing loaded, nothing exported beyond what was before.
fn check_clean(kernel: &Kernel, baseline: usize, when: &str) {
    let modules = kernel.modules();
    assert!(
        modules.is_empty(),
        "{when}: modules left: {:?}",
        modules
            .iter()
            .map(|m| (&m.name, m.state))
            .collect::<Vec<_>>()
    );
    assert_eq!(kernel.exports().len(), baseline, "{when}: exports left");
}
