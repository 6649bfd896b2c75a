//! The walk over sections and relocations, written once for every architecture: resolve the
//! symbols, copy the sections, fill the stubs and GOT, then classify, compute, check and
//! encode each relocation.

use crate::arch::{page, Arch, Classifier, Expr, Field, Relaxed, RelocKind, StubUse};
use crate::error::{LinkError, RelocSite};
use crate::input::{Object, Section, SectionKind, SymbolDef, SymbolType};
use crate::layout::Layout;
use crate::linked_symbols::{LinkedSymbols, LinkedSymbolsBuilder};
use crate::rebind::{ImportSite, SiteForm};
use crate::relocations::Reloc;
use crate::with_arch;

/// The psABI's name for the GOT's base, which the linker defines.
const GOT_SYMBOL: &str = "_GLOBAL_OFFSET_TABLE_";
/// What `__cxa_atexit` registrations name the module by; its base is unique per module.
const DSO_HANDLE_SYMBOL: &str = "__dso_handle";

/// What the kernel says about a symbol the module does not define.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExternalSymbol {
    pub address: u64,
    pub size: u64,
    pub kind: ExternalKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExternalKind {
    Function,
    Data,
    Unknown,
}

/// Looks up the symbols a module leaves undefined.
pub trait Resolver {
    fn resolve(&mut self, name: &str) -> Option<ExternalSymbol>;
}

impl<F: FnMut(&str) -> Option<ExternalSymbol>> Resolver for F {
    fn resolve(&mut self, name: &str) -> Option<ExternalSymbol> {
        self(name)
    }
}

/// An undefined symbol of the module and what it was bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub name: String,
    /// `None` for an undefined weak symbol that nothing provides.
    pub symbol: Option<ExternalSymbol>,
}

/// Everything about the linked image the loader needs besides its bytes.
#[derive(Debug, Clone)]
pub struct LinkOutput {
    pub base: u64,
    pub symbols: LinkedSymbols,
    pub imports: Vec<Import>,
    /// Constructors in the order to run them.
    pub init_array: Vec<u64>,
    /// Destructors in the order to run them.
    pub fini_array: Vec<u64>,
    /// Calls and addresses that went through a stub because the target was out of reach.
    pub stubs_used: usize,
    /// GOT references rewritten to direct addressing.
    pub got_relaxed: usize,
    /// Every place whose bytes depend on where an import is, for [`rebind`](fn@crate::rebind)
    /// when the imports move but the image stays at `base`.
    pub import_sites: Vec<ImportSite>,
}

/// Links `object` at `base` into `image`, which must be zeroed and at least
/// `layout.image_size` bytes long: [`resolve`], then [`relocate_into`].
pub fn link_into(
    object: &Object,
    layout: &Layout,
    base: u64,
    resolver: &mut dyn Resolver,
    image: &mut [u8],
) -> Result<LinkOutput, LinkError> {
    let bindings = resolve(object, layout, base, resolver)?;
    relocate_into(object, layout, bindings, image)
}

/// Every symbol of `object` bound to an address for a module at `base`: its own from the
/// layout, the undefined ones from `resolver`, all missing ones reported together. No bytes
/// are touched, so a module whose symbols cannot all be found costs nothing more.
pub fn resolve(
    object: &Object,
    layout: &Layout,
    base: u64,
    resolver: &mut dyn Resolver,
) -> Result<Bindings, LinkError> {
    if base % layout.align != 0 {
        return Err(LinkError::Unsupported {
            object: object.name.clone(),
            what: format!(
                "base {base:#x}, which is not aligned to {:#x}",
                layout.align
            ),
        });
    }
    with_arch!(object.arch, A => {
        let mut linker = Linker::<A>::new(object, layout, base);
        let imports = linker.resolve_symbols(resolver)?;
        Ok(Bindings {
            base,
            symbols: linker.symbols,
            imports,
        })
    })
}

