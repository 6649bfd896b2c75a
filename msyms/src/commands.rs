//! The command table: every command's name, aliases, help text and handler in one place, so
//! dispatch, `help`, suggestions for mistyped names and completion never disagree.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use dlkm_loader::{Arg, Debugger, LoadError, MachineError, Stop};

use crate::disasm;
use crate::error::CommandError;
use crate::lines;
use crate::parse::{parse_address, Token};
use crate::print;
use crate::session::Session;

type Handler = fn(&mut Session, &Args<'_>, &mut dyn Write) -> Result<(), CommandError>;

/// One command of msyms.
pub struct CommandSpec {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub usage: &'static str,
    /// One line for the list `help` prints.
    pub summary: &'static str,
    pub description: &'static str,
    pub example: &'static str,
    /// What the completer offers for the arguments.
    pub completes: Completes,
    min_args: usize,
    max_args: Option<usize>,
    run: Handler,
}

/// The kind of word a command's arguments are, for completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completes {
    Nothing,
    Objects,
    Modules,
    Symbols,
    Commands,
    Directories,
    /// Registered modules (loaded or not).
    Registered,
}

/// Every command, in the order `help` lists them.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "load",
        aliases: &[],
        usage: "load PATH-or-NAME",
        summary: "load a module and run its _load",
        description: "Loads the object file at PATH, or the registered module NAME, or NAME.o \
                      from the first directory of the module path that has it (a file name \
                      alone that is not in the current directory is looked for there too), \
                      links it against the kernel's symbols, runs its constructors and _load. \
                      The module's name is the file's stem.",
        example: "load corpus/x86_64/gcc-pie/funcptr.o",
        completes: Completes::Objects,
        min_args: 1,
        max_args: Some(1),
        run: load,
    },
    CommandSpec {
        name: "unload",
        aliases: &[],
        usage: "unload NAME-or-ID",
        summary: "run a module's _unload and unload it",
        description: "Runs the module's _unload (a non-zero result keeps it loaded) and its \
                      destructors, withdraws its exports and releases its memory. A module \
                      other modules depend on is busy and stays.",
        example: "unload funcptr",
        completes: Completes::Modules,
        min_args: 1,
        max_args: Some(1),
        run: unload,
    },
    CommandSpec {
        name: "register",
        aliases: &[],
        usage: "register PATH",
        summary: "make a module known (stubs installed) without loading it",
        description: "Reads the object file at PATH (a NAME alone is NAME.o from the module \
                      path, as for load) and registers the module without loading it: each \
                      function it exports (or each its `stubs` metadata key names) becomes a \
                      stub in the kernel symbol table, and the first call through a stub loads \
                      the module, with its dependencies, and goes on into it. Prints \
                      `registered NAME id=N stubs=K`.",
        example: "register corpus/x86_64/gcc-pie/lifecycle/lc_lib.o",
        completes: Completes::Objects,
        min_args: 1,
        max_args: Some(1),
        run: register,
    },
    CommandSpec {
        name: "unregister",
        aliases: &[],
        usage: "unregister NAME",
        summary: "forget a registered module and withdraw its stubs",
        description: "Forgets the registered module NAME (or ID) and takes its stubs out of the \
                      kernel symbol table. Refused while the module is loaded (unload it \
                      first) and while loaded modules call through its stubs.",
        example: "unregister lc_lib",
        completes: Completes::Registered,
        min_args: 1,
        max_args: Some(1),
        run: unregister,
    },
    CommandSpec {
        name: "modules",
        aliases: &["ms", "mlist"],
        usage: "modules",
        summary: "list the modules, loaded and registered",
        description: "Prints a table of the modules: ID NAME TYPE STATE REFS DEPS BASE SIZE. \
                      REFS counts the modules that use this one, DEPS names the modules it \
                      uses. Registered modules that are not loaded are rows too, in state \
                      registered (or failed, when their last load failed), base and size 0.",
        example: "modules",
        completes: Completes::Nothing,
        min_args: 0,
        max_args: Some(0),
        run: modules,
    },
    CommandSpec {
        name: "stat",
        aliases: &[],
        usage: "stat NAME-or-ID",
        summary: "everything about one module, loaded or registered",
        description: "Prints a module's path, base and size, dependencies and users, load \
                      time, the stubs and GOT relaxations the linker made, the variables it got \
                      copies of, its sections and its entry points with their addresses (and \
                      source lines, for a module built with -g). For a \
                      registered module also its stubs in the kernel table and, if its last \
                      load failed, why; for a module that calls registered ones through their \
                      stubs, which. A registered module that is not loaded has no image: \
                      base and size 0, no sections.",
        example: "stat funcptr",
        completes: Completes::Modules,
        min_args: 1,
        max_args: Some(1),
        run: stat,
    },
    CommandSpec {
        name: "msyms",
        aliases: &[],
        usage: "msyms NAME-or-ID",
        summary: "a module's symbols",
        description: "Lists the symbols a module defines, exported and local, by address: \
                      address, size, kind and name.",
        example: "msyms funcptr",
        completes: Completes::Modules,
        min_args: 1,
        max_args: Some(1),
        run: msyms,
    },
    CommandSpec {
        name: "ksym",
        aliases: &[],
        usage: "ksym NAME",
        summary: "a kernel symbol table entry",
        description: "Looks NAME up as a module would: explicit and module exports first, then \
                      the host's dynamic symbols. Prints its address, owner (kernel, module or \
                      host), size, kind and state: resolved, or stub when it is the \
                      auto-loading stub of a registered module that is not loaded (the first \
                      call through it loads the module).",
        example: "ksym strlen",
        completes: Completes::Symbols,
        min_args: 1,
        max_args: Some(1),
        run: ksym,
    },
    CommandSpec {
        name: "addr",
        aliases: &[],
        usage: "addr ADDR-or-SYMBOL[+OFF]",
        summary: "which module, symbol and source line an address is in",
        description: "Names the place of an address (a number, a symbol, SYMBOL+OFF or \
                      $REGISTER of a paused call): module:symbol+offset in a loaded module \
                      (module:*stubs*+offset in the linker's areas), kernel:symbol+offset in \
                      the kernel's exports and the host's symbols, and `at FILE:LINE` when \
                      the module was built with debug information (-g): its DWARF, \
                      relocated to where the module was loaded. An address outside all of \
                      them is said to be; an unknown symbol is an error.",
        example: "addr fp_table_sum+0x10",
        completes: Completes::Symbols,
        min_args: 1,
        max_args: Some(1),
        run: addr,
    },
    CommandSpec {
        name: "call",
        aliases: &[],
        usage: "call SYMBOL [ARG]...",
        summary: "call a function with integer or string arguments",
        description: "Calls SYMBOL (a kernel symbol or any module's symbol, local ones too). \
                      Arguments are decimal, 0x hex or negative integers, or \"strings\", which \
                      are copied into memory the module can see and passed as pointers. The \
                      last line printed is the result: = DECIMAL (0xHEX).",
        example: "call strlen \"hello\"",
        completes: Completes::Symbols,
        min_args: 1,
        max_args: None,
        run: call,
    },
    CommandSpec {
        name: "x",
        aliases: &[],
        usage: "x ADDR-or-SYMBOL[+OFF] [N]",
        summary: "hex dump of memory",
        description: "Prints N bytes (default 64) from the address, or the symbol's address \
                      plus OFF, 16 a line with their ASCII; reading where nothing is mapped \
                      is an error, never a crash.",
        example: "x crc32 32",
        completes: Completes::Symbols,
        min_args: 1,
        max_args: Some(2),
        run: examine,
    },
    CommandSpec {
        name: "dis",
        aliases: &["disassemble"],
        usage: "dis SYMBOL-or-ADDR[+OFF] [N]",
        summary: "disassemble N instructions",
        description: "Disassembles N instructions (default 16) from the address, each with its \
                      module:symbol+offset, bytes, and branch, call and PC-relative targets \
                      named (module symbols, the linker's *stubs* and *got* areas, kernel \
                      functions). In a module built with debug information (-g), a \
                      `; FILE:LINE` line comes before the first instruction of each source \
                      line.",
        example: "dis crc32 8",
        completes: Completes::Symbols,
        min_args: 1,
        max_args: Some(2),
        run: disassemble,
    },
    CommandSpec {
        name: "break",
        aliases: &["b"],
        usage: "break SYMBOL-or-ADDR[+OFF]",
        summary: "stop calls there (emulated machine)",
        description: "Sets a breakpoint: a call that reaches the address pauses there, and \
                      regs, bt, x, step and continue inspect and go on with it. Breakpoints \
                      stop the calls msyms makes, not the module code the kernel's runtime \
                      calls back (a qsort comparator).",
        example: "break crc32",
        completes: Completes::Symbols,
        min_args: 1,
        max_args: Some(1),
        run: set_breakpoint,
    },
    CommandSpec {
        name: "delete",
        aliases: &["d"],
        usage: "delete [N]",
        summary: "remove breakpoint N, or list them",
        description: "Removes breakpoint N. Without N, lists the breakpoints: number, \
                      address, where.",
        example: "delete 1",
        completes: Completes::Nothing,
        min_args: 0,
        max_args: Some(1),
        run: delete_breakpoint,
    },
    CommandSpec {
        name: "continue",
        aliases: &["c", "cont"],
        usage: "continue",
        summary: "go on with the paused call",
        description: "Runs the call paused at a breakpoint until it returns (printing its \
                      result like call) or stops at a breakpoint again.",
        example: "continue",
        completes: Completes::Nothing,
        min_args: 0,
        max_args: Some(0),
        run: resume,
    },
    CommandSpec {
        name: "step",
        aliases: &["s", "si"],
        usage: "step [N]",
        summary: "run N instructions of the paused call",
        description: "Runs N instructions (default 1) of the paused call and shows where it \
                      is; a call into the kernel's runtime counts as one.",
        example: "step 4",
        completes: Completes::Nothing,
        min_args: 0,
        max_args: Some(1),
        run: step,
    },
    CommandSpec {
        name: "regs",
        aliases: &["registers"],
        usage: "regs",
        summary: "the paused call's registers",
        description: "Prints every general register of the paused call by its ABI name, with \
                      where it points when that is in a module.",
        example: "regs",
        completes: Completes::Nothing,
        min_args: 0,
        max_args: Some(0),
        run: registers,
    },
    CommandSpec {
        name: "bt",
        aliases: &["backtrace", "where"],
        usage: "bt",
        summary: "the paused call's frames",
        description: "Lists the paused call's frames, innermost first, as module:symbol+offset: \
                      the pc, then the return addresses (aarch64: through the frame chain; \
                      MIPS: the return register, then saved return addresses on the stack).",
        example: "bt",
        completes: Completes::Nothing,
        min_args: 0,
        max_args: Some(0),
        run: backtrace,
    },
    CommandSpec {
        name: "hold",
        aliases: &[],
        usage: "hold NAME-or-ID",
        summary: "take a reference on a module",
        description: "Takes a reference on the module: it cannot be unloaded (EBUSY) until \
                      `release` gives the reference back. Prints the module's hold count.",
        example: "hold zlib",
        completes: Completes::Modules,
        min_args: 1,
        max_args: Some(1),
        run: hold,
    },
    CommandSpec {
        name: "release",
        aliases: &[],
        usage: "release NAME-or-ID",
        summary: "give back a reference taken with hold",
        description: "Gives back one reference taken with `hold`; releasing a module nobody \
                      holds is an error. Prints the module's hold count.",
        example: "release zlib",
        completes: Completes::Modules,
        min_args: 1,
        max_args: Some(1),
        run: release,
    },
    CommandSpec {
        name: "open",
        aliases: &[],
        usage: "open NAME [MINOR]",
        summary: "open a driver's device, loading the driver first if needed",
        description: "Opens minor device MINOR (default 0) of driver NAME: loads NAME.o from \
                      the module path if it is not loaded, then calls its PREFIX_open(MINOR). \
                      While a device is open the driver is busy. Prints the open count.",
        example: "open lc_drv 1",
        completes: Completes::Modules,
        min_args: 1,
        max_args: Some(2),
        run: open,
    },
    CommandSpec {
        name: "close",
        aliases: &[],
        usage: "close NAME [MINOR]",
        summary: "close a driver's device",
        description: "Calls driver NAME's PREFIX_close(MINOR) (default 0) for a device opened \
                      with `open`. Prints the open count.",
        example: "close lc_drv 1",
        completes: Completes::Modules,
        min_args: 1,
        max_args: Some(2),
        run: close,
    },
    CommandSpec {
        name: "modpath",
        aliases: &[],
        usage: "modpath [DIR]",
        summary: "add a module search directory, or list them",
        description: "Adds DIR to the directories `load NAME` searches for NAME.o, after those \
                      already there. Without DIR, prints the module path, one directory a \
                      line.",
        example: "modpath corpus/x86_64/gcc-pie",
        completes: Completes::Directories,
        min_args: 0,
        max_args: Some(1),
        run: modpath,
    },
    CommandSpec {
        name: "sleep",
        aliases: &[],
        usage: "sleep SECS",
        summary: "wait",
        description: "Waits SECS seconds (fractions allowed), which lets background work such \
                      as auto-unloading run.",
        example: "sleep 0.5",
        completes: Completes::Nothing,
        min_args: 1,
        max_args: Some(1),
        run: sleep,
    },
    CommandSpec {
        name: "help",
        aliases: &["?"],
        usage: "help [COMMAND]",
        summary: "list the commands, or explain one",
        description: "Without COMMAND, lists every command. With it, prints its usage, \
                      aliases, what it does and an example.",
        example: "help call",
        completes: Completes::Commands,
        min_args: 0,
        max_args: Some(1),
        run: help,
    },
    CommandSpec {
        name: "quit",
        aliases: &["exit"],
        usage: "quit",
        summary: "end the session",
        description: "Ends the session; loaded modules get their destructors run. In a script, \
                      the commands after it are not run.",
        example: "quit",
        completes: Completes::Nothing,
        min_args: 0,
        max_args: Some(0),
        run: quit,
    },
];

