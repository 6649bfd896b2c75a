//! The emulator side of the emulated machine: one Unicorn CPU and its memory, owned by the
//! machine's thread. Module images go in the module region; the kernel's runtime functions
//! are 16-byte slots far away in the kernel region, each a return instruction whose code hook
//! runs the function host-side first. Faults, `abort`, `exit` and the instruction budget stop a
//! call with a [`Stop`] instead of taking the machine down.

use std::collections::{BTreeMap, HashMap};

use dlkm_linker::{ExternalKind, ExternalSymbol};
use unicorn_engine::unicorn_const::{uc_error, HookType, MemType, Prot};
use unicorn_engine::{Context, UcHookId, Unicorn};

use super::heap::Heap;
use super::runtime::{self, Runtime};
use super::target::{Target, Uc};
use crate::error::{MachineError, Stop};
use crate::machine::Protection;

pub(super) const PAGE: u64 = 0x1000;
/// Module images: one 256 MiB MIPS region, below 2 GiB.
pub(super) const MODULES: (u64, u64) = (0x1000_0000, 0x2000_0000);
/// malloc's memory (and the arguments `call` copies in).
pub(super) const HEAP: (u64, u64) = (0x4000_0000, 0x4400_0000);
pub(super) const STACK: (u64, u64) = (0x5000_0000, 0x5080_0000);
/// Each call from the host runs on a stack of its own, so that a call waiting for a stub's
/// module to load keeps its frames while the load runs code.
const STACK_SEGMENT: u64 = 0x10_0000;
/// The kernel's variables (stdout, errno, ctype tables…).
pub(super) const KERNEL_DATA: (u64, u64) = (0x7000_0000, 0x7001_0000);
/// The kernel's functions, one slot each: out of a direct call's reach from every module
/// (another 256 MiB region for MIPS, beyond ±128 MiB for aarch64), so every kernel call of a
/// module goes through the linker's stubs.
pub(super) const KERNEL_CODE: (u64, u64) = (0x7100_0000, 0x7101_0000);
pub(super) const SLOT: u64 = 16;
/// Auto-loading stubs, one slot each like the kernel's functions: a hook jumps to the module
/// function, or stops the call so the machine can have the module loaded.
pub(super) const KERNEL_STUBS: (u64, u64) = (0x7200_0000, 0x7210_0000);
/// Where every call from the host returns to: slot 0, whose hook does nothing.
pub(super) const RETURN_ADDRESS: u64 = KERNEL_CODE.0;

/// A module's reservation is mapped as regions of at most this many bytes. Setting a segment's
/// protection then changes whole regions, and splits only the one or two its ends fall in:
/// Unicorn splits a region by copying all of it. Protecting SQLite's segments took 1.2 ms with
/// its 1 MiB image mapped as one region, 0.3 ms in regions of 128 KiB.
const RESERVATION_CHUNK: u64 = 0x2_0000;

/// The most regions a reservation is mapped as: each mapping costs Unicorn time in the number
/// of regions there are, so a 160 MiB `.bss` in 128 KiB regions took longer to map than its
/// protections took to split.
const RESERVATION_REGIONS: u64 = 16;

/// The default instruction budget of one call from the host.
pub const DEFAULT_BUDGET: u64 = 4_000_000_000;

/// What the hooks share with the engine.
pub(crate) struct EngineData {
    pub target: &'static dyn Target,
    pub heap: Heap,
    pub runtime: Runtime,
    /// Set by a hook that stops the current call.
    pub stop: Option<Stop>,
    /// The last invalid memory access, recorded for the fault report.
    pub bad_access: Option<(MemType, u64)>,
    /// Instructions each call may still run (nested calls share the caller's).
    pub budget: u64,
    /// How deep in runs started by runtime functions the CPU is (0: the host's call).
    pub nesting: u32,
    /// The breakpoint a resumed call starts at, passed over once.
    pub resume_from: Option<u64>,
    /// Each stub's module function, `None` while armed.
    pub stub_targets: Vec<Option<u64>>,
    /// Calls forwarded through each stub.
    pub stub_calls: Vec<u64>,
}