/// Writes the module into `image` (zeroed, at least `layout.image_size` bytes) with the
/// addresses `bindings` gives: copies the sections, fills the stubs and GOT, applies every
/// relocation and reads the constructor tables.
pub fn relocate_into(
    object: &Object,
    layout: &Layout,
    bindings: Bindings,
    image: &mut [u8],
) -> Result<LinkOutput, LinkError> {
    if (image.len() as u64) < layout.image_size {
        return Err(LinkError::BufferSize {
            object: object.name.clone(),
            got: image.len() as u64,
            want: layout.image_size,
        });
    }
    if bindings.symbols.len() != object.symbols.len() {
        return Err(LinkError::Unsupported {
            object: object.name.clone(),
            what: format!(
                "bindings for {} symbols, made for another object (it has {})",
                bindings.symbols.len(),
                object.symbols.len()
            ),
        });
    }
    with_arch!(object.arch, A => {
        let mut linker = Linker::<A>::new(object, layout, bindings.base);
        linker.symbols = bindings.symbols;
        linker.write(image, bindings.imports)
    })
}

/// What [`resolve`] bound each symbol of an object to, for [`relocate_into`].
#[derive(Debug, Clone)]
pub struct Bindings {
    base: u64,
    symbols: Vec<Option<Resolved>>,
    imports: Vec<Import>,
}

/// Links `object` at `base` into a new buffer of the image's size.
pub fn link(
    object: &Object,
    layout: &Layout,
    base: u64,
    resolver: &mut dyn Resolver,
) -> Result<(Vec<u8>, LinkOutput), LinkError> {
    let mut image = vec![0u8; layout.image_size as usize];
    let output = link_into(object, layout, base, resolver, &mut image)?;
    Ok((image, output))
}

/// Where a symbol's value comes from once resolved.
#[derive(Debug, Clone, Copy)]
struct Resolved {
    address: u64,
    size: u64,
    is_function: bool,
    external: bool,
    /// An undefined weak symbol nothing provides (address 0).
    undefined_weak: bool,
    /// The index in the imports of an `external` symbol, for its import sites.
    import: u32,
}

impl Resolved {
    /// A plain address: no size, not a function, defined by the module itself.
    fn at(address: u64) -> Self {
        Resolved {
            address,
            size: 0,
            is_function: false,
            external: false,
            undefined_weak: false,
            import: u32::MAX,
        }
    }
}

struct Linker<'a, 'data, A: Arch> {
    object: &'a Object<'data>,
    layout: &'a Layout,
    base: u64,
    symbols: Vec<Option<Resolved>>,
    _arch: std::marker::PhantomData<A>,
}

impl<'a, 'data, A: Arch> Linker<'a, 'data, A> {
    fn new(object: &'a Object<'data>, layout: &'a Layout, base: u64) -> Self {
        Linker {
            object,
            layout,
            base,
            symbols: Vec::new(),
            _arch: std::marker::PhantomData,
        }
    }

    fn write(&self, image: &mut [u8], imports: Vec<Import>) -> Result<LinkOutput, LinkError> {
        self.copy_sections(image);
        let mut import_sites = Vec::new();
        self.fill_stubs_and_got(image, &mut import_sites);
        let (stubs_used, got_relaxed) = self.relocate(image, &mut import_sites)?;
        let (init_array, fini_array) = self.constructors(image);
        Ok(LinkOutput {
            base: self.base,
            symbols: self.defined_symbols()?,
            imports,
            init_array,
            fini_array,
            stubs_used,
            got_relaxed,
            import_sites,
        })
    }

    fn at(&self, offset: u64) -> u64 {
        self.base + offset
    }

