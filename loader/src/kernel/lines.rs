//! Source lines of loaded modules: the object's DWARF, relocated by the linker to where the
//! module was placed ([`dlkm_linker::debug_sections`]), read with addr2line. Nothing of it
//! happens while loading: a module with a line table keeps what it takes to build its
//! addr2line context, which is built on the first question about one of its addresses.

use std::sync::{Arc, Mutex, MutexGuard};

use addr2line::Context;
use dlkm_linker::{Import, Layout, LayoutOptions, Object};
use gimli::{EndianArcSlice, RunTimeEndian};

use super::image_cache::FileStamp;
use super::*;

/// Where in the source the code at an address comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLine {
    /// The file as the compiler named it (its compilation directory joined in where the name
    /// is relative).
    pub file: String,
    pub line: u32,
    pub column: Option<u32>,
}

impl std::fmt::Display for SourceLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

type Reader = EndianArcSlice<RunTimeEndian>;

/// The sections a line lookup reads; any of them left out by the linker (a relocation it does
/// not apply to debug information) makes the module's lines unreadable rather than wrong.
const NEEDED: &[&str] = &[
    ".debug_info",
    ".debug_abbrev",
    ".debug_line",
    ".debug_line_str",
    ".debug_str",
    ".debug_str_offsets",
    ".debug_addr",
    ".debug_ranges",
    ".debug_rnglists",
];

/// What a module with a line table keeps to answer for its addresses later.
///
/// It keeps a copy of the object's bytes, and only an object that has a `.debug_line`, rather
/// than the path to read the file again: the file may have been rebuilt or removed since the
/// load (the usual case while a module is being debugged, and lines from a newer build would
/// be silently wrong), and a module loaded from bytes has no file at all. The copy is one
/// `memcpy` of bytes already in memory; parsing and relocating the DWARF wait for the first
/// question, after which the copy is dropped and only the relocated debug sections stay.
pub(super) struct ModuleLines {
    module: String,
    state: Mutex<LinesState>,
}

enum LinesState {
    /// Not asked yet.
    Pending(Box<Pending>),
    Ready(Box<Context<Reader>>),
    /// The line table is there but cannot be read; why.
    Failed(String),
}

/// What [`dlkm_linker::debug_sections`] needs: the object, and where the link put it.
struct Pending {
    object: Source,
    base: u64,
    imports: Vec<Import>,
}

/// Where the object and its layout come from.
enum Source {
    /// A copy of the object's bytes, and the layout it was linked with.
    Bytes {
        object_name: String,
        bytes: Box<[u8]>,
        layout: Layout,
    },
    /// The object file a module mapped from the image cache was linked from, as it was then
    /// (`stamp`), and the options to lay it out again as it was.
    File {
        path: PathBuf,
        stamp: FileStamp,
        options: LayoutOptions,
    },
}

impl ModuleLines {
    /// What to keep for a module linked from `object` (read from `bytes`), or `None` when
    /// it has no line table.
    pub(super) fn keep(
        module: &str,
        object: &Object,
        bytes: &[u8],
        layout: &Layout,
        output: &LinkOutput,
    ) -> Option<Arc<ModuleLines>> {
        if !object.has_line_table() {
            return None;
        }
        let object = Source::Bytes {
            object_name: object.name.clone(),
            bytes: bytes.into(),
            layout: layout.clone(),
        };
        Some(Self::pending(module, object, output.base, &output.imports))
    }

    /// What to keep for a module mapped from the image cache whose object has a line table:
    /// the object is read again when a line is first asked for, if it is still the file
    /// `stamp` describes.
    pub(super) fn from_file(
        module: &str,
        path: &Path,
        stamp: FileStamp,
        options: LayoutOptions,
        base: u64,
        imports: &[Import],
    ) -> Arc<ModuleLines> {
        let object = Source::File {
            path: path.to_path_buf(),
            stamp,
            options,
        };
        Self::pending(module, object, base, imports)
    }

