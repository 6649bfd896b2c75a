//! The second linker: links a corpus object with ld.lld at the addresses dlkm chose, so that the
//! bytes of every input section can be compared.
//!
//! dlkm's layout decides only *where* each input section goes; ld.lld then computes every byte
//! on its own, through a linker script that puts each input section at that address and
//! `--defsym` for each undefined symbol.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use dlkm_linker::{ArchKind, Layout, Object};
use object::read::{Object as _, ObjectSection as _, ObjectSymbol as _};

/// The emulation ld.lld needs for an architecture.
fn emulation(arch: ArchKind) -> &'static str {
    match arch {
        ArchKind::X86_64 => "elf_x86_64",
        ArchKind::Aarch64 => "aarch64linux",
        ArchKind::Mips { big_endian: true } => "elf32btsmip",
        ArchKind::Mips { big_endian: false } => "elf32ltsmip",
    }
}

/// Whether ld.lld can be run.
pub fn available() -> bool {
    Command::new("ld.lld")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A linker script placing each loaded input section of `object` (file `file_name`) where
/// `layout` puts it relative to `base`, and ld.lld's COMMON area where dlkm puts its; `None` if two loaded sections share a name, which a script cannot tell apart.
/// `.eh_frame` is discarded: ld.lld rewrites it (merging CIEs), so it is not compared.
pub fn script(object: &Object, layout: &Layout, base: u64, file_name: &str) -> Option<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut placed: Vec<(u64, String)> = Vec::new();
    for (index, offset) in layout.section_offsets.iter().enumerate() {
        let Some(offset) = offset else { continue };
        let name = object.sections[index].name;
        if !seen.insert(name) {
            return None;
        }
        let statement = format!("{{ {file_name}({name}) }}");
        placed.push((
            base + offset,
            format!(".dlkm.{index} {:#x} : {statement}", base + offset),
        ));
    }
    if let Some(&common) = layout.common_offsets.values().min() {
        placed.push((
            base + common,
            format!(".common {:#x} : {{ *(COMMON) }}", base + common),
        ));
    }
    // ld.lld assigns file offsets in script order, so the statements follow the addresses.
    placed.sort();
    let mut text = String::from("SECTIONS {\n");
    for (_, statement) in placed {
        let _ = writeln!(text, "  {statement}");
    }
    // Past the image: ld.lld's GOT (and x86_64's _GLOBAL_OFFSET_TABLE_ in .got.plt) are laid out
    // by its own rules; what depends on them is not compared.
    let end = base + layout.mapped_size() + 0x10_0000;
    let _ = writeln!(text, "  .got {end:#x} : {{ *(.got) }}");
    let _ = writeln!(
        text,
        "  .got.plt {:#x} : {{ *(.got.plt) }}",
        end + 0x10_0000
    );
    let _ = writeln!(
        text,
        "  /DISCARD/ : {{ *(.eh_frame) *(.note.GNU-stack) *(.comment) }}"
    );
    text.push_str("}\n");
    Some(text)
}

/// What ld.lld made of an object.
pub struct Output {
    /// Each output section `.dlkm.N`'s address and bytes, by input section index N.
    pub sections: BTreeMap<usize, (u64, Vec<u8>)>,
    /// Its GOT's address and bytes.
    pub got: Option<(u64, Vec<u8>)>,
    /// The value it gave `_gp` (MIPS), if any.
    pub gp: Option<u64>,
    /// The debug sections (`.debug_*`), relocated, by name.
    pub debug: BTreeMap<String, Vec<u8>>,
}