    /// Resolves every symbol; undefined ones through the resolver, all missing ones reported
    /// together.
    fn resolve_symbols(&mut self, resolver: &mut dyn Resolver) -> Result<Vec<Import>, LinkError> {
        let object = self.object;
        let referenced = self.referenced_symbols();
        let mut missing = Vec::new();
        let mut imports = Vec::new();
        let mut symbols = Vec::with_capacity(object.symbols.len());
        for (index, symbol) in object.symbols.iter().enumerate() {
            let own = |address: u64| Resolved {
                size: symbol.size,
                is_function: symbol.ty == SymbolType::Function,
                ..Resolved::at(address)
            };
            let resolved = match symbol.def {
                SymbolDef::Section(s) => match self.layout.section_offsets[s] {
                    Some(off) => Some(own(self.at(off).checked_add(symbol.value).ok_or_else(
                        || LinkError::BadSymbol {
                            object: object.name.clone(),
                            symbol: symbol.name.to_string(),
                            detail: format!(
                                "its value {:#x} puts it past the end of the address space",
                                symbol.value
                            ),
                        },
                    )?)),
                    None => None,
                },
                SymbolDef::Absolute => Some(own(symbol.value)),
                SymbolDef::Common { .. } => {
                    let offset = self.layout.common_offsets[&(index as u32)];
                    Some(Resolved {
                        size: symbol.size,
                        ..Resolved::at(self.at(offset))
                    })
                }
                SymbolDef::Undefined if index == 0 => Some(Resolved::at(0)),
                SymbolDef::Undefined if !referenced[index] => None,
                SymbolDef::Undefined if symbol.name == GOT_SYMBOL => Some(Resolved {
                    size: self.layout.got.size,
                    ..Resolved::at(self.at(self.layout.got.offset))
                }),
                SymbolDef::Undefined if symbol.name == DSO_HANDLE_SYMBOL => {
                    Some(Resolved::at(self.base))
                }
                SymbolDef::Undefined => {
                    let found = self.resolve_external(resolver, symbol.name);
                    let import = imports.len() as u32;
                    imports.push(Import {
                        name: symbol.name.to_string(),
                        symbol: found,
                    });
                    match found {
                        Some(ext) => Some(Resolved {
                            size: ext.size,
                            is_function: ext.kind == crate::ExternalKind::Function,
                            external: true,
                            import,
                            ..Resolved::at(ext.address)
                        }),
                        None if symbol.weak => Some(Resolved {
                            undefined_weak: true,
                            ..Resolved::at(0)
                        }),
                        None => {
                            missing.push(symbol.name.to_string());
                            None
                        }
                    }
                }
            };
            if symbol.ty == SymbolType::IFunc && !matches!(symbol.def, SymbolDef::Undefined) {
                return Err(LinkError::BadSymbol {
                    object: object.name.clone(),
                    symbol: symbol.name.to_string(),
                    detail: "GNU indirect functions (IFUNC) are not supported in modules".into(),
                });
            }
            symbols.push(resolved);
        }
        if !missing.is_empty() {
            missing.sort();
            missing.dedup();
            return Err(LinkError::UndefinedSymbols {
                object: object.name.clone(),
                count: missing.len(),
                names: missing,
            });
        }
        self.symbols = symbols;
        Ok(imports)
    }

    fn resolve_external(
        &self,
        resolver: &mut dyn Resolver,
        name: &str,
    ) -> Option<crate::ExternalSymbol> {
        if let Some((_, offset)) = self.layout.copies.iter().find(|(c, _)| c.name == name) {
            return Some(crate::ExternalSymbol {
                address: self.at(*offset),
                size: self
                    .layout
                    .copies
                    .iter()
                    .find(|(c, _)| c.name == name)?
                    .0
                    .size,
                kind: crate::ExternalKind::Data,
            });
        }
        resolver.resolve(name)
    }

    fn referenced_symbols(&self) -> Vec<bool> {
        let mut referenced = vec![false; self.object.symbols.len()];
        for section in self.loaded_sections() {
            let mut slices = section.1.relocs.slices();
            while let Some(relocs) = slices.next() {
                for reloc in relocs {
                    referenced[reloc.symbol as usize] = true;
                }
            }
        }
        referenced
    }

