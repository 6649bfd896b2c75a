//! The life cycle under load, natively: threads loading, calling, holding and unloading the
//! same modules at once for a bounded time never crash and end with consistent counts;
//! threads calling through auto-loading stubs while others hold and unload the module behind
//! them always get whole, right answers;
//! loading and unloading 10,000 times leaves the process's mappings and memory flat (counted
//! there, single-threaded: threads add malloc arenas and cached stacks of their own).

#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dlkm_loader::{Arg, Kernel, LoadError};
use dlkm_tests::host_corpus_dir;

/// The tests of this file one at a time: each counts the process's mappings or loads it hard.
static SERIAL: Mutex<()> = Mutex::new(());

/// Mappings of this process, as /proc/self/maps lists them.
fn mapping_count() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

/// Resident memory of this process, in bytes.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn threads_loading_calling_holding_and_unloading_stay_consistent() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = host_corpus_dir().join("gcc-pie/lifecycle");
    let kernel = Kernel::native().unwrap();
    kernel.add_modpath(&dir).unwrap();
    kernel.export_interface("dlkm_test", 2);
    let stop = AtomicBool::new(false);
    let (loads, calls, holds) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    std::thread::scope(|scope| {
        // Loads lc_user (and with it lc_base), then unloads both, over and over.
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                if kernel.load_name("lc_user").is_ok() {
                    loads.fetch_add(1, Ordering::Relaxed);
                }
                for name in ["lc_user", "lc_base"] {
                    if let Some(id) = kernel.find_module(name) {
                        let _ = kernel.unload(id);
                    }
                }
            }
        });
        // Calls into whatever is loaded: a call either runs whole or is refused.
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                match kernel.call_symbol("lc_base_twice", &[Arg::Int(21)]) {
                    Ok(value) => {
                        assert_eq!(value, 42);
                        calls.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(LoadError::NoSuchSymbol(_) | LoadError::Busy { .. }) => {}
                    Err(other) => panic!("call: {other}"),
                }
            }
        });
        // Holds and releases lc_base while it is there.
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                if let Some(id) = kernel.find_module("lc_base") {
                    if kernel.hold(id).is_ok() {
                        holds.fetch_add(1, Ordering::Relaxed);
                        std::thread::yield_now();
                        kernel.release(id).unwrap();
                    }
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
    });
    for info in kernel.modules() {
        assert_eq!(info.holds, 0, "{}: holds left", info.name);
    }
    for name in ["lc_user", "lc_base"] {
        if let Some(id) = kernel.find_module(name) {
            kernel.unload(id).unwrap();
        }
    }
    assert!(kernel.modules().is_empty());
    let (loads, calls, holds) = (loads.into_inner(), calls.into_inner(), holds.into_inner());
    eprintln!("{loads} loads, {calls} calls, {holds} holds");
    assert!(
        loads > 10 && calls > 10 && holds > 10,
        "{loads} loads, {calls} calls, {holds} holds"
    );
}

#[test]
fn ten_thousand_loads_and_unloads_leave_memory_flat() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let object = std::fs::read(host_corpus_dir().join("gcc-pie/lifecycle/lc_base.o")).unwrap();
    let kernel = Kernel::native().unwrap();
    // Warm up: the first loads fill caches (host symbols, allocator pools).
    for _ in 0..100 {
        let id = kernel.load_bytes("lc_base", &object).unwrap();
        kernel.unload(id).unwrap();
    }
    let (mappings, resident) = (mapping_count(), resident_bytes());
    for _ in 0..10_000 {
        let id = kernel.load_bytes("lc_base", &object).unwrap();
        kernel.unload(id).unwrap();
    }
    assert_eq!(mapping_count(), mappings, "mappings leaked");
    let grown = resident_bytes().saturating_sub(resident);
    assert!(grown < 4 << 20, "resident memory grew by {grown} bytes");
}

