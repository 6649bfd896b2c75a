//! The kernel: its symbol table and the modules loaded into its machine.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::ThreadId;
use std::time::{Duration, Instant, SystemTime};

use dlkm_linker::{
    CopyRequest, ExternalKind, ExternalSymbol, LayoutOptions, LinkOutput, LinkedSymbols, Object,
    SegmentKind,
};

use crate::error::{LoadError, MachineError, Stop};
use crate::machine::native::NativeMachine;
use crate::machine::{Debugger, Machine, Placement, Protection, PublishedModule, StubResolver};
use crate::metadata::Metadata;
use sha2::{Digest, Sha256};

mod cached;
mod image_cache;
mod lines;
mod load;
mod registry;
mod usage;

pub use lines::SourceLine;

use registry::registration_info;

/// Addresses a module placed below 2 GiB can reach with 32-bit absolute references.
const LOW_LIMIT: u64 = 1 << 31;

/// A loaded module's number, unique for the kernel's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModuleId(pub u32);

impl std::fmt::Display for ModuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Who provides a kernel symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Exported by the embedding program.
    Kernel,
    /// Exported by a loaded module (its name shared by all its exports).
    Module(ModuleId, Arc<str>),
    /// Found among the host's dynamic symbols (libc and friends).
    Host,
    /// An auto-loading stub of a registered module that is not loaded.
    Stub(ModuleId, Arc<str>),
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Kernel => write!(f, "kernel"),
            Owner::Module(id, name) => write!(f, "module {name} (id {id})"),
            Owner::Host => write!(f, "host"),
            Owner::Stub(id, name) => write!(f, "stub of module {name} (id {id}, not loaded)"),
        }
    }
}

/// An entry of the kernel symbol table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSymbol {
    pub name: String,
    pub address: u64,
    pub size: u64,
    pub kind: ExternalKind,
    pub owner: Owner,
}

/// A module's life-cycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleState {
    /// Known, its stubs installed, not loaded.
    Registered,
    /// Placed and linked; its constructors and `_load` are running.
    Loading,
    Loaded,
    /// Its `_unload` and destructors are running; nothing new may start using it.
    Unloading,
    /// Registered, and its last load failed (the reason is in [`ModuleInfo::failure`]).
    Failed,
}

impl std::fmt::Display for ModuleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModuleState::Registered => "registered",
            ModuleState::Loading => "loading",
            ModuleState::Loaded => "loaded",
            ModuleState::Unloading => "unloading",
            ModuleState::Failed => "failed",
        })
    }
}

/// A placed section of a loaded module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionInfo {
    pub name: String,
    pub address: u64,
    pub size: u64,
}

/// Everything known about one module, loaded or registered (a registered module that is not
/// loaded has no image: its base and size are 0).
#[derive(Debug, Clone)]
pub struct ModuleInfo {
    pub id: ModuleId,
    pub name: String,
    pub path: Option<PathBuf>,
    pub module_type: &'static str,
    pub version: u32,
    pub state: ModuleState,
    /// Modules that import from this one.
    pub refs: usize,
    /// References taken with [`Kernel::hold`].
    pub holds: usize,
    /// Devices of a driver open now.
    pub opens: usize,
    /// Loaded by the kernel on demand of a device open, not by a load: the auto-unloader may
    /// take it away again once idle.
    pub auto_loaded: bool,
    /// Modules this one imports from.
    pub deps: Vec<String>,
    /// Modules that import from this one.
    pub users: Vec<String>,
    pub base: u64,
    pub size: u64,
    pub sections: Vec<SectionInfo>,
    /// Entry points found (`_load`, `_unload`, constructors), with their addresses.
    pub entry_points: Vec<(String, u64)>,
    /// When it was loaded (registered, for a registered module that is not loaded).
    pub loaded_at: SystemTime,
    pub stubs_used: usize,
    pub got_relaxed: usize,
    /// Its image was mapped from the image cache, not linked.
    pub from_image_cache: bool,
    pub copied: Vec<String>,
    /// Registered with [`Kernel::register`]: its stubs stay in the kernel table while it is
    /// not loaded.
    pub registered: bool,
    /// The stubbed symbols of a registered module.
    pub stubs: Vec<String>,
    /// Registered modules whose stubs this one calls (loaded or not).
    pub stub_deps: Vec<String>,
    /// Why the last load of a registered module failed.
    pub failure: Option<String>,
}