    fn loaded_sections(&self) -> impl Iterator<Item = (u64, &'a Section<'data>)> + '_ {
        let object = self.object;
        self.layout
            .section_offsets
            .iter()
            .enumerate()
            .filter_map(move |(i, off)| off.map(|o| (o, &object.sections[i])))
    }

    fn copy_sections(&self, image: &mut [u8]) {
        for (offset, section) in self.loaded_sections() {
            if section.kind != Some(SectionKind::ZeroFill) {
                let start = offset as usize;
                image[start..start + section.data.len()].copy_from_slice(section.data);
            }
        }
    }

    fn fill_stubs_and_got(&self, image: &mut [u8], sites: &mut Vec<ImportSite>) {
        for (&(symbol, addend), &slot) in &self.layout.stub_slots {
            let target = self.slot_target(symbol, addend);
            let offset = self.layout.stubs.offset + slot * self.layout.stub_size;
            let stub = &mut image[offset as usize..(offset + self.layout.stub_size) as usize];
            A::write_stub(stub, self.at(offset), target);
            self.slot_site(sites, symbol, addend, offset, SiteForm::Stub);
        }
        for (&(symbol, addend), &slot) in &self.layout.got_slots {
            let target = self.slot_target(symbol, addend);
            let offset = self.layout.got.offset + slot * self.layout.got_entry_size;
            let at = offset as usize;
            write_data::<A>(
                &mut image[at..at + self.layout.got_entry_size as usize],
                got_field::<A>(),
                target,
            );
            self.slot_site(sites, symbol, addend, offset, SiteForm::GotSlot);
        }
    }

    /// Records the stub or GOT slot at `offset` if an import fills it: filled whether or not
    /// a relocation goes through it, so rewritten all the same.
    fn slot_site(
        &self,
        sites: &mut Vec<ImportSite>,
        symbol: u32,
        addend: i64,
        offset: u64,
        form: SiteForm,
    ) {
        if let Some(resolved) = self.symbols[symbol as usize].filter(|s| s.external) {
            sites.push(ImportSite {
                import: resolved.import,
                offset,
                addend,
                form,
            });
        }
    }

    fn slot_target(&self, symbol: u32, addend: i64) -> u64 {
        let address = self.symbols[symbol as usize].map_or(0, |s| s.address);
        address.wrapping_add(addend as u64)
    }

    fn relocate(
        &self,
        image: &mut [u8],
        sites: &mut Vec<ImportSite>,
    ) -> Result<(usize, usize), LinkError> {
        let mut stubs_used = 0;
        let mut relaxed = 0;
        let mut classifier = Classifier::<A>::new();
        for (offset, section) in self.loaded_sections() {
            let section_image = &mut image[offset as usize..(offset + section.size) as usize];
            let mut slices = section.relocs.slices();
            while let Some(relocs) = slices.next() {
                for reloc in relocs {
                    let kind = classifier.classify(reloc.r_type).map_err(|refusal| {
                        LinkError::UnsupportedRelocation {
                            site: self.site(section, reloc),
                            hint: refusal.hint.map(str::to_string),
                        }
                    })?;
                    if kind.expr == Expr::None {
                        continue;
                    }
                    if section.kind == Some(SectionKind::ZeroFill) {
                        return Err(field_outside(kind, section.size, self.site(section, reloc)));
                    }
                    check_field(kind, reloc, section.size, || self.site(section, reloc))?;
                    match self.apply::<false>(section, reloc, kind, offset, section_image, sites)? {
                        Applied::Direct => {}
                        Applied::ViaStub => stubs_used += 1,
                        Applied::Relaxed => relaxed += 1,
                    }
                }
            }
        }
        Ok((stubs_used, relaxed))
    }

    /// [`Self::apply`] for a relocation against an import, which records its site: out of
    /// line, so that the loop over every relocation stays as lean as before.
    #[inline(never)]
    fn apply_import(
        &self,
        section: &Section,
        reloc: &Reloc,
        kind: &RelocKind,
        section_offset: u64,
        section_image: &mut [u8],
        sites: &mut Vec<ImportSite>,
    ) -> Result<Applied, LinkError> {
        self.apply::<true>(section, reloc, kind, section_offset, section_image, sites)
    }

    /// Computes, checks and encodes one relocation; `IMPORT` once it is known to be against
    /// an import, whose site it records in `sites`.
    fn apply<const IMPORT: bool>(
        &self,
        section: &Section,
        reloc: &Reloc,
        kind: &RelocKind,
        section_offset: u64,
        section_image: &mut [u8],
        sites: &mut Vec<ImportSite>,
    ) -> Result<Applied, LinkError> {
        let symbol =
            self.symbols[reloc.symbol as usize].ok_or_else(|| LinkError::BadRelocation {
                site: self.site(section, reloc),
                detail: "the symbol is not in a loaded section".into(),
            })?;
        if !IMPORT && symbol.external {
            return self.apply_import(section, reloc, kind, section_offset, section_image, sites);
        }
        let a = reloc.addend as i128;
        let p = self.at(section_offset + reloc.place()) as i128;
        let s = match A::undefined_weak_address(kind, p as u64) {
            Some(stand_in)
                if symbol.undefined_weak && matches!(kind.expr, Expr::Pc | Expr::PagePc) =>
            {
                stand_in as i128
            }
            _ => symbol.address as i128,
        };
        let got_base = self.at(self.layout.got.offset) as i128;
        let slot =
            |slots: &std::collections::BTreeMap<(u32, i64), u64>, key| slots.get(&key).copied();
        let got_slot = || {
            slot(
                &self.layout.got_slots,
                A::got_key(reloc.symbol, reloc.addend),
            )
            .map(|n| got_base + (n * self.layout.got_entry_size) as i128)
        };
        let place = reloc.offset as usize;

        if kind.relaxable && symbol.address != 0 {
            if let Some(relax) = A::relax_got(kind, section_image, place) {
                let value = s + a - p + relax.value_bias as i128;
                if kind.range.fits(value, p as u64) {
                    for &(delta, byte) in relax.edits {
                        section_image[(place as i64 + delta) as usize] = byte;
                    }
                    let at = (place as i64 + relax.field_offset) as usize;
                    encode::<A>(kind.field, &mut section_image[at..], value);
                    if IMPORT {
                        self.import_site(
                            sites,
                            section,
                            reloc,
                            kind,
                            section_offset,
                            Some(&relax),
                        )?;
                    }
                    return Ok(Applied::Relaxed);
                }
            }
        }

        // GOT slots of architectures whose slots hold S + A take no second addend.
        let slot_addend = if A::SLOT_INCLUDES_ADDEND { 0 } else { a };
        let g = || self.need_got(section, reloc, got_slot());
        let mut value = match kind.expr {
            Expr::None => return Ok(Applied::Direct),
            Expr::Abs => s + a,
            Expr::Pc => s + a - p,
            Expr::GotSlotPc => g()? + slot_addend - p,
            Expr::GotSlotOffset => g()? - got_base + slot_addend,
            Expr::GotBasePc => got_base + a - p,
            Expr::GotOffset => s + a - got_base,
            Expr::Size => symbol.size as i128 + a,
            Expr::PagePc => page(s + a) - page(p),
            Expr::GotSlot => g()?,
            Expr::GotSlotPagePc => page(g()?) - page(p),
            Expr::GotSlotPageOffset => g()? - page(got_base),
            Expr::GpRel => s + a - A::global_pointer(self.layout, self.base) as i128,
        };
        let mut applied = Applied::Direct;
        let stub_serves = match kind.stub {
            StubUse::Never => false,
            StubUse::Branch => true,
            StubUse::FunctionAddress => symbol.is_function,
        };
        if !kind.range.fits(value, p as u64) && stub_serves {
            if let Some(n) = slot(
                &self.layout.stub_slots,
                A::stub_key(reloc.symbol, reloc.addend),
            ) {
                let stub = self.at(self.layout.stubs.offset + n * self.layout.stub_size) as i128;
                let addend_at_site = if A::SLOT_INCLUDES_ADDEND { 0 } else { a };
                value = match kind.expr {
                    Expr::Pc => stub + addend_at_site - p,
                    Expr::PagePc => page(stub + addend_at_site) - page(p),
                    _ => stub + addend_at_site,
                };
                applied = Applied::ViaStub;
            }
        }
        self.check(section, reloc, kind, value, p as u64, &symbol)?;
        encode::<A>(kind.field, &mut section_image[place..], value);
        if IMPORT && matches!(applied, Applied::Direct) {
            self.import_site(sites, section, reloc, kind, section_offset, None)?;
        }
        Ok(applied)
    }

    /// Records the import site of a relocation just applied directly to an import in the
    /// section at `section_offset` (`relaxed`, if the instruction was), unless its value does
    /// not follow the import.
    fn import_site(
        &self,
        sites: &mut Vec<ImportSite>,
        section: &Section,
        reloc: &Reloc,
        kind: &RelocKind,
        section_offset: u64,
        relaxed: Option<&Relaxed>,
    ) -> Result<(), LinkError> {
        let Some(symbol) = self.symbols[reloc.symbol as usize] else {
            return Ok(());
        };
        let place = section_offset + reloc.place();
        let a = reloc.addend as i128;
        // What of the formula does not move with the import goes into the addend (see
        // `site_value`); the GOT-slot and size kinds do not follow S at all.
        let (offset, addend) = match (relaxed, kind.expr) {
            (Some(relax), _) => (
                place.wrapping_add_signed(relax.field_offset),
                a + relax.value_bias as i128,
            ),
            (None, Expr::Abs | Expr::Pc | Expr::PagePc) => (place, a),
            (None, Expr::GotOffset) => {
                let got = self.at(self.layout.got.offset) as i128;
                (place, a - (got - self.base as i128))
            }
            (None, Expr::GpRel) => {
                let gp = A::global_pointer(self.layout, self.base) as i128;
                (place, a - (gp - self.base as i128))
            }
            _ => return Ok(()),
        };
        let addend = i64::try_from(addend).map_err(|_| LinkError::BadRelocation {
            site: self.site(section, reloc),
            detail: format!(
                "the addend {addend:#x} it would record for rebinding does not fit in 64 bits"
            ),
        })?;
        sites.push(ImportSite {
            import: symbol.import,
            offset,
            addend,
            form: SiteForm::Reloc {
                r_type: reloc.r_type,
                place,
            },
        });
        Ok(())
    }

    fn need_got(
        &self,
        section: &Section,
        reloc: &Reloc,
        slot: Option<i128>,
    ) -> Result<i128, LinkError> {
        slot.ok_or_else(|| LinkError::BadRelocation {
            site: self.site(section, reloc),
            detail: "no GOT slot was laid out for it (layout and object disagree)".into(),
        })
    }

    fn check(
        &self,
        section: &Section,
        reloc: &Reloc,
        kind: &RelocKind,
        value: i128,
        place: u64,
        symbol: &Resolved,
    ) -> Result<(), LinkError> {
        check_value(
            kind,
            value,
            place,
            || self.site(section, reloc),
            || self.range_hint(kind, symbol),
        )
    }

    fn range_hint(&self, kind: &RelocKind, symbol: &Resolved) -> Option<String> {
        if !symbol.external {
            return None;
        }
        let mut hint = format!("the kernel symbol is at {:#x}", symbol.address);
        if kind.needs_low_address || (self.layout.needs_low_address && kind.expr == Expr::Pc) {
            hint.push_str(
                "; the module needs the low 2 GiB for its 32-bit absolute references \
                 (gcc -fno-pic) and cannot reach this variable from there: rebuild the module \
                 with -fPIE (or, where a private snapshot of the variable is safe, let the \
                 kernel copy it)",
            );
        }
        Some(hint)
    }

    fn site(&self, section: &Section, reloc: &Reloc) -> Box<RelocSite> {
        reloc_site(self.object, section.name, reloc)
    }

    /// `.init_array` and `.fini_array` entries, read from the relocated image; numbered
    /// sections by priority first, as a static linker sorts them.
    fn constructors(&self, image: &[u8]) -> (Vec<u64>, Vec<u64>) {
        let mut fini = self.array_entries(image, ".fini_array");
        fini.reverse();
        (self.array_entries(image, ".init_array"), fini)
    }

    fn array_entries(&self, image: &[u8], prefix: &str) -> Vec<u64> {
        let word = (A::KIND.address_bits() / 8) as usize;
        let mut arrays: Vec<(u32, u64, u64)> = self
            .loaded_sections()
            // A zero-fill section holds no function pointers, whatever its name.
            .filter(|(_, section)| section.kind != Some(SectionKind::ZeroFill))
            .filter_map(|(offset, section)| {
                let priority = match section.name.strip_prefix(prefix)? {
                    "" => u32::MAX,
                    rest => rest.strip_prefix('.')?.parse().ok()?,
                };
                Some((priority, offset, section.size))
            })
            .collect();
        arrays.sort_by_key(|&(priority, offset, _)| (priority, offset));
        arrays
            .iter()
            .flat_map(|&(_, offset, size)| {
                image[offset as usize..(offset + size) as usize]
                    .chunks_exact(word)
                    .map(read_word::<A>)
            })
            .filter(|&f| f != 0 && f != u64::MAX && f != u32::MAX as u64)
            .collect()
    }

    /// The symbols the module defines, named, at their addresses: every one but section and
    /// file symbols.
    fn defined_symbols(&self) -> Result<LinkedSymbols, LinkError> {
        let object = self.object;
        let mut sections: Vec<Box<str>> = object.sections.iter().map(|s| s.name.into()).collect();
        let (common, absolute) = (sections.len(), sections.len() + 1);
        sections.extend(["*common*".into(), "*abs*".into()]);
        let name_bytes = object.symbols.iter().map(|s| s.name.len()).sum();
        let mut table = LinkedSymbolsBuilder::new(sections, object.symbols.len(), name_bytes);
        for (symbol, resolved) in object.symbols.iter().zip(&self.symbols) {
            let Some(resolved) = resolved else { continue };
            if symbol.name.is_empty()
                || matches!(symbol.def, SymbolDef::Undefined)
                || matches!(symbol.ty, SymbolType::Section | SymbolType::File)
            {
                continue;
            }
            let section = match symbol.def {
                SymbolDef::Section(index) => index,
                SymbolDef::Common { .. } => common,
                _ => absolute,
            };
            table
                .push(symbol, resolved.address, section)
                .map_err(|_| LinkError::Unsupported {
                    object: object.name.clone(),
                    what: "symbol names of more than 4 GiB in all".into(),
                })?;
        }
        Ok(table.finish())
    }
}

