//! Loads through the image cache ([`image_cache`]): a module whose entry is valid is mapped
//! and bound again rather than linked; any other is linked and its entry written.

use std::cell::RefCell;

use dlkm_linker::{Import, Layout};

use super::image_cache::{Entry, FileStamp, Found, Key};
use super::load::{master_path, sections_at, stem_of, stubs_at, Imports, KeptObject, Placed};
use super::*;

impl Kernel {
    /// Loads the object at `path` from its cache entry: `Ok(None)` when there is none usable,
    /// and the load is to be done the ordinary way. A module refused for what it is (an
    /// interface, a dependency, an export) is refused here as it would be there.
    pub(super) fn load_cached(
        &self,
        path: &Path,
        chain: &mut Vec<String>,
    ) -> Result<Option<ModuleId>, LoadError> {
        let Some(cache) = &self.image_cache else {
            return Ok(None);
        };
        let Some(object) = FileStamp::of(path) else {
            return Ok(None);
        };
        let config = self.cache_config();
        let Some(found) = cache.find(&key_for(path, object, &config)) else {
            return Ok(None);
        };
        let object_name = path.display().to_string();
        let modinfo = found.entry.modinfo.as_deref();
        // Metadata in error is reported by the ordinary load, with the object read.
        let stem = stem_of(path);
        let Ok(metadata) = Self::metadata_from(&stem, &object_name, Some(path), modinfo) else {
            return Ok(None);
        };
        if metadata.checksum.is_some() {
            return Ok(None);
        }
        let result = self.load_found(path, object, found, &metadata, chain);
        if !matches!(result, Ok(None)) {
            self.record_outcome(&metadata.name, result.as_ref().err());
        }
        result
    }

    fn load_found(
        &self,
        path: &Path,
        stamp: FileStamp,
        found: Found,
        metadata: &Metadata,
        chain: &mut Vec<String>,
    ) -> Result<Option<ModuleId>, LoadError> {
        let state = self.prepare(metadata, chain)?;
        let exports = found.entry.symbols.exported();
        self.check_exports(&state, &metadata.name, exports.map(|s| s.name))?;
        let Some(placed) = self.place_found(&state, &metadata.name, path, stamp, found)? else {
            return Ok(None);
        };
        self.install(state, metadata, Some(path.to_path_buf()), placed)
            .map(Some)
    }

    /// Maps the entry's image at its base and binds it to the imports as they are now;
    /// `Ok(None)`, with nothing left mapped, where the base is taken or the imports have
    /// changed beyond what rebinding can follow.
    fn place_found(
        &self,
        state: &State,
        name: &str,
        path: &Path,
        stamp: FileStamp,
        found: Found,
    ) -> Result<Option<Placed>, LoadError> {
        let Found {
            mut entry,
            file,
            image_offset,
        } = found;
        let base = entry.base;
        let mapped = self
            .machine
            .map_file(base, entry.mapped_size, &file, image_offset);
        if mapped.is_none() {
            return Ok(None);
        }
        let mut imports = Imports::default();
        let now = match self.bind(state, &entry, &mut imports) {
            Ok(Some(now)) => now,
            unusable => {
                let _ = self.machine.release(base);
                return unusable.map(|_| None);
            }
        };
        if let Err(e) = self.protect_segments(base, &entry.segments) {
            let _ = self.machine.release(base);
            return Err(e);
        }
        let debug = RefCell::new(entry.debug_object.take());
        self.machine.module_published(&PublishedModule {
            name,
            base,
            eh_frames: &entry.eh_frames,
            debug_object: &|_: &[&[u8]]| debug.borrow_mut().take(),
        });
        let output = LinkOutput {
            base,
            symbols: entry.symbols,
            imports: now,
            init_array: entry.init_array,
            fini_array: entry.fini_array,
            stubs_used: entry.stubs_used as usize,
            got_relaxed: entry.got_relaxed as usize,
            import_sites: entry.import_sites,
        };
        let lines = entry.line_table.then(|| {
            let options = LayoutOptions {
                page_size: self.machine.page_size(),
                copies: entry.copies.iter().map(|(copy, _)| copy.clone()).collect(),
                ..LayoutOptions::default()
            };
            lines::ModuleLines::from_file(name, path, stamp, options, base, &output.imports)
        });
        Ok(Some(Placed {
            base,
            image_size: entry.image_size,
            sections: sections_at(base, entry.sections),
            far_stubs: stubs_at(base, entry.far_stubs),
            output,
            imports,
            copied: entry
                .copies
                .into_iter()
                .map(|(copy, _)| copy.name)
                .collect(),
            lines,
            from_image_cache: true,
        }))
    }

