//! msyms: the symmon-like command line of dlkm, as a library so tests and embedders drive the
//! same commands the binary runs.
//!
//! A [`Session`] holds a [`dlkm_loader::Kernel`] and the module path; [`Session::execute`] runs
//! a command line (`;` separates commands, `"…"` quotes), and [`Session::run_steps`] runs a
//! batch with msyms' error policy. The printers in [`print`](mod@print) produce the outputs
//! whose formats are a contract (the `modules` header, a call's `= DEC (0xHEX)`).

pub mod arch;
pub mod commands;
pub mod disasm;
mod error;
pub mod lines;
pub mod link;
pub mod parse;
pub mod print;
pub mod repl;
mod session;

pub use arch::ArchChoice;
pub use error::CommandError;
pub use link::{link_object, LinkRequest};
pub use parse::{parse_line, Token};
pub use session::{report, Session, Step};
