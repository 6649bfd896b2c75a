//! `mutants --seed N --count K --msyms PATH [--timeout SECS] [--jobs J] [--out DIR] OBJECT...`:
//! seeded mutants of relocatable objects, run through the real `msyms` binary.
//!
//! For each OBJECT, K mutants are made deterministically from the seed, the object's bytes and
//! the mutant's number: bit flips, bytes and integers overwritten with interesting values
//! (0, 0xff, 0x7f, 0x80, 0x7fffffff, the file's length, ...), truncation, ranges duplicated,
//! zeroed, deleted or appended, and ELF-aware ones: a field of the ELF header, of a random
//! section header, symbol entry or relocation entry set to an interesting value (or near its
//! old one), the bytes a relocation patches, a byte of a string table. One to three of these
//! per mutant. Each mutant is run twice, with a timeout:
//!
//! - `msyms link MUTANT --arch ARCH --base 0x10000000 --map M -o I --defsym NAME=ADDR...` (the
//!   pure linker; each undefined symbol of the original is given an address near the image for
//!   even mutants, far from it for odd ones, so that links get past resolution to relocation),
//!   and
//! - `msyms --arch ARCH -c 'load MUTANT'` (parse, lay out, place, link, protect, constructors
//!   and `_load`).
//!
//! ARCH is the original object's architecture (`x86_64`, `aarch64`, `mips`, `mipsel`; a
//! mutant may claim another, which msyms must then refuse). Every run must end with status 0,
//! or with status 1 and a line starting `error:` on stderr; anything else is a failure: another
//! status, death by a signal, a panic message (even from another thread, even with status 0 or
//! 1), status 1 without an `error:` line, status 0 of `link` without the map and image, or no
//! end within the timeout (a hang). Failing mutants are copied to the output directory with a
//! `.txt` beside each saying how it was made, the command, and what msyms printed.
//!
//! Where `load` runs: a successful `load` runs the module's own code (`.init_array`, `_load`,
//! and `.fini_array` when msyms exits), and what a mutant's code does is the module's
//! responsibility, not the loader's. So `load` runs in the emulated machine wherever it can:
//! for every architecture but the host's, whose modules msyms always runs natively (on an
//! x86_64 host, x86_64 objects: there is no emulated x86_64).
//!
//! - Emulated: module code that faults is stopped with a report (an `error:` line), and code
//!   that spins is stopped by the machine's instruction budget (4·10⁹ instructions: 30 to 50 s
//!   on a 2-core machine), which can be longer than the timeout. A load that times out, of a
//!   mutant that gives the loader code to run (below), is run once more with ten times the
//!   timeout; if it then ends as every run must, it is counted as **module** (the module's
//!   code ran long), otherwise as a failure. Every other abnormal end is the loader's.
//! - Native (the host's architecture): a mutant's code runs in msyms's own process, where it
//!   can kill the process or spin forever. Such an end (a signal or the timeout, with no panic
//!   message) is counted as **module**, not as a failure, only if the mutant gives the loader
//!   code to run. The same end of a mutant with no code to run is a failure.
//!
//! "Gives the loader code to run" is decided by the linker's own parse of the mutant (the one
//! msyms uses): a loaded, non-empty `.init_array*` or `.fini_array*` section, or a defined
//! symbol whose name ends in `_load` (which covers `_load` and every `PREFIX_load`). The
//! module column keeps these ends in view; mutants of plain library objects (no constructors,
//! no `_load`) cannot have any.
//!
//! The exit status is 1 if any run failed, 2 on a usage error. `scripts/mutants.sh` builds
//! msyms and runs this on objects compiled on the fly.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use object::read::elf::{FileHeader, SectionHeader};
use object::{elf, Endianness};

const BASE: &str = "0x10000000";

fn usage() -> ExitCode {
    eprintln!(
        "usage: mutants --seed N --count K --msyms PATH [--timeout SECS] [--jobs J] [--out DIR] \
         OBJECT..."
    );
    ExitCode::from(2)
}

struct Options {
    seed: u64,
    count: usize,
    msyms: PathBuf,
    timeout: Duration,
    jobs: usize,
    out: PathBuf,
    objects: Vec<PathBuf>,
}

fn parse_options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut seed = None;
    let mut count = None;
    let mut msyms = None;
    let mut timeout = Duration::from_secs(60);
    let mut jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = PathBuf::from("mutant-failures");
    let mut objects = Vec::new();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--seed" => seed = Some(parse_u64(&value("--seed")?)?),
            "--count" => count = Some(parse_u64(&value("--count")?)? as usize),
            "--msyms" => msyms = Some(PathBuf::from(value("--msyms")?)),
            "--timeout" => {
                let secs: f64 = value("--timeout")?
                    .parse()
                    .map_err(|e| format!("--timeout: {e}"))?;
                timeout = Duration::from_secs_f64(secs);
            }
            "--jobs" => jobs = (parse_u64(&value("--jobs")?)? as usize).max(1),
            "--out" => out = PathBuf::from(value("--out")?),
            "-h" | "--help" => return Err(String::new()),
            a if a.starts_with('-') => return Err(format!("unknown option {a}")),
            _ => objects.push(PathBuf::from(arg)),
        }
    }
    Ok(Options {
        seed: seed.ok_or("--seed is required")?,
        count: count.ok_or("--count is required")?,
        msyms: msyms.ok_or("--msyms is required")?,
        timeout,
        jobs,
        out,
        objects: if objects.is_empty() {
            return Err("no OBJECT".into());
        } else {
            objects
        },
    })
}