/// How a call from the host ended, or where it waits.
pub(super) enum Ran {
    Returned(u64),
    /// It reached armed stub `stub` and waits, as call `call`, for the module to be loaded.
    Stub {
        stub: u32,
        call: u32,
    },
}

/// Where a call waiting at an armed stub goes on.
#[derive(Debug, Clone, Copy)]
pub(super) enum StubJump {
    /// Into this address, the module's function.
    To(u64),
    /// Back to its caller with -1 and errno ENOSYS.
    Fail,
}

/// A call waiting at an armed stub: its registers and its stack.
struct Suspended {
    context: Context,
    stack: u64,
}

pub(super) struct Engine {
    uc: Uc<'static>,
    /// Module reservations: base → size.
    reservations: BTreeMap<u64, u64>,
    budget: u64,
    /// Where the host's call is paused (at a breakpoint or after steps), with its stack.
    paused: Option<(u64, u64)>,
    /// Stacks no call is using.
    free_stacks: Vec<u64>,
    suspended: HashMap<u32, Suspended>,
    next_call: u32,
    breakpoints: BTreeMap<u32, (u64, UcHookId)>,
    next_breakpoint: u32,
}

fn machine_error(context: &'static str) -> impl Fn(uc_error) -> MachineError {
    move |e| MachineError::Emulator {
        context,
        reason: format!("{e:?}"),
    }
}

impl Engine {
    pub fn new(target: &'static dyn Target) -> Result<Engine, MachineError> {
        let (arch, mode) = target.unicorn_arch();
        let data = EngineData {
            target,
            heap: Heap::new(HEAP.0, HEAP.1 - HEAP.0),
            runtime: Runtime::default(),
            stop: None,
            bad_access: None,
            budget: DEFAULT_BUDGET,
            nesting: 0,
            resume_from: None,
            stub_targets: Vec::new(),
            stub_calls: Vec::new(),
        };
        let start = machine_error("cannot start the emulator");
        let mut uc = Unicorn::new_with_data(arch, mode, data).map_err(&start)?;
        target.prepare(&mut uc).map_err(&start)?;
        for (region, prot) in [
            (HEAP, Prot::READ | Prot::WRITE),
            (STACK, Prot::READ | Prot::WRITE),
            (KERNEL_DATA, Prot::READ | Prot::WRITE),
            (KERNEL_CODE, Prot::READ | Prot::EXEC),
            (KERNEL_STUBS, Prot::READ | Prot::EXEC),
        ] {
            uc.mem_map(region.0, region.1 - region.0, prot)
                .map_err(&start)?;
        }
        let slot = target.return_slot();
        let slots = 1 + runtime::FUNCTIONS.len() as u64;
        for i in 0..slots {
            uc.mem_write(KERNEL_CODE.0 + i * SLOT, &slot)
                .map_err(&start)?;
        }
        runtime::install_data(&mut uc).map_err(&start)?;
        uc.add_code_hook(
            KERNEL_CODE.0 + SLOT,
            KERNEL_CODE.0 + slots * SLOT - 1,
            |uc, address, _| {
                // Only a slot's first instruction: the rest (a MIPS delay slot) runs on.
                let offset = address - KERNEL_CODE.0;
                if offset % SLOT == 0 {
                    runtime::dispatch(uc, (offset / SLOT) as usize - 1);
                }
            },
        )
        .map_err(&start)?;
        uc.add_code_hook(KERNEL_STUBS.0, KERNEL_STUBS.1 - 1, |uc, address, _| {
            if (address - KERNEL_STUBS.0) % SLOT == 0 {
                stub_reached(uc, ((address - KERNEL_STUBS.0) / SLOT) as usize);
            }
        })
        .map_err(&start)?;
        uc.add_mem_hook(HookType::MEM_INVALID, 1, 0, |uc, kind, address, _, _| {
            uc.get_data_mut().bad_access = Some((kind, address));
            false
        })
        .map_err(&start)?;
        Ok(Engine {
            uc,
            reservations: BTreeMap::new(),
            budget: DEFAULT_BUDGET,
            paused: None,
            free_stacks: (0..(STACK.1 - STACK.0) / STACK_SEGMENT)
                .rev()
                .map(|i| STACK.0 + i * STACK_SEGMENT)
                .collect(),
            suspended: HashMap::new(),
            next_call: 0,
            breakpoints: BTreeMap::new(),
            next_breakpoint: 1,
        })
    }

