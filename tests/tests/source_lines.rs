//! Source lines of loaded modules (`Kernel::source_line`) against an independent tool reading
//! the same object: binutils' addr2line for the object's architecture where it is installed,
//! else llvm-symbolizer. Every corpus object of a variant that loads on its own is loaded;
//! at every instruction-sized step through each function of its `.text`, the file and line
//! dlkm gives at the loaded address must be what the tool gives at the offset in the object.
//!
//! The tools read the unrelocated `.o`, applying its debug relocations themselves, where each
//! section starts at 0: a function at offset `off` of `.text` is at `base of .text + off` once
//! loaded. Objects with code in more than one section are left out (their offsets would be
//! ambiguous to the tools).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use dlkm_linker::{Object, SectionKind, SymbolDef, SymbolType};
use dlkm_loader::Kernel;
use dlkm_tests::corpus_dir;

/// An independent reader of DWARF line tables.
struct Oracle {
    program: String,
    llvm: bool,
}

impl Oracle {
    /// The GNU addr2line of `arch` (the platform's own toolchain), else llvm-symbolizer (any
    /// architecture).
    fn find(arch: &str) -> Oracle {
        let runs = |program: &str| {
            Command::new(program)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let gnu: &[&str] = match arch {
            "x86_64" => &["addr2line"],
            "aarch64" => &["aarch64-linux-gnu-addr2line"],
            // Cross binutils for MIPS read both byte orders.
            _ => &["mipsel-linux-gnu-addr2line", "mips-linux-gnu-addr2line"],
        };
        if let Some(program) = gnu.iter().find(|p| runs(p)) {
            return Oracle {
                program: program.to_string(),
                llvm: false,
            };
        }
        let llvm = std::iter::once("llvm-symbolizer".to_string())
            .chain((14..=20).map(|v| format!("llvm-symbolizer-{v}")))
            .find(|p| runs(p));
        let program = llvm.unwrap_or_else(|| {
            panic!(
                "this test needs {} (binutils for {arch}) or llvm-symbolizer (apt-get install \
                 llvm) to check source lines against",
                gnu[0]
            )
        });
        Oracle {
            program,
            llvm: true,
        }
    }

    /// Whether the tool reads `object` right. LLVM 14 finds no line at all in an object made
    /// by `ld -r` whose line table starts past offset 0 of `.text` (the non-x86 `sqlite.o`,
    /// the SQLite amalgamation without -g plus `sqlite_os.c` with it), where binutils'
    /// addr2line and readelf find the lines dlkm finds: those objects are left to binutils.
    fn reads(&self, object: &Path) -> bool {
        let combined = ["zlib.o", "lua.o", "sqlite.o"];
        !self.llvm || !combined.iter().any(|c| object.ends_with(c))
    }

    /// `(file, line)` at each offset of `.text` in `object`; `None` where the tool knows none.
    fn lines(&self, object: &Path, offsets: &[u64]) -> Vec<Option<(String, u32)>> {
        let mut command = Command::new(&self.program);
        if self.llvm {
            command
                .arg(format!("--obj={}", object.display()))
                .args(["--no-inlines", "--functions=none"]);
        } else {
            command.arg("-e").arg(object).args(["-j", ".text"]);
        }
        // Addresses on standard input, one a line: too many for a command line.
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the oracle runs");
        let input: String = offsets.iter().map(|o| format!("{o:#x}\n")).collect();
        let mut stdin = child.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let output = child.wait_with_output().expect("the oracle runs");
        writer.join().expect("writer").expect("write addresses");
        assert!(output.status.success(), "{}: {output:?}", self.program);
        let text = String::from_utf8_lossy(&output.stdout);
        // llvm-symbolizer: `FILE:LINE:COLUMN` and a blank line per address; addr2line:
        // `FILE:LINE` with an optional ` (discriminator N)`.
        let answers: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(answers.len(), offsets.len(), "{}: {text}", self.program);
        answers
            .iter()
            .map(|answer| {
                let answer = answer.split(" (discriminator").next().unwrap_or(answer);
                let location = if self.llvm {
                    answer
                        .rsplit_once(':')
                        .map_or(answer, |(rest, _column)| rest)
                } else {
                    answer
                };
                let (file, line) = location.rsplit_once(':')?;
                let line: u32 = line.parse().ok()?;
                (file != "??" && line != 0).then(|| (file.to_string(), line))
            })
            .collect()
    }
}

/// The top-level objects of `corpus/ARCH/VARIANT`.
fn objects(arch: &str, variant: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(corpus_dir().join(arch).join(variant))
        .expect("the corpus variant")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "o"))
        .collect();
    found.sort();
    found
}