fn parse_u64(text: &str) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|e| format!("`{text}`: {e}"))
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            return usage();
        }
    };
    match run(&options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every mutant of every object; `Ok(false)` if any failed.
fn run(options: &Options) -> Result<bool, String> {
    // msyms runs in a directory of its own.
    let msyms = options
        .msyms
        .canonicalize()
        .map_err(|e| format!("{}: {e}", options.msyms.display()))?;
    let options = &Options {
        msyms,
        objects: options.objects.clone(),
        out: options.out.clone(),
        ..*options
    };
    let mut originals = Vec::new();
    for path in &options.objects {
        let data = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let arch = elf_arch(&data).ok_or_else(|| {
            format!(
                "{}: not an x86_64, aarch64, mips or mipsel ELF object",
                path.display()
            )
        })?;
        let stem = path
            .file_stem()
            .map_or("object".into(), |s| s.to_string_lossy().into_owned());
        let undefined = undefined_symbols(path, &data)?;
        originals.push(Original {
            path: path.clone(),
            stem,
            arch,
            data,
            undefined,
        });
    }
    let work = std::env::temp_dir().join(format!("dlkm-mutants-{}", std::process::id()));
    fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let host = host_arch();
    println!(
        "mutants: seed {}, {} per object, timeout {:?}; load runs {}",
        options.seed,
        options.count,
        options.timeout,
        match host {
            Some(h) => format!("{h} objects natively, the others emulated"),
            None => "every object emulated".into(),
        }
    );

    let jobs: Vec<(usize, usize)> = (0..originals.len())
        .flat_map(|o| (0..options.count).map(move |i| (o, i)))
        .collect();
    let next = AtomicUsize::new(0);
    let tallies = Mutex::new(vec![Tally::default(); originals.len()]);
    let failed_any = Mutex::new(false);
    std::thread::scope(|scope| {
        for worker in 0..options.jobs {
            let dir = work.join(format!("j{worker}"));
            let (jobs, next, tallies, originals, failed_any) =
                (&jobs, &next, &tallies, &originals, &failed_any);
            scope.spawn(move || {
                let _ = fs::create_dir_all(&dir);
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(o, index)) = jobs.get(n) else {
                        break;
                    };
                    let original = &originals[o];
                    let outcome = run_mutant(options, original, index, &dir, host);
                    let mut tallies = tallies.lock().unwrap_or_else(|e| e.into_inner());
                    tallies[o].add(&outcome);
                    if outcome.load.class == Class::ModuleFault {
                        report_module(options, original, index, &outcome);
                    }
                    if !outcome.failures.is_empty() {
                        *failed_any.lock().unwrap_or_else(|e| e.into_inner()) = true;
                        drop(tallies);
                        report_failure(options, original, index, &outcome);
                    }
                }
            });
        }
    });
    let _ = fs::remove_dir_all(&work);
    let tallies = tallies.into_inner().unwrap_or_else(|e| e.into_inner());
    print_summary(&originals, &tallies, host);
    Ok(!failed_any.into_inner().unwrap_or_else(|e| e.into_inner()))
}

struct Original {
    path: PathBuf,
    stem: String,
    arch: &'static str,
    data: Vec<u8>,
    /// The undefined symbols of the original, which `link` is given by `--defsym`.
    undefined: Vec<String>,
}

/// The names of the undefined symbols of an (unmutated) object, by the linker's parse.
fn undefined_symbols(path: &Path, data: &[u8]) -> Result<Vec<String>, String> {
    let object = dlkm_linker::Object::parse(&path.display().to_string(), data)
        .map_err(|e| format!("the original does not parse: {e}"))?;
    let mut names: Vec<String> = object
        .symbols
        .iter()
        .filter(|s| s.def == dlkm_linker::SymbolDef::Undefined && !s.name.is_empty())
        .map(|s| s.name.to_string())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Where `link` puts the undefined symbols: near the image (every reference reaches) for even
/// mutants, far (calls need stubs, some references cannot reach) for odd ones.
fn defsym_address(arch: &str, index: usize, symbol: usize) -> u64 {
    let near = index % 2 == 0;
    let start: u64 = match (near, arch) {
        (true, _) => 0x1800_0000,
        (false, "x86_64" | "aarch64") => 0x7f12_3456_0000,
        (false, _) => 0x7100_0000,
    };
    start + 16 * symbol as u64
}

/// The msyms `--arch` of an ELF object, from its header.
fn elf_arch(data: &[u8]) -> Option<&'static str> {
    let layout = ElfLayout::read(data)?;
    match (layout.machine, layout.is64, layout.big_endian) {
        (elf::EM_X86_64, true, false) => Some("x86_64"),
        (elf::EM_AARCH64, true, false) => Some("aarch64"),
        (elf::EM_MIPS, false, true) => Some("mips"),
        (elf::EM_MIPS, false, false) => Some("mipsel"),
        _ => None,
    }
}

