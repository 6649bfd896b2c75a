//! The driver behind every fuzz target, also replayed by the regression test
//! (`tests/tests/fuzz_regressions.rs`): parse the bytes, lay the object out with two sets of
//! options, link each layout at a low and a far base with three resolvers, and check what must
//! hold whatever the input. Errors are fine; a panic (an assertion here, an overflow or an
//! index out of bounds in the linker) is a bug.
//!
//! The other targets' drivers are modules of their own: [`mutator`] (the link targets'
//! structure-aware mutator), and, with the emulated machine, [`emulated`] (`load_emulated`)
//! and [`commands`] (`msyms_commands`). They refer to each other through `super::`, never
//! `crate::`, since the regression tests include this file as a module.

use dlkm_linker::{
    layout, link, rebind, ArchKind, CopyRequest, ExternalKind, ExternalSymbol, Layout,
    LayoutOptions, LinkError, LinkOutput, Object, SectionKind,
};

#[cfg(feature = "emulated")]
pub mod commands;
#[cfg(feature = "emulated")]
pub mod emulated;
pub mod mutator;

/// The largest image the fuzz targets lay out (SQLite's is about 1 MiB).
const FUZZ_MAX_IMAGE_SIZE: u64 = 64 << 20;

/// The architectures a fuzz target takes (MIPS in both byte orders).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    X86_64,
    Aarch64,
    Mips,
}

impl Family {
    pub fn of(arch: ArchKind) -> Family {
        match arch {
            ArchKind::X86_64 => Family::X86_64,
            ArchKind::Aarch64 => Family::Aarch64,
            ArchKind::Mips { .. } => Family::Mips,
        }
    }

    /// Where the module goes: low (where `-fno-pic` code must be), and far from the kernel
    /// symbols (user space on the 64-bit ones, another 256 MiB region on MIPS), so that
    /// branches to them need stubs.
    fn bases(self) -> [u64; 2] {
        match self {
            Family::X86_64 | Family::Aarch64 => [0x40_0000, 0x7f3a_5c00_0000],
            Family::Mips => [0x40_0000, 0x5000_0000],
        }
    }

    /// Where far kernel symbols live.
    fn kernel(self) -> u64 {
        match self {
            Family::X86_64 => 0xffff_ffff_8100_0000,
            Family::Aarch64 => 0xffff_8000_1000_0000,
            Family::Mips => 0x8000_0000,
        }
    }

    /// The end of the address space.
    fn address_limit(self) -> u128 {
        match self {
            Family::X86_64 | Family::Aarch64 => 1 << 64,
            Family::Mips => 1 << 32,
        }
    }
}

/// What the resolver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// Every symbol within 16 KiB after the image: (nearly) every relocation reaches it.
    Near,
    /// Every symbol in the kernel's own range.
    Far,
    /// Near, far or missing, by name; on MIPS some even above 4 GiB (a resolver's mistake the
    /// linker must survive).
    Mixed,
}

/// FNV-1a: a stable hash, so that every run resolves a name to the same address.
fn hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn resolve(name: &str, family: Family, kernel: Kernel, image_end: u64) -> Option<ExternalSymbol> {
    let h = hash(name);
    let kind = match h % 3 {
        0 => ExternalKind::Function,
        1 => ExternalKind::Data,
        _ => ExternalKind::Unknown,
    };
    let near = image_end + (((h >> 16) % 0x4000) & !0xf);
    let far = family.kernel() + (((h >> 16) % 0x1000_0000) & !0xf);
    let address = match kernel {
        Kernel::Near => near,
        Kernel::Far => far,
        Kernel::Mixed => match (h >> 8) % 16 {
            0 | 1 => return None,
            2..=7 => near,
            15 if family == Family::Mips => 0x1_2345_6780,
            _ => far,
        },
    };
    Some(ExternalSymbol {
        address,
        size: (h >> 40) % 512,
        kind,
    })
}

/// The two layouts: the defaults, and 64 KiB pages with copies of (up to) two of the variables
/// the object reaches with 32-bit references.
fn options(object: &Object) -> [LayoutOptions; 2] {
    let copies = object
        .short_reach_imports()
        .into_iter()
        .take(2)
        .map(|name| {
            let h = hash(name);
            CopyRequest {
                name: name.to_string(),
                size: h % 64 + 1,
                align: 1 << (h % 5),
            }
        })
        .collect();
    // Images of a real module's size: larger ones only cost time (headers claiming a
    // gigabyte of zero-fill are refused by the same check at the loader's default limit).
    let bounded = LayoutOptions {
        max_image_size: FUZZ_MAX_IMAGE_SIZE,
        ..LayoutOptions::default()
    };
    [
        bounded.clone(),
        LayoutOptions {
            page_size: 0x1_0000,
            copies,
            ..bounded
        },
    ]
}