/// The command called `name` or one of its aliases.
pub fn find(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS
        .iter()
        .find(|c| c.name == name || c.aliases.contains(&name))
}

/// Every name and alias, for completion.
pub fn all_names() -> impl Iterator<Item = &'static str> {
    COMMANDS
        .iter()
        .flat_map(|c| std::iter::once(c.name).chain(c.aliases.iter().copied()))
}

/// The names closest to a mistyped `name`: within a small edit distance, or sharing a prefix,
/// nearest first.
pub fn suggest(name: &str) -> Vec<String> {
    // One-letter aliases (`b`, `x`) are close to everything short: offer them only for names
    // as short.
    closest_names(
        name,
        all_names().filter(|candidate| candidate.len() > 1 || name.len() <= 2),
    )
}

/// The candidates close to `name` (within an edit distance of a third of its length, or one
/// a prefix of the other), nearest first, at most `MAX_SUGGESTIONS`.
pub fn closest_names<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Vec<String> {
    let limit = (name.chars().count() / 3).max(1) + 1;
    let mut close: Vec<(usize, &str)> = candidates
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|&(distance, candidate)| {
            distance <= limit
                || (name.len() >= 2 && (candidate.starts_with(name) || name.starts_with(candidate)))
        })
        .collect();
    close.sort();
    close
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// The most names a suggestion lists.
const MAX_SUGGESTIONS: usize = 5;

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

