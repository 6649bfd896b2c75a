//! From text to commands: one lexer splits a line into commands (on `;` and newlines outside
//! double quotes) and each command into words, so quoting means the same everywhere — in `-c`,
//! in script files and at the prompt.

use dlkm_loader::Arg;

use crate::error::CommandError;

/// A word of a command. Quoted words stay apart from bare ones so `call f "12"` passes the
/// string "12", not the number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Word(String),
    Quoted(String),
}

impl Token {
    /// The word's text, quotes removed and escapes resolved.
    pub fn text(&self) -> &str {
        match self {
            Token::Word(s) | Token::Quoted(s) => s,
        }
    }

    /// As an argument of a call: quoted words are strings, bare words numbers.
    pub fn to_arg(&self) -> Result<Arg, CommandError> {
        match self {
            Token::Quoted(s) => Ok(Arg::Str(s.clone())),
            Token::Word(w) => parse_int(w).map(Arg::Int).map_err(|_| {
                CommandError::Syntax(format!(
                    "bad argument `{w}`: expected a number (decimal, 0x hex, negative) or a \"string\""
                ))
            }),
        }
    }
}

/// One command: its words, the first being the command's name.
pub type Command = Vec<Token>;

/// Splits `text` into commands and words.
///
/// - `;` and newlines separate commands; empty commands are dropped.
/// - Words are separated by blanks. `"…"` is one word, where `\"`, `\\`, `\n` and `\t` are
///   escapes (any other backslash stays as it is); a quote also ends a bare word before it.
/// - `#` at the start of a bare word begins a comment that runs to the end of the line.
pub fn parse_line(text: &str) -> Result<Vec<Command>, CommandError> {
    let mut commands = Vec::new();
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ';' | '\n' => {
                chars.next();
                finish_command(&mut commands, &mut words);
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => while chars.next_if(|&c| c != '\n').is_some() {},
            '"' => {
                chars.next();
                words.push(Token::Quoted(read_quoted(&mut chars)?));
            }
            _ => {
                let mut word = String::new();
                while let Some(c) = chars.next_if(|&c| !ends_word(c)) {
                    word.push(c);
                }
                words.push(Token::Word(word));
            }
        }
    }
    finish_command(&mut commands, &mut words);
    Ok(commands)
}

fn ends_word(c: char) -> bool {
    c.is_whitespace() || c == ';' || c == '"'
}

fn finish_command(commands: &mut Vec<Command>, words: &mut Vec<Token>) {
    if !words.is_empty() {
        commands.push(std::mem::take(words));
    }
}

/// Reads a quoted string after its opening quote, up to and including the closing one.
fn read_quoted(chars: &mut impl Iterator<Item = char>) -> Result<String, CommandError> {
    let mut text = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Ok(text),
            '\\' => match chars.next() {
                Some('"') => text.push('"'),
                Some('\\') => text.push('\\'),
                Some('n') => text.push('\n'),
                Some('t') => text.push('\t'),
                Some(other) => {
                    text.push('\\');
                    text.push(other);
                }
                None => break,
            },
            c => text.push(c),
        }
    }
    Err(CommandError::Syntax(format!(
        "unterminated string \"{text}"
    )))
}

/// Quotes `text` so that [`parse_line`] gives it back as one word.
pub fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// An integer as msyms takes it: decimal, `0x` hex, or negative (stored as two's complement,
/// which is what a C callee reading a signed argument sees).
pub fn parse_int(text: &str) -> Result<u64, String> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let magnitude = parse_unsigned(digits).ok_or_else(|| format!("`{text}` is not a number"))?;
    if !negative {
        return Ok(magnitude);
    }
    if magnitude > i64::MIN.unsigned_abs() {
        return Err(format!("`{text}` does not fit in 64 bits"));
    }
    Ok(magnitude.wrapping_neg())
}

/// An address: decimal or `0x` hex, never negative.
pub fn parse_address(text: &str) -> Result<u64, String> {
    parse_unsigned(text).ok_or_else(|| format!("`{text}` is not an address (decimal or 0x hex)"))
}

fn parse_unsigned(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None if text.starts_with(|c: char| c.is_ascii_digit()) => text.parse().ok(),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(commands: &[Command]) -> Vec<Vec<&str>> {
        commands
            .iter()
            .map(|c| c.iter().map(Token::text).collect())
            .collect()
    }

    #[test]
    fn splits_on_semicolons_outside_quotes() {
        let commands = parse_line(r#"load a.o; call f "x; y" 3;; modules"#).unwrap();
        assert_eq!(
            words(&commands),
            vec![
                vec!["load", "a.o"],
                vec!["call", "f", "x; y", "3"],
                vec!["modules"]
            ]
        );
        assert_eq!(commands[1][2], Token::Quoted("x; y".into()));
        assert_eq!(commands[1][3], Token::Word("3".into()));
    }

    #[test]
    fn escapes_and_comments() {
        let commands =
            parse_line("call f \"a\\\"b\\\\c\\q\" # comment; not a command\nms").unwrap();
        assert_eq!(
            words(&commands),
            vec![vec!["call", "f", "a\"b\\c\\q"], vec!["ms"]]
        );
        assert_eq!(
            parse_line("  # only a comment").unwrap(),
            Vec::<Command>::new()
        );
    }

    #[test]
    fn quote_round_trips() {
        let text = "a \"quoted\" \\ path\twith; stuff";
        let commands = parse_line(&format!("load {}", quote(text))).unwrap();
        assert_eq!(commands[0][1], Token::Quoted(text.into()));
    }

    #[test]
    fn unterminated_string_is_an_error() {
        assert!(matches!(
            parse_line("call f \"abc"),
            Err(CommandError::Syntax(_))
        ));
    }

    #[test]
    fn integers() {
        assert_eq!(parse_int("42"), Ok(42));
        assert_eq!(parse_int("0x2A"), Ok(42));
        assert_eq!(parse_int("-1"), Ok(u64::MAX));
        assert_eq!(parse_int("-0x10"), Ok(16u64.wrapping_neg()));
        assert_eq!(parse_int("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_int("-9223372036854775808"), Ok(1 << 63));
        assert!(parse_int("-9223372036854775809").is_err());
        assert!(parse_int("18446744073709551616").is_err());
        assert!(parse_int("abc").is_err());
        assert!(parse_int("").is_err());
        assert!(parse_int("-").is_err());
        assert!(parse_address("-1").is_err());
        assert_eq!(parse_address("0x1000"), Ok(0x1000));
        assert_eq!(parse_address("4096"), Ok(4096));
    }

    #[test]
    fn call_arguments() {
        assert_eq!(
            Token::Word("-7".into()).to_arg().unwrap(),
            Arg::Int((-7i64) as u64)
        );
        assert_eq!(
            Token::Quoted("12".into()).to_arg().unwrap(),
            Arg::Str("12".into())
        );
        assert!(Token::Word("twelve".into()).to_arg().is_err());
    }
}
