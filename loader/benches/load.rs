//! In-process cost of loading real modules: the linker's phases alone (parse, layout, link into
//! a buffer) and the whole load (placement, publish, constructors) plus unload.
//!
//! `cargo bench -p dlkm-loader --bench load`

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use dlkm_linker::{layout, link, LayoutOptions, Object};
use dlkm_loader::Kernel;

fn corpus(variant: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus/x86_64")
        .join(variant)
        .join(file)
}

const PROGRAMS: [&str; 3] = ["zlib.o", "lua.o", "sqlite.o"];

fn link_phases(c: &mut Criterion) {
    let mut group = c.benchmark_group("link");
    for program in PROGRAMS {
        let bytes = std::fs::read(corpus("gcc-pie", program)).expect("corpus object");
        let kernel = Kernel::native().expect("kernel");
        let mut resolver = |name: &str| {
            kernel.lookup(name).map(|s| dlkm_linker::ExternalSymbol {
                address: s.address,
                size: s.size,
                kind: s.kind,
            })
        };
        group.bench_function(format!("parse/{program}"), |b| {
            b.iter(|| Object::parse(program, &bytes).expect("parse"))
        });
        let object = Object::parse(program, &bytes).expect("parse");
        let options = LayoutOptions::default();
        group.bench_function(format!("layout/{program}"), |b| {
            b.iter(|| layout(&object, &options).expect("layout"))
        });
        let planned = layout(&object, &options).expect("layout");
        // Where the kernel puts gcc PIE modules that read libc's stdout: within 2 GiB of it.
        let stdout = kernel.lookup("stdout").expect("libc's stdout").address;
        let base = (stdout & !0xff_ffff) - (1 << 30);
        group.bench_function(format!("link/{program}"), |b| {
            b.iter(|| link(&object, &planned, base, &mut resolver).expect("link"))
        });
    }
    group.finish();
}

fn load_unload(c: &mut Criterion) {
    let mut group = c.benchmark_group("load+unload");
    for variant in ["gcc-pie", "gcc-nopic", "clang"] {
        let path = corpus(variant, "sqlite.o");
        let kernel = Kernel::native().expect("kernel");
        group.bench_function(format!("sqlite.o/{variant}"), |b| {
            b.iter(|| {
                let id = kernel.load_path(&path).expect("load");
                kernel.unload(id).expect("unload");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, link_phases, load_unload);
criterion_main!(benches);
