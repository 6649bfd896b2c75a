//! The interactive prompt: rustyline with history in `~/.msyms_history` and completion of
//! command, module, symbol and file names.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use dlkm_loader::Kernel;
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use crate::commands::{self, Completes};
use crate::session::{report, Session};

/// The prompt of the contract.
pub const PROMPT: &str = "msyms> ";

/// Reads commands until `quit`, `exit` or end of input. Errors of commands are reported and
/// the prompt goes on; only a failure of the terminal itself ends it with an error.
pub fn run(session: &mut Session) -> Result<(), ReadlineError> {
    let mut editor: Editor<MsymsHelper, DefaultHistory> = Editor::new()?;
    editor.set_helper(Some(MsymsHelper::new(session.shared_kernel())));
    let history = history_file();
    if let Some(path) = &history {
        // A first session has no history yet.
        let _ = editor.load_history(path);
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut err = std::io::stderr();
    while !session.is_finished() {
        if let Some(helper) = editor.helper_mut() {
            helper.modpath = session.modpath().to_vec();
        }
        let line = match editor.readline(PROMPT) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(error) => return Err(error),
        };
        if !line.trim().is_empty() {
            // History is a convenience: failing to record it is not worth a message.
            let _ = editor.add_history_entry(line.as_str());
        }
        if let Err(error) = session.execute(&line, &mut out) {
            report(&mut err, None, &error);
        }
        let _ = out.flush();
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(())
}

fn history_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".msyms_history"))
}

/// Completes the word under the cursor from what the command expects there.
pub struct MsymsHelper {
    kernel: Arc<Kernel>,
    modpath: Vec<PathBuf>,
    files: FilenameCompleter,
}

impl MsymsHelper {
    pub fn new(kernel: Arc<Kernel>) -> Self {
        MsymsHelper {
            kernel,
            modpath: Vec::new(),
            files: FilenameCompleter::new(),
        }
    }

    /// Names a word of kind `what` can be, before filtering by what was typed.
    fn names(&self, what: Completes) -> Vec<String> {
        match what {
            Completes::Nothing | Completes::Directories => Vec::new(),
            Completes::Commands => commands::all_names().map(String::from).collect(),
            Completes::Modules => self.kernel.modules().into_iter().map(|m| m.name).collect(),
            Completes::Registered => self
                .kernel
                .modules()
                .into_iter()
                .filter(|m| m.registered)
                .map(|m| m.name)
                .collect(),
            Completes::Symbols => self.symbol_names(),
            Completes::Objects => self.modpath_objects(),
        }
    }

    fn symbol_names(&self) -> Vec<String> {
        crate::session::symbol_names(&self.kernel)
    }

    /// The NAMEs `load NAME` finds in the module path.
    fn modpath_objects(&self) -> Vec<String> {
        self.modpath
            .iter()
            .filter_map(|dir| std::fs::read_dir(dir).ok())
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let path = entry.path();
                let is_object = path.extension().is_some_and(|e| e == "o");
                is_object.then(|| path.file_stem()?.to_str().map(String::from))?
            })
            .collect()
    }
}

impl Completer for MsymsHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = line.get(..pos).unwrap_or(line);
        let command_start = before.rfind(';').map_or(0, |i| i + 1);
        let word_start = before
            .rfind(char::is_whitespace)
            .map_or(0, |i| i + 1)
            .max(command_start);
        let prefix = &before[word_start..];
        let mut earlier = before[command_start..word_start].split_whitespace();
        let what = match earlier.next() {
            None => Completes::Commands,
            Some(name) => commands::find(name).map_or(Completes::Nothing, |c| c.completes),
        };
        let mut candidates: Vec<Pair> = self
            .names(what)
            .into_iter()
            .filter(|name| name.starts_with(prefix))
            .map(|name| Pair {
                display: name.clone(),
                replacement: name,
            })
            .collect();
        candidates.sort_by(|a, b| a.display.cmp(&b.display));
        candidates.dedup_by(|a, b| a.display == b.display);
        if matches!(what, Completes::Objects | Completes::Directories) {
            let (start, files) = self.files.complete(line, pos, ctx)?;
            if start == word_start || candidates.is_empty() {
                return Ok((start, candidates.into_iter().chain(files).collect()));
            }
        }
        Ok((word_start, candidates))
    }
}

impl Hinter for MsymsHelper {
    type Hint = String;
}

impl Highlighter for MsymsHelper {}

impl Validator for MsymsHelper {}

impl Helper for MsymsHelper {}
