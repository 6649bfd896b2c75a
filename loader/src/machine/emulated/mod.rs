//! The emulated machine: aarch64 and MIPS32 modules on any host, in a Unicorn CPU. The
//! loader places, protects, reads, writes and calls through it exactly as through the native
//! machine. The emulator is not thread-safe, so it lives on a thread of its own and every
//! operation is a job sent there; the machine itself is `Send + Sync`.
//!
//! The kernel's C runtime (`runtime`) runs host-side, at addresses far from every module, so
//! each kernel call of a module goes through the linker's stubs and veneers.

mod aarch64;
pub(crate) mod cformat;
mod engine;
mod heap;
mod mips;
mod runtime;
mod target;

use std::collections::HashMap;
use std::io::Write;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, Weak};
use std::thread::JoinHandle;

use dlkm_linker::{ArchKind, ExternalSymbol};

use super::{Debugger, Machine, Placement, Protection, StubResolver, StubUse};
use crate::error::MachineError;
pub use engine::DEFAULT_BUDGET;
use engine::{Engine, Ran, StubJump, PAGE};
use target::Target;

type Job = Box<dyn FnOnce(&mut Engine) + Send>;

/// A machine that emulates one architecture.
pub struct EmulatedMachine {
    arch: ArchKind,
    jobs: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    resolver: Mutex<Option<Weak<dyn StubResolver>>>,
    /// The runtime's symbols, fixed when the engine starts: looked up here, not on the
    /// emulator's thread (a module's exports and imports are thousands of lookups).
    host_symbols: HashMap<&'static str, ExternalSymbol>,
}

impl EmulatedMachine {
    /// A machine for `arch`: aarch64, MIPS or MIPSel.
    pub fn new(arch: ArchKind) -> Result<EmulatedMachine, MachineError> {
        let target: &'static dyn Target = match arch {
            ArchKind::Aarch64 => &aarch64::Aarch64,
            ArchKind::Mips { big_endian: true } => &mips::Mips { big_endian: true },
            ArchKind::Mips { big_endian: false } => &mips::Mips { big_endian: false },
            ArchKind::X86_64 => {
                return Err(MachineError::Emulator {
                    context: "cannot emulate x86_64",
                    reason: "x86_64 modules run in the native machine".into(),
                })
            }
        };
        let (jobs, queue) = channel::<Job>();
        let (ready, started) = channel();
        let thread = std::thread::Builder::new()
            .name(format!("dlkm-emulated-{}", arch.name()))
            .spawn(move || match Engine::new(target) {
                Ok(mut engine) => {
                    let _ = ready.send(Ok(engine.host_symbols()));
                    for job in queue {
                        job(&mut engine);
                    }
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            })
            .map_err(|e| MachineError::Emulator {
                context: "cannot start the emulator thread",
                reason: e.to_string(),
            })?;
        let host_symbols = started.recv().map_err(|_| stopped())??;
        Ok(EmulatedMachine {
            arch,
            jobs: Mutex::new(Some(jobs)),
            thread: Mutex::new(Some(thread)),
            resolver: Mutex::new(None),
            host_symbols,
        })
    }

    /// Runs `job` on the emulator's thread and waits for its result.
    fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Engine) -> R + Send + 'static,
    ) -> Result<R, MachineError> {
        let (reply, answer) = channel();
        {
            let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
            let jobs = jobs.as_ref().ok_or_else(stopped)?;
            jobs.send(Box::new(move |engine: &mut Engine| {
                let _ = reply.send(job(engine));
            }))
            .map_err(|_| stopped())?;
        }
        answer.recv().map_err(|_| stopped())
    }

    /// Follows a call until it returns: each time it waits at an armed stub, the kernel loads
    /// the module (on this thread, the emulator free meanwhile) and the call goes on.
    fn drive(&self, mut ran: Ran) -> Result<u64, MachineError> {
        loop {
            match ran {
                Ran::Returned(value) => return Ok(value),
                Ran::Stub { stub, call } => {
                    let jump = self.resolve(stub);
                    ran = self.run(move |engine| engine.resume_stub(call, jump))??;
                }
            }
        }
    }

    fn resolve(&self, stub: u32) -> StubJump {
        let resolver = self
            .resolver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match resolver.and_then(|r| r.upgrade()).map(|r| r.resolve(stub)) {
            Some(Ok(address)) => StubJump::To(address),
            Some(Err(_)) | None => StubJump::Fail,
        }
    }

    /// Sets how many instructions one call may run before it is stopped.
    pub fn set_budget(&self, budget: u64) -> Result<(), MachineError> {
        self.run(move |engine| engine.set_budget(budget))
    }
}

fn stopped() -> MachineError {
    MachineError::Emulator {
        context: "emulated machine",
        reason: "its thread has stopped".into(),
    }
}

