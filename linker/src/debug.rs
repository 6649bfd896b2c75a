//! Debug information at the module's address: the object's `.debug_*` sections with their own
//! relocations applied, as a static linker would have left them in an executable whose
//! sections sit where the module was placed.
//!
//! Debug sections are not allocated, so linking never reads them (nor their relocations, which
//! can outnumber the code's): they are read from the object's file only here, when someone asks
//! for source lines. Their relocations go through the same tables as the code's
//! ([`crate::arch`]: classification, REL addends, range check, data encoding); only the
//! absolute kinds belong in debug information (x86_64 `R_X86_64_64`/`_32`, aarch64
//! `R_AARCH64_ABS64`/`ABS32`, MIPS `R_MIPS_32`), anything else leaves that one section out
//! with the reason.
//!
//! Symbol values are those of the link: a symbol of a loaded section is at the module's base
//! plus the section's offset plus its value, a COMMON symbol where the layout put it, an
//! undefined symbol at the address the module's import was bound to. A symbol of a section that
//! is not loaded (another debug section: `.debug_str`, `.debug_abbrev`, `.debug_line`) is its
//! offset in that section, each debug section being at address 0 of its own, as in an
//! executable.

use std::collections::{BTreeMap, HashMap};

use object::elf;
use object::read::{Object as _, ObjectSection as _};
use object::SectionFlags;

use crate::arch::{Arch, Expr, Field};
use crate::error::{malformed, LinkError};
use crate::input::{Object, SymbolDef};
use crate::layout::Layout;
use crate::link::{check_field, check_value, reloc_site, write_data, Import};
use crate::with_arch;

/// The relocated debug sections of one module.
#[derive(Debug, Default)]
pub struct DebugSections {
    /// Relocated contents by section name (`.debug_info`, `.debug_line`, `.debug_str`, …).
    pub sections: BTreeMap<String, Vec<u8>>,
    /// Debug sections left out, each with why: a relocation dlkm does not apply to debug
    /// information, a compressed section, a second section of the same name.
    pub skipped: Vec<SkippedSection>,
}

impl DebugSections {
    /// The relocated bytes of section `name`, if it is there.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.sections.get(name).map(Vec::as_slice)
    }
}

/// A debug section that [`debug_sections`] left out.
#[derive(Debug)]
pub struct SkippedSection {
    pub name: String,
    pub reason: LinkError,
}

impl Object<'_> {
    /// Whether the object carries a line table to map addresses to source lines
    /// (`.debug_line`, with the `.debug_info` that says which code it covers). Cheap: it looks
    /// at section names only.
    pub fn has_line_table(&self) -> bool {
        let present = |name: &str| {
            self.sections
                .iter()
                .any(|s| s.kind.is_none() && s.name == name)
        };
        present(".debug_line") && present(".debug_info")
    }
}

/// The `.debug_*` sections of `object`, relocated for the image `layout` describes at `base`,
/// its undefined symbols bound as `imports` says (what [`crate::link()`] returned in
/// [`crate::LinkOutput`]). A section whose relocations cannot all be applied is left out, with
/// the reason in [`DebugSections::skipped`]; the error is only for a file that cannot be read
/// again.
pub fn debug_sections(
    object: &Object,
    layout: &Layout,
    base: u64,
    imports: &[Import],
) -> Result<DebugSections, LinkError> {
    with_arch!(object.arch, A => relocate::<A>(object, layout, base, imports))
}

fn is_debug(name: &str) -> bool {
    name.starts_with(".debug_") || name.starts_with(".zdebug_")
}

fn relocate<A: Arch>(
    object: &Object,
    layout: &Layout,
    base: u64,
    imports: &[Import],
) -> Result<DebugSections, LinkError> {
    let file = object::File::parse(object.file).map_err(|e| malformed(&object.name, e))?;
    let values = symbol_values(object, layout, base, imports);
    let mut debug = DebugSections::default();
    for section in file.sections() {
        let Some(input) = object.sections.get(section.index().0) else {
            continue;
        };
        if input.kind.is_some() || !is_debug(input.name) {
            continue;
        }
        let name = input.name.to_string();
        let relocated = if debug.sections.contains_key(&name) {
            Err(LinkError::Unsupported {
                object: object.name.clone(),
                what: format!("a second debug section named {name} (from a section group)"),
            })
        } else {
            relocate_section::<A>(object, &file, &section, input.name, &values)
        };
        match relocated {
            Ok(bytes) => {
                debug.sections.insert(name, bytes);
            }
            Err(reason) => debug.skipped.push(SkippedSection { name, reason }),
        }
    }
    Ok(debug)
}

