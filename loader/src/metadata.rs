//! Module metadata: what a module says about itself in its `.modinfo` section and in
//! `NAME.master`. Everything is validated here, before the loader acts on any of it, so that a
//! malformed description fails with the file and line to fix instead of half-loading a module.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// Metadata is a few hundred bytes in practice; the bound keeps a hostile object or master file
/// from making the loader do unbounded work.
const MAX_INPUT: usize = 64 * 1024;
/// Most items a list-valued key may hold, for the same reason.
const MAX_ITEMS: usize = 1024;
/// Module names end up in messages, paths and the registry; keep them short.
const MAX_NAME: usize = 64;
/// How much of an offending value an error message quotes.
const MAX_SHOWN: usize = 64;

/// The kind of module, which decides the entry points the kernel expects of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleType {
    Misc,
    Driver,
    Streams,
}

impl ModuleType {
    /// The spelling used in `.modinfo` and master files, so messages match what users write.
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleType::Misc => "misc",
            ModuleType::Driver => "driver",
            ModuleType::Streams => "streams",
        }
    }

    fn from_name(s: &str) -> Option<ModuleType> {
        [ModuleType::Misc, ModuleType::Driver, ModuleType::Streams]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

/// A module's description, with the defaults filled in for every key neither source gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub name: String,
    pub module_type: ModuleType,
    pub version: u32,
    pub depend: Vec<String>,
    pub interface: Vec<(String, u32)>,
    pub prefix: Option<String>,
    /// `None`: the kernel's default; `Some(-1)`: never; otherwise seconds, at least 0.
    pub unload_delay: Option<i64>,
    /// `None` stubs every exported function; `Some(vec![])` stubs nothing.
    pub stubs: Option<Vec<String>>,
    pub checksum: Option<[u8; 32]>,
}

/// Where a metadata item came from, so that an error points at the text to fix.
///
/// An `entry` or `line` of 0 means the section or file as a whole (it is too big to parse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `entry` is the 1-based index of the `key=value` string, not counting empty padding.
    Modinfo { object: String, entry: usize },
    /// `line` is 1-based.
    Master { path: PathBuf, line: usize },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Modinfo { object, entry: 0 } => write!(f, "{object}: .modinfo"),
            Source::Modinfo { object, entry } => write!(f, "{object}: .modinfo entry {entry}"),
            Source::Master { path, line: 0 } => write!(f, "{}", path.display()),
            Source::Master { path, line } => write!(f, "{}:{line}", path.display()),
        }
    }
}

/// Why a module's metadata was refused; every variant names where the offending text is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error(
        "{at}: unknown key `{key}` (known: name, type, version, depend, interface, prefix, \
         unload_delay, stubs, checksum)"
    )]
    UnknownKey { at: Source, key: String },

    #[error("{at}: `{key}`: {problem}")]
    BadValue {
        at: Source,
        key: String,
        problem: String,
    },

    #[error("{at}: {problem}")]
    Syntax { at: Source, problem: String },

    #[error("{at}: `{key}` given twice")]
    Duplicate { at: Source, key: String },
}

/// The keys, as an enum so that a source's duplicates are tracked without string compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Name,
    Type,
    Version,
    Depend,
    Interface,
    Prefix,
    UnloadDelay,
    Stubs,
    Checksum,
}

impl Key {
    const ALL: [Key; 9] = [
        Key::Name,
        Key::Type,
        Key::Version,
        Key::Depend,
        Key::Interface,
        Key::Prefix,
        Key::UnloadDelay,
        Key::Stubs,
        Key::Checksum,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Key::Name => "name",
            Key::Type => "type",
            Key::Version => "version",
            Key::Depend => "depend",
            Key::Interface => "interface",
            Key::Prefix => "prefix",
            Key::UnloadDelay => "unload_delay",
            Key::Stubs => "stubs",
            Key::Checksum => "checksum",
        }
    }

    fn lookup(s: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One `key=value` or `$KEY value` item, before its value is checked.
struct Entry<'a> {
    at: Source,
    key: &'a str,
    value: &'a str,
}