    pub fn set_budget(&mut self, budget: u64) {
        self.budget = budget;
    }

    pub fn reserve(&mut self, size: u64, align: u64) -> Result<u64, MachineError> {
        let size = size.max(PAGE).next_multiple_of(PAGE);
        let align = align.max(PAGE);
        let mut candidate = MODULES.0;
        for (&base, &len) in &self.reservations {
            if candidate + size <= base {
                break;
            }
            candidate = (base + len).next_multiple_of(align);
        }
        if candidate + size > MODULES.1 {
            return Err(MachineError::NoMemory {
                size,
                placement: format!("in the module region {:#x}-{:#x}", MODULES.0, MODULES.1),
                reason: "the region is full".into(),
            });
        }
        self.map_in_chunks(candidate, size)
            .map_err(machine_error("cannot map a module image"))?;
        self.reservations.insert(candidate, size);
        Ok(candidate)
    }

    /// Maps `size` bytes at `base` read-write, as regions of [`RESERVATION_CHUNK`] bytes, or
    /// as [`RESERVATION_REGIONS`] regions where that is more; all or nothing.
    fn map_in_chunks(&mut self, base: u64, size: u64) -> Result<(), uc_error> {
        let chunk = RESERVATION_CHUNK.max((size / RESERVATION_REGIONS).next_multiple_of(PAGE));
        let end = base + size;
        let mut at = base;
        while at < end {
            let len = chunk.min(end - at);
            if let Err(e) = self.uc.mem_map(at, len, Prot::READ | Prot::WRITE) {
                if at > base {
                    let _ = self.uc.mem_unmap(base, at - base);
                }
                return Err(e);
            }
            at += len;
        }
        Ok(())
    }

    pub fn release(&mut self, base: u64) -> Result<(), MachineError> {
        let size = self
            .reservations
            .remove(&base)
            .ok_or(MachineError::bad_access(base, 0, "release"))?;
        self.uc
            .mem_unmap(base, size)
            .map_err(machine_error("cannot unmap a module image"))?;
        // Code of the released image must not be run from the translation cache.
        let _ = self.uc.ctl_remove_cache(base, base + size);
        Ok(())
    }

    fn reservation_of(&self, address: u64, len: u64) -> Option<u64> {
        let (&base, &size) = self.reservations.range(..=address).next_back()?;
        (address.checked_add(len)? <= base + size).then_some(base)
    }

    pub fn write(&mut self, address: u64, bytes: &[u8]) -> Result<(), MachineError> {
        let len = bytes.len() as u64;
        self.reservation_of(address, len)
            .ok_or(MachineError::bad_access(address, len, "write"))?;
        self.uc
            .mem_write(address, bytes)
            .map_err(|_| MachineError::bad_access(address, len, "write"))
    }

    pub fn protect(
        &mut self,
        address: u64,
        len: u64,
        protection: Protection,
    ) -> Result<(), MachineError> {
        self.reservation_of(address, len)
            .ok_or(MachineError::bad_access(address, len, "protect"))?;
        let prot = match protection {
            Protection::ReadExecute => Prot::READ | Prot::EXEC,
            Protection::ReadOnly => Prot::READ,
            Protection::ReadWrite => Prot::READ | Prot::WRITE,
        };
        self.uc
            .mem_protect(address, len, prot)
            .map_err(|e| MachineError::Protect {
                address,
                len,
                reason: format!("{e:?}"),
            })?;
        let _ = self.uc.ctl_remove_cache(address, address + len);
        Ok(())
    }

    pub fn read(&self, address: u64, len: u64) -> Result<Vec<u8>, MachineError> {
        self.uc
            .mem_read_as_vec(address, len as usize)
            .map_err(|_| MachineError::bad_access(address, len, "read"))
    }