/// The value of each symbol as the link gave it; `None` where the link did not resolve it
/// (an undefined symbol only debug information names).
fn symbol_values(
    object: &Object,
    layout: &Layout,
    base: u64,
    imports: &[Import],
) -> Vec<Option<u64>> {
    let imported: HashMap<&str, u64> = imports
        .iter()
        .map(|i| (i.name.as_str(), i.symbol.map_or(0, |s| s.address)))
        .collect();
    object
        .symbols
        .iter()
        .enumerate()
        .map(|(index, symbol)| match symbol.def {
            SymbolDef::Section(s) => match layout.section_offsets.get(s).copied().flatten() {
                Some(offset) => base
                    .checked_add(offset)
                    .and_then(|a| a.checked_add(symbol.value)),
                // Not loaded: a debug (or other non-allocated) section, at address 0.
                None if object.sections.get(s).is_some_and(|s| s.kind.is_none()) => {
                    Some(symbol.value)
                }
                None => None,
            },
            SymbolDef::Absolute => Some(symbol.value),
            SymbolDef::Common { .. } => layout
                .common_offsets
                .get(&(index as u32))
                .and_then(|&offset| base.checked_add(offset)),
            SymbolDef::Undefined if index == 0 => Some(0),
            SymbolDef::Undefined => imported.get(symbol.name).copied(),
        })
        .collect()
}

fn relocate_section<'data, A: Arch>(
    object: &Object<'data>,
    file: &object::File<'data>,
    section: &object::Section<'data, '_>,
    name: &str,
    values: &[Option<u64>],
) -> Result<Vec<u8>, LinkError> {
    let compressed = match section.flags() {
        SectionFlags::Elf { sh_flags } => sh_flags & u64::from(elf::SHF_COMPRESSED) != 0,
        _ => false,
    };
    if compressed || name.starts_with(".zdebug_") {
        return Err(LinkError::Unsupported {
            object: object.name.clone(),
            what: format!("the compressed debug section {name}"),
        });
    }
    let data = section
        .data()
        .map_err(|e| malformed(&object.name, format!("section {name}: {e}")))?;
    let relocs = object.read_relocations(file, section.index(), name, data)?;
    let mut bytes = data.to_vec();
    for reloc in &relocs {
        let site = || reloc_site(object, name, &reloc);
        let kind =
            A::classify(reloc.r_type).map_err(|refusal| LinkError::UnsupportedRelocation {
                site: site(),
                hint: refusal.hint.map(str::to_string),
            })?;
        match (kind.expr, kind.field) {
            (Expr::None, _) => continue,
            (Expr::Abs, Field::Data8 | Field::Data16 | Field::Data32 | Field::Data64) => {}
            _ => {
                return Err(LinkError::UnsupportedRelocation {
                    site: site(),
                    hint: Some(
                        "debug information holds absolute addresses and offsets only".into(),
                    ),
                })
            }
        }
        check_field(kind, &reloc, bytes.len() as u64, site)?;
        let symbol = values
            .get(reloc.symbol as usize)
            .copied()
            .flatten()
            .ok_or_else(|| LinkError::BadRelocation {
                site: site(),
                detail: "the symbol was not resolved when the module was linked".into(),
            })?;
        let value = i128::from(symbol) + i128::from(reloc.addend);
        // Debug sections are at address 0: the place matters to no absolute kind.
        check_value(kind, value, reloc.place(), site, || None)?;
        write_data::<A>(
            &mut bytes[reloc.offset as usize..],
            kind.field,
            value as u64,
        );
    }
    Ok(bytes)
}
