//! `msyms link`: the linker alone. Writes the image of an object as if loaded at a base, and a
//! map of where each piece went, so images can be compared with a second linker's.

use std::io::Write;
use std::path::{Path, PathBuf};

use dlkm_linker::{ExternalKind, ExternalSymbol, Layout, LayoutOptions, Object};

use crate::arch::ArchChoice;
use crate::error::CommandError;
use crate::parse::parse_address;

/// The page size images are laid out for, whatever the host's.
pub const LINK_PAGE_SIZE: u64 = 4096;

/// What to link and where the results go.
#[derive(Debug, Clone)]
pub struct LinkRequest {
    pub object: PathBuf,
    /// The architecture the object must be built for; `None` takes the object's.
    pub arch: Option<ArchChoice>,
    pub base: u64,
    /// The only symbols undefined references resolve to.
    pub defsyms: Vec<(String, u64)>,
    pub map: PathBuf,
    pub image: PathBuf,
}

/// Links `request.object` and writes the image and the map.
pub fn link_object(request: &LinkRequest) -> Result<(), CommandError> {
    let bytes = std::fs::read(&request.object).map_err(|source| CommandError::Io {
        path: request.object.clone(),
        source,
    })?;
    let name = request.object.display().to_string();
    let link_error = |source| CommandError::link(format!("link {name}"), source);
    let object = Object::parse(&name, &bytes).map_err(link_error)?;
    check_arch(&object, request.arch)?;
    let options = LayoutOptions {
        page_size: LINK_PAGE_SIZE,
        ..LayoutOptions::default()
    };
    let layout = dlkm_linker::layout(&object, &options).map_err(link_error)?;
    if request.base % layout.align != 0 {
        return Err(CommandError::MisalignedBase {
            base: request.base,
            align: layout.align,
        });
    }
    let mut resolver = |symbol: &str| {
        request
            .defsyms
            .iter()
            .find(|(name, _)| name == symbol)
            .map(|&(_, address)| ExternalSymbol {
                address,
                size: 0,
                kind: ExternalKind::Unknown,
            })
    };
    let (image, _) =
        dlkm_linker::link(&object, &layout, request.base, &mut resolver).map_err(link_error)?;
    write_file(&request.image, &image)?;
    write_file(&request.map, &map_text(&layout, &object, request.base))
}

/// Refuses an object built for another architecture than the one asked for.
fn check_arch(object: &Object, wanted: Option<ArchChoice>) -> Result<(), CommandError> {
    let Some(choice) = wanted else {
        return Ok(());
    };
    let reason = match choice.kind() {
        Some(kind) if kind == object.arch => return Ok(()),
        Some(_) => format!(
            "{} is built for {}, not {}",
            object.name,
            object.arch.name(),
            choice.name()
        ),
        None => format!("the linker does not support {} yet", choice.name()),
    };
    Err(CommandError::Arch {
        arch: choice.name().to_string(),
        reason,
    })
}

/// The map: `NAME ADDR SIZE` a line, addresses at `base`.
pub fn map_text(layout: &Layout, object: &Object, base: u64) -> Vec<u8> {
    let mut text = Vec::new();
    for (name, offset, size) in layout.map_entries(object) {
        // Writing to a Vec cannot fail.
        let _ = writeln!(text, "{name} {:#x} {size:#x}", base.wrapping_add(offset));
    }
    text
}

/// `NAME=ADDR` of `--defsym`.
pub fn parse_defsym(text: &str) -> Result<(String, u64), String> {
    let (name, address) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=ADDR"))?;
    if name.is_empty() {
        return Err(format!("`{text}` has no symbol name"));
    }
    Ok((name.to_string(), parse_address(address)?))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), CommandError> {
    std::fs::write(path, bytes).map_err(|source| CommandError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defsyms() {
        assert_eq!(parse_defsym("printf=0x1000"), Ok(("printf".into(), 0x1000)));
        assert_eq!(parse_defsym("a=b=12").ok(), None);
        assert!(parse_defsym("printf").is_err());
        assert!(parse_defsym("=0x10").is_err());
        assert!(parse_defsym("x=-1").is_err());
    }
}
