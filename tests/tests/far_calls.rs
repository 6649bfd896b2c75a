//! Far calls in real objects: every corpus object of every architecture linked twice, once
//! with the kernel's functions in reach of a direct branch and once out of it. In reach, no
//! stub is used and every call names its target directly; out of reach, every call to a
//! kernel function goes to a stub that jumps to that function, while calls inside the module
//! stay direct. Targets are decoded from the linked instructions, not taken from the linker.

use std::collections::BTreeMap;
use std::path::PathBuf;

use dlkm_linker::{
    layout, link, ArchKind, ExternalKind, ExternalSymbol, LayoutOptions, Object, StubUse, SymbolDef,
};
use dlkm_tests::corpus_dir;

const BASE: u64 = 0x1000_0000;
/// In reach of everything from an image at BASE (64 MiB away, same MIPS region).
const NEAR: u64 = BASE + 0x0400_0000;

/// Out of reach of a direct call: beyond ±2 GiB (x86_64) and ±128 MiB (aarch64), and in
/// another 256 MiB region (MIPS).
fn far(arch: ArchKind) -> u64 {
    match arch {
        ArchKind::Mips { .. } => 0x4000_0000,
        _ => BASE + 0x1_0000_0000,
    }
}

fn objects() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for arch in ["x86_64", "aarch64", "mips", "mipsel"] {
        let Ok(variants) = std::fs::read_dir(corpus_dir().join(arch)) else {
            continue;
        };
        for variant in variants.flatten().filter(|e| e.path().is_dir()) {
            for entry in std::fs::read_dir(variant.path()).into_iter().flatten() {
                let path = entry.expect("directory entry").path();
                if path.extension().is_some_and(|e| e == "o") {
                    found.push(path);
                }
            }
        }
    }
    found.sort();
    found
}

/// Where a branch instruction at `place` goes, read from the linked word(s).
fn branch_target(arch: ArchKind, image: &[u8], at: usize, place: u64) -> u64 {
    let word = read_u32(arch, image, at);
    match arch {
        ArchKind::X86_64 => place
            .wrapping_add(4)
            .wrapping_add(word as i32 as i64 as u64),
        ArchKind::Aarch64 => {
            let offset = ((u64::from(word & 0x03ff_ffff) << 38) as i64 >> 36) as u64;
            place.wrapping_add(offset)
        }
        ArchKind::Mips { .. } => {
            ((place + 4) & !0x0fff_ffff) | (u64::from(word & 0x03ff_ffff) << 2)
        }
    }
}

/// Where the stub at `at` jumps.
fn stub_target(arch: ArchKind, image: &[u8], at: usize) -> u64 {
    match arch {
        ArchKind::X86_64 => {
            assert_eq!(&image[at..at + 6], [0xff, 0x25, 0, 0, 0, 0], "jmp *0(%rip)");
            u64::from_le_bytes(image[at + 6..at + 14].try_into().unwrap())
        }
        ArchKind::Aarch64 => {
            assert_eq!(read_u32(arch, image, at), 0x5800_0050, "ldr x16, #8");
            assert_eq!(read_u32(arch, image, at + 4), 0xd61f_0200, "br x16");
            u64::from_le_bytes(image[at + 8..at + 16].try_into().unwrap())
        }
        ArchKind::Mips { .. } => {
            let lui = read_u32(arch, image, at);
            let addiu = read_u32(arch, image, at + 4);
            assert_eq!(lui & 0xffff_0000, 0x3c19_0000, "lui $t9");
            assert_eq!(addiu & 0xffff_0000, 0x2739_0000, "addiu $t9, $t9");
            assert_eq!(read_u32(arch, image, at + 8), 0x0320_0009, "jr $t9");
            let high = u64::from(lui & 0xffff) << 16;
            high.wrapping_add(addiu as u16 as i16 as i64 as u64) & 0xffff_ffff
        }
    }
}

fn read_u32(arch: ArchKind, image: &[u8], at: usize) -> u32 {
    let bytes: [u8; 4] = image[at..at + 4].try_into().unwrap();
    if arch.big_endian() {
        u32::from_be_bytes(bytes)
    } else {
        u32::from_le_bytes(bytes)
    }
}

/// Counts of what one link showed.
#[derive(Default)]
struct Seen {
    direct_external: usize,
    via_stub: usize,
    internal: usize,
}

