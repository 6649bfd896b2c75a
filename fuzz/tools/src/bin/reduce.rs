//! Shrinks an ELF object that crashes a fuzz target, keeping the crash.
//!
//! `cargo fuzz tmin` deletes and changes bytes, which in an ELF file moves every offset after
//! the change: the object stops parsing and the crash is gone, so it rarely gets far. This tool
//! works on the object's structure instead: it reads the sections, symbols and relocations,
//! writes them back with `object::write`, and drops relocations, symbols and sections, shortens
//! section contents and names, for as long as the crash stays.
//!
//! Usage: `reduce IN OUT -- COMMAND [ARGS...]`. The command gets a candidate file as its last
//! argument (a fuzz target's binary, say, built from the linker that crashes); a candidate
//! crashes when the command fails with the same `panicked at FILE:LINE:COL` as IN.

use std::path::{Path, PathBuf};
use std::process::Command;

use object::elf;
use object::read::elf::{ElfFile, FileHeader, SectionHeader};
use object::read::{Object as _, ObjectSection as _, ObjectSymbol as _};
use object::write::{self, Relocation, SectionId, SymbolId, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, FileFlags, RelocationFlags, RelocationTarget,
    SectionFlags, SectionKind, SymbolFlags, SymbolKind, SymbolScope,
};

#[derive(Debug, Clone)]
struct Model {
    architecture: Architecture,
    endian: Endianness,
    e_flags: u32,
    sections: Vec<Sec>,
    symbols: Vec<Sym>,
}

#[derive(Debug, Clone)]
struct Sec {
    name: Vec<u8>,
    sh_type: u32,
    sh_flags: u64,
    align: u64,
    data: Vec<u8>,
    /// For SHT_NOBITS.
    size: u64,
    relocs: Vec<Rel>,
}

#[derive(Debug, Clone)]
struct Rel {
    offset: u64,
    /// Index into `Model::symbols`.
    symbol: usize,
    r_type: u32,
    addend: i64,
}