/// Runs the input through the linker if it parses as an object of `family` (of any family when
/// `None`). Returns false when it parses but is of another family (the fuzz target then keeps
/// it out of its corpus); panics where an invariant breaks.
pub fn fuzz_one(data: &[u8], family: Family) -> bool {
    !matches!(run(data, Some(family)), Outcome::OtherFamily)
}

/// What became of one input.
#[derive(Debug)]
pub enum Outcome {
    /// `Object::parse` refused it.
    Refused(LinkError),
    /// It parses, but is not of the family asked for.
    OtherFamily,
    /// Every layout and link tried, in order, and how each ended.
    Tried(Vec<Result<(), LinkError>>),
}

/// Parses, lays out and links `data`, checking the invariants (by panicking).
pub fn run(data: &[u8], family: Option<Family>) -> Outcome {
    let object = match Object::parse("fuzz.o", data) {
        Ok(object) => object,
        Err(error) => return Outcome::Refused(error),
    };
    let actual = Family::of(object.arch);
    if family.is_some_and(|f| f != actual) {
        return Outcome::OtherFamily;
    }
    // The rest of the public surface, for its own panics.
    for (index, symbol) in object.symbols.iter().enumerate() {
        let _ = object.symbol_display_name(index as u32);
        let _ = symbol.is_exported();
    }
    let _ = object.exported_symbols().count();

    let mut results = Vec::new();
    for options in options(&object) {
        let laid_out = match layout(&object, &options) {
            Ok(laid_out) => laid_out,
            Err(error) => {
                results.push(Err(error));
                continue;
            }
        };
        check_layout(&object, &options, &laid_out);
        results.push(Ok(()));
        for nominal in actual.bases() {
            let Some(base) = place(nominal, &laid_out, actual) else {
                continue;
            };
            for kernel in [Kernel::Near, Kernel::Far, Kernel::Mixed] {
                let image_end = base + laid_out.image_size;
                let mut resolver = |name: &str| resolve(name, actual, kernel, image_end);
                let linked = link(&object, &laid_out, base, &mut resolver);
                if let Ok((image, output)) = &linked {
                    check_link(&object, &laid_out, base, image, output);
                    let mut moved = |name: &str| moved(resolve(name, actual, kernel, image_end));
                    check_rebind(&object, &laid_out, base, image, output, &mut moved);
                }
                results.push(linked.map(|_| ()));
            }
        }
    }
    Outcome::Tried(results)
}

/// The first base from `nominal` on that the loader could give the image: aligned, inside one
/// region where the layout asks for it, and inside the address space.
fn place(nominal: u64, laid_out: &Layout, family: Family) -> Option<u64> {
    let size = laid_out.mapped_size().max(1);
    let mut base = nominal.checked_next_multiple_of(laid_out.align)?;
    if let Some(region) = laid_out.region_size {
        if base / region != base.checked_add(size - 1)? / region {
            base = base
                .checked_next_multiple_of(region)?
                .checked_next_multiple_of(laid_out.align)?;
        }
    }
    (u128::from(base) + u128::from(size) <= family.address_limit()).then_some(base)
}

fn check_layout(object: &Object, options: &LayoutOptions, laid_out: &Layout) {
    let page = options.page_size;
    let image = laid_out.image_size;
    assert_eq!(laid_out.section_offsets.len(), object.sections.len());
    assert!(laid_out.align.is_power_of_two() && laid_out.align >= page);
    assert!(image <= laid_out.mapped_size(), "image past the mapping");
    assert!(laid_out.mapped_size() <= options.max_image_size);
    if let Some(region) = laid_out.region_size {
        assert!(
            laid_out.mapped_size() <= region,
            "the image is larger than its region"
        );
    }
    for (section, offset) in object.sections.iter().zip(&laid_out.section_offsets) {
        let Some(offset) = *offset else {
            continue;
        };
        assert!(
            section.kind.is_some(),
            "a section that is not loaded has an offset"
        );
        assert_eq!(
            offset % section.align,
            0,
            "section {} misaligned",
            section.name
        );
        assert!(
            offset
                .checked_add(section.size)
                .is_some_and(|end| end <= image),
            "section {} at {offset:#x}+{:#x} past the image ({image:#x})",
            section.name,
            section.size
        );
    }
    for area in [laid_out.stubs, laid_out.got] {
        assert!(
            area.offset + area.size <= image,
            "stubs or GOT past the image"
        );
    }
    for (_, offset) in &laid_out.copies {
        assert!(*offset <= image);
    }
    let mut end = 0;
    for segment in &laid_out.segments {
        assert!(segment.offset >= end, "segments overlap");
        assert_eq!(segment.offset % page, 0);
        assert_eq!(segment.size % page, 0);
        end = segment.offset + segment.size;
    }
    for (_, offset, size) in laid_out.map_entries(object) {
        assert!(offset + size <= image, "map entry past the image");
    }
}

