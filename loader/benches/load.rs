//! In-process cost of loading real modules: the linker's phases alone (parse, layout, link into
//! a buffer), the whole load (read, placement, link, publish, constructors) with and without
//! its unload, a kernel's first load (nothing reused from an earlier one), the same two from
//! a filled image cache (`KernelOptions::image_cache`), and the floor a
//! loader of sqlite.o cannot go under: mapping fresh memory for its allocated sections,
//! copying them in, protecting and unmapping it (`floor/sqlite.o`).
//!
//! `cargo bench -p dlkm-loader --bench load`

use std::borrow::Borrow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use dlkm_linker::{layout, link, LayoutOptions, Object};
use dlkm_loader::{Kernel, KernelOptions};

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

/// Load alone: each unload happens outside the timing.
fn load_only(c: &mut Criterion) {
    let mut group = c.benchmark_group("load");
    for variant in ["gcc-pie", "gcc-nopic", "clang"] {
        let path = corpus(variant, "sqlite.o");
        let kernel = Kernel::native().expect("kernel");
        group.bench_function(format!("sqlite.o/{variant}"), |b| {
            b.iter_custom(|iterations| time_loads(iterations, &path, || &kernel))
        });
    }
    group.finish();
}

/// A kernel's first load: each in a new kernel, so nothing is reused from an earlier load
/// (the huge page a large object is read into, in particular). Making and dropping the kernel
/// and the unload happen outside the timing.
fn first_load(c: &mut Criterion) {
    let mut group = c.benchmark_group("first load");
    let path = corpus("gcc-pie", "sqlite.o");
    group.bench_function("sqlite.o/gcc-pie", |b| {
        b.iter_custom(|iterations| {
            time_loads(iterations, &path, || Kernel::native().expect("kernel"))
        })
    });
    group.finish();
}

/// Loads whose image is mapped from a filled image cache: into one kernel, and each into a
/// new kernel (what a process that starts and loads SQLite pays).
fn cached_load(c: &mut Criterion) {
    let mut group = c.benchmark_group("image cache");
    let path = corpus("gcc-pie", "sqlite.o");
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-image-cache");
    let _ = std::fs::remove_dir_all(&cache);
    let kernel = || {
        Kernel::native_with(KernelOptions {
            image_cache: Some(cache.clone()),
            ..KernelOptions::default()
        })
        .expect("kernel")
    };
    time_loads(1, &path, kernel); // fills the cache
    let warm = kernel();
    let id = warm.load_path(&path).expect("load");
    let cached = warm.module_info(id).is_some_and(|m| m.from_image_cache);
    assert!(cached, "the image cache was not used");
    warm.unload(id).expect("unload");
    group.bench_function("load/sqlite.o/gcc-pie", |b| {
        b.iter_custom(|iterations| time_loads(iterations, &path, || &warm))
    });
    group.bench_function("first load/sqlite.o/gcc-pie", |b| {
        b.iter_custom(|iterations| time_loads(iterations, &path, kernel))
    });
    group.finish();
}

/// The time `iterations` loads of `path` take, each into the kernel `kernel` gives (then
/// unloaded, and the kernel dropped if owned, outside the timing).
fn time_loads<K: Borrow<Kernel>>(
    iterations: u64,
    path: &Path,
    mut kernel: impl FnMut() -> K,
) -> Duration {
    let mut spent = Duration::ZERO;
    for _ in 0..iterations {
        let owned = kernel();
        let kernel = owned.borrow();
        let start = Instant::now();
        let id = kernel.load_path(path).expect("load");
        spent += start.elapsed();
        kernel.unload(id).expect("unload");
    }
    spent
}

/// The floor: fresh anonymous memory the size of sqlite.o's allocated sections (4 KiB pages,
/// as the kernel gives them by default), the sections' bytes copied in, the mapping made
/// read-only, then unmapped. What any loader that copies the object pays; compare with
/// `load+unload/sqlite.o/gcc-pie`.
fn floor(c: &mut Criterion) {
    let bytes = std::fs::read(corpus("gcc-pie", "sqlite.o")).expect("corpus object");
    let object = Object::parse("sqlite.o", &bytes).expect("parse");
    let allocated: Vec<u8> = object
        .sections
        .iter()
        .filter(|s| s.kind.is_some())
        .flat_map(|s| s.data.iter().copied())
        .collect();
    let size: u64 = object
        .sections
        .iter()
        .filter(|s| s.kind.is_some())
        .map(|s| s.size)
        .sum();
    c.bench_function("floor/sqlite.o", |b| {
        b.iter(|| {
            let mut map = memmap2::MmapMut::map_anon(size as usize).expect("map");
            map[..allocated.len()].copy_from_slice(&allocated);
            map.make_read_only().expect("protect")
        })
    });
}

criterion_group!(
    benches,
    link_phases,
    load_unload,
    load_only,
    first_load,
    cached_load,
    floor
);
criterion_main!(benches);
