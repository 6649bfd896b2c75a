//! aarch64 (AAPCS64 / ELF for the Arm 64-bit Architecture, RELA).

use super::{Arch, ArchKind, Refusal, RelocKind};

pub(crate) struct Aarch64;

pub(crate) fn reloc_name(r_type: u32) -> String {
    format!("R_AARCH64_<{r_type}>")
}

impl Arch for Aarch64 {
    const KIND: ArchKind = ArchKind::Aarch64;
    const BIG_ENDIAN: bool = false;
    const STUB_SIZE: u64 = 16;
    const STUB_ALIGN: u64 = 8;
    const GOT_ENTRY_SIZE: u64 = 8;
    const SLOT_INCLUDES_ADDEND: bool = true;

    fn classify(_r_type: u32) -> Result<&'static RelocKind, Refusal> {
        Err(Refusal {
            hint: Some("aarch64 relocations are not implemented yet"),
        })
    }

    fn write_stub(_stub: &mut [u8], _stub_address: u64, _target: u64) {}
}
