//! MIPS32, o32 ABI (System V MIPS psABI, REL: addends live in the relocated place), in both
//! byte orders.

use super::{Arch, ArchKind, Refusal, RelocKind};

pub(crate) struct Mips<const BIG_ENDIAN: bool>;

pub(crate) fn reloc_name(r_type: u32) -> String {
    format!("R_MIPS_<{r_type}>")
}

impl<const BIG: bool> Arch for Mips<BIG> {
    const KIND: ArchKind = ArchKind::Mips { big_endian: BIG };
    const BIG_ENDIAN: bool = BIG;
    const STUB_SIZE: u64 = 16;
    const STUB_ALIGN: u64 = 4;
    const GOT_ENTRY_SIZE: u64 = 4;
    const SLOT_INCLUDES_ADDEND: bool = true;

    fn classify(_r_type: u32) -> Result<&'static RelocKind, Refusal> {
        Err(Refusal {
            hint: Some("MIPS relocations are not implemented yet"),
        })
    }

    fn write_stub(_stub: &mut [u8], _stub_address: u64, _target: u64) {}
}