impl CommandSpec {
    /// Checks the number of arguments and runs the command.
    pub(crate) fn execute(
        &'static self,
        session: &mut Session,
        args: &[Token],
        out: &mut dyn Write,
    ) -> Result<(), CommandError> {
        let args = Args::new(self, args)?;
        (self.run)(session, &args, out)
    }

    /// The text of `help COMMAND`.
    pub fn write_help(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "usage: {}", self.usage)?;
        if !self.aliases.is_empty() {
            writeln!(out, "aliases: {}", self.aliases.join(", "))?;
        }
        writeln!(out, "{}", self.description)?;
        writeln!(out, "example: {}", self.example)
    }

    fn usage_error(&self, problem: impl Into<String>) -> CommandError {
        CommandError::Usage {
            usage: self.usage,
            problem: problem.into(),
        }
    }
}

/// The list `help` prints.
pub fn write_command_list(out: &mut dyn Write) -> std::io::Result<()> {
    let width = COMMANDS.iter().map(|c| c.usage.len()).max().unwrap_or(0);
    writeln!(out, "commands (`help COMMAND` explains one):")?;
    for c in COMMANDS {
        let aliases = if c.aliases.is_empty() {
            String::new()
        } else {
            format!(" [{}]", c.aliases.join(", "))
        };
        writeln!(out, "  {:<width$}  {}{aliases}", c.usage, c.summary)?;
    }
    Ok(())
}

