//! The command table: every command's name, aliases, help text and handler in one place, so
//! dispatch, `help`, suggestions for mistyped names and completion never disagree.

use std::io::Write;
use std::time::{Duration, SystemTime};

use dlkm_loader::{Arg, LoadError};

use crate::error::CommandError;
use crate::parse::Token;
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
}

/// Every command, in the order `help` lists them.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "load",
        aliases: &[],
        usage: "load PATH-or-NAME",
        summary: "load a module and run its _load",
        description: "Loads the object file at PATH, or NAME.o from the first directory of the \
                      module path that has it (a file name alone that is not in the current \
                      directory is looked for there too), links it against the kernel's \
                      symbols, runs its constructors and _load. The module's name is the \
                      file's stem.",
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
        name: "modules",
        aliases: &["ms", "mlist"],
        usage: "modules",
        summary: "list the loaded modules",
        description: "Prints a table of the loaded modules: ID NAME TYPE STATE REFS DEPS BASE \
                      SIZE. REFS counts the modules that use this one, DEPS names the modules \
                      it uses.",
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
        summary: "everything about one module",
        description: "Prints a module's path, base and size, dependencies and users, load \
                      time, the stubs and GOT relaxations the linker made, the variables it got \
                      copies of, its sections and its entry points with their addresses.",
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
                      host), size, kind and state.",
        example: "ksym strlen",
        completes: Completes::Symbols,
        min_args: 1,
        max_args: Some(1),
        run: ksym,
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
    let limit = (name.chars().count() / 3).max(1) + 1;
    let mut close: Vec<(usize, &str)> = all_names()
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|&(distance, candidate)| {
            distance <= limit
                || (name.len() >= 2 && (candidate.starts_with(name) || name.starts_with(candidate)))
        })
        .collect();
    close.sort();
    close.into_iter().map(|(_, c)| c.to_string()).collect()
}

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
    let path = session.find_object(target)?;
    let kernel = session.kernel();
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

fn modules(session: &mut Session, _: &Args<'_>, out: &mut dyn Write) -> Result<(), CommandError> {
    print::write_modules(out, &session.kernel().modules())?;
    Ok(())
}

fn stat(session: &mut Session, args: &Args<'_>, out: &mut dyn Write) -> Result<(), CommandError> {
    let info = session.module(args.text(0)?)?;
    print::write_stat(out, &info, SystemTime::now())?;
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
        })?;
    print::write_kernel_symbol(out, &symbol)?;
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
    let kernel = session.kernel();
    let result = kernel.call_symbol(symbol, &values);
    // So what a module printed with `printf` appears before the result line even when stdout
    // is a pipe, where C stdio buffers fully.
    kernel.flush_output();
    let result = result.map_err(load_error(format!("call {symbol}")))?;
    writeln!(out, "{}", print::format_result(result))?;
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