#[derive(Debug, Clone)]
struct Sym {
    name: Vec<u8>,
    value: u64,
    size: u64,
    st_info: u8,
    st_other: u8,
    def: Def,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Def {
    Undefined,
    Absolute,
    Common,
    /// Index into `Model::sections`.
    Section(usize),
}

fn read(data: &[u8]) -> Result<Model, String> {
    match object::File::parse(data).map_err(|e| e.to_string())? {
        object::File::Elf32(file) => read_elf(&file),
        object::File::Elf64(file) => read_elf(&file),
        _ => Err("not an ELF file".into()),
    }
}

fn read_elf<Elf: FileHeader<Endian = Endianness>>(
    file: &ElfFile<'_, Elf>,
) -> Result<Model, String> {
    let endian = file.endian();
    let e_flags = file.elf_header().e_flags(endian);
    // Input section index -> model section index, for the sections kept (not the symbol,
    // string and relocation tables, which the writer makes anew).
    let mut section_map = std::collections::HashMap::new();
    let mut sections = Vec::new();
    for section in file.sections() {
        let header = section.elf_section_header();
        let sh_type = header.sh_type(endian);
        if matches!(
            sh_type,
            elf::SHT_NULL
                | elf::SHT_SYMTAB
                | elf::SHT_STRTAB
                | elf::SHT_REL
                | elf::SHT_RELA
                | elf::SHT_GROUP
                | elf::SHT_SYMTAB_SHNDX
        ) {
            continue;
        }
        section_map.insert(section.index().0, sections.len());
        let nobits = sh_type == elf::SHT_NOBITS;
        sections.push(Sec {
            name: section.name_bytes().map_err(|e| e.to_string())?.to_vec(),
            sh_type,
            sh_flags: header.sh_flags(endian).into(),
            align: section.align().max(1),
            data: if nobits {
                Vec::new()
            } else {
                section.data().map_err(|e| e.to_string())?.to_vec()
            },
            size: section.size(),
            relocs: Vec::new(),
        });
    }
    let mut symbol_map = std::collections::HashMap::new();
    let mut symbols = Vec::new();
    for symbol in file.symbols() {
        let object::SymbolFlags::Elf { st_info, st_other } = symbol.flags() else {
            return Err("a symbol without ELF flags".into());
        };
        let def = match symbol.section() {
            object::SymbolSection::Undefined | object::SymbolSection::None => Def::Undefined,
            object::SymbolSection::Absolute => Def::Absolute,
            object::SymbolSection::Common => Def::Common,
            object::SymbolSection::Section(index) => match section_map.get(&index.0) {
                Some(&s) => Def::Section(s),
                None => continue,
            },
            _ => return Err("a symbol in an unusual section".into()),
        };
        if st_info & 0xf == elf::STT_FILE {
            continue;
        }
        symbol_map.insert(symbol.index().0, symbols.len());
        symbols.push(Sym {
            name: symbol.name_bytes().map_err(|e| e.to_string())?.to_vec(),
            value: symbol.address(),
            size: symbol.size(),
            st_info,
            st_other,
            def,
        });
    }
    for section in file.sections() {
        let Some(&index) = section_map.get(&section.index().0) else {
            continue;
        };
        for (offset, reloc) in section.relocations() {
            let RelocationFlags::Elf { r_type } = reloc.flags() else {
                return Err("a relocation without ELF flags".into());
            };
            let RelocationTarget::Symbol(symbol) = reloc.target() else {
                return Err("a relocation without a symbol".into());
            };
            let Some(&symbol) = symbol_map.get(&symbol.0) else {
                return Err("a relocation against a symbol that is not kept".into());
            };
            sections[index].relocs.push(Rel {
                offset,
                symbol,
                r_type,
                addend: if reloc.has_implicit_addend() {
                    0
                } else {
                    reloc.addend()
                },
            });
        }
    }
    Ok(Model {
        architecture: file.architecture(),
        endian,
        e_flags,
        sections,
        symbols,
    })
}

fn write(model: &Model) -> Result<Vec<u8>, String> {
    let mut obj = write::Object::new(BinaryFormat::Elf, model.architecture, model.endian);
    obj.flags = FileFlags::Elf {
        os_abi: 0,
        abi_version: 0,
        e_flags: model.e_flags,
    };
    let ids: Vec<SectionId> = model
        .sections
        .iter()
        .map(|s| {
            let kind = if s.sh_type == elf::SHT_NOBITS {
                SectionKind::UninitializedData
            } else {
                SectionKind::Elf(s.sh_type)
            };
            let id = obj.add_section(Vec::new(), s.name.clone(), kind);
            if s.sh_type == elf::SHT_NOBITS {
                obj.append_section_bss(id, s.size, s.align);
            } else {
                obj.set_section_data(id, s.data.clone(), s.align);
            }
            obj.section_mut(id).flags = SectionFlags::Elf {
                sh_flags: s.sh_flags,
            };
            id
        })
        .collect();
    let symbols: Vec<SymbolId> = model
        .symbols
        .iter()
        .map(|s| {
            let section = match s.def {
                Def::Undefined => SymbolSection::Undefined,
                Def::Absolute => SymbolSection::Absolute,
                Def::Common => SymbolSection::Common,
                Def::Section(i) => SymbolSection::Section(ids[i]),
            };
            let binding = s.st_info >> 4;
            let kind = match s.st_info & 0xf {
                elf::STT_SECTION => SymbolKind::Section,
                elf::STT_FUNC => SymbolKind::Text,
                elf::STT_OBJECT => SymbolKind::Data,
                _ => SymbolKind::Unknown,
            };
            obj.add_symbol(write::Symbol {
                name: s.name.clone(),
                value: s.value,
                size: s.size,
                kind,
                scope: if binding == elf::STB_LOCAL {
                    SymbolScope::Compilation
                } else {
                    SymbolScope::Dynamic
                },
                weak: binding == elf::STB_WEAK,
                section,
                flags: SymbolFlags::Elf {
                    st_info: s.st_info,
                    st_other: s.st_other,
                },
            })
        })
        .collect();
    for (section, id) in model.sections.iter().zip(&ids) {
        for r in &section.relocs {
            obj.add_relocation(
                *id,
                Relocation {
                    offset: r.offset,
                    symbol: symbols[r.symbol],
                    addend: r.addend,
                    flags: RelocationFlags::Elf { r_type: r.r_type },
                },
            )
            .map_err(|e| e.to_string())?;
        }
    }
    obj.write().map_err(|e| e.to_string())
}

/// Runs the command on a candidate; the `panicked at` line when it crashes.
struct Oracle {
    command: Vec<String>,
    scratch: PathBuf,
    runs: usize,
}

impl Oracle {
    fn signature(&mut self, bytes: &[u8]) -> Option<String> {
        self.runs += 1;
        std::fs::write(&self.scratch, bytes).expect("write the candidate");
        let output = Command::new(&self.command[0])
            .args(&self.command[1..])
            .arg(&self.scratch)
            .output()
            .expect("run the command");
        if output.status.success() {
            return None;
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        stderr
            .lines()
            .find_map(|l| l.split_once("panicked at ").map(|(_, at)| at.to_string()))
            .or_else(|| Some("a crash without a panic".into()))
    }
}

struct Reducer {
    oracle: Oracle,
    want: String,
    best: Model,
    best_bytes: Vec<u8>,
}

impl Reducer {
    /// Keeps `candidate` if it still crashes the same way and is no larger.
    fn try_model(&mut self, candidate: Model) -> bool {
        let Ok(bytes) = write(&candidate) else {
            return false;
        };
        if bytes.len() > self.best_bytes.len() {
            return false;
        }
        if self.oracle.signature(&bytes).as_deref() == Some(self.want.as_str()) {
            self.best = candidate;
            self.best_bytes = bytes;
            true
        } else {
            false
        }
    }