    pub fn alloc_data(&mut self, bytes: &[u8]) -> Result<u64, MachineError> {
        let len = bytes.len() as u64;
        let no_memory = || MachineError::NoMemory {
            size: len,
            placement: "in the emulated heap".into(),
            reason: "the heap is exhausted".into(),
        };
        let address = self
            .uc
            .get_data_mut()
            .heap
            .alloc(len)
            .ok_or_else(no_memory)?;
        self.uc.mem_write(address, bytes).map_err(|_| no_memory())?;
        Ok(address)
    }

    pub fn free_data(&mut self, address: u64) {
        self.uc.get_data_mut().heap.free(address);
    }

    /// Every symbol the runtime offers modules, by name: its functions' kernel slots and its
    /// variables, which are laid out once, when the engine starts. (A function and a
    /// variable of one name would be the function.)
    pub fn host_symbols(&self) -> HashMap<&'static str, ExternalSymbol> {
        let mut symbols = HashMap::new();
        for (name, address, size) in self.uc.get_data().runtime.variables() {
            if !name.is_empty() {
                let kind = ExternalKind::Data;
                symbols.insert(
                    name,
                    ExternalSymbol {
                        address,
                        size,
                        kind,
                    },
                );
            }
        }
        for (index, function) in runtime::FUNCTIONS.iter().enumerate() {
            let slot = ExternalSymbol {
                address: KERNEL_CODE.0 + SLOT * (index as u64 + 1),
                size: SLOT,
                kind: ExternalKind::Function,
            };
            symbols.insert(function.name, slot);
        }
        symbols
    }

    /// The runtime function or variable `address` falls in, with its start.
    pub fn host_symbol_at(&self, address: u64) -> Option<(String, u64)> {
        if (KERNEL_CODE.0 + SLOT..KERNEL_CODE.1).contains(&address) {
            let index = ((address - KERNEL_CODE.0) / SLOT - 1) as usize;
            let function = runtime::FUNCTIONS.get(index)?;
            return Some((
                function.name.to_string(),
                KERNEL_CODE.0 + SLOT * (index as u64 + 1),
            ));
        }
        self.uc.get_data().runtime.variable_at(address)
    }

    /// Calls the function at `address` from the host, on a stack of its own. A breakpoint
    /// leaves the call paused, to be resumed by [`Engine::resume`]; an armed stub leaves it
    /// waiting, to be gone on with by [`Engine::resume_stub`].
    pub fn call(&mut self, address: u64, args: &[u64]) -> Result<Ran, MachineError> {
        if let Some((pc, _)) = self.paused {
            return Err(MachineError::Paused { pc });
        }
        let stack = self.free_stacks.pop().ok_or(MachineError::Emulator {
            context: "cannot start a call",
            reason: "every stack is taken by calls waiting for modules to load".into(),
        })?;
        let sp = stack + STACK_SEGMENT - 256;
        let target = self.uc.get_data().target;
        if let Err(e) = target.set_call(&mut self.uc, address, args, sp, RETURN_ADDRESS) {
            self.free_stacks.push(stack);
            return Err(MachineError::Stopped(emulator(e)));
        }
        self.uc.get_data_mut().budget = self.budget;
        let outcome = run_until_return(&mut self.uc, address, self.budget);
        self.settle(outcome, stack)
    }

    /// Goes on with the paused call: to its end (or the next breakpoint), or `steps`
    /// instructions.
    pub fn resume(&mut self, steps: Option<u64>) -> Result<Ran, MachineError> {
        let (pc, stack) = self.paused.ok_or(MachineError::NotPaused)?;
        // The breakpoint the call stopped at must not stop it again at once.
        self.uc.get_data_mut().resume_from = Some(pc);
        let count = steps.unwrap_or(self.budget);
        let outcome = match run_until_return(&mut self.uc, pc, count) {
            Err(Stop::Budget { pc, .. }) if steps.is_some() => Err(Stop::Stepped { pc }),
            other => other,
        };
        self.uc.get_data_mut().resume_from = None;
        self.settle(outcome, stack)
    }

    /// Goes on with call `call`, waiting at an armed stub, once the kernel has dealt with it.
    pub fn resume_stub(&mut self, call: u32, jump: StubJump) -> Result<Ran, MachineError> {
        let waiting = self.suspended.remove(&call).ok_or(MachineError::Emulator {
            context: "cannot go on with a call",
            reason: format!("no call {call} waits at a stub"),
        })?;
        let resumed = machine_error("cannot go on with a call waiting at a stub");
        self.uc
            .context_restore(&waiting.context)
            .map_err(&resumed)?;
        let target = self.uc.get_data().target;
        let pc = self.uc.reg_read(target.registers().pc).map_err(&resumed)?;
        let stub = ((pc - KERNEL_STUBS.0) / SLOT) as usize;
        let data = self.uc.get_data_mut();
        let to = match jump {
            StubJump::To(address) => Some(address),
            StubJump::Fail => None,
        };
        let jumped = match to {
            Some(address) => {
                if let Some(calls) = data.stub_calls.get_mut(stub) {
                    *calls += 1;
                }
                target.jump(&mut self.uc, address)
            }
            None => return_failed(&mut self.uc),
        };
        jumped.map_err(&resumed)?;
        let pc = self.uc.reg_read(target.registers().pc).map_err(&resumed)?;
        self.uc.get_data_mut().budget = self.budget;
        let outcome = run_until_return(&mut self.uc, pc, self.budget);
        self.settle(outcome, waiting.stack)
    }

    /// Records how a call ran: paused, waiting at a stub, or over (its stack freed).
    fn settle(&mut self, outcome: Result<u64, Stop>, stack: u64) -> Result<Ran, MachineError> {
        self.paused = None;
        match outcome {
            Err(Stop::ArmedStub { stub }) => {
                let saved = machine_error("cannot keep a call waiting at a stub");
                let mut context = self.uc.context_alloc().map_err(&saved)?;
                self.uc.context_save(&mut context).map_err(&saved)?;
                let call = self.next_call;
                self.next_call = self.next_call.wrapping_add(1);
                self.suspended.insert(call, Suspended { context, stack });
                Ok(Ran::Stub { stub, call })
            }
            Err(stop @ (Stop::Breakpoint { pc, .. } | Stop::Stepped { pc })) => {
                self.paused = Some((pc, stack));
                Err(MachineError::Stopped(stop))
            }
            other => {
                self.free_stacks.push(stack);
                other.map(Ran::Returned).map_err(MachineError::Stopped)
            }
        }
    }

    /// Makes a stub; returns its number and address.
    pub fn create_stub(&mut self) -> Result<(u32, u64), MachineError> {
        let number = self.uc.get_data().stub_targets.len() as u64;
        let address = KERNEL_STUBS.0 + number * SLOT;
        if address >= KERNEL_STUBS.1 {
            return Err(MachineError::NoMemory {
                size: SLOT,
                placement: "in the stub region".into(),
                reason: "every stub slot is taken".into(),
            });
        }
        let slot = self.uc.get_data().target.return_slot();
        self.uc
            .mem_write(address, &slot)
            .map_err(machine_error("cannot write a stub"))?;
        let data = self.uc.get_data_mut();
        data.stub_targets.push(None);
        data.stub_calls.push(0);
        Ok((number as u32, address))
    }

    pub fn set_stub_target(&mut self, stub: u32, target: Option<u64>) {
        if let Some(slot) = self.uc.get_data_mut().stub_targets.get_mut(stub as usize) {
            *slot = target;
        }
    }

    pub fn stub_calls(&self, stub: u32) -> u64 {
        let calls = &self.uc.get_data().stub_calls;
        calls.get(stub as usize).copied().unwrap_or(0)
    }

    pub fn set_breakpoint(&mut self, address: u64) -> Result<u32, MachineError> {
        let id = self.next_breakpoint;
        let hook = self
            .uc
            .add_code_hook(address, address, move |uc, pc, _| {
                let data = uc.get_data_mut();
                if data.nesting > 0 || data.resume_from.take() == Some(pc) {
                    return;
                }
                data.stop = Some(Stop::Breakpoint { id, pc });
                let _ = uc.emu_stop();
            })
            .map_err(machine_error("cannot set a breakpoint"))?;
        self.next_breakpoint += 1;
        self.breakpoints.insert(id, (address, hook));
        Ok(id)
    }

    pub fn delete_breakpoint(&mut self, id: u32) -> Result<(), MachineError> {
        let (_, hook) = self
            .breakpoints
            .remove(&id)
            .ok_or(MachineError::NoBreakpoint(id))?;
        self.uc
            .remove_hook(hook)
            .map_err(machine_error("cannot delete a breakpoint"))
    }

    pub fn breakpoints(&self) -> Vec<(u32, u64)> {
        self.breakpoints
            .iter()
            .map(|(&id, &(address, _))| (id, address))
            .collect()
    }

    /// The paused call's registers, by name.
    pub fn registers(&self) -> Result<Vec<(&'static str, u64)>, MachineError> {
        self.paused.ok_or(MachineError::NotPaused)?;
        let target = self.uc.get_data().target;
        target
            .registers()
            .named
            .iter()
            .map(|&(name, reg)| {
                self.uc
                    .reg_read(reg)
                    .map(|value| (name, value))
                    .map_err(machine_error("cannot read registers"))
            })
            .collect()
    }

    /// The paused call's code addresses, innermost first: the pc, then return addresses.
    pub fn backtrace(&self) -> Result<Vec<u64>, MachineError> {
        let (_, stack) = self.paused.ok_or(MachineError::NotPaused)?;
        let target = self.uc.get_data().target;
        let mut frames = target.return_addresses(&self.uc, (stack, stack + STACK_SEGMENT));
        frames.retain(|&a| a != RETURN_ADDRESS);
        frames.dedup();
        Ok(frames)
    }

    pub fn take_output(&mut self) -> Vec<(u64, Vec<u8>)> {
        runtime::take_output(&mut self.uc)
    }
}

