//! The kernel: its symbol table and the modules loaded into its machine.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use dlkm_linker::{
    CopyRequest, ExternalKind, ExternalSymbol, LayoutOptions, LinkOutput, LinkedSymbol, Object,
    SegmentKind,
};

use crate::error::{LoadError, MachineError, Stop};
use crate::machine::native::NativeMachine;
use crate::machine::{Debugger, Machine, Placement, Protection};
use crate::metadata::Metadata;
use sha2::{Digest, Sha256};

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
    /// Exported by a loaded module.
    Module(ModuleId, String),
    /// Found among the host's dynamic symbols (libc and friends).
    Host,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Kernel => write!(f, "kernel"),
            Owner::Module(id, name) => write!(f, "module {name} (id {id})"),
            Owner::Host => write!(f, "host"),
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
    Loaded,
    /// Its `_unload` and destructors are running; nothing new may start using it.
    Unloading,
}

impl std::fmt::Display for ModuleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModuleState::Loaded => "loaded",
            ModuleState::Unloading => "unloading",
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

/// Everything known about one loaded module.
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
    pub loaded_at: SystemTime,
    pub stubs_used: usize,
    pub got_relaxed: usize,
    pub copied: Vec<String>,
}

/// What the kernel may do on behalf of modules.
#[derive(Debug, Clone)]
pub struct KernelOptions {
    /// Resolve what no export provides against the host's dynamic symbols (libc, libm, …).
    pub host_symbols: bool,
    /// Host variables a module placed in the low 2 GiB may get a private copy of when its
    /// 32-bit references cannot reach them (see the README on `-fno-pic` modules).
    pub copyable: BTreeSet<String>,
}

