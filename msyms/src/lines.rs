//! Source lines in msyms' outputs: `addr`'s one-line answer, the `; file:line` lines `dis`
//! puts before the first instruction of each new line, and the lines of `stat`'s entry points.
//! The loader finds them ([`Kernel::source_line`]); this is how they read.

use dlkm_loader::{Kernel, LoadError, SourceLine};

/// What `addr` prints for `address`: where it is (`module:symbol+off`, `kernel:symbol+off`),
/// and ` at FILE:LINE` when the module's DWARF says; a module whose line table cannot be read
/// gets the reason in parentheses instead. Outside every module and kernel symbol, says so.
/// `symbol` is the name the address was given by, if any: a kernel symbol the machine cannot
/// name by address (the host's, in this process) is named by it.
pub fn describe(kernel: &Kernel, address: u64, symbol: Option<&str>) -> String {
    let by_name = || {
        let name = symbol?;
        let entry = kernel.lookup(name)?;
        let offset = address.checked_sub(entry.address)?;
        Some(format!("kernel:{name}+{offset:#x}"))
    };
    let Some(place) = kernel.describe_address(address).or_else(by_name) else {
        return format!("{address:#x}: not in any module or kernel symbol");
    };
    match kernel.source_line(address) {
        Ok(Some(line)) => format!("{address:#x} {place} at {line}"),
        Ok(None) => format!("{address:#x} {place}"),
        Err(error) => format!("{address:#x} {place} ({})", reason(&error)),
    }
}

/// `FILE:LINE` of `address`, or nothing (errors included: `stat` lists what it knows).
pub fn line_of(kernel: &Kernel, address: u64) -> Option<String> {
    kernel
        .source_line(address)
        .ok()
        .flatten()
        .map(|l| l.to_string())
}

/// The source-line annotations of a listing: [`Annotator::before`] is called with each
/// instruction's address in order and returns the line to print before it, if any.
pub struct Annotator<'k> {
    kernel: &'k Kernel,
    last: Option<SourceLine>,
    /// A module's line table failed to read: said once, then no more lookups.
    failed: bool,
}

impl<'k> Annotator<'k> {
    pub fn new(kernel: &'k Kernel) -> Self {
        Annotator {
            kernel,
            last: None,
            failed: false,
        }
    }

    /// `; FILE:LINE` when the instruction at `address` starts a new source line (the first
    /// instruction that has one counts as new), `; REASON` once if the module's line table
    /// cannot be read; `None` otherwise and wherever there is no debug information.
    pub fn before(&mut self, address: u64) -> Option<String> {
        if self.failed {
            return None;
        }
        match self.kernel.source_line(address) {
            Ok(Some(line)) => {
                let same = self
                    .last
                    .as_ref()
                    .is_some_and(|l| l.file == line.file && l.line == line.line);
                let text = format!("; {line}");
                self.last = Some(line);
                (!same).then_some(text)
            }
            Ok(None) => {
                self.last = None;
                None
            }
            Err(error) => {
                self.failed = true;
                Some(format!("; {}", reason(&error)))
            }
        }
    }
}

fn reason(error: &LoadError) -> String {
    match error {
        LoadError::DebugInfo { detail, .. } => format!("no source lines: {detail}"),
        other => other.to_string(),
    }
}