impl Metadata {
    /// Defaults for a module whose file stem is `stem`: a module with no metadata at all is a
    /// `misc` module named after its file.
    pub fn defaults(stem: &str) -> Metadata {
        Metadata {
            name: stem.to_owned(),
            module_type: ModuleType::Misc,
            version: 1,
            depend: Vec::new(),
            interface: Vec::new(),
            prefix: None,
            unload_delay: None,
            stubs: None,
            checksum: None,
        }
    }

    /// `modinfo`: the bytes of the `.modinfo` section (None if the object has none); `master`:
    /// the path and text of NAME.master (None if absent). The master file's keys override
    /// `.modinfo`'s, so an administrator can change a module without rebuilding it; within one
    /// source a key given twice is an error, since one of the two would be silently ignored.
    /// Overridden `.modinfo` values are still checked: a malformed object is a build bug.
    pub fn parse(
        stem: &str,
        object: &str,
        modinfo: Option<&[u8]>,
        master: Option<(&Path, &str)>,
    ) -> Result<Metadata, MetadataError> {
        let mut meta = Metadata::defaults(stem);
        let mut depend_at = None;
        if let Some(bytes) = modinfo {
            meta.apply_all(modinfo_entries(object, bytes)?, &mut depend_at)?;
        }
        if let Some((path, text)) = master {
            meta.apply_all(master_entries(path, text)?, &mut depend_at)?;
        }
        // Checked last: the name and the dependencies may come from different sources.
        if let Some(at) = depend_at {
            if meta.depend.contains(&meta.name) {
                return Err(MetadataError::BadValue {
                    at,
                    key: Key::Depend.as_str().to_owned(),
                    problem: format!("module `{}` cannot depend on itself", meta.name),
                });
            }
        }
        Ok(meta)
    }

    /// The name of an entry point given the prefix: entry_point("load") is "_load" without
    /// prefix, "PREFIX_load" with one, so modules linked together cannot clash on `_load`.
    pub fn entry_point(&self, what: &str) -> String {
        match &self.prefix {
            Some(prefix) => format!("{prefix}_{what}"),
            None => format!("_{what}"),
        }
    }

    /// Applies one source's entries in order; `depend_at` follows the effective `depend`.
    fn apply_all(
        &mut self,
        entries: Vec<Entry<'_>>,
        depend_at: &mut Option<Source>,
    ) -> Result<(), MetadataError> {
        let mut seen = [false; Key::ALL.len()];
        for entry in entries {
            let Some(key) = Key::lookup(entry.key) else {
                return Err(MetadataError::UnknownKey {
                    at: entry.at,
                    key: shown(entry.key),
                });
            };
            if std::mem::replace(&mut seen[key as usize], true) {
                return Err(MetadataError::Duplicate {
                    at: entry.at,
                    key: key.as_str().to_owned(),
                });
            }
            self.apply(key, entry.value, &entry.at)?;
            if key == Key::Depend {
                *depend_at = Some(entry.at);
            }
        }
        Ok(())
    }

