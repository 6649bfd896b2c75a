//! Shared helpers of the integration tests: the corpus and its answers.
//!
//! An answers file has one check per line, `MODULES : FUNCTION ARGS... = VALUE`, where MODULES
//! is the load order (paths relative to the answers file), ARGS are integers or double-quoted
//! strings, and VALUE is what the natively linked program computed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::sync::atomic::AtomicI64;

use dlkm_linker::ExternalKind;
use dlkm_loader::{Arg, Kernel};

pub mod compare;
pub mod lld;

/// Exports what `corpus/src/kernel/kernel_api.c` imports: `log_line` (at `log_line`, of
/// `log_kind`) and the variable `kernel_counter`.
pub fn export_kernel_api(
    kernel: &Kernel,
    log_line: u64,
    log_kind: ExternalKind,
    counter: &'static AtomicI64,
) {
    kernel
        .export_symbol("log_line", log_line, 0, log_kind)
        .unwrap();
    let counter = counter.as_ptr() as u64;
    kernel
        .export_symbol("kernel_counter", counter, 8, ExternalKind::Data)
        .unwrap();
}

/// The workspace's corpus directory.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus")
}

/// The corpus directory of this host's architecture (`corpus/x86_64`, `corpus/aarch64`), whose
/// objects the native machine runs.
pub fn host_corpus_dir() -> PathBuf {
    let arch = dlkm_linker::ArchKind::host().expect("dlkm links for this host");
    corpus_dir().join(arch.name())
}

/// One expected answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub modules: Vec<PathBuf>,
    pub function: String,
    pub args: Vec<Arg>,
    pub expected: i64,
    pub line: usize,
}

impl Check {
    /// The call as msyms takes it: `FUNCTION ARGS...`.
    pub fn call_command(&self) -> String {
        let mut command = format!("call {}", self.function);
        for arg in &self.args {
            match arg {
                Arg::Int(v) => command.push_str(&format!(" {}", *v as i64)),
                Arg::Str(s) => command.push_str(&format!(" \"{s}\"")),
            }
        }
        command
    }
}

/// Reads an answers file; `Err` names the line that does not parse.
pub fn read_answers(path: &Path) -> Result<Vec<Check>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| {
            parse_check(dir, l, i + 1).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

fn parse_check(dir: &Path, line: &str, number: usize) -> Result<Check, String> {
    let (modules, rest) = line.split_once(" : ").ok_or("no ` : `")?;
    let (call, expected) = rest.rsplit_once(" = ").ok_or("no ` = `")?;
    let mut words = tokenize(call)?.into_iter();
    let function = match words.next() {
        Some(Token::Word(w)) => w,
        _ => return Err("no function".into()),
    };
    let args = words
        .map(|t| match t {
            Token::Word(w) => parse_int(&w).map(Arg::Int),
            Token::Quoted(s) => Ok(Arg::Str(s)),
        })
        .collect::<Result<_, _>>()?;
    Ok(Check {
        modules: modules.split_whitespace().map(|m| dir.join(m)).collect(),
        function,
        args,
        expected: expected.trim().parse().map_err(|e| format!("value: {e}"))?,
        line: number,
    })
}

enum Token {
    Word(String),
    Quoted(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').ok_or("unterminated string")?;
            tokens.push(Token::Quoted(quoted[..end].to_string()));
            rest = quoted[end + 1..].trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            tokens.push(Token::Word(rest[..end].to_string()));
            rest = rest[end..].trim_start();
        }
    }
    Ok(tokens)
}

fn parse_int(word: &str) -> Result<u64, String> {
    let parsed = match word.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => word.parse::<i64>().ok().map(|v| v as u64),
    };
    parsed.ok_or_else(|| format!("bad integer `{word}`"))
}

/// Every answers file of an architecture, by variant name (`gcc-pie`, …).
pub fn variants(arch: &str) -> BTreeMap<String, PathBuf> {
    let dir = corpus_dir().join(arch);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .map(|e| e.path().join("answers.txt"))
        .filter(|p| p.is_file())
        .filter_map(|p| {
            let variant = p.parent()?.file_name()?.to_string_lossy().into_owned();
            Some((variant, p))
        })
        .collect()
}

/// Checks grouped by the modules they need, so each set is loaded once.
pub fn by_module_set(checks: Vec<Check>) -> BTreeMap<Vec<PathBuf>, Vec<Check>> {
    let mut groups: BTreeMap<Vec<PathBuf>, Vec<Check>> = BTreeMap::new();
    for check in checks {
        groups.entry(check.modules.clone()).or_default().push(check);
    }
    groups
}
