//! What the linker's tests share when they write small objects with `object::write`.

use object::write::{self, Relocation};
use object::RelocationFlags;

/// Adds an ELF relocation of type `r_type` at `offset` in `section`.
pub fn add_reloc(
    obj: &mut write::Object<'static>,
    section: write::SectionId,
    offset: u64,
    symbol: write::SymbolId,
    addend: i64,
    r_type: u32,
) {
    let flags = RelocationFlags::Elf { r_type };
    let relocation = Relocation {
        offset,
        symbol,
        addend,
        flags,
    };
    obj.add_relocation(section, relocation).expect("relocation");
}
