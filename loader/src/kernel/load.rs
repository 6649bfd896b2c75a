//! Loading: the module path, metadata, dependencies and interfaces, placement, linking,
//! publishing, constructors and `_load`, and undoing all of it when a step fails.

use std::cell::RefCell;

use super::image_cache::FileStamp;
use super::*;

impl Kernel {
    /// Loads the module in the object file at `path`, after the modules its metadata says it
    /// depends on. Its name is the metadata's (`.modinfo`, `NAME.master` beside the object),
    /// else the file stem.
    pub fn load_path(&self, path: impl AsRef<Path>) -> Result<ModuleId, LoadError> {
        let _serial = self.load_lock.lock();
        self.load_path_in_chain(path.as_ref(), &mut Vec::new())
    }

    /// Loads module `name` from the module path (`NAME.o` in its first directory that has it),
    /// or returns it if it is loaded already.
    pub fn load_name(&self, name: &str) -> Result<ModuleId, LoadError> {
        let _serial = self.load_lock.lock();
        self.load_name_in_chain(name, &mut Vec::new())
    }

    /// Loads a module from the bytes of an object file.
    pub fn load_bytes(&self, name: &str, bytes: &[u8]) -> Result<ModuleId, LoadError> {
        if self.options.modpath_only {
            return Err(LoadError::OutsideModulePath {
                object: format!("the bytes given for {name}"),
                modpath: self.modpath(),
            });
        }
        let _serial = self.load_lock.lock();
        self.load_object(name, None, bytes, &mut Vec::new())
    }

