//! Writes small synthetic relocatable objects for the fuzz targets' seed corpora, for every
//! architecture the linker takes: one object per relocation type the linker applies, and one
//! with all of them, each against an undefined function, a local function, a section symbol
//! and an undefined weak symbol, over instruction words of the kind the relocation patches.
//! Real objects (corpus/<arch>/) are better seeds; these make sure every relocation type is in
//! the corpus from the first run, whatever has been built.
//!
//! Usage: `seedgen OUT_DIR` writes OUT_DIR/link_x86_64, OUT_DIR/link_aarch64, OUT_DIR/link_mips.

use std::path::Path;

use dlkm_linker::{ArchKind, Expr, Field, LayoutOptions, Object};
use object::write::{self, Relocation, SectionId, StandardSection, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags, SymbolKind,
    SymbolScope,
};

/// Highest relocation number worth asking about (aarch64's dynamic ones end at 1041).
const MAX_R_TYPE: u32 = 1100;

fn main() {
    let out = std::env::args()
        .nth(1)
        .expect("usage: seedgen OUT_DIR (writes OUT_DIR/link_<family>/*.o)");
    let out = Path::new(&out);
    let families = [
        ("link_x86_64", ArchKind::X86_64),
        ("link_aarch64", ArchKind::Aarch64),
        ("link_mips", ArchKind::Mips { big_endian: true }),
        ("link_mips", ArchKind::Mips { big_endian: false }),
    ];
    let (mut written, mut laid_out) = (0, 0);
    for (target, arch) in families {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir).expect("create the output directory");
        let kinds: Vec<u32> = (0..=MAX_R_TYPE)
            .filter(|&r| arch.reloc_kind(r).is_some_and(|k| k.expr != Expr::None))
            .collect();
        let all = TARGETS
            .iter()
            .flat_map(|&target| kinds.iter().map(move |&r_type| (r_type, target)))
            .collect();
        let mut objects = vec![(format!("{}-all.o", arch.name()), all)];
        for &r_type in &kinds {
            let name = arch.reloc_name(r_type).to_lowercase();
            for target in TARGETS {
                let file = format!("{}-{name}-{}.o", arch.name(), target.name());
                objects.push((file, vec![(r_type, target)]));
            }
        }
        for (file, relocs) in objects {
            let bytes = build(arch, &relocs);
            let object = Object::parse(&file, &bytes)
                .unwrap_or_else(|e| panic!("{file}: the seed does not parse: {e}"));
            laid_out +=
                usize::from(dlkm_linker::layout(&object, &LayoutOptions::default()).is_ok());
            std::fs::write(dir.join(&file), &bytes).expect("write a seed");
            written += 1;
        }
    }
    eprintln!(
        "seedgen: {written} synthetic objects ({laid_out} lay out) in {}",
        out.display()
    );
}

/// What a relocation is applied against: each kind of symbol takes another path through the
/// linker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// A function of the object itself.
    Local,
    /// A section symbol, with an addend into the section.
    Section,
    /// A kernel function.
    Undefined,
    /// An undefined weak symbol nothing provides.
    Weak,
}

/// In the order the all-in-one object uses: the ones most likely to link first, since the first
/// failing relocation ends a link.
const TARGETS: [Target; 4] = [
    Target::Local,
    Target::Section,
    Target::Undefined,
    Target::Weak,
];

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Local => "local",
            Target::Section => "section",
            Target::Undefined => "undefined",
            Target::Weak => "weak",
        }
    }
}

