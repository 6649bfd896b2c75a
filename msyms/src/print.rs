//! The printers of msyms' outputs. Public so tests and embedders print exactly what the
//! commands print; the formats of the table header and of a call's result are a contract.

use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use dlkm_linker::{ExternalKind, LinkedSymbols, SymbolType};
use dlkm_loader::{KernelSymbol, ModuleInfo, ModuleState, Owner};

/// The header of the `modules` table, as the contract spells it.
pub const MODULES_HEADER: &str = "ID NAME TYPE STATE REFS DEPS BASE SIZE";

/// The `modules` table: the header, then one module per line, fields separated by one space
/// so the lines split like the header does. Registered modules that are not loaded are rows
/// too (state `registered` or `failed`), with base and size 0.
pub fn write_modules(out: &mut dyn Write, modules: &[ModuleInfo]) -> io::Result<()> {
    writeln!(out, "{MODULES_HEADER}")?;
    for m in modules {
        writeln!(
            out,
            "{} {} {} {} {} {} {:#x} {:#x}",
            m.id,
            m.name,
            m.module_type,
            m.state,
            m.refs,
            name_list(&m.deps, ","),
            m.base,
            m.size
        )?;
    }
    Ok(())
}

/// A module's symbols, one per line: address, size, kind, name; in the order given (the
/// kernel gives them by address).
pub fn write_symbols(out: &mut dyn Write, symbols: &LinkedSymbols) -> io::Result<()> {
    for s in symbols {
        writeln!(
            out,
            "{:#018x} {:#8x} {:<7} {}",
            s.address,
            s.size,
            symbol_kind(s.ty),
            s.name
        )?;
    }
    Ok(())
}

/// Everything about one module, loaded or registered; `now` is passed in so the age of the
/// load is testable.
pub fn write_stat(out: &mut dyn Write, module: &ModuleInfo, now: SystemTime) -> io::Result<()> {
    write_stat_with_lines(out, module, now, &|_| None)
}

/// [`write_stat`], each entry point followed by ` at FILE:LINE` where `line_of` knows its
/// source line.
pub fn write_stat_with_lines(
    out: &mut dyn Write,
    module: &ModuleInfo,
    now: SystemTime,
    line_of: &dyn Fn(u64) -> Option<String>,
) -> io::Result<()> {
    // A registered module that is not loaded has no image, and its time is its registration's.
    let loaded = !matches!(module.state, ModuleState::Registered | ModuleState::Failed);
    let path = module
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "-".into());
    writeln!(out, "module      {} (id {})", module.name, module.id)?;
    writeln!(out, "path        {path}")?;
    if let Some(absolute) = module.path.as_ref().and_then(|p| p.canonicalize().ok()) {
        writeln!(out, "object      {}", absolute.display())?;
    }
    writeln!(out, "type        {}", module.module_type)?;
    writeln!(out, "version     {}", module.version)?;
    writeln!(out, "state       {}", module.state)?;
    let registered = match (module.registered, loaded) {
        (false, _) => "no".to_string(),
        (true, true) => "yes".to_string(),
        // Not loaded, the record's time is the registration's.
        (true, false) => format!("yes, since {}", describe_time(module.loaded_at, now)),
    };
    writeln!(out, "registered  {registered}")?;
    if module.registered {
        writeln!(out, "stubs       {}", name_list(&module.stubs, ", "))?;
    }
    if let Some(failure) = &module.failure {
        writeln!(out, "failure     {failure}")?;
    }
    writeln!(out, "base        {:#x}", module.base)?;
    writeln!(out, "size        {:#x}", module.size)?;
    writeln!(out, "refs        {}", module.refs)?;
    writeln!(out, "holds       {}", module.holds)?;
    writeln!(out, "open        {}", module.opens)?;
    let loaded_by = match (loaded, module.auto_loaded) {
        (false, _) => "- (not loaded)",
        (true, true) => "auto load (open, or a call through a stub)",
        (true, false) => "demand",
    };
    writeln!(out, "loaded by   {loaded_by}")?;
    writeln!(out, "depends on  {}", name_list(&module.deps, ", "))?;
    if !module.stub_deps.is_empty() {
        writeln!(
            out,
            "stub deps   {} (calls through their stubs)",
            name_list(&module.stub_deps, ", ")
        )?;
    }
    writeln!(out, "used by     {}", name_list(&module.users, ", "))?;
    if loaded {
        writeln!(out, "loaded at   {}", describe_time(module.loaded_at, now))?;
    } else {
        writeln!(out, "loaded at   -")?;
    }
    writeln!(out, "stubs used  {}", module.stubs_used)?;
    writeln!(out, "GOT relaxed {}", module.got_relaxed)?;
    if module.from_image_cache {
        writeln!(out, "image       mapped from the image cache")?;
    }
    writeln!(out, "copied      {}", name_list(&module.copied, ", "))?;
    writeln!(out, "sections:")?;
    if module.sections.is_empty() {
        writeln!(out, "  -")?;
    }
    for s in &module.sections {
        writeln!(out, "  {:#018x} {:#8x} {}", s.address, s.size, s.name)?;
    }
    writeln!(out, "entry points:")?;
    if module.entry_points.is_empty() {
        writeln!(out, "  -")?;
    }
    for (name, address) in &module.entry_points {
        match line_of(*address) {
            Some(line) => writeln!(out, "  {address:#018x} {name} at {line}")?,
            None => writeln!(out, "  {address:#018x} {name}")?,
        }
    }
    Ok(())
}

