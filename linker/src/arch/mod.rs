//! What the architectures differ in, and nothing more: a table that says what each raw
//! relocation type means, how an instruction field is encoded, and what a stub looks like.
//! The walk over sections and relocations that uses them is written once, in `link.rs`.

pub mod aarch64;
pub mod mips;
pub mod x86_64;

use object::elf;

use crate::relocations::Reloc;

/// The architectures dlkm links for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArchKind {
    X86_64,
    Aarch64,
    /// MIPS32, o32 ABI, in either byte order.
    Mips {
        big_endian: bool,
    },
}

impl ArchKind {
    pub(crate) fn from_elf(machine: u16, is_64: bool, big_endian: bool) -> Option<Self> {
        match (machine, is_64, big_endian) {
            (elf::EM_X86_64, true, false) => Some(ArchKind::X86_64),
            (elf::EM_AARCH64, true, false) => Some(ArchKind::Aarch64),
            (elf::EM_MIPS, false, big_endian) => Some(ArchKind::Mips { big_endian }),
            _ => None,
        }
    }

    /// Bytes in a pointer (and a general register).
    pub fn word_bytes(self) -> u64 {
        match self {
            ArchKind::X86_64 | ArchKind::Aarch64 => 8,
            ArchKind::Mips { .. } => 4,
        }
    }

    /// The name msyms uses for it (`--arch`).
    pub fn name(self) -> &'static str {
        match self {
            ArchKind::X86_64 => "x86_64",
            ArchKind::Aarch64 => "aarch64",
            ArchKind::Mips { big_endian: true } => "mips",
            ArchKind::Mips { big_endian: false } => "mipsel",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "x86_64" | "x86-64" | "amd64" => Some(ArchKind::X86_64),
            "aarch64" | "arm64" => Some(ArchKind::Aarch64),
            "mips" => Some(ArchKind::Mips { big_endian: true }),
            "mipsel" => Some(ArchKind::Mips { big_endian: false }),
            _ => None,
        }
    }

    /// The architecture of the running program, if dlkm links for it.
    pub fn host() -> Option<Self> {
        if cfg!(target_arch = "x86_64") {
            Some(ArchKind::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(ArchKind::Aarch64)
        } else {
            None
        }
    }

    pub fn address_bits(self) -> u32 {
        match self {
            ArchKind::X86_64 | ArchKind::Aarch64 => 64,
            ArchKind::Mips { .. } => 32,
        }
    }

    pub fn big_endian(self) -> bool {
        matches!(self, ArchKind::Mips { big_endian: true })
    }

    /// What a raw relocation type means on this architecture; `None` for types dlkm refuses.
    pub fn reloc_kind(self, r_type: u32) -> Option<&'static RelocKind> {
        crate::with_arch!(self, A => A::classify(r_type).ok())
    }

    /// The module's global pointer (MIPS `_gp`) for an image at `base`; 0 where there is none.
    pub fn global_pointer(self, layout: &crate::Layout, base: u64) -> u64 {
        crate::with_arch!(self, A => A::global_pointer(layout, base))
    }

    /// The name of a raw relocation type, for messages.
    pub fn reloc_name(self, r_type: u32) -> String {
        match self {
            ArchKind::X86_64 => x86_64::reloc_name(r_type),
            ArchKind::Aarch64 => aarch64::reloc_name(r_type),
            ArchKind::Mips { .. } => mips::reloc_name(r_type),
        }
    }
}

/// `Page(x)` of the aarch64 psABI: the 4 KiB page an address is in.
pub(crate) fn page(address: i128) -> i128 {
    address & !0xfff
}

/// How the value of a relocation is computed (psABI notation: S symbol, A addend, P place,
/// G address of the symbol's GOT slot, GOT the GOT's base, Z the symbol's size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expr {
    /// Nothing to do.
    None,
    /// S + A
    Abs,
    /// S + A - P
    Pc,
    /// G + A - P
    GotSlotPc,
    /// G - GOT + A
    GotSlotOffset,
    /// GOT + A - P
    GotBasePc,
    /// S + A - GOT
    GotOffset,
    /// Z + A
    Size,
    /// Page(S + A) - Page(P)
    PagePc,
    /// G: the slot's own address (the encoder keeps the bits it needs)
    GotSlot,
    /// Page(G) - Page(P)
    GotSlotPagePc,
    /// G - Page(GOT)
    GotSlotPageOffset,
    /// S + A - GP, with GP the module's global pointer (MIPS)
    GpRel,
}