/// A command's arguments, their number checked against the command's usage.
pub(crate) struct Args<'a> {
    command: &'static CommandSpec,
    tokens: &'a [Token],
}

impl<'a> Args<'a> {
    fn new(command: &'static CommandSpec, tokens: &'a [Token]) -> Result<Self, CommandError> {
        let count = tokens.len();
        if count < command.min_args {
            return Err(command.usage_error("missing argument"));
        }
        if command.max_args.is_some_and(|max| count > max) {
            return Err(command.usage_error(format!("too many arguments ({count})")));
        }
        Ok(Args { command, tokens })
    }

    /// The text of argument `index`.
    fn text(&self, index: usize) -> Result<&'a str, CommandError> {
        self.optional(index)
            .ok_or_else(|| self.command.usage_error("missing argument"))
    }

    fn optional(&self, index: usize) -> Option<&'a str> {
        self.tokens.get(index).map(Token::text)
    }

    /// The arguments from `index` on.
    fn rest(&self, index: usize) -> &'a [Token] {
        self.tokens.get(index..).unwrap_or_default()
    }
}

/// Wraps a loader error with the command that met it.
fn load_error(context: String) -> impl FnOnce(LoadError) -> CommandError {
    move |source| CommandError::load(context, source)
}

fn load(session: &mut Session, args: &Args<'_>, out: &mut dyn Write) -> Result<(), CommandError> {
    let target = args.text(0)?;
    let kernel = session.kernel();
    // A registered module loads by its name from the object it was registered from.
    let registered = kernel
        .find_registered(target)
        .and_then(|id| kernel.module_info(id))
        .filter(|info| info.name == target && Path::new(target).extension().is_none())
        .and_then(|info| info.path);
    let path = match registered {
        Some(path) => path,
        None => session.find_object(target)?,
    };
    let id = kernel
        .load_path(&path)
        .map_err(load_error(format!("load {target}")))?;
    let info = kernel
        .module_info(id)
        .ok_or_else(|| CommandError::NoSuchModule(id.to_string()))?;
    writeln!(
        out,
        "loaded {} id={} base={:#x}",
        info.name, info.id, info.base
    )?;
    Ok(())
}