impl Drop for EmulatedMachine {
    fn drop(&mut self) {
        self.flush_output();
        // Closing the queue ends the thread's loop.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

impl Machine for EmulatedMachine {
    fn arch(&self) -> ArchKind {
        self.arch
    }

    fn page_size(&self) -> u64 {
        PAGE
    }

    /// Every module goes in the module region, far from the kernel, whatever is asked: the
    /// region lies below 2 GiB and inside one MIPS 256 MiB region.
    fn reserve(&self, size: u64, align: u64, _placement: Placement) -> Result<u64, MachineError> {
        self.run(move |engine| engine.reserve(size, align))?
    }

    fn release(&self, base: u64) -> Result<(), MachineError> {
        self.run(move |engine| engine.release(base))?
    }

    fn write(&self, address: u64, bytes: &[u8]) -> Result<(), MachineError> {
        let bytes = bytes.to_vec();
        self.run(move |engine| engine.write(address, &bytes))?
    }

    fn fill_image(
        &self,
        base: u64,
        len: u64,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), MachineError> {
        // Handed to the emulator's thread as it is: no second copy for the job.
        let image = super::filled_image(base, len, fill)?;
        self.run(move |engine| engine.write(base, &image))?
    }

    fn protect(&self, address: u64, len: u64, protection: Protection) -> Result<(), MachineError> {
        self.run(move |engine| engine.protect(address, len, protection))?
    }

    fn read(&self, address: u64, len: u64) -> Result<Vec<u8>, MachineError> {
        self.run(move |engine| engine.read(address, len))?
    }

    fn call(&self, address: u64, args: &[u64]) -> Result<u64, MachineError> {
        let args = args.to_vec();
        let ran = self.run(move |engine| engine.call(address, &args))??;
        self.drive(ran)
    }

    fn alloc_data(&self, bytes: &[u8]) -> Result<u64, MachineError> {
        let bytes = bytes.to_vec();
        self.run(move |engine| engine.alloc_data(&bytes))?
    }

    fn free_data(&self, address: u64) {
        let _ = self.run(move |engine| engine.free_data(address));
    }

    fn host_symbol(&self, name: &str) -> Option<ExternalSymbol> {
        self.host_symbols.get(name).copied()
    }

    fn kernel_anchor(&self) -> u64 {
        engine::KERNEL_CODE.0
    }

    fn host_symbol_at(&self, address: u64) -> Option<(String, u64)> {
        self.run(move |engine| engine.host_symbol_at(address))
            .ok()?
    }

    fn debugger(&self) -> Option<&dyn Debugger> {
        Some(self)
    }

    fn create_stub(&self) -> Result<(u32, u64), MachineError> {
        self.run(|engine| engine.create_stub())?
    }

    fn set_stub_target(&self, stub: u32, target: Option<u64>) {
        let _ = self.run(move |engine| engine.set_stub_target(stub, target));
    }

    /// Calls run one at a time on the emulator's thread and the kernel unloads between them,
    /// so a call through a stub is counted as a call into the module by whoever started it.
    /// (The one gap: a call waiting at another stub for a load. Unloading under it makes it
    /// fault inside the emulator, where it stops with a report; the host is never at risk.)
    fn stub_use(&self, stub: u32) -> StubUse {
        StubUse {
            in_flight: 0,
            calls: self.run(move |engine| engine.stub_calls(stub)).unwrap_or(0),
        }
    }

    fn set_stub_resolver(&self, resolver: Weak<dyn StubResolver>) {
        *self.resolver.lock().unwrap_or_else(|e| e.into_inner()) = Some(resolver);
    }

    fn flush_output(&self) {
        let Ok(output) = self.run(|engine| engine.take_output()) else {
            return;
        };
        for (fd, bytes) in output {
            let _ = if fd == 2 {
                std::io::stderr().write_all(&bytes)
            } else {
                let mut out = std::io::stdout();
                out.write_all(&bytes).and_then(|()| out.flush())
            };
        }
    }
}

impl Debugger for EmulatedMachine {
    fn set_breakpoint(&self, address: u64) -> Result<u32, MachineError> {
        self.run(move |engine| engine.set_breakpoint(address))?
    }

    fn delete_breakpoint(&self, id: u32) -> Result<(), MachineError> {
        self.run(move |engine| engine.delete_breakpoint(id))?
    }

    fn breakpoints(&self) -> Vec<(u32, u64)> {
        self.run(|engine| engine.breakpoints()).unwrap_or_default()
    }

    fn resume(&self, steps: Option<u64>) -> Result<u64, MachineError> {
        let ran = self.run(move |engine| engine.resume(steps))??;
        self.drive(ran)
    }

    fn registers(&self) -> Result<Vec<(&'static str, u64)>, MachineError> {
        self.run(|engine| engine.registers())?
    }

    fn backtrace(&self) -> Result<Vec<u64>, MachineError> {
        self.run(|engine| engine.backtrace())?
    }

    fn set_budget(&self, budget: u64) -> Result<(), MachineError> {
        EmulatedMachine::set_budget(self, budget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlkm_linker::ExternalKind;

    /// The symbols answered on the caller's thread are the runtime's: its functions in their
    /// kernel slots and its variables in kernel data, on every emulated architecture; the
    /// unnamed blocks behind the variables are no symbol.
    #[test]
    fn host_symbols_are_the_runtimes_functions_and_variables() {
        for arch in [
            ArchKind::Aarch64,
            ArchKind::Mips { big_endian: true },
            ArchKind::Mips { big_endian: false },
        ] {
            let machine = EmulatedMachine::new(arch).unwrap();
            let printf = machine.host_symbol("printf").expect("printf");
            assert_eq!(printf.kind, ExternalKind::Function);
            assert!((engine::KERNEL_CODE.0..engine::KERNEL_CODE.1).contains(&printf.address));
            assert_eq!(
                machine.host_symbol("memcpy").unwrap().kind,
                ExternalKind::Function
            );
            for variable in ["stdout", "stderr", "errno"] {
                let found = machine.host_symbol(variable);
                assert_eq!(
                    found.map(|s| s.kind),
                    Some(ExternalKind::Data),
                    "{variable}"
                );
            }
            assert_eq!(machine.host_symbol(""), None);
            assert_eq!(machine.host_symbol("no_such_function"), None);
        }
    }
}