/// The same symbol a page further on: moved, as a library is in another process.
fn moved(symbol: Option<ExternalSymbol>) -> Option<ExternalSymbol> {
    symbol.map(|s| ExternalSymbol {
        address: s.address.wrapping_add(0x1000),
        ..s
    })
}

/// Rebinding the image to moved imports, and back, gives the image back; where a fresh link
/// to the moved imports made the same choices (the same import sites), it gives what that
/// link gives.
fn check_rebind(
    object: &Object,
    laid_out: &Layout,
    base: u64,
    image: &[u8],
    output: &LinkOutput,
    moved: &mut dyn FnMut(&str) -> Option<ExternalSymbol>,
) {
    if !dlkm_linker::rebindable(object, laid_out) {
        return;
    }
    let sites = &output.import_sites;
    let copied = |name: &str| laid_out.copies.iter().any(|(c, _)| c.name == name);
    let old: Vec<_> = output.imports.iter().map(|i| i.symbol).collect();
    let new: Vec<_> = output
        .imports
        .iter()
        .map(|i| {
            if copied(&i.name) {
                i.symbol
            } else {
                moved(&i.name)
            }
        })
        .collect();
    let mut rebound = image.to_vec();
    if rebind(
        object.arch,
        &mut rebound,
        base,
        sites,
        &output.imports,
        &new,
    )
    .is_err()
    {
        assert!(rebound == image, "a refused rebind changed the image");
        return;
    }
    if let Ok((fresh, fresh_output)) = link(object, laid_out, base, &mut |name: &str| moved(name)) {
        if fresh_output.import_sites == *sites {
            assert!(
                fresh == rebound,
                "a rebound image differs from a fresh link"
            );
        }
    }
    let moved_imports: Vec<_> = output
        .imports
        .iter()
        .zip(&new)
        .map(|(i, &symbol)| dlkm_linker::Import {
            name: i.name.clone(),
            symbol,
        })
        .collect();
    rebind(object.arch, &mut rebound, base, sites, &moved_imports, &old)
        .expect("rebinding back to the addresses it was linked with");
    assert!(
        rebound == image,
        "rebinding back does not give the image back"
    );
}

fn check_link(object: &Object, laid_out: &Layout, base: u64, image: &[u8], output: &LinkOutput) {
    assert_eq!(image.len() as u64, laid_out.image_size);
    assert_eq!(output.base, base);
    let relocations: usize = laid_out
        .section_offsets
        .iter()
        .zip(&object.sections)
        .filter(|(offset, _)| offset.is_some())
        .map(|(_, section)| section.relocs.len())
        .sum();
    assert!(output.stubs_used + output.got_relaxed <= relocations);
    let word = u64::from(object.arch.address_bits() / 8);
    let array_words = |prefix: &str| -> u64 {
        object
            .sections
            .iter()
            .zip(&laid_out.section_offsets)
            .filter(|(s, offset)| offset.is_some() && s.name.starts_with(prefix))
            .map(|(s, _)| s.size / word)
            .sum()
    };
    assert!(output.init_array.len() as u64 <= array_words(".init_array"));
    assert!(output.fini_array.len() as u64 <= array_words(".fini_array"));
    for symbol in &output.symbols {
        assert!(!symbol.name.is_empty());
    }
    let loaded_zero_fill = object
        .sections
        .iter()
        .zip(&laid_out.section_offsets)
        .filter(|(s, offset)| offset.is_some() && s.kind == Some(SectionKind::ZeroFill));
    for (section, offset) in loaded_zero_fill {
        // Nothing may have been written into .bss: relocations there are refused.
        let start = offset.unwrap() as usize;
        let bytes = &image[start..start + section.size as usize];
        assert!(
            section.size > 4096 || bytes.iter().all(|&b| b == 0),
            "bytes written into {}",
            section.name
        );
    }
}
