//! The host's dynamic symbols, with the size and kind their ELF entries give.
//!
//! `dlsym` finds an address by hash; the size and kind (function or data) a module's link
//! needs come from the symbol's ELF entry, which `dladdr1` finds by a linear scan of the whole
//! symbol table of the library (a few microseconds for libc, for every import of every module:
//! it was the largest part of loading SQLite). Here the entry is found through the library's
//! own GNU hash table instead, read from the loaded image, as the dynamic linker does; no
//! crate reads the tables of already-loaded objects, so this is written out. Objects without
//! a GNU hash table, and names the table does not give for the address `dlsym` returned (GNU
//! indirect functions), fall back to `dladdr1`.

use std::ffi::{CStr, CString};
use std::sync::Mutex;

use dlkm_linker::{ExternalKind, ExternalSymbol};

/// dladdr1: return the symbol's ELF entry.
const RTLD_DL_SYMENT: libc::c_int = 1;
const DT_STRTAB: i64 = 5;
const DT_SYMTAB: i64 = 6;
const DT_GNU_HASH: i64 = 0x6fff_fef5;
const DT_VERSYM: i64 = 0x6fff_fff0;
/// A version-symbol entry with this bit is a non-default version (`name@VERSION`).
const VERSYM_HIDDEN: u16 = 0x8000;
const STT_OBJECT: u8 = 1;
const STT_FUNC: u8 = 2;
const STT_GNU_IFUNC: u8 = 10;

/// An entry of a dynamic section (`Elf64_Dyn`).
#[repr(C)]
struct DynamicEntry {
    tag: i64,
    value: u64,
}

/// One loaded object's dynamic symbol tables, as addresses in this process.
#[derive(Debug, Clone)]
struct LoadedObject {
    /// Its load bias: symbol values are relative to it.
    bias: u64,
    /// Its loaded segments.
    ranges: Vec<(u64, u64)>,
    symtab: u64,
    strtab: u64,
    gnu_hash: u64,
    versym: Option<u64>,
}

/// The loaded objects seen so far; looked at again when an address falls in none of them, or
/// the dynamic linker has loaded or unloaded an object since.
#[derive(Default)]
pub(super) struct HostObjects {
    objects: Mutex<Scope>,
}

#[derive(Default)]
struct Scope {
    objects: Vec<LoadedObject>,
    /// Whether every loaded object with dynamic symbols has a GNU hash table (is among
    /// `objects`): only then does a name none of them has certainly not exist.
    complete: bool,
    /// The dynamic linker's counts of objects loaded and unloaded when this was read.
    generation: (u64, u64),
}

impl HostObjects {
    /// The process's dynamic symbol `name`: address from `dlsym`, size and kind from its ELF
    /// entry.
    pub fn lookup(&self, name: &str) -> Option<ExternalSymbol> {
        if !self.may_define(name) {
            return None;
        }
        let cname = CString::new(name).ok()?;
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name has no other precondition.
        let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, cname.as_ptr()) } as u64;
        if address == 0 {
            return None;
        }
        let (size, kind) = self
            .describe(name, address)
            .unwrap_or_else(|| describe_by_dladdr(name, address));
        Some(ExternalSymbol {
            address,
            size,
            kind,
        })
    }

    /// Whether some loaded object's hash table has an entry called `name`. Most names a
    /// module exports are in no library, and a `dlsym` that fails costs several times one
    /// that succeeds (it formats an error message); this answers those without it.
    fn may_define(&self, name: &str) -> bool {
        let mut scope = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        if scope.generation != generation() {
            *scope = loaded_objects();
        }
        let (name, hash) = (name.as_bytes(), gnu_hash(name.as_bytes()));
        // SAFETY: the objects were loaded at the generation just checked, and none has been
        // unloaded since, so their tables are mapped.
        !scope.complete
            || scope
                .objects
                .iter()
                .any(|o| unsafe { o.has_entry(name, hash) })
    }

    fn describe(&self, name: &str, address: u64) -> Option<(u64, ExternalKind)> {
        let mut scope = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        let holds = |o: &LoadedObject| o.ranges.iter().any(|&(s, e)| (s..e).contains(&address));
        if !scope.objects.iter().any(holds) {
            *scope = loaded_objects();
        }
        let object = scope.objects.iter().find(|o| holds(o))?;
        // SAFETY: the tables belong to an object that is loaded (dlsym just found an address
        // in it) and stays loaded: nothing this process loads is closed again.
        let (value, size, info) = unsafe { object.find(name.as_bytes())? };
        let kind = match info & 0xf {
            STT_OBJECT => ExternalKind::Data,
            STT_FUNC => ExternalKind::Function,
            // dlsym called the resolver; the table has the resolver's address and size.
            STT_GNU_IFUNC => return Some((0, ExternalKind::Function)),
            _ => ExternalKind::Unknown,
        };
        (object.bias.wrapping_add(value) == address).then_some((size, kind))
    }
}

