//! The msyms command-line contract of DESIGN.md, checked on the real binary: exit statuses,
//! `error: …` lines, `--keep-going`, scripts, the `modules` header, the last line of `call`,
//! `link`, and the corpus answers computed through msyms.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use msyms::parse::quote;
use msyms::print::MODULES_HEADER;

/// What one run of msyms gave.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn last_line(&self) -> &str {
        self.stdout.lines().last().unwrap_or("")
    }

    fn error_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect()
    }

    /// Fails with everything msyms said, so a broken test explains itself.
    fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit status\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

fn msyms(args: &[&str]) -> Run {
    let output: Output = Command::new(env!("CARGO_BIN_EXE_msyms"))
        .args(args)
        // Keep the prompt's history out of the real home directory.
        .env("HOME", scratch_dir("home"))
        .output()
        .expect("cannot run msyms");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A directory of this test binary's own, under cargo's scratch space.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("msyms-cli")
        .join(name);
    std::fs::create_dir_all(&dir).expect("cannot create a scratch directory");
    dir
}

fn write_scratch(name: &str, text: &str) -> PathBuf {
    let path = scratch_dir("files").join(name);
    std::fs::write(&path, text).expect("cannot write a scratch file");
    path
}

fn corpus(variant: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus/x86_64")
        .join(variant)
}

fn corpus_of(arch: &str, variant: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus")
        .join(arch)
        .join(variant)
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("scratch paths are UTF-8")
}

#[test]
fn modules_on_an_empty_kernel_is_the_header() {
    for alias in ["modules", "ms", "mlist"] {
        let run = msyms(&["-c", alias]);
        run.expect(0);
        assert_eq!(run.stdout, format!("{MODULES_HEADER}\n"));
        assert_eq!(run.stdout, "ID NAME TYPE STATE REFS DEPS BASE SIZE\n");
        assert!(run.stderr.is_empty(), "{}", run.stderr);
    }
}

#[test]
fn help_lists_and_explains_commands() {
    let run = msyms(&["-c", "help"]);
    run.expect(0);
    for command in [
        "load",
        "unload",
        "register",
        "unregister",
        "modules",
        "stat",
        "msyms",
        "ksym",
        "addr",
        "call",
        "modpath",
        "help",
        "sleep",
    ] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(command)),
            "{command} missing from help:\n{}",
            run.stdout
        );
    }
    let run = msyms(&["-c", "help call"]);
    run.expect(0);
    assert!(run.stdout.contains("usage: call SYMBOL"), "{}", run.stdout);
    assert!(run.stdout.contains("example: call "), "{}", run.stdout);
    let run = msyms(&["-c", "help ms"]);
    run.expect(0);
    assert!(run.stdout.contains("usage: modules"), "{}", run.stdout);
    for (command, usage) in [
        ("register", "usage: register PATH"),
        ("unregister", "usage: unregister NAME"),
    ] {
        let run = msyms(&["-c", &format!("help {command}")]);
        run.expect(0);
        assert!(run.stdout.contains(usage), "{}", run.stdout);
        assert!(
            run.stdout.contains(&format!("example: {command} ")),
            "{}",
            run.stdout
        );
    }
}

#[test]
fn unknown_command_fails_and_names_the_closest() {
    let run = msyms(&["-c", "lod foo.o; modules"]);
    run.expect(1);
    let errors = run.error_lines();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(errors[0].contains("lod") && errors[0].contains("load"));
    assert!(
        run.stdout.is_empty(),
        "ran on after a failure: {}",
        run.stdout
    );
}

#[test]
fn first_failure_ends_the_run() {
    let run = msyms(&["-c", "modules; unload nosuch; modules"]);
    run.expect(1);
    assert_eq!(run.stdout.matches(MODULES_HEADER).count(), 1);
    assert_eq!(run.error_lines().len(), 1, "{}", run.stderr);
}

#[test]
fn keep_going_runs_on_and_still_fails() {
    let run = msyms(&["--keep-going", "-c", "bogus; modules; call; call labs -7"]);
    run.expect(1);
    assert_eq!(run.error_lines().len(), 2, "{}", run.stderr);
    assert!(run.stdout.contains(MODULES_HEADER));
    assert_eq!(run.last_line(), "= 7 (0x7)");
}