/// What the kernel may do on behalf of modules.
#[derive(Debug, Clone)]
pub struct KernelOptions {
    /// Resolve what no export provides against the host's dynamic symbols (libc, libm, …).
    pub host_symbols: bool,
    /// Host variables a module placed in the low 2 GiB may get a private copy of when its
    /// 32-bit references cannot reach them (see the README on `-fno-pic` modules).
    pub copyable: BTreeSet<String>,
    /// Load and register only objects inside the module path's directories (by name, or by
    /// a path that resolves into one of them); objects from anywhere else, and bytes with no
    /// file, are refused.
    pub modpath_only: bool,
    /// Let a module export a symbol the host already provides (libc's `malloc`, say), so
    /// that modules loaded after it bind to the module's. Off, such a module is refused. The
    /// embedder's own exports and other modules' are never shadowed.
    pub allow_shadowing: bool,
    /// A directory of linked images (the README's "image cache"): a module loaded from a file is
    /// linked once, and mapped from its entry by later processes. Native kernels only.
    pub image_cache: Option<PathBuf>,
}

impl Default for KernelOptions {
    fn default() -> Self {
        KernelOptions {
            host_symbols: true,
            copyable: ["stdin", "stdout", "stderr"]
                .into_iter()
                .map(String::from)
                .collect(),
            modpath_only: false,
            allow_shadowing: false,
            image_cache: None,
        }
    }
}

/// An argument of [`Kernel::call`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Int(u64),
    /// Copied into memory the module can see, NUL-terminated; the pointer is passed.
    Str(String),
}

struct Module {
    info: ModuleInfo,
    symbols: LinkedSymbols,
    dep_ids: BTreeSet<ModuleId>,
    fini_array: Vec<u64>,
    /// The unload entry point's name and address.
    unload_entry: Option<(String, u64)>,
    /// Calls from the host running in it now.
    calls_in_flight: usize,
    metadata: Metadata,
    /// When it was last loaded, opened, closed or called.
    last_used: Instant,
    /// Registered modules whose stubs it calls.
    stub_deps: BTreeSet<String>,
    /// The thread running its constructors and `_load`, while it is loading.
    loader: Option<ThreadId>,
    /// Calls through its stubs when the auto-unloader last looked.
    stub_calls_seen: u64,
    /// What its source lines are built from, when it has a line table.
    lines: Option<Arc<lines::ModuleLines>>,
    /// The linker's far-call stubs: address and the symbol each jumps to.
    far_stubs: Vec<(u64, String)>,
}

impl Module {
    /// The address of its entry point `name` (`_load`, `_unload`), if it has one.
    fn entry_point(&self, name: &str) -> Option<u64> {
        let mut named = self.info.entry_points.iter();
        named.find(|(entry, _)| entry == name).map(|&(_, at)| at)
    }
}

/// A module made known with [`Kernel::register`].
struct Registration {
    id: ModuleId,
    path: PathBuf,
    metadata: Metadata,
    /// Its stubs: symbol, stub number, stub address.
    stubs: Vec<(String, u32, u64)>,
    failure: Option<String>,
    registered_at: SystemTime,
}

impl Registration {
    fn stub_symbol(&self, symbol: &str) -> Option<KernelSymbol> {
        let (name, _, address) = self.stubs.iter().find(|(s, _, _)| s == symbol)?;
        Some(KernelSymbol {
            name: name.clone(),
            address: *address,
            size: 0,
            kind: ExternalKind::Function,
            owner: Owner::Stub(self.id, self.metadata.name.as_str().into()),
        })
    }
}

#[derive(Default)]
struct State {
    exports: HashMap<String, KernelSymbol>,
    /// Interfaces the embedder exports, and their versions.
    interfaces: HashMap<String, u32>,
    modules: BTreeMap<ModuleId, Module>,
    next_id: u32,
    modpath: Vec<PathBuf>,
    /// Registered modules, by name.
    registered: BTreeMap<String, Registration>,
    /// The machine stub made for each symbol ever stubbed (number, address): a symbol stubbed
    /// again gets the same one, so stubs are bounded by the distinct symbols.
    stub_numbers: HashMap<String, (u32, u64)>,
}

/// Serialises loads, unloads and registrations, reentrantly: a module's `_load` may call
/// through a stub and so auto-load another module on the same thread.
#[derive(Default)]
struct LoadLock {
    owner: Mutex<(Option<ThreadId>, usize)>,
    free: Condvar,
}