    /// Loads the modules a boot list names, in order, as UnixWare's idmodload did at boot: one
    /// module a line, by name (found on the module path or registered) or by path (any line
    /// with a `/` or ending in `.o`), `#` starting a comment. Stops at the first that fails,
    /// naming its line; those loaded before stay.
    pub fn load_boot_list(&self, path: impl AsRef<Path>) -> Result<Vec<ModuleId>, LoadError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut loaded = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            let result = if entry.contains('/') || entry.ends_with(".o") {
                self.load_path(entry)
            } else {
                self.load_name(entry)
            };
            loaded.push(result.map_err(|source| LoadError::BootList {
                path: path.to_path_buf(),
                line: index + 1,
                source: Box::new(source),
            })?);
        }
        Ok(loaded)
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

    /// With [`KernelOptions::modpath_only`], refuses an object outside the module path (its
    /// real path, links resolved, must be inside one of the directories).
    pub(super) fn check_trusted(&self, path: &Path) -> Result<(), LoadError> {
        if !self.options.modpath_only {
            return Ok(());
        }
        let modpath = self.modpath();
        let real = std::fs::canonicalize(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let inside = modpath
            .iter()
            .filter_map(|dir| std::fs::canonicalize(dir).ok())
            .any(|dir| real.starts_with(dir));
        if inside {
            Ok(())
        } else {
            Err(LoadError::OutsideModulePath {
                object: path.display().to_string(),
                modpath,
            })
        }
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

    pub(super) fn load_name_in_chain(
        &self,
        name: &str,
        chain: &mut Vec<String>,
    ) -> Result<ModuleId, LoadError> {
        if let Some(id) = self.find_module(name) {
            return Ok(id);
        }
        let registered = self.state().registered.get(name).map(|r| r.path.clone());
        let path = registered
            .or_else(|| self.find_object(name))
            .ok_or_else(|| LoadError::NotOnModulePath {
                name: name.to_string(),
                searched: self.modpath(),
            })?;
        self.load_path_in_chain(&path, chain)
    }

    pub(super) fn load_path_in_chain(
        &self,
        path: &Path,
        chain: &mut Vec<String>,
    ) -> Result<ModuleId, LoadError> {
        self.check_trusted(path)?;
        if let Some(loaded) = self.load_cached(path, chain).transpose() {
            return loaded;
        }
        let io = |source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let (bytes, metadata) =
            crate::object_file::read_object(path, &self.read_buffer).map_err(io)?;
        let file = ObjectFile {
            path: path.to_path_buf(),
            stamp: FileStamp::from_metadata(&metadata),
        };
        let loaded = self.load_object(&stem_of(path), Some(file), &bytes, chain);
        self.read_buffer.recycle(bytes);
        loaded
    }

    /// The module's metadata: its `.modinfo` section, overridden by `STEM.master` beside it.
    pub(super) fn metadata(
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
        Self::metadata_from(stem, &object.name, path, modinfo)
    }

    /// The metadata of the object `object_name` (at `path`) whose `.modinfo` holds
    /// `modinfo`, with `STEM.master` beside it.
    pub(super) fn metadata_from(
        stem: &str,
        object_name: &str,
        path: Option<&Path>,
        modinfo: Option<&[u8]>,
    ) -> Result<Metadata, LoadError> {
        let master_path = path.map(|p| master_path(p, stem));
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
        Ok(Metadata::parse(stem, object_name, modinfo, master)?)
    }

    /// Loads what `metadata` says the module depends on, first; a module already on `chain`
    /// (being loaded for a module that depends on it) closes a cycle.
    pub(super) fn load_dependencies(
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
    pub(super) fn check_interfaces(
        &self,
        state: &State,
        metadata: &Metadata,
    ) -> Result<(), LoadError> {
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

    pub(super) fn load_object(
        &self,
        stem: &str,
        file: Option<ObjectFile>,
        bytes: &[u8],
        chain: &mut Vec<String>,
    ) -> Result<ModuleId, LoadError> {
        let path = file.as_ref().map(|f| f.path.as_path());
        let object_name = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| stem.to_string());
        let object = Object::parse(&object_name, bytes)?;
        self.check_arch(stem, &object_name, &object)?;
        let metadata = self.metadata(stem, path, &object)?;
        let result = self.load_module(&object_name, file, bytes, &object, &metadata, chain);
        self.record_outcome(&metadata.name, result.as_ref().err());
        result
    }

    pub(super) fn check_arch(
        &self,
        stem: &str,
        object_name: &str,
        object: &Object,
    ) -> Result<(), LoadError> {
        if object.arch != self.machine.arch() {
            return Err(LoadError::WrongArch {
                module: stem.to_string(),
                object: object_name.to_string(),
                object_arch: object.arch.name(),
                kernel_arch: self.machine.arch().name(),
            });
        }
        Ok(())
    }

    /// A registered module remembers why its last load failed, until one succeeds.
    pub(super) fn record_outcome(&self, name: &str, failure: Option<&LoadError>) {
        let mut state = self.state();
        if failure.is_some() && state.modules.values().any(|m| m.info.name == name) {
            return;
        }
        if let Some(registration) = state.registered.get_mut(name) {
            registration.failure = failure.map(|e| e.to_string());
        }
    }

    pub(super) fn verify_checksum(
        metadata: &Metadata,
        object_name: &str,
        bytes: &[u8],
    ) -> Result<(), LoadError> {
        let Some(expected) = metadata.checksum else {
            return Ok(());
        };
        let actual: [u8; 32] = Sha256::digest(bytes).into();
        if actual != expected {
            return Err(LoadError::Checksum {
                module: metadata.name.clone(),
                object: object_name.to_string(),
                expected: hex(&expected),
                actual: hex(&actual),
            });
        }
        Ok(())
    }

    pub(super) fn load_module(
        &self,
        object_name: &str,
        file: Option<ObjectFile>,
        bytes: &[u8],
        object: &Object,
        metadata: &Metadata,
        chain: &mut Vec<String>,
    ) -> Result<ModuleId, LoadError> {
        Self::verify_checksum(metadata, object_name, bytes)?;
        let state = self.prepare(metadata, chain)?;
        let exports = object.exported_symbols().map(|s| s.name);
        self.check_exports(&state, &metadata.name, exports)?;
        let placed = self.place(&state, &metadata.name, file.as_ref(), bytes, object)?;
        self.install(state, metadata, file.map(|f| f.path), placed)
    }

    /// Refuses a module asking for interfaces the kernel lacks, loads its dependencies, and
    /// locks the state for placing it, unless a module of its name is loaded already.
    pub(super) fn prepare(
        &self,
        metadata: &Metadata,
        chain: &mut Vec<String>,
    ) -> Result<MutexGuard<'_, State>, LoadError> {
        // Refused before any dependency is loaded for it.
        self.check_interfaces(&self.state(), metadata)?;
        self.load_dependencies(metadata, chain)?;
        let state = self.state();
        if state.modules.values().any(|m| m.info.name == metadata.name) {
            return Err(LoadError::AlreadyLoaded(metadata.name.clone()));
        }
        Ok(state)
    }

    /// Lays out, places, links and publishes `object`; keeps the result in the image cache.
    fn place(
        &self,
        state: &State,
        name: &str,
        file: Option<&ObjectFile>,
        bytes: &[u8],
        object: &Object,
    ) -> Result<Placed, LoadError> {
        let mut options = LayoutOptions {
            page_size: self.machine.page_size(),
            ..LayoutOptions::default()
        };
        let mut layout = dlkm_linker::layout(object, &options)?;
        let (placement, copies) = self.plan_placement(state, object, layout.needs_low_address);
        if !copies.is_empty() {
            options.copies = copies;
            layout = dlkm_linker::layout(object, &options)?;
        }
        let size = layout.mapped_size();
        let base = match self.machine.reserve(size, layout.align, placement) {
            Err(_) if !layout.needs_low_address && placement == Placement::Low2GiB => {
                let near = Placement::Near(self.machine.kernel_anchor());
                self.machine.reserve(size, layout.align, near)?
            }
            reserved => reserved?,
        };
        let (output, imports) = match self.publish(state, object, &layout, base) {
            Ok(done) => done,
            Err(e) => {
                let _ = self.machine.release(base);
                return Err(e);
            }
        };
        let make_debug_object = |eh_frames: &[&[u8]]| -> Option<crate::DebugObjectBytes> {
            let debug = dlkm_linker::debug_object(object, &layout, &output, eh_frames, true);
            Some(Box::new(debug.ok()?.bytes))
        };
        // An image kept in the cache has its debug object made for the entry already.
        let kept = file.and_then(|file| {
            let kept = KeptObject {
                path: &file.path,
                stamp: file.stamp?,
                object,
            };
            self.keep_image(&kept, &layout, &output, &make_debug_object)
        });
        let kept = RefCell::new(kept);
        let debug_object = |eh_frames: &[&[u8]]| {
            let kept = kept.borrow_mut().take();
            kept.or_else(|| make_debug_object(eh_frames))
        };
        // Debuggers and the unwinder learn of it before any of its code runs.
        self.machine.module_published(&PublishedModule {
            name,
            base,
            eh_frames: &layout.eh_frames,
            debug_object: &debug_object,
        });
        let lines = lines::ModuleLines::keep(name, object, bytes, &layout, &output);
        Ok(Placed {
            base,
            image_size: layout.image_size,
            sections: sections_at(base, layout.map_entries(object)),
            far_stubs: stubs_at(base, layout.stub_targets(object)),
            output,
            imports,
            copied: options.copies.iter().map(|c| c.name.clone()).collect(),
            lines,
            from_image_cache: false,
        })
    }

    /// Numbers the placed module, enters it and its exports in the kernel, and runs its
    /// constructors and `_load`; undoes all of it if they fail.
    pub(super) fn install(
        &self,
        mut state: MutexGuard<'_, State>,
        metadata: &Metadata,
        path: Option<PathBuf>,
        mut placed: Placed,
    ) -> Result<ModuleId, LoadError> {
        let name = metadata.name.as_str();
        // Explicit dependencies count as much as those from symbol use.
        placed.imports.modules.extend(
            state
                .modules
                .values()
                .filter(|m| metadata.depend.contains(&m.info.name))
                .map(|m| m.info.id),
        );
        let id = match state.registered.get(name) {
            Some(registration) => registration.id,
            None => {
                state.next_id += 1;
                ModuleId(state.next_id - 1)
            }
        };
        let init_array = placed.output.init_array.clone();
        let module = self.new_module(id, metadata, path, placed);
        let load_name = metadata.entry_point("load");
        let load_entry = module.entry_point(&load_name);
        self.add_module(&mut state, module);
        drop(state);

        // Constructors and _load run with nothing locked: they may call through stubs.
        let ran = self
            .run_constructors(&init_array)
            .and_then(|()| match load_entry {
                None => Ok(()),
                Some(entry) => {
                    let code = self
                        .machine
                        .call(entry, &[0])
                        .map_err(|e| self.locate_stop(e))? as i32
                        as i64;
                    match code {
                        0 => Ok(()),
                        code => Err(LoadError::EntryFailed {
                            module: name.to_string(),
                            entry: load_name,
                            code,
                        }),
                    }
                }
            });
        if let Err(e) = ran {
            self.discard(id);
            return Err(e);
        }
        self.finish_load(id);
        Ok(id)
    }

    /// A module whose `_load` succeeded: loaded, its stubs pointing at it.
    pub(super) fn finish_load(&self, id: ModuleId) {
        let mut state = self.state();
        if let Some(module) = state.modules.get_mut(&id) {
            module.info.state = ModuleState::Loaded;
            module.loader = None;
        }
        self.target_stubs(&state, id, true);
    }

    /// Points the stubs of module `id`'s registration at its functions, or arms them.
    pub(super) fn target_stubs(&self, state: &State, id: ModuleId, to_module: bool) {
        let Some(module) = state.modules.get(&id) else {
            return;
        };
        let Some(registration) = state.registered.get(&module.info.name) else {
            return;
        };
        for (symbol, number, _) in &registration.stubs {
            let target = to_module
                .then(|| find_symbol(&module.symbols, symbol))
                .flatten();
            self.machine.set_stub_target(*number, target);
        }
    }

    /// Duplicate exports, and exports shadowing the host's symbols, are refused before
    /// anything is placed.
    pub(super) fn check_exports<'n>(
        &self,
        state: &State,
        name: &str,
        exports: impl Iterator<Item = &'n str>,
    ) -> Result<(), LoadError> {
        for export in exports {
            let existing = state.exports.get(export);
            let shadows_host = !self.options.allow_shadowing
                && self.options.host_symbols
                && existing.is_none()
                && self.machine.host_symbol(export).is_some();
            if shadows_host {
                return Err(LoadError::ShadowsHost {
                    module: name.to_string(),
                    symbol: export.to_string(),
                });
            }
            let own_stub =
                |s: &&KernelSymbol| matches!(&s.owner, Owner::Stub(_, m) if **m == *name);
            if let Some(existing) = existing.filter(|s| !own_stub(s)) {
                return Err(LoadError::DuplicateExport {
                    module: name.to_string(),
                    symbol: export.to_string(),
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
    pub(super) fn plan_placement(
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
    ) -> Result<(LinkOutput, Imports), LoadError> {
        let mut imports = Imports::default();
        let mut resolver = |name: &str| self.resolve_import(state, name, &mut imports);
        // Linked in place: natively straight into the reservation, with no image buffer.
        let mut linked = None;
        self.machine
            .fill_image(base, layout.image_size, &mut |image: &mut [u8]| {
                linked = Some(self.link_image(state, object, layout, base, &mut resolver, image));
            })?;
        let output = linked.ok_or(LoadError::Machine(MachineError::BadAccess {
            address: base,
            len: layout.image_size,
            access: "fill",
        }))??;
        self.protect_segments(base, &layout.segments)?;
        Ok((output, imports))
    }

    /// What an import of a module resolves to; notes the module or registration providing it.
    pub(super) fn resolve_import(
        &self,
        state: &State,
        name: &str,
        imports: &mut Imports,
    ) -> Option<ExternalSymbol> {
        let symbol = self.lookup_in(state, name)?;
        match &symbol.owner {
            Owner::Module(id, _) => {
                imports.modules.insert(*id);
            }
            Owner::Stub(_, module) => {
                imports.stubs.insert(module.to_string());
            }
            Owner::Kernel | Owner::Host => {}
        }
        Some(ExternalSymbol {
            address: symbol.address,
            size: symbol.size,
            kind: symbol.kind,
        })
    }

    pub(super) fn protect_segments(
        &self,
        base: u64,
        segments: &[dlkm_linker::Segment],
    ) -> Result<(), LoadError> {
        for segment in segments {
            let protection = match segment.kind {
                SegmentKind::Text => Protection::ReadExecute,
                SegmentKind::ReadOnly => Protection::ReadOnly,
                SegmentKind::Writable => Protection::ReadWrite,
            };
            self.machine
                .protect(base + segment.offset, segment.size, protection)?;
        }
        Ok(())
    }

    /// Links `object` into `image` (the reservation at `base`, zeroed) and fills in the
    /// copies of kernel variables its layout asked for.
    fn link_image(
        &self,
        state: &State,
        object: &Object,
        layout: &dlkm_linker::Layout,
        base: u64,
        resolver: &mut dyn dlkm_linker::Resolver,
        image: &mut [u8],
    ) -> Result<LinkOutput, LoadError> {
        let output = dlkm_linker::link_into(object, layout, base, resolver, image)?;
        let copies = layout
            .copies
            .iter()
            .map(|(c, offset)| (&*c.name, c.size, *offset));
        self.fill_copies(state, copies, image)?;
        Ok(output)
    }

    /// Copies the kernel variables named (name, size, image offset) into `image`.
    pub(super) fn fill_copies<'n>(
        &self,
        state: &State,
        copies: impl Iterator<Item = (&'n str, u64, u64)>,
        image: &mut [u8],
    ) -> Result<(), LoadError> {
        for (name, size, offset) in copies {
            let Some(symbol) = self.lookup_in(state, name) else {
                continue;
            };
            let bytes = self.machine.read(symbol.address, size)?;
            let at = offset as usize;
            image[at..at + bytes.len()].copy_from_slice(&bytes);
        }
        Ok(())
    }

    pub(super) fn run_constructors(&self, init_array: &[u64]) -> Result<(), LoadError> {
        for &ctor in init_array {
            self.machine
                .call(ctor, &[])
                .map_err(|e| self.locate_stop(e))?;
        }
        Ok(())
    }

    fn new_module(
        &self,
        id: ModuleId,
        metadata: &Metadata,
        path: Option<PathBuf>,
        placed: Placed,
    ) -> Module {
        let Placed {
            base,
            image_size,
            sections,
            far_stubs,
            output,
            imports,
            copied,
            lines,
            from_image_cache,
        } = placed;
        let (load, unload) = (metadata.entry_point("load"), metadata.entry_point("unload"));
        let [load_at, unload_at] = output.symbols.addresses_of([&load, &unload]);
        let mut entry_points: Vec<(String, u64)> = [(&load, load_at), (&unload, unload_at)]
            .into_iter()
            .filter_map(|(name, at)| Some((name.to_string(), at?)))
            .collect();
        entry_points.extend(output.init_array.iter().map(|&a| (".init_array".into(), a)));
        entry_points.extend(output.fini_array.iter().map(|&a| (".fini_array".into(), a)));
        Module {
            info: ModuleInfo {
                id,
                name: metadata.name.clone(),
                path,
                module_type: metadata.module_type.as_str(),
                version: metadata.version,
                state: ModuleState::Loading,
                refs: 0,
                holds: 0,
                opens: 0,
                auto_loaded: false,
                deps: Vec::new(),
                users: Vec::new(),
                base,
                size: image_size,
                sections,
                entry_points,
                loaded_at: SystemTime::now(),
                stubs_used: output.stubs_used,
                got_relaxed: output.got_relaxed,
                from_image_cache,
                copied,
                registered: false,
                stubs: Vec::new(),
                stub_deps: imports.stubs.iter().cloned().collect(),
                failure: None,
            },
            unload_entry: unload_at.map(|a| (unload, a)),
            fini_array: output.fini_array,
            calls_in_flight: 0,
            metadata: metadata.clone(),
            last_used: Instant::now(),
            symbols: output.symbols,
            dep_ids: imports.modules,
            stub_deps: imports.stubs,
            loader: Some(std::thread::current().id()),
            stub_calls_seen: 0,
            far_stubs,
            lines,
        }
    }

    pub(super) fn add_module(&self, state: &mut State, mut module: Module) {
        let id = module.info.id;
        // Grown once for all of them, not doubling as they go in.
        state.exports.reserve(module.symbols.exported().len());
        let owner: Arc<str> = module.info.name.as_str().into();
        for symbol in module.symbols.exported() {
            state.exports.insert(
                symbol.name.to_owned(),
                KernelSymbol {
                    name: symbol.name.to_owned(),
                    address: symbol.address,
                    size: symbol.size,
                    kind: match symbol.ty {
                        dlkm_linker::SymbolType::Function => ExternalKind::Function,
                        dlkm_linker::SymbolType::Object => ExternalKind::Data,
                        _ => ExternalKind::Unknown,
                    },
                    owner: Owner::Module(id, Arc::clone(&owner)),
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
    pub(super) fn discard(&self, id: ModuleId) {
        let mut state = self.state();
        if let Some(module) = self.remove_module(&mut state, id) {
            let _ = self.machine.release(module.info.base);
        }
    }

    pub(super) fn remove_module(&self, state: &mut State, id: ModuleId) -> Option<Module> {
        let module = state.modules.remove(&id)?;
        for symbol in module.symbols.exported() {
            state.exports.remove(symbol.name);
        }
        // A registered module goes back to its stubs, armed.
        if let Some(registration) = state.registered.get(&module.info.name) {
            let stubs: Vec<KernelSymbol> = registration
                .stubs
                .iter()
                .filter_map(|(symbol, number, _)| {
                    self.machine.set_stub_target(*number, None);
                    registration.stub_symbol(symbol)
                })
                .collect();
            for stub in stubs {
                state.exports.insert(stub.name.clone(), stub);
            }
        }
        for dep in &module.dep_ids {
            if let Some(m) = state.modules.get_mut(dep) {
                m.info.refs = m.info.refs.saturating_sub(1);
            }
        }
        Some(module)
    }
}

/// An object file being loaded: where it is, and what it was when it was read (`None` where
/// that could not be told).
pub(super) struct ObjectFile {
    pub path: PathBuf,
    pub stamp: Option<FileStamp>,
}

/// What the image cache keeps an image of: an object read from `path` as `stamp` describes.
pub(super) struct KeptObject<'a> {
    pub path: &'a Path,
    pub stamp: FileStamp,
    pub object: &'a Object<'a>,
}

/// A module placed and published, not yet entered in the kernel.
pub(super) struct Placed {
    pub base: u64,
    pub image_size: u64,
    pub sections: Vec<SectionInfo>,
    /// The linker's far-call stubs: address and target.
    pub far_stubs: Vec<(u64, String)>,
    pub output: LinkOutput,
    pub imports: Imports,
    /// Kernel variables it has a copy of.
    pub copied: Vec<String>,
    pub lines: Option<Arc<lines::ModuleLines>>,
    pub from_image_cache: bool,
}

/// What a module's undefined symbols resolved to, besides the kernel and the host.
#[derive(Default)]
pub(super) struct Imports {
    /// Loaded modules it depends on.
    modules: BTreeSet<ModuleId>,
    /// Registered modules whose stubs it calls.
    stubs: BTreeSet<String>,
}

/// A module's default name: its object file's stem.
pub(super) fn stem_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The master file beside the object at `path` whose stem is `stem`.
pub(super) fn master_path(path: &Path, stem: &str) -> PathBuf {
    path.with_file_name(format!("{stem}.master"))
}

/// Placed sections and areas (name, image offset, size) at their addresses.
pub(super) fn sections_at(base: u64, entries: Vec<(String, u64, u64)>) -> Vec<SectionInfo> {
    let at = |(name, offset, size)| SectionInfo {
        name,
        address: base + offset,
        size,
    };
    entries.into_iter().map(at).collect()
}

/// Far-call stubs (image offset, target) at their addresses.
pub(super) fn stubs_at(base: u64, stubs: Vec<(u64, String)>) -> Vec<(u64, String)> {
    let at = |(offset, target)| (base + offset, target);
    stubs.into_iter().map(at).collect()
}
