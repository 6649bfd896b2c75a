//! The native machine: module images live in this process's memory, mapped with explicit
//! placement, written while private and writable, then published per segment as R-X, R-- or
//! RW- (never W+X), and called directly.
//!
//! All of the project's `unsafe` is here.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use dlkm_linker::{ArchKind, ExternalSymbol};

use super::{Machine, Placement, Protection, PublishedModule, StubResolver, StubUse};
use crate::error::MachineError;

mod host;
mod jit;
mod published;
mod stubs;
mod unwind;

/// Linux: map at the hint or fail, never replace an existing mapping.
const MAP_FIXED_NOREPLACE: libc::c_int = 0x10_0000;
const LOW_LIMIT: u64 = 1 << 31;
/// Lowest address tried for low placements: above what a non-PIE program and its heap use.
const LOW_START: u64 = 0x1000_0000;
const PROBE_STEP: u64 = 16 << 20;
/// How many probe steps on each side of the anchor a `Near` placement tries (1 GiB).
const NEAR_PROBES: u64 = 64;
/// Linux: populate a range as if written (5.14).
const MADV_POPULATE_WRITE: libc::c_int = 23;
/// A transparent huge page on x86_64 and on aarch64 with 4 KiB pages.
const HUGE_PAGE: u64 = 2 << 20;
/// Images from this size on are mapped in whole huge pages.
const HUGE_IMAGE: u64 = 768 << 10;

/// The size to map for an image of `size` bytes: large images are rounded up to whole
/// transparent huge pages, which the kernel fills with one fault (and frees with one) each
/// instead of one per 4 KiB page: a megabyte image costs a quarter of the time to place and to
/// unmap, for at most half a huge page of zeroes. The probed addresses are multiples of
/// [`PROBE_STEP`], so such a mapping starts on a huge page.
fn huge_image_size(size: u64) -> u64 {
    if size >= HUGE_IMAGE {
        size.next_multiple_of(HUGE_PAGE)
    } else {
        size
    }
}

#[derive(Debug)]
struct Mapping {
    size: u64,
    published: bool,
}

/// This process as a machine.
pub struct NativeMachine {
    page_size: u64,
    mappings: Mutex<BTreeMap<u64, Mapping>>,
    data: Mutex<HashMap<u64, Box<[u8]>>>,
    /// Host symbols found so far (misses are looked up again: they cost less than keeping).
    host_symbols: Mutex<HashMap<String, ExternalSymbol>>,
    host_objects: host::HostObjects,
    /// Reads of arbitrary addresses go through this file, which fails instead of faulting.
    self_mem: Option<std::fs::File>,
    stubs: Mutex<stubs::StubTable>,
    /// Whether [`ON_DEMAND_HOST_LIBRARIES`] are opened when a module needs them.
    on_demand_libraries: bool,
    /// Modules' frames and debug objects, registered while they are published.
    published: published::PublishedModules,
}

/// Libraries whose symbols modules commonly need but a Rust program does not link: opened
/// when the machine starts, so that their symbols are among the host's.
pub const DEFAULT_HOST_LIBRARIES: &[&str] = &["libm.so.6"];

/// Libraries opened (where installed) the first time a module looks up a symbol whose name
/// starts with one of their prefixes, rather than at start: libstdc++, the C++ runtime that
/// C++ modules call (`__cxa_throw`, `__gxx_personality_v0`, and mangled `_Z…` names:
/// `operator new`, type information), takes about 0.7 ms to open, more than the rest of a
/// kernel's start, and C modules never need it.
pub const ON_DEMAND_HOST_LIBRARIES: &[(&str, &[&str])] =
    &[("libstdc++.so.6", &["_Z", "__cxa_", "__gxx_", "__cxx"])];