fn unload(session: &mut Session, args: &Args<'_>, out: &mut dyn Write) -> Result<(), CommandError> {
    let target = args.text(0)?;
    let info = session.module(target)?;
    session
        .kernel()
        .unload(info.id)
        .map_err(load_error(format!("unload {target}")))?;
    writeln!(out, "unloaded {}", info.name)?;
    Ok(())
}

fn register(
    session: &mut Session,
    args: &Args<'_>,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let target = args.text(0)?;
    let path = session.find_object(target)?;
    let kernel = session.shared_kernel();
    let id = kernel
        .register(&path)
        .map_err(load_error(format!("register {target}")))?;
    let info = kernel
        .module_info(id)
        .ok_or_else(|| CommandError::NoSuchModule(id.to_string()))?;
    writeln!(
        out,
        "registered {} id={} stubs={}",
        info.name,
        info.id,
        info.stubs.len()
    )?;
    Ok(())
}

fn unregister(
    session: &mut Session,
    args: &Args<'_>,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let target = args.text(0)?;
    let kernel = session.kernel();
    // By name, or by the number `modules` shows.
    let name = kernel
        .find_registered(target)
        .and_then(|id| kernel.module_info(id))
        .map_or_else(|| target.to_string(), |info| info.name);
    kernel
        .unregister(&name)
        .map_err(load_error(format!("unregister {target}")))?;
    writeln!(out, "unregistered {name}")?;
    Ok(())
}

fn modules(session: &mut Session, _: &Args<'_>, out: &mut dyn Write) -> Result<(), CommandError> {
    print::write_modules(out, &session.kernel().modules())?;
    Ok(())
}

fn stat(session: &mut Session, args: &Args<'_>, out: &mut dyn Write) -> Result<(), CommandError> {
    let info = session.any_module(args.text(0)?)?;
    let kernel = session.kernel();
    let line_of = |address: u64| lines::line_of(kernel, address);
    print::write_stat_with_lines(out, &info, SystemTime::now(), &line_of)?;
    Ok(())
}

fn msyms(session: &mut Session, args: &Args<'_>, out: &mut dyn Write) -> Result<(), CommandError> {
    let info = session.module(args.text(0)?)?;
    let symbols = session
        .kernel()
        .module_symbols(info.id)
        .ok_or(CommandError::NoSuchModule(info.name))?;
    print::write_symbols(out, &symbols)?;
    Ok(())
}

