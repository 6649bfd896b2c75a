//! The linker's phases, each timed on its own, on the corpus's three large programs (zlib, Lua
//! and SQLite) for every architecture: x86_64 `gcc-pie`, aarch64 `gcc-pie`, MIPS and MIPS
//! little-endian `gcc`. Pure linking in memory: no file is read and no memory mapped while
//! timing, so every architecture runs on any host.
//!
//! ```text
//! cargo bench -p dlkm-linker --bench phases
//! cargo bench -p dlkm-linker --bench phases -- sqlite.o/relocate    # one phase of one program
//! cargo bench -p dlkm-linker --bench phases -- '^mips/'             # one architecture
//! ```
//!
//! Benchmarks are named `ARCH/PROGRAM/PHASE`:
//!
//! - `parse`: [`Object::parse`] of the file's bytes (read before timing).
//! - `layout`: [`layout()`] with the default options. Their 4 KiB page size is the one both of
//!   the loader's machines lay modules out with (the native machine on an x86_64 host, the
//!   emulated machine on every architecture), and the loader asks for no data copies when
//!   every kernel symbol is in reach, as here.
//! - `resolve`: [`resolve`] of every symbol, the undefined ones through a prebuilt `HashMap`
//!   of synthetic kernel symbols (below).
//! - `relocate`: [`relocate_into`]: copying the sections, filling stubs and GOT, applying
//!   every relocation and reading the constructor tables. Its bindings (a clone of `resolve`'s)
//!   and a zeroed image are made per iteration outside the timing.
//! - `together`: [`link`]: `resolve`, then `relocate` into a buffer it allocates.
//! - `debug object`: [`debug_object`] without DWARF, what the native machine hands gdb for
//!   every module: the symbol table and `.eh_frame` of the linked module.
//!
//! `relocate` and `together` report throughput in relocations: those of the loaded sections,
//! so criterion prints relocations per second. Each phase's result is returned from the timed
//! routine, so criterion drops it after the clock stops.
//!
//! The synthetic kernel: the module is linked at [`BASE`], aligned to 256 MiB, and its undefined
//! symbols follow its image 16 bytes apart. Every reference reaches its target directly, so no
//! far-call stub or data copy is needed (the loader's usual case, with modules placed near the
//! kernel), and on MIPS the symbols share the module's 256 MiB `jal` region. A symbol some
//! relocation branches to is a function, any other a variable. The setup links each program
//! once and checks that no stub was used.
//!
//! The default run is short (20 samples, 2 s of measurement each); pass criterion's
//! `--measurement-time` and `--sample-size` for steadier figures.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dlkm_linker::{
    debug_object, layout, link, relocate_into, resolve, ExternalKind, ExternalSymbol, Layout,
    LayoutOptions, Object, StubUse, SymbolDef,
};

/// The corpus variant benchmarked for each architecture.
const TARGETS: [(&str, &str); 4] = [
    ("x86_64", "gcc-pie"),
    ("aarch64", "gcc-pie"),
    ("mips", "gcc"),
    ("mipsel", "gcc"),
];

const PROGRAMS: [&str; 3] = ["zlib.o", "lua.o", "sqlite.o"];

/// Where every module is linked: aligned to a MIPS `jal` region.
const BASE: u64 = 0x1000_0000;
/// The MIPS `jal` region: the module and its kernel symbols stay inside one.
const REGION: u64 = 0x1000_0000;
/// Kernel symbols start at the first multiple of this after the image.
const SYMBOL_ALIGN: u64 = 0x1_0000;
/// Distance between two kernel symbols, and the size each is given.
const SYMBOL_STRIDE: u64 = 16;

/// Addresses for the undefined symbols of one object, near its image.
struct SyntheticKernel {
    symbols: HashMap<String, ExternalSymbol>,
}