struct LoadGuard<'k>(&'k LoadLock);

impl LoadLock {
    fn lock(&self) -> LoadGuard<'_> {
        let me = std::thread::current().id();
        let mut owner = self.owner.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match owner.0 {
                None => *owner = (Some(me), 1),
                Some(thread) if thread == me => owner.1 += 1,
                Some(_) => {
                    owner = self.free.wait(owner).unwrap_or_else(|e| e.into_inner());
                    continue;
                }
            }
            return LoadGuard(self);
        }
    }
}

impl Drop for LoadGuard<'_> {
    fn drop(&mut self) {
        let mut owner = self.0.owner.lock().unwrap_or_else(|e| e.into_inner());
        owner.1 -= 1;
        if owner.1 == 0 {
            owner.0 = None;
            self.0.free.notify_all();
        }
    }
}

/// How long an auto-loaded module stays idle before the auto-unloader takes it away, when
/// neither its metadata nor the embedder says otherwise (UnixWare's DEF_UNLOAD_DELAY).
pub const DEF_UNLOAD_DELAY: Duration = Duration::from_secs(60);

/// A kernel: the symbol table, the loaded modules and the machine they run in.
/// `Kernel` is `Send + Sync`; operations on it are serialised.
pub struct Kernel {
    machine: Box<dyn Machine>,
    options: KernelOptions,
    state: Mutex<State>,
    load_lock: LoadLock,
    /// The auto-unloader asked for and not yet started ([`Kernel::start_auto_unload`]).
    auto_unload: Mutex<Option<usage::AutoUnloadPlan>>,
    /// Where large object files are read.
    read_buffer: crate::object_file::ReadBuffer,
    image_cache: Option<image_cache::ImageCache>,
}

impl Kernel {
    /// A kernel whose modules run in this process; exports are what the embedder adds, then
    /// the host's dynamic symbols.
    pub fn native() -> Result<Kernel, LoadError> {
        Kernel::native_with(KernelOptions::default())
    }

    /// A native kernel with `options`.
    pub fn native_with(options: KernelOptions) -> Result<Kernel, LoadError> {
        Ok(Kernel::with_machine(
            Box::new(NativeMachine::new()),
            options,
        ))
    }

    /// A kernel whose modules run in the emulated machine for `arch` (aarch64, MIPS, MIPSel);
    /// its exports are the emulated C runtime's.
    #[cfg(feature = "emulated")]
    pub fn emulated(arch: dlkm_linker::ArchKind) -> Result<Kernel, LoadError> {
        Kernel::emulated_with(arch, KernelOptions::default())
    }

    /// An emulated kernel with `options`.
    #[cfg(feature = "emulated")]
    pub fn emulated_with(
        arch: dlkm_linker::ArchKind,
        options: KernelOptions,
    ) -> Result<Kernel, LoadError> {
        let machine = crate::machine::emulated::EmulatedMachine::new(arch)?;
        Ok(Kernel::with_machine(Box::new(machine), options))
    }

    pub fn with_machine(machine: Box<dyn Machine>, options: KernelOptions) -> Kernel {
        let image_cache = options.image_cache.clone();
        let image_cache = image_cache
            .filter(|_| machine.can_map_files())
            .map(image_cache::ImageCache::new);
        Kernel {
            machine,
            options,
            state: Mutex::new(State {
                next_id: 1,
                ..State::default()
            }),
            load_lock: LoadLock::default(),
            auto_unload: Mutex::new(None),
            read_buffer: Default::default(),
            image_cache,
        }
    }

    pub fn machine(&self) -> &dyn Machine {
        self.machine.as_ref()
    }