/// Links `object` with its functions at `functions` (data always near) and checks every
/// branch that may use a stub.
fn check(object: &Object, functions: u64, expect_stubs: bool) -> Result<Seen, String> {
    let layout = layout(object, &LayoutOptions::default()).map_err(|e| e.to_string())?;
    // An undefined symbol only ever branched to is a function; anything else is data.
    let mut branched_only: BTreeMap<u32, bool> = BTreeMap::new();
    for section in object.sections.iter().filter(|s| s.kind.is_some()) {
        for reloc in &section.relocs {
            let branch = object
                .arch
                .reloc_kind(reloc.r_type)
                .is_some_and(|k| k.stub == StubUse::Branch);
            *branched_only.entry(reloc.symbol).or_insert(true) &= branch;
        }
    }
    // Each undefined symbol's address, and whether it was put out of reach.
    let mut addresses = BTreeMap::new();
    for (index, symbol) in object.symbols.iter().enumerate() {
        if symbol.def == SymbolDef::Undefined && !symbol.name.is_empty() {
            let function = branched_only.get(&(index as u32)) == Some(&true);
            let start = if function { functions } else { NEAR };
            addresses.insert(
                symbol.name,
                (start + 16 * index as u64, function && expect_stubs),
            );
        }
    }
    let mut resolver = |name: &str| {
        addresses.get(name).map(|&(address, _)| ExternalSymbol {
            address,
            size: 0,
            kind: ExternalKind::Unknown,
        })
    };
    let (image, output) = link(object, &layout, BASE, &mut resolver).map_err(|e| e.to_string())?;
    let arch = object.arch;
    let stubs = BASE + layout.stubs.offset..BASE + layout.stubs.offset + layout.stubs.size;
    let mut seen = Seen::default();
    for (index, offset) in layout.section_offsets.iter().enumerate() {
        let Some(offset) = *offset else { continue };
        for reloc in &object.sections[index].relocs {
            let Some(kind) = arch.reloc_kind(reloc.r_type) else {
                continue;
            };
            if kind.stub != StubUse::Branch {
                continue;
            }
            let at = (offset + reloc.place()) as usize;
            let place = BASE + offset + reloc.place();
            let target = branch_target(arch, &image, at, place);
            let symbol = &object.symbols[reloc.symbol as usize];
            // x86_64 keeps the addend (-4, the rest of the instruction) at the site.
            let site_bias = if arch == ArchKind::X86_64 {
                reloc.addend.wrapping_add(4)
            } else {
                0
            };
            let slot_addend = if arch == ArchKind::X86_64 {
                0
            } else {
                reloc.addend
            };
            let what = format!(
                "{}+{:#x} ({} {})",
                object.sections[index].name,
                reloc.offset,
                kind.name,
                object.symbol_display_name(reloc.symbol)
            );
            if symbol.def == SymbolDef::Undefined {
                let Some(&(address, out_of_reach)) = addresses.get(symbol.name) else {
                    continue;
                };
                let wanted = address.wrapping_add(slot_addend as u64);
                if out_of_reach {
                    let stub = target.wrapping_sub(site_bias as u64);
                    if !stubs.contains(&stub) {
                        return Err(format!("{what}: goes to {target:#x}, not a stub"));
                    }
                    let jumps_to = stub_target(arch, &image, (stub - BASE) as usize);
                    if jumps_to != wanted {
                        return Err(format!(
                            "{what}: its stub jumps to {jumps_to:#x}, not {wanted:#x}"
                        ));
                    }
                    seen.via_stub += 1;
                } else {
                    if target != wanted.wrapping_add(site_bias as u64) {
                        return Err(format!(
                            "{what}: goes to {target:#x}, not {wanted:#x} directly"
                        ));
                    }
                    seen.direct_external += 1;
                }
            } else if stubs.contains(&target) {
                return Err(format!(
                    "{what}: a call inside the module went through a stub"
                ));
            } else {
                seen.internal += 1;
            }
        }
    }
    if !expect_stubs && output.stubs_used != 0 {
        return Err(format!(
            "{} stubs used with every target in reach",
            output.stubs_used
        ));
    }
    Ok(seen)
}

#[test]
fn far_kernel_calls_go_through_stubs_and_near_ones_stay_direct() {
    let objects = objects();
    assert!(objects.len() >= 60, "only {} corpus objects", objects.len());
    let mut failures = Vec::new();
    let mut totals: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for path in &objects {
        let bytes = std::fs::read(path).unwrap();
        let name = path.display().to_string();
        let object = Object::parse(&name, &bytes).unwrap();
        let near = check(&object, NEAR, false);
        let far = check(&object, far(object.arch), true);
        match (near, far) {
            (Ok(near), Ok(far)) => {
                assert!(
                    near.direct_external >= far.via_stub,
                    "{name}: the same calls"
                );
                let total = totals.entry(object.arch.name()).or_default();
                total.0 += near.direct_external;
                total.1 += far.via_stub;
                total.2 += far.internal;
            }
            (near, far) => failures.push(format!(
                "{name}: near: {:?}, far: {:?}",
                near.err(),
                far.err()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let arches: Vec<&str> = totals.keys().copied().collect();
    assert_eq!(
        arches,
        ["aarch64", "mips", "mipsel", "x86_64"],
        "architectures checked"
    );
    for (arch, (direct, stubbed, internal)) in &totals {
        eprintln!(
            "{arch}: {direct} kernel calls direct in reach, {stubbed} through stubs out of \
             reach; {internal} calls inside modules direct"
        );
        assert!(*stubbed > 100, "{arch}: only {stubbed} far calls checked");
        assert!(
            *internal > 100,
            "{arch}: only {internal} internal calls checked"
        );
    }
}