impl Expr {
    pub(crate) fn uses_got_slot(self) -> bool {
        matches!(
            self,
            Expr::GotSlotPc
                | Expr::GotSlotOffset
                | Expr::GotSlot
                | Expr::GotSlotPagePc
                | Expr::GotSlotPageOffset
        )
    }
}

/// Where the value goes. Data words are the same for every architecture (in the object's byte
/// order); instruction fields are the architecture's own, numbered by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Data8,
    Data16,
    Data32,
    Data64,
    /// An instruction field, numbered by the architecture.
    Insn(u8),
}

impl Field {
    /// Bytes the field occupies at the place.
    pub fn width(self) -> usize {
        match self {
            Field::Data8 => 1,
            Field::Data16 => 2,
            Field::Data32 | Field::Insn(_) => 4,
            Field::Data64 => 8,
        }
    }
}

/// Which values fit the field before encoding; anything else is an error, never a wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// No check: the relocation keeps only some bits on purpose (the `_NC` kinds).
    Unchecked,
    Signed(u32),
    Unsigned(u32),
    /// Either signed or unsigned interpretation fits (`.long` of an address or a difference).
    Either(u32),
    /// The value must lie in the same `2^bits`-byte region as `P + pc_bias` (MIPS `jal`
    /// reaches only inside the 256 MiB region of its delay slot).
    Region {
        bits: u32,
        pc_bias: u64,
    },
}

impl Range {
    /// The inclusive bounds, or `None` when anything goes.
    #[inline]
    pub(crate) fn bounds(self) -> Option<(i128, i128)> {
        match self {
            Range::Unchecked => None,
            Range::Signed(bits) => Some((-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)),
            Range::Unsigned(bits) => Some((0, (1i128 << bits) - 1)),
            Range::Either(bits) => Some((-(1i128 << (bits - 1)), (1i128 << bits) - 1)),
            Range::Region { .. } => None,
        }
    }

    /// Whether `value`, to be encoded at `place`, fits.
    #[inline]
    pub(crate) fn fits(self, value: i128, place: u64) -> bool {
        match self {
            Range::Region { bits, pc_bias } => {
                let region = |v: i128| v >> bits;
                value >= 0 && region(value) == region(place.wrapping_add(pc_bias) as i128)
            }
            // The bits above the field's must all be copies of its sign (or zero): one shift
            // and a compare per relocation, the same bounds as `bounds`.
            Range::Signed(bits) => matches!(value >> (bits - 1), -1 | 0),
            Range::Unsigned(bits) => value >> bits == 0,
            Range::Either(bits) => matches!(value >> (bits - 1), -1..=1),
            Range::Unchecked => true,
        }
    }

    /// The bounds for a message: the region's for [`Range::Region`].
    pub(crate) fn bounds_at(self, place: u64) -> (i128, i128) {
        match self {
            Range::Region { bits, pc_bias } => {
                let start = (place.wrapping_add(pc_bias) as i128 >> bits) << bits;
                (start, start + (1i128 << bits) - 1)
            }
            _ => self.bounds().unwrap_or((0, 0)),
        }
    }
}

/// When a stub inside the image may stand in for a target that is out of reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StubUse {
    Never,
    /// A call or jump: the stub jumps on to the target.
    Branch,
    /// The address of a function, when it does not fit: the stub is the function's address as
    /// the module sees it (a static linker's canonical PLT entry).
    FunctionAddress,
}

/// One relocation type, as data.
#[derive(Debug, Clone, Copy)]
pub struct RelocKind {
    pub name: &'static str,
    pub expr: Expr,
    pub field: Field,
    pub range: Range,
    /// The value must be a multiple of this.
    pub align: u64,
    pub stub: StubUse,
    /// The value encodes the module's own address in 32 bits, so the module must be placed in
    /// the low 2 GiB (x86_64 `-fno-pic` code).
    pub needs_low_address: bool,
    /// An instruction the linker may rewrite when the GOT slot is not needed.
    pub relaxable: bool,
}