impl NativeMachine {
    /// A machine with the default host libraries opened.
    pub fn new() -> Self {
        let mut machine = Self::bare();
        machine.on_demand_libraries = true;
        for library in DEFAULT_HOST_LIBRARIES {
            // Best effort: a missing library only means fewer host symbols.
            let _ = machine.open_host_library(library);
        }
        machine
    }

    /// Makes the dynamic symbols of `library` (a soname or path) available to modules.
    pub fn open_host_library(&self, library: &str) -> Result<(), String> {
        let name = CString::new(library).map_err(|e| e.to_string())?;
        // SAFETY: dlopen with a NUL-terminated name; the handle is kept open for the life of the
        // process, so symbols handed to modules stay valid.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if handle.is_null() {
            return Err(format!("cannot open {library}"));
        }
        Ok(())
    }

    /// Opens the on-demand libraries that `name` may come from and this process has not
    /// opened yet; whether it opened any.
    fn open_on_demand(&self, name: &str) -> bool {
        static OPENED: Mutex<Vec<&str>> = Mutex::new(Vec::new());
        let mut opened = OPENED.lock().unwrap_or_else(|e| e.into_inner());
        let mut any = false;
        for (library, prefixes) in ON_DEMAND_HOST_LIBRARIES {
            if opened.contains(library) || !prefixes.iter().any(|p| name.starts_with(p)) {
                continue;
            }
            opened.push(library);
            // Best effort, once: a missing library only means fewer host symbols.
            any |= self.open_host_library(library).is_ok();
        }
        any
    }

    /// A machine with only what the process already has loaded (and opens nothing on
    /// demand).
    pub fn bare() -> Self {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        NativeMachine {
            page_size: if page > 0 { page as u64 } else { 4096 },
            mappings: Mutex::new(BTreeMap::new()),
            data: Mutex::new(HashMap::new()),
            host_symbols: Mutex::new(HashMap::new()),
            host_objects: host::HostObjects::default(),
            self_mem: std::fs::File::open("/proc/self/mem").ok(),
            stubs: Mutex::new(stubs::StubTable::new()),
            on_demand_libraries: false,
            published: published::PublishedModules::default(),
        }
    }

    /// Maps `size` bytes at `hint` exactly, populated: the image is written whole right
    /// after, and one populating call costs less than a fault per page.
    fn map_at(&self, hint: u64, size: u64) -> Option<u64> {
        let p = self.map(Some(hint), size)?;
        if p != hint {
            // An old kernel that treats the flag as a hint only.
            self.unmap(p, size);
            return None;
        }
        Some(p)
    }

    /// Anywhere the kernel likes, if that is aligned to `align`.
    fn map_anywhere_aligned(&self, size: u64, align: u64) -> Option<u64> {
        let p = self.map(None, size)?;
        if p % align != 0 {
            self.unmap(p, size);
            return None;
        }
        Some(p)
    }

    /// A fresh read-write mapping of `size` bytes, at `hint` if given (never replacing
    /// anything there), its pages populated. A size of whole huge pages asks for transparent
    /// huge pages first ([`huge_image_size`]).
    fn map(&self, hint: Option<u64>, size: u64) -> Option<u64> {
        let huge = size % HUGE_PAGE == 0;
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        flags |= if huge { 0 } else { libc::MAP_POPULATE };
        flags |= if hint.is_some() {
            MAP_FIXED_NOREPLACE
        } else {
            0
        };
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping, and without a hint
        // the kernel picks free addresses; a fresh anonymous mapping aliases nothing.
        let p = unsafe {
            libc::mmap(
                hint.unwrap_or(0) as *mut libc::c_void,
                size as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        if huge {
            // SAFETY: advice on the mapping just made, which nothing else uses yet. Both are
            // best effort: without huge pages (or MADV_POPULATE_WRITE, Linux 5.14) the pages
            // come one fault at a time instead.
            unsafe {
                libc::madvise(p, size as usize, libc::MADV_HUGEPAGE);
                libc::madvise(p, size as usize, MADV_POPULATE_WRITE);
            }
        }
        Some(p as u64)
    }

    /// Records a new reservation, not yet published.
    fn keep_mapping(&self, base: u64, size: u64) {
        let mapping = Mapping {
            size,
            published: false,
        };
        let mut mappings = self.mappings.lock().unwrap_or_else(|e| e.into_inner());
        mappings.insert(base, mapping);
    }

    fn unmap(&self, address: u64, size: u64) {
        // SAFETY: only ranges this machine mapped and no longer hands out are unmapped.
        unsafe {
            libc::munmap(address as *mut libc::c_void, size as usize);
        }
    }

    /// Where to try to map `size` bytes aligned to `align`: right after each mapping of this
    /// machine's first, so modules pack together, then the fixed probe steps; nearest the
    /// anchor first for `Near`, lowest first for `Low2GiB`. None overlaps a mapping of ours,
    /// so with many modules loaded the search does not retry every place they hold; a place
    /// something else holds fails its mmap and the next is tried.
    fn candidates(&self, size: u64, align: u64, placement: Placement) -> Vec<u64> {
        let mappings = self.mappings.lock().unwrap_or_else(|e| e.into_inner());
        let align = if size % HUGE_PAGE == 0 {
            align.max(HUGE_PAGE)
        } else {
            align
        };
        let packed: Vec<u64> = mappings
            .iter()
            .filter_map(|(&base, m)| base.checked_add(m.size)?.checked_next_multiple_of(align))
            .collect();
        let (low, high, probes) = match placement {
            Placement::Low2GiB => {
                let probes = (0..)
                    .map(|k| LOW_START + k * PROBE_STEP)
                    .take_while(|&a| a + size <= LOW_LIMIT)
                    .collect();
                (LOW_START, LOW_LIMIT, probes)
            }
            Placement::Near(anchor) => {
                let anchor = anchor & !(PROBE_STEP - 1);
                let probes: Vec<u64> = (1..NEAR_PROBES)
                    .flat_map(|k| {
                        [
                            anchor.checked_add(k * PROBE_STEP),
                            anchor.checked_sub(k * PROBE_STEP + size),
                        ]
                    })
                    .flatten()
                    .map(|a| a & !(PROBE_STEP - 1))
                    .filter(|&a| a >= LOW_START)
                    .collect();
                let reach = NEAR_PROBES * PROBE_STEP;
                (
                    anchor.saturating_sub(reach).max(LOW_START),
                    anchor.saturating_add(reach),
                    probes,
                )
            }
        };
        let mut packed: Vec<u64> = packed
            .into_iter()
            .filter(|&a| a >= low && a.checked_add(size).is_some_and(|end| end <= high))
            .collect();
        match placement {
            Placement::Low2GiB => packed.sort_unstable(),
            Placement::Near(anchor) => packed.sort_unstable_by_key(|&a| a.abs_diff(anchor)),
        }
        let free = |a: &u64| {
            let Some(end) = a.checked_add(size) else {
                return false;
            };
            // Ours do not overlap each other: the last one starting before `end` ends last.
            mappings
                .range(..end)
                .next_back()
                .is_none_or(|(&base, m)| base + m.size <= *a)
        };
        packed.into_iter().chain(probes).filter(free).collect()
    }

    /// Finds the mapping that holds `address..address+len`, if any.
    fn check_range(
        &self,
        address: u64,
        len: u64,
        access: &'static str,
    ) -> Result<bool, MachineError> {
        let mappings = self.mappings.lock().unwrap_or_else(|e| e.into_inner());
        let bad = MachineError::BadAccess {
            address,
            len,
            access,
        };
        let (&base, mapping) = mappings.range(..=address).next_back().ok_or(bad)?;
        let end = address.checked_add(len);
        if end.is_none_or(|e| e > base + mapping.size) {
            return Err(MachineError::BadAccess {
                address,
                len,
                access,
            });
        }
        Ok(mapping.published)
    }
}

impl Default for NativeMachine {
    fn default() -> Self {
        Self::new()
    }
}

impl Machine for NativeMachine {
    fn arch(&self) -> ArchKind {
        ArchKind::host().expect("the native machine is only built for supported hosts")
    }

    fn page_size(&self) -> u64 {
        self.page_size
    }

    fn reserve(&self, size: u64, align: u64, placement: Placement) -> Result<u64, MachineError> {
        let size = huge_image_size(size.max(1).next_multiple_of(self.page_size));
        let align = align.max(self.page_size);
        let base = self
            .candidates(size, align, placement)
            .into_iter()
            .filter(|a| a % align == 0)
            .find_map(|hint| self.map_at(hint, size))
            .or_else(|| match placement {
                Placement::Near(_) => self.map_anywhere_aligned(size, align),
                Placement::Low2GiB => None,
            })
            .ok_or_else(|| MachineError::NoMemory {
                size,
                placement: placement.to_string(),
                reason: "no free address range found".into(),
            })?;
        self.keep_mapping(base, size);
        Ok(base)
    }

    fn release(&self, base: u64) -> Result<(), MachineError> {
        let mapping = self
            .mappings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&base)
            .ok_or(MachineError::BadAccess {
                address: base,
                len: 0,
                access: "release",
            })?;
        self.published.forget(base);
        self.unmap(base, mapping.size);
        Ok(())
    }

    fn can_map_files(&self) -> bool {
        true
    }

    fn map_file(&self, base: u64, len: u64, file: &std::fs::File, offset: u64) -> Option<()> {
        use std::os::fd::AsRawFd;
        let aligned = |n: u64| n % self.page_size == 0;
        if !aligned(base) || !aligned(len) || !aligned(offset) || len == 0 {
            return None;
        }
        let file_offset = libc::off_t::try_from(offset).ok()?;
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; the new one is
        // private, so writes to it stay in this process and never reach the file.
        let p = unsafe {
            libc::mmap(
                base as *mut libc::c_void,
                usize::try_from(len).ok()?,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | MAP_FIXED_NOREPLACE,
                file.as_raw_fd(),
                file_offset,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        if p as u64 != base {
            // An old kernel that treats the flag as a hint only.
            self.unmap(p as u64, len);
            return None;
        }
        self.keep_mapping(base, len);
        Some(())
    }

    fn write(&self, address: u64, bytes: &[u8]) -> Result<(), MachineError> {
        if self.check_range(address, bytes.len() as u64, "write")? {
            return Err(MachineError::BadAccess {
                address,
                len: bytes.len() as u64,
                access: "write after publishing",
            });
        }
        // SAFETY: the range lies inside a mapping of ours that is still private and writable,
        // and `bytes` cannot overlap it (no reference into unpublished images is handed out).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), address as *mut u8, bytes.len());
        }
        Ok(())
    }

    fn fill_image(
        &self,
        base: u64,
        len: u64,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), MachineError> {
        if self.check_range(base, len, "fill")? {
            return Err(MachineError::bad_access(base, len, "fill after publishing"));
        }
        // SAFETY: the range lies inside a mapping of ours that is still private, writable and
        // zero-filled or written only by this loader; no other reference into it exists while
        // the image is being linked (it is handed out only when published).
        let image = unsafe { std::slice::from_raw_parts_mut(base as *mut u8, len as usize) };
        fill(image);
        Ok(())
    }

    fn protect(&self, address: u64, len: u64, protection: Protection) -> Result<(), MachineError> {
        self.check_range(address, len, "protect")?;
        let flags = match protection {
            Protection::ReadExecute => region::Protection::READ_EXECUTE,
            Protection::ReadOnly => region::Protection::READ,
            Protection::ReadWrite => region::Protection::READ_WRITE,
        };
        // SAFETY: the range is inside one of our mappings; nothing holds a reference into it.
        unsafe { region::protect(address as *const u8, len as usize, flags) }.map_err(|e| {
            MachineError::Protect {
                address,
                len,
                reason: e.to_string(),
            }
        })?;
        if protection == Protection::ReadExecute {
            flush_icache(address, len);
        }
        let mut mappings = self.mappings.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, m)) = mappings.range_mut(..=address).next_back() {
            m.published = true;
        }
        Ok(())
    }

    fn read(&self, address: u64, len: u64) -> Result<Vec<u8>, MachineError> {
        let bad = || MachineError::BadAccess {
            address,
            len,
            access: "read",
        };
        let file = self.self_mem.as_ref().ok_or_else(bad)?;
        let mut buf = vec![0u8; usize::try_from(len).map_err(|_| bad())?];
        file.read_exact_at(&mut buf, address).map_err(|_| bad())?;
        Ok(buf)
    }

    fn call(&self, address: u64, args: &[u64]) -> Result<u64, MachineError> {
        const MAX: usize = 6;
        if args.len() > MAX {
            return Err(MachineError::TooManyArguments {
                max: MAX,
                got: args.len(),
            });
        }
        let mut regs = [0u64; MAX];
        regs[..args.len()].copy_from_slice(args);
        type Entry = extern "C" fn(u64, u64, u64, u64, u64, u64) -> u64;
        // SAFETY: `address` is a function of a published module or of the kernel, chosen by
        // the caller; under the C calling convention surplus integer arguments are ignored by
        // the callee. What the module's code does is the module's responsibility, as in any
        // kernel that loads modules.
        let entry: Entry = unsafe { std::mem::transmute::<usize, Entry>(address as usize) };
        Ok(entry(regs[0], regs[1], regs[2], regs[3], regs[4], regs[5]))
    }

    fn alloc_data(&self, bytes: &[u8]) -> Result<u64, MachineError> {
        let boxed: Box<[u8]> = bytes.into();
        let address = boxed.as_ptr() as u64;
        self.data
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(address, boxed);
        Ok(address)
    }

    fn free_data(&self, address: u64) {
        self.data
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&address);
    }

    fn host_symbol(&self, name: &str) -> Option<ExternalSymbol> {
        let mut cache = self.host_symbols.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = cache.get(name) {
            return Some(*known);
        }
        let mut found = self.host_objects.lookup(name);
        if found.is_none() && self.on_demand_libraries && self.open_on_demand(name) {
            found = self.host_objects.lookup(name);
        }
        // Misses are not kept: a module's exports, checked for shadowing, are mostly misses,
        // which the libraries' hash tables answer at once (keeping SQLite's 270 took longer
        // than looking them up).
        if let Some(symbol) = found {
            cache.insert(name.to_string(), symbol);
        }
        found
    }

    fn kernel_anchor(&self) -> u64 {
        NativeMachine::new as fn() -> NativeMachine as usize as u64
    }

    fn create_stub(&self) -> Result<(u32, u64), MachineError> {
        let page = self.page_size;
        let map_page = || self.reserve(page, page, Placement::Near(self.kernel_anchor()));
        let publish = |address: u64, code: &[u8]| {
            self.write(address, code)?;
            self.protect(address, page, Protection::ReadExecute)
        };
        let mut table = self.stubs.lock().unwrap_or_else(|e| e.into_inner());
        table.create(page as usize, map_page, publish)
    }

    fn set_stub_target(&self, stub: u32, target: Option<u64>) {
        let table = self.stubs.lock().unwrap_or_else(|e| e.into_inner());
        table.set_target(stub, target);
    }

    fn enter_stub(&self, stub: u32) {
        let table = self.stubs.lock().unwrap_or_else(|e| e.into_inner());
        table.enter(stub);
    }

    fn stub_use(&self, stub: u32) -> StubUse {
        let table = self.stubs.lock().unwrap_or_else(|e| e.into_inner());
        table.stub_use(stub)
    }

    fn set_stub_resolver(&self, resolver: std::sync::Weak<dyn StubResolver>) {
        let table = self.stubs.lock().unwrap_or_else(|e| e.into_inner());
        table.set_resolver(resolver);
    }

    fn module_published(&self, module: &PublishedModule<'_>) {
        self.published.publish(self, module);
    }

    fn flush_output(&self) {
        // SAFETY: fflush(NULL) flushes every open stdio stream and has no precondition.
        unsafe {
            libc::fflush(std::ptr::null_mut());
        }
    }
}

