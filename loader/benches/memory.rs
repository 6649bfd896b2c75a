//! Heap used by loading the corpus's large programs (x86_64 `gcc-pie` zlib, Lua and SQLite)
//! into the native machine, counted by a global allocator that wraps the system's and keeps
//! the current and peak number of bytes allocated. Prints a markdown table with, for each
//! object:
//!
//! - `file`: the object file's size.
//! - `image`: the module's image ([`ModuleInfo::size`]), and `mapped`: its layout rounded to
//!   whole pages. Mapped memory, not heap; the native machine maps an image of 768 KiB or more
//!   in whole 2 MiB huge pages.
//! - `peak during load`: the highest heap level while [`Kernel::load_path`] ran, above the level
//!   before it: the file's bytes (a file of 768 KiB or more is read into a huge page outside
//!   the heap instead), the parsed object, the layout and the link's records.
//! - `held after load`: the heap still in use once the load returned, above the level before
//!   it: the module's records (symbols, sections, entry points) and its kernel table entries.
//! - `held after unload`: what the kernel keeps once the module is unloaded again (the
//!   machine's cache of host symbol lookups, for one).
//!
//! Each program goes into a fresh [`Kernel::native`]. One load and unload of it into another
//! kernel, dropped before the count starts, first takes the process's one-time allocations
//! out of the figures. A second table does the same with an image cache
//! ([`KernelOptions::image_cache`]), which the first of the two loads fills. Only Rust's heap is counted: what C libraries allocate with `malloc`
//! themselves (libgcc's frame registration, the dynamic linker's `dlsym`) is not.
//!
//! ```text
//! cargo bench -p dlkm-loader --bench memory
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use dlkm_linker::{LayoutOptions, Object};
use dlkm_loader::{Kernel, KernelOptions, ModuleInfo};

const PROGRAMS: [&str; 3] = ["zlib.o", "lua.o", "sqlite.o"];

/// The system allocator, counting the bytes it hands out.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    CURRENT.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` with the caller's arguments; the counters are
// only updated alongside.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `layout` is `System.alloc`'s.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, hence from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout`; the caller vouches for `new_size`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap figures of one load and unload, in bytes above the level before the load.
struct Heap {
    peak_during_load: usize,
    held_after_load: usize,
    held_after_unload: usize,
}

/// Loads `path` into `kernel` and unloads it again, counting the heap; also returns the
/// module's record.
fn measure(kernel: &Kernel, path: &Path) -> (Heap, ModuleInfo) {
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let id = kernel.load_path(path).expect("load");
    let peak = PEAK.load(Ordering::Relaxed);
    let after_load = CURRENT.load(Ordering::Relaxed);
    // Taken once the load's figures are read: the record is a copy on the heap.
    let info = kernel.module_info(id).expect("the module's record");
    let info_bytes = CURRENT.load(Ordering::Relaxed) - after_load;
    kernel.unload(id).expect("unload");
    let after_unload = CURRENT.load(Ordering::Relaxed) - info_bytes;
    let above = |level: usize| level.saturating_sub(before);
    let heap = Heap {
        peak_during_load: above(peak),
        held_after_load: above(after_load),
        held_after_unload: above(after_unload),
    };
    (heap, info)
}

/// What the module's memory map takes: its layout, with the machine's page size.
fn mapped_size(kernel: &Kernel, path: &Path) -> u64 {
    let bytes = std::fs::read(path).expect("object");
    let object = Object::parse(&path.display().to_string(), &bytes).expect("parse");
    let options = LayoutOptions {
        page_size: kernel.machine().page_size(),
        ..LayoutOptions::default()
    };
    dlkm_linker::layout(&object, &options)
        .expect("layout")
        .mapped_size()
}

fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn corpus(program: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus/x86_64/gcc-pie")
        .join(program)
}

fn main() {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("memory-image-cache");
    let _ = std::fs::remove_dir_all(&cache);
    for image_cache in [None, Some(cache)] {
        match image_cache {
            None => println!("Linked:\n"),
            Some(_) => println!("\nFrom a filled image cache:\n"),
        }
        print_table(image_cache);
    }
}

/// One row a program: each loaded into a fresh kernel with `image_cache`, after a warm-up
/// load into another (which also fills the cache).
fn print_table(image_cache: Option<PathBuf>) {
    let kernel = || {
        Kernel::native_with(KernelOptions {
            image_cache: image_cache.clone(),
            ..KernelOptions::default()
        })
        .expect("native kernel")
    };
    println!(
        "| object | file | image | mapped | peak during load | held after load | held after unload |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|");
    for program in PROGRAMS {
        let path = corpus(program);
        let file = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len();
        measure(&kernel(), &path);
        let kernel = kernel();
        let (heap, info) = measure(&kernel, &path);
        assert_eq!(info.from_image_cache, image_cache.is_some(), "{program}");
        let mapped = mapped_size(&kernel, &path);
        println!(
            "| {program} | {} | {} | {} | {} | {} | {} |",
            kib(file),
            kib(info.size),
            kib(mapped),
            kib(heap.peak_during_load as u64),
            kib(heap.held_after_load as u64),
            kib(heap.held_after_unload as u64),
        );
    }
}