/// The functions of `.text`: name, offset, size; `None` when the object has code elsewhere
/// too, or no line table.
fn text_functions(object: &Object) -> Option<Vec<(String, u64, u64)>> {
    if !object.has_line_table() {
        return None;
    }
    let code: Vec<usize> = (0..object.sections.len())
        .filter(|&i| object.sections[i].kind == Some(SectionKind::Text))
        .filter(|&i| object.sections[i].size > 0)
        .collect();
    let [text] = code[..] else { return None };
    if object.sections[text].name != ".text" {
        return None;
    }
    let functions = object
        .symbols
        .iter()
        .filter(|s| s.ty == SymbolType::Function && s.def == SymbolDef::Section(text))
        .map(|s| (s.name.to_string(), s.value, s.size.max(1)))
        .collect();
    Some(functions)
}

/// What a variant's comparison covered.
#[derive(Default, Debug)]
struct Covered {
    objects: usize,
    addresses: usize,
    with_line: usize,
}

/// Loads every object of the variant that loads on its own into `kernel` and compares.
fn compare_variant(kernel: &Kernel, arch: &str, variant: &str) -> Covered {
    let oracle = Oracle::find(arch);
    let step = if arch == "x86_64" { 1 } else { 4 };
    let root = corpus_dir().join("..");
    let mut covered = Covered::default();
    let mut problems = Vec::new();
    for path in objects(arch, variant) {
        let bytes = std::fs::read(&path).expect("read the object");
        let object = Object::parse(&path.display().to_string(), &bytes).expect("parse");
        let Some(functions) = text_functions(&object) else {
            continue;
        };
        if !oracle.reads(&path) {
            continue;
        }
        // Some need others loaded first, or the embedder's exports: not this test's subject.
        let Ok(id) = kernel.load_path(&path) else {
            continue;
        };
        assert!(kernel.has_source_lines(id), "{}", path.display());
        covered.objects += 1;
        let mut offsets = Vec::new();
        let mut loaded = Vec::new();
        for (name, value, size) in &functions {
            let address = kernel.symbol_address(id, name).expect("a loaded function");
            for delta in (0..*size).step_by(step) {
                offsets.push(value + delta);
                loaded.push(address + delta);
            }
        }
        let expected = oracle.lines(&path, &offsets);
        for ((offset, address), theirs) in offsets.iter().zip(&loaded).zip(expected) {
            let ours = kernel
                .source_line(*address)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            covered.addresses += 1;
            let agree = match (&ours, &theirs) {
                (None, None) => true,
                (Some(ours), Some((file, line))) => {
                    covered.with_line += 1;
                    // clang 14's DWARF 5 names the compilation directory (`corpus`) both as
                    // DW_AT_comp_dir and as the line table's directory 0; binutils and LLVM 14
                    // join the two (`corpus/corpus/src/…`), addr2line takes directory 0 for
                    // what it is. Either way the file named is the corpus source.
                    ours.line == *line
                        && (ours.file == *file || file.ends_with(&format!("/{}", ours.file)))
                        && root.join(&ours.file).is_file()
                }
                _ => false,
            };
            if !agree && problems.len() < 20 {
                problems.push(format!(
                    "{} .text+{offset:#x} (loaded at {address:#x}): dlkm {ours:?}, {} {theirs:?}",
                    path.display(),
                    oracle.program
                ));
            }
        }
        kernel.unload(id).expect("unload");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    eprintln!(
        "{arch}/{variant}: {covered:?} agree with {}",
        oracle.program
    );
    // Every variant has at least the feature objects that load alone, each a few functions
    // built with -g.
    assert!(covered.objects >= 5, "{arch}/{variant}: {covered:?}");
    assert!(covered.with_line >= 500, "{arch}/{variant}: {covered:?}");
    covered
}

/// The host's corpus on the native machine.
#[test]
fn native_source_lines_match_an_independent_reader() {
    let arch = dlkm_linker::ArchKind::host().expect("a host dlkm runs on");
    let variants: &[&str] = match arch.name() {
        "x86_64" => &["gcc-pie", "gcc-nopic", "clang"],
        _ => &["gcc-nopic", "gcc-pie", "clang"],
    };
    for variant in variants {
        let kernel = Kernel::native().expect("a native kernel");
        compare_variant(&kernel, arch.name(), variant);
    }
}

#[cfg(feature = "emulated")]
fn compare_emulated(arch: &str, variants: &[&str]) {
    for variant in variants {
        let kind = dlkm_linker::ArchKind::from_name(arch).expect("an architecture");
        let kernel = Kernel::emulated(kind).expect("an emulated kernel");
        compare_variant(&kernel, arch, variant);
    }
}

#[cfg(feature = "emulated")]
#[test]
fn aarch64_source_lines_match_an_independent_reader() {
    compare_emulated("aarch64", &["gcc-nopic", "clang"]);
}

#[cfg(feature = "emulated")]
#[test]
fn mips_source_lines_match_an_independent_reader() {
    compare_emulated("mips", &["gcc", "clang"]);
}

#[cfg(feature = "emulated")]
#[test]
fn mipsel_source_lines_match_an_independent_reader() {
    compare_emulated("mipsel", &["gcc-longcalls", "clang"]);
}

/// Nothing to say outside modules and in a module built without -g; asking is harmless.
#[test]
fn no_lines_where_there_is_no_debug_information() {
    let kernel = Kernel::native().expect("a native kernel");
    let dir = dlkm_tests::host_corpus_dir().join("gcc-pie");
    let zlib = kernel.load_path(dir.join("zlib.o")).expect("load zlib");
    assert!(!kernel.has_source_lines(zlib));
    let crc32 = kernel.symbol_address(zlib, "crc32").expect("crc32");
    assert_eq!(kernel.source_line(crc32).expect("no error"), None);
    assert_eq!(kernel.source_line(0x10).expect("no error"), None);
    let funcptr = kernel.load_path(dir.join("funcptr.o")).expect("load");
    let info = kernel.module_info(funcptr).expect("loaded");
    // The data after the code is covered by no line.
    let data = info
        .sections
        .iter()
        .find(|s| s.name == ".data")
        .expect(".data");
    assert_eq!(kernel.source_line(data.address).expect("no error"), None);
    // Unloaded, its addresses are nobody's.
    let address = kernel.symbol_address(funcptr, "fp_swap").expect("fp_swap");
    assert!(kernel.source_line(address).expect("no error").is_some());
    kernel.unload(funcptr).expect("unload");
    assert_eq!(kernel.source_line(address).expect("no error"), None);
}

/// A module whose debug information dlkm cannot relocate loads and runs as ever; only its
/// source lines are refused, with the reason (here a PC-relative relocation patched into
/// `.rela.debug_info`, which the linker does not apply to debug information).
#[cfg(target_arch = "x86_64")]
#[test]
fn unreadable_debug_information_is_a_typed_error_and_nothing_else() {
    use object::read::{Object as _, ObjectSection as _};

    let path = dlkm_tests::host_corpus_dir().join("gcc-pie/funcptr.o");
    let mut bytes = std::fs::read(&path).expect("read");
    let (start, size) = {
        let file = object::File::parse(&*bytes).expect("parse");
        let rela = file
            .section_by_name(".rela.debug_info")
            .expect(".rela.debug_info");
        rela.file_range().expect("in the file")
    };
    // Elf64_Rela: r_offset, r_info (type in the low 32 bits), r_addend.
    let entry = (start as usize..(start + size) as usize)
        .step_by(24)
        .find(|&at| bytes[at + 8..at + 12] == 1u32.to_le_bytes()) // R_X86_64_64
        .expect("an R_X86_64_64 in .rela.debug_info");
    bytes[entry + 8..entry + 12].copy_from_slice(&2u32.to_le_bytes()); // R_X86_64_PC32

    let kernel = Kernel::native().expect("a native kernel");
    let id = kernel
        .load_bytes("funcptr", &bytes)
        .expect("it loads as ever");
    assert!(kernel.has_source_lines(id));
    let address = kernel.symbol_address(id, "fp_swap").expect("fp_swap");
    let error = kernel.source_line(address).expect_err("no source lines");
    assert!(
        matches!(&error, dlkm_loader::LoadError::DebugInfo { module, detail }
            if module == "funcptr" && detail.contains("R_X86_64_PC32") && detail.contains(".debug_info")),
        "{error}"
    );
    // Asked again, the same answer (kept, not rebuilt).
    assert_eq!(
        kernel.source_line(address).expect_err("again").to_string(),
        error.to_string()
    );
    // The module works.
    let sum = kernel.call_symbol("fp_table_sum", &[dlkm_loader::Arg::Int(1)]);
    assert!(sum.is_ok(), "{sum:?}");
    // msyms says where the address is, and why there is no line.
    let answer = msyms::lines::describe(&kernel, address, None);
    assert!(
        answer.starts_with(&format!(
            "{address:#x} funcptr:fp_swap+0x0 (no source lines: "
        )),
        "{answer}"
    );
}
