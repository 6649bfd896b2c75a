//! msyms is linked as a position-dependent executable on Linux. As a PIE, a third of its start
//! went to the dynamic linker applying some 36,000 relative relocations and faulting in the
//! pages they write; a `-c` run is over in a few milliseconds, so that counts.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
