//! dlkm-loader: the module runtime. A [`Kernel`] owns a symbol table and the modules loaded
//! into its [`Machine`]; loading parses, lays out, places, links, publishes (W^X) and runs the
//! constructors and `_load`, and undoes all of it when any step fails.

mod error;
mod kernel;
pub mod machine;
pub mod metadata;
mod object_file;

pub use error::{errno_name, LoadError, MachineError, Stop};
pub use kernel::{
    Arg, Kernel, KernelOptions, KernelSymbol, ModuleId, ModuleInfo, ModuleState, Owner,
    SectionInfo, SourceLine, DEF_UNLOAD_DELAY,
};
pub use machine::{DebugObjectBytes, Debugger, Machine, Placement, Protection, PublishedModule};