fn build(arch: ArchKind, relocs: &[(u32, Target)]) -> Vec<u8> {
    let (architecture, endian) = match arch {
        ArchKind::X86_64 => (Architecture::X86_64, Endianness::Little),
        ArchKind::Aarch64 => (Architecture::Aarch64, Endianness::Little),
        ArchKind::Mips { big_endian: true } => (Architecture::Mips, Endianness::Big),
        ArchKind::Mips { big_endian: false } => (Architecture::Mips, Endianness::Little),
    };
    let mut obj = write::Object::new(BinaryFormat::Elf, architecture, endian);
    let text = obj.section_id(StandardSection::Text);
    let data = obj.section_id(StandardSection::Data);
    let rodata = obj.section_id(StandardSection::ReadOnlyData);
    let bss = obj.section_id(StandardSection::UninitializedData);
    let init = obj.add_section(Vec::new(), b".init_array".to_vec(), SectionKind::Data);
    let fini = obj.add_section(Vec::new(), b".fini_array.100".to_vec(), SectionKind::Data);

    obj.append_section_data(rodata, b"a read-only string\0", 8);
    obj.append_section_bss(bss, 256, 16);
    let helper_code = instruction(arch, None);
    let helper_offset = obj.append_section_data(text, &helper_code, 16);
    let local = obj.add_symbol(Symbol {
        name: b"helper".to_vec(),
        value: helper_offset,
        size: helper_code.len() as u64,
        kind: SymbolKind::Text,
        scope: SymbolScope::Compilation,
        weak: false,
        section: SymbolSection::Section(text),
        flags: SymbolFlags::None,
    });
    let table = obj.append_section_data(data, &[0x5a; 32], 16);
    obj.add_symbol(Symbol {
        name: b"table".to_vec(),
        value: table,
        size: 32,
        kind: SymbolKind::Data,
        scope: SymbolScope::Dynamic,
        weak: false,
        section: SymbolSection::Section(data),
        flags: SymbolFlags::None,
    });
    obj.add_symbol(Symbol {
        name: b"shared".to_vec(),
        value: 8,
        size: 24,
        kind: SymbolKind::Data,
        scope: SymbolScope::Dynamic,
        weak: false,
        section: SymbolSection::Common,
        flags: SymbolFlags::None,
    });
    let undefined = |obj: &mut write::Object, name: &str, kind, weak| {
        obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value: 0,
            size: 0,
            kind,
            scope: SymbolScope::Dynamic,
            weak,
            section: SymbolSection::Undefined,
            flags: SymbolFlags::None,
        })
    };
    let printk = undefined(&mut obj, "printk", SymbolKind::Text, false);
    let section_symbol = obj.section_symbol(data);
    let weak = undefined(&mut obj, "optional_hook", SymbolKind::Text, true);
    let variable = undefined(&mut obj, "jiffies", SymbolKind::Data, false);

    for (i, &(r_type, target)) in relocs.iter().enumerate() {
        let (symbol, addend) = match target {
            Target::Local => (local, 0),
            Target::Section => (section_symbol, 16),
            Target::Undefined => (printk, 8),
            Target::Weak => (weak, -4i64),
        };
        let kind = arch.reloc_kind(r_type).expect("a kind the linker applies");
        let implicit = matches!(arch, ArchKind::Mips { .. });
        let (section, bytes, at) = match kind.field {
            Field::Insn(_) => (text, instruction(arch, Some(kind.name)), 0),
            _ if arch == ArchKind::X86_64 && kind.name.contains("GOTPCRELX") => {
                // mov foo@GOTPCREL(%rip), %rax / call *foo@GOTPCREL(%rip).
                let code = if i % 2 == 0 {
                    vec![0x48, 0x8b, 0x05, 0, 0, 0, 0]
                } else {
                    vec![0xff, 0x15, 0, 0, 0, 0]
                };
                let at = code.len() as u64 - 4;
                (text, code, at)
            }
            Field::Data32 if arch == ArchKind::X86_64 && kind.expr == Expr::Pc => {
                (text, vec![0xe8, 0, 0, 0, 0], 1) // call rel32
            }
            field => {
                // REL objects keep the addend in the place.
                let mut bytes = vec![0; 8];
                let width = field.width();
                if implicit && arch.big_endian() {
                    bytes[..width].copy_from_slice(&addend.to_be_bytes()[8 - width..]);
                } else if implicit {
                    bytes[..width].copy_from_slice(&addend.to_le_bytes()[..width]);
                }
                (data, bytes, 0)
            }
        };
        let offset = obj.append_section_data(section, &bytes, 8) + at;
        obj.add_relocation(
            section,
            Relocation {
                offset,
                symbol,
                addend: if implicit { 0 } else { addend },
                flags: RelocationFlags::Elf { r_type },
            },
        )
        .expect("add a relocation");
    }

    // Constructors, a destructor, a reference to a kernel variable and the linker's own names.
    let word = arch.address_bits() as usize / 8;
    let absolute = match arch {
        ArchKind::X86_64 => object::elf::R_X86_64_64,
        ArchKind::Aarch64 => object::elf::R_AARCH64_ABS64,
        ArchKind::Mips { .. } => object::elf::R_MIPS_32,
    };
    let pointer = |obj: &mut write::Object, section: SectionId, symbol| {
        let offset = obj.append_section_data(section, &vec![0; word], word as u64);
        obj.add_relocation(
            section,
            Relocation {
                offset,
                symbol,
                addend: 0,
                flags: RelocationFlags::Elf { r_type: absolute },
            },
        )
        .expect("add a pointer");
    };
    pointer(&mut obj, init, local);
    pointer(&mut obj, fini, local);
    pointer(&mut obj, data, variable);
    for name in ["_GLOBAL_OFFSET_TABLE_", "__dso_handle"] {
        let symbol = undefined(&mut obj, name, SymbolKind::Data, false);
        pointer(&mut obj, data, symbol);
    }
    obj.write().expect("write the object")
}