impl RelocKind {
    pub(crate) const fn new(name: &'static str, expr: Expr, field: Field, range: Range) -> Self {
        RelocKind {
            name,
            expr,
            field,
            range,
            align: 1,
            stub: StubUse::Never,
            needs_low_address: false,
            relaxable: false,
        }
    }

    pub(crate) const fn stub(mut self, stub: StubUse) -> Self {
        self.stub = stub;
        self
    }

    pub(crate) const fn low_address(mut self) -> Self {
        self.needs_low_address = true;
        self
    }

    pub(crate) const fn relaxable(mut self) -> Self {
        self.relaxable = true;
        self
    }
}

/// Why a relocation type is not applied: an unknown number, or a known kind dlkm refuses,
/// with advice for the module's author.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    pub hint: Option<&'static str>,
}

/// [`Arch::classify`] remembered per relocation type: a pass over thousands of relocations
/// of a handful of types looks each up in a small table instead of matching it again. The
/// table is direct-mapped by the type's low bits, which tell apart the types each
/// architecture's compilers emit most (x86_64's all fit; aarch64's run from 257); a type that
/// collides with another is matched again.
pub(crate) struct Classifier<A> {
    slots: [Option<(u32, Result<&'static RelocKind, Refusal>)>; CLASSIFIER_SLOTS],
    _arch: std::marker::PhantomData<A>,
}

/// Slots of a [`Classifier`].
const CLASSIFIER_SLOTS: usize = 64;

impl<A: Arch> Classifier<A> {
    pub(crate) fn new() -> Self {
        Classifier {
            slots: [None; CLASSIFIER_SLOTS],
            _arch: std::marker::PhantomData,
        }
    }

    #[inline(always)]
    pub(crate) fn classify(&mut self, r_type: u32) -> Result<&'static RelocKind, Refusal> {
        match self.slots[r_type as usize % CLASSIFIER_SLOTS] {
            Some((known, kind)) if known == r_type => kind,
            _ => self.classify_first(r_type),
        }
    }

    #[cold]
    #[inline(never)]
    fn classify_first(&mut self, r_type: u32) -> Result<&'static RelocKind, Refusal> {
        let kind = A::classify(r_type);
        self.slots[r_type as usize % CLASSIFIER_SLOTS] = Some((r_type, kind));
        kind
    }
}

/// A GOT-relative instruction rewritten to address its target directly.
#[derive(Debug, Clone, Copy)]
pub struct Relaxed {
    /// Bytes to replace, relative to the relocation's place.
    pub edits: &'static [(i64, u8)],
    /// Where the new displacement goes, relative to the relocation's place.
    pub field_offset: i64,
    /// What to add to the plain `S + A - P` value.
    pub value_bias: i64,
}

/// An architecture's side of linking.
pub(crate) trait Arch {
    const KIND: ArchKind;
    const BIG_ENDIAN: bool;
    const STUB_SIZE: u64;
    const STUB_ALIGN: u64;
    const GOT_ENTRY_SIZE: u64;
    /// Whether a stub's target and a GOT slot's content include the relocation's addend (else
    /// the addend stays at the site, as on x86_64 where it corrects for the instruction's
    /// length).
    const SLOT_INCLUDES_ADDEND: bool;
    /// How many bytes before its field a relaxable relocation may read and rewrite (the
    /// instruction's opcode, on x86_64).
    const RELAX_LOOKBEHIND: u64 = 0;

    /// The stub a branch to `symbol` with `addend` goes through, when it needs one.
    fn stub_key(symbol: u32, addend: i64) -> (u32, i64) {
        (
            symbol,
            if Self::SLOT_INCLUDES_ADDEND {
                addend
            } else {
                0
            },
        )
    }

    /// The GOT slot a reference to `symbol` with `addend` uses.
    fn got_key(symbol: u32, addend: i64) -> (u32, i64) {
        Self::stub_key(symbol, addend)
    }

    fn classify(r_type: u32) -> Result<&'static RelocKind, Refusal>;