/// The architecture whose modules msyms runs natively.
fn host_arch() -> Option<&'static str> {
    if cfg!(target_arch = "x86_64") {
        Some("x86_64")
    } else if cfg!(target_arch = "aarch64") {
        Some("aarch64")
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Outcomes

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Status0,
    Status1,
    ModuleFault,
    Fail,
}

struct RunResult {
    command: String,
    class: Class,
    reason: String,
    panicked: bool,
    timed_out: bool,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

struct Outcome {
    mutations: Vec<String>,
    data: Vec<u8>,
    link: RunResult,
    load: RunResult,
    failures: Vec<&'static str>,
}

#[derive(Default, Clone)]
struct Tally {
    mutants: usize,
    link: [usize; 4],
    load: [usize; 4],
    failed_mutants: usize,
    slowest: Duration,
}

impl Tally {
    fn add(&mut self, outcome: &Outcome) {
        self.mutants += 1;
        self.link[outcome.link.class as usize] += 1;
        self.load[outcome.load.class as usize] += 1;
        if !outcome.failures.is_empty() {
            self.failed_mutants += 1;
        }
        self.slowest = self
            .slowest
            .max(outcome.link.elapsed)
            .max(outcome.load.elapsed);
    }
}

fn print_summary(originals: &[Original], tallies: &[Tally], host: Option<&str>) {
    println!();
    println!(
        "{:<28} {:<7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>8} {:>8}",
        "object",
        "arch",
        "mutants",
        "link:0",
        "link:1",
        "load:0",
        "load:1",
        "module",
        "failures",
        "slowest"
    );
    let mut total = Tally::default();
    for (original, tally) in originals.iter().zip(tallies) {
        let name = original
            .path
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let load_where = if Some(original.arch) == host {
            "native"
        } else {
            "emul"
        };
        println!(
            "{:<28} {:<7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>8} {:>7.1}s  (load {load_where})",
            name,
            original.arch,
            tally.mutants,
            tally.link[Class::Status0 as usize],
            tally.link[Class::Status1 as usize],
            tally.load[Class::Status0 as usize],
            tally.load[Class::Status1 as usize],
            tally.load[Class::ModuleFault as usize],
            tally.failed_mutants,
            tally.slowest.as_secs_f64(),
        );
        total.mutants += tally.mutants;
        for k in 0..4 {
            total.link[k] += tally.link[k];
            total.load[k] += tally.load[k];
        }
        total.failed_mutants += tally.failed_mutants;
        total.slowest = total.slowest.max(tally.slowest);
    }
    println!(
        "{:<28} {:<7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>8} {:>7.1}s",
        "total",
        "",
        total.mutants,
        total.link[Class::Status0 as usize],
        total.link[Class::Status1 as usize],
        total.load[Class::Status0 as usize],
        total.load[Class::Status1 as usize],
        total.load[Class::ModuleFault as usize],
        total.failed_mutants,
        total.slowest.as_secs_f64(),
    );
    println!(
        "(link:N/load:N: runs ending with status N (1 with an `error:` line); module: loads of \
         mutants with code to run that ended by a signal or a timeout natively, or ran past the \
         timeout emulated and then ended normally; failures: mutants with any other end)"
    );
}

/// Writes the mutant and a `.txt` saying how it was made and what msyms did into `dir`; says
/// where.
fn save_mutant(
    options: &Options,
    original: &Original,
    index: usize,
    outcome: &Outcome,
    dir: &Path,
) -> String {
    let name = format!("{}-s{}-{index:05}", original.stem, options.seed);
    let mut text = String::new();
    let _ = writeln!(
        text,
        "mutant {index} of {} (seed {}), {}",
        original.path.display(),
        options.seed,
        original.arch
    );
    for m in &outcome.mutations {
        let _ = writeln!(text, "  mutation: {m}");
    }
    for run in [&outcome.link, &outcome.load] {
        let _ = writeln!(
            text,
            "\n$ {}\n=> {:?}: {} ({:.2}s)\n--- stdout\n{}--- stderr\n{}",
            run.command,
            run.class,
            run.reason,
            run.elapsed.as_secs_f64(),
            tail(&run.stdout),
            tail(&run.stderr)
        );
    }
    let object = dir.join(format!("{name}.o"));
    if fs::create_dir_all(dir).is_ok()
        && fs::write(&object, &outcome.data).is_ok()
        && fs::write(dir.join(format!("{name}.txt")), &text).is_ok()
    {
        format!("saved as {}", object.display())
    } else {
        format!("could not be saved in {}", dir.display())
    }
}

fn report_failure(options: &Options, original: &Original, index: usize, outcome: &Outcome) {
    let saved = save_mutant(options, original, index, outcome, &options.out);
    let reasons: Vec<String> = [("link", &outcome.link), ("load", &outcome.load)]
        .iter()
        .filter(|(_, r)| r.class == Class::Fail)
        .map(|(what, r)| format!("{what}: {}", r.reason))
        .collect();
    println!(
        "FAIL {} mutant {index} [{}]: {} — {saved}",
        original.path.display(),
        outcome.mutations.join("; "),
        reasons.join("; "),
    );
}

/// A load counted as the module's: said, and kept in OUT/module for a look.
fn report_module(options: &Options, original: &Original, index: usize, outcome: &Outcome) {
    let saved = save_mutant(
        options,
        original,
        index,
        outcome,
        &options.out.join("module"),
    );
    println!(
        "module: {} mutant {index} [{}]: {} — {saved}",
        original.path.display(),
        outcome.mutations.join("; "),
        outcome.load.reason
    );
}

fn tail(text: &str) -> String {
    const KEEP: usize = 4000;
    let mut text = if text.len() > KEEP {
        let mut start = text.len() - KEEP;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        format!("[…]{}", &text[start..])
    } else {
        text.to_string()
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

// ---------------------------------------------------------------------------------------------
// Running msyms

fn run_mutant(
    options: &Options,
    original: &Original,
    index: usize,
    dir: &Path,
    host: Option<&str>,
) -> Outcome {
    let mut rng = Rng::new(
        options.seed ^ fnv1a(&original.data).rotate_left(17) ^ (index as u64).wrapping_mul(PHI),
    );
    let mut data = original.data.clone();
    let mut mutations = Vec::new();
    let rounds = match rng.below(8) {
        0 => 3,
        1 | 2 => 2,
        _ => 1,
    };
    for _ in 0..rounds {
        mutations.push(mutate(&mut data, &mut rng));
    }

    let object = dir.join(format!("{}-{index}.o", original.stem));
    let map = dir.join("mutant.map");
    let image = dir.join("mutant.img");
    let _ = fs::remove_file(&map);
    let _ = fs::remove_file(&image);
    let written = fs::write(&object, &data);

    let mut link_args: Vec<String> = vec![
        "link".into(),
        object.display().to_string(),
        "--arch".into(),
        original.arch.into(),
        "--base".into(),
        BASE.into(),
        "--map".into(),
        map.display().to_string(),
        "-o".into(),
        image.display().to_string(),
    ];
    for (i, name) in original.undefined.iter().enumerate() {
        let address = defsym_address(original.arch, index, i);
        link_args.extend(["--defsym".into(), format!("{name}={address:#x}")]);
    }
    let mut link = run_msyms(&options.msyms, options.timeout, &link_args, dir);
    if link.class == Class::Status0 && !(map.is_file() && image.is_file()) {
        link.class = Class::Fail;
        link.reason = "status 0 but no map or image written".into();
    }

    let load_args: Vec<String> = vec![
        "--arch".into(),
        original.arch.into(),
        "-c".into(),
        format!(
            "load {}",
            msyms::parse::quote(&object.display().to_string())
        ),
    ];
    let mut load = run_msyms(&options.msyms, options.timeout, &load_args, dir);
    let native = Some(original.arch) == host;
    if load.class == Class::Fail && !load.panicked && (native || load.timed_out) {
        if let Some(why) = runs_module_code(&data) {
            if native {
                // The mutant's own code may have killed the process or spun.
                load.class = Class::ModuleFault;
                load.reason = format!("{} (the mutant's code ran: {why})", load.reason);
            } else {
                // The emulated machine stops module code at its instruction budget (4·10⁹),
                // which can take longer than the timeout: run again with a long one; it
                // must end as any run must.
                let long = options.timeout * 10;
                let again = run_msyms(&options.msyms, long, &load_args, dir);
                load = if matches!(again.class, Class::Status0 | Class::Status1) {
                    RunResult {
                        class: Class::ModuleFault,
                        reason: format!(
                            "ran past {:?}: the mutant's code ran ({why}); again with a \
                             timeout of {long:?}, it ended with {:?} after {:.1}s",
                            options.timeout,
                            again.class,
                            again.elapsed.as_secs_f64()
                        ),
                        ..again
                    }
                } else {
                    again
                };
            }
        }
    }
    if written.is_err() {
        link.class = Class::Fail;
        link.reason = format!("could not write the mutant to {}", object.display());
    }
    let _ = fs::remove_file(&object);
    let _ = fs::remove_file(&map);
    let _ = fs::remove_file(&image);

    let failures = [("link", &link), ("load", &load)]
        .iter()
        .filter(|(_, r)| r.class == Class::Fail)
        .map(|(name, _)| *name)
        .collect();
    Outcome {
        mutations,
        data,
        link,
        load,
        failures,
    }
}

/// Runs msyms with `args`, kills it after `timeout`, and classifies the end.
fn run_msyms(msyms: &Path, timeout: Duration, args: &[String], dir: &Path) -> RunResult {
    let command = format!("msyms {}", shell_words(args));
    let stdout_path = dir.join("stdout");
    let stderr_path = dir.join("stderr");
    let files = (
        fs::File::create(&stdout_path),
        fs::File::create(&stderr_path),
    );
    let (Ok(out), Ok(err)) = files else {
        return RunResult {
            command,
            class: Class::Fail,
            reason: format!("cannot create output files in {}", dir.display()),
            stdout: String::new(),
            stderr: String::new(),
            elapsed: Duration::ZERO,
            panicked: false,
            timed_out: false,
        };
    };
    let start = Instant::now();
    let child = Command::new(msyms)
        .args(args)
        .current_dir(dir)
        // Keep the prompt's history out of the real home directory; no backtraces asked for.
        .env("HOME", dir)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return RunResult {
                command,
                class: Class::Fail,
                reason: format!("cannot run {}: {e}", msyms.display()),
                stdout: String::new(),
                stderr: String::new(),
                elapsed: Duration::ZERO,
                panicked: false,
                timed_out: false,
            }
        }
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => break None,
        }
    };
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&fs::read(&stdout_path).unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&fs::read(&stderr_path).unwrap_or_default()).into_owned();
    let (class, reason) = classify(status, &stderr, timeout);
    RunResult {
        command,
        class,
        reason,
        panicked: is_panic(&stderr),
        timed_out: status.is_none(),
        stdout,
        stderr,
        elapsed,
    }
}