/// An instruction of the kind a relocation patches, as the assembler leaves it (zero
/// immediate; MIPS REL objects keep a small addend in it); `None` for a plain return.
fn instruction(arch: ArchKind, reloc: Option<&str>) -> Vec<u8> {
    let name = reloc.unwrap_or("");
    let word: u32 = match arch {
        ArchKind::X86_64 => return vec![0xc3, 0xcc, 0xcc, 0xcc], // ret
        ArchKind::Aarch64 => match name {
            _ if reloc.is_none() => 0xd65f_03c0,        // ret
            n if n.contains("CALL26") => 0x9400_0000,   // bl
            n if n.contains("JUMP26") => 0x1400_0000,   // b
            n if n.contains("CONDBR19") => 0x5400_0000, // b.eq
            n if n.contains("TSTBR14") => 0x3618_0000,  // tbz w0, #3
            n if n.contains("PREL19") || n.contains("PREL_LO19") => 0x5800_0000, // ldr x0, lit
            n if n.contains("ADR_PREL_LO21") => 0x1000_0000, // adr x0
            n if n.contains("PAGE") || n.contains("HI21") => 0x9000_0000, // adrp x0
            n if n.contains("ADD_ABS") => 0x9100_0000,  // add x0, x0, #0
            n if n.contains("LO12") || n.contains("LO15") => 0xf940_0000, // ldr x0, [x0]
            n if n.contains("_NC") => 0xf280_0000,      // movk x0, #0
            n if n.contains("MOVW") => 0xd280_0000,     // movz x0, #0
            _ => 0xd503_201f,                           // nop
        },
        ArchKind::Mips { .. } => match name {
            _ if reloc.is_none() => 0x03e0_0008,                  // jr $ra
            "R_MIPS_26" => 0x0c00_0001,                           // jal, addend 4
            "R_MIPS_HI16" | "R_MIPS_PCHI16" => 0x3c04_0001,       // lui $a0, 1
            "R_MIPS_LO16" | "R_MIPS_PCLO16" => 0x2484_0010,       // addiu $a0, $a0, 0x10
            "R_MIPS_GPREL16" | "R_MIPS_LITERAL" => 0x8f84_0000,   // lw $a0, 0($gp)
            "R_MIPS_PC16" | "R_MIPS_GNU_REL16_S2" => 0x1000_ffff, // b .-4+4
            "R_MIPS_PC19_S2" => 0xec88_0000,                      // lwpc $a0
            "R_MIPS_PC21_S2" => 0xd880_0000,                      // beqzc $a0
            "R_MIPS_PC26_S2" => 0xebff_ffff,                      // balc, addend -4
            _ => 0x0000_0000,                                     // nop
        },
    };
    if arch.big_endian() {
        word.to_be_bytes().to_vec()
    } else {
        word.to_le_bytes().to_vec()
    }
}
