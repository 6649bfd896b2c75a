//! msyms is linked as a position-dependent executable on Linux. As a PIE its start went mostly
//! to the dynamic linker applying some 36,000 relative relocations and writing the hundreds of
//! pages they touch; a `-c` run is over in a few milliseconds, so that was a third of it.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
