//! dlkm-linker: links one ELF relocatable object (`.o`) for any base address and any
//! supported architecture. Bytes in, bytes out: nothing here maps memory or runs code, so every
//! architecture links on every host.
//!
//! The phases, each a public step so the loader can put the machine's work in between:
//! [`Object::parse`] → [`layout()`] (final size, stubs and GOT counted) → the caller picks a base →
//! [`link_into`] (resolve through a [`Resolver`], relocate). On demand, [`debug_sections`] gives
//! the object's DWARF relocated to the same addresses, for source lines, and [`debug_object()`] an
//! ELF object describing the placed module for debuggers. A linked image records its import
//! sites, so [`rebind()`] can move its imports later without linking again.

#![forbid(unsafe_code)]

pub mod arch;
mod debug;
mod debug_object;
mod error;
mod input;
mod layout;
mod link;
mod linked_symbols;
mod rebind;
mod relocations;

pub use arch::{ArchKind, Expr, Field, Range, RelocKind, StubUse};
pub use debug::{debug_sections, DebugSections, SkippedSection};
pub use debug_object::{debug_object, DebugObject};
pub use error::{LinkError, RelocSite};
pub use input::{Object, Section, SectionKind, Symbol, SymbolDef, SymbolType};
pub use layout::{
    layout, Area, CopyRequest, Layout, LayoutOptions, Segment, SegmentKind, DEFAULT_MAX_ALIGN,
    DEFAULT_MAX_IMAGE_SIZE, EH_FRAME_TERMINATOR,
};
pub use link::{
    link, link_into, relocate_into, resolve, Bindings, ExternalKind, ExternalSymbol, Import,
    LinkOutput, Resolver,
};
pub use linked_symbols::{BadSymbolTable, LinkedSymbol, LinkedSymbols, SharedBytes};
pub use rebind::{rebind, rebindable, ImportSite, SiteForm};
pub use relocations::{Iter as RelocIter, Reloc, Relocations};

/// Runs `$body` with `$A` bound to the architecture type of `$kind`: one dispatch per object,
/// none per relocation.
#[macro_export]
#[doc(hidden)]
macro_rules! with_arch {
    ($kind:expr, $A:ident => $body:expr) => {
        match $kind {
            $crate::arch::ArchKind::X86_64 => {
                type $A = $crate::arch::x86_64::X86_64;
                $body
            }
            $crate::arch::ArchKind::Aarch64 => {
                type $A = $crate::arch::aarch64::Aarch64;
                $body
            }
            $crate::arch::ArchKind::Mips { big_endian: true } => {
                type $A = $crate::arch::mips::Mips<true>;
                $body
            }
            $crate::arch::ArchKind::Mips { big_endian: false } => {
                type $A = $crate::arch::mips::Mips<false>;
                $body
            }
        }
    };
}

#[cfg(test)]
mod test_support {
    /// A committed corpus object, by its path under `corpus/`.
    pub(crate) fn corpus(path: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../corpus")
            .join(path);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}