    fn apply(&mut self, key: Key, value: &str, at: &Source) -> Result<(), MetadataError> {
        let bad = |problem: String| MetadataError::BadValue {
            at: at.clone(),
            key: key.as_str().to_owned(),
            problem,
        };
        match key {
            Key::Name => {
                check_name(value).map_err(bad)?;
                self.name = value.to_owned();
            }
            Key::Type => {
                self.module_type = ModuleType::from_name(value).ok_or_else(|| {
                    bad(format!(
                        "`{}` is not one of misc, driver, streams",
                        shown(value)
                    ))
                })?;
            }
            Key::Version => {
                self.version = parse_u32(value).ok_or_else(|| bad(not_u32(value)))?;
            }
            Key::Depend => {
                let names = list(value).map_err(&bad)?;
                for name in &names {
                    check_name(name).map_err(|p| bad(format!("`{}`: {p}", shown(name))))?;
                }
                self.depend = names.into_iter().map(str::to_owned).collect();
            }
            Key::Interface => {
                let items = list(value).map_err(&bad)?;
                let mut interfaces = Vec::with_capacity(items.len());
                let mut names = HashSet::new();
                for item in items {
                    let (name, version) = item
                        .split_once('=')
                        .ok_or_else(|| bad(format!("`{}` is not name=version", shown(item))))?;
                    check_name(name).map_err(|p| bad(format!("`{}`: {p}", shown(name))))?;
                    let version = parse_u32(version)
                        .ok_or_else(|| bad(format!("`{}`: {}", shown(name), not_u32(version))))?;
                    if !names.insert(name) {
                        return Err(bad(format!("interface `{}` listed twice", shown(name))));
                    }
                    interfaces.push((name.to_owned(), version));
                }
                self.interface = interfaces;
            }
            Key::Prefix => {
                check_ident(value).map_err(bad)?;
                self.prefix = Some(value.to_owned());
            }
            Key::UnloadDelay => {
                let delay = parse_i64(value).filter(|&d| d >= -1).ok_or_else(|| {
                    bad(format!(
                        "`{}` is neither -1 (never) nor a number of seconds",
                        shown(value)
                    ))
                })?;
                self.unload_delay = Some(delay);
            }
            Key::Stubs => {
                let symbols = list(value).map_err(&bad)?;
                for symbol in &symbols {
                    check_ident(symbol).map_err(&bad)?;
                }
                self.stubs = Some(symbols.into_iter().map(str::to_owned).collect());
            }
            Key::Checksum => {
                let digest = parse_sha256(value).ok_or_else(|| {
                    bad(format!(
                        "`{}` is not a SHA-256 digest of 64 hex digits",
                        shown(value)
                    ))
                })?;
                self.checksum = Some(digest);
            }
        }
        Ok(())
    }
}

/// Splits `.modinfo` into its non-empty strings; empty ones are alignment padding.
fn modinfo_entries<'a>(object: &str, bytes: &'a [u8]) -> Result<Vec<Entry<'a>>, MetadataError> {
    let at = |entry| Source::Modinfo {
        object: object.to_owned(),
        entry,
    };
    if bytes.len() > MAX_INPUT {
        return Err(MetadataError::Syntax {
            at: at(0),
            problem: too_big(bytes.len()),
        });
    }
    let mut entries = Vec::new();
    for (index, raw) in bytes
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .enumerate()
    {
        let at = at(index + 1);
        let Ok(text) = std::str::from_utf8(raw) else {
            return Err(MetadataError::Syntax {
                at,
                problem: "not UTF-8".to_owned(),
            });
        };
        let Some((key, value)) = text.split_once('=') else {
            return Err(MetadataError::Syntax {
                at,
                problem: format!("expected key=value, found `{}`", shown(text)),
            });
        };
        entries.push(Entry { at, key, value });
    }
    Ok(entries)
}

/// Splits a master file into its `$KEY value` lines, skipping blank lines and `#` comments.
fn master_entries<'a>(path: &Path, text: &'a str) -> Result<Vec<Entry<'a>>, MetadataError> {
    let at = |line| Source::Master {
        path: path.to_owned(),
        line,
    };
    if text.len() > MAX_INPUT {
        return Err(MetadataError::Syntax {
            at: at(0),
            problem: too_big(text.len()),
        });
    }
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = at(index + 1);
        let syntax = |problem: String| MetadataError::Syntax {
            at: at.clone(),
            problem,
        };
        let Some(rest) = line.strip_prefix('$') else {
            return Err(syntax(format!(
                "expected `$KEY value`, found `{}`",
                shown(line)
            )));
        };
        let key_len = rest
            .bytes()
            .take_while(|&b| b.is_ascii_lowercase() || b == b'_')
            .count();
        let (key, after) = rest.split_at(key_len);
        if key.is_empty() || !(after.is_empty() || after.starts_with(char::is_whitespace)) {
            return Err(syntax(format!(
                "expected `$KEY value` with KEY of a-z and _, found `{}`",
                shown(line)
            )));
        }
        entries.push(Entry {
            at,
            key,
            value: after.trim_start(),
        });
    }
    Ok(entries)
}

fn too_big(len: usize) -> String {
    format!("{len} bytes is more than the {MAX_INPUT} allowed")
}

