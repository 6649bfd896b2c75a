//! The `--arch` choice: which machine modules run in (run mode) or which architecture an
//! object must be built for (`link`).

use dlkm_linker::ArchKind;
use dlkm_loader::{Kernel, KernelOptions};

use crate::error::CommandError;

/// The architectures of the command-line contract. Some have no linker or machine yet; they
/// are accepted here and refused with a reason where they are used, so scripts written for
/// them fail with a clear message rather than a usage error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchChoice {
    /// The architecture msyms itself runs on: modules run natively.
    Host,
    #[value(name = "x86_64")]
    X86_64,
    Aarch64,
    Mips,
    Mipsel,
}

impl ArchChoice {
    pub fn name(self) -> &'static str {
        match self {
            ArchChoice::Host => "host",
            ArchChoice::X86_64 => "x86_64",
            ArchChoice::Aarch64 => "aarch64",
            ArchChoice::Mips => "mips",
            ArchChoice::Mipsel => "mipsel",
        }
    }

    /// The linker's architecture, if the linker supports it.
    pub fn kind(self) -> Option<ArchKind> {
        match self {
            ArchChoice::Host => ArchKind::host(),
            other => ArchKind::from_name(other.name()),
        }
    }

    /// A kernel whose modules run on this architecture: natively for the host's own, in the
    /// emulated machine for the others.
    pub fn kernel(self) -> Result<Kernel, CommandError> {
        self.kernel_with(KernelOptions::default())
    }

    /// [`ArchChoice::kernel`] with `options`.
    pub fn kernel_with(self, options: KernelOptions) -> Result<Kernel, CommandError> {
        let host = ArchKind::host();
        let kind = self.kind();
        if kind.is_some() && kind == host {
            return Kernel::native_with(options)
                .map_err(|source| CommandError::load("cannot start the native kernel", source));
        }
        let Some(kind) = kind else {
            return Err(CommandError::Arch {
                arch: self.name().to_string(),
                reason: "not an architecture dlkm links".into(),
            });
        };
        emulated(self, kind, options)
    }
}

#[cfg(feature = "emulated")]
fn emulated(_: ArchChoice, kind: ArchKind, options: KernelOptions) -> Result<Kernel, CommandError> {
    Kernel::emulated_with(kind, options)
        .map_err(|source| CommandError::load("cannot start the emulated machine", source))
}

#[cfg(not(feature = "emulated"))]
fn emulated(choice: ArchChoice, _: ArchKind, _: KernelOptions) -> Result<Kernel, CommandError> {
    Err(CommandError::Arch {
        arch: choice.name().to_string(),
        reason: "this msyms is built without the emulated machine (feature `emulated`)".into(),
    })
}