    /// Writes a stub that jumps to `target`; `stub` is the bytes of its slot.
    fn write_stub(stub: &mut [u8], stub_address: u64, target: u64);

    /// How to rewrite a GOT-relative instruction to address `S + A` directly, if the psABI
    /// allows it for the instruction found around `offset` in `section`; `None` keeps the GOT.
    fn relax_got(_kind: &RelocKind, _section: &[u8], _offset: usize) -> Option<Relaxed> {
        None
    }

    /// Encodes an instruction field. Data fields never get here.
    fn encode_insn(_field: u8, _place: &mut [u8], _value: u64) {}

    /// The addend an instruction field holds, for REL objects.
    fn decode_insn(_field: u8, _place: &[u8]) -> i64 {
        0
    }

    /// Fills in the addends of a REL section's relocations from the bytes they relocate.
    /// Architectures whose addends span several relocations (MIPS HI16/LO16) override it.
    /// `Err` says what is wrong, for a message naming the section.
    fn implicit_addends(data: &[u8], relocs: &mut [Reloc]) -> Result<(), String>
    where
        Self: Sized,
    {
        let mut classifier = Classifier::<Self>::new();
        for reloc in relocs.iter_mut().filter(|r| r.implicit_addend) {
            let Ok(kind) = classifier.classify(reloc.r_type) else {
                continue; // reported when the object is laid out
            };
            reloc.addend = read_field::<Self>(data, reloc.place(), kind.field)?;
        }
        Ok(())
    }

    /// The address a PC-relative reference to an undefined weak symbol takes for S, where the
    /// psABI does not leave it at 0 (AAELF64: a branch goes on with the next instruction, any
    /// other PC-relative value is the bare addend), so that it needs no stub and cannot
    /// overflow.
    fn undefined_weak_address(_kind: &RelocKind, _place: u64) -> Option<u64> {
        None
    }

    /// The module's global pointer, for [`Expr::GpRel`], given the image's base.
    fn global_pointer(_layout: &crate::Layout, _base: u64) -> u64 {
        0
    }
}

/// Reads the addend a field holds (sign-extended for data words).
#[inline]
pub(crate) fn read_field<A: Arch + ?Sized>(
    data: &[u8],
    offset: u64,
    field: Field,
) -> Result<i64, String> {
    let width = field.width();
    let place = usize::try_from(offset)
        .ok()
        .and_then(|o| data.get(o..o.checked_add(width)?))
        .ok_or_else(|| outside_section(offset))?;
    if let Field::Insn(code) = field {
        return Ok(A::decode_insn(code, place));
    }
    if let Ok(word) = <[u8; 4]>::try_from(place) {
        // Most fields of REL objects (MIPS's every data field) are words.
        let value = if A::BIG_ENDIAN {
            i32::from_be_bytes(word)
        } else {
            i32::from_le_bytes(word)
        };
        return Ok(i64::from(value));
    }
    let mut bytes = [0u8; 8];
    let value = if A::BIG_ENDIAN {
        bytes[8 - width..].copy_from_slice(place);
        i64::from_be_bytes(bytes)
    } else {
        bytes[..width].copy_from_slice(place);
        i64::from_le_bytes(bytes)
    };
    let unused = 64 - 8 * width as u32;
    Ok(value << unused >> unused)
}

#[cold]
fn outside_section(offset: u64) -> String {
    format!("relocation at {offset:#x} lies outside its section")
}

#[cfg(test)]
mod tests {
    use super::Range;

    #[test]
    fn fits_agrees_with_the_bounds_at_and_around_every_edge() {
        for bits in [1, 8, 12, 16, 21, 26, 28, 32, 33, 63, 64] {
            for range in [
                Range::Signed(bits),
                Range::Unsigned(bits),
                Range::Either(bits),
            ] {
                let (min, max) = range.bounds().unwrap();
                for edge in [min, max, 0] {
                    for value in [edge - 1, edge, edge + 1] {
                        let inside = (min..=max).contains(&value);
                        assert_eq!(range.fits(value, 0), inside, "{range:?} {value:#x}");
                    }
                }
            }
        }
        assert!(Range::Unchecked.fits(i128::MAX, 0));
    }
}