/// Runs the function at `address` until it returns to [`RETURN_ADDRESS`], from a runtime
/// function's hook (a nested run, as qsort calling a module's comparator); the caller's
/// registers are saved and restored around it. Breakpoints do not stop nested runs.
pub(super) fn call_guest(uc: &mut Uc, address: u64, args: &[u64], sp: u64) -> Result<u64, Stop> {
    let target = uc.get_data().target;
    let mut saved = uc.context_alloc().map_err(emulator)?;
    uc.context_save(&mut saved).map_err(emulator)?;
    target
        .set_call(uc, address, args, sp, RETURN_ADDRESS)
        .map_err(emulator)?;
    let budget = uc.get_data().budget;
    uc.get_data_mut().nesting += 1;
    let outcome = run_until_return(uc, address, budget);
    uc.get_data_mut().nesting -= 1;
    uc.context_restore(&saved).map_err(emulator)?;
    outcome
}

/// A call reached stub `stub`'s slot: on into its module function, or (armed) stop so that
/// the machine has the module loaded. A run nested in a runtime function cannot stop for
/// that: its call fails instead.
fn stub_reached(uc: &mut Uc, stub: usize) {
    let data = uc.get_data_mut();
    let target = data.target;
    match data.stub_targets.get(stub).copied() {
        Some(Some(address)) => {
            data.stub_calls[stub] += 1;
            let _ = target.jump(uc, address);
        }
        Some(None) if data.nesting == 0 => {
            data.stop = Some(Stop::ArmedStub { stub: stub as u32 });
            let _ = uc.emu_stop();
        }
        _ => {
            let _ = return_failed(uc);
        }
    }
}

