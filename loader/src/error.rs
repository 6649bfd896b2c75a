//! The loader's errors. Linker errors pass through whole; the rest name the module and what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Link(Box<dlkm_linker::LinkError>),

    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("machine: {0}")]
    Machine(#[from] MachineError),

    #[error("module {module}: it defines `{symbol}`, which {owner} already exports")]
    DuplicateExport {
        module: String,
        symbol: String,
        owner: String,
    },

    #[error("a module named `{0}` is already loaded")]
    AlreadyLoaded(String),

    #[error("no module `{0}` is loaded")]
    NoSuchModule(String),

    #[error("no symbol `{0}` in the kernel or any module")]
    NoSuchSymbol(String),

    #[error(
        "module {module}: {object} is built for {object_arch}, this kernel runs {kernel_arch}"
    )]
    WrongArch {
        module: String,
        object: String,
        object_arch: &'static str,
        kernel_arch: &'static str,
    },

    #[error("module {module}: {entry} returned {code} ({})", errno_name(*code))]
    EntryFailed {
        module: String,
        entry: String,
        code: i64,
    },

    #[error("module {module} is busy: {reason}")]
    Busy { module: String, reason: String },

    #[error("symbol `{0}` is already exported")]
    AlreadyExported(String),

    #[error("call: {0}")]
    Call(String),
}

impl From<dlkm_linker::LinkError> for LoadError {
    fn from(error: dlkm_linker::LinkError) -> Self {
        LoadError::Link(Box::new(error))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error("cannot reserve {size:#x} bytes {placement}: {reason}")]
    NoMemory {
        size: u64,
        placement: String,
        reason: String,
    },
    #[error("{len:#x} bytes at {address:#x} are not memory this machine may {access}")]
    BadAccess {
        address: u64,
        len: u64,
        access: &'static str,
    },
    #[error("cannot set protection of {address:#x}+{len:#x}: {reason}")]
    Protect {
        address: u64,
        len: u64,
        reason: String,
    },
    #[error("calls take at most {max} integer arguments, {got} given")]
    TooManyArguments { max: usize, got: usize },
}

/// The symbolic name of an errno value returned by an entry point.
pub fn errno_name(code: i64) -> String {
    const NAMES: &[(i64, &str)] = &[
        (1, "EPERM"),
        (2, "ENOENT"),
        (3, "ESRCH"),
        (4, "EINTR"),
        (5, "EIO"),
        (6, "ENXIO"),
        (7, "E2BIG"),
        (9, "EBADF"),
        (11, "EAGAIN"),
        (12, "ENOMEM"),
        (13, "EACCES"),
        (14, "EFAULT"),
        (16, "EBUSY"),
        (17, "EEXIST"),
        (19, "ENODEV"),
        (22, "EINVAL"),
        (24, "EMFILE"),
        (28, "ENOSPC"),
        (38, "ENOSYS"),
        (95, "EOPNOTSUPP"),
    ];
    NAMES
        .iter()
        .find(|(n, _)| *n == code.abs())
        .map(|(_, name)| name.to_string())
        .unwrap_or_else(|| format!("errno {code}"))
}