fn ksym(session: &mut Session, args: &Args<'_>, out: &mut dyn Write) -> Result<(), CommandError> {
    let name = args.text(0)?;
    let kernel = session.kernel();
    let symbol = kernel
        .lookup(name)
        .ok_or_else(|| CommandError::NoSuchSymbol {
            name: name.to_string(),
            local_to: session.module_defining(name),
            closest: session.closest_symbols(name),
        })?;
    print::write_kernel_symbol(out, &symbol)?;
    Ok(())
}

fn addr(session: &mut Session, args: &Args<'_>, out: &mut dyn Write) -> Result<(), CommandError> {
    let text = args.text(0)?;
    let address = address_of(session, text)?;
    // SYMBOL[+OFF]: the name, for a kernel symbol the machine cannot name by address.
    let symbol = (parse_address(text).is_err() && !text.starts_with('$'))
        .then(|| text.split_once('+').map_or(text, |(name, _)| name));
    writeln!(
        out,
        "{}",
        lines::describe(session.kernel(), address, symbol)
    )?;
    Ok(())
}

fn call(session: &mut Session, args: &Args<'_>, out: &mut dyn Write) -> Result<(), CommandError> {
    let symbol = args.text(0)?;
    let values = args
        .rest(1)
        .iter()
        .map(Token::to_arg)
        .collect::<Result<Vec<Arg>, _>>()?;
    // What the callee prints must come after what msyms printed before the call.
    out.flush()?;
    let result = session.kernel().call_symbol(symbol, &values);
    finish_call(session, result, out, format!("call {symbol}"))
}

/// Prints how a call ended: its result, or where it paused (a breakpoint or a step is not a
/// failure); anything else is the command's error.
fn finish_call(
    session: &Session,
    result: Result<u64, LoadError>,
    out: &mut dyn Write,
    context: String,
) -> Result<(), CommandError> {
    let kernel = session.kernel();
    // So what a module printed with `printf` appears before the result line even when stdout
    // is a pipe, where C stdio buffers fully.
    kernel.flush_output();
    match result {
        Ok(value) => writeln!(out, "{}", print::format_result(value))?,
        Err(LoadError::Stopped {
            stop: stop @ (Stop::Breakpoint { .. } | Stop::Stepped { .. }),
            location,
        }) => writeln!(
            out,
            "stopped: {stop}{}",
            location.map(|l| format!(" ({l})")).unwrap_or_default()
        )?,
        Err(error) => return Err(load_error(context)(error)),
    }
    Ok(())
}

/// Runs `op` on the kernel's debugger; errors (no debugger, nothing paused) name `context`.
fn with_debugger<T>(
    session: &Session,
    context: String,
    op: impl FnOnce(&dyn Debugger) -> Result<T, MachineError>,
) -> Result<T, CommandError> {
    session
        .kernel()
        .debugger()
        .and_then(|d| op(d).map_err(LoadError::Machine))
        .map_err(load_error(context))
}

/// An address given as a number, a symbol, `SYMBOL+OFF`, or `$REGISTER` of a paused call.
fn address_of(session: &Session, text: &str) -> Result<u64, CommandError> {
    if let Ok(address) = parse_address(text) {
        return Ok(address);
    }
    if let Some(register) = text.strip_prefix('$') {
        let registers = with_debugger(session, format!("`{text}`"), |d| d.registers())?;
        return registers
            .into_iter()
            .find(|(name, _)| *name == register)
            .map(|(_, value)| value)
            .ok_or_else(|| CommandError::Syntax(format!("no register `{register}`")));
    }
    let (name, offset) = match text.split_once('+') {
        Some((name, offset)) => (name, parse_address(offset).map_err(CommandError::Syntax)?),
        None => (text, 0),
    };
    let base = session
        .kernel()
        .resolve(name)
        .ok_or_else(|| CommandError::UnknownSymbol {
            name: name.to_string(),
            closest: session.closest_symbols(name),
        })?;
    Ok(base.wrapping_add(offset))
}

fn examine(
    session: &mut Session,
    args: &Args<'_>,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let address = address_of(session, args.text(0)?)?;
    let len = match args.optional(1) {
        Some(n) => parse_address(n).map_err(CommandError::Syntax)?,
        None => 64,
    };
    if len > MAX_EXAMINE {
        return Err(CommandError::Syntax(format!(
            "x shows at most {MAX_EXAMINE:#x} bytes at once, not {len:#x}"
        )));
    }
    let bytes = session
        .kernel()
        .machine()
        .read(address, len)
        .map_err(|e| load_error(format!("x {address:#x}"))(LoadError::Machine(e)))?;
    print::write_hex_dump(out, address, &bytes)?;
    Ok(())
}