#[test]
fn call_host_functions() {
    let cases = [
        (r#"call strlen "hello""#, "= 5 (0x5)"),
        ("call labs -7", "= 7 (0x7)"),
        ("call labs 0x10", "= 16 (0x10)"),
        (r#"call atol "-1""#, "= -1 (0xffffffffffffffff)"),
        (r#"call strlen "a;b \"c\"""#, "= 7 (0x7)"),
    ];
    for (command, last) in cases {
        let run = msyms(&["-c", command]);
        run.expect(0);
        assert_eq!(run.last_line(), last, "{command}");
    }
}

/// What the callee prints through C stdio comes before the result, even into a pipe.
#[test]
fn callee_output_precedes_the_result() {
    let run = msyms(&["-c", r#"call puts "from C"; modules"#]);
    run.expect(0);
    assert_eq!(run.stdout, format!("from C\n= 7 (0x7)\n{MODULES_HEADER}\n"));
}

#[test]
fn call_errors() {
    for command in ["call no_such_function_anywhere", "call labs seven", "call"] {
        let run = msyms(&["-c", command]);
        run.expect(1);
        assert_eq!(run.error_lines().len(), 1, "{command}: {}", run.stderr);
    }
}

#[test]
fn script_file_with_comments_and_blank_lines() {
    let script = write_scratch(
        "script.msyms",
        "# a script\n\nmodules\n   # indented comment\ncall labs -42 # trailing comment\n",
    );
    let run = msyms(&[path_str(&script)]);
    run.expect(0);
    assert_eq!(run.stdout, format!("{MODULES_HEADER}\n= 42 (0x2a)\n"));

    let failing = write_scratch("failing.msyms", "modules\n\nnot_a_command\nmodules\n");
    let run = msyms(&[path_str(&failing)]);
    run.expect(1);
    let errors = run.error_lines();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(
        errors[0].contains("failing.msyms:3"),
        "no line number: {}",
        errors[0]
    );
    assert_eq!(run.stdout.matches(MODULES_HEADER).count(), 1);

    let run = msyms(&["--keep-going", path_str(&failing)]);
    run.expect(1);
    assert_eq!(run.stdout.matches(MODULES_HEADER).count(), 2);
}

#[test]
fn missing_script_is_an_error() {
    let run = msyms(&["/no/such/script.msyms"]);
    run.expect(1);
    assert_eq!(run.error_lines().len(), 1, "{}", run.stderr);
}

/// A fault in an emulated module stops that call with a report naming the module, the
/// function and the address; msyms carries on with the next command.
#[test]
fn emulated_fault_is_reported_and_msyms_survives() {
    let zlib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/mipsel/gcc/zlib.o");
    let script = format!(
        "load {}; call crc32 0 16 5; call adler32 1 \"abc\" 3",
        path_str(&zlib)
    );
    let run = msyms(&["--arch", "mipsel", "--keep-going", "-c", &script]);
    run.expect(1);
    assert!(
        run.stderr.contains("fault at pc")
            && run.stderr.contains("read unmapped at 0x10")
            && run.stderr.contains("(in zlib:crc32"),
        "{}",
        run.stderr
    );
    assert_eq!(run.last_line(), "= 38600999 (0x24d0127)", "{}", run.stdout);
}

#[test]
fn usage_errors_exit_1() {
    for args in [
        &["--arch", "sparc", "-c", "modules"][..],
        &["--no-such-option"],
        &["-c", "modules", "script.msyms"],
    ] {
        let run = msyms(args);
        run.expect(1);
        assert!(run.stderr.starts_with("error:"), "{args:?}: {}", run.stderr);
    }
    msyms(&["--help"]).expect(0);
}

#[test]
fn unterminated_string_is_an_error() {
    let run = msyms(&["-c", r#"call strlen "abc"#]);
    run.expect(1);
    assert!(run.stderr.contains("unterminated"), "{}", run.stderr);
}

#[test]
fn link_errors() {
    let dir = scratch_dir("link-errors");
    let map = dir.join("out.map");
    let image = dir.join("out.img");
    let (map, image) = (path_str(&map), path_str(&image));
    let object = corpus("gcc-pie").join("funcptr.o");
    let object = path_str(&object);
    let cases: [&[&str]; 5] = [
        &[
            "link",
            "/no/such.o",
            "--base",
            "0x100000",
            "--map",
            map,
            "-o",
            image,
        ],
        &["link", object, "--base", "zz", "--map", map, "-o", image],
        &[
            "link", object, "--base", "0x100010", "--map", map, "-o", image,
        ],
        &["link", object, "--base", "0x100000", "--map", map],
        // strlen is undefined and only --defsym resolves.
        &[
            "link", object, "--base", "0x100000", "--map", map, "-o", image,
        ],
    ];
    for args in cases {
        let run = msyms(args);
        run.expect(1);
        assert!(run.stderr.starts_with("error:"), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn link_writes_image_and_map() {
    let dir = scratch_dir("link");
    let (map, image) = (dir.join("funcptr.map"), dir.join("funcptr.img"));
    let object = corpus("gcc-pie").join("funcptr.o");
    let base = 0x4000_0000u64;
    let run = msyms(&[
        "link",
        path_str(&object),
        "--base",
        &format!("{base:#x}"),
        "--defsym",
        "strlen=0x7000000000",
        "--map",
        path_str(&map),
        "-o",
        path_str(&image),
    ]);
    run.expect(0);
    let map = std::fs::read_to_string(&map).expect("no map written");
    let mut end = base;
    for line in map.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "map line `{line}`");
        let hex = |f: &str| {
            assert!(f.starts_with("0x"), "map line `{line}`");
            assert_eq!(f, f.to_lowercase(), "map line `{line}`");
            u64::from_str_radix(&f[2..], 16).expect("map field is hex")
        };
        let (address, size) = (hex(fields[1]), hex(fields[2]));
        assert!(address >= base, "map line `{line}`");
        end = end.max(address + size);
    }
    assert!(map.lines().any(|l| l.starts_with(".text ")), "{map}");
    assert!(map.lines().any(|l| l.starts_with("*stubs* ")), "{map}");
    let image = std::fs::read(&image).expect("no image written");
    assert_eq!(image.len() as u64, end - base);
}

/// `msyms link` takes the architecture from the object, and refuses a `--arch` that differs.
#[test]
fn link_other_architectures() {
    let dir = scratch_dir("link-cross");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    for (variant, arch, wrong) in [
        ("aarch64/gcc-pie", "aarch64", "x86_64"),
        ("mips/gcc", "mips", "mipsel"),
        ("mipsel/gcc-longcalls", "mipsel", "mips"),
    ] {
        let object = corpus.join(variant).join("funcptr.o");
        let (map, image) = (
            dir.join(format!("{arch}.map")),
            dir.join(format!("{arch}.img")),
        );
        let link = |arch_args: &[&str]| {
            let mut args = vec![
                "link",
                path_str(&object),
                "--base",
                "0x10000000",
                "--defsym",
                "strlen=0x10400000",
                "--map",
                path_str(&map),
                "-o",
                path_str(&image),
            ];
            args.extend_from_slice(arch_args);
            msyms(&args)
        };
        link(&[]).expect(0);
        let text = std::fs::read_to_string(&map).expect("no map written");
        assert!(
            text.lines().any(|l| l.starts_with(".text ")),
            "{arch}: {text}"
        );
        link(&["--arch", arch]).expect(0);
        let refused = link(&["--arch", wrong]);
        refused.expect(1);
        assert!(
            refused.stderr.starts_with("error:")
                && refused.stderr.contains(wrong)
                && refused.stderr.contains(arch),
            "{arch} object with --arch {wrong}: {}",
            refused.stderr
        );
    }
}

/// One `MODULES : FUNCTION ARGS... = VALUE` line of an answers file.
struct Answer {
    modules: Vec<PathBuf>,
    call: String,
    value: i64,
}

fn read_answers(arch: &str, variant: &str) -> Vec<Answer> {
    let dir = corpus_of(arch, variant);
    let path = dir.join("answers.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (modules, rest) = line.split_once(" : ").expect("answer has ` : `");
            let (call, value) = rest.rsplit_once(" = ").expect("answer has ` = `");
            Answer {
                modules: modules.split_whitespace().map(|m| dir.join(m)).collect(),
                call: call.to_string(),
                value: value.trim().parse().expect("answer value is an integer"),
            }
        })
        .collect()
}

/// Every answer of a corpus variant, computed by msyms: one run per set of modules, loading
/// them by path and calling as the answers file writes the calls; other architectures than
/// the host's run emulated (`--arch`).
fn check_answers(arch: &str, variant: &str) {
    let mut groups: BTreeMap<Vec<PathBuf>, Vec<Answer>> = BTreeMap::new();
    for answer in read_answers(arch, variant) {
        groups
            .entry(answer.modules.clone())
            .or_default()
            .push(answer);
    }
    assert!(groups.len() > 3, "{variant}: too few answers");
    let mut failures = Vec::new();
    for (modules, answers) in &groups {
        let mut commands: Vec<String> = modules
            .iter()
            .map(|m| format!("load {}", quote(path_str(m))))
            .collect();
        commands.extend(answers.iter().map(|a| format!("call {}", a.call)));
        let run = msyms(&["--arch", arch, "-c", &commands.join("; ")]);
        let results: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with("= ")).collect();
        if run.code != Some(0) || results.len() != answers.len() {
            failures.push(format!("{variant} {modules:?}: {}", run.stderr));
            continue;
        }
        for (answer, result) in answers.iter().zip(results) {
            let expected = msyms::print::format_result(answer.value as u64);
            if result != expected {
                failures.push(format!(
                    "{variant}: call {}: {result}, native {expected}",
                    answer.call
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[cfg(target_arch = "x86_64")]
#[test]
fn corpus_answers_gcc_pie() {
    check_answers("x86_64", "gcc-pie");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn corpus_answers_gcc_nopic() {
    check_answers("x86_64", "gcc-nopic");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn corpus_answers_clang() {
    check_answers("x86_64", "clang");
}

#[test]
fn corpus_answers_aarch64_emulated() {
    check_answers("aarch64", "gcc-pie");
}

#[test]
fn corpus_answers_mips_emulated() {
    check_answers("mips", "gcc-longcalls");
}

#[test]
fn corpus_answers_mipsel_emulated() {
    check_answers("mipsel", "clang");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn load_by_name_from_modpath_and_boot_file() {
    let dir = corpus("gcc-pie");
    let boot = write_scratch("boot.txt", "# modules to load at start\nswitch\n\n");
    let run = msyms(&[
        "--modpath",
        "/",
        "--modpath",
        path_str(&dir),
        "--boot",
        path_str(&boot),
        "--unload-delay",
        "-1",
        "-c",
        "load funcptr.o; ms; stat funcptr; msyms funcptr; ksym fp_table_sum; call fp_table_sum 5; \
         unload 1; unload funcptr; modules",
    ]);
    run.expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("loaded switch id=1 base=0x"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("loaded funcptr id=2 base=0x"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2], MODULES_HEADER);
    assert!(
        lines[3].starts_with("1 switch misc loaded 0 - 0x"),
        "{}",
        lines[3]
    );
    assert!(
        lines[4].starts_with("2 funcptr misc loaded 0 - 0x"),
        "{}",
        lines[4]
    );
    for expected in ["sections:", ".text", "entry points:", "stubs used"] {
        assert!(run.stdout.contains(expected), "stat lacks {expected}");
    }
    assert!(
        run.stdout
            .lines()
            .any(|l| l.ends_with(" func    fp_table_sum")),
        "msyms lacks fp_table_sum:\n{}",
        run.stdout
    );
    assert!(run.stdout.contains("owner       module funcptr (id 2)"));
    assert!(run.stdout.contains("= 12260096686969 (0xb2686b53b79)"));
    assert!(run.stdout.contains("unloaded switch\nunloaded funcptr\n"));
    assert_eq!(run.last_line(), MODULES_HEADER);
}

#[test]
fn load_errors() {
    let run = msyms(&["-c", "load no_module_of_this_name"]);
    run.expect(1);
    assert!(run.stderr.contains("module path"), "{}", run.stderr);
    let run = msyms(&["-c", "load /no/such/dir/x.o"]);
    run.expect(1);
    assert!(run.stderr.contains("/no/such/dir/x.o"), "{}", run.stderr);
}

/// The debugger commands on an emulated module: a breakpoint pauses `call`, `bt` names the
/// caller, `x $sp` reads the stack, `step` moves, `continue` stops at the next hit and, with
/// the breakpoint deleted, finishes with the native answer.
#[test]
fn emulated_breakpoint_step_continue() {
    let dir = corpus_of("mipsel", "gcc-longcalls");
    let script = format!(
        "load {zlib}; load {driver}; break crc32; call zlib_selftest; bt; regs; x $sp 16; \
         step 3; continue; delete 1; continue",
        zlib = path_str(&dir.join("zlib.o")),
        driver = path_str(&dir.join("zlib_driver.o")),
    );
    let run = msyms(&["--arch", "mipsel", "-c", &script]);
    run.expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let stops: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("stopped: "))
        .collect();
    assert_eq!(stops.len(), 3, "{}", run.stdout);
    assert!(
        stops[0].starts_with("stopped: breakpoint 1 at pc 0x")
            && stops[0].ends_with("(zlib:crc32+0x0)")
    );
    assert!(
        stops[1].starts_with("stopped: stepped to pc 0x"),
        "{}",
        stops[1]
    );
    assert!(stops[2].ends_with("(zlib:crc32+0x0)"), "{}", stops[2]);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("#1 ") && l.contains("zlib_driver:zlib_selftest+")),
        "{}",
        run.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("pc    0x") && l.ends_with("zlib:crc32+0x0")),
        "{}",
        run.stdout
    );
    assert!(
        lines.iter().any(|l| l.starts_with("0x500ff")),
        "x $sp: {}",
        run.stdout
    );
    let expected = read_answers("mipsel", "gcc-longcalls")
        .into_iter()
        .find(|a| a.call == "zlib_selftest")
        .expect("an answer for zlib_selftest")
        .value;
    assert_eq!(
        run.last_line(),
        msyms::print::format_result(expected as u64)
    );
}

/// Breakpoints need a machine that can stop module code.
#[test]
fn breakpoints_on_the_native_machine_are_refused() {
    let run = msyms(&["-c", "break strlen"]);
    run.expect(1);
    assert!(run.stderr.contains("no debugger"), "{}", run.stderr);
}

/// `dis` names where each instruction is, and where branches and calls go: module symbols,
/// the linker's stubs, kernel functions.
#[test]
fn dis_names_branch_targets_and_stubs() {
    let native = corpus("gcc-pie").join("zlib.o");
    let run = msyms(&["-c", &format!("load {}; dis crc32 2", path_str(&native))]);
    run.expect(0);
    let lines: Vec<&str> = run.stdout.lines().skip(1).collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert!(lines[0].contains("zlib:crc32+0x0"), "{}", run.stdout);
    assert!(
        lines[1].contains("jmp") && lines[1].contains("<zlib:crc32_z+0x0>"),
        "{}",
        run.stdout
    );

    let dir = corpus_of("aarch64", "gcc-pie");
    let script = format!(
        "load {}; load {}; dis zlib_crc32 8; dis strlen 1",
        path_str(&dir.join("zlib.o")),
        path_str(&dir.join("zlib_driver.o"))
    );
    let run = msyms(&["--arch", "aarch64", "-c", &script]);
    run.expect(0);
    assert!(
        run.stdout.lines().any(|l| l.contains(" bl ")
            && l.contains("<zlib_driver:*stubs*+")
            && l.ends_with(" -> strlen>")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .lines()
            .any(|l| l.contains("kernel:strlen+0x0") && l.ends_with("ret")),
        "{}",
        run.stdout
    );
}

/// Dependencies from the module path, exported interfaces, holds and the busy rules through
/// msyms, on emulated MIPS modules.
#[test]
fn dependencies_holds_and_busy_modules() {
    let dir = corpus_of("mips", "gcc").join("lifecycle");
    let script = "load lc_user; modules; call lc_user_run 1; unload lc_base; hold lc_user; \
                  unload lc_user; release lc_user; unload lc_user; unload lc_base; release lc_base";
    let run = msyms(&[
        "--arch",
        "mips",
        "--keep-going",
        "--interface",
        "dlkm_test=2",
        "--modpath",
        path_str(&dir),
        "-c",
        script,
    ]);
    run.expect(1);
    assert!(
        run.stdout.contains("\n2 lc_user driver loaded 0 lc_base "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("\n1 lc_base misc loaded 1 - "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("= 46 (0x2e)"), "{}", run.stdout);
    assert!(
        run.stdout.contains("unloaded lc_user\nunloaded lc_base"),
        "{}",
        run.stdout
    );
    let errors = run.error_lines();
    assert_eq!(errors.len(), 3, "{}", run.stderr);
    assert!(
        errors[0].contains("lc_base is busy: used by lc_user"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains("lc_user is busy: held 1"),
        "{}",
        errors[1]
    );
    assert!(errors[2].contains("no module `lc_base`"), "{}", errors[2]);
}

/// The line of the `modules` table for module `name`, split into its fields.
fn module_row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split(' ').collect::<Vec<&str>>())
        .find(|fields| fields.len() == 8 && fields[1] == name)
        .unwrap_or_else(|| panic!("no row for {name}:\n{table}"))
}

/// The `modules` tables a run printed, each as its text from the header on.
fn module_tables(stdout: &str) -> Vec<String> {
    let mut tables: Vec<String> = Vec::new();
    for line in stdout.lines() {
        if line == MODULES_HEADER {
            tables.push(String::new());
        }
        let row = line.split(' ').count() == 8;
        if let Some(table) = tables.last_mut().filter(|_| row) {
            table.push_str(line);
            table.push('\n');
        }
    }
    tables
}

/// A registered module is a row of its own before anything calls it, its functions are stubs
/// in the kernel table, and the first call through one (from a module that was loaded while
/// it was only registered) loads it and answers.
fn check_registered_module_loads_on_first_call(arch: &str, dir: &Path) {
    let script = format!(
        "register {lib}; load {caller}; modules; ksym lc_lib_weigh; stat lc_lib; \
         call lc_caller_weigh; modules; stat lc_lib; stat lc_caller; ksym lc_lib_weigh; \
         call lc_caller_mix; call lc_caller_sum; call lc_caller_loads",
        lib = quote(path_str(&dir.join("lc_lib.o"))),
        caller = quote(path_str(&dir.join("lc_caller.o"))),
    );
    let run = msyms(&["--arch", arch, "--unload-delay", "-1", "-c", &script]);
    run.expect(0);
    let out = &run.stdout;
    let lines: Vec<&str> = out.lines().collect();
    // Every function lc_lib exports is a stub (the count is checked against `stat` below).
    let stub_count = lines[0]
        .strip_prefix("registered lc_lib id=1 stubs=")
        .and_then(|k| k.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("{arch}: {out}"));
    assert!(
        lines[1].starts_with("loaded lc_caller id=2 base=0x"),
        "{arch}: {out}"
    );
    let tables = module_tables(out);
    assert_eq!(tables.len(), 2, "{arch}: {out}");
    // Before the call: registered, no image; the caller is loaded.
    assert_eq!(
        module_row(&tables[0], "lc_lib"),
        ["1", "lc_lib", "misc", "registered", "0", "-", "0x0", "0x0"],
        "{arch}"
    );
    assert_eq!(module_row(&tables[0], "lc_caller")[3], "loaded", "{arch}");
    // After it: loaded, placed.
    let loaded = module_row(&tables[1], "lc_lib");
    assert_eq!(loaded[3], "loaded", "{arch}: {out}");
    assert!(loaded[6] != "0x0" && loaded[7] != "0x0", "{arch}: {out}");

    // ksym: a stub before the call, resolved to lc_lib's own function after it.
    let ksyms: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("owner       ") || l.starts_with("state       "))
        .copied()
        .collect();
    assert!(
        ksyms.contains(&"owner       stub of module lc_lib (id 1, not loaded)"),
        "{arch}: {out}"
    );
    assert!(
        ksyms.contains(&"state       stub (the first call loads lc_lib)"),
        "{arch}: {out}"
    );
    assert!(
        ksyms.contains(&"owner       module lc_lib (id 1)"),
        "{arch}: {out}"
    );
    assert!(ksyms.contains(&"state       resolved"), "{arch}: {out}");

    // stat of the registered module, then of the loaded one, then of its caller.
    assert!(out.contains("state       registered\n"), "{arch}: {out}");
    assert!(
        out.contains("registered  yes, since "),
        "{arch}: stat before the call: {out}"
    );
    let stubs: Vec<&str> = lines
        .iter()
        .find_map(|l| l.strip_prefix("stubs       "))
        .unwrap_or_else(|| panic!("{arch}: no stubs line: {out}"))
        .split(", ")
        .collect();
    assert_eq!(stubs.len(), stub_count, "{arch}: {out}");
    for function in ["lc_lib_loads", "lc_lib_weigh", "lc_lib_mix", "lc_lib_sum"] {
        assert!(stubs.contains(&function), "{arch}: {function}: {out}");
    }
    assert!(
        out.contains("base        0x0\nsize        0x0\n"),
        "{arch}: {out}"
    );
    assert!(out.contains("loaded at   -\n"), "{arch}: {out}");
    assert!(
        out.contains("registered  yes\n"),
        "{arch}: stat after the call: {out}"
    );
    assert!(
        out.contains("registered  no\n"),
        "{arch}: stat lc_caller: {out}"
    );
    assert!(
        out.contains("stub deps   lc_lib (calls through their stubs)\n"),
        "{arch}: {out}"
    );
    let results: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("= "))
        .copied()
        .collect();
    assert_eq!(
        results,
        ["= 385 (0x181)", "= 224 (0xe0)", "= 15 (0xf)", "= 1 (0x1)"],
        "{arch}: {out}"
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn registered_module_loads_on_first_stub_call() {
    check_registered_module_loads_on_first_call("host", &corpus("gcc-pie").join("lifecycle"));
}

#[test]
fn registered_module_loads_on_first_stub_call_emulated() {
    for (arch, variant) in [("mips", "gcc"), ("aarch64", "gcc-pie")] {
        let dir = corpus_of(arch, variant).join("lifecycle");
        check_registered_module_loads_on_first_call(arch, &dir);
    }
}

/// A module whose `_load` fails: the call through its stub fails (-1, as a failed stub call
/// returns), and the module stays registered, in state `failed`, `stat` telling why.
#[cfg(target_arch = "x86_64")]
#[test]
fn failed_auto_load_shows_as_failed() {
    let fail = corpus("gcc-pie").join("lifecycle").join("lc_fail.o");
    let script = format!(
        "register {}; call lc_fail_export 1; modules; stat lc_fail; stat 1",
        quote(path_str(&fail))
    );
    let run = msyms(&["-c", &script]);
    run.expect(0);
    let out = &run.stdout;
    assert!(out.starts_with("registered lc_fail id=1 stubs="), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("= -1 ")),
        "the failed call: {out}"
    );
    let tables = module_tables(out);
    assert_eq!(tables.len(), 1, "{out}");
    assert_eq!(
        module_row(&tables[0], "lc_fail"),
        ["1", "lc_fail", "misc", "failed", "0", "-", "0x0", "0x0"]
    );
    let failures: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("failure     "))
        .collect();
    assert_eq!(failures.len(), 2, "stat by name and by id: {out}");
    assert!(failures[0].contains("ENODEV"), "{out}");
    assert_eq!(out.matches("state       failed\n").count(), 2, "{out}");
}

/// The auto-unloader takes a module a stub call loaded away once idle for its unload_delay
/// (1 s for lc_lib): it is a `registered` row again, and the next call loads it again.
#[cfg(target_arch = "x86_64")]
#[test]
fn stub_loaded_module_is_auto_unloaded_and_loads_again() {
    let dir = corpus("gcc-pie").join("lifecycle");
    let script = format!(
        "register {}; load {}; call lc_caller_weigh; modules; sleep 2.5; modules; \
         call lc_caller_weigh; modules",
        quote(path_str(&dir.join("lc_lib.o"))),
        quote(path_str(&dir.join("lc_caller.o"))),
    );
    let run = msyms(&["-c", &script]);
    run.expect(0);
    let tables = module_tables(&run.stdout);
    assert_eq!(tables.len(), 3, "{}", run.stdout);
    let states: Vec<&str> = tables.iter().map(|t| module_row(t, "lc_lib")[3]).collect();
    assert_eq!(states, ["loaded", "registered", "loaded"], "{}", run.stdout);
    assert_eq!(run.last_line().split(' ').nth(3), Some("loaded"));
}

/// `load NAME` finds a registered module by its name, without the module path; unloaded, it
/// is a `registered` row again, and loads again by name.
#[cfg(target_arch = "x86_64")]
#[test]
fn registered_module_loads_by_name() {
    let lib = corpus("gcc-pie").join("lifecycle").join("lc_lib.o");
    let script = format!(
        "register {}; load lc_lib; modules; call lc_lib_loads; \
         unload lc_lib; modules; load lc_lib; stat lc_lib",
        quote(path_str(&lib))
    );
    let run = msyms(&["-c", &script]);
    run.expect(0);
    let out = &run.stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[1].starts_with("loaded lc_lib id=1 base=0x"), "{out}");
    let tables = module_tables(out);
    let states: Vec<&str> = tables.iter().map(|t| module_row(t, "lc_lib")[3]).collect();
    assert_eq!(states, ["loaded", "registered"], "{out}");
    assert!(out.contains("= 1 (0x1)\nunloaded lc_lib\n"), "{out}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("loaded lc_lib id=1 "))
            .count(),
        2,
        "{out}"
    );
    assert!(
        out.contains("state       loaded\nregistered  yes\n"),
        "{out}"
    );
    assert!(out.contains("loaded by   demand\n"), "{out}");
}

/// `register` and `unregister` fail as every command does (an `error:` line, status 1), and
/// commands that need a loaded module say when it is only registered.
#[cfg(target_arch = "x86_64")]
#[test]
fn register_and_unregister_errors() {
    let dir = corpus("gcc-pie").join("lifecycle");
    let lib = quote(path_str(&dir.join("lc_lib.o")));
    let caller = quote(path_str(&dir.join("lc_caller.o")));

    for command in [
        "register /no/such/dir/lc_nothing.o",
        "register",
        "unregister nosuch",
        "unregister",
        "register a.o b.o",
    ] {
        let run = msyms(&["-c", &format!("{command}; modules")]);
        run.expect(1);
        assert_eq!(run.error_lines().len(), 1, "{command}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{command}: ran on: {}", run.stdout);
    }
    let run = msyms(&["-c", "register /no/such/dir/lc_nothing.o"]);
    assert!(
        run.stderr.contains("/no/such/dir/lc_nothing.o"),
        "{}",
        run.stderr
    );
    let run = msyms(&["-c", "unregister nosuch"]);
    assert!(
        run.error_lines()[0].contains("no module `nosuch` is registered"),
        "{}",
        run.stderr
    );

    let script = format!(
        "register {lib}; register {lib}; unload lc_lib; hold lc_lib; msyms lc_lib; \
         load {caller}; unregister lc_lib; call lc_caller_weigh; unregister lc_lib; \
         unload lc_lib; unregister lc_lib; unload lc_caller; unregister 1; modules; \
         stat lc_lib"
    );
    let run = msyms(&["--unload-delay", "-1", "--keep-going", "-c", &script]);
    run.expect(1);
    let errors = run.error_lines();
    assert_eq!(errors.len(), 8, "{}", run.stderr);
    assert!(errors[0].contains("already registered"), "{}", errors[0]);
    for (error, command) in errors[1..4].iter().zip(["unload", "hold", "msyms"]) {
        assert!(
            error.contains("module lc_lib is registered but not loaded"),
            "{command}: {error}"
        );
    }
    // Its caller binds to its stubs, loaded or not.
    assert!(
        errors[4].contains("unregister lc_lib") && errors[4].contains("lc_caller"),
        "{}",
        errors[4]
    );
    assert!(
        errors[5].contains("unregister lc_lib") && errors[5].contains("is loaded"),
        "{}",
        errors[5]
    );
    assert!(errors[6].contains("lc_caller"), "{}", errors[6]);
    assert!(
        errors[7].contains("no module `lc_lib` is loaded or registered"),
        "{}",
        errors[7]
    );
    let out = &run.stdout;
    assert!(out.contains("= 385 (0x181)\n"), "{out}");
    assert!(
        out.contains("unloaded lc_lib\nunloaded lc_caller\nunregistered lc_lib\n"),
        "{out}"
    );
    // Nothing is left.
    assert!(out.ends_with(&format!("{MODULES_HEADER}\n")), "{out}");
}

#[test]
fn modpath_only_and_shadowing_are_the_embedders_to_allow() {
    let dir = corpus("gcc-pie").join("lifecycle");
    let shadow = dir.join("lc_shadow.o");
    let shadow = shadow.to_str().unwrap();
    let refused = msyms(&["-c", &format!("load {}", quote(shadow))]);
    refused.expect(1);
    assert!(
        refused.error_lines()[0].contains("`atoi`, which the host already provides"),
        "{}",
        refused.stderr
    );
    let allowed = msyms(&[
        "--allow-shadowing",
        "-c",
        &format!("load {}; call atoi \"7\"", quote(shadow)),
    ]);
    // atoi returns an int: -42 in the low 32 bits of the result register.
    let line = allowed.expect(0).last_line();
    assert!(line.ends_with("ffffffd6)"), "{line}");

    let base = dir.join("lc_base.o");
    let base = base.to_str().unwrap();
    let outside = msyms(&["--modpath-only", "-c", &format!("load {}", quote(base))]);
    outside.expect(1);
    assert!(
        outside.error_lines()[0].contains("outside the module path"),
        "{}",
        outside.stderr
    );
    let inside = msyms(&[
        "--modpath-only",
        "--modpath",
        dir.to_str().unwrap(),
        "-c",
        &format!("load {}; load lc_veto", quote(base)),
    ]);
    inside.expect(0);
}

/// The workspace's root, which the corpus's DWARF file names are relative to.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `LINE` of an `addr` answer ending in ` at FILE:LINE`, checking the file is the corpus
/// source it should be.
fn source_line_of(answer: &str, file: &str) -> u32 {
    let (_, position) = answer
        .rsplit_once(" at ")
        .unwrap_or_else(|| panic!("no source line in `{answer}`"));
    let (named, line) = position.rsplit_once(':').expect("FILE:LINE");
    assert_eq!(named, file, "{answer}");
    assert!(workspace_root().join(named).is_file(), "{answer}");
    line.parse().expect("a line number")
}

/// `addr`: module:symbol+offset and the source line for a module built with -g, the same
/// without a line for one built without, kernel symbols by name, and a plain message
/// outside everything.
#[test]
fn addr_names_module_symbol_and_source_line() {
    let dir = corpus("gcc-pie");
    let script = format!(
        "load {}; load {}; addr fp_table_sum; addr fp_swap+0x4; addr crc32; addr strlen+1; \
         addr 0x10",
        quote(path_str(&dir.join("funcptr.o"))),
        quote(path_str(&dir.join("zlib.o"))),
    );
    let run = msyms(&["-c", &script]);
    run.expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 7, "{}", run.stdout);
    let answer = |i: usize, place: &str| {
        let (address, rest) = lines[i].split_once(' ').expect("ADDRESS PLACE");
        assert!(address.starts_with("0x"), "{}", lines[i]);
        assert!(rest.starts_with(place), "{}", lines[i]);
        lines[i]
    };
    let file = "corpus/src/features/funcptr.c";
    // funcptr.c: fp_table_sum's body opens on line 33 (gcc's first row of the function), and
    // fp_swap is lines 53-62 (tests/tests/source_lines.rs checks every address against
    // llvm-symbolizer or addr2line).
    let line = source_line_of(answer(2, "funcptr:fp_table_sum+0x0 at "), file);
    assert_eq!(line, 33, "{}", lines[2]);
    let line = source_line_of(answer(3, "funcptr:fp_swap+0x4 at "), file);
    assert!((53..=62).contains(&line), "{}", lines[3]);
    // zlib is built without -g: no line, and no complaint.
    assert!(
        answer(4, "zlib:crc32+0x0").split(' ').count() == 2,
        "{}",
        lines[4]
    );
    assert!(lines[5].ends_with(" kernel:strlen+0x1"), "{}", lines[5]);
    assert_eq!(lines[6], "0x10: not in any module or kernel symbol");
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn addr_errors() {
    let run = msyms(&["-c", "addr no_such_symbol"]);
    run.expect(1);
    assert_eq!(
        run.error_lines(),
        ["error: no symbol `no_such_symbol` in the kernel or any module"]
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let run = msyms(&["-c", "addr strlen+0xzz"]);
    run.expect(1);
    assert_eq!(run.error_lines().len(), 1, "{}", run.stderr);
    for (script, problem) in [
        ("addr", "missing argument"),
        ("addr 1 2", "too many arguments (2)"),
    ] {
        let run = msyms(&["-c", script]);
        run.expect(1);
        assert_eq!(
            run.error_lines(),
            [format!(
                "error: {problem}; usage: addr ADDR-or-SYMBOL[+OFF]"
            )],
            "{script}"
        );
    }
    let run = msyms(&["-c", "help addr"]);
    run.expect(0);
    assert!(run.stdout.starts_with("usage: addr ADDR-or-SYMBOL[+OFF]\n"));
    assert!(run.stdout.contains("\nexample: addr "), "{}", run.stdout);
}

/// `dis` puts `; FILE:LINE` before the first instruction of each source line of a module
/// built with -g; `stat` gives its entry points' lines.
#[test]
fn dis_and_stat_show_source_lines() {
    let dir = corpus("gcc-pie");
    let script = format!(
        "load {}; dis fp_swap 8; load {}; stat lc_lib",
        quote(path_str(&dir.join("funcptr.o"))),
        quote(path_str(&dir.join("lifecycle/lc_lib.o"))),
    );
    let run = msyms(&["-c", &script]);
    run.expect(0);
    let listing: Vec<&str> = run
        .stdout
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("loaded "))
        .collect();
    let instructions = listing.iter().filter(|l| l.starts_with("0x")).count();
    let sources: Vec<&&str> = listing.iter().filter(|l| l.starts_with("; ")).collect();
    assert_eq!(instructions, 8, "{}", run.stdout);
    assert!(
        listing[0].starts_with("; corpus/src/features/funcptr.c:"),
        "{}",
        run.stdout
    );
    assert!(sources.len() >= 2, "{}", run.stdout);
    // Never two annotations in a row, never the same line twice in a row.
    for pair in listing.windows(2) {
        assert!(
            !(pair[0].starts_with("; ") && pair[1].starts_with("; ")),
            "{}",
            run.stdout
        );
    }
    for pair in sources.windows(2) {
        assert_ne!(pair[0], pair[1], "{}", run.stdout);
    }
    let entry = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("0x") && l.contains(" _load"))
        .unwrap_or_else(|| panic!("no _load entry point: {}", run.stdout));
    source_line_of(entry, "corpus/src/lifecycle/lc_lib.c");

    // Without debug information, a listing is instructions only.
    let run = msyms(&[
        "-c",
        &format!("load {}; dis crc32 4", quote(path_str(&dir.join("zlib.o")))),
    ]);
    run.expect(0);
    assert!(!run.stdout.contains("\n; "), "{}", run.stdout);
}

/// Source lines of emulated modules: the DWARF relocated to the emulated machine's addresses.
#[test]
fn addr_on_emulated_machines() {
    for (arch, variant) in [("aarch64", "clang"), ("mips", "gcc"), ("mipsel", "clang")] {
        let object = corpus_of(arch, variant).join("funcptr.o");
        let script = format!(
            "load {}; addr fp_swap; addr memcpy",
            quote(path_str(&object))
        );
        let run = msyms(&["--arch", arch, "-c", &script]);
        run.expect(0);
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(lines.len(), 3, "{arch}: {}", run.stdout);
        assert!(
            lines[1].contains(" funcptr:fp_swap+0x0 at "),
            "{arch}: {}",
            lines[1]
        );
        source_line_of(lines[1], "corpus/src/features/funcptr.c");
        assert!(
            lines[2].ends_with(" kernel:memcpy+0x0"),
            "{arch}: {}",
            lines[2]
        );
    }
}

#[test]
fn x_refuses_a_length_no_dump_needs_before_reading_anything() {
    let run = msyms(&["--arch", "aarch64", "-c", "x 0 0xffffffffffff"]);
    run.expect(1);
    assert!(
        run.error_lines()[0].contains("at most 0x100000 bytes"),
        "{}",
        run.stderr
    );
}

/// A mistyped symbol gets the closest names of the modules and the kernel table.
#[test]
fn unknown_symbols_suggest_the_closest_names() {
    let zlib = corpus("gcc-pie").join("zlib.o");
    let run = msyms(&["-c", &format!("load {}; dis crc3", path_str(&zlib))]);
    run.expect(1);
    assert!(
        run.stderr
            .contains("no symbol `crc3` in the kernel or any module; did you mean: crc32,"),
        "{}",
        run.stderr
    );
    let run = msyms(&["-c", &format!("load {}; ksym inflat", path_str(&zlib))]);
    run.expect(1);
    assert!(
        run.stderr.contains("did you mean: inflate,"),
        "{}",
        run.stderr
    );
    let run = msyms(&["-c", "addr qqqqqqqqqq"]);
    run.expect(1);
    assert!(!run.stderr.contains("did you mean"), "{}", run.stderr);
}

/// `--image-cache`: the first run links SQLite and keeps its image, the next runs (new
/// processes, where libc is elsewhere) map it and bind it to this process's libc, and all give
/// the answer the natively linked program gives.
#[cfg(target_arch = "x86_64")]
#[test]
fn an_image_cache_serves_later_runs() {
    let cache = scratch_dir("image-cache");
    let _ = std::fs::remove_dir_all(&cache);
    let dir = corpus("gcc-pie");
    let script = format!(
        "load {}; load {}; call sqlite_query {}; stat sqlite",
        quote(&dir.join("sqlite.o").display().to_string()),
        quote(&dir.join("sqlite_driver.o").display().to_string()),
        quote("select count(*), sum(length(name)) from sqlite_schema")
    );
    let run = || {
        let run = msyms(&["--image-cache", &cache.display().to_string(), "-c", &script]);
        run.expect(0);
        let cached = run.stdout.contains("mapped from the image cache");
        let answer = run
            .stdout
            .lines()
            .find(|l| l.starts_with("= "))
            .map(str::to_string);
        (cached, answer)
    };
    let uncached = msyms(&["-c", &script]);
    uncached.expect(0);
    let expected = uncached
        .stdout
        .lines()
        .find(|l| l.starts_with("= "))
        .map(str::to_string);
    assert!(expected.is_some(), "{}", uncached.stdout);
    assert_eq!(run(), (false, expected.clone()), "the first run links");
    for _ in 0..3 {
        assert_eq!(run(), (true, expected.clone()), "later runs map");
    }
}