impl SyntheticKernel {
    fn new(object: &Object, layout: &Layout) -> Self {
        let branched_to: Vec<bool> = {
            let mut branched = vec![false; object.symbols.len()];
            for reloc in object.sections.iter().flat_map(|s| &s.relocs) {
                let kind = object.arch.reloc_kind(reloc.r_type);
                if kind.is_some_and(|k| k.stub == StubUse::Branch) {
                    branched[reloc.symbol as usize] = true;
                }
            }
            branched
        };
        let first = (BASE + layout.mapped_size()).next_multiple_of(SYMBOL_ALIGN);
        let symbols: HashMap<String, ExternalSymbol> = object
            .symbols
            .iter()
            .enumerate()
            .filter(|(_, s)| s.def == SymbolDef::Undefined && !s.name.is_empty())
            .enumerate()
            .map(|(n, (index, symbol))| {
                let kind = if branched_to[index] {
                    ExternalKind::Function
                } else {
                    ExternalKind::Data
                };
                let external = ExternalSymbol {
                    address: first + SYMBOL_STRIDE * n as u64,
                    size: SYMBOL_STRIDE,
                    kind,
                };
                (symbol.name.to_string(), external)
            })
            .collect();
        let end = first + SYMBOL_STRIDE * symbols.len() as u64;
        assert!(
            end <= BASE + REGION,
            "{}: the image and its kernel symbols do not fit in one 256 MiB region",
            object.name
        );
        SyntheticKernel { symbols }
    }

    fn lookup(&self, name: &str) -> Option<ExternalSymbol> {
        self.symbols.get(name).copied()
    }
}

/// The relocations `layout` applies: those of the loaded sections.
fn loaded_relocations(object: &Object, layout: &Layout) -> u64 {
    layout
        .section_offsets
        .iter()
        .zip(&object.sections)
        .filter(|(offset, _)| offset.is_some())
        .map(|(_, section)| section.relocs.len() as u64)
        .sum()
}

fn corpus_file(arch: &str, variant: &str, program: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus")
        .join(arch)
        .join(variant)
        .join(program);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn phases(c: &mut Criterion) {
    for (arch, variant) in TARGETS {
        for program in PROGRAMS {
            let bytes = corpus_file(arch, variant, program);
            bench_program(c, &format!("{arch}/{program}"), &bytes);
        }
    }
}

/// The five phases of one object, in a group named `ARCH/PROGRAM`.
fn bench_program(c: &mut Criterion, name: &str, bytes: &[u8]) {
    let object = Object::parse(name, bytes).expect("parse");
    let options = LayoutOptions::default();
    let planned = layout(&object, &options).expect("layout");
    let kernel = SyntheticKernel::new(&object, &planned);
    let mut resolver = |name: &str| kernel.lookup(name);
    let bindings = resolve(&object, &planned, BASE, &mut resolver).expect("resolve");
    let (_, output) = link(&object, &planned, BASE, &mut resolver).expect("link");
    assert_eq!(
        output.stubs_used, 0,
        "{name}: a kernel symbol was out of reach"
    );
    let relocations = loaded_relocations(&object, &planned);
    let image_size = planned.image_size as usize;

    let mut group = c.benchmark_group(name);
    group.bench_function("parse", |b| {
        b.iter_batched(
            || (),
            |()| Object::parse(name, bytes).expect("parse"),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("layout", |b| {
        b.iter_batched(
            || (),
            |()| layout(&object, &options).expect("layout"),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("resolve", |b| {
        b.iter_batched(
            || (),
            |()| resolve(&object, &planned, BASE, &mut resolver).expect("resolve"),
            BatchSize::PerIteration,
        )
    });
    group.throughput(Throughput::Elements(relocations));
    group.bench_function("relocate", |b| {
        b.iter_batched(
            || (bindings.clone(), vec![0u8; image_size]),
            |(bindings, mut image)| {
                let output =
                    relocate_into(&object, &planned, bindings, &mut image).expect("relocate");
                (output, image)
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("together", |b| {
        b.iter_batched(
            || (),
            |()| link(&object, &planned, BASE, &mut resolver).expect("link"),
            BatchSize::PerIteration,
        )
    });
    let (image, _) = link(&object, &planned, BASE, &mut resolver).expect("link");
    let eh_frames: Vec<&[u8]> = planned
        .eh_frames
        .iter()
        .map(|f| &image[f.offset as usize..(f.offset + f.size) as usize])
        .collect();
    group.throughput(Throughput::Elements(output.symbols.len() as u64));
    group.bench_function("debug object", |b| {
        b.iter(|| debug_object(&object, &planned, &output, &eh_frames, false).expect("debug"))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = phases
}
criterion_main!(benches);