/// Splits a list value; a repeated item is refused because it is always a typo.
fn list(value: &str) -> Result<Vec<&str>, String> {
    let items: Vec<&str> = value.split_whitespace().take(MAX_ITEMS + 1).collect();
    if items.len() > MAX_ITEMS {
        return Err(format!("more than {MAX_ITEMS} items"));
    }
    let mut seen = HashSet::new();
    if let Some(twice) = items.iter().find(|item| !seen.insert(**item)) {
        return Err(format!("`{}` listed twice", shown(twice)));
    }
    Ok(items)
}

/// `.` and `..` are refused because a module name may become a file name.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a module name cannot be empty".to_owned());
    }
    if name.len() > MAX_NAME {
        return Err(format!("a module name has at most {MAX_NAME} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "a module name has only A-Z a-z 0-9 _ . - (found {c:?})"
        ));
    }
    if name == "." || name == ".." {
        return Err("`.` and `..` are not module names".to_owned());
    }
    Ok(())
}

/// Prefixes and stubs become C symbol names, so they must be C identifiers.
fn check_ident(ident: &str) -> Result<(), String> {
    let mut bytes = ident.bytes();
    let ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else if ident.is_empty() {
        Err("an empty value is not a C identifier".to_owned())
    } else {
        Err(format!("`{}` is not a C identifier", shown(ident)))
    }
}

fn not_u32(value: &str) -> String {
    format!(
        "`{}` is not a decimal integer from 0 to {}",
        shown(value),
        u32::MAX
    )
}

/// Plain decimal digits only: Rust's parser would also take `+1`, which no C tool writes.
fn parse_u32(s: &str) -> Option<u32> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn parse_i64(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn parse_sha256(s: &str) -> Option<[u8; 32]> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut digest = [0; 32];
    for (out, pair) in digest.iter_mut().zip(bytes.chunks_exact(2)) {
        let high = (pair[0] as char).to_digit(16)?;
        let low = (pair[1] as char).to_digit(16)?;
        *out = (high << 4 | low) as u8;
    }
    Some(digest)
}