enum Applied {
    Direct,
    ViaStub,
    Relaxed,
}

/// Where `reloc` of `section` is, for an error message.
pub(crate) fn reloc_site(object: &Object, section: &str, reloc: &Reloc) -> Box<RelocSite> {
    Box::new(RelocSite {
        object: object.name.clone(),
        section: section.to_string(),
        offset: reloc.place(),
        symbol: object.symbol_display_name(reloc.symbol),
        reloc: object.arch.reloc_name(reloc.r_type),
    })
}

/// The error for a field that does not lie inside its section of `size` bytes.
pub(crate) fn field_outside(kind: &RelocKind, size: u64, site: Box<RelocSite>) -> LinkError {
    LinkError::BadRelocation {
        site,
        detail: format!(
            "the {}-byte field lies outside the section ({size:#x} bytes)",
            kind.field.width()
        ),
    }
}

/// The field `reloc` fills must lie inside its section of `size` bytes.
pub(crate) fn check_field(
    kind: &RelocKind,
    reloc: &Reloc,
    size: u64,
    site: impl FnOnce() -> Box<RelocSite>,
) -> Result<(), LinkError> {
    let end = reloc.place().checked_add(kind.field.width() as u64);
    if end.is_none_or(|e| e > size) {
        return Err(field_outside(kind, size, site()));
    }
    Ok(())
}

