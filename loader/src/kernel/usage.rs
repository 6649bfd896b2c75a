//! Who uses a module, and when it may go: unload and its busy rules, holds, driver opens,
//! and the auto-unloader.

use super::*;

impl Kernel {
    /// Unloads a module: refuses while others depend on it, runs `_unload` (a non-zero result
    /// vetoes), then the destructors, and releases its memory.
    pub fn unload(&self, id: ModuleId) -> Result<(), LoadError> {
        let _serial = self.load_lock.lock();
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
            let name = module.info.name.clone();
            let stubbed = self.stubs_in_flight(&state, &name);
            if stubbed > 0 {
                self.settle(&mut state, id);
                return Err(LoadError::Busy {
                    module: name,
                    reason: format!("{stubbed} call(s) through its stubs running in it"),
                });
            }
            let module = state.modules.get_mut(&id).expect("looked up above");
            (
                module.info.name.clone(),
                module.unload_entry.clone(),
                module.fini_array.clone(),
            )
        };
        let vetoed = |error: LoadError| {
            self.settle(&mut self.state(), id);
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
            // A destructor that stops leaves the module loaded, as a vetoing _unload does.
            self.machine
                .call(dtor, &[])
                .map_err(|e| vetoed(self.locate_stop(e)))?;
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
                self.mark_auto_loaded(m);
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

    pub(super) fn count_opens(
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
    pub(super) fn run_driver_entry(
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

    /// Starts the auto-unloader: a thread that, every `tick`, unloads the auto-loaded
    /// modules that are unreferenced, unheld, closed, not running and idle for their
    /// `unload_delay` (`default_delay` when their metadata gives none; `-1`, or a `None`
    /// default, never). It ends when the kernel is dropped. The thread starts with the first
    /// auto-loaded module, since it has nothing to do before: a program that loads nothing
    /// on demand (`msyms -c`, say) never pays for it.
    pub fn start_auto_unload(
        kernel: &Arc<Kernel>,
        default_delay: Option<Duration>,
        tick: Duration,
    ) {
        *kernel.auto_unload_plan() = Some(AutoUnloadPlan {
            kernel: Arc::downgrade(kernel),
            default_delay,
            tick,
        });
        if kernel.state().modules.values().any(|m| m.info.auto_loaded) {
            kernel.start_planned_auto_unload();
        }
    }

    /// Marks a module loaded on demand, which the auto-unloader may take away again.
    pub(super) fn mark_auto_loaded(&self, module: &mut Module) {
        module.info.auto_loaded = true;
        self.start_planned_auto_unload();
    }

    fn start_planned_auto_unload(&self) {
        let Some(plan) = self.auto_unload_plan().take() else {
            return;
        };
        std::thread::spawn(move || loop {
            std::thread::sleep(plan.tick);
            let Some(kernel) = plan.kernel.upgrade() else {
                return;
            };
            kernel.unload_idle(plan.default_delay);
        });
    }

    fn auto_unload_plan(&self) -> MutexGuard<'_, Option<AutoUnloadPlan>> {
        self.auto_unload.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Unloads the auto-loaded modules idle for their unload delay; returns their names.
    pub fn unload_idle(&self, default_delay: Option<Duration>) -> Vec<String> {
        let idle: Vec<(ModuleId, String)> = {
            let mut state = self.state();
            self.note_stub_calls(&mut state);
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

    /// Calls through a module's stubs never enter the kernel; a module whose stubs were
    /// called since the last look was used now.
    pub(super) fn note_stub_calls(&self, state: &mut State) {
        let State {
            modules,
            registered,
            ..
        } = state;
        for module in modules.values_mut() {
            let Some(registration) = registered.get(&module.info.name) else {
                continue;
            };
            let calls: u64 = registration
                .stubs
                .iter()
                .map(|(_, number, _)| self.machine.stub_use(*number).calls)
                .sum();
            if calls != module.stub_calls_seen {
                module.stub_calls_seen = calls;
                module.last_used = Instant::now();
            }
        }
    }
}

/// The auto-unloader's settings, kept until its thread starts.
pub(super) struct AutoUnloadPlan {
    kernel: Weak<Kernel>,
    default_delay: Option<Duration>,
    tick: Duration,
}