/// Quotes user text in a message without letting control characters or a 64 KiB value through.
fn shown(s: &str) -> String {
    match s.char_indices().nth(MAX_SHOWN) {
        Some((cut, _)) => format!("{}…", s[..cut].escape_debug()),
        None => s.escape_debug().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KERNEL_API: &[u8] = b"name=kernel_api\0type=misc\0version=1\0";

    fn modinfo(bytes: &[u8]) -> Result<Metadata, MetadataError> {
        Metadata::parse("stem", "m.o", Some(bytes), None)
    }

    fn master(text: &str) -> Result<Metadata, MetadataError> {
        Metadata::parse("stem", "m.o", None, Some((Path::new("m.master"), text)))
    }

    fn at_entry(entry: usize) -> Source {
        Source::Modinfo {
            object: "m.o".to_owned(),
            entry,
        }
    }

    fn at_line(line: usize) -> Source {
        Source::Master {
            path: PathBuf::from("m.master"),
            line,
        }
    }

    fn bad_value(err: MetadataError) -> (Source, String, String) {
        match err {
            MetadataError::BadValue { at, key, problem } => (at, key, problem),
            other => panic!("expected BadValue, got {other:?}"),
        }
    }

    #[test]
    fn defaults_name_the_module_after_its_file() {
        let meta = Metadata::defaults("hello");
        assert_eq!(meta.name, "hello");
        assert_eq!(meta.module_type, ModuleType::Misc);
        assert_eq!(meta.version, 1);
        assert!(meta.depend.is_empty() && meta.interface.is_empty());
        assert_eq!(meta.prefix, None);
        assert_eq!(meta.unload_delay, None);
        assert_eq!(meta.stubs, None);
        assert_eq!(meta.checksum, None);
        assert_eq!(Metadata::parse("hello", "hello.o", None, None), Ok(meta));
    }

    #[test]
    fn kernel_api_modinfo() {
        let meta = Metadata::parse("other", "kernel_api.o", Some(KERNEL_API), None).unwrap();
        assert_eq!(meta.name, "kernel_api");
        assert_eq!(meta.module_type, ModuleType::Misc);
        assert_eq!(meta.version, 1);
    }

    #[test]
    fn modinfo_every_key() {
        let bytes = b"\0\0name=drv\0type=driver\0version=7\0depend=a b\0interface=ddi=8 kmem=2\0\
                      prefix=drv\0unload_delay=-1\0stubs=drv_open drv_close\0\
                      checksum=00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff\0\0\0";
        let meta = modinfo(bytes).unwrap();
        assert_eq!(meta.name, "drv");
        assert_eq!(meta.module_type, ModuleType::Driver);
        assert_eq!(meta.version, 7);
        assert_eq!(meta.depend, ["a", "b"]);
        assert_eq!(
            meta.interface,
            [("ddi".to_owned(), 8), ("kmem".to_owned(), 2)]
        );
        assert_eq!(meta.prefix.as_deref(), Some("drv"));
        assert_eq!(meta.unload_delay, Some(-1));
        assert_eq!(
            meta.stubs,
            Some(vec!["drv_open".to_owned(), "drv_close".to_owned()])
        );
        let mut digest = [0u8; 32];
        for (i, b) in digest.iter_mut().enumerate() {
            *b = ((i % 16) as u8) * 0x11;
        }
        assert_eq!(meta.checksum, Some(digest));
    }

    #[test]
    fn master_only() {
        let text = "# a comment\n\n$name   str\r\n$type streams\n  \n$version 3  \n\
                    $unload_delay 60\n$depend\n$stubs\n";
        let meta = master(text).unwrap();
        assert_eq!(meta.name, "str");
        assert_eq!(meta.module_type, ModuleType::Streams);
        assert_eq!(meta.version, 3);
        assert_eq!(meta.unload_delay, Some(60));
        assert!(meta.depend.is_empty());
        assert_eq!(meta.stubs, Some(Vec::new()));
    }

    #[test]
    fn master_overrides_modinfo_and_keeps_the_rest() {
        let bytes = b"name=kernel_api\0type=misc\0version=1\0depend=base\0prefix=ka\0";
        let text = "$version 2\n$depend\n$type driver\n";
        let meta = Metadata::parse(
            "kernel_api",
            "kernel_api.o",
            Some(bytes),
            Some((Path::new("kernel_api.master"), text)),
        )
        .unwrap();
        assert_eq!(meta.name, "kernel_api");
        assert_eq!(meta.module_type, ModuleType::Driver);
        assert_eq!(meta.version, 2);
        assert!(meta.depend.is_empty());
        assert_eq!(meta.prefix.as_deref(), Some("ka"));
    }

    #[test]
    fn a_key_in_both_sources_is_not_a_duplicate() {
        let meta = Metadata::parse(
            "s",
            "m.o",
            Some(b"name=a\0"),
            Some((Path::new("m.master"), "$name b\n")),
        )
        .unwrap();
        assert_eq!(meta.name, "b");
    }

    #[test]
    fn empty_depend_means_none() {
        assert!(modinfo(b"depend=\0").unwrap().depend.is_empty());
        assert!(master("$depend   \n").unwrap().depend.is_empty());
        assert!(master("$interface").unwrap().interface.is_empty());
    }

    #[test]
    fn entry_points_follow_the_prefix() {
        let mut meta = Metadata::defaults("m");
        assert_eq!(meta.entry_point("load"), "_load");
        assert_eq!(meta.entry_point("unload"), "_unload");
        meta = master("$prefix mydrv").unwrap();
        assert_eq!(meta.entry_point("load"), "mydrv_load");
        assert_eq!(meta.entry_point("open"), "mydrv_open");
    }

    #[test]
    fn unknown_key_names_the_entry() {
        let err = modinfo(b"\0name=a\0\0\0Name=b\0").unwrap_err();
        assert_eq!(
            err,
            MetadataError::UnknownKey {
                at: at_entry(2),
                key: "Name".to_owned()
            }
        );
        assert_eq!(
            err.to_string(),
            "m.o: .modinfo entry 2: unknown key `Name` (known: name, type, version, depend, \
             interface, prefix, unload_delay, stubs, checksum)"
        );
        assert_eq!(
            master("# c\n$colour red\n").unwrap_err(),
            MetadataError::UnknownKey {
                at: at_line(2),
                key: "colour".to_owned()
            }
        );
    }

    #[test]
    fn duplicate_names_the_second_occurrence() {
        let err = modinfo(b"version=1\0name=a\0version=2\0").unwrap_err();
        assert_eq!(
            err,
            MetadataError::Duplicate {
                at: at_entry(3),
                key: "version".to_owned()
            }
        );
        assert_eq!(
            err.to_string(),
            "m.o: .modinfo entry 3: `version` given twice"
        );
        let err = master("$type misc\n\n$type misc\n").unwrap_err();
        assert_eq!(
            err,
            MetadataError::Duplicate {
                at: at_line(3),
                key: "type".to_owned()
            }
        );
        assert_eq!(err.to_string(), "m.master:3: `type` given twice");
    }

    #[test]
    fn modinfo_syntax_errors() {
        let err = modinfo(b"name=a\0version 1\0").unwrap_err();
        assert!(matches!(&err, MetadataError::Syntax { at, .. } if *at == at_entry(2)));
        assert_eq!(
            err.to_string(),
            "m.o: .modinfo entry 2: expected key=value, found `version 1`"
        );
    }

    #[test]
    fn bad_utf8_is_a_syntax_error() {
        let err = modinfo(b"name=a\0\0name=\xff\xfe\0").unwrap_err();
        assert_eq!(
            err,
            MetadataError::Syntax {
                at: at_entry(2),
                problem: "not UTF-8".to_owned()
            }
        );
    }

    #[test]
    fn master_syntax_errors() {
        for (text, line) in [
            ("$name a\nname b\n", 2),
            ("\n\n$\n", 3),
            ("$Name a\n", 1),
            ("$name=a\n", 1),
            ("  $name a\n", 1),
            ("$na-me a\n", 1),
        ] {
            let err = master(text).unwrap_err();
            assert!(
                matches!(&err, MetadataError::Syntax { at, .. } if *at == at_line(line)),
                "{text:?}: {err:?}"
            );
        }
        assert_eq!(
            master("name b").unwrap_err().to_string(),
            "m.master:1: expected `$KEY value`, found `name b`"
        );
    }

    #[test]
    fn bad_values_name_source_and_key() {
        let cases: &[(&str, &str)] = &[
            ("name=", "name"),
            ("name=a b", "name"),
            ("name=a/b", "name"),
            ("name=..", "name"),
            ("type=block", "type"),
            ("type=Misc", "type"),
            ("version=", "version"),
            ("version=-1", "version"),
            ("version=+1", "version"),
            ("version=4294967296", "version"),
            ("version=0x10", "version"),
            ("depend=a a", "depend"),
            ("depend=a b/c", "depend"),
            ("interface=ddi", "interface"),
            ("interface=ddi=x", "interface"),
            ("interface==1", "interface"),
            ("interface=ddi=1 ddi=2", "interface"),
            ("prefix=", "prefix"),
            ("prefix=1x", "prefix"),
            ("prefix=a-b", "prefix"),
            ("unload_delay=-2", "unload_delay"),
            ("unload_delay=", "unload_delay"),
            ("unload_delay=-", "unload_delay"),
            ("unload_delay=soon", "unload_delay"),
            ("stubs=a 2b", "stubs"),
            ("stubs=a a", "stubs"),
            ("checksum=abc", "checksum"),
            (
                "checksum=g0112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                "checksum",
            ),
            (
                "checksum=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00",
                "checksum",
            ),
        ];
        for (item, key) in cases {
            let first = if item.starts_with("name=") {
                "version=1"
            } else {
                "name=ok"
            };
            let bytes = format!("\0{first}\0\0{item}\0");
            let (at, got, _) = bad_value(modinfo(bytes.as_bytes()).unwrap_err());
            assert_eq!((at, got.as_str()), (at_entry(2), *key), "{item:?}");
        }
        let err = master("\n$name ok\n$version one\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "m.master:3: `version`: `one` is not a decimal integer from 0 to 4294967295"
        );
        let long = format!("name={}\0", "n".repeat(MAX_NAME + 1));
        let (at, key, problem) = bad_value(modinfo(long.as_bytes()).unwrap_err());
        assert_eq!((at, key.as_str()), (at_entry(1), "name"));
        assert!(problem.contains("at most 64"), "{problem}");
        let longest = format!("name={}\0", "n".repeat(MAX_NAME));
        assert!(modinfo(longest.as_bytes()).is_ok());
    }

    #[test]
    fn overridden_modinfo_values_are_still_checked() {
        let err = Metadata::parse(
            "s",
            "m.o",
            Some(b"version=x\0"),
            Some((Path::new("m.master"), "$version 2\n")),
        )
        .unwrap_err();
        assert_eq!(bad_value(err).0, at_entry(1));
    }

    #[test]
    fn self_dependency_is_refused() {
        let (at, key, problem) = bad_value(modinfo(b"name=me\0depend=other me\0").unwrap_err());
        assert_eq!((at, key.as_str()), (at_entry(2), "depend"));
        assert!(problem.contains("`me`"), "{problem}");
        // The name from the master file, the dependency from .modinfo.
        let err = Metadata::parse(
            "s",
            "m.o",
            Some(b"name=x\0depend=me\0"),
            Some((Path::new("m.master"), "$name me\n")),
        )
        .unwrap_err();
        assert_eq!(bad_value(err).0, at_entry(2));
        // With no name key, the file stem is the name.
        let err = master("$depend a stem").unwrap_err();
        assert_eq!(bad_value(err).0, at_line(1));
        // A master `depend` that drops the self-dependency fixes it.
        let meta = Metadata::parse(
            "me",
            "m.o",
            Some(b"depend=me\0"),
            Some((Path::new("m.master"), "$depend other")),
        )
        .unwrap();
        assert_eq!(meta.depend, ["other"]);
    }

    #[test]
    fn unload_delay_bounds() {
        assert_eq!(modinfo(b"unload_delay=0\0").unwrap().unload_delay, Some(0));
        assert_eq!(
            master("$unload_delay 9223372036854775807")
                .unwrap()
                .unload_delay,
            Some(i64::MAX)
        );
        assert!(master("$unload_delay 9223372036854775808").is_err());
    }

    #[test]
    fn oversized_inputs_are_refused() {
        let big = vec![b'\0'; MAX_INPUT + 1];
        let err = modinfo(&big).unwrap_err();
        assert!(matches!(&err, MetadataError::Syntax { at, .. } if *at == at_entry(0)));
        assert!(err.to_string().starts_with("m.o: .modinfo: "), "{err}");
        assert!(modinfo(&big[..MAX_INPUT]).is_ok());

        let text = "#".repeat(MAX_INPUT + 1);
        let err = master(&text).unwrap_err();
        assert!(matches!(&err, MetadataError::Syntax { at, .. } if *at == at_line(0)));
        assert!(err.to_string().starts_with("m.master: "), "{err}");
    }

    #[test]
    fn too_many_items_are_refused() {
        let names = |n: usize| {
            (0..n)
                .map(|i| format!("m{i}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            master(&format!("$depend {}", names(MAX_ITEMS)))
                .unwrap()
                .depend
                .len(),
            MAX_ITEMS
        );
        for key in ["depend", "stubs"] {
            let (at, got, problem) =
                bad_value(master(&format!("${key} {}", names(MAX_ITEMS + 1))).unwrap_err());
            assert_eq!((at, got.as_str()), (at_line(1), key));
            assert!(problem.contains("more than 1024"), "{problem}");
        }
        let interfaces = (0..=MAX_ITEMS)
            .map(|i| format!("i{i}=1"))
            .collect::<Vec<_>>()
            .join(" ");
        let (_, key, _) = bad_value(master(&format!("$interface {interfaces}")).unwrap_err());
        assert_eq!(key, "interface");
    }

    #[test]
    fn long_values_are_truncated_in_messages() {
        let err = master(&format!("$type {}", "x".repeat(1000))).unwrap_err();
        let message = err.to_string();
        assert!(message.len() < 200, "{message}");
        assert!(message.contains('…'));
        let err = modinfo(b"type=a\nb\0").unwrap_err();
        assert!(err.to_string().contains("`a\\nb`"), "{err}");
    }

    #[test]
    fn module_type_names() {
        for t in [ModuleType::Misc, ModuleType::Driver, ModuleType::Streams] {
            assert_eq!(ModuleType::from_name(t.as_str()), Some(t));
        }
        assert_eq!(ModuleType::Streams.as_str(), "streams");
    }
}
