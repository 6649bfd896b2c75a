//! The `msyms` binary: the command line of the contract in `DESIGN.md`. Every failure is an
//! `error: …` line on stderr and exit status 1; nothing here panics on what the user gives.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use dlkm_loader::{Kernel, KernelOptions, DEF_UNLOAD_DELAY};
use msyms::link::parse_defsym;
use msyms::parse::parse_address;
use msyms::{link_object, report, ArchChoice, CommandError, LinkRequest, Session, Step};

/// symmon-like debugger for dlkm modules: load, inspect and call modules, or link one.
#[derive(Debug, Parser)]
#[command(
    name = "msyms",
    version,
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true
)]
struct Cli {
    /// The architecture modules run on; another than the host's runs them emulated.
    #[arg(long, value_enum, default_value = "host")]
    arch: ArchChoice,

    /// A directory `load NAME` searches for NAME.o (repeatable, searched in order).
    #[arg(long = "modpath", value_name = "DIR")]
    modpath: Vec<PathBuf>,

    /// A file naming modules to load at start, one a line, `#` comments.
    #[arg(long, value_name = "FILE")]
    boot: Option<PathBuf>,

    /// An interface the kernel exports, for modules whose metadata asks for it (repeatable).
    #[arg(long = "interface", value_name = "NAME=VERSION", value_parser = parse_interface)]
    interfaces: Vec<(String, u32)>,

    /// Seconds an auto-loaded module stays idle before it is unloaded (-1: never).
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    unload_delay: Option<i64>,

    /// Load and register only objects inside the module path's directories.
    #[arg(long)]
    modpath_only: bool,

    /// Let modules export symbols the host already provides (libc's, say), shadowing them
    /// for the modules loaded after.
    #[arg(long)]
    allow_shadowing: bool,

    /// Keep linked images in DIR, and map them from there when the same objects are loaded
    /// again (native modules): later runs skip reading, parsing and relocating them.
    #[arg(long, value_name = "DIR")]
    image_cache: Option<PathBuf>,

    /// Run every command even after one fails (the exit status is still 1).
    #[arg(long)]
    keep_going: bool,

    /// Commands to run, separated by `;`.
    #[arg(short = 'c', value_name = "COMMANDS", conflicts_with = "script")]
    commands: Option<String>,

    /// A file of commands, one a line, `#` comments.
    #[arg(value_name = "SCRIPT")]
    script: Option<PathBuf>,

    #[command(subcommand)]
    subcommand: Option<Sub>,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Link OBJECT as if loaded at ADDR: write the flat image and a map of its sections.
    Link(LinkArgs),
}

#[derive(Debug, Args)]
struct LinkArgs {
    /// The relocatable object (.o) to link.
    #[arg(value_name = "OBJECT")]
    object: PathBuf,

    /// The architecture OBJECT must be built for (default: whatever it is built for).
    #[arg(long, value_enum)]
    arch: Option<ArchChoice>,

    /// The address to link at: decimal or 0x hex, a multiple of the image's alignment.
    #[arg(long, value_name = "ADDR", value_parser = parse_address)]
    base: u64,

    /// Resolve undefined symbol NAME to ADDR (the only way undefined symbols resolve).
    #[arg(long = "defsym", value_name = "NAME=ADDR", value_parser = parse_defsym)]
    defsyms: Vec<(String, u64)>,

    /// Where to write the map: `NAME ADDR SIZE` a line.
    #[arg(long, value_name = "MAPFILE")]
    map: PathBuf,

    /// Where to write the image.
    #[arg(short = 'o', value_name = "IMAGE")]
    output: PathBuf,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_exit(&error),
    };
    let result = match cli.subcommand {
        Some(Sub::Link(ref args)) => link(args),
        None => run(&cli),
    };
    result.unwrap_or_else(|error| {
        report(&mut std::io::stderr(), None, &error);
        ExitCode::FAILURE
    })
}

/// clap's own messages (already `error: …`); `--help` and `--version` are no failure, every
/// other usage error exits 1 like any failure of msyms.
fn usage_exit(error: &clap::Error) -> ExitCode {
    // If stderr is gone there is nobody to tell.
    let _ = error.print();
    if error.use_stderr() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn link(args: &LinkArgs) -> Result<ExitCode, CommandError> {
    link_object(&LinkRequest {
        object: args.object.clone(),
        arch: args.arch,
        base: args.base,
        defsyms: args.defsyms.clone(),
        map: args.map.clone(),
        image: args.output.clone(),
    })?;
    Ok(ExitCode::SUCCESS)
}

/// How often the auto-unloader looks for idle modules.
const AUTO_UNLOAD_TICK: Duration = Duration::from_millis(100);

/// Run mode: the boot file, then `-c`, the script or the prompt.
fn run(cli: &Cli) -> Result<ExitCode, CommandError> {
    let options = KernelOptions {
        modpath_only: cli.modpath_only,
        allow_shadowing: cli.allow_shadowing,
        image_cache: cli.image_cache.clone(),
        ..KernelOptions::default()
    };
    let mut session = Session::new(cli.arch.kernel_with(options)?);
    for (name, version) in &cli.interfaces {
        session.kernel().export_interface(name, *version);
    }
    for dir in &cli.modpath {
        session.add_modpath(dir.clone())?;
    }
    if let Some(seconds) = cli.unload_delay {
        session.set_unload_delay(seconds);
    }
    let default_delay = match session.unload_delay() {
        Some(seconds) if seconds < 0 => None,
        Some(seconds) => Some(Duration::from_secs(seconds as u64)),
        None => Some(DEF_UNLOAD_DELAY),
    };
    // Ends with the session's kernel.
    Kernel::start_auto_unload(&session.shared_kernel(), default_delay, AUTO_UNLOAD_TICK);
    let mut steps = match &cli.boot {
        Some(path) => Step::from_boot_file(path)?,
        None => Vec::new(),
    };
    let interactive = cli.commands.is_none() && cli.script.is_none();
    match (&cli.commands, &cli.script) {
        (Some(text), _) => steps.extend(Step::from_text(text)),
        (None, Some(path)) => steps.extend(Step::from_script(path)?),
        (None, None) => {}
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let failures = session.run_steps(steps, cli.keep_going, &mut out, &mut std::io::stderr());
    let flushed = out.flush();
    drop(out);
    if failures > 0 {
        return Ok(ExitCode::FAILURE);
    }
    flushed?;
    if interactive && !session.is_finished() {
        msyms::repl::run(&mut session)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `--interface NAME=VERSION`.
fn parse_interface(text: &str) -> Result<(String, u32), String> {
    let (name, version) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VERSION"))?;
    let version = version
        .parse()
        .map_err(|_| format!("`{version}` is not a version number"))?;
    if name.is_empty() {
        return Err("the interface name is empty".into());
    }
    Ok((name.to_string(), version))
}
