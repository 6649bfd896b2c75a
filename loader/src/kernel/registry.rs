//! Registered modules and their auto-loading stubs: what `register` installs, what a call
//! through an armed stub asks the kernel, and what unloading a registered module re-arms.

use super::*;

impl Kernel {
    /// Arms the stubs of registered module `name`, then counts the calls that went through
    /// them before (see [`Machine::stub_use`]).
    pub(super) fn stubs_in_flight(&self, state: &State, name: &str) -> usize {
        let Some(registration) = state.registered.get(name) else {
            return 0;
        };
        for (_, number, _) in &registration.stubs {
            self.machine.set_stub_target(*number, None);
        }
        registration
            .stubs
            .iter()
            .map(|(_, number, _)| self.machine.stub_use(*number).in_flight)
            .sum()
    }

    /// A module whose unload was refused or vetoed: loaded again, its stubs pointing at it.
    pub(super) fn settle(&self, state: &mut State, id: ModuleId) {
        if let Some(m) = state.modules.get_mut(&id) {
            m.info.state = ModuleState::Loaded;
        }
        self.target_stubs(state, id, true);
    }

    /// Registers the module in the object at `path` without loading it, as UnixWare's
    /// modadmin -U did for the boot list: the kernel table gets a stub for each of its
    /// exported functions (or those its `stubs` key names), and the first call through one
    /// loads it with its dependencies and forwards the call. Loading it by name, as a
    /// dependency or by a driver open also finds it. Returns its module number, which it
    /// keeps across loads and unloads.
    pub fn register(self: &Arc<Self>, path: impl AsRef<Path>) -> Result<ModuleId, LoadError> {
        let path = path.as_ref();
        let _serial = self.load_lock.lock();
        self.check_trusted(path)?;
        let (bytes, _) =
            crate::object_file::read_object(path, &self.read_buffer).map_err(|source| {
                LoadError::Io {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        let registered = self.register_object(path, &bytes);
        self.read_buffer.recycle(bytes);
        registered
    }

    /// [`Kernel::register`] of the object read from `path`.
    fn register_object(self: &Arc<Self>, path: &Path, bytes: &[u8]) -> Result<ModuleId, LoadError> {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let object_name = path.display().to_string();
        let object = Object::parse(&object_name, bytes)?;
        self.check_arch(&stem, &object_name, &object)?;
        let metadata = self.metadata(&stem, Some(path), &object)?;
        Self::verify_checksum(&metadata, &object_name, bytes)?;
        let name = metadata.name.clone();
        let functions: Vec<&str> = object
            .exported_symbols()
            .filter(|s| s.ty == dlkm_linker::SymbolType::Function)
            .map(|s| s.name)
            .collect();
        // The kernel runs the entry points itself; a call through a stub never should.
        let entry_points = [metadata.entry_point("load"), metadata.entry_point("unload")];
        let stubbed: Vec<String> = match &metadata.stubs {
            None => functions
                .iter()
                .filter(|f| !entry_points.iter().any(|e| e == *f))
                .map(|f| f.to_string())
                .collect(),
            Some(list) => {
                if let Some(missing) = list.iter().find(|s| !functions.contains(&s.as_str())) {
                    return Err(LoadError::StubNotExported {
                        module: name,
                        symbol: missing.clone(),
                    });
                }
                list.clone()
            }
        };

        let mut state = self.state();
        if state.registered.contains_key(&name) {
            return Err(LoadError::AlreadyRegistered(name));
        }
        let loaded = state
            .modules
            .values()
            .find(|m| m.info.name == name)
            .map(|m| m.info.id);
        if loaded.is_none() {
            self.check_exports(&state, &name, object.exported_symbols().map(|s| s.name))?;
        }
        let resolver: Weak<dyn StubResolver> = Arc::downgrade(self) as Weak<Kernel>;
        self.machine.set_stub_resolver(resolver);
        let mut stubs = Vec::with_capacity(stubbed.len());
        for symbol in stubbed {
            let (number, address) = match state.stub_numbers.get(&symbol) {
                Some(&made) => made,
                None => {
                    let made = self.machine.create_stub()?;
                    state.stub_numbers.insert(symbol.clone(), made);
                    made
                }
            };
            stubs.push((symbol, number, address));
        }
        let id = loaded.unwrap_or_else(|| {
            state.next_id += 1;
            ModuleId(state.next_id - 1)
        });
        let registration = Registration {
            id,
            path: path.to_path_buf(),
            metadata,
            stubs,
            failure: None,
            registered_at: SystemTime::now(),
        };
        if loaded.is_none() {
            for (symbol, _, _) in &registration.stubs {
                if let Some(stub) = registration.stub_symbol(symbol) {
                    state.exports.insert(symbol.clone(), stub);
                }
            }
        }
        state.registered.insert(name, registration);
        if loaded.is_some() {
            self.target_stubs(&state, id, true);
        }
        Ok(id)
    }

    /// Forgets a registered module that is not loaded, and withdraws its stubs; refused
    /// while loaded modules call through them.
    pub fn unregister(&self, name: &str) -> Result<(), LoadError> {
        let _serial = self.load_lock.lock();
        let mut state = self.state();
        if !state.registered.contains_key(name) {
            return Err(LoadError::NotRegistered(name.to_string()));
        }
        if state.modules.values().any(|m| m.info.name == name) {
            return Err(LoadError::Busy {
                module: name.to_string(),
                reason: "it is loaded: unload it first".into(),
            });
        }
        let users: Vec<String> = state
            .modules
            .values()
            .filter(|m| m.stub_deps.contains(name))
            .map(|m| m.info.name.clone())
            .collect();
        if !users.is_empty() {
            return Err(LoadError::Busy {
                module: name.to_string(),
                reason: format!("{} call(s) it through its stubs", users.join(", ")),
            });
        }
        let registration = state.registered.remove(name).expect("checked above");
        for (symbol, number, _) in registration.stubs {
            let stub =
                matches!(state.exports.get(&symbol), Some(s) if matches!(s.owner, Owner::Stub(..)));
            if stub {
                state.exports.remove(&symbol);
            }
            self.machine.set_stub_target(number, None);
        }
        Ok(())
    }

    /// The stub's module, loaded for a call through it, and the call counted in flight
    /// under the state lock that unloading takes (see [`StubResolver`]).
    pub(super) fn resolve_stub(&self, stub: u32) -> Result<u64, LoadError> {
        // Only an armed stub asks: a scan of the registrations is no cost worth a map.
        let owner = self.state().registered.values().find_map(|r| {
            let (symbol, _, _) = r.stubs.iter().find(|(_, number, _)| *number == stub)?;
            Some((r.metadata.name.clone(), symbol.clone()))
        });
        let (module, symbol) = owner.ok_or(LoadError::NoSuchStub(stub))?;
        let _serial = self.load_lock.lock();
        let undefined = || LoadError::StubUndefined {
            module: module.clone(),
            symbol: symbol.clone(),
        };
        let me = Some(std::thread::current().id());
        let mut state = self.state();
        let loaded = state
            .modules
            .values()
            .find(|m| m.info.name == module)
            .map(|m| (m.info.state, m.loader, find_symbol(&m.symbols, &symbol)));
        let address = match loaded {
            Some((ModuleState::Loaded, _, Some(address))) => address,
            Some((ModuleState::Loading, loader, Some(address))) if loader == me => address,
            Some((ModuleState::Loaded | ModuleState::Loading, _, None)) => return Err(undefined()),
            Some(_) => {
                return Err(LoadError::Busy {
                    module: module.clone(),
                    reason: "it is being unloaded".into(),
                })
            }
            None => {
                drop(state);
                let id = self.load_name_in_chain(&module, &mut Vec::new())?;
                state = self.state();
                let module = state.modules.get_mut(&id).ok_or_else(undefined)?;
                self.mark_auto_loaded(module);
                find_symbol(&module.symbols, &symbol).ok_or_else(undefined)?
            }
        };
        self.machine.enter_stub(stub);
        Ok(address)
    }
}

impl StubResolver for Kernel {
    fn resolve(&self, stub: u32) -> Result<u64, String> {
        self.resolve_stub(stub).map_err(|e| {
            // The call fails with -1 and ENOSYS; say why where someone will see it.
            let message = format!("a call through stub {stub} failed: {e}");
            eprintln!("dlkm: {message}");
            message
        })
    }
}

/// The record of a registered module that is not loaded.
pub(super) fn registration_info(registration: &Registration) -> ModuleInfo {
    let metadata = &registration.metadata;
    ModuleInfo {
        id: registration.id,
        name: metadata.name.clone(),
        path: Some(registration.path.clone()),
        module_type: metadata.module_type.as_str(),
        version: metadata.version,
        state: match registration.failure {
            Some(_) => ModuleState::Failed,
            None => ModuleState::Registered,
        },
        refs: 0,
        holds: 0,
        opens: 0,
        auto_loaded: false,
        deps: metadata.depend.clone(),
        users: Vec::new(),
        base: 0,
        size: 0,
        sections: Vec::new(),
        entry_points: Vec::new(),
        loaded_at: registration.registered_at,
        stubs_used: 0,
        got_relaxed: 0,
        from_image_cache: false,
        copied: Vec::new(),
        registered: true,
        stubs: registration.stubs.iter().map(|s| s.0.clone()).collect(),
        stub_deps: Vec::new(),
        failure: registration.failure.clone(),
    }
}