fn classify(status: Option<ExitStatus>, stderr: &str, timeout: Duration) -> (Class, String) {
    use std::os::unix::process::ExitStatusExt;
    let panicked = is_panic(stderr);
    let error_line = stderr.lines().any(|l| l.starts_with("error:"));
    let Some(status) = status else {
        return (Class::Fail, format!("hang: killed after {timeout:?}"));
    };
    if panicked {
        let line = stderr
            .lines()
            .find(|l| l.contains("panicked at") || l.contains("overflowed"))
            .unwrap_or("");
        return (Class::Fail, format!("panic ({status}): {line}"));
    }
    match (status.code(), status.signal()) {
        (Some(0), _) => (Class::Status0, String::new()),
        (Some(1), _) if error_line => (Class::Status1, String::new()),
        (Some(1), _) => (Class::Fail, "status 1 without an `error:` line".into()),
        (Some(code), _) => (Class::Fail, format!("status {code}")),
        (None, Some(signal)) => (
            Class::Fail,
            format!("killed by signal {signal}{}", signal_name(signal)),
        ),
        (None, None) => (Class::Fail, format!("{status}")),
    }
}

/// A panic message (from any thread) or Rust's report of a stack overflow.
fn is_panic(stderr: &str) -> bool {
    stderr.contains("panicked at") || stderr.contains("has overflowed its stack")
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        4 => " (SIGILL)",
        5 => " (SIGTRAP)",
        6 => " (SIGABRT)",
        7 => " (SIGBUS)",
        8 => " (SIGFPE)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        _ => "",
    }
}