/// Links the object `bytes` (named `file_name` in `script`) with ld.lld.
pub fn link(
    arch: ArchKind,
    bytes: &[u8],
    file_name: &str,
    script: &str,
    defsyms: &BTreeMap<String, u64>,
    work: &Path,
) -> Result<Output, String> {
    std::fs::create_dir_all(work).map_err(|e| e.to_string())?;
    let script_path = work.join("layout.ld");
    let output = work.join("out.elf");
    let object_path = work.join(file_name);
    std::fs::write(&script_path, script).map_err(|e| e.to_string())?;
    std::fs::write(&object_path, unmerged(bytes)?).map_err(|e| e.to_string())?;
    let mut command = Command::new("ld.lld");
    command
        .arg("-m")
        .arg(emulation(arch))
        .args([
            "-static",
            "--no-dynamic-linker",
            "-e",
            "0",
            "--build-id=none",
        ])
        .args(["-z", "norelro", "-z", "noexecstack", "--no-gc-sections"])
        // dlkm rewrites no aarch64 instruction pairs (ADRP+ADD to ADR, ADRP+LDR to ADRP+ADD);
        // x86_64's GOTPCRELX relaxations are compared, so they stay on there.
        .args(if arch == ArchKind::Aarch64 {
            &["--no-relax"][..]
        } else {
            &[]
        })
        .arg("-T")
        .arg(&script_path)
        .arg("-o")
        .arg(&output)
        .current_dir(work)
        .arg(file_name);
    for (name, address) in defsyms {
        command.arg(format!("--defsym={name}={address:#x}"));
    }
    let done = command.output().map_err(|e| format!("ld.lld: {e}"))?;
    if !done.status.success() {
        return Err(format!(
            "ld.lld failed: {}",
            String::from_utf8_lossy(&done.stderr)
        ));
    }
    let bytes = std::fs::read(&output).map_err(|e| e.to_string())?;
    let file = object::File::parse(&*bytes).map_err(|e| e.to_string())?;
    let mut output = Output {
        sections: BTreeMap::new(),
        got: None,
        gp: file
            .symbols()
            .find(|s| s.name() == Ok("_gp"))
            .map(|s| s.address()),
        debug: BTreeMap::new(),
    };
    for section in file.sections() {
        let Ok(name) = section.name() else { continue };
        let data = section.uncompressed_data().map_err(|e| e.to_string())?;
        let contents = (section.address(), data.into_owned());
        if name == ".got" {
            output.got = Some(contents);
        } else if name.starts_with(".debug_") {
            output.debug.insert(name.to_string(), contents.1);
        } else if let Some(index) = name.strip_prefix(".dlkm.").and_then(|n| n.parse().ok()) {
            output.sections.insert(index, contents);
        }
    }
    Ok(output)
}

/// A copy of an ELF object with SHF_MERGE and SHF_STRINGS cleared from every section, so that
/// ld.lld keeps mergeable sections byte for byte as dlkm does (it would deduplicate them).
fn unmerged(bytes: &[u8]) -> Result<Vec<u8>, String> {
    const SHF_MERGE_STRINGS: u8 = 0x10 | 0x20;
    let mut copy = bytes.to_vec();
    let bad = || "not an ELF object".to_string();
    let is_64 = *bytes.get(4).ok_or_else(bad)? == 2;
    let big = *bytes.get(5).ok_or_else(bad)? == 2;
    let read = |at: usize, len: usize| -> Result<u64, String> {
        let field = bytes.get(at..at + len).ok_or_else(bad)?;
        let mut word = [0u8; 8];
        if big {
            word[8 - len..].copy_from_slice(field);
            Ok(u64::from_be_bytes(word))
        } else {
            word[..len].copy_from_slice(field);
            Ok(u64::from_le_bytes(word))
        }
    };
    let (shoff, shentsize, shnum, flags_len) = if is_64 {
        (read(0x28, 8)?, read(0x3a, 2)?, read(0x3c, 2)?, 8)
    } else {
        (read(0x20, 4)?, read(0x2e, 2)?, read(0x30, 2)?, 4)
    };
    for index in 0..shnum {
        // sh_flags follows sh_name and sh_type, 8 bytes into a section header.
        let flags = (shoff + index * shentsize + 8) as usize;
        // The flag bits sit in the lowest byte of the field.
        let low = if big { flags + flags_len - 1 } else { flags };
        *copy.get_mut(low).ok_or_else(bad)? &= !SHF_MERGE_STRINGS;
    }
    Ok(copy)
}

/// Where an x86_64 RIP-relative GOT reference at `offset` of a linked section leads: through
/// the GOT slot it names, or straight to the target where the instruction was relaxed.
/// `section` is the section's bytes at `section_address`; `got` the GOT's address and bytes.
pub fn x86_64_got_target(
    section: &[u8],
    section_address: u64,
    offset: usize,
    addend: i64,
    got: Option<(u64, &[u8])>,
) -> Option<u64> {
    let word = |bytes: &[u8], at: usize| -> Option<i64> {
        Some(i32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as i64)
    };
    let place = section_address as i64 + offset as i64;
    // A relaxed `jmp *foo@GOTPCREL(%rip)` became `jmp foo; nop`: its displacement moved back.
    let relaxed_jump = offset >= 2 && section.get(offset - 2) == Some(&0xe9);
    let address = if relaxed_jump {
        (place - 1 + 4 + word(section, offset - 1)?) as u64
    } else {
        (place - addend + word(section, offset)?) as u64
    };
    match got {
        Some((got_address, bytes))
            if (got_address..got_address + bytes.len() as u64).contains(&address) =>
        {
            let at = (address - got_address) as usize;
            Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
        }
        _ => Some(address),
    }
}
