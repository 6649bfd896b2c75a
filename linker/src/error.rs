//! The linker's errors: each names the object, and where a relocation is at fault, the whole site.

use std::fmt;

/// Where a relocation sits, for error messages: enough to find it with `readelf -r`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelocSite {
    pub object: String,
    pub section: String,
    pub offset: u64,
    pub symbol: String,
    pub reloc: String,
}

impl fmt::Display for RelocSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {}+{:#x} against `{}` in {}",
            self.reloc, self.section, self.offset, self.symbol, self.object
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{object}: not a valid ELF relocatable object: {detail}")]
    Malformed { object: String, detail: String },

    #[error("{object}: {what} is not supported")]
    Unsupported { object: String, what: String },

    #[error("{object}: {count} undefined symbol(s): {}", names.join(", "))]
    UndefinedSymbols {
        object: String,
        count: usize,
        names: Vec<String>,
    },

    #[error("relocation {site}: unsupported relocation type{}", hint.as_deref().map(|h| format!(" ({h})")).unwrap_or_default())]
    UnsupportedRelocation {
        site: Box<RelocSite>,
        hint: Option<String>,
    },

    #[error("relocation {site}: value {value:#x} ({value}) is out of range [{min}, {max}]{}", hint.as_deref().map(|h| format!("; {h}")).unwrap_or_default())]
    OutOfRange {
        site: Box<RelocSite>,
        value: i128,
        min: i128,
        max: i128,
        hint: Option<String>,
    },

    #[error("relocation {site}: value {value:#x} is not a multiple of {align}")]
    Misaligned {
        site: Box<RelocSite>,
        value: i128,
        align: u64,
    },

    #[error("relocation {site}: {detail}")]
    BadRelocation {
        site: Box<RelocSite>,
        detail: String,
    },

    #[error("{object}: symbol `{symbol}`: {detail}")]
    BadSymbol {
        object: String,
        symbol: String,
        detail: String,
    },

    #[error("{object}: image buffer is {got:#x} bytes, the layout needs {want:#x}")]
    BufferSize { object: String, got: u64, want: u64 },

    /// [`rebind`](fn@crate::rebind) cannot give the bytes a fresh link would: `import` (empty
    /// when the fault is not one import's) and why.
    #[error("cannot rebind the image{}: {detail}", if import.is_empty() { String::new() } else { format!(" to import `{import}`") })]
    Rebind { import: String, detail: String },
}

/// Short-hand for building [`LinkError::Malformed`].
pub(crate) fn malformed(object: &str, detail: impl fmt::Display) -> LinkError {
    LinkError::Malformed {
        object: object.to_string(),
        detail: detail.to_string(),
    }
}