impl Drop for NativeMachine {
    fn drop(&mut self) {
        self.published.forget_all();
        let mappings = std::mem::take(self.mappings.get_mut().unwrap_or_else(|e| e.into_inner()));
        for (base, mapping) in mappings {
            self.unmap(base, mapping.size);
        }
    }
}

/// An image cache entry, mapped read-only ([`crate::kernel`]'s image cache).
pub(crate) fn map_entry(file: &std::fs::File) -> Option<memmap2::Mmap> {
    // SAFETY: a private read-only mapping of a cache entry. Entries are replaced by renaming
    // a new file over them, never rewritten or truncated in place, so the bytes under the
    // mapping do not change while it lives.
    unsafe { memmap2::Mmap::map(file) }.ok()
}

#[cfg(target_arch = "aarch64")]
fn flush_icache(address: u64, len: u64) {
    extern "C" {
        fn __clear_cache(start: *mut libc::c_char, end: *mut libc::c_char);
    }
    // SAFETY: the range is mapped and belongs to this machine; __clear_cache only maintains
    // caches for it.
    unsafe {
        __clear_cache(
            address as *mut libc::c_char,
            (address + len) as *mut libc::c_char,
        )
    }
}

#[cfg(not(target_arch = "aarch64"))]
fn flush_icache(_address: u64, _len: u64) {
    // x86_64 keeps instruction and data caches coherent.
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reservations near the program pack together instead of taking a probe step each (the
    /// steps alone would hold 126 of them): most of 300 of 64 KiB sit right after another, none
    /// overlaps another, all within reach of the program. Other tests map memory meanwhile, so
    /// not every one is adjacent.
    #[test]
    fn reservations_near_the_program_pack_together() {
        let machine = NativeMachine::bare();
        let anchor = machine.kernel_anchor();
        let size = 64 << 10;
        let bases: Vec<u64> = (0..300)
            .map(|_| {
                machine
                    .reserve(size, machine.page_size, Placement::Near(anchor))
                    .unwrap()
            })
            .collect();
        let mut sorted = bases.clone();
        sorted.sort_unstable();
        assert!(sorted.windows(2).all(|w| w[0] + size <= w[1]), "overlap");
        let adjacent = sorted.windows(2).filter(|w| w[0] + size == w[1]).count();
        assert!(
            adjacent >= 200,
            "only {adjacent} of 300 reservations adjacent"
        );
        assert!(bases
            .iter()
            .all(|b| b.abs_diff(anchor) < NEAR_PROBES * PROBE_STEP));
        for base in bases {
            machine.release(base).unwrap();
        }
    }

    /// A large image is mapped in whole huge pages, on a huge page boundary.
    #[test]
    fn large_images_take_whole_huge_pages() {
        let machine = NativeMachine::bare();
        let base = machine
            .reserve(HUGE_IMAGE, machine.page_size, Placement::Low2GiB)
            .unwrap();
        assert_eq!(base % HUGE_PAGE, 0);
        let size = machine.mappings.lock().unwrap()[&base].size;
        assert_eq!(size, HUGE_PAGE);
        machine.release(base).unwrap();
        assert_eq!(huge_image_size(HUGE_IMAGE - 4096), HUGE_IMAGE - 4096);
    }
}