    fn pending(module: &str, object: Source, base: u64, imports: &[Import]) -> Arc<ModuleLines> {
        Arc::new(ModuleLines {
            module: module.to_string(),
            state: Mutex::new(LinesState::Pending(Box::new(Pending {
                object,
                base,
                imports: imports.to_vec(),
            }))),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LinesState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The source line of `address`; `Ok(None)` where the line table says nothing about it.
    pub(super) fn find(&self, address: u64) -> Result<Option<SourceLine>, LoadError> {
        let mut state = self.lock();
        if let LinesState::Pending(_) = *state {
            let taken = std::mem::replace(&mut *state, LinesState::Failed(String::new()));
            if let LinesState::Pending(pending) = taken {
                // The object's bytes go once the context is built (or cannot be).
                *state = match build(*pending) {
                    Ok(context) => LinesState::Ready(context),
                    Err(reason) => LinesState::Failed(reason),
                };
            }
        }
        let failed = |detail: String| LoadError::DebugInfo {
            module: self.module.clone(),
            detail,
        };
        match &*state {
            LinesState::Ready(context) => {
                let location = context
                    .find_location(address)
                    .map_err(|e| failed(format!("reading the line table: {e}")))?;
                Ok(location.and_then(|l| {
                    Some(SourceLine {
                        file: l.file?.to_string(),
                        line: l.line?,
                        column: l.column,
                    })
                }))
            }
            LinesState::Failed(reason) => Err(failed(reason.clone())),
            LinesState::Pending(_) => Err(failed("not built".into())),
        }
    }
}

/// The layout a module was linked with: kept, or made again the same way.
enum LayoutFrom {
    Kept(Box<Layout>),
    Options(LayoutOptions),
}

/// Relocates the debug sections and makes the addr2line context; `Err` says why it cannot.
fn build(pending: Pending) -> Result<Box<Context<Reader>>, String> {
    let Pending {
        object,
        base,
        imports,
    } = pending;
    let (object_name, bytes, layout) = match object {
        Source::Bytes {
            object_name,
            bytes,
            layout,
        } => (object_name, bytes, LayoutFrom::Kept(Box::new(layout))),
        Source::File {
            path,
            stamp,
            options,
        } => {
            if FileStamp::of(&path) != Some(stamp) {
                let path = path.display();
                return Err(format!("{path} has changed since the module was loaded"));
            }
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let name = path.display().to_string();
            (name, bytes.into(), LayoutFrom::Options(options))
        }
    };
    let object = Object::parse(&object_name, &bytes).map_err(|e| e.to_string())?;
    let layout = match layout {
        LayoutFrom::Kept(layout) => *layout,
        LayoutFrom::Options(options) => {
            dlkm_linker::layout(&object, &options).map_err(|e| e.to_string())?
        }
    };
    let endian = if object.arch.big_endian() {
        RunTimeEndian::Big
    } else {
        RunTimeEndian::Little
    };
    let mut debug =
        dlkm_linker::debug_sections(&object, &layout, base, &imports).map_err(|e| e.to_string())?;
    if let Some(skipped) = debug
        .skipped
        .iter()
        .find(|s| NEEDED.contains(&s.name.as_str()))
    {
        return Err(format!("{} left out: {}", skipped.name, skipped.reason));
    }
    let dwarf = gimli::Dwarf::load(|id| -> Result<Reader, gimli::Error> {
        let data: Arc<[u8]> = debug
            .sections
            .remove(id.name())
            .map_or_else(|| Arc::from(&[][..]), Arc::from);
        Ok(EndianArcSlice::new(data, endian))
    })
    .map_err(|e| format!("reading the DWARF sections: {e}"))?;
    Context::from_dwarf(dwarf)
        .map(Box::new)
        .map_err(|e| format!("reading the DWARF units: {e}"))
}

impl Kernel {
    /// The source file and line of the code at `address`, from the DWARF of the loaded module
    /// it falls in, relocated to where the module was placed. `Ok(None)` outside every module,
    /// in a module built without debug information (`-g`), and where its line table covers
    /// nothing (the linker's stubs and GOT, data). An error says why a module's line table
    /// cannot be read ([`LoadError::DebugInfo`]); the module itself is unaffected.
    ///
    /// The first question about a module parses and relocates its DWARF; later ones reuse it.
    pub fn source_line(&self, address: u64) -> Result<Option<SourceLine>, LoadError> {
        let lines = {
            let state = self.state();
            let module = state
                .modules
                .values()
                .find(|m| (m.info.base..m.info.base + m.info.size).contains(&address));
            match module.and_then(|m| m.lines.clone()) {
                Some(lines) => lines,
                None => return Ok(None),
            }
        };
        // Built and looked up with the kernel unlocked: a large line table takes a while.
        lines.find(address)
    }

    /// Whether loaded module `id` has a line table ([`Kernel::source_line`] can answer for it).
    pub fn has_source_lines(&self, id: ModuleId) -> bool {
        self.state()
            .modules
            .get(&id)
            .is_some_and(|m| m.lines.is_some())
    }
}

#[cfg(test)]
mod tests {
    /// A module's line context lives in the kernel's state: the kernel stays shareable.
    #[test]
    fn the_kernel_stays_send_and_sync() {
        fn shareable<T: Send + Sync>() {}
        shareable::<super::Kernel>();
        shareable::<super::ModuleLines>();
    }
}