    /// Removes the relocations for which `keep` is false, by halves, then quarters, ...
    fn relocations(&mut self) -> bool {
        let mut progress = false;
        let count = |m: &Model| m.sections.iter().map(|s| s.relocs.len()).sum::<usize>();
        let mut chunk = count(&self.best).max(1);
        while chunk >= 1 {
            let mut start = 0;
            while start < count(&self.best) {
                let mut candidate = self.best.clone();
                let mut n = 0;
                for section in &mut candidate.sections {
                    section.relocs.retain(|_| {
                        let keep = !(start..start + chunk).contains(&n);
                        n += 1;
                        keep
                    });
                }
                if self.try_model(candidate) {
                    progress = true;
                } else {
                    start += chunk;
                }
            }
            chunk /= 2;
        }
        progress
    }

    fn symbols(&mut self) -> bool {
        let mut progress = false;
        let mut index = 0;
        while index < self.best.symbols.len() {
            let mut candidate = self.best.clone();
            remove_symbol(&mut candidate, index);
            if self.try_model(candidate) {
                progress = true;
            } else {
                index += 1;
            }
        }
        progress
    }

    fn sections(&mut self) -> bool {
        let mut progress = false;
        let mut index = 0;
        while index < self.best.sections.len() {
            let mut candidate = self.best.clone();
            remove_section(&mut candidate, index);
            if self.try_model(candidate) {
                progress = true;
            } else {
                index += 1;
            }
        }
        progress
    }

    /// Shorter section contents (halving), zeroed contents, shorter names.
    fn contents(&mut self) -> bool {
        let mut progress = false;
        for index in 0..self.best.sections.len() {
            loop {
                let section = &self.best.sections[index];
                if section.data.is_empty() {
                    break;
                }
                let mut candidate = self.best.clone();
                let data = &mut candidate.sections[index].data;
                data.truncate(data.len() / 2);
                candidate.sections[index].size = data.len() as u64;
                if !self.try_model(candidate) {
                    break;
                }
                progress = true;
            }
            if self.best.sections[index].data.iter().any(|&b| b != 0) {
                let mut candidate = self.best.clone();
                candidate.sections[index].data.fill(0);
                progress |= self.try_model(candidate);
            }
        }
        for index in 0..self.best.symbols.len() {
            if self.best.symbols[index].name.len() > 1 {
                let mut candidate = self.best.clone();
                candidate.symbols[index].name = format!("s{index}").into_bytes();
                progress |= self.try_model(candidate);
            }
        }
        progress
    }
}

fn remove_symbol(model: &mut Model, index: usize) {
    model.symbols.remove(index);
    for section in &mut model.sections {
        section.relocs.retain(|r| r.symbol != index);
        for r in &mut section.relocs {
            if r.symbol > index {
                r.symbol -= 1;
            }
        }
    }
}

fn remove_section(model: &mut Model, index: usize) {
    model.sections.remove(index);
    let mut s = model.symbols.len();
    while s > 0 {
        s -= 1;
        if model.symbols[s].def == Def::Section(index) {
            remove_symbol(model, s);
        }
    }
    for symbol in &mut model.symbols {
        if let Def::Section(i) = &mut symbol.def {
            if *i > index {
                *i -= 1;
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dash = args.iter().position(|a| a == "--");
    let (Some(dash), true) = (dash, args.len() >= 5) else {
        eprintln!("usage: reduce IN OUT -- COMMAND [ARGS...]");
        std::process::exit(2);
    };
    let (input, output) = (Path::new(&args[1]), Path::new(&args[2]));
    let original = std::fs::read(input).expect("read the input");
    let mut oracle = Oracle {
        command: args[dash + 1..].to_vec(),
        scratch: std::env::temp_dir().join(format!("reduce-{}.o", std::process::id())),
        runs: 0,
    };
    let want = oracle
        .signature(&original)
        .expect("the input does not crash the command");
    eprintln!("reduce: the input crashes at {want}");
    let model = read(&original).expect("the input does not parse as ELF");
    let bytes = write(&model).expect("the input cannot be written back");
    if oracle.signature(&bytes).as_deref() != Some(want.as_str()) {
        eprintln!("reduce: written back, the input no longer crashes the same way; giving up");
        std::process::exit(1);
    }
    let mut reducer = Reducer {
        oracle,
        want,
        best: model,
        best_bytes: bytes,
    };
    loop {
        let mut progress = reducer.relocations();
        progress |= reducer.sections();
        progress |= reducer.symbols();
        progress |= reducer.contents();
        if !progress {
            break;
        }
    }
    std::fs::write(output, &reducer.best_bytes).expect("write the output");
    let _ = std::fs::remove_file(&reducer.oracle.scratch);
    eprintln!(
        "reduce: {} -> {} bytes in {} runs: {} sections, {} symbols, {} relocations",
        original.len(),
        reducer.best_bytes.len(),
        reducer.oracle.runs,
        reducer.best.sections.len(),
        reducer.best.symbols.len(),
        reducer
            .best
            .sections
            .iter()
            .map(|s| s.relocs.len())
            .sum::<usize>()
    );
}
