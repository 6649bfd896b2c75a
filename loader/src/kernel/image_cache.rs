//! The image cache: linked images kept in files, so that the next process to load the same
//! object maps its image instead of reading, parsing, laying out and relocating it again, as
//! `dlopen` maps a library linked ahead of time.
//!
//! An entry is one file per object, named by the object's device and inode. It holds what a
//! load computes that a later load can reuse: the image as linked at its base, the sections,
//! symbols and entry points, the debug object, and every place where the image depends on an
//! import's address ([`dlkm_linker::ImportSite`]). A later load maps the image privately at
//! the same base, resolves the imports again and rewrites only those places
//! ([`dlkm_linker::rebind`]): the C library moves with every process, the module does not.
//!
//! An entry is used only if everything it was made from is unchanged: the object's and its
//! master file's size, times, device and inode; this build of the loader; the architecture,
//! page size and the kernel options that shape a link. Whatever else differs (the base is
//! taken, an import is gone, moved out of reach or changed size or kind) makes the load an
//! ordinary one, which then replaces the entry. Entries are written whole to a new file and
//! renamed into place, never rewritten: a process that has one mapped keeps its pages.
//!
//! An entry is trusted as the object it was made from is: its bytes become the module's code
//! and data. The loader checks that an entry is whole and consistent (its header, counts,
//! ranges and names), so that a truncated or garbled one is not used, but does not checksum
//! its bytes, which would cost about what reading them does.
//!
//! A module mapped from an entry whose object has a line table reads the object again for
//! its DWARF when a source line is first asked for, if the object is still the file the
//! entry was made from (otherwise the lines are refused, never taken from a newer build).
//! Not cached: modules whose metadata gives a checksum (checking it means reading the
//! object), loads from bytes, and machines that cannot map files (the emulated one).

use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use crate::machine::native::map_entry;

use crate::machine::DebugObjectBytes;
use dlkm_linker::{
    Area, CopyRequest, ExternalKind, ExternalSymbol, Import, ImportSite, LinkedSymbols, Segment,
    SegmentKind, SharedBytes, SiteForm,
};

/// The first bytes of every entry, and the version of its layout.
const MAGIC: &[u8; 8] = b"DLKMIMG1";
/// Magic, record length, image offset, image length.
const HEADER_LEN: usize = 32;

/// Who a file is and which version of it, without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileStamp([i64; 7]);

impl FileStamp {
    pub(super) fn of(path: &Path) -> Option<FileStamp> {
        Self::from_metadata(&std::fs::metadata(path).ok()?)
    }

    /// The stamp of a file whose metadata is `m`; `None` for anything but a regular file.
    pub(super) fn from_metadata(m: &std::fs::Metadata) -> Option<FileStamp> {
        m.is_file().then_some(FileStamp([
            m.dev() as i64,
            m.ino() as i64,
            m.size() as i64,
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
        ]))
    }

    fn device_and_inode(&self) -> (u64, u64) {
        (self.0[0] as u64, self.0[1] as u64)
    }
}

/// What a cached load needs besides the image's bytes.
pub(super) struct Entry {
    pub modinfo: Option<Vec<u8>>,
    pub base: u64,
    pub image_size: u64,
    /// The reservation: the image's pages.
    pub mapped_size: u64,
    pub segments: Vec<Segment>,
    pub eh_frames: Vec<Area>,
    /// Kernel variables copied into the image, and where.
    pub copies: Vec<(CopyRequest, u64)>,
    /// The object has a line table, read from it when first asked for.
    pub line_table: bool,
    /// Placed sections and linker areas: name, offset, size.
    pub sections: Vec<(String, u64, u64)>,
    /// Far-call stubs: offset, target.
    pub far_stubs: Vec<(u64, String)>,
    pub imports: Vec<Import>,
    pub import_sites: Vec<ImportSite>,
    pub symbols: LinkedSymbols,
    pub init_array: Vec<u64>,
    pub fini_array: Vec<u64>,
    pub stubs_used: u64,
    pub got_relaxed: u64,
    pub debug_object: Option<DebugObjectBytes>,
}