impl LoadedObject {
    /// The default version of `name` in this object's GNU hash table: value, size, info.
    ///
    /// # Safety
    /// The object's tables must be mapped: it must still be loaded.
    unsafe fn find(&self, name: &[u8]) -> Option<(u64, u64, u8)> {
        // SAFETY: the caller's.
        unsafe {
            self.search(name, gnu_hash(name), |index, symbol| {
                let hidden = self.versym.is_some_and(|versym| {
                    // SAFETY: the version table has an entry per symbol.
                    let version = *(versym as *const u16).add(index as usize);
                    version & VERSYM_HIDDEN != 0
                });
                (!hidden && symbol.st_shndx != 0).then_some((
                    symbol.st_value,
                    symbol.st_size,
                    symbol.st_info,
                ))
            })
        }
    }

    /// Whether this object's GNU hash table has any entry called `name` (of any version,
    /// defined or not); `hash` is its [`gnu_hash`].
    ///
    /// # Safety
    /// The object's tables must be mapped: it must still be loaded.
    unsafe fn has_entry(&self, name: &[u8], hash: u32) -> bool {
        // SAFETY: the caller's.
        unsafe { self.search(name, hash, |_, _| Some(())) }.is_some()
    }

    /// The first of the entries called `name` (whose [`gnu_hash`] is `hash`) in this object's
    /// GNU hash table for which `accept` gives a value.
    ///
    /// # Safety
    /// The object's tables must be mapped: it must still be loaded.
    unsafe fn search<T>(
        &self,
        name: &[u8],
        hash: u32,
        mut accept: impl FnMut(u32, &libc::Elf64_Sym) -> Option<T>,
    ) -> Option<T> {
        let table = self.gnu_hash as *const u32;
        // SAFETY (here and below): the GNU hash table's layout: four words, the Bloom filter
        // of 64-bit words, the buckets, then the chains; symbol entries at `symtab`, names in
        // `strtab`, all inside the mapped object, as the dynamic linker reads them.
        let (nbuckets, symoffset, bloom_size, bloom_shift) =
            unsafe { (*table, *table.add(1), *table.add(2), *table.add(3)) };
        if nbuckets == 0 || bloom_size == 0 {
            return None;
        }
        let bloom = unsafe { table.add(4) } as *const u64;
        let word = unsafe { *bloom.add(((hash / 64) % bloom_size) as usize) };
        let mask = (1u64 << (hash % 64)) | (1u64 << ((hash >> bloom_shift) % 64));
        if word & mask != mask {
            return None;
        }
        let buckets = unsafe { bloom.add(bloom_size as usize) } as *const u32;
        let chains = unsafe { buckets.add(nbuckets as usize) };
        let mut index = unsafe { *buckets.add((hash % nbuckets) as usize) };
        if index < symoffset {
            return None;
        }
        loop {
            let chain_hash = unsafe { *chains.add((index - symoffset) as usize) };
            if chain_hash | 1 == hash | 1 {
                let symbol =
                    unsafe { &*(self.symtab as *const libc::Elf64_Sym).add(index as usize) };
                let symbol_name = unsafe {
                    CStr::from_ptr((self.strtab + u64::from(symbol.st_name)) as *const _)
                };
                if symbol_name.to_bytes() == name {
                    if let Some(found) = accept(index, symbol) {
                        return Some(found);
                    }
                }
            }
            if chain_hash & 1 != 0 {
                return None;
            }
            index += 1;
        }
    }
}