/// Whether loading the mutant runs any of its own code, by the linker's own parse (the one
/// msyms uses): `Some(what)` if it has a loaded, non-empty constructor or destructor array, or
/// defines a symbol ending in `_load`.
fn runs_module_code(data: &[u8]) -> Option<String> {
    let parsed = std::panic::catch_unwind(|| {
        let object = dlkm_linker::Object::parse("mutant", data).ok()?;
        if let Some(s) = object.sections.iter().find(|s| {
            (s.name.starts_with(".init_array") || s.name.starts_with(".fini_array"))
                && matches!(
                    s.kind,
                    Some(
                        dlkm_linker::SectionKind::Data
                            | dlkm_linker::SectionKind::ReadOnly
                            | dlkm_linker::SectionKind::Text
                    )
                )
                && s.size > 0
        }) {
            return Some(format!("section {}", s.name));
        }
        object
            .symbols
            .iter()
            .find(|s| s.name.ends_with("_load") && s.def != dlkm_linker::SymbolDef::Undefined)
            .map(|s| format!("symbol {}", s.name))
    });
    parsed.ok().flatten()
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:+,".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------------
// Mutations

const PHI: u64 = 0x9e37_79b9_7f4a_7c15;

/// xorshift64*, seeded through splitmix64.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(PHI);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Rng(if z == 0 { PHI } else { z })
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (0 if `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

const INTERESTING_BYTES: [u8; 10] = [0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x10, 0x20, 0x40, 0x0f];

/// An interesting value for a field of `width` bytes holding `old`, in a file of `len` bytes.
fn interesting(rng: &mut Rng, width: usize, old: u64, len: usize) -> u64 {
    let bits = width as u32 * 8;
    let mask = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let sign = 1u64 << (bits - 1);
    let len = len as u64;
    let value = match rng.below(20) {
        0 => 0,
        1 => 1,
        2 => mask,
        3 => sign - 1,
        4 => sign,
        5 => 0x7f,
        6 => 0x80,
        7 => 0xff,
        8 => old.wrapping_add(1),
        9 => old.wrapping_sub(1),
        10 => old.wrapping_add(1 + rng.below(64) as u64),
        11 => old.wrapping_sub(1 + rng.below(64) as u64),
        12 => old ^ (1 << rng.below(bits as usize)),
        13 => old.wrapping_mul(2),
        14 => len,
        15 => len.wrapping_sub(1 + rng.below(16) as u64),
        16 => rng.pick(&[
            0x7fff, 0x8000, 0xffff, 0xfff1, 0xfff2, 0xff00, 0x100, 0x1000,
        ]),
        17 => rng.pick(&[
            0x1000_0000,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            0x1_0000_0000,
            0x4000_0000,
            0x0800_0000,
        ]),
        18 => old >> (1 + rng.below(8)),
        _ => rng.next(),
    };
    value & mask
}

fn read_uint(data: &[u8], offset: usize, width: usize, big_endian: bool) -> u64 {
    let bytes = &data[offset..offset + width];
    let mut value = 0u64;
    for i in 0..width {
        let b = if big_endian {
            bytes[i]
        } else {
            bytes[width - 1 - i]
        };
        value = (value << 8) | b as u64;
    }
    value
}

fn write_uint(data: &mut [u8], offset: usize, width: usize, big_endian: bool, value: u64) {
    for i in 0..width {
        let b = (value >> (8 * i)) as u8;
        if big_endian {
            data[offset + width - 1 - i] = b;
        } else {
            data[offset + i] = b;
        }
    }
}

/// Where the ELF tables of an object are, as far as its headers can be read.
struct ElfLayout {
    is64: bool,
    big_endian: bool,
    machine: u16,
    sections: Vec<SectionInfo>,
}

struct SectionInfo {
    header: usize,
    sh_type: u32,
    offset: usize,
    size: usize,
    entsize: usize,
    info: u32,
}

impl ElfLayout {
    fn read(data: &[u8]) -> Option<Self> {
        // e_ident[EI_CLASS]
        match *data.get(4)? {
            elf::ELFCLASS64 => Self::read_as::<elf::FileHeader64<Endianness>>(data),
            elf::ELFCLASS32 => Self::read_as::<elf::FileHeader32<Endianness>>(data),
            _ => None,
        }
    }

    fn read_as<H: FileHeader<Endian = Endianness>>(data: &[u8]) -> Option<Self> {
        let header = H::parse(data).ok()?;
        let endian = header.endian().ok()?;
        let shoff: u64 = header.e_shoff(endian).into();
        let shentsize = header.e_shentsize(endian) as usize;
        let headers = header.section_headers(endian, data).unwrap_or(&[]);
        let sections = headers
            .iter()
            .enumerate()
            .map(|(i, s)| SectionInfo {
                header: shoff as usize + i * shentsize,
                sh_type: s.sh_type(endian),
                offset: Into::<u64>::into(s.sh_offset(endian)) as usize,
                size: Into::<u64>::into(s.sh_size(endian)) as usize,
                entsize: Into::<u64>::into(s.sh_entsize(endian)) as usize,
                info: s.sh_info(endian),
            })
            .collect();
        Some(ElfLayout {
            is64: header.is_class_64(),
            big_endian: header.is_big_endian(),
            machine: header.e_machine(endian),
            sections,
        })
    }

    /// The file offsets of the entries of sections of type `sh_type` whose entries lie inside
    /// the file.
    fn entries(&self, sh_type: u32, entsize: usize, len: usize) -> Vec<usize> {
        self.sections
            .iter()
            .filter(|s| s.sh_type == sh_type && s.entsize == entsize)
            .flat_map(|s| {
                let end = s.offset.saturating_add(s.size).min(len);
                (s.offset..end.saturating_sub(entsize - 1)).step_by(entsize)
            })
            .collect()
    }
}

/// (name, offset, width) of a structure's fields.
type Fields = &'static [(&'static str, usize, usize)];

const EHDR64: Fields = &[
    ("e_ident[EI_CLASS]", 4, 1),
    ("e_ident[EI_DATA]", 5, 1),
    ("e_type", 16, 2),
    ("e_machine", 18, 2),
    ("e_shoff", 40, 8),
    ("e_flags", 48, 4),
    ("e_ehsize", 52, 2),
    ("e_shentsize", 58, 2),
    ("e_shnum", 60, 2),
    ("e_shstrndx", 62, 2),
];
const EHDR32: Fields = &[
    ("e_ident[EI_CLASS]", 4, 1),
    ("e_ident[EI_DATA]", 5, 1),
    ("e_type", 16, 2),
    ("e_machine", 18, 2),
    ("e_shoff", 32, 4),
    ("e_flags", 36, 4),
    ("e_ehsize", 40, 2),
    ("e_shentsize", 46, 2),
    ("e_shnum", 48, 2),
    ("e_shstrndx", 50, 2),
];
const SHDR64: Fields = &[
    ("sh_name", 0, 4),
    ("sh_type", 4, 4),
    ("sh_flags", 8, 8),
    ("sh_addr", 16, 8),
    ("sh_offset", 24, 8),
    ("sh_size", 32, 8),
    ("sh_link", 40, 4),
    ("sh_info", 44, 4),
    ("sh_addralign", 48, 8),
    ("sh_entsize", 56, 8),
];
const SHDR32: Fields = &[
    ("sh_name", 0, 4),
    ("sh_type", 4, 4),
    ("sh_flags", 8, 4),
    ("sh_addr", 12, 4),
    ("sh_offset", 16, 4),
    ("sh_size", 20, 4),
    ("sh_link", 24, 4),
    ("sh_info", 28, 4),
    ("sh_addralign", 32, 4),
    ("sh_entsize", 36, 4),
];
const SYM64: Fields = &[
    ("st_name", 0, 4),
    ("st_info", 4, 1),
    ("st_other", 5, 1),
    ("st_shndx", 6, 2),
    ("st_value", 8, 8),
    ("st_size", 16, 8),
];
const SYM32: Fields = &[
    ("st_name", 0, 4),
    ("st_value", 4, 4),
    ("st_size", 8, 4),
    ("st_info", 12, 1),
    ("st_other", 13, 1),
    ("st_shndx", 14, 2),
];

/// Applies one mutation to `data` and says what it was.
fn mutate(data: &mut Vec<u8>, rng: &mut Rng) -> String {
    if !data.is_empty() && rng.below(2) == 0 {
        if let Some(layout) = ElfLayout::read(data) {
            if let Some(done) = mutate_elf(data, &layout, rng) {
                return done;
            }
        }
    }
    mutate_bytes(data, rng)
}

fn mutate_bytes(data: &mut Vec<u8>, rng: &mut Rng) -> String {
    let len = data.len();
    if len == 0 {
        data.extend((0..1 + rng.below(64)).map(|_| rng.next() as u8));
        return format!("appended {} random bytes to an empty file", data.len());
    }
    match rng.below(10) {
        0 | 1 => {
            let flips = 1 + rng.below(8);
            let mut at = Vec::new();
            for _ in 0..flips {
                let offset = rng.below(len);
                let bit = rng.below(8);
                data[offset] ^= 1 << bit;
                at.push(format!("{offset:#x}.{bit}"));
            }
            format!("flipped bits {}", at.join(","))
        }
        2 | 3 => {
            let n = 1 + rng.below(4);
            let offset = rng.below(len);
            let end = (offset + n).min(len);
            let value = rng.pick(&INTERESTING_BYTES);
            data[offset..end].fill(value);
            format!("bytes {offset:#x}..{end:#x} = {value:#04x}")
        }
        4 => {
            let width = rng.pick(&[2usize, 4, 8]);
            if len < width {
                return mutate_bytes(data, rng);
            }
            let offset = rng.below(len - width + 1);
            let big_endian = rng.below(2) == 0;
            let old = read_uint(data, offset, width, big_endian);
            let value = interesting(rng, width, old, len);
            write_uint(data, offset, width, big_endian, value);
            format!(
                "{width}-byte {} at {offset:#x}: {old:#x} -> {value:#x}",
                if big_endian { "BE" } else { "LE" }
            )
        }
        5 => {
            let new_len = match rng.below(3) {
                0 => rng.below(len.min(0x200)),
                1 => rng.below(len),
                _ => len - 1 - rng.below(len.min(64)),
            };
            data.truncate(new_len);
            format!("truncated to {new_len:#x} of {len:#x} bytes")
        }
        6 => {
            let n = 1 + rng.below(len.min(256));
            let from = rng.below(len - n + 1);
            let to = rng.below(len - n + 1);
            data.copy_within(from..from + n, to);
            format!("copied {n:#x} bytes from {from:#x} to {to:#x}")
        }
        7 => {
            let n = 1 + rng.below(len.min(256));
            let at = rng.below(len - n + 1);
            data[at..at + n].fill(0);
            format!("zeroed {at:#x}..{:#x}", at + n)
        }
        8 => {
            let n = 1 + rng.below(len.min(64));
            let at = rng.below(len - n + 1);
            if rng.below(2) == 0 {
                data.drain(at..at + n);
                format!("deleted {at:#x}..{:#x}", at + n)
            } else {
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                data.splice(at..at, bytes);
                format!("inserted {n:#x} random bytes at {at:#x}")
            }
        }
        _ => {
            let n = 1 + rng.below(4096);
            let fill = rng.below(2) == 0;
            data.extend((0..n).map(|_| if fill { 0 } else { rng.next() as u8 }));
            format!(
                "appended {n:#x} {} bytes",
                if fill { "zero" } else { "random" }
            )
        }
    }
}

/// A mutation of one field of the ELF structures; `None` if the object has none of the kind
/// picked inside the file.
fn mutate_elf(data: &mut [u8], layout: &ElfLayout, rng: &mut Rng) -> Option<String> {
    let len = data.len();
    let be = layout.big_endian;
    let set_field = |data: &mut [u8], rng: &mut Rng, what: String, offset: usize, width: usize| {
        if offset.checked_add(width)? > data.len() {
            return None;
        }
        let old = read_uint(data, offset, width, be);
        let value = interesting(rng, width, old, len);
        write_uint(data, offset, width, be, value);
        Some(format!("{what}: {old:#x} -> {value:#x}"))
    };
    match rng.below(16) {
        // The ELF header.
        0 => {
            let (name, offset, width) = rng.pick(if layout.is64 { EHDR64 } else { EHDR32 });
            set_field(data, rng, format!("ELF header {name}"), offset, width)
        }
        // A section header.
        1..=4 => {
            let index = rng.below(layout.sections.len());
            let section = layout.sections.get(index)?;
            let (name, offset, width) = rng.pick(if layout.is64 { SHDR64 } else { SHDR32 });
            set_field(
                data,
                rng,
                format!("section header {index} {name}"),
                section.header.checked_add(offset)?,
                width,
            )
        }
        // A symbol.
        5..=8 => {
            let (entsize, fields) = if layout.is64 {
                (24, SYM64)
            } else {
                (16, SYM32)
            };
            let entries = layout.entries(elf::SHT_SYMTAB, entsize, len);
            let entry = *entries.get(rng.below(entries.len()))?;
            let (name, offset, width) = rng.pick(fields);
            set_field(
                data,
                rng,
                format!("symbol at {entry:#x} {name}"),
                entry + offset,
                width,
            )
        }
        // A relocation.
        9..=12 => mutate_reloc(data, layout, rng),
        // The bytes a relocation patches (implicit addends of REL, instructions).
        13 | 14 => {
            let (rel, rela) = reloc_entries(layout, len);
            let all: Vec<(usize, bool, u32)> = rel
                .into_iter()
                .map(|(e, s)| (e, false, s))
                .chain(rela.into_iter().map(|(e, s)| (e, true, s)))
                .collect();
            let &(entry, _, target) = all.get(rng.below(all.len()))?;
            let word = if layout.is64 { 8 } else { 4 };
            let r_offset = read_uint(data, entry, word, be) as usize;
            let target = layout.sections.get(target as usize)?;
            let place = target.offset.checked_add(r_offset)?;
            let width = rng.pick(&[1usize, 2, 4]);
            if place.checked_add(width)? > len || r_offset.checked_add(width)? > target.size {
                return None;
            }
            let old = read_uint(data, place, width, be);
            let value = interesting(rng, width, old, len);
            write_uint(data, place, width, be, value);
            Some(format!(
                "relocated place at {place:#x} ({width} bytes): {old:#x} -> {value:#x}"
            ))
        }
        // A byte of a string table: names change, lose or gain their end.
        _ => {
            let strtabs: Vec<&SectionInfo> = layout
                .sections
                .iter()
                .filter(|s| s.sh_type == elf::SHT_STRTAB && s.size > 0)
                .collect();
            let table = strtabs.get(rng.below(strtabs.len()))?;
            let at = table.offset.checked_add(rng.below(table.size))?;
            let byte = data.get_mut(at)?;
            let old = *byte;
            *byte = rng.pick(&[0u8, b'_', b'.', b'a', 0xff, b'0']);
            Some(format!(
                "string table byte at {at:#x}: {old:#04x} -> {:#04x}",
                *byte
            ))
        }
    }
}

/// Relocation entries inside the file: (offset of the entry, the section it applies to), REL
/// and RELA apart.
type RelocEntries = Vec<(usize, u32)>;

fn reloc_entries(layout: &ElfLayout, len: usize) -> (RelocEntries, RelocEntries) {
    let word = if layout.is64 { 8 } else { 4 };
    let collect = |sh_type: u32, entsize: usize| -> RelocEntries {
        layout
            .sections
            .iter()
            .filter(|s| s.sh_type == sh_type && s.entsize == entsize)
            .flat_map(|s| {
                let end = s.offset.saturating_add(s.size).min(len);
                (s.offset..end.saturating_sub(entsize - 1))
                    .step_by(entsize)
                    .map(|e| (e, s.info))
            })
            .collect()
    };
    (
        collect(elf::SHT_REL, 2 * word),
        collect(elf::SHT_RELA, 3 * word),
    )
}

fn mutate_reloc(data: &mut [u8], layout: &ElfLayout, rng: &mut Rng) -> Option<String> {
    let len = data.len();
    let be = layout.big_endian;
    let word = if layout.is64 { 8 } else { 4 };
    let (rel, rela) = reloc_entries(layout, len);
    let use_rela = !rela.is_empty() && (rel.is_empty() || rng.below(2) == 0);
    let list = if use_rela { &rela } else { &rel };
    let (entry, _) = *list.get(rng.below(list.len()))?;
    let kind = if use_rela { "RELA" } else { "REL" };
    let field = rng.below(if use_rela { 4 } else { 3 });
    let (what, offset, width) = match field {
        0 => ("r_offset", entry, word),
        1 | 2 => {
            // r_info: the type or the symbol index, the other kept.
            let info = read_uint(data, entry + word, word, be);
            let (sym, ty, sym_bits, ty_bits) = if layout.is64 {
                (info >> 32, info & 0xffff_ffff, 32, 32)
            } else {
                (info >> 8, info & 0xff, 24, 8)
            };
            let (sym, ty, what) = if field == 1 {
                let ty = if rng.below(2) == 0 {
                    rng.below(if layout.machine == elf::EM_X86_64 {
                        48
                    } else if layout.machine == elf::EM_AARCH64 {
                        1100
                    } else {
                        64
                    }) as u64
                } else {
                    interesting(rng, ty_bits / 8, ty, len)
                };
                (sym, ty, "type")
            } else {
                let sym = interesting(rng, 4, sym, len) & ((1u64 << sym_bits) - 1);
                (sym, ty, "symbol")
            };
            let value = if layout.is64 {
                (sym << 32) | ty
            } else {
                (sym << 8) | ty
            };
            write_uint(data, entry + word, word, be, value);
            return Some(format!(
                "{kind} at {entry:#x} r_info {what}: {info:#x} -> {value:#x}"
            ));
        }
        _ => ("r_addend", entry + 2 * word, word),
    };
    let old = read_uint(data, offset, width, be);
    let value = interesting(rng, width, old, len);
    write_uint(data, offset, width, be, value);
    Some(format!(
        "{kind} at {entry:#x} {what}: {old:#x} -> {value:#x}"
    ))
}

// Keep the summary's columns and the tally's indices in step.
const _: () = assert!(Class::Fail as usize == 3);