impl Entry {
    /// Whether every range it names lies in its image: a corrupt entry is not used.
    fn consistent(&self) -> bool {
        let within =
            |offset: u64, size: u64, end: u64| offset.checked_add(size).is_some_and(|e| e <= end);
        self.image_size <= self.mapped_size
            && self.base.checked_add(self.mapped_size).is_some()
            && self
                .sections
                .iter()
                .all(|(_, offset, size)| within(*offset, *size, self.mapped_size))
            && self
                .far_stubs
                .iter()
                .all(|(offset, _)| *offset < self.image_size)
            && self
                .segments
                .iter()
                .all(|s| within(s.offset, s.size, self.mapped_size))
            && self.eh_frames.iter().all(|a| {
                let terminated = a.size.checked_add(dlkm_linker::EH_FRAME_TERMINATOR);
                terminated.is_some_and(|size| within(a.offset, size, self.image_size))
            })
            && self
                .copies
                .iter()
                .all(|(c, offset)| within(*offset, c.size, self.image_size))
            && self
                .import_sites
                .iter()
                .all(|s| (s.import as usize) < self.imports.len())
            && self.init_array.iter().chain(&self.fini_array).all(|&at| {
                at.checked_sub(self.base)
                    .is_some_and(|o| o < self.image_size)
            })
    }
}

/// What an entry is valid for.
pub(super) struct Key<'a> {
    pub object: FileStamp,
    pub master: Option<FileStamp>,
    /// The architecture, page size and kernel options that shape a link.
    pub config: &'a str,
}

/// An entry found valid, and the open file its image is mapped from.
pub(super) struct Found {
    pub entry: Entry,
    pub file: File,
    pub image_offset: u64,
}

/// A directory of entries.
#[derive(Debug, Clone)]
pub(super) struct ImageCache {
    dir: PathBuf,
}

impl ImageCache {
    pub(super) fn new(dir: PathBuf) -> Self {
        ImageCache { dir }
    }

    fn path_for(&self, object: FileStamp) -> PathBuf {
        let (device, inode) = object.device_and_inode();
        self.dir.join(format!("{device:x}-{inode:x}.image"))
    }

    /// The entry for the object `key` names, if there is one made from exactly it.
    ///
    /// The entry is mapped, not read: its record is decoded where it lies and its debug
    /// object is registered from the mapping, so that a load copies neither.
    pub(super) fn find(&self, key: &Key) -> Option<Found> {
        let file = File::open(self.path_for(key.object)).ok()?;
        let map = Arc::new(map_entry(&file)?);
        let mut input = Input(map.get(..HEADER_LEN)?);
        if input.take(8)? != MAGIC {
            return None;
        }
        let record_len = usize::try_from(input.u64()?).ok()?;
        let image_offset = input.u64()?;
        let image_len = input.u64()?;
        let record_end = HEADER_LEN.checked_add(record_len)?;
        if record_end as u64 > image_offset
            || image_offset.checked_add(image_len)? > map.len() as u64
        {
            return None;
        }
        let shared: SharedBytes = map.clone();
        let (mut entry, debug_object) = decode(&shared, HEADER_LEN..record_end, key)?;
        entry.debug_object = debug_object.map(|range| {
            let range = HEADER_LEN + range.start..HEADER_LEN + range.end;
            Box::new(MappedBytes { map, range }) as DebugObjectBytes
        });
        (entry.mapped_size == image_len && entry.consistent()).then_some(Found {
            entry,
            file,
            image_offset,
        })
    }

    /// Keeps `entry` with `image` (its bytes as linked, before any of its code ran) for the
    /// object `key` names. Best effort: a cache that cannot be written only means the next
    /// load links again.
    pub(super) fn store(&self, key: &Key, entry: &Entry, image: &[u8], page_size: u64) {
        let _ = self.try_store(key, entry, image, page_size);
    }