/// The GNU hash of a symbol name (Bernstein's, as the dynamic linker computes it).
fn gnu_hash(name: &[u8]) -> u32 {
    name.iter().fold(5381u32, |h, &c| {
        h.wrapping_mul(33).wrapping_add(u32::from(c))
    })
}

/// Calls `visit` with each loaded object's record, as `dl_iterate_phdr` gives them, until it
/// returns `false`.
fn each_loaded_object(mut visit: impl FnMut(&libc::dl_phdr_info) -> bool) {
    type Visit<'a> = &'a mut dyn FnMut(&libc::dl_phdr_info) -> bool;
    unsafe extern "C" fn trampoline(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: dl_iterate_phdr passes a valid info record and our own `data`, the visitor
        // below.
        let (info, visit) = unsafe { (&*info, &mut *(data as *mut Visit)) };
        libc::c_int::from(!visit(info))
    }
    let mut visit: Visit = &mut visit;
    // SAFETY: `trampoline` only hands the records it is given to the visitor behind `data`,
    // which outlives the call; a nonzero return ends the walk.
    unsafe {
        libc::dl_iterate_phdr(Some(trampoline), &mut visit as *mut Visit as *mut _);
    }
}

/// The dynamic linker's counts of objects loaded and unloaded so far.
fn generation() -> (u64, u64) {
    let mut counts = (0, 0);
    each_loaded_object(|info| {
        counts = (info.dlpi_adds, info.dlpi_subs);
        false
    });
    counts
}

/// The objects loaded now that have a GNU hash table, and whether they are all that have
/// dynamic symbols.
fn loaded_objects() -> Scope {
    let mut scope = Scope {
        complete: true,
        ..Scope::default()
    };
    each_loaded_object(|info| {
        scope.generation = (info.dlpi_adds, info.dlpi_subs);
        match read_object(info) {
            Dynamic::Hashed(object) => scope.objects.push(object),
            Dynamic::Unhashed => scope.complete = false,
            Dynamic::None => {}
        }
        true
    });
    scope
}

/// What a loaded object's dynamic section gives.
enum Dynamic {
    /// Its symbols, through a GNU hash table.
    Hashed(LoadedObject),
    /// Dynamic symbols without a GNU hash table.
    Unhashed,
    /// No dynamic section: no dynamic symbols.
    None,
}

fn read_object(info: &libc::dl_phdr_info) -> Dynamic {
    let bias = info.dlpi_addr;
    // SAFETY: the program headers of a loaded object, as dl_iterate_phdr describes them.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let ranges = headers
        .iter()
        .filter(|h| h.p_type == libc::PT_LOAD)
        .map(|h| (bias + h.p_vaddr, bias + h.p_vaddr + h.p_memsz))
        .collect();
    let Some(dynamic) = headers.iter().find(|h| h.p_type == libc::PT_DYNAMIC) else {
        return Dynamic::None;
    };
    let mut entry = (bias + dynamic.p_vaddr) as *const DynamicEntry;
    let (mut symtab, mut strtab, mut gnu_hash, mut versym) = (0, 0, 0, None);
    // The dynamic linker relocates these entries in place, except in read-only dynamic
    // sections (the vDSO's), which keep link-time addresses.
    let absolute = |pointer: u64| {
        if pointer < bias {
            bias + pointer
        } else {
            pointer
        }
    };
    loop {
        // SAFETY: the dynamic section of a loaded object, ended by DT_NULL.
        let dyn_entry = unsafe { &*entry };
        match dyn_entry.tag {
            0 => break,
            DT_SYMTAB => symtab = absolute(dyn_entry.value),
            DT_STRTAB => strtab = absolute(dyn_entry.value),
            DT_GNU_HASH => gnu_hash = absolute(dyn_entry.value),
            DT_VERSYM => versym = Some(absolute(dyn_entry.value)),
            _ => {}
        }
        // SAFETY: still inside the dynamic section: DT_NULL was not reached.
        entry = unsafe { entry.add(1) };
    }
    if symtab == 0 || strtab == 0 {
        return Dynamic::None;
    }
    if gnu_hash == 0 {
        return Dynamic::Unhashed;
    }
    Dynamic::Hashed(LoadedObject {
        bias,
        ranges,
        symtab,
        strtab,
        gnu_hash,
        versym,
    })
}