/// A kernel symbol table entry: `state` is `stub` for the auto-loading stub of a registered
/// module that is not loaded (its address is the stub's), `resolved` for everything else.
pub fn write_kernel_symbol(out: &mut dyn Write, symbol: &KernelSymbol) -> io::Result<()> {
    writeln!(out, "name        {}", symbol.name)?;
    writeln!(out, "address     {:#x}", symbol.address)?;
    writeln!(out, "owner       {}", symbol.owner)?;
    writeln!(out, "size        {:#x}", symbol.size)?;
    writeln!(out, "kind        {}", external_kind(symbol.kind))?;
    match &symbol.owner {
        Owner::Stub(_, module) => {
            writeln!(out, "state       stub (the first call loads {module})")
        }
        _ => writeln!(out, "state       resolved"),
    }
}

/// The last line of `call`: the result as a signed decimal and as hex.
/// `x`: 16 bytes a line, address, hex, and the printable ones as text.
pub fn write_hex_dump(out: &mut dyn Write, address: u64, bytes: &[u8]) -> io::Result<()> {
    for (i, line) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
        let text: String = line
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        writeln!(
            out,
            "{:#x}  {:<47}  |{text}|",
            address + 16 * i as u64,
            hex.join(" ")
        )?;
    }
    Ok(())
}

pub fn format_result(value: u64) -> String {
    format!("= {} ({value:#x})", value as i64)
}

pub fn symbol_kind(ty: SymbolType) -> String {
    match ty {
        SymbolType::NoType => "notype".into(),
        SymbolType::Object => "object".into(),
        SymbolType::Function => "func".into(),
        SymbolType::Section => "section".into(),
        SymbolType::File => "file".into(),
        SymbolType::Tls => "tls".into(),
        SymbolType::IFunc => "ifunc".into(),
        SymbolType::Other(n) => format!("type{n}"),
    }
}

pub fn external_kind(kind: ExternalKind) -> &'static str {
    match kind {
        ExternalKind::Function => "function",
        ExternalKind::Data => "data",
        ExternalKind::Unknown => "unknown",
    }
}

/// Names joined by `separator`, or `-` when there are none, so a column is never empty.
fn name_list(names: &[String], separator: &str) -> String {
    if names.is_empty() {
        "-".into()
    } else {
        names.join(separator)
    }
}

/// `2024-05-01 12:00:00 UTC (3 s ago)`.
fn describe_time(at: SystemTime, now: SystemTime) -> String {
    let seconds = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let age = now.duration_since(at).map(|d| d.as_secs()).unwrap_or(0);
    format!("{} ({age} s ago)", utc_date_time(seconds))
}

/// Seconds since the epoch as a UTC date and time (the civil-from-days algorithm of Howard
/// Hinnant's date library), to avoid a date crate for one line of `stat`.
fn utc_date_time(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let time = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        time / 3600,
        time / 60 % 60,
        time % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_signed_decimal_and_hex() {
        assert_eq!(format_result(42), "= 42 (0x2a)");
        assert_eq!(format_result(u64::MAX), "= -1 (0xffffffffffffffff)");
        assert_eq!(format_result(0), "= 0 (0x0)");
    }

    #[test]
    fn dates() {
        assert_eq!(utc_date_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_date_time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_date_time(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn kernel_symbols_are_stubs_or_resolved() {
        let mut symbol = KernelSymbol {
            name: "lc_lib_weigh".into(),
            address: 0x1000,
            size: 0,
            kind: ExternalKind::Function,
            owner: Owner::Stub(dlkm_loader::ModuleId(1), "lc_lib".into()),
        };
        let text = |symbol: &KernelSymbol| {
            let mut out = Vec::new();
            write_kernel_symbol(&mut out, symbol).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert!(text(&symbol).ends_with("state       stub (the first call loads lc_lib)\n"));
        symbol.owner = Owner::Module(dlkm_loader::ModuleId(1), "lc_lib".into());
        assert!(text(&symbol).ends_with("state       resolved\n"));
    }

    #[test]
    fn empty_table_is_the_header() {
        let mut out = Vec::new();
        write_modules(&mut out, &[]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{MODULES_HEADER}\n")
        );
    }
}