    pub fn options(&self) -> &KernelOptions {
        &self.options
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Exports a function or variable of the embedding program under `name`.
    pub fn export(&self, name: &str, address: *const u8) -> Result<(), LoadError> {
        self.export_symbol(name, address as u64, 0, ExternalKind::Unknown)
    }

    /// Exports an address with its size and kind (the emulated machine's runtime uses this).
    pub fn export_symbol(
        &self,
        name: &str,
        address: u64,
        size: u64,
        kind: ExternalKind,
    ) -> Result<(), LoadError> {
        let mut state = self.state();
        if state.exports.contains_key(name) {
            return Err(LoadError::AlreadyExported(name.to_string()));
        }
        state.exports.insert(
            name.to_string(),
            KernelSymbol {
                name: name.to_string(),
                address,
                size,
                kind,
                owner: Owner::Kernel,
            },
        );
        Ok(())
    }

    /// Finds a loaded module by name or by number.
    pub fn find_module(&self, name_or_id: &str) -> Option<ModuleId> {
        let state = self.state();
        if let Some(m) = state.modules.values().find(|m| m.info.name == name_or_id) {
            return Some(m.info.id);
        }
        let id = ModuleId(name_or_id.parse().ok()?);
        state.modules.contains_key(&id).then_some(id)
    }

    /// UnixWare's modstat: one module's record, or every module's.
    pub fn modstat(&self, id: Option<ModuleId>) -> Result<Vec<ModuleInfo>, LoadError> {
        match id {
            Some(id) => self
                .module_info(id)
                .map(|info| vec![info])
                .ok_or_else(|| LoadError::NoSuchModule(id.to_string())),
            None => Ok(self.modules()),
        }
    }

    /// UnixWare's getksym: the kernel symbol table's entry for `name`.
    pub fn getksym(&self, name: &str) -> Result<KernelSymbol, LoadError> {
        self.lookup(name)
            .ok_or_else(|| LoadError::NoSuchSymbol(name.to_string()))
    }

    /// Every module, loaded or registered, by number.
    pub fn modules(&self) -> Vec<ModuleInfo> {
        let state = self.state();
        let mut modules: Vec<ModuleInfo> = state
            .modules
            .keys()
            .filter_map(|&id| info_of(&state, id))
            .collect();
        modules.extend(
            state
                .registered
                .values()
                .filter(|r| !state.modules.contains_key(&r.id))
                .map(registration_info),
        );
        modules.sort_by_key(|m| m.id);
        modules
    }

    /// A loaded or registered module's record.
    pub fn module_info(&self, id: ModuleId) -> Option<ModuleInfo> {
        let state = self.state();
        info_of(&state, id).or_else(|| {
            let registration = state.registered.values().find(|r| r.id == id)?;
            Some(registration_info(registration))
        })
    }

    /// Finds a registered module (loaded or not) by name or number.
    pub fn find_registered(&self, name_or_id: &str) -> Option<ModuleId> {
        let state = self.state();
        if let Some(r) = state.registered.get(name_or_id) {
            return Some(r.id);
        }
        let id = ModuleId(name_or_id.parse().ok()?);
        state.registered.values().any(|r| r.id == id).then_some(id)
    }

    /// The kernel symbol table: the embedder's and the modules' exports, by name. (The host's
    /// dynamic symbols are looked up on demand and not listed.)
    pub fn exports(&self) -> Vec<KernelSymbol> {
        let mut symbols: Vec<KernelSymbol> = self.state().exports.values().cloned().collect();
        symbols.sort_by(|a, b| a.name.cmp(&b.name));
        symbols
    }

    /// Pushes out what modules wrote to buffered output.
    pub fn flush_output(&self) {
        self.machine.flush_output();
    }

    /// A module's own symbols (exported and local), by address.
    pub fn module_symbols(&self, id: ModuleId) -> Option<LinkedSymbols> {
        let state = self.state();
        let mut symbols = state.modules.get(&id)?.symbols.clone();
        symbols.sort_by_address();
        Some(symbols)
    }

    /// The kernel symbol table's entry for `name`: explicit and module exports first, then the
    /// host's dynamic symbols if allowed.
    pub fn lookup(&self, name: &str) -> Option<KernelSymbol> {
        let state = self.state();
        self.lookup_in(&state, name)
    }

    fn lookup_in(&self, state: &State, name: &str) -> Option<KernelSymbol> {
        if let Some(symbol) = state.exports.get(name) {
            // A module being loaded or unloaded lends new users nothing but its stubs.
            if let Owner::Module(id, module) = &symbol.owner {
                let settled = state
                    .modules
                    .get(id)
                    .is_some_and(|m| m.info.state == ModuleState::Loaded);
                if !settled {
                    return state.registered.get(&**module)?.stub_symbol(name);
                }
            }
            return Some(symbol.clone());
        }
        if !self.options.host_symbols {
            return None;
        }
        let host = self.machine.host_symbol(name)?;
        Some(KernelSymbol {
            name: name.to_string(),
            address: host.address,
            size: host.size,
            kind: host.kind,
            owner: Owner::Host,
        })
    }

    /// Resolves a symbol of a module (any, local ones too) or of the kernel table.
    pub fn resolve(&self, name: &str) -> Option<u64> {
        if let Some(symbol) = self.lookup(name) {
            return Some(symbol.address);
        }
        let state = self.state();
        state
            .modules
            .values()
            .find_map(|m| find_symbol(&m.symbols, name))
    }

    /// The address of `name` in module `id`.
    pub fn symbol_address(&self, id: ModuleId, name: &str) -> Result<u64, LoadError> {
        let state = self.state();
        let module = state
            .modules
            .get(&id)
            .ok_or_else(|| LoadError::NoSuchModule(id.to_string()))?;
        find_symbol(&module.symbols, name).ok_or_else(|| LoadError::NoSuchSymbol(name.to_string()))
    }

    /// A typed function pointer to `name` in module `id`.
    ///
    /// # Safety
    /// `F` must be an `extern "C" fn` type matching the symbol's real signature, and the module
    /// must stay loaded while the pointer is used. Only meaningful for the native machine.
    pub unsafe fn function<F: Copy>(&self, id: ModuleId, name: &str) -> Result<F, LoadError> {
        assert_eq!(
            std::mem::size_of::<F>(),
            std::mem::size_of::<usize>(),
            "F must be a function pointer type"
        );
        let address = self.symbol_address(id, name)? as usize;
        // SAFETY: the caller promises F is a function pointer type of the right signature.
        Ok(unsafe { std::mem::transmute_copy::<usize, F>(&address) })
    }

    /// Calls the function at `address` with integer and string arguments.
    pub fn call(&self, address: u64, args: &[Arg]) -> Result<u64, LoadError> {
        let in_flight = self.count_call(&mut self.state(), address)?;
        self.call_counted(address, args, in_flight)
    }

    fn call_counted(
        &self,
        address: u64,
        args: &[Arg],
        _in_flight: CallGuard<'_>,
    ) -> Result<u64, LoadError> {
        let mut strings = Vec::new();
        let mut values = Vec::with_capacity(args.len());
        let result = (|| {
            for arg in args {
                values.push(match arg {
                    Arg::Int(v) => *v,
                    Arg::Str(s) => {
                        let mut bytes = s.as_bytes().to_vec();
                        bytes.push(0);
                        let at = self.machine.alloc_data(&bytes)?;
                        strings.push(at);
                        at
                    }
                });
            }
            self.machine
                .call(address, &values)
                .map_err(|e| self.locate_stop(e))
        })();
        for at in strings {
            self.machine.free_data(at);
        }
        result
    }

    /// Counts a call into the module holding `address` until the guard drops, so that the
    /// module is not unloaded under it; refuses calls into a module being unloaded.
    fn count_call(&self, state: &mut State, address: u64) -> Result<CallGuard<'_>, LoadError> {
        let module = state
            .modules
            .values_mut()
            .find(|m| (m.info.base..m.info.base + m.info.size).contains(&address));
        let Some(module) = module else {
            return Ok(CallGuard {
                kernel: self,
                module: None,
            });
        };
        if module.info.state == ModuleState::Unloading {
            return Err(LoadError::Busy {
                module: module.info.name.clone(),
                reason: "it is being unloaded".into(),
            });
        }
        module.calls_in_flight += 1;
        Ok(CallGuard {
            kernel: self,
            module: Some(module.info.id),
        })
    }