impl Default for KernelOptions {
    fn default() -> Self {
        KernelOptions {
            host_symbols: true,
            copyable: ["stdin", "stdout", "stderr"]
                .into_iter()
                .map(String::from)
                .collect(),
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
    symbols: Vec<LinkedSymbol>,
    exports: Vec<String>,
    dep_ids: BTreeSet<ModuleId>,
    fini_array: Vec<u64>,
    /// The unload entry point's name and address.
    unload_entry: Option<(String, u64)>,
    /// Calls from the host running in it now.
    calls_in_flight: usize,
    metadata: Metadata,
    /// When it was last loaded, opened, closed or called.
    last_used: Instant,
}

#[derive(Default)]
struct State {
    exports: HashMap<String, KernelSymbol>,
    /// Interfaces the embedder exports, and their versions.
    interfaces: HashMap<String, u32>,
    modules: BTreeMap<ModuleId, Module>,
    next_id: u32,
    modpath: Vec<PathBuf>,
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
}

impl Kernel {
    /// A kernel whose modules run in this process; exports are what the embedder adds, then
    /// the host's dynamic symbols.
    pub fn native() -> Result<Kernel, LoadError> {
        Ok(Kernel::with_machine(
            Box::new(NativeMachine::new()),
            KernelOptions::default(),
        ))
    }

    /// A kernel whose modules run in the emulated machine for `arch` (aarch64, MIPS, MIPSel);
    /// its exports are the emulated C runtime's.
    #[cfg(feature = "emulated")]
    pub fn emulated(arch: dlkm_linker::ArchKind) -> Result<Kernel, LoadError> {
        let machine = crate::machine::emulated::EmulatedMachine::new(arch)?;
        Ok(Kernel::with_machine(
            Box::new(machine),
            KernelOptions::default(),
        ))
    }

    pub fn with_machine(machine: Box<dyn Machine>, options: KernelOptions) -> Kernel {
        Kernel {
            machine,
            options,
            state: Mutex::new(State {
                next_id: 1,
                ..State::default()
            }),
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

    /// Loads the module in the object file at `path`, after the modules its metadata says it
    /// depends on. Its name is the metadata's (`.modinfo`, `NAME.master` beside the object),
    /// else the file stem.
    pub fn load_path(&self, path: impl AsRef<Path>) -> Result<ModuleId, LoadError> {
        self.load_path_in_chain(path.as_ref(), &mut Vec::new())
    }

    /// Loads module `name` from the module path (`NAME.o` in its first directory that has it),
    /// or returns it if it is loaded already.
    pub fn load_name(&self, name: &str) -> Result<ModuleId, LoadError> {
        self.load_name_in_chain(name, &mut Vec::new())
    }

    /// Loads a module from the bytes of an object file.
    pub fn load_bytes(&self, name: &str, bytes: &[u8]) -> Result<ModuleId, LoadError> {
        self.load_object(name, None, bytes, &mut Vec::new())
    }

    /// Adds a directory to the module path, searched by [`Kernel::load_name`] and for
    /// dependencies.
    pub fn add_modpath(&self, dir: impl Into<PathBuf>) -> Result<(), LoadError> {
        let dir = dir.into();
        if !dir.is_dir() {
            return Err(LoadError::Io {
                path: dir,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
            });
        }
        self.state().modpath.push(dir);
        Ok(())
    }

    pub fn modpath(&self) -> Vec<PathBuf> {
        self.state().modpath.clone()
    }

    /// Where `NAME.o` is on the module path.
    pub fn find_object(&self, name: &str) -> Option<PathBuf> {
        let file = format!("{name}.o");
        self.state()
            .modpath
            .iter()
            .map(|dir| dir.join(&file))
            .find(|path| path.is_file())
    }

    /// Exports an interface (a name and a version) that modules may ask for in their
    /// metadata (`interface=NAME=VERSION`); a module asking for a newer one is refused.
    pub fn export_interface(&self, name: &str, version: u32) {
        self.state().interfaces.insert(name.to_string(), version);
    }

    fn load_name_in_chain(
        &self,
        name: &str,
        chain: &mut Vec<String>,
    ) -> Result<ModuleId, LoadError> {
        if let Some(id) = self.find_module(name) {
            return Ok(id);
        }
        let path = self
            .find_object(name)
            .ok_or_else(|| LoadError::NotOnModulePath {
                name: name.to_string(),
                searched: self.modpath(),
            })?;
        self.load_path_in_chain(&path, chain)
    }

    fn load_path_in_chain(
        &self,
        path: &Path,
        chain: &mut Vec<String>,
    ) -> Result<ModuleId, LoadError> {
        let io = |source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let bytes = std::fs::read(path).map_err(io)?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        self.load_object(&name, Some(path.to_path_buf()), &bytes, chain)
    }

    /// The module's metadata: its `.modinfo` section, overridden by `STEM.master` beside it.
    fn metadata(
        &self,
        stem: &str,
        path: Option<&Path>,
        object: &Object,
    ) -> Result<Metadata, LoadError> {
        let modinfo = object
            .sections
            .iter()
            .find(|s| s.name == ".modinfo")
            .map(|s| s.data);
        let master_path = path.map(|p| p.with_file_name(format!("{stem}.master")));
        let master_text = match &master_path {
            Some(p) if p.is_file() => {
                Some(std::fs::read_to_string(p).map_err(|source| LoadError::Io {
                    path: p.clone(),
                    source,
                })?)
            }
            _ => None,
        };
        let master = master_path.as_deref().zip(master_text.as_deref());
        Ok(Metadata::parse(stem, &object.name, modinfo, master)?)
    }

    /// Loads what `metadata` says the module depends on, first; a module already on `chain`
    /// (being loaded for a module that depends on it) closes a cycle.
    fn load_dependencies(
        &self,
        metadata: &Metadata,
        chain: &mut Vec<String>,
    ) -> Result<(), LoadError> {
        chain.push(metadata.name.clone());
        let result = metadata.depend.iter().try_for_each(|dep| {
            if let Some(start) = chain.iter().position(|m| m == dep) {
                let mut cycle = chain[start..].to_vec();
                cycle.push(dep.clone());
                return Err(LoadError::DependencyCycle(cycle.join(" -> ")));
            }
            self.load_name_in_chain(dep, chain)
                .map(drop)
                .map_err(|source| LoadError::Dependency {
                    module: metadata.name.clone(),
                    dependency: dep.clone(),
                    source: Box::new(source),
                })
        });
        chain.pop();
        result
    }

    /// Refuses a module asking for an interface the kernel does not export at the version.
    fn check_interfaces(&self, state: &State, metadata: &Metadata) -> Result<(), LoadError> {
        for (interface, wanted) in &metadata.interface {
            let exported = state.interfaces.get(interface).copied();
            if exported.is_none_or(|v| v < *wanted) {
                return Err(LoadError::Interface {
                    module: metadata.name.clone(),
                    interface: interface.clone(),
                    wanted: *wanted,
                    exported,
                });
            }
        }
        Ok(())
    }

    fn load_object(
        &self,
        stem: &str,
        path: Option<PathBuf>,
        bytes: &[u8],
        chain: &mut Vec<String>,
    ) -> Result<ModuleId, LoadError> {
        let object_name = path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| stem.to_string());
        let object = Object::parse(&object_name, bytes)?;
        if object.arch != self.machine.arch() {
            return Err(LoadError::WrongArch {
                module: stem.to_string(),
                object: object_name,
                object_arch: object.arch.name(),
                kernel_arch: self.machine.arch().name(),
            });
        }
        let metadata = self.metadata(stem, path.as_deref(), &object)?;
        let name = metadata.name.as_str();
        if let Some(expected) = metadata.checksum {
            let actual: [u8; 32] = Sha256::digest(bytes).into();
            if actual != expected {
                return Err(LoadError::Checksum {
                    module: name.to_string(),
                    object: object_name,
                    expected: hex(&expected),
                    actual: hex(&actual),
                });
            }
        }
        // Refused before any dependency is loaded for it.
        self.check_interfaces(&self.state(), &metadata)?;
        self.load_dependencies(&metadata, chain)?;
        let mut state = self.state();
        if state.modules.values().any(|m| m.info.name == name) {
            return Err(LoadError::AlreadyLoaded(name.to_string()));
        }
        self.check_exports(&state, name, &object)?;

        let mut options = LayoutOptions {
            page_size: self.machine.page_size(),
            ..LayoutOptions::default()
        };
        let mut layout = dlkm_linker::layout(&object, &options)?;
        let (placement, copies) = self.plan_placement(&state, &object, layout.needs_low_address);
        if !copies.is_empty() {
            options.copies = copies;
            layout = dlkm_linker::layout(&object, &options)?;
        }
        let size = layout.mapped_size();
        let base = match self.machine.reserve(size, layout.align, placement) {
            Err(_) if !layout.needs_low_address && placement == Placement::Low2GiB => {
                let near = Placement::Near(self.machine.kernel_anchor());
                self.machine.reserve(size, layout.align, near)?
            }
            reserved => reserved?,
        };
        let published =
            self.publish(&state, &object, &layout, base)
                .and_then(|(output, imports)| {
                    self.run_constructors(&output).map(|()| (output, imports))
                });
        let (output, mut dep_ids) = match published {
            Ok(done) => done,
            Err(e) => {
                let _ = self.machine.release(base);
                return Err(e);
            }
        };

        // Explicit dependencies count as much as those from symbol use.
        dep_ids.extend(
            state
                .modules
                .values()
                .filter(|m| metadata.depend.contains(&m.info.name))
                .map(|m| m.info.id),
        );
        let id = ModuleId(state.next_id);
        state.next_id += 1;
        let module = self.register(
            id,
            &metadata,
            path,
            &layout,
            &object,
            output,
            dep_ids,
            options.copies.iter().map(|c| c.name.clone()).collect(),
        );
        let load_name = metadata.entry_point("load");
        let load_entry = find_symbol(&module.symbols, &load_name);
        self.add_module(&mut state, module);
        drop(state);

        if let Some(entry) = load_entry {
            let code = self
                .machine
                .call(entry, &[0])
                .map_err(|e| self.locate_stop(e))? as i32 as i64;
            if code != 0 {
                self.discard(id);
                return Err(LoadError::EntryFailed {
                    module: name.to_string(),
                    entry: load_name,
                    code,
                });
            }
        }
        Ok(id)
    }

    /// Duplicate exports are refused before anything is placed.
    fn check_exports(&self, state: &State, name: &str, object: &Object) -> Result<(), LoadError> {
        for symbol in object.exported_symbols() {
            if let Some(existing) = state.exports.get(symbol.name) {
                return Err(LoadError::DuplicateExport {
                    module: name.to_string(),
                    symbol: symbol.name.to_string(),
                    owner: existing.owner.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Where the module goes, and which kernel variables it gets a copy of.
    ///
    /// Variables reached with 32-bit references (gcc's PIE code assumes copy relocations, and
    /// `-fno-pic` code uses nothing else) must be within 2 GiB of the module. A module that
    /// needs the low 2 GiB for its own absolute addresses can only get copies of the
    /// variables the kernel allows to be copied. A module that reaches far variables is placed
    /// next to the first of them, so it uses the real one. Any other module goes below 2 GiB
    /// too, where `-fno-pic` modules loaded later can reach its data.
    fn plan_placement(
        &self,
        state: &State,
        object: &Object,
        needs_low_address: bool,
    ) -> (Placement, Vec<CopyRequest>) {
        let far_data: Vec<KernelSymbol> = object
            .short_reach_imports()
            .into_iter()
            .filter_map(|name| self.lookup_in(state, name))
            .filter(|s| s.kind != ExternalKind::Function && s.address >= LOW_LIMIT)
            .collect();
        if !needs_low_address {
            return match far_data.first() {
                Some(symbol) => (Placement::Near(symbol.address), Vec::new()),
                None => (Placement::Low2GiB, Vec::new()),
            };
        }
        let copies = far_data
            .into_iter()
            .filter(|s| s.size > 0 && self.options.copyable.contains(&s.name))
            .map(|s| CopyRequest {
                align: s.size.next_power_of_two().min(16),
                size: s.size,
                name: s.name,
            })
            .collect();
        (Placement::Low2GiB, copies)
    }

    /// Links at `base`, writes the image, fills copies and sets protections.
    fn publish(
        &self,
        state: &State,
        object: &Object,
        layout: &dlkm_linker::Layout,
        base: u64,
    ) -> Result<(LinkOutput, BTreeSet<ModuleId>), LoadError> {
        let mut owners = BTreeSet::new();
        let mut resolver = |name: &str| {
            let symbol = self.lookup_in(state, name)?;
            if let Owner::Module(id, _) = symbol.owner {
                owners.insert(id);
            }
            Some(ExternalSymbol {
                address: symbol.address,
                size: symbol.size,
                kind: symbol.kind,
            })
        };
        let (mut image, output) = dlkm_linker::link(object, layout, base, &mut resolver)?;
        for (copy, offset) in &layout.copies {
            let Some(symbol) = self.lookup_in(state, &copy.name) else {
                continue;
            };
            let bytes = self.machine.read(symbol.address, copy.size)?;
            let at = *offset as usize;
            image[at..at + bytes.len()].copy_from_slice(&bytes);
        }
        self.machine.write(base, &image)?;
        for segment in &layout.segments {
            let protection = match segment.kind {
                SegmentKind::Text => Protection::ReadExecute,
                SegmentKind::ReadOnly => Protection::ReadOnly,
                SegmentKind::Writable => Protection::ReadWrite,
            };
            self.machine
                .protect(base + segment.offset, segment.size, protection)?;
        }
        Ok((output, owners))
    }

    fn run_constructors(&self, output: &LinkOutput) -> Result<(), LoadError> {
        for &ctor in &output.init_array {
            self.machine.call(ctor, &[])?;
        }
        Ok(())
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one call site, all parts of one record"
    )]
    fn register(
        &self,
        id: ModuleId,
        metadata: &Metadata,
        path: Option<PathBuf>,
        layout: &dlkm_linker::Layout,
        object: &Object,
        output: LinkOutput,
        dep_ids: BTreeSet<ModuleId>,
        copied: Vec<String>,
    ) -> Module {
        let base = output.base;
        let sections = layout
            .map_entries(object)
            .into_iter()
            .map(|(name, offset, size)| SectionInfo {
                name,
                address: base + offset,
                size,
            })
            .collect();
        let (load, unload) = (metadata.entry_point("load"), metadata.entry_point("unload"));
        let mut entry_points: Vec<(String, u64)> = [&load, &unload]
            .iter()
            .filter_map(|e| Some((e.to_string(), find_symbol(&output.symbols, e)?)))
            .collect();
        entry_points.extend(output.init_array.iter().map(|&a| (".init_array".into(), a)));
        entry_points.extend(output.fini_array.iter().map(|&a| (".fini_array".into(), a)));
        let exports = output
            .symbols
            .iter()
            .filter(|s| s.exported)
            .map(|s| s.name.clone())
            .collect();
        Module {
            info: ModuleInfo {
                id,
                name: metadata.name.clone(),
                path,
                module_type: metadata.module_type.as_str(),
                version: metadata.version,
                state: ModuleState::Loaded,
                refs: 0,
                holds: 0,
                opens: 0,
                auto_loaded: false,
                deps: Vec::new(),
                users: Vec::new(),
                base,
                size: layout.image_size,
                sections,
                entry_points,
                loaded_at: SystemTime::now(),
                stubs_used: output.stubs_used,
                got_relaxed: output.got_relaxed,
                copied,
            },
            unload_entry: find_symbol(&output.symbols, &unload).map(|a| (unload, a)),
            fini_array: output.fini_array,
            calls_in_flight: 0,
            metadata: metadata.clone(),
            last_used: Instant::now(),
            symbols: output.symbols,
            exports,
            dep_ids,
        }
    }

    fn add_module(&self, state: &mut State, mut module: Module) {
        let id = module.info.id;
        for symbol in module.symbols.iter().filter(|s| s.exported) {
            state.exports.insert(
                symbol.name.clone(),
                KernelSymbol {
                    name: symbol.name.clone(),
                    address: symbol.address,
                    size: symbol.size,
                    kind: match symbol.ty {
                        dlkm_linker::SymbolType::Function => ExternalKind::Function,
                        dlkm_linker::SymbolType::Object => ExternalKind::Data,
                        _ => ExternalKind::Unknown,
                    },
                    owner: Owner::Module(id, module.info.name.clone()),
                },
            );
        }
        module.info.deps = module
            .dep_ids
            .iter()
            .filter_map(|d| state.modules.get(d).map(|m| m.info.name.clone()))
            .collect();
        for dep in &module.dep_ids {
            if let Some(m) = state.modules.get_mut(dep) {
                m.info.refs += 1;
            }
        }
        state.modules.insert(id, module);
    }

    /// Removes a module without running its `_unload`: the rollback of a failed load.
    fn discard(&self, id: ModuleId) {
        let mut state = self.state();
        if let Some(module) = self.remove_module(&mut state, id) {
            let _ = self.machine.release(module.info.base);
        }
    }

    fn remove_module(&self, state: &mut State, id: ModuleId) -> Option<Module> {
        let module = state.modules.remove(&id)?;
        for name in &module.exports {
            state.exports.remove(name);
        }
        for dep in &module.dep_ids {
            if let Some(m) = state.modules.get_mut(dep) {
                m.info.refs = m.info.refs.saturating_sub(1);
            }
        }
        Some(module)
    }

    /// Unloads a module: refuses while others depend on it, runs `_unload` (a non-zero result
    /// vetoes), then the destructors, and releases its memory.
    pub fn unload(&self, id: ModuleId) -> Result<(), LoadError> {
        let (name, unload_entry, fini) = {
            let mut state = self.state();
            let module = state
                .modules
                .get(&id)
                .ok_or_else(|| LoadError::NoSuchModule(id.to_string()))?;
            if module.info.refs > 0 {
                let users = info_of(&state, id).map(|i| i.users).unwrap_or_default();
                return Err(LoadError::Busy {
                    module: module.info.name.clone(),
                    reason: format!("used by {}", users.join(", ")),
                });
            }
            if module.info.holds > 0 {
                return Err(LoadError::Busy {
                    module: module.info.name.clone(),
                    reason: format!("held {} time(s)", module.info.holds),
                });
            }
            if module.info.state == ModuleState::Unloading {
                return Err(LoadError::Busy {
                    module: module.info.name.clone(),
                    reason: "it is being unloaded".into(),
                });
            }
            if module.info.opens > 0 {
                return Err(LoadError::Busy {
                    module: module.info.name.clone(),
                    reason: format!("{} device(s) open", module.info.opens),
                });
            }
            if module.calls_in_flight > 0 {
                return Err(LoadError::Busy {
                    module: module.info.name.clone(),
                    reason: format!("{} call(s) running in it", module.calls_in_flight),
                });
            }
            let module = state.modules.get_mut(&id).expect("looked up above");
            // From here until it is gone (or its _unload vetoes), nothing may hold it, load
            // against it or unload it twice.
            module.info.state = ModuleState::Unloading;
            (
                module.info.name.clone(),
                module.unload_entry.clone(),
                module.fini_array.clone(),
            )
        };
        let vetoed = |error: LoadError| {
            if let Some(m) = self.state().modules.get_mut(&id) {
                m.info.state = ModuleState::Loaded;
            }
            error
        };
        if let Some((entry, address)) = unload_entry {
            let code = self
                .machine
                .call(address, &[0])
                .map_err(|e| vetoed(self.locate_stop(e)))? as i32 as i64;
            if code != 0 {
                return Err(vetoed(LoadError::EntryFailed {
                    module: name,
                    entry,
                    code,
                }));
            }
        }
        for dtor in fini {
            self.machine
                .call(dtor, &[])
                .map_err(|e| self.locate_stop(e))?;
        }
        let mut state = self.state();
        if let Some(module) = self.remove_module(&mut state, id) {
            self.machine.release(module.info.base)?;
        }
        Ok(())
    }

    /// Opens minor device `minor` of driver `name`, loading the driver from the module path
    /// on its first open: calls its `PREFIX_open(minor)`. While any device is open the driver
    /// is busy. Returns the driver's open count.
    pub fn open(&self, name: &str, minor: u64) -> Result<usize, LoadError> {
        let already = self.find_module(name);
        let id = self.load_name(name)?;
        if already.is_none() {
            if let Some(m) = self.state().modules.get_mut(&id) {
                m.info.auto_loaded = true;
            }
        }
        self.run_driver_entry(id, name, "open", minor)?;
        self.count_opens(id, name, |opens| *opens += 1)
    }

    /// Closes minor device `minor` of driver `name`: calls its `PREFIX_close(minor)`. Returns
    /// the driver's open count.
    pub fn close(&self, name: &str, minor: u64) -> Result<usize, LoadError> {
        let id = self
            .find_module(name)
            .ok_or_else(|| LoadError::NoSuchModule(name.to_string()))?;
        if self.module_info(id).is_some_and(|m| m.opens == 0) {
            return Err(LoadError::NotOpen(name.to_string()));
        }
        self.run_driver_entry(id, name, "close", minor)?;
        self.count_opens(id, name, |opens| *opens = opens.saturating_sub(1))
    }

    fn count_opens(
        &self,
        id: ModuleId,
        name: &str,
        change: impl FnOnce(&mut usize),
    ) -> Result<usize, LoadError> {
        let mut state = self.state();
        let module = state
            .modules
            .get_mut(&id)
            .ok_or_else(|| LoadError::NoSuchModule(name.to_string()))?;
        change(&mut module.info.opens);
        module.last_used = Instant::now();
        Ok(module.info.opens)
    }

    /// Runs a driver's entry point `what` (`open`, `close`, by its prefix) for `minor`, if the
    /// driver has one; a non-zero result is the operation's failure.
    fn run_driver_entry(
        &self,
        id: ModuleId,
        name: &str,
        what: &str,
        minor: u64,
    ) -> Result<(), LoadError> {
        let mut state = self.state();
        let module = state
            .modules
            .get(&id)
            .ok_or_else(|| LoadError::NoSuchModule(name.to_string()))?;
        if module.info.module_type != "driver" {
            return Err(LoadError::NotADriver(module.info.name.clone()));
        }
        let entry = module.metadata.entry_point(what);
        let Some(address) = find_symbol(&module.symbols, &entry) else {
            return Ok(());
        };
        let guard = self.count_call(&mut state, address)?;
        drop(state);
        let code = self.call_counted(address, &[Arg::Int(minor)], guard)? as i32 as i64;
        if code != 0 {
            return Err(LoadError::EntryFailed {
                module: name.to_string(),
                entry,
                code,
            });
        }
        Ok(())
    }

    /// Takes a reference on a module: it is not unloaded until released.
    pub fn hold(&self, id: ModuleId) -> Result<usize, LoadError> {
        let mut state = self.state();
        let module = state
            .modules
            .get_mut(&id)
            .ok_or_else(|| LoadError::NoSuchModule(id.to_string()))?;
        if module.info.state == ModuleState::Unloading {
            return Err(LoadError::Busy {
                module: module.info.name.clone(),
                reason: "it is being unloaded".into(),
            });
        }
        module.info.holds += 1;
        Ok(module.info.holds)
    }

    /// Gives back a reference taken with [`Kernel::hold`].
    pub fn release(&self, id: ModuleId) -> Result<usize, LoadError> {
        let mut state = self.state();
        let module = state
            .modules
            .get_mut(&id)
            .ok_or_else(|| LoadError::NoSuchModule(id.to_string()))?;
        if module.info.holds == 0 {
            return Err(LoadError::NotHeld(module.info.name.clone()));
        }
        module.info.holds -= 1;
        Ok(module.info.holds)
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

    /// Starts the auto-unloader: a thread that, every `tick`, unloads the auto-loaded
    /// modules that are unreferenced, unheld, closed, not running and idle for their
    /// `unload_delay` (`default_delay` when their metadata gives none; `-1`, or a `None`
    /// default, never). It ends when the kernel is dropped.
    pub fn start_auto_unload(
        kernel: &Arc<Kernel>,
        default_delay: Option<Duration>,
        tick: Duration,
    ) -> std::thread::JoinHandle<()> {
        let kernel = Arc::downgrade(kernel);
        std::thread::spawn(move || loop {
            std::thread::sleep(tick);
            let Some(kernel) = kernel.upgrade() else {
                return;
            };
            kernel.unload_idle(default_delay);
        })
    }

    /// Unloads the auto-loaded modules idle for their unload delay; returns their names.
    pub fn unload_idle(&self, default_delay: Option<Duration>) -> Vec<String> {
        let idle: Vec<(ModuleId, String)> = {
            let state = self.state();
            state
                .modules
                .values()
                .filter(|m| m.info.auto_loaded && m.info.state == ModuleState::Loaded)
                .filter(|m| m.info.refs == 0 && m.info.holds == 0 && m.info.opens == 0)
                .filter(|m| m.calls_in_flight == 0)
                .filter(|m| {
                    let delay = match m.metadata.unload_delay {
                        Some(-1) => None,
                        Some(seconds) => Some(Duration::from_secs(seconds.max(0) as u64)),
                        None => default_delay,
                    };
                    delay.is_some_and(|d| m.last_used.elapsed() >= d)
                })
                .map(|m| (m.info.id, m.info.name.clone()))
                .collect()
        };
        // A module that became busy since, or whose _unload vetoes, stays.
        idle.into_iter()
            .filter(|(id, _)| self.unload(*id).is_ok())
            .map(|(_, name)| name)
            .collect()
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

    pub fn modules(&self) -> Vec<ModuleInfo> {
        let state = self.state();
        state
            .modules
            .keys()
            .filter_map(|&id| info_of(&state, id))
            .collect()
    }

    pub fn module_info(&self, id: ModuleId) -> Option<ModuleInfo> {
        info_of(&self.state(), id)
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
    pub fn module_symbols(&self, id: ModuleId) -> Option<Vec<LinkedSymbol>> {
        let state = self.state();
        let mut symbols = state.modules.get(&id)?.symbols.clone();
        symbols.sort_by(|a, b| a.address.cmp(&b.address).then(a.name.cmp(&b.name)));
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
            // A module being unloaded lends nothing to new users.
            if let Owner::Module(id, _) = &symbol.owner {
                let unloading = state
                    .modules
                    .get(id)
                    .is_some_and(|m| m.info.state == ModuleState::Unloading);
                if unloading {
                    return None;
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
            return Some(format!(
                "{name}:{}+{:#x}",
                area.name,
                address - area.address
            ));
        }
        let symbol = module
            .symbols
            .iter()
            .filter(|s| s.address <= address && !s.name.is_empty())
            .filter(|s| section.is_none_or(|sec| sec.name == s.section))
            .filter(|s| s.size == 0 || address < s.address + s.size)
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

/// A module's record with its users filled in from the others' dependencies.
fn info_of(state: &State, id: ModuleId) -> Option<ModuleInfo> {
    let mut info = state.modules.get(&id)?.info.clone();
    info.users = state
        .modules
        .values()
        .filter(|m| m.dep_ids.contains(&id))
        .map(|m| m.info.name.clone())
        .collect();
    Some(info)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn find_symbol(symbols: &[LinkedSymbol], name: &str) -> Option<u64> {
    symbols.iter().find(|s| s.name == name).map(|s| s.address)
}