/// The most bytes one `x` shows: a dump longer than this is no use at a prompt.
const MAX_EXAMINE: u64 = 1 << 20;

/// Longest instruction of any architecture dlkm runs (x86).
const MAX_INSTRUCTION: u64 = 15;

fn disassemble(
    session: &mut Session,
    args: &Args<'_>,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let address = address_of(session, args.text(0)?)?;
    let count = match args.optional(1) {
        Some(n) => parse_address(n).map_err(CommandError::Syntax)?,
        None => 16,
    };
    let kernel = session.kernel();
    let machine = kernel.machine();
    // Read what N instructions can take, or as much as is mapped up to there.
    let mut len = count.saturating_mul(MAX_INSTRUCTION).min(1 << 20);
    let code = loop {
        match machine.read(address, len) {
            Ok(code) => break code,
            Err(_) if len > MAX_INSTRUCTION => len /= 2,
            Err(e) => {
                return Err(load_error(format!("dis {address:#x}"))(LoadError::Machine(
                    e,
                )))
            }
        }
    };
    let name_of = |target: u64| kernel.describe_address(target);
    let lines = disasm::disassemble(machine.arch(), &code, address, count as usize, &name_of)
        .map_err(|e| CommandError::Syntax(e.to_string()))?;
    let labels: Vec<String> = lines
        .iter()
        .map(|line| kernel.describe_address(line.address).unwrap_or_default())
        .collect();
    let width = disasm::label_width(labels.iter().map(String::as_str));
    let mut source = lines::Annotator::new(kernel);
    for (line, label) in lines.iter().zip(&labels) {
        if let Some(source_line) = source.before(line.address) {
            writeln!(out, "{source_line}")?;
        }
        writeln!(out, "{}", disasm::format_line(line, Some((label, width))))?;
    }
    Ok(())
}

fn set_breakpoint(
    session: &mut Session,
    args: &Args<'_>,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let text = args.text(0)?;
    let address = address_of(session, text)?;
    let kernel = session.kernel();
    let id = with_debugger(session, format!("break {text}"), |d| {
        d.set_breakpoint(address)
    })?;
    let place = kernel.describe_address(address).unwrap_or_default();
    writeln!(out, "breakpoint {id} at {address:#x} {place}")?;
    Ok(())
}

fn delete_breakpoint(
    session: &mut Session,
    args: &Args<'_>,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let kernel = session.kernel();
    let debugger = kernel.debugger().map_err(load_error("delete".into()))?;
    match args.optional(0) {
        Some(n) => {
            let id = n
                .parse::<u32>()
                .map_err(|_| CommandError::Syntax(format!("`{n}` is not a breakpoint number")))?;
            debugger
                .delete_breakpoint(id)
                .map_err(|e| load_error(format!("delete {id}"))(LoadError::Machine(e)))
        }
        None => {
            for (id, address) in debugger.breakpoints() {
                let place = kernel.describe_address(address).unwrap_or_default();
                writeln!(out, "{id} {address:#x} {place}")?;
            }
            Ok(())
        }
    }
}

fn resume(session: &mut Session, _: &Args<'_>, out: &mut dyn Write) -> Result<(), CommandError> {
    out.flush()?;
    let result = session.kernel().resume(None);
    finish_call(session, result, out, "continue".into())
}

fn step(session: &mut Session, args: &Args<'_>, out: &mut dyn Write) -> Result<(), CommandError> {
    let steps = match args.optional(0) {
        Some(n) => parse_address(n).map_err(CommandError::Syntax)?.max(1),
        None => 1,
    };
    out.flush()?;
    let result = session.kernel().resume(Some(steps));
    finish_call(session, result, out, "step".into())
}

fn registers(session: &mut Session, _: &Args<'_>, out: &mut dyn Write) -> Result<(), CommandError> {
    let kernel = session.kernel();
    let registers = with_debugger(session, "regs".into(), |d| d.registers())?;
    let digits = 2 * kernel.machine().arch().word_bytes() as usize;
    for (name, value) in registers {
        let place = kernel.describe_address(value).unwrap_or_default();
        writeln!(out, "{name:<5} 0x{value:0digits$x} {place}")?;
    }
    Ok(())
}