    fn try_store(
        &self,
        key: &Key,
        entry: &Entry,
        image: &[u8],
        page_size: u64,
    ) -> std::io::Result<()> {
        let mut record = Vec::new();
        encode(&mut record, key, entry);
        let image_offset = (HEADER_LEN + record.len()).next_multiple_of(page_size as usize);
        let mut bytes = Vec::with_capacity(image_offset);
        bytes.extend_from_slice(MAGIC);
        for n in [record.len(), image_offset, entry.mapped_size as usize] {
            bytes.extend_from_slice(&(n as u64).to_le_bytes());
        }
        bytes.extend_from_slice(&record);
        bytes.resize(image_offset, 0);
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path_for(key.object);
        let temporary = path.with_extension(format!("{}.partial", std::process::id()));
        let written = (|| {
            let mut file = File::create(&temporary)?;
            file.write_all(&bytes)?;
            file.write_all(image)?;
            // The pages past the image's end, to the reservation's end, are zero.
            let tail = (entry.mapped_size as usize).saturating_sub(image.len());
            file.write_all(&vec![0u8; tail])?;
            std::fs::rename(&temporary, &path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written
    }
}

fn encode(out: &mut Vec<u8>, key: &Key, entry: &Entry) {
    let mut o = Output(out);
    o.str(env!("CARGO_PKG_VERSION"));
    o.str(key.config);
    let stamp = |o: &mut Output, stamp: FileStamp| stamp.0.iter().for_each(|&v| o.u64(v as u64));
    stamp(&mut o, key.object);
    o.option(key.master, stamp);
    o.option(entry.modinfo.as_deref(), Output::bytes);
    o.words(&[entry.base, entry.image_size, entry.mapped_size]);
    o.list(&entry.segments, |o, segment| {
        let kind = match segment.kind {
            SegmentKind::Text => 0,
            SegmentKind::ReadOnly => 1,
            SegmentKind::Writable => 2,
        };
        o.words(&[kind, segment.offset, segment.size]);
    });
    o.list(&entry.eh_frames, |o, area| {
        o.words(&[area.offset, area.size])
    });
    o.u64(entry.line_table as u64);
    o.list(&entry.copies, |o, (copy, offset)| {
        o.str(&copy.name);
        o.words(&[copy.size, copy.align, *offset]);
    });
    o.list(&entry.sections, |o, (name, offset, size)| {
        o.str(name);
        o.words(&[*offset, *size]);
    });
    o.list(&entry.far_stubs, |o, (offset, target)| {
        o.u64(*offset);
        o.str(target);
    });
    o.list(&entry.imports, |o, import| {
        o.str(&import.name);
        match import.symbol {
            None => o.u64(0),
            Some(symbol) => {
                let kind = match symbol.kind {
                    ExternalKind::Function => 1,
                    ExternalKind::Data => 2,
                    ExternalKind::Unknown => 3,
                };
                o.words(&[kind, symbol.address, symbol.size]);
            }
        }
    });
    o.list(&entry.import_sites, |o, site| {
        let (form, r_type, place) = match site.form {
            SiteForm::Stub => (0, 0, 0),
            SiteForm::GotSlot => (1, 0, 0),
            SiteForm::Reloc { r_type, place } => (2, r_type as u64, place),
        };
        let (import, addend) = (site.import as u64, site.addend as u64);
        o.words(&[form, r_type, place, import, site.offset, addend]);
    });
    entry.symbols.encode(o.0);
    o.list(&entry.init_array, |o, &address| o.u64(address));
    o.list(&entry.fini_array, |o, &address| o.u64(address));
    o.words(&[entry.stubs_used, entry.got_relaxed]);
    let debug_object = entry.debug_object.as_ref().map(|bytes| (**bytes).as_ref());
    o.option(debug_object, Output::bytes);
}

/// The entry in the `record` range of `bytes`, if it was made for `key` and reads back whole,
/// and where in the record its debug object is. Its symbol table stays in `bytes`.
fn decode(
    bytes: &SharedBytes,
    record: Range<usize>,
    key: &Key,
) -> Option<(Entry, Option<Range<usize>>)> {
    let all: &[u8] = (**bytes).as_ref();
    let (range, record) = (record.clone(), all.get(record)?);
    let mut i = Input(record);
    if i.str()? != env!("CARGO_PKG_VERSION") || i.str()? != key.config {
        return None;
    }
    let stamp = |i: &mut Input| -> Option<FileStamp> {
        let mut values = [0i64; 7];
        for v in &mut values {
            *v = i.u64()? as i64;
        }
        Some(FileStamp(values))
    };
    if stamp(&mut i)? != key.object {
        return None;
    }
    if i.option(stamp)? != key.master {
        return None;
    }
    let modinfo = i.option(|i| Some(i.bytes()?.to_vec()))?;
    let [base, image_size, mapped_size] = [i.u64()?, i.u64()?, i.u64()?];
    let segments = i.list(24, |i| {
        let kind = match i.u64()? {
            0 => SegmentKind::Text,
            1 => SegmentKind::ReadOnly,
            2 => SegmentKind::Writable,
            _ => return None,
        };
        Some(Segment {
            kind,
            offset: i.u64()?,
            size: i.u64()?,
        })
    })?;
    let eh_frames = i.list(16, |i| {
        Some(Area {
            offset: i.u64()?,
            size: i.u64()?,
        })
    })?;
    let line_table = i.u64()? != 0;
    let copies = i.list(32, |i| {
        let name = i.str()?.to_string();
        let (size, align, offset) = (i.u64()?, i.u64()?, i.u64()?);
        Some((CopyRequest { name, size, align }, offset))
    })?;
    let sections = i.list(24, |i| Some((i.str()?.to_string(), i.u64()?, i.u64()?)))?;
    let far_stubs = i.list(16, |i| Some((i.u64()?, i.str()?.to_string())))?;
    let imports = i.list(16, |i| {
        let name = i.str()?.to_string();
        let kind = match i.u64()? {
            0 => return Some(Import { name, symbol: None }),
            1 => ExternalKind::Function,
            2 => ExternalKind::Data,
            3 => ExternalKind::Unknown,
            _ => return None,
        };
        let (address, size) = (i.u64()?, i.u64()?);
        Some(Import {
            name,
            symbol: Some(ExternalSymbol {
                address,
                size,
                kind,
            }),
        })
    })?;
    let import_sites = i.list(48, |i| {
        let [form, r_type, place, import, offset, addend] =
            [i.u64()?, i.u64()?, i.u64()?, i.u64()?, i.u64()?, i.u64()?];
        let form = match form {
            0 => SiteForm::Stub,
            1 => SiteForm::GotSlot,
            2 => SiteForm::Reloc {
                r_type: u32::try_from(r_type).ok()?,
                place,
            },
            _ => return None,
        };
        Some(ImportSite {
            import: u32::try_from(import).ok()?,
            offset,
            addend: addend as i64,
            form,
        })
    })?;
    let symbols_at = range.start + (record.len() - i.0.len());
    let (symbols, end) =
        LinkedSymbols::decode_shared(SharedBytes::clone(bytes), symbols_at..range.end).ok()?;
    i.0 = all.get(end..range.end)?;
    let init_array = i.list(8, Input::u64)?;
    let fini_array = i.list(8, Input::u64)?;
    let [stubs_used, got_relaxed] = [i.u64()?, i.u64()?];
    let debug_object = i.option(|i| {
        let bytes = i.bytes()?;
        let start = bytes.as_ptr() as usize - record.as_ptr() as usize;
        Some(start..start + bytes.len())
    })?;
    let entry = Entry {
        modinfo,
        base,
        image_size,
        mapped_size,
        segments,
        eh_frames,
        copies,
        line_table,
        sections,
        far_stubs,
        imports,
        import_sites,
        symbols,
        init_array,
        fini_array,
        stubs_used,
        got_relaxed,
        debug_object: None,
    };
    Some((entry, debug_object))
}

/// Bytes of a mapped entry, kept mapped as long as they are.
struct MappedBytes {
    map: Arc<Mmap>,
    range: Range<usize>,
}

impl AsRef<[u8]> for MappedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.map[self.range.clone()]
    }
}

/// An entry's record as it is written: little-endian words, strings and byte runs counted.
struct Output<'a>(&'a mut Vec<u8>);

