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

    #[error(transparent)]
    Metadata(#[from] crate::metadata::MetadataError),

    #[error("no {name}.o on the module path ({})", if searched.is_empty() { "empty".to_string() } else { searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ") })]
    NotOnModulePath {
        name: String,
        searched: Vec<PathBuf>,
    },

    #[error("module {module}: its dependency {dependency} did not load: {source}")]
    Dependency {
        module: String,
        dependency: String,
        source: Box<LoadError>,
    },

    #[error("dependency cycle: {0}")]
    DependencyCycle(String),

    /// A module's line table is there but cannot be read; the module itself is unaffected.
    #[error("module {module}: no source lines: {detail}")]
    DebugInfo { module: String, detail: String },

    #[error("module {module} needs interface {interface} version {wanted}; the kernel {}", match exported { Some(v) => format!("exports version {v}"), None => "does not export it".to_string() })]
    Interface {
        module: String,
        interface: String,
        wanted: u32,
        exported: Option<u32>,
    },

    #[error("module {module}: {object} has SHA-256 {actual}, its master file says {expected}; refusing to load it")]
    Checksum {
        module: String,
        object: String,
        expected: String,
        actual: String,
    },

    #[error("{}:{line}: {source}", path.display())]
    BootList {
        path: PathBuf,
        line: usize,
        source: Box<LoadError>,
    },

    #[error("{object} is outside the module path ({}), and this kernel loads modules from the module path only", if modpath.is_empty() { "empty".to_string() } else { modpath.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ") })]
    OutsideModulePath {
        object: String,
        modpath: Vec<PathBuf>,
    },

    #[error("module {module}: it defines `{symbol}`, which the host already provides; a module may not replace it for the modules after it (KernelOptions::allow_shadowing permits it)")]
    ShadowsHost { module: String, symbol: String },

    #[error("a module named `{0}` is already registered")]
    AlreadyRegistered(String),

    #[error("no module `{0}` is registered")]
    NotRegistered(String),

    #[error(
        "module {module}: its stubs key names `{symbol}`, which it does not export as a function"
    )]
    StubNotExported { module: String, symbol: String },

    #[error("module {module} does not define `{symbol}`, which its stub stands for")]
    StubUndefined { module: String, symbol: String },

    #[error("stub {0} belongs to no registered module")]
    NoSuchStub(u32),

    #[error("module {0} is not held")]
    NotHeld(String),

    #[error("module {0} has no device open")]
    NotOpen(String),

    #[error("module {0} is not a driver (its metadata says type=misc or streams)")]
    NotADriver(String),

    /// A call into the machine that did not return: a fault, the instruction budget, abort.
    #[error("call stopped: {stop}{}", location.as_ref().map(|l| format!(" (in {l})")).unwrap_or_default())]
    Stopped {
        stop: Stop,
        location: Option<String>,
    },
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
    #[error("{context}: {reason}")]
    Emulator {
        context: &'static str,
        reason: String,
    },
    /// A call into the emulated machine that did not return normally.
    #[error("{0}")]
    Stopped(Stop),
    #[error("a call is paused at pc {pc:#x}: continue or step it to its end first")]
    Paused { pc: u64 },
    #[error("no call is paused (a breakpoint stops one)")]
    NotPaused,
    #[error("no breakpoint {0}")]
    NoBreakpoint(u32),
    #[error("this machine has no debugger (breakpoints need the emulated machine)")]
    NoDebugger,
    #[error("this machine cannot make auto-loading stubs")]
    NoStubs,
}

impl MachineError {
    pub fn bad_access(address: u64, len: u64, access: &'static str) -> MachineError {
        MachineError::BadAccess {
            address,
            len,
            access,
        }
    }
}

/// Why a call into the emulated machine stopped before it returned. The machine survives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stop {
    #[error("fault at pc {pc:#x}: {what} at {address:#x}")]
    Fault { pc: u64, what: String, address: u64 },
    #[error("the instruction budget ({budget}) ran out at pc {pc:#x}")]
    Budget { pc: u64, budget: u64 },
    #[error("breakpoint {id} at pc {pc:#x}")]
    Breakpoint { id: u32, pc: u64 },
    #[error("stepped to pc {pc:#x}")]
    Stepped { pc: u64 },
    #[error("abort() called")]
    Abort,
    #[error("exit({0}) called")]
    Exit(i64),
    #[error("kernel function {function}: {reason}")]
    Runtime {
        function: &'static str,
        reason: String,
    },
    #[error("emulator: {0}")]
    Emulator(String),
    /// A call reached an armed auto-loading stub; the emulated machine loads the module and
    /// goes on, so callers never see this.
    #[error("call reached armed stub {stub}")]
    ArmedStub { stub: u32 },
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