fn backtrace(session: &mut Session, _: &Args<'_>, out: &mut dyn Write) -> Result<(), CommandError> {
    let kernel = session.kernel();
    let frames = with_debugger(session, "bt".into(), |d| d.backtrace())?;
    for (depth, address) in frames.into_iter().enumerate() {
        let place = kernel
            .describe_address(address)
            .unwrap_or_else(|| "(kernel)".into());
        writeln!(out, "#{depth} {address:#x} {place}")?;
    }
    Ok(())
}

fn hold(session: &mut Session, args: &Args<'_>, out: &mut dyn Write) -> Result<(), CommandError> {
    let target = args.text(0)?;
    let module = session.module(target)?;
    let holds = session
        .kernel()
        .hold(module.id)
        .map_err(load_error(format!("hold {target}")))?;
    writeln!(out, "{} held {holds}", module.name)?;
    Ok(())
}

fn release(
    session: &mut Session,
    args: &Args<'_>,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let target = args.text(0)?;
    let module = session.module(target)?;
    let holds = session
        .kernel()
        .release(module.id)
        .map_err(load_error(format!("release {target}")))?;
    writeln!(out, "{} held {holds}", module.name)?;
    Ok(())
}

/// The minor number of `open`/`close` (argument 1, default 0).
fn minor(args: &Args<'_>) -> Result<u64, CommandError> {
    args.optional(1)
        .map_or(Ok(0), |m| parse_address(m).map_err(CommandError::Syntax))
}

fn open(session: &mut Session, args: &Args<'_>, out: &mut dyn Write) -> Result<(), CommandError> {
    let name = args.text(0)?;
    let minor = minor(args)?;
    let opens = session
        .kernel()
        .open(name, minor)
        .map_err(load_error(format!("open {name} {minor}")))?;
    writeln!(out, "{name} open {opens}")?;
    Ok(())
}

fn close(session: &mut Session, args: &Args<'_>, out: &mut dyn Write) -> Result<(), CommandError> {
    let name = args.text(0)?;
    let minor = minor(args)?;
    let opens = session
        .kernel()
        .close(name, minor)
        .map_err(load_error(format!("close {name} {minor}")))?;
    writeln!(out, "{name} open {opens}")?;
    Ok(())
}

fn modpath(
    session: &mut Session,
    args: &Args<'_>,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    match args.optional(0) {
        Some(dir) => session.add_modpath(dir),
        None => {
            for dir in session.modpath() {
                writeln!(out, "{}", dir.display())?;
            }
            Ok(())
        }
    }
}

fn sleep(_: &mut Session, args: &Args<'_>, _: &mut dyn Write) -> Result<(), CommandError> {
    let text = args.text(0)?;
    let duration = text
        .parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| {
            args.command
                .usage_error(format!("`{text}` is not a number of seconds"))
        })?;
    std::thread::sleep(duration);
    Ok(())
}

fn help(_: &mut Session, args: &Args<'_>, out: &mut dyn Write) -> Result<(), CommandError> {
    match args.optional(0) {
        Some(name) => find(name)
            .ok_or_else(|| CommandError::UnknownCommand {
                name: name.to_string(),
                suggestions: suggest(name),
            })?
            .write_help(out)?,
        None => write_command_list(out)?,
    }
    Ok(())
}

fn quit(session: &mut Session, _: &Args<'_>, _: &mut dyn Write) -> Result<(), CommandError> {
    session.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = all_names().collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
    }

    #[test]
    fn every_command_explains_itself() {
        for c in COMMANDS {
            assert!(c.usage.starts_with(c.name), "{}", c.name);
            assert!(c.example.starts_with(c.name), "{}", c.name);
            assert!(!c.summary.is_empty() && !c.description.is_empty());
        }
    }

    /// Commands that take an address complete symbol names, `addr` among them.
    #[test]
    fn address_commands_complete_symbols() {
        for name in ["addr", "dis", "x", "break", "call", "ksym"] {
            let spec = find(name).expect(name);
            assert_eq!(spec.completes, Completes::Symbols, "{name}");
        }
        assert!(suggest("adr").contains(&"addr".to_string()));
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("lod").first().map(String::as_str), Some("load"));
        assert!(suggest("modul").contains(&"modules".to_string()));
        assert!(suggest("unlaod").contains(&"unload".to_string()));
        assert!(suggest("xyzzy-plugh").is_empty());
    }

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
