//! The library example of the README: a program that exports a function and a variable to its
//! modules, loads one, calls into it, and unloads it.
//!
//! `cargo run -p dlkm-loader --example embed [OBJECT]`

use std::ffi::{c_char, CStr};
use std::sync::atomic::{AtomicI64, Ordering};

use dlkm_linker::ExternalKind;
use dlkm_loader::Kernel;

/// A kernel variable modules may update.
static KERNEL_COUNTER: AtomicI64 = AtomicI64::new(0);

/// A kernel function modules may call.
extern "C" fn log_line(line: *const c_char) {
    if line.is_null() {
        return;
    }
    // SAFETY: modules pass NUL-terminated strings, as the function's C prototype says.
    let text = unsafe { CStr::from_ptr(line) };
    println!("[kernel] {}", text.to_string_lossy());
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let object = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "corpus/x86_64/gcc-pie/kernel_api.o".into());
    let kernel = Kernel::native()?;
    kernel.export("log_line", log_line as *const u8)?;
    kernel.export_symbol(
        "kernel_counter",
        KERNEL_COUNTER.as_ptr() as u64,
        8,
        ExternalKind::Data,
    )?;
    let module = kernel.load_path(&object)?;
    // SAFETY: kapi_log_twice is `long kapi_log_twice(long)` in the module's source.
    let log_twice: extern "C" fn(i64) -> i64 =
        unsafe { kernel.function(module, "kapi_log_twice")? };
    println!("kapi_log_twice(20) = {}", log_twice(20));
    println!(
        "kernel_counter = {}",
        KERNEL_COUNTER.load(Ordering::Relaxed)
    );
    kernel.unload(module)?;
    Ok(())
}
