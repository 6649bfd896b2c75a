//! A session: the kernel msyms drives, the module path, and the runner that takes commands
//! from `-c`, a script, a boot file or the prompt.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dlkm_loader::{Kernel, ModuleInfo};

use crate::commands;
use crate::error::CommandError;
use crate::parse::{parse_line, Command, Token};

/// The state the commands work on.
pub struct Session {
    /// Shared with the REPL's completer, which lists module and symbol names.
    kernel: Arc<Kernel>,
    unload_delay: Option<i64>,
    finished: bool,
}

impl Session {
    pub fn new(kernel: Kernel) -> Self {
        Session {
            kernel: Arc::new(kernel),
            unload_delay: None,
            finished: false,
        }
    }

    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    pub fn shared_kernel(&self) -> Arc<Kernel> {
        Arc::clone(&self.kernel)
    }

    /// The kernel's module path, which `load NAME` and dependencies search.
    pub fn modpath(&self) -> Vec<PathBuf> {
        self.kernel.modpath()
    }

    /// Appends a directory to the module path; it must exist, so a typo shows at once rather
    /// than as a module that cannot be found later.
    pub fn add_modpath(&mut self, dir: impl Into<PathBuf>) -> Result<(), CommandError> {
        let dir = dir.into();
        self.kernel.add_modpath(&dir).map_err(|_| CommandError::Io {
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
            path: dir,
        })
    }

    /// The default idle time before auto-loaded modules are unloaded (`--unload-delay`);
    /// kept for the auto-unloader.
    pub fn unload_delay(&self) -> Option<i64> {
        self.unload_delay
    }

    pub fn set_unload_delay(&mut self, seconds: i64) {
        self.unload_delay = Some(seconds);
    }

    /// Whether `quit` was run.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    pub(crate) fn finish(&mut self) {
        self.finished = true;
    }

    /// Runs every command of `line` (commands separated by `;`), stopping at the first error
    /// or at `quit`.
    pub fn execute(&mut self, line: &str, out: &mut dyn Write) -> Result<(), CommandError> {
        for command in parse_line(line)? {
            self.run(&command, out)?;
            if self.finished {
                break;
            }
        }
        Ok(())
    }

    /// Runs one parsed command.
    pub fn run(&mut self, command: &[Token], out: &mut dyn Write) -> Result<(), CommandError> {
        let Some((name, args)) = command.split_first() else {
            return Ok(());
        };
        let name = name.text();
        let spec = commands::find(name).ok_or_else(|| CommandError::UnknownCommand {
            name: name.to_string(),
            suggestions: commands::suggest(name),
        })?;
        spec.execute(self, args, out)
    }

    /// Runs `steps` in order, writing `error: …` to `err` for each that fails. Without
    /// `keep_going` the first failure ends the run. Returns how many failed.
    pub fn run_steps(
        &mut self,
        steps: Vec<Step>,
        keep_going: bool,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> usize {
        let mut failures = 0;
        for step in steps {
            let result = step.command.and_then(|command| self.run(&command, out));
            if let Err(error) = result {
                failures += 1;
                report(err, step.origin.as_deref(), &error);
                if !keep_going {
                    break;
                }
            }
            if self.finished {
                break;
            }
        }
        failures
    }

    /// The object file `load` means by `target`. A bare name (one component, no extension)
    /// is NAME.o in the first module-path directory that has it. A file name alone that is
    /// not in the current directory is looked for in the module path too. Anything else is a
    /// path, left for the loader to read (and to report if it cannot).
    pub fn find_object(&self, target: &str) -> Result<PathBuf, CommandError> {
        let path = Path::new(target);
        let single = path.components().count() == 1;
        if path.extension().is_none() && single {
            let file = format!("{target}.o");
            return self
                .search_modpath(&file)
                .ok_or_else(|| CommandError::NotInModpath {
                    file,
                    searched: self.modpath(),
                });
        }
        if single && !path.exists() {
            if let Some(found) = self.search_modpath(target) {
                return Ok(found);
            }
        }
        Ok(path.to_path_buf())
    }

    fn search_modpath(&self, file: &str) -> Option<PathBuf> {
        self.modpath()
            .iter()
            .map(|dir| dir.join(file))
            .find(|candidate| candidate.is_file())
    }

    /// The loaded module called `name_or_id`. A module that is only registered is an error
    /// of its own, so the message says why it does not count.
    pub fn module(&self, name_or_id: &str) -> Result<ModuleInfo, CommandError> {
        if let Some(info) = self
            .kernel
            .find_module(name_or_id)
            .and_then(|id| self.kernel.module_info(id))
        {
            return Ok(info);
        }
        match self.registered_module(name_or_id) {
            Some(info) => Err(CommandError::NotLoaded(info.name)),
            None => Err(CommandError::NoSuchModule(name_or_id.to_string())),
        }
    }

    /// The module called `name_or_id`, loaded or only registered.
    pub fn any_module(&self, name_or_id: &str) -> Result<ModuleInfo, CommandError> {
        self.kernel
            .find_module(name_or_id)
            .and_then(|id| self.kernel.module_info(id))
            .or_else(|| self.registered_module(name_or_id))
            .ok_or_else(|| CommandError::NoSuchModule(name_or_id.to_string()))
    }

    /// The registered module (loaded or not) called `name_or_id`.
    fn registered_module(&self, name_or_id: &str) -> Option<ModuleInfo> {
        self.kernel
            .find_registered(name_or_id)
            .and_then(|id| self.kernel.module_info(id))
    }

    /// The first module (by id) that defines a symbol called `name`, exported or not.
    /// Every symbol of every loaded module and of the kernel's table (the host's dynamic
    /// symbols are looked up on demand, so they are not listed), sorted, once each: what
    /// completion offers and what a mistyped name is compared with.
    pub fn symbol_names(&self) -> Vec<String> {
        symbol_names(&self.kernel)
    }

    /// The symbol names closest to a mistyped `name`, for the error that reports it.
    pub fn closest_symbols(&self, name: &str) -> Vec<String> {
        crate::commands::closest_names(name, self.symbol_names().iter().map(String::as_str))
    }

    pub fn module_defining(&self, name: &str) -> Option<String> {
        self.kernel.modules().into_iter().find_map(|m| {
            let symbols = self.kernel.module_symbols(m.id)?;
            symbols.iter().any(|s| s.name == name).then_some(m.name)
        })
    }
}