    /// Where `address` is: `module:symbol+offset` (the linker's areas as `module:*stubs*+off`,
    /// `module+offset` outside any symbol), `kernel:symbol+offset` in the kernel's exports or
    /// the machine's runtime; `None` elsewhere.
    pub fn describe_address(&self, address: u64) -> Option<String> {
        let state = self.state();
        let Some(module) = state
            .modules
            .values()
            .find(|m| (m.info.base..m.info.base + m.info.size).contains(&address))
        else {
            return self.describe_kernel_address(&state, address);
        };
        let section = module
            .info
            .sections
            .iter()
            .find(|s| (s.address..s.address + s.size).contains(&address));
        let name = &module.info.name;
        if let Some(area) = section.filter(|s| s.name.starts_with('*')) {
            let place = format!("{name}:{}+{:#x}", area.name, address - area.address);
            let stub = module.far_stubs.iter().rev().find(|(a, _)| *a <= address);
            return Some(match stub {
                Some((_, target)) if area.name == "*stubs*" => format!("{place} -> {target}"),
                _ => place,
            });
        }
        let symbol = module
            .symbols
            .iter()
            .filter(|s| s.address <= address && !s.name.is_empty())
            .filter(|s| section.is_none_or(|sec| *sec.name == *s.section))
            .filter(|s| s.size == 0 || address - s.address < s.size)
            .max_by_key(|s| (s.address, s.size));
        Some(match symbol {
            Some(s) => format!("{name}:{}+{:#x}", s.name, address - s.address),
            None => format!("{name}+{:#x}", address - module.info.base),
        })
    }

