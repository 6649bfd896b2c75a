//! What can go wrong in a command. Loader and linker errors are kept whole, with the command
//! that met them as context, so the message names both what was asked and what failed.

use std::path::PathBuf;

use dlkm_linker::LinkError;
use dlkm_loader::LoadError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{context}: {source}")]
    Load {
        context: String,
        #[source]
        source: Box<LoadError>,
    },

    #[error("{context}: {source}")]
    Link {
        context: String,
        #[source]
        source: Box<LinkError>,
    },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Writing the command's output failed (a closed pipe, a full disk).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),

    #[error("{0}")]
    Syntax(String),

    /// The prompt's terminal failed.
    #[error("terminal: {0}")]
    Terminal(#[from] rustyline::error::ReadlineError),

    #[error("unknown command `{name}`{}", suggestion_text(suggestions))]
    UnknownCommand {
        name: String,
        suggestions: Vec<String>,
    },

    #[error("{problem}; usage: {usage}")]
    Usage {
        usage: &'static str,
        problem: String,
    },

    #[error("no module `{0}` is loaded or registered (see `modules`)")]
    NoSuchModule(String),

    /// The module is registered (its stubs are in the kernel table) but not loaded, so it
    /// has no image to work on.
    #[error("module {0} is registered but not loaded (a call through one of its stubs or `load {0}` loads it)")]
    NotLoaded(String),

    #[error(
        "no symbol `{name}` in the kernel symbol table{}{}",
        local_hint(local_to),
        did_you_mean(closest)
    )]
    NoSuchSymbol {
        name: String,
        /// The module that has a local symbol of that name, if one does.
        local_to: Option<String>,
        /// Names in the table or the modules close to it.
        closest: Vec<String>,
    },

    #[error(
        "no symbol `{name}` in the kernel or any module{}",
        did_you_mean(closest)
    )]
    UnknownSymbol {
        name: String,
        /// Names in the table or the modules close to it.
        closest: Vec<String>,
    },

    #[error("no {file} in the module path ({})", searched_text(searched))]
    NotInModpath {
        file: String,
        searched: Vec<PathBuf>,
    },

    #[error("--arch {arch}: {reason}")]
    Arch { arch: String, reason: String },

    #[error("base {base:#x} is not a multiple of the image's alignment {align:#x}")]
    MisalignedBase { base: u64, align: u64 },
}

impl CommandError {
    /// A loader error met while doing `context`.
    pub fn load(context: impl Into<String>, source: LoadError) -> Self {
        CommandError::Load {
            context: context.into(),
            source: Box::new(source),
        }
    }

    /// A linker error met while doing `context`.
    pub fn link(context: impl Into<String>, source: LinkError) -> Self {
        CommandError::Link {
            context: context.into(),
            source: Box::new(source),
        }
    }
}

fn suggestion_text(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        "; `help` lists the commands".to_string()
    } else {
        did_you_mean(suggestions)
    }
}

fn local_hint(module: &Option<String>) -> String {
    module
        .as_ref()
        .map(|m| format!(" (module {m} has a local symbol of that name: see `msyms {m}`)"))
        .unwrap_or_default()
}

fn did_you_mean(closest: &[String]) -> String {
    if closest.is_empty() {
        String::new()
    } else {
        format!("; did you mean: {}?", closest.join(", "))
    }
}

fn searched_text(searched: &[PathBuf]) -> String {
    if searched.is_empty() {
        "the module path is empty: add directories with `modpath DIR` or --modpath".to_string()
    } else {
        let dirs: Vec<String> = searched.iter().map(|d| d.display().to_string()).collect();
        format!("searched {}", dirs.join(", "))
    }
}