impl Output<'_> {
    fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn words(&mut self, values: &[u64]) {
        values.iter().for_each(|&v| self.u64(v));
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.u64(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    fn str(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }

    /// A count, then each item: what [`Input::list`] reads.
    fn list<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) {
        self.u64(items.len() as u64);
        items.iter().for_each(|value| item(self, value));
    }

    /// 0 for none, else 1 and the value: what [`Input::option`] reads.
    fn option<T>(&mut self, value: Option<T>, write: impl FnOnce(&mut Self, T)) {
        self.u64(value.is_some() as u64);
        if let Some(value) = value {
            write(self, value);
        }
    }
}

/// A record being read; `None` for anything short or malformed, which makes the entry unused.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let taken = self.0.get(..len)?;
        self.0 = &self.0[len..];
        Some(taken)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u64()?).ok()?;
        self.take(len)
    }

    fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    /// 0 for none, else 1 and what `value` reads: `None` if that fails.
    fn option<T>(&mut self, value: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        match self.u64()? {
            0 => Some(None),
            _ => value(self).map(Some),
        }
    }

    /// A counted list of items of at least `item_bytes` each: a corrupt count fails before
    /// it can allocate more than the record holds.
    fn list<T>(
        &mut self,
        item_bytes: usize,
        mut item: impl FnMut(&mut Self) -> Option<T>,
    ) -> Option<Vec<T>> {
        let count = usize::try_from(self.u64()?).ok()?;
        if count.checked_mul(item_bytes)? > self.0.len() {
            return None;
        }
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(item(self)?);
        }
        Some(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlkm_linker::{layout, link, LayoutOptions, Object};

    /// SQLite's record as a load writes it, with what it was made for.
    fn sqlite_record() -> (Vec<u8>, FileStamp) {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../corpus/x86_64/gcc-pie/sqlite.o"
        );
        let bytes = std::fs::read(path).unwrap();
        let object = Object::parse(path, &bytes).unwrap();
        let layout = layout(&object, &LayoutOptions::default()).unwrap();
        let mut far = |_: &str| {
            Some(ExternalSymbol {
                address: 0x7f00_0000_0000,
                size: 0,
                kind: ExternalKind::Function,
            })
        };
        let (_, output) = link(&object, &layout, 0x1000_0000, &mut far).unwrap();
        let entry = Entry {
            modinfo: Some(b"name=sqlite".to_vec()),
            base: output.base,
            image_size: layout.image_size,
            mapped_size: layout.mapped_size(),
            segments: layout.segments.clone(),
            eh_frames: layout.eh_frames.clone(),
            copies: Vec::new(),
            line_table: false,
            sections: layout.map_entries(&object),
            far_stubs: layout.stub_targets(&object),
            imports: output.imports,
            import_sites: output.import_sites,
            symbols: output.symbols,
            init_array: output.init_array,
            fini_array: output.fini_array,
            stubs_used: output.stubs_used as u64,
            got_relaxed: output.got_relaxed as u64,
            debug_object: Some(Box::new(vec![1u8, 2, 3])),
        };
        let stamp = FileStamp([1, 2, 3, 4, 5, 6, 7]);
        let key = Key {
            object: stamp,
            master: None,
            config: "test",
        };
        let mut record = Vec::new();
        encode(&mut record, &key, &entry);
        (record, stamp)
    }

    /// A record reads back as written; cut short or garbled anywhere, it reads back as
    /// nothing or as an entry, never as a panic, and no count makes a huge allocation.
    fn decode_record(record: &[u8], key: &Key) -> Option<(Entry, Option<Range<usize>>)> {
        let bytes: SharedBytes = Arc::new(record.to_vec());
        decode(&bytes, 0..record.len(), key)
    }

    #[test]
    fn records_read_back_and_garbled_ones_never_panic() {
        let (record, stamp) = sqlite_record();
        let key = Key {
            object: stamp,
            master: None,
            config: "test",
        };
        let (entry, debug) = decode_record(&record, &key).unwrap();
        assert!(entry.consistent());
        assert_eq!(&record[debug.unwrap()], &[1, 2, 3]);
        let other = Key {
            config: "another",
            ..key
        };
        assert!(
            decode_record(&record, &other).is_none(),
            "made for another config"
        );
        // Every length in the first 4 KiB (where the fixed fields are), then a stride.
        for len in (0..4096).chain((4096..record.len()).step_by(509)) {
            assert!(
                decode_record(&record[..len], &key).is_none(),
                "cut to {len}"
            );
        }
        // Every field of the start (sizes, offsets, counts) at its largest.
        for at in 0..2048 {
            let mut garbled = record.clone();
            garbled[at..at + 8].fill(0xff);
            if let Some((entry, _)) = decode_record(&garbled, &key) {
                let _ = entry.consistent();
            }
        }
        // Bytes flipped one at a time, through the whole record (a xorshift walk).
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..3000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state % record.len() as u64) as usize;
            let mut garbled = record.clone();
            garbled[at] ^= (state >> 32) as u8 | 1;
            if let Some((entry, _)) = decode_record(&garbled, &key) {
                let _ = entry.consistent();
            }
        }
    }
}