    fn describe_kernel_address(&self, state: &State, address: u64) -> Option<String> {
        let export = state
            .exports
            .values()
            .filter(|e| e.owner == Owner::Kernel && e.address <= address)
            .filter(|e| address < e.address + e.size.max(1))
            .max_by_key(|e| e.address)
            .map(|e| (e.name.clone(), e.address));
        let (name, start) = export.or_else(|| self.machine.host_symbol_at(address))?;
        Some(format!("kernel:{name}+{:#x}", address - start))
    }

    /// A call that stopped in the machine, reported with where it stopped.
    fn locate_stop(&self, error: MachineError) -> LoadError {
        match error {
            MachineError::Stopped(stop) => {
                let pc = match &stop {
                    Stop::Fault { pc, .. }
                    | Stop::Budget { pc, .. }
                    | Stop::Breakpoint { pc, .. }
                    | Stop::Stepped { pc } => Some(*pc),
                    _ => None,
                };
                let location = pc.map(|pc| {
                    self.describe_address(pc)
                        .unwrap_or_else(|| "outside every module".into())
                });
                LoadError::Stopped { stop, location }
            }
            other => LoadError::Machine(other),
        }
    }

    /// The machine's debugger: breakpoints, stepping, registers (the emulated machine's).
    pub fn debugger(&self) -> Result<&dyn Debugger, LoadError> {
        self.machine
            .debugger()
            .ok_or(LoadError::Machine(MachineError::NoDebugger))
    }

    /// Goes on with a call paused at a breakpoint: `steps` instructions, or to its end.
    pub fn resume(&self, steps: Option<u64>) -> Result<u64, LoadError> {
        self.debugger()?
            .resume(steps)
            .map_err(|e| self.locate_stop(e))
    }

    /// Calls a symbol by name (module symbols included).
    pub fn call_symbol(&self, name: &str, args: &[Arg]) -> Result<u64, LoadError> {
        // Resolved and counted at once, so the module cannot go away in between.
        let (address, in_flight) = {
            let mut state = self.state();
            let address = self
                .lookup_in(&state, name)
                .map(|s| s.address)
                .or_else(|| {
                    state
                        .modules
                        .values()
                        .find_map(|m| find_symbol(&m.symbols, name))
                })
                .ok_or_else(|| LoadError::NoSuchSymbol(name.to_string()))?;
            (address, self.count_call(&mut state, address)?)
        };
        self.call_counted(address, args, in_flight)
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        let ids: Vec<ModuleId> = self.state().modules.keys().rev().copied().collect();
        for id in ids {
            let fini = self
                .state()
                .modules
                .get(&id)
                .map(|m| m.fini_array.clone())
                .unwrap_or_default();
            for dtor in fini {
                let _ = self.machine.call(dtor, &[]);
            }
        }
    }
}

/// A call in flight into a module, counted until it returns.
struct CallGuard<'k> {
    kernel: &'k Kernel,
    module: Option<ModuleId>,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.module {
            if let Some(m) = self.kernel.state().modules.get_mut(&id) {
                m.calls_in_flight -= 1;
                m.last_used = Instant::now();
            }
        }
    }
}

/// A loaded module's record with its users filled in from the others' dependencies, and
/// its registration's stubs.
fn info_of(state: &State, id: ModuleId) -> Option<ModuleInfo> {
    let mut info = state.modules.get(&id)?.info.clone();
    info.users = state
        .modules
        .values()
        .filter(|m| m.dep_ids.contains(&id))
        .map(|m| m.info.name.clone())
        .collect();
    if let Some(registration) = state.registered.get(&info.name) {
        info.registered = true;
        info.stubs = registration.stubs.iter().map(|s| s.0.clone()).collect();
    }
    Some(info)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn find_symbol(symbols: &LinkedSymbols, name: &str) -> Option<u64> {
    symbols.find(name).map(|s| s.address)
}