/// Returns from a stub to its caller with -1, errno ENOSYS.
fn return_failed(uc: &mut Uc) -> Result<(), uc_error> {
    runtime::fail_with_enosys(uc)?;
    let registers = uc.get_data().target.registers();
    let link = uc.reg_read(registers.link)?;
    uc.reg_write(registers.pc, link)
}

fn emulator(e: uc_error) -> Stop {
    Stop::Emulator(format!("{e:?}"))
}

/// Runs from `pc` for at most `count` instructions, until the call returns to
/// [`RETURN_ADDRESS`]: its result, or why it stopped first.
fn run_until_return(uc: &mut Uc, pc: u64, count: u64) -> Result<u64, Stop> {
    let target = uc.get_data().target;
    let data = uc.get_data_mut();
    data.stop = None;
    data.bad_access = None;
    let ran = uc.emu_start(pc, RETURN_ADDRESS, 0, count as usize);
    let pc = uc.reg_read(target.registers().pc).unwrap_or(0);
    match (ran, uc.get_data_mut().stop.take()) {
        (_, Some(stop)) => Err(stop),
        (Err(error), None) => Err(fault(uc, pc, error)),
        (Ok(()), None) if pc != RETURN_ADDRESS => Err(Stop::Budget { pc, budget: count }),
        (Ok(()), None) => target.int_result(uc).map_err(emulator),
    }
}