/// Writes `error: [ORIGIN: ]MESSAGE`.
pub fn report(err: &mut dyn Write, origin: Option<&str>, error: &CommandError) {
    let origin = origin.map(|o| format!("{o}: ")).unwrap_or_default();
    // Nowhere is left to report a failure to write to stderr.
    let _ = writeln!(err, "error: {origin}{error}");
}

/// A command of a batch, or why it could not be parsed, and where it came from for messages.
#[derive(Debug)]
pub struct Step {
    /// `FILE:LINE` for commands from files.
    pub origin: Option<String>,
    pub command: Result<Command, CommandError>,
}

impl Step {
    /// The commands of a `-c` string. A string that does not parse is one failing step.
    pub fn from_text(text: &str) -> Vec<Step> {
        steps_of(text, None)
    }

    /// The commands of a script: one or more a line (`;` separates too), `#` comments and
    /// blank lines ignored.
    pub fn from_script(path: &Path) -> Result<Vec<Step>, CommandError> {
        let text = read(path)?;
        Ok(text
            .lines()
            .enumerate()
            .flat_map(|(i, line)| steps_of(line, Some(format!("{}:{}", path.display(), i + 1))))
            .collect())
    }

    /// A `load` for each module a boot file names: one a line (quoted if need be), `#`
    /// comments.
    pub fn from_boot_file(path: &Path) -> Result<Vec<Step>, CommandError> {
        let text = read(path)?;
        let mut steps = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let origin = Some(format!("{}:{}", path.display(), i + 1));
            match parse_line(line) {
                Ok(commands) => steps.extend(commands.into_iter().flatten().map(|module| Step {
                    origin: origin.clone(),
                    command: Ok(vec![Token::Word("load".into()), module]),
                })),
                Err(error) => steps.push(Step {
                    origin,
                    command: Err(error),
                }),
            }
        }
        Ok(steps)
    }
}

fn steps_of(text: &str, origin: Option<String>) -> Vec<Step> {
    match parse_line(text) {
        Ok(commands) => commands
            .into_iter()
            .map(|command| Step {
                origin: origin.clone(),
                command: Ok(command),
            })
            .collect(),
        Err(error) => vec![Step {
            origin,
            command: Err(error),
        }],
    }
}

fn read(path: &Path) -> Result<String, CommandError> {
    std::fs::read_to_string(path).map_err(|source| CommandError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// See [`Session::symbol_names`]; the REPL's completer has the kernel, not the session.
pub(crate) fn symbol_names(kernel: &Kernel) -> Vec<String> {
    let module_symbols = kernel
        .modules()
        .into_iter()
        .filter_map(|m| kernel.module_symbols(m.id))
        .flat_map(|symbols| {
            symbols
                .iter()
                .map(|s| s.name.to_owned())
                .collect::<Vec<_>>()
        });
    let exports = kernel.exports().into_iter().map(|s| s.name);
    let mut names: Vec<String> = module_symbols
        .chain(exports)
        .filter(|n| !n.is_empty())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}