/// The range and alignment check every value passes before it is encoded: an error naming the
/// site (and `hint`'s advice) rather than a silent wrap.
// Always inlined: the loop over every relocation must not call it (and grew past where the
// compiler would inline it on its own once the import path was added).
#[inline(always)]
pub(crate) fn check_value(
    kind: &RelocKind,
    value: i128,
    place: u64,
    site: impl FnOnce() -> Box<RelocSite>,
    hint: impl FnOnce() -> Option<String>,
) -> Result<(), LinkError> {
    if !kind.range.fits(value, place) {
        let (min, max) = kind.range.bounds_at(place);
        return Err(LinkError::OutOfRange {
            site: site(),
            value,
            min,
            max,
            hint: hint(),
        });
    }
    if kind.align > 1 && value % kind.align as i128 != 0 {
        return Err(LinkError::Misaligned {
            site: site(),
            value,
            align: kind.align,
        });
    }
    Ok(())
}

/// Writes `value` into `field` at the start of `place`, replacing every bit the field owns.
pub(crate) fn encode<A: Arch>(field: Field, place: &mut [u8], value: i128) {
    match field {
        Field::Insn(code) => A::encode_insn(code, place, value as u64),
        data => write_data::<A>(place, data, value as u64),
    }
}

/// The data field of a GOT slot: a pointer.
pub(crate) fn got_field<A: Arch>() -> Field {
    if A::GOT_ENTRY_SIZE == 8 {
        Field::Data64
    } else {
        Field::Data32
    }
}

pub(crate) fn write_data<A: Arch>(place: &mut [u8], field: Field, value: u64) {
    let width = field.width();
    if A::BIG_ENDIAN {
        place[..width].copy_from_slice(&value.to_be_bytes()[8 - width..]);
    } else {
        place[..width].copy_from_slice(&value.to_le_bytes()[..width]);
    }
}

fn read_word<A: Arch>(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    if A::BIG_ENDIAN {
        buf[8 - bytes.len()..].copy_from_slice(bytes);
        u64::from_be_bytes(buf)
    } else {
        buf[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(buf)
    }
}
