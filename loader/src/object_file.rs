//! Reading an object file for a load or a registration. Read into fresh heap memory, a large
//! object costs a page fault per 4 KiB page on top of the copy (about 0.6 ms for SQLite's
//! 1.3 MB on the machine of the README's figures); read into a transparent huge page, it costs
//! one. The file is read, never mapped: a mapped file that another process truncates raises
//! SIGBUS in whoever touches it next, and one it rewrites changes under the parser.
//!
//! The kernel keeps the huge-page mapping of the last large object it read ([`ReadBuffer`]),
//! and reads the next one into it: a second large load (a dependency, a reload, the next
//! module of a session) pays for neither clearing a fresh huge page nor unmapping it.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Deref;
use std::path::Path;
use std::sync::Mutex;

use memmap2::{Advice, MmapMut};

/// Objects from this size on are read into huge pages.
const HUGE_READ: u64 = 768 << 10;
/// A transparent huge page on x86_64, and on aarch64 with 4 KiB pages.
const HUGE_PAGE: usize = 2 << 20;

/// An object file's bytes.
pub(crate) enum ObjectBytes {
    Heap(Vec<u8>),
    /// `len` bytes from `offset` of an anonymous mapping; `offset` starts a huge page.
    Mapped {
        map: MmapMut,
        offset: usize,
        len: usize,
    },
}

impl Deref for ObjectBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            ObjectBytes::Heap(bytes) => bytes,
            ObjectBytes::Mapped { map, offset, len } => &map[*offset..*offset + *len],
        }
    }
}

/// The mapping a large object was last read into, kept for the next one. At most one is
/// kept: about two megabytes for a one-megabyte object.
#[derive(Default)]
pub(crate) struct ReadBuffer(Mutex<Option<(MmapMut, usize)>>);

impl ReadBuffer {
    /// A huge-page-aligned span of at least `span` bytes: the kept mapping if it is large
    /// enough, else a fresh one; with the span's offset in it.
    fn take(&self, span: usize) -> io::Result<(MmapMut, usize)> {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((map, offset)) = kept.take() {
            if map.len() - offset >= span {
                return Ok((map, offset));
            }
        }
        drop(kept);
        let map = MmapMut::map_anon(span + HUGE_PAGE)?;
        let start = map.as_ptr() as usize;
        let offset = start.next_multiple_of(HUGE_PAGE) - start;
        // Best effort: without huge pages the pages come one fault at a time, as on the heap.
        let _ = map.advise_range(Advice::HugePage, offset, map.len() - offset);
        Ok((map, offset))
    }

    /// Keeps the mapping of `bytes`, once they are no longer needed, for the next read.
    pub(crate) fn recycle(&self, bytes: ObjectBytes) {
        if let ObjectBytes::Mapped { map, offset, .. } = bytes {
            let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if kept.as_ref().is_none_or(|(k, _)| k.len() < map.len()) {
                *kept = Some((map, offset));
            }
        }
    }
}

/// The whole of the file at `path`; a large one into `buffer`'s mapping. With it, the file's
/// metadata as it was before it was read: a file changed while it was read has other times.
pub(crate) fn read_object(
    path: &Path,
    buffer: &ReadBuffer,
) -> io::Result<(ObjectBytes, std::fs::Metadata)> {
    let mut file = File::open(path)?;
    let metadata = file.metadata()?;
    let bytes = read_file(path, &mut file, metadata.len(), buffer)?;
    Ok((bytes, metadata))
}

fn read_file(
    path: &Path,
    file: &mut File,
    size: u64,
    buffer: &ReadBuffer,
) -> io::Result<ObjectBytes> {
    if size < HUGE_READ {
        return read_to_heap(file, size);
    }
    let Ok(span) = usize::try_from(size).map(|s| s.next_multiple_of(HUGE_PAGE)) else {
        return read_to_heap(file, size);
    };
    let (mut map, offset) = buffer.take(span)?;
    let len = read_into(file, &mut map[offset..offset + span])?;
    if len == span {
        // The file grew past its size as it was read: read all of it the ordinary way, and
        // keep the mapping for the next.
        buffer.recycle(ObjectBytes::Mapped { map, offset, len });
        return Ok(ObjectBytes::Heap(std::fs::read(path)?));
    }
    Ok(ObjectBytes::Mapped { map, offset, len })
}

fn read_to_heap(file: &mut File, size: u64) -> io::Result<ObjectBytes> {
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok(ObjectBytes::Heap(bytes))
}

/// Reads until `buffer` is full or the file ends; how many bytes were read.
fn read_into(file: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small and large files read back whole, the large ones from a huge-page-aligned
    /// mapping.
    #[test]
    fn objects_read_back_whole() {
        let dir = std::env::temp_dir().join(format!("dlkm-object-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let buffer = ReadBuffer::default();
        for size in [
            0,
            1,
            4096,
            HUGE_READ as usize - 1,
            HUGE_READ as usize,
            3 << 20,
        ] {
            let path = dir.join(format!("{size}.o"));
            let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4096) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            let (read, metadata) = read_object(&path, &buffer).unwrap();
            assert_eq!(metadata.len(), size as u64);
            assert_eq!(&read[..], &data[..], "{size} bytes");
            match &read {
                ObjectBytes::Mapped { map, offset, .. } => {
                    assert!(size as u64 >= HUGE_READ);
                    assert_eq!((map.as_ptr() as usize + offset) % HUGE_PAGE, 0);
                }
                ObjectBytes::Heap(_) => assert!((size as u64) < HUGE_READ),
            }
            buffer.recycle(read);
        }
        // The 3 MiB object's mapping is kept, and the next large object is read into it.
        let kept = buffer
            .0
            .lock()
            .unwrap()
            .as_ref()
            .map(|(m, o)| m.as_ptr() as usize + o);
        let (again, _) = read_object(&dir.join(format!("{HUGE_READ}.o")), &buffer).unwrap();
        assert_eq!(Some(again.as_ptr() as usize), kept);
        assert_eq!(again.len(), HUGE_READ as usize);
        assert!(again
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i * 7 + i / 4096) as u8));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(read_object(&dir.join("missing.o"), &buffer).is_err());
    }
}