#[test]
fn threads_calling_through_stubs_while_the_module_comes_and_goes_get_right_answers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = host_corpus_dir().join("gcc-pie/lifecycle");
    let kernel = Arc::new(Kernel::native().unwrap());
    kernel.register(dir.join("lc_lib.o")).unwrap();
    let caller = kernel.load_path(dir.join("lc_caller.o")).unwrap();
    // Called as the host calls module code: straight in, the kernel counting nothing; only
    // the stubs inside lc_caller know the calls are there.
    type Answer = extern "C" fn() -> i64;
    // SAFETY: these lc_caller functions take nothing and return a long; lc_caller stays
    // loaded until the threads are done.
    let functions: Vec<(Answer, i64)> = unsafe {
        vec![
            (kernel.function(caller, "lc_caller_weigh").unwrap(), 385),
            (kernel.function(caller, "lc_caller_mix").unwrap(), 224),
            (kernel.function(caller, "lc_caller_sum").unwrap(), 15),
        ]
    };
    let stop = AtomicBool::new(false);
    let bases = Mutex::new(std::collections::BTreeSet::new());
    let (calls, unloads, busy, holds) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    std::thread::scope(|scope| {
        for (function, answer) in functions.iter().copied() {
            let (stop, calls) = (&stop, &calls);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    assert_eq!(function(), answer);
                    // Pauses now and then leave the unloader moments with no call running.
                    if calls.fetch_add(1, Ordering::Relaxed) % 1024 == 0 {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
            });
        }
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let Some(id) = kernel.find_module("lc_lib") else {
                    std::thread::yield_now();
                    continue;
                };
                if let Some(info) = kernel.module_info(id).filter(|i| i.base != 0) {
                    bases.lock().unwrap().insert(info.base);
                }
                match kernel.unload(id) {
                    Ok(()) => unloads.fetch_add(1, Ordering::Relaxed),
                    Err(LoadError::Busy { .. } | LoadError::NoSuchModule(_)) => {
                        busy.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(other) => panic!("unload: {other}"),
                };
            }
        });
        // Holds lc_lib whenever it is there: held, it cannot be unloaded.
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                // Now and then, so that the unloader gets its turns too.
                std::thread::sleep(Duration::from_millis(1));
                let Some(id) = kernel.find_module("lc_lib") else {
                    continue;
                };
                if kernel.hold(id).is_ok() {
                    holds.fetch_add(1, Ordering::Relaxed);
                    std::thread::yield_now();
                    kernel.release(id).unwrap();
                }
            }
        });
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
    });
    for info in kernel.modules() {
        assert_eq!(info.holds, 0, "{}: holds left", info.name);
    }
    if let Some(id) = kernel.find_module("lc_lib") {
        kernel.unload(id).unwrap();
    }
    kernel.unload(caller).unwrap();
    kernel.unregister("lc_lib").unwrap();
    assert!(kernel.modules().is_empty());
    // Every place lc_lib was loaded at is unmapped again. (Mappings are not counted here:
    // the threads leave malloc arenas and cached stacks behind.)
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for base in bases.into_inner().unwrap() {
        let mapped = maps.lines().any(|line| {
            let range = line.split_whitespace().next().unwrap();
            let (start, end) = range.split_once('-').unwrap();
            let start = u64::from_str_radix(start, 16).unwrap();
            let end = u64::from_str_radix(end, 16).unwrap();
            (start..end).contains(&base)
        });
        assert!(!mapped, "lc_lib's image at {base:#x} is still mapped");
    }
    let (calls, unloads, busy) = (calls.into_inner(), unloads.into_inner(), busy.into_inner());
    let holds = holds.into_inner();
    eprintln!(
        "{calls} calls through stubs, {unloads} unloads, {busy} refused as busy, {holds} holds"
    );
    assert!(
        calls > 100 && unloads > 2,
        "{calls} calls, {unloads} unloads"
    );
}