    /// Resolves the entry's imports again and rewrites the image where they are used, and
    /// its copies of kernel variables: the imports as bound now, or `None` if the image
    /// cannot follow them.
    fn bind(
        &self,
        state: &State,
        entry: &Entry,
        imports: &mut Imports,
    ) -> Result<Option<Vec<Import>>, LoadError> {
        let base = entry.base;
        let now: Vec<Import> = entry
            .imports
            .iter()
            .map(|import| {
                let copy = entry.copies.iter().find(|(c, _)| c.name == import.name);
                let symbol = match copy {
                    Some((copy, offset)) => Some(ExternalSymbol {
                        address: base + offset,
                        size: copy.size,
                        kind: ExternalKind::Data,
                    }),
                    None => self.resolve_import(state, &import.name, imports),
                };
                Import {
                    name: import.name.clone(),
                    symbol,
                }
            })
            .collect();
        let symbols: Vec<_> = now.iter().map(|import| import.symbol).collect();
        let arch = self.machine.arch();
        // Whether the image follows the imports now, once the copies are filled too.
        let mut bound = Ok(false);
        self.machine
            .fill_image(base, entry.image_size, &mut |image: &mut [u8]| {
                let sites = &entry.import_sites;
                bound =
                    match dlkm_linker::rebind(arch, image, base, sites, &entry.imports, &symbols) {
                        Err(_) => Ok(false),
                        Ok(()) => {
                            let copies = entry.copies.iter();
                            let copies = copies.map(|(c, offset)| (&*c.name, c.size, *offset));
                            self.fill_copies(state, copies, image).map(|()| true)
                        }
                    };
            })?;
        Ok(bound?.then_some(now))
    }

    /// Keeps the image just published at `output.base` in the cache, with what a later load
    /// needs to map it instead of linking again, before any of its code runs. Returns the
    /// debug object it made for the entry, for the machine to register rather than make again.
    pub(super) fn keep_image(
        &self,
        kept: &KeptObject,
        layout: &Layout,
        output: &LinkOutput,
        debug_object: &dyn Fn(&[&[u8]]) -> Option<crate::DebugObjectBytes>,
    ) -> Option<crate::DebugObjectBytes> {
        let cache = self.image_cache.as_ref()?;
        let KeptObject {
            path,
            stamp,
            object,
        } = *kept;
        if !dlkm_linker::rebindable(object, layout) {
            return None;
        }
        let config = self.cache_config();
        let key = key_for(path, stamp, &config);
        let image = self.machine.read(output.base, layout.image_size).ok()?;
        let eh_frames: Vec<&[u8]> = layout
            .eh_frames
            .iter()
            .map(|area| &image[area.offset as usize..(area.offset + area.size) as usize])
            .collect();
        let mut entry = Entry {
            modinfo: object
                .sections
                .iter()
                .find(|s| s.name == ".modinfo")
                .map(|s| s.data.to_vec()),
            base: output.base,
            image_size: layout.image_size,
            mapped_size: layout.mapped_size(),
            segments: layout.segments.clone(),
            eh_frames: layout.eh_frames.clone(),
            copies: layout.copies.clone(),
            line_table: object.has_line_table(),
            sections: layout.map_entries(object),
            far_stubs: layout.stub_targets(object),
            imports: output.imports.clone(),
            import_sites: output.import_sites.clone(),
            symbols: output.symbols.clone(),
            init_array: output.init_array.clone(),
            fini_array: output.fini_array.clone(),
            stubs_used: output.stubs_used as u64,
            got_relaxed: output.got_relaxed as u64,
            debug_object: debug_object(&eh_frames),
        };
        cache.store(&key, &entry, &image, self.machine.page_size());
        entry.debug_object.take()
    }

    /// What besides the object shapes a link: an entry made under another is not used.
    fn cache_config(&self) -> String {
        format!(
            "{} page {} host symbols {} copyable {:?}",
            self.machine.arch().name(),
            self.machine.page_size(),
            self.options.host_symbols,
            self.options.copyable,
        )
    }
}

/// The cache key of the object at `path`, read as `object` describes, under `config`.
fn key_for<'c>(path: &Path, object: FileStamp, config: &'c str) -> Key<'c> {
    Key {
        object,
        master: FileStamp::of(&master_path(path, &stem_of(path))),
        config,
    }
}