fn fault(uc: &mut Uc, pc: u64, error: uc_error) -> Stop {
    let access = uc.get_data_mut().bad_access.take();
    let (what, address) = match access {
        Some((kind, address)) => (
            format!("{kind:?}").to_lowercase().replace('_', " "),
            address,
        ),
        None => (format!("{error:?}").to_lowercase().replace('_', " "), pc),
    };
    Stop::Fault { pc, what, address }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reservation of several regions keeps its bytes through protections whose ends fall
    /// inside regions, takes each protection page for page, and goes whole when released.
    #[test]
    fn a_reservation_mapped_in_regions_takes_protections_across_them() {
        let mut engine = Engine::new(&super::super::mips::Mips { big_endian: true }).unwrap();
        let size = 2 * RESERVATION_CHUNK + 3 * PAGE;
        let base = engine.reserve(size, PAGE).unwrap();
        let bytes: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        engine.write(base, &bytes).unwrap();
        let text_end = RESERVATION_CHUNK + PAGE;
        let rodata_end = 2 * RESERVATION_CHUNK + PAGE;
        let segments = [
            (
                0,
                text_end,
                Protection::ReadExecute,
                Prot::READ | Prot::EXEC,
            ),
            (text_end, rodata_end, Protection::ReadOnly, Prot::READ),
            (
                rodata_end,
                size,
                Protection::ReadWrite,
                Prot::READ | Prot::WRITE,
            ),
        ];
        for &(start, end, protection, _) in &segments {
            engine
                .protect(base + start, end - start, protection)
                .unwrap();
        }
        assert_eq!(engine.read(base, size).unwrap(), bytes);
        let regions = engine.uc.mem_regions().unwrap();
        for page in (0..size).step_by(PAGE as usize) {
            let address = base + page;
            let region = regions
                .iter()
                .find(|r| (r.begin..=r.end).contains(&address))
                .unwrap_or_else(|| panic!("{address:#x} unmapped"));
            let &(.., expected) = segments
                .iter()
                .find(|&&(start, end, ..)| (start..end).contains(&page))
                .unwrap();
            assert_eq!(region.perms, expected.0, "page {page:#x}");
        }
        engine.release(base).unwrap();
        assert!(engine.read(base, 1).is_err());
        assert_eq!(
            engine.reserve(size, PAGE).unwrap(),
            base,
            "the space is free again"
        );
    }

    /// A large reservation (a fuzzed object's 160 MiB `.bss`) is mapped as a bounded number of
    /// regions, not one per 128 KiB, and whole.
    #[test]
    fn a_large_reservation_is_mapped_as_few_regions() {
        let mut engine = Engine::new(&super::super::mips::Mips { big_endian: false }).unwrap();
        let size = 0xa00_0000;
        let base = engine.reserve(size, PAGE).unwrap();
        let inside: Vec<_> = engine
            .uc
            .mem_regions()
            .unwrap()
            .into_iter()
            .filter(|r| r.begin >= base && r.end < base + size)
            .collect();
        assert!(
            inside.len() as u64 <= RESERVATION_REGIONS,
            "{} regions",
            inside.len()
        );
        let mapped: u64 = inside.iter().map(|r| r.end + 1 - r.begin).sum();
        assert_eq!(mapped, size);
        engine.release(base).unwrap();
    }
}