/// Size and kind by `dladdr1`, for what the hash tables do not tell.
fn describe_by_dladdr(name: &str, address: u64) -> (u64, ExternalKind) {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    let mut entry: *mut libc::c_void = std::ptr::null_mut();
    let at = address as *mut libc::c_void;
    // SAFETY: `info` and `entry` are valid out-parameters; RTLD_DL_SYMENT stores a pointer
    // to the symbol's ELF entry in `entry`, which lives as long as the object stays loaded.
    let found = unsafe { libc::dladdr1(at, &mut info, &mut entry, RTLD_DL_SYMENT) };
    // For a GNU indirect function dlsym returns the chosen implementation, which has no
    // dynamic symbol of its own, so dladdr1 names a neighbour. Data is never indirect: such a
    // symbol is a function of unknown size.
    let names_it = found != 0
        && !info.dli_sname.is_null()
        && info.dli_saddr == at
        // SAFETY: dladdr1 succeeded, so dli_sname is a NUL-terminated name in the object.
        && unsafe { CStr::from_ptr(info.dli_sname) }.to_bytes() == name.as_bytes();
    if !names_it {
        return (0, ExternalKind::Function);
    }
    if entry.is_null() {
        return (0, ExternalKind::Unknown);
    }
    // SAFETY: on success `entry` points to an ElfW(Sym) of the host's word size.
    let symbol = unsafe { &*(entry as *const libc::Elf64_Sym) };
    let kind = match symbol.st_info & 0xf {
        STT_OBJECT => ExternalKind::Data,
        STT_FUNC | STT_GNU_IFUNC => ExternalKind::Function,
        _ => ExternalKind::Unknown,
    };
    (symbol.st_size, kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash tables tell what dladdr1's scan tells, for functions, data, versioned and
    /// indirect functions, in the program and in libraries. (Where the scan names an alias
    /// instead, `_IO_printf` for `printf`, it knows only that it is a function; so do we.)
    #[test]
    fn hash_lookups_agree_with_dladdr() {
        let objects = HostObjects::default();
        let names = [
            "malloc",
            "printf",
            "stdout",
            "stderr",
            "environ",
            "memcpy",
            "strlen",
            "qsort",
            "pthread_create",
            "dlsym",
            "_Unwind_Resume",
        ];
        for name in names {
            let symbol = objects.lookup(name).unwrap_or_else(|| panic!("{name}"));
            match describe_by_dladdr(name, symbol.address) {
                (0, ExternalKind::Function) => assert_eq!(symbol.kind, ExternalKind::Function),
                by_scan => assert_eq!((symbol.size, symbol.kind), by_scan, "{name}"),
            }
        }
        assert_eq!(objects.lookup("stdout").unwrap().kind, ExternalKind::Data);
        assert!(objects.lookup("no_such_symbol_anywhere").is_none());
    }

    /// A name is ruled out without `dlsym` only when no loaded object's table has it: every
    /// name `dlsym` finds passes, including versioned, indirect and hidden-version ones.
    #[test]
    fn names_ruled_out_are_the_ones_dlsym_cannot_find() {
        let objects = HostObjects::default();
        let scope = loaded_objects();
        assert!(scope.complete, "every library here has a GNU hash table");
        assert!(scope.objects.len() >= 2);
        let found = [
            "malloc",
            "memcpy",
            "stdout",
            "environ",
            "dlsym",
            "_Unwind_Resume",
        ];
        for name in found {
            assert!(objects.may_define(name), "{name}");
            let c = CString::new(name).unwrap();
            // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name.
            assert!(!unsafe { libc::dlsym(libc::RTLD_DEFAULT, c.as_ptr()) }.is_null());
        }
        for name in ["sqlite3_open", "no_such_symbol_anywhere", ""] {
            assert!(!objects.may_define(name), "{name}");
            assert!(objects.lookup(name).is_none(), "{name}");
        }
    }
}
