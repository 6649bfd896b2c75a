//! C library formatting and number parsing for modules running in the emulated machine.
//!
//! Their `printf` family and `strtod`/`strtol` calls are served host-side, and what they print
//! must be byte for byte what glibc on the target prints: these are written to glibc's rules.

/// Where the arguments of a printf-family call come from; the emulated machine implements
/// it per ABI (registers, then stack; a va_list). Errors are faults reading emulated memory.
pub trait FormatArgs {
    /// The next integer argument, `bytes` wide (4 or 8: C promotes smaller ones to int),
    /// zero-extended; the caller sign-extends when the conversion is signed.
    fn next_int(&mut self, bytes: u8) -> Result<u64, FormatError>;
    /// The next `double` argument (varargs promote float to double).
    fn next_double(&mut self) -> Result<f64, FormatError>;
    /// The bytes of the NUL-terminated string at `address`, without the NUL, reading at most
    /// `limit` bytes when Some (for %.Ns: the string need not be terminated then).
    fn c_string(&mut self, address: u64, limit: Option<usize>) -> Result<Vec<u8>, FormatError>;
}

/// Why a format could not be rendered; the caller turns it into a fault of the module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("cannot read memory at {address:#x}")]
    Memory { address: u64 },
    #[error("unsupported conversion `%{conversion}` in a format string")]
    Unsupported { conversion: String },
}

/// The data model of the target, for `long`, `size_t`, pointers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataModel {
    Ilp32,
    Lp64,
}

impl DataModel {
    /// The width of `long`, which `size_t`, `ptrdiff_t` and pointers share in ILP32 and LP64.
    fn long_bytes(self) -> u8 {
        match self {
            DataModel::Ilp32 => 4,
            DataModel::Lp64 => 8,
        }
    }
}

/// Formats like C's printf: returns the bytes that would be written (no NUL).
pub fn format(
    fmt: &[u8],
    model: DataModel,
    args: &mut dyn FormatArgs,
) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::with_capacity(fmt.len());
    let mut rest = fmt;
    while let Some(percent) = rest.iter().position(|&byte| byte == b'%') {
        out.extend_from_slice(&rest[..percent]);
        let directive = &rest[percent + 1..];
        let (spec, used) = Spec::parse(directive, args)?;
        convert(&spec, &directive[..used], model, args, &mut out)?;
        rest = &directive[used..];
    }
    out.extend_from_slice(rest);
    Ok(out)
}

#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    left: bool,
    plus: bool,
    space: bool,
    alt: bool,
    zero: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Int,
    Char,
    Short,
    Long,
    LongLong,
    LongDouble,
    /// `z`, `t`: as wide as `long` in both data models dlkm runs.
    Size,
}

impl Length {
    /// How many bytes the argument takes (C promotes char and short to int).
    fn argument_bytes(self, model: DataModel) -> u8 {
        match self {
            Length::Int | Length::Char | Length::Short => 4,
            Length::Long | Length::Size => model.long_bytes(),
            Length::LongLong | Length::LongDouble => 8,
        }
    }

    /// How many bits of the argument the conversion looks at (`%hhd` of 300 prints 44).
    fn value_bits(self, model: DataModel) -> u32 {
        match self {
            Length::Char => 8,
            Length::Short => 16,
            _ => u32::from(self.argument_bytes(model)) * 8,
        }
    }
}

/// One parsed `%` directive.
#[derive(Debug, Clone, Copy)]
struct Spec {
    flags: Flags,
    width: usize,
    precision: Option<usize>,
    length: Length,
    /// The conversion byte, 0 when the format ends inside the directive.
    conversion: u8,
}

impl Spec {
    /// Parses the directive after a `%`, returning it and its length including the conversion
    /// byte; `*` widths and precisions consume arguments in order, as in C.
    fn parse(directive: &[u8], args: &mut dyn FormatArgs) -> Result<(Spec, usize), FormatError> {
        let mut cursor = Cursor {
            bytes: directive,
            pos: 0,
        };
        let mut flags = cursor.flags();
        let width = match cursor.count(args)? {
            Some(width) if width < 0 => {
                flags.left = true;
                width.unsigned_abs() as usize
            }
            width => width.unwrap_or(0) as usize,
        };
        let precision = if cursor.eat(b'.') {
            match cursor.count(args)? {
                Some(precision) if precision < 0 => None,
                precision => Some(precision.unwrap_or(0) as usize),
            }
        } else {
            None
        };
        let length = cursor.length();
        let conversion = cursor.peek().unwrap_or(0);
        let used = (cursor.pos + 1).min(directive.len());
        let spec = Spec {
            flags,
            width,
            precision,
            length,
            conversion,
        };
        Ok((spec, used))
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    fn flags(&mut self) -> Flags {
        let mut flags = Flags::default();
        while let Some(byte) = self.peek() {
            match byte {
                b'-' => flags.left = true,
                b'+' => flags.plus = true,
                b' ' => flags.space = true,
                b'#' => flags.alt = true,
                b'0' => flags.zero = true,
                // Grouping and locale digits change nothing in the C locale.
                b'\'' | b'I' => {}
                _ => break,
            }
            self.pos += 1;
        }
        flags
    }

    /// A width or precision: digits, or `*` taking an int argument. C's counts are ints,
    /// so both saturate at `i32::MAX`.
    fn count(&mut self, args: &mut dyn FormatArgs) -> Result<Option<i64>, FormatError> {
        if self.eat(b'*') {
            let value = args.next_int(4)? as u32 as i32;
            return Ok(Some(i64::from(value)));
        }
        let start = self.pos;
        let mut value = 0i64;
        while let Some(digit) = self.peek().filter(u8::is_ascii_digit) {
            value = (value * 10 + i64::from(digit - b'0')).min(i64::from(i32::MAX));
            self.pos += 1;
        }
        Ok((self.pos > start).then_some(value))
    }

    fn length(&mut self) -> Length {
        let length = match self.peek() {
            Some(b'h') if self.bytes.get(self.pos + 1) == Some(&b'h') => {
                self.pos += 1;
                Length::Char
            }
            Some(b'h') => Length::Short,
            Some(b'l') if self.bytes.get(self.pos + 1) == Some(&b'l') => {
                self.pos += 1;
                Length::LongLong
            }
            Some(b'l') => Length::Long,
            Some(b'q' | b'j') => Length::LongLong,
            Some(b'L') => Length::LongDouble,
            Some(b'z' | b'Z' | b't') => Length::Size,
            _ => return Length::Int,
        };
        self.pos += 1;
        length
    }
}

/// A converted value before padding: `prefix` (sign, `0x`) stays left of any zero padding.
struct Field {
    prefix: Vec<u8>,
    body: Vec<u8>,
    zero_pad: bool,
}

impl Field {
    fn text(body: Vec<u8>) -> Field {
        Field {
            prefix: Vec::new(),
            body,
            zero_pad: false,
        }
    }

    /// Pads to the width: spaces after (`-`), zeros between prefix and body, or spaces before.
    fn write(self, spec: &Spec, out: &mut Vec<u8>) {
        let fill = spec
            .width
            .saturating_sub(self.prefix.len() + self.body.len());
        if spec.flags.left {
            out.extend_from_slice(&self.prefix);
            out.extend_from_slice(&self.body);
            out.resize(out.len() + fill, b' ');
        } else if self.zero_pad {
            out.extend_from_slice(&self.prefix);
            out.resize(out.len() + fill, b'0');
            out.extend_from_slice(&self.body);
        } else {
            out.resize(out.len() + fill, b' ');
            out.extend_from_slice(&self.prefix);
            out.extend_from_slice(&self.body);
        }
    }
}

/// The error for a directive this formatter does not render, naming it as written.
fn unsupported(directive: &[u8]) -> FormatError {
    FormatError::Unsupported {
        conversion: String::from_utf8_lossy(directive).into_owned(),
    }
}

fn convert(
    spec: &Spec,
    directive: &[u8],
    model: DataModel,
    args: &mut dyn FormatArgs,
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    if spec.conversion == b'%' {
        // glibc ignores flags and width on `%%`.
        out.push(b'%');
        return Ok(());
    }
    let field = match (spec.conversion, spec.length) {
        (b'd' | b'i', length) => {
            let value = next_signed(args, length, model)?;
            integer_field(
                spec,
                value.unsigned_abs(),
                sign_prefix(value < 0, spec.flags),
            )
        }
        (b'u' | b'o' | b'x' | b'X' | b'b' | b'B', length) => {
            let value = next_unsigned(args, length, model)?;
            integer_field(spec, value, b"")
        }
        (b'p', _) => pointer_field(spec, args.next_int(model.long_bytes())?),
        // `%lc` and `%ls` are wide characters: not rendered.
        (b'c', length) if length != Length::Long => Field::text(vec![args.next_int(4)? as u8]),
        (b's', length) if length != Length::Long => string_field(spec, model, args)?,
        (b'f' | b'F' | b'e' | b'E' | b'g' | b'G' | b'a' | b'A', Length::LongDouble)
            if model == DataModel::Lp64 =>
        {
            // aarch64's long double is 128-bit: not rendered. MIPS o32's is a double.
            return Err(unsupported(directive));
        }
        (b'f' | b'F' | b'e' | b'E' | b'g' | b'G' | b'a' | b'A', _) => {
            float_field(spec, args.next_double()?)
        }
        _ => return Err(unsupported(directive)),
    };
    field.write(spec, out);
    Ok(())
}

fn next_unsigned(
    args: &mut dyn FormatArgs,
    length: Length,
    model: DataModel,
) -> Result<u64, FormatError> {
    let value = args.next_int(length.argument_bytes(model))?;
    Ok(value & low_mask(length.value_bits(model)))
}

fn next_signed(
    args: &mut dyn FormatArgs,
    length: Length,
    model: DataModel,
) -> Result<i64, FormatError> {
    let unused = 64 - length.value_bits(model);
    let value = next_unsigned(args, length, model)?;
    Ok(((value << unused) as i64) >> unused)
}

/// The low `bits` bits set (all of them from 64 on).
fn low_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    }
}

/// The sign C writes before a number: `-`, or `+`/space on request for positive ones.
fn sign_prefix(negative: bool, flags: Flags) -> &'static [u8] {
    match (negative, flags.plus, flags.space) {
        (true, _, _) => b"-",
        (false, true, _) => b"+",
        (false, false, true) => b" ",
        (false, false, false) => b"",
    }
}

fn integer_field(spec: &Spec, magnitude: u64, sign: &[u8]) -> Field {
    let (mut digits, alt_prefix): (Vec<u8>, &[u8]) = match spec.conversion {
        b'o' => (format!("{magnitude:o}").into_bytes(), b""),
        b'x' => (format!("{magnitude:x}").into_bytes(), b"0x"),
        b'X' => (format!("{magnitude:X}").into_bytes(), b"0X"),
        b'b' => (format!("{magnitude:b}").into_bytes(), b"0b"),
        b'B' => (format!("{magnitude:b}").into_bytes(), b"0B"),
        _ => (magnitude.to_string().into_bytes(), b""),
    };
    if spec.precision == Some(0) && magnitude == 0 {
        digits.clear();
    }
    if let Some(precision) = spec.precision {
        let zeros = precision.saturating_sub(digits.len());
        digits.splice(0..0, std::iter::repeat_n(b'0', zeros));
    }
    if spec.flags.alt && spec.conversion == b'o' && digits.first() != Some(&b'0') {
        digits.insert(0, b'0');
    }
    let mut prefix = sign.to_vec();
    if spec.flags.alt && magnitude != 0 {
        prefix.extend_from_slice(alt_prefix);
    }
    Field {
        prefix,
        body: digits,
        zero_pad: spec.flags.zero && spec.precision.is_none(),
    }
}

/// glibc prints pointers as `%#lx` keeping the other flags, and NULL as `(nil)`.
fn pointer_field(spec: &Spec, address: u64) -> Field {
    if address == 0 {
        return Field::text(b"(nil)".to_vec());
    }
    let as_hex = Spec {
        conversion: b'x',
        flags: Flags {
            alt: true,
            ..spec.flags
        },
        ..*spec
    };
    integer_field(&as_hex, address, sign_prefix(false, spec.flags))
}

/// glibc prints NULL as `(null)`, or nothing when the precision cannot hold all of it.
fn string_field(
    spec: &Spec,
    model: DataModel,
    args: &mut dyn FormatArgs,
) -> Result<Field, FormatError> {
    let address = args.next_int(model.long_bytes())?;
    if address != 0 {
        return Ok(Field::text(args.c_string(address, spec.precision)?));
    }
    let null = if spec.precision.is_some_and(|precision| precision < 6) {
        Vec::new()
    } else {
        b"(null)".to_vec()
    };
    Ok(Field::text(null))
}

fn float_field(spec: &Spec, value: f64) -> Field {
    let flags = spec.flags;
    let mut prefix = sign_prefix(value.is_sign_negative(), flags).to_vec();
    let magnitude = value.abs();
    let mut body = if value.is_nan() {
        "nan".to_owned()
    } else if value.is_infinite() {
        "inf".to_owned()
    } else {
        match spec.conversion.to_ascii_lowercase() {
            b'f' => fixed(magnitude, spec.precision.unwrap_or(6), flags.alt),
            b'e' => scientific(magnitude, spec.precision.unwrap_or(6), flags.alt),
            b'g' => general(magnitude, spec.precision, flags.alt),
            _ => {
                prefix.extend_from_slice(b"0x");
                hexadecimal(magnitude, spec.precision, flags.alt)
            }
        }
    };
    if spec.conversion.is_ascii_uppercase() {
        prefix.make_ascii_uppercase();
        body.make_ascii_uppercase();
    }
    Field {
        prefix,
        body: body.into_bytes(),
        zero_pad: flags.zero && value.is_finite(),
    }
}

/// `%f`: Rust's fixed formatting is exact and rounds half to even, as glibc does.
fn fixed(magnitude: f64, precision: usize, alt: bool) -> String {
    let mut text = format!("{magnitude:.precision$}");
    if alt && precision == 0 {
        text.push('.');
    }
    text
}

/// `%e`: Rust's exact digits with C's exponent (sign, at least two digits).
fn scientific(magnitude: f64, precision: usize, alt: bool) -> String {
    let (mantissa, exponent) = scientific_parts(magnitude, precision);
    join_scientific(&mantissa, exponent, alt)
}

fn scientific_parts(magnitude: f64, precision: usize) -> (String, i32) {
    let text = format!("{magnitude:.precision$e}");
    let (mantissa, exponent) = text
        .split_once('e')
        .expect("Rust's `{:e}` always writes an exponent");
    let exponent = exponent
        .parse()
        .expect("Rust's `{:e}` exponent is a small integer");
    (mantissa.to_owned(), exponent)
}

fn join_scientific(mantissa: &str, exponent: i32, alt: bool) -> String {
    let point = if alt && !mantissa.contains('.') {
        "."
    } else {
        ""
    };
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}{point}e{sign}{:02}", exponent.unsigned_abs())
}

/// `%g`: `%e` or `%f` by the exponent after rounding to P significant digits, then trailing
/// zeros dropped unless `#`.
fn general(magnitude: f64, precision: Option<usize>, alt: bool) -> String {
    let significant = precision.unwrap_or(6).max(1);
    let (mantissa, exponent) = scientific_parts(magnitude, significant - 1);
    let text = if exponent < -4 || i64::from(exponent) >= significant as i64 {
        join_scientific(&mantissa, exponent, alt)
    } else {
        let decimals = significant as i64 - 1 - i64::from(exponent);
        fixed(magnitude, decimals as usize, alt)
    };
    if alt {
        text
    } else {
        strip_fraction_zeros(&text)
    }
}

fn strip_fraction_zeros(text: &str) -> String {
    let (number, exponent) = text.split_at(text.find('e').unwrap_or(text.len()));
    if !number.contains('.') {
        return text.to_owned();
    }
    let number = number.trim_end_matches('0').trim_end_matches('.');
    format!("{number}{exponent}")
}

/// `%a` without the `0x`, glibc style: `1.8p+3`, subnormals as `0.xxxp-1022`, and rounding
/// that carries into the leading digit (`%.0a` of 1.5 is `0x2p+0`).
fn hexadecimal(magnitude: f64, precision: Option<usize>, alt: bool) -> String {
    const FRACTION_DIGITS: usize = 13;
    let bits = magnitude.to_bits();
    let biased = (bits >> 52) as i64;
    let fraction = bits & low_mask(52);
    let (lead, exponent) = match (biased, fraction) {
        (0, 0) => (0, 0),
        (0, _) => (0, -1022),
        _ => (1, biased - 1023),
    };
    let (lead, digits) = match precision {
        Some(kept) if kept < FRACTION_DIGITS => {
            let dropped = 4 * (FRACTION_DIGITS - kept) as u32;
            let rounded = round_shift((lead << 52) | fraction, dropped, false);
            let kept_bits = 4 * kept as u32;
            let digits = if kept == 0 {
                String::new()
            } else {
                format!("{:0kept$x}", rounded & low_mask(kept_bits))
            };
            (rounded >> kept_bits, digits)
        }
        Some(kept) => (lead, format!("{fraction:013x}{}", "0".repeat(kept - 13))),
        None => {
            let digits = format!("{fraction:013x}");
            (lead, digits.trim_end_matches('0').to_owned())
        }
    };
    let point = if digits.is_empty() && !alt { "" } else { "." };
    format!("{lead:x}{point}{digits}p{exponent:+}")
}

/// `value >> shift` rounded to nearest, ties to even; `sticky` says nonzero bits lie below
/// `value` already (from digits that did not fit).
fn round_shift(value: u64, shift: u32, sticky: bool) -> u64 {
    if shift == 0 {
        return value;
    }
    if shift > 64 {
        return 0;
    }
    let wide = u128::from(value);
    let kept = (wide >> shift) as u64;
    let rest = wide & ((1u128 << shift) - 1);
    let half = 1u128 << (shift - 1);
    let round_up = rest > half || (rest == half && (sticky || kept & 1 == 1));
    kept + u64::from(round_up)
}

/// C's strtod on the bytes at the start of `text` (leading whitespace skipped): the value and
/// how many bytes were consumed (0 when no conversion: then the value is 0.0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Strtod {
    pub value: f64,
    pub consumed: usize,
    /// ERANGE: the result overflowed to ±HUGE_VAL, or is tiny (subnormal or 0) and inexact.
    pub range_error: bool,
}

/// C's strtod: decimal and hexadecimal floats correctly rounded, `inf`, `infinity`, `nan`,
/// `nan(chars)` in any case, and a sign.
pub fn strtod(text: &[u8]) -> Strtod {
    let (start, negative) = skip_space_and_sign(text);
    let parsed = parse_special(text, start)
        .or_else(|| parse_hex_float(text, start))
        .or_else(|| parse_decimal(text, start));
    match parsed {
        Some(parsed) => Strtod {
            value: if negative {
                -parsed.value
            } else {
                parsed.value
            },
            ..parsed
        },
        None => Strtod {
            value: 0.0,
            consumed: 0,
            range_error: false,
        },
    }
}

/// Skips C's whitespace and an optional sign: the index after them and whether it was `-`.
fn skip_space_and_sign(text: &[u8]) -> (usize, bool) {
    let start = text
        .iter()
        .position(|&byte| !matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
        .unwrap_or(text.len());
    match text.get(start) {
        Some(b'-') => (start + 1, true),
        Some(b'+') => (start + 1, false),
        _ => (start, false),
    }
}

fn starts_with_ignore_case(text: &[u8], word: &[u8]) -> bool {
    text.get(..word.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(word))
}

fn parse_special(text: &[u8], start: usize) -> Option<Strtod> {
    let rest = &text[start..];
    let (value, length) = if starts_with_ignore_case(rest, b"infinity") {
        (f64::INFINITY, 8)
    } else if starts_with_ignore_case(rest, b"inf") {
        (f64::INFINITY, 3)
    } else if starts_with_ignore_case(rest, b"nan") {
        nan_with_payload(&rest[3..])
    } else {
        return None;
    };
    Some(Strtod {
        value,
        consumed: start + length,
        range_error: false,
    })
}

/// A quiet NaN and the length of `nan` plus its `(chars)`: glibc puts the chars, read as an
/// integer, into the NaN's payload.
fn nan_with_payload(after_nan: &[u8]) -> (f64, usize) {
    const QUIET_NAN: u64 = 0x7ff8_0000_0000_0000;
    let chars = after_nan.get(1..).unwrap_or_default();
    let inside = chars
        .iter()
        .take_while(|&&byte| byte.is_ascii_alphanumeric() || byte == b'_')
        .count();
    if after_nan.first() != Some(&b'(') || chars.get(inside) != Some(&b')') {
        return (f64::from_bits(QUIET_NAN), 3);
    }
    let payload = strtol(&chars[..inside], 0, false, 64);
    let payload = if payload.consumed == inside && inside > 0 {
        payload.value & low_mask(51)
    } else {
        0
    };
    (f64::from_bits(QUIET_NAN | payload), 3 + inside + 2)
}

/// An optional exponent at `at` (`marker`, sign, at least one digit): its value, saturated
/// far beyond any double's range, and where it ends; `(0, at)` when there is none.
fn parse_exponent(text: &[u8], at: usize, marker: u8) -> (i64, usize) {
    if !text
        .get(at)
        .is_some_and(|byte| byte.eq_ignore_ascii_case(&marker))
    {
        return (0, at);
    }
    let (digits_start, negative) = match text.get(at + 1) {
        Some(b'-') => (at + 2, true),
        Some(b'+') => (at + 2, false),
        _ => (at + 1, false),
    };
    let digits = count_digits(text, digits_start, 10);
    if digits == 0 {
        return (0, at);
    }
    let value = text[digits_start..digits_start + digits]
        .iter()
        .fold(0i64, |value, digit| {
            (value * 10 + i64::from(digit - b'0')).min(1 << 40)
        });
    (if negative { -value } else { value }, digits_start + digits)
}

/// How many digits of `radix` start at `at`.
fn count_digits(text: &[u8], at: usize, radix: u32) -> usize {
    text.get(at..)
        .unwrap_or_default()
        .iter()
        .take_while(|&&byte| char::from(byte).is_digit(radix))
        .count()
}

/// The digits of a decimal or hexadecimal mantissa: integer part, then fraction part.
struct Mantissa<'a> {
    integer: &'a [u8],
    fraction: &'a [u8],
    end: usize,
}

/// `digits[.digits]` or `.digits` at `at`, in `radix`; None without any digit.
fn parse_mantissa(text: &[u8], at: usize, radix: u32) -> Option<Mantissa<'_>> {
    let integer_end = at + count_digits(text, at, radix);
    let (fraction_start, fraction_end) = if text.get(integer_end) == Some(&b'.') {
        let start = integer_end + 1;
        (start, start + count_digits(text, start, radix))
    } else {
        (integer_end, integer_end)
    };
    (integer_end > at || fraction_end > fraction_start).then(|| Mantissa {
        integer: &text[at..integer_end],
        fraction: &text[fraction_start..fraction_end],
        end: fraction_end,
    })
}

fn parse_decimal(text: &[u8], start: usize) -> Option<Strtod> {
    let mantissa = parse_mantissa(text, start, 10)?;
    let (exponent, end) = parse_exponent(text, mantissa.end, b'e');
    let span = std::str::from_utf8(&text[start..end]).ok()?;
    let value: f64 = span.parse().ok()?;
    let tiny_and_inexact =
        value < f64::MIN_POSITIVE && !decimal_is_exact(&mantissa, exponent, value);
    Some(Strtod {
        value,
        consumed: end,
        range_error: value.is_infinite() || tiny_and_inexact,
    })
}

/// Whether the decimal `mantissa × 10^exponent` is exactly `value`, comparing digit strings:
/// Rust's fixed-precision formatting writes a double's exact expansion.
fn decimal_is_exact(mantissa: &Mantissa<'_>, exponent: i64, value: f64) -> bool {
    let digits: Vec<u8> = mantissa
        .integer
        .iter()
        .chain(mantissa.fraction)
        .copied()
        .collect();
    let input = canonical_decimal(&digits, exponent - mantissa.fraction.len() as i64);
    // A subnormal's expansion has at most 767 significant digits.
    let (expansion, expansion_exponent) = scientific_parts(value, 800);
    let expansion_digits: Vec<u8> = expansion.bytes().filter(u8::is_ascii_digit).collect();
    let output = canonical_decimal(&expansion_digits, i64::from(expansion_exponent) - 800);
    input == output
}

/// `digits × 10^exponent` without leading or trailing zero digits, so equal values compare
/// equal; zero is the empty digit string with exponent 0.
fn canonical_decimal(digits: &[u8], exponent: i64) -> (&[u8], i64) {
    let first = digits.iter().position(|&digit| digit != b'0');
    let last = digits.iter().rposition(|&digit| digit != b'0');
    match (first, last) {
        (Some(first), Some(last)) => (
            &digits[first..=last],
            exponent + (digits.len() - 1 - last) as i64,
        ),
        _ => (&[], 0),
    }
}

/// `0x` hexadecimal floats; None when no hex digit follows, so that the `0` parses as decimal.
fn parse_hex_float(text: &[u8], start: usize) -> Option<Strtod> {
    if !starts_with_ignore_case(&text[start..], b"0x") {
        return None;
    }
    let mantissa = parse_mantissa(text, start + 2, 16)?;
    let (significand, scale, sticky) = hex_significand(&mantissa);
    let (exponent, end) = parse_exponent(text, mantissa.end, b'p');
    let (value, inexact) = compose_double(significand, scale.saturating_add(exponent), sticky);
    Some(Strtod {
        value,
        consumed: end,
        range_error: value.is_infinite() || (value < f64::MIN_POSITIVE && inexact),
    })
}

/// The hex digits as `significand × 2^scale`, keeping the first 60 bits' worth; `sticky`
/// says a dropped digit was nonzero.
fn hex_significand(mantissa: &Mantissa<'_>) -> (u64, i64, bool) {
    let mut significand = 0u64;
    let mut scale = 0i64;
    let mut sticky = false;
    let digits = mantissa.integer.iter().map(|digit| (digit, false));
    let fraction = mantissa.fraction.iter().map(|digit| (digit, true));
    for (&digit, in_fraction) in digits.chain(fraction) {
        let value = char::from(digit).to_digit(16).unwrap_or(0);
        if significand >> 60 == 0 {
            significand = significand << 4 | u64::from(value);
            scale -= if in_fraction { 4 } else { 0 };
        } else {
            sticky |= value != 0;
            scale += if in_fraction { 0 } else { 4 };
        }
    }
    (significand, scale, sticky)
}

/// The double nearest `significand × 2^scale` (ties to even) and whether it is inexact.
fn compose_double(significand: u64, scale: i64, sticky: bool) -> (f64, bool) {
    if significand == 0 {
        return (0.0, false);
    }
    let leading = significand.leading_zeros();
    let normalized = significand << leading;
    // The unbiased exponent of the value: `normalized` holds 1.xxx in its top bit.
    let exponent = scale - i64::from(leading) + 63;
    if exponent > 1023 {
        return (f64::INFINITY, true);
    }
    let subnormal_shift = (-1022 - exponent).clamp(0, 128) as u32;
    let shift = 11 + subnormal_shift;
    let kept = round_shift(normalized, shift, sticky);
    let inexact = sticky || normalized & low_mask(shift) != 0;
    // Adding the kept bits (implicit bit included) to the exponent field lets a rounding carry
    // move into the exponent, and a subnormal's field of 0 comes out right.
    let field = if exponent >= -1022 {
        ((exponent + 1022) as u64) << 52
    } else {
        0
    };
    let bits = field + kept;
    if bits >= f64::INFINITY.to_bits() {
        return (f64::INFINITY, true);
    }
    (f64::from_bits(bits), inexact)
}

/// C's strtol/strtoul/strtoll/strtoull core: the value as a u64 bit pattern (sign-extended
/// for signed), consumed bytes (0 if no digits) and ERANGE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strtol {
    pub value: u64,
    pub consumed: usize,
    pub range_error: bool,
}

/// C's strtol family: whitespace, sign, base 0 (`0x` / `0` prefixes) or 2..=36. `signed`
/// clamps to the `bits`-wide signed range; unsigned negation wraps modulo 2^bits and overflow
/// gives the maximum. An invalid base converts nothing (C's EINVAL).
pub fn strtol(text: &[u8], base: u32, signed: bool, bits: u32) -> Strtol {
    let none = Strtol {
        value: 0,
        consumed: 0,
        range_error: false,
    };
    if base == 1 || base > 36 || bits == 0 || bits > 64 {
        return none;
    }
    let (start, negative) = skip_space_and_sign(text);
    let (radix, digits_start) = integer_radix(text, start, base);
    let digits = count_digits(text, digits_start, radix);
    if digits == 0 {
        return none;
    }
    let (magnitude, overflow) = text[digits_start..digits_start + digits].iter().fold(
        (0u64, false),
        |(value, overflow), &digit| {
            let digit = u64::from(char::from(digit).to_digit(radix).unwrap_or(0));
            match value
                .checked_mul(u64::from(radix))
                .and_then(|v| v.checked_add(digit))
            {
                Some(value) => (value, overflow),
                None => (u64::MAX, true),
            }
        },
    );
    let (value, range_error) = if signed {
        clamp_signed(magnitude, overflow, negative, bits)
    } else {
        clamp_unsigned(magnitude, overflow, negative, bits)
    };
    Strtol {
        value,
        consumed: digits_start + digits,
        range_error,
    }
}

/// The radix and where digits start: `0x` is skipped only when a hex digit follows it.
fn integer_radix(text: &[u8], at: usize, base: u32) -> (u32, usize) {
    let hex_prefix =
        starts_with_ignore_case(&text[at..], b"0x") && count_digits(text, at + 2, 16) > 0;
    match base {
        0 | 16 if hex_prefix => (16, at + 2),
        0 if text.get(at) == Some(&b'0') => (8, at),
        0 => (10, at),
        _ => (base, at),
    }
}

fn clamp_signed(magnitude: u64, overflow: bool, negative: bool, bits: u32) -> (u64, bool) {
    let max = low_mask(bits) >> 1;
    let min_magnitude = max + 1;
    if !negative && (overflow || magnitude > max) {
        (max, true)
    } else if negative && (overflow || magnitude > min_magnitude) {
        (min_magnitude.wrapping_neg(), true)
    } else if negative {
        (magnitude.wrapping_neg(), false)
    } else {
        (magnitude, false)
    }
}

fn clamp_unsigned(magnitude: u64, overflow: bool, negative: bool, bits: u32) -> (u64, bool) {
    let max = low_mask(bits);
    if overflow || magnitude > max {
        (max, true)
    } else if negative {
        (magnitude.wrapping_neg() & max, false)
    } else {
        (magnitude, false)
    }
}

#[cfg(test)]
// 3.14159 and friends are the inputs C programs print, not approximations of π.
#[allow(clippy::approx_constant)]
mod tests {
    use super::*;

    /// A C argument as the caller passed it.
    #[derive(Debug, Clone, Copy)]
    enum Arg {
        Int(i64),
        Double(f64),
        Str(&'static str),
    }

    /// Arguments in order; a string's address encodes its index, as if it lived in memory.
    struct TestArgs {
        args: Vec<Arg>,
        next: usize,
    }

    const STRING_BASE: u64 = 0x10_0000;

    impl TestArgs {
        fn take(&mut self) -> Arg {
            let arg = self.args[self.next];
            self.next += 1;
            arg
        }
    }

    impl FormatArgs for TestArgs {
        fn next_int(&mut self, bytes: u8) -> Result<u64, FormatError> {
            let index = self.next as u64;
            let value = match self.take() {
                Arg::Int(value) => value as u64,
                Arg::Str(_) => STRING_BASE + (index << 8),
                Arg::Double(value) => panic!("double {value} read as an integer"),
            };
            Ok(value & low_mask(u32::from(bytes) * 8))
        }

        fn next_double(&mut self) -> Result<f64, FormatError> {
            match self.take() {
                Arg::Double(value) => Ok(value),
                other => panic!("{other:?} read as a double"),
            }
        }

        fn c_string(&mut self, address: u64, limit: Option<usize>) -> Result<Vec<u8>, FormatError> {
            let index = address.wrapping_sub(STRING_BASE) >> 8;
            match self.args.get(index as usize) {
                Some(Arg::Str(text)) if address & 0xff == 0 => {
                    let bytes = text.as_bytes();
                    Ok(bytes[..limit.unwrap_or(bytes.len()).min(bytes.len())].to_vec())
                }
                _ => Err(FormatError::Memory { address }),
            }
        }
    }

    fn render(fmt: &str, model: DataModel, args: &[Arg]) -> Result<String, FormatError> {
        let mut args = TestArgs {
            args: args.to_vec(),
            next: 0,
        };
        let bytes = format(fmt.as_bytes(), model, &mut args)?;
        assert_eq!(
            args.next,
            args.args.len(),
            "arguments left over for {fmt:?}"
        );
        Ok(String::from_utf8(bytes).expect("test output is UTF-8"))
    }

    fn lp64(fmt: &str, args: &[Arg]) -> String {
        render(fmt, DataModel::Lp64, args).expect(fmt)
    }

    fn ilp32(fmt: &str, args: &[Arg]) -> String {
        render(fmt, DataModel::Ilp32, args).expect(fmt)
    }

    use Arg::{Double as D, Int as I, Str as S};

    #[test]
    fn plain_text_and_percent() {
        assert_eq!(lp64("hello, world\n", &[]), "hello, world\n");
        assert_eq!(lp64("100%% [%5%]", &[]), "100% [%]");
        assert_eq!(lp64("", &[]), "");
    }

    #[test]
    fn signed_integers_with_flags_width_and_precision() {
        let cases: &[(&str, i64, &str)] = &[
            ("[%d]", 42, "[42]"),
            ("[%i]", -42, "[-42]"),
            ("[%-5d|]", 42, "[42   |]"),
            ("[%+d]", 42, "[+42]"),
            ("[% d]", 42, "[ 42]"),
            ("[%+ d]", 42, "[+42]"),
            ("[%05d]", -42, "[-0042]"),
            ("[%-05d|]", 42, "[42   |]"),
            ("[%5.3d]", -7, "[ -007]"),
            ("[%05.3d]", -7, "[ -007]"),
            ("[%.0d]", 0, "[]"),
            ("[%5.0d|]", 0, "[     |]"),
            ("[%+.0d]", 0, "[+]"),
            ("[%'d]", 1234567, "[1234567]"),
        ];
        for &(fmt, value, expected) in cases {
            assert_eq!(lp64(fmt, &[I(value)]), expected, "{fmt}");
        }
    }

    #[test]
    fn unsigned_conversions() {
        let cases: &[(&str, i64, &str)] = &[
            ("[%u]", -1, "[4294967295]"),
            ("[%x]", 255, "[ff]"),
            ("[%X]", 255, "[FF]"),
            ("[%#X]", 255, "[0XFF]"),
            ("[%#x]", 0, "[0]"),
            ("[%#o]", 8, "[010]"),
            ("[%#o]", 0, "[0]"),
            ("[%#.0o]", 0, "[0]"),
            ("[%#.3o]", 8, "[010]"),
            ("[%o]", 8, "[10]"),
            ("[%#5.3x]", 1, "[0x001]"),
            ("[%#5x]", 10, "[  0xa]"),
            ("[%#08x]", 10, "[0x00000a]"),
            ("[%-#8o|]", 8, "[010     |]"),
            ("[%+u]", 5, "[5]"),
            ("[% u]", 5, "[5]"),
            ("[%+x]", 5, "[5]"),
            ("[%b]", 5, "[101]"),
            ("[%#b]", 5, "[0b101]"),
            ("[%#B]", 5, "[0B101]"),
        ];
        for &(fmt, value, expected) in cases {
            assert_eq!(lp64(fmt, &[I(value)]), expected, "{fmt}");
        }
    }

    #[test]
    fn length_modifiers_follow_the_data_model() {
        assert_eq!(lp64("%lx", &[I(-1)]), "ffffffffffffffff");
        assert_eq!(ilp32("%lx", &[I(-1)]), "ffffffff");
        assert_eq!(lp64("%lx", &[I(-2)]), "fffffffffffffffe");
        assert_eq!(ilp32("%lx", &[I(-2)]), "fffffffe");
        assert_eq!(lp64("%x", &[I(-1)]), "ffffffff");
        assert_eq!(lp64("%ld", &[I(-3)]), "-3");
        assert_eq!(ilp32("%ld", &[I(-3)]), "-3");
        assert_eq!(lp64("%lu", &[I(-4)]), "18446744073709551612");
        assert_eq!(ilp32("%lu", &[I(-4)]), "4294967292");
        assert_eq!(lp64("%lld", &[I(i64::MIN)]), "-9223372036854775808");
        assert_eq!(ilp32("%lld", &[I(i64::MIN)]), "-9223372036854775808");
        assert_eq!(ilp32("%llu", &[I(-1)]), "18446744073709551615");
        assert_eq!(ilp32("%llx", &[I(-1)]), "ffffffffffffffff");
        assert_eq!(ilp32("%qd", &[I(-7)]), "-7");
        assert_eq!(ilp32("%jx", &[I(-1)]), "ffffffffffffffff");
        assert_eq!(lp64("%zu", &[I(7)]), "7");
        assert_eq!(lp64("%zu", &[I(-1)]), "18446744073709551615");
        assert_eq!(ilp32("%zu", &[I(-1)]), "4294967295");
        assert_eq!(lp64("%zd", &[I(-8)]), "-8");
        assert_eq!(ilp32("%td", &[I(-6)]), "-6");
        assert_eq!(lp64("%hhd", &[I(300)]), "44");
        assert_eq!(lp64("%hhu", &[I(-1)]), "255");
        assert_eq!(lp64("%hhx", &[I(0x1ff)]), "ff");
        assert_eq!(lp64("%hd", &[I(40000)]), "-25536");
        assert_eq!(lp64("%hd", &[I(-32769)]), "32767");
        assert_eq!(lp64("%hu", &[I(65537)]), "1");
    }

    #[test]
    fn star_width_and_precision() {
        assert_eq!(lp64("[%*d]", &[I(5), I(42)]), "[   42]");
        assert_eq!(lp64("[%-*d|]", &[I(5), I(42)]), "[42   |]");
        assert_eq!(lp64("[%*d|]", &[I(-5), I(42)]), "[42   |]");
        assert_eq!(lp64("[%.*d]", &[I(3), I(7)]), "[007]");
        assert_eq!(lp64("[%.*d]", &[I(-3), I(7)]), "[7]");
        assert_eq!(lp64("[%*.*f]", &[I(8), I(2), D(3.14159)]), "[    3.14]");
        assert_eq!(lp64("[%.*s]", &[I(2), S("hello")]), "[he]");
        assert_eq!(lp64("[%.f]", &[D(2.5)]), "[2]");
    }

    #[test]
    fn characters() {
        let chars = [I('x' as i64), I('y' as i64), I('z' as i64)];
        assert_eq!(lp64("[%c][%3c][%-3c|]", &chars), "[x][  y][z  |]");
        assert_eq!(lp64("[%05c]", &[I('a' as i64)]), "[    a]");
        let mut args = TestArgs {
            args: vec![I(0x1ff), I(0)],
            next: 0,
        };
        let bytes = format(b"%c%c", DataModel::Lp64, &mut args).unwrap();
        assert_eq!(bytes, [0xff, 0]);
    }

    #[test]
    fn strings() {
        assert_eq!(lp64("[%s]", &[S("hello")]), "[hello]");
        assert_eq!(lp64("[%.2s]", &[S("hello")]), "[he]");
        assert_eq!(lp64("[%8.3s]", &[S("hello")]), "[     hel]");
        assert_eq!(lp64("[%-6s|]", &[S("ab")]), "[ab    |]");
        assert_eq!(lp64("[%05s]", &[S("xy")]), "[   xy]");
        assert_eq!(ilp32("[%s %s]", &[S("a"), S("b")]), "[a b]");
        assert_eq!(lp64("[%s]", &[I(0)]), "[(null)]");
        assert_eq!(lp64("[%-5s|]", &[I(0)]), "[(null)|]");
        assert_eq!(lp64("[%8s]", &[I(0)]), "[  (null)]");
        assert_eq!(lp64("[%.3s|]", &[I(0)]), "[|]");
        assert_eq!(lp64("[%.6s]", &[I(0)]), "[(null)]");
    }

    #[test]
    fn pointers() {
        assert_eq!(lp64("[%p]", &[I(0xdead_beef)]), "[0xdeadbeef]");
        assert_eq!(lp64("[%p]", &[I(-1)]), "[0xffffffffffffffff]");
        assert_eq!(ilp32("[%p]", &[I(-1)]), "[0xffffffff]");
        assert_eq!(
            lp64("[%+p][% p]", &[I(0x1234), I(0x1234)]),
            "[+0x1234][ 0x1234]"
        );
        assert_eq!(lp64("[%020p]", &[I(0x1234)]), "[0x000000000000001234]");
        assert_eq!(lp64("[%.8p]", &[I(0x1234)]), "[0x00001234]");
        assert_eq!(
            lp64("[%p][%10p][%-10p|][%.2p]", &[I(0), I(0), I(0), I(0)]),
            "[(nil)][     (nil)][(nil)     |][(nil)]"
        );
    }

    #[test]
    fn fixed_notation() {
        let cases: &[(&str, f64, &str)] = &[
            ("[%f]", 3.14159, "[3.141590]"),
            ("[%.0f]", 0.5, "[0]"),
            ("[%.0f]", 1.5, "[2]"),
            ("[%.0f]", 2.5, "[2]"),
            ("[%.1f]", 0.05, "[0.1]"),
            ("[%.2f]", 0.125, "[0.12]"),
            ("[%.2f]", 0.375, "[0.38]"),
            ("[%.3f]", -0.0005, "[-0.001]"),
            ("[%.20f]", 0.1, "[0.10000000000000000555]"),
            ("[%f]", 1e20, "[100000000000000000000.000000]"),
            ("[%08.3f]", -3.14159, "[-003.142]"),
            ("[%+012.4f]", 3.14159, "[+000003.1416]"),
            ("[%#.0f]", 3.0, "[3.]"),
            ("[%F]", 1.5, "[1.500000]"),
            ("[%f]", -0.0, "[-0.000000]"),
        ];
        for &(fmt, value, expected) in cases {
            assert_eq!(lp64(fmt, &[D(value)]), expected, "{fmt}");
        }
    }

    #[test]
    fn scientific_notation() {
        let cases: &[(&str, f64, &str)] = &[
            ("[%e]", 12345.678, "[1.234568e+04]"),
            ("[%.0e]", 15.0, "[2e+01]"),
            ("[%E]", 1e-10, "[1.000000E-10]"),
            ("[%e]", 0.0, "[0.000000e+00]"),
            ("[%e]", -0.0, "[-0.000000e+00]"),
            ("[%e]", 1e100, "[1.000000e+100]"),
            ("[%e]", 1.5e-7, "[1.500000e-07]"),
            ("[%.3e]", 9.9995, "[9.999e+00]"),
            ("[%e]", 1e-300, "[1.000000e-300]"),
            ("[%+.3e]", 12345.6789, "[+1.235e+04]"),
            ("[%-12.4e|]", 1.0, "[1.0000e+00  |]"),
            ("[% 010.2e]", -1.5, "[-01.50e+00]"),
            ("[%#.0e]", 1.0, "[1.e+00]"),
            ("[%#e]", 1.0, "[1.000000e+00]"),
        ];
        for &(fmt, value, expected) in cases {
            assert_eq!(lp64(fmt, &[D(value)]), expected, "{fmt}");
        }
    }

    #[test]
    fn general_notation() {
        let cases: &[(&str, f64, &str)] = &[
            ("[%g]", 0.0001, "[0.0001]"),
            ("[%g]", 0.00001, "[1e-05]"),
            ("[%g]", 123456.0, "[123456]"),
            ("[%g]", 1234567.0, "[1.23457e+06]"),
            ("[%g]", 0.0, "[0]"),
            ("[%g]", 100.0, "[100]"),
            ("[%g]", 1e-300, "[1e-300]"),
            ("[%G]", 1e300, "[1E+300]"),
            ("[%g]", 123456789.0, "[1.23457e+08]"),
            ("[%g]", 9.9999995e-5, "[0.0001]"),
            ("[%.3g]", 0.0001234567, "[0.000123]"),
            ("[%.10g]", 1.0 / 3.0, "[0.3333333333]"),
            ("[%.0g]", 0.5, "[0.5]"),
            ("[%10.4g|]", 3.14159265, "[     3.142|]"),
            ("[%-10g|]", 2.5, "[2.5       |]"),
            ("[%010g]", -1.25, "[-000001.25]"),
            ("[%#g]", 1.0, "[1.00000]"),
            ("[%#g]", 123456.0, "[123456.]"),
            ("[%#.1g]", 1.0, "[1.]"),
            ("[%#.3g]", 100.0, "[100.]"),
        ];
        for &(fmt, value, expected) in cases {
            assert_eq!(lp64(fmt, &[D(value)]), expected, "{fmt}");
        }
    }

    #[test]
    fn lua_number_format() {
        let cases: &[(f64, &str)] = &[
            (1.0 / 3.0, "0.33333333333333"),
            (2.0 / 3.0, "0.66666666666667"),
            (1e15, "1e+15"),
            (123456789012345678.0, "1.2345678901235e+17"),
            (0.1, "0.1"),
            (-0.0, "-0"),
            (100.0, "100"),
            (1e100, "1e+100"),
        ];
        for &(value, expected) in cases {
            assert_eq!(lp64("%.14g", &[D(value)]), expected, "{value}");
        }
    }

    #[test]
    fn hexadecimal_floats() {
        let cases: &[(&str, f64, &str)] = &[
            ("[%a]", 1.0, "[0x1p+0]"),
            ("[%a]", 0.1, "[0x1.999999999999ap-4]"),
            ("[%a]", -0.0, "[-0x0p+0]"),
            ("[%a]", 0.0, "[0x0p+0]"),
            ("[%A]", -0.0, "[-0X0P+0]"),
            ("[%A]", 255.5, "[0X1.FFP+7]"),
            ("[%a]", 5e-324, "[0x0.0000000000001p-1022]"),
            ("[%a]", f64::MIN_POSITIVE, "[0x1p-1022]"),
            ("[%a]", 1e300, "[0x1.7e43c8800759cp+996]"),
            ("[%a]", -1.5, "[-0x1.8p+0]"),
            ("[%+a]", 3.0, "[+0x1.8p+1]"),
            ("[%.2a]", 0.1, "[0x1.9ap-4]"),
            ("[%.13a]", 0.1, "[0x1.999999999999ap-4]"),
            ("[%.15a]", 0.1, "[0x1.999999999999a00p-4]"),
            ("[%.0a]", 1.0, "[0x1p+0]"),
            ("[%.0a]", 1.5, "[0x2p+0]"),
            ("[%.0a]", 2.5, "[0x1p+1]"),
            ("[%.1a]", 1.96875, "[0x2.0p+0]"),
            ("[%.1a]", 1.03125, "[0x1.0p+0]"),
            ("[%.3a]", 1.0009765625, "[0x1.004p+0]"),
            ("[%.3a]", 5e-324, "[0x0.000p-1022]"),
            (
                "[%.0a]",
                f64::from_bits(0x001f_ff00_0000_0000),
                "[0x2p-1022]",
            ),
            (
                "[%.0a]",
                f64::from_bits(0x000f_ff00_0000_0000),
                "[0x1p-1022]",
            ),
            ("[%#a]", 1.0, "[0x1.p+0]"),
            ("[%#.0a]", 1.0, "[0x1.p+0]"),
            ("[%20a]", 1.0, "[              0x1p+0]"),
            ("[%-20a|]", 1.0, "[0x1p+0              |]"),
            ("[%020a]", 1.0, "[0x000000000000001p+0]"),
        ];
        for &(fmt, value, expected) in cases {
            assert_eq!(lp64(fmt, &[D(value)]), expected, "{fmt}");
        }
    }

    #[test]
    fn infinities_and_nans() {
        let cases: &[(&str, f64, &str)] = &[
            ("[%05f]", f64::INFINITY, "[  inf]"),
            ("[%-05f]", f64::NEG_INFINITY, "[-inf ]"),
            ("[%+f]", f64::NAN, "[+nan]"),
            ("[% f]", -f64::NAN, "[-nan]"),
            ("[%05.1f]", f64::INFINITY, "[  inf]"),
            ("[%F]", f64::INFINITY, "[INF]"),
            ("[%E]", -f64::NAN, "[-NAN]"),
            ("[%G]", f64::NAN, "[NAN]"),
            ("[%g]", f64::NEG_INFINITY, "[-inf]"),
            ("[%a]", f64::INFINITY, "[inf]"),
            ("[%e]", f64::NAN, "[nan]"),
        ];
        for &(fmt, value, expected) in cases {
            assert_eq!(lp64(fmt, &[D(value)]), expected, "{fmt}");
        }
    }

    #[test]
    fn mixed_directives() {
        let args = [D(std::f64::consts::PI), D(1e100), I(42)];
        assert_eq!(lp64("%5.2f|%g|%d", &args), " 3.14|1e+100|42");
        let args = [S("x"), I(-1), D(0.5), I(0x41), I(0)];
        assert_eq!(ilp32("%s=%ld %.1e %c %p", &args), "x=-1 5.0e-01 A (nil)");
    }

    #[test]
    fn long_double_is_a_double_only_in_ilp32() {
        assert_eq!(ilp32("%Lf", &[D(1.5)]), "1.500000");
        assert_eq!(ilp32("%.3Lg", &[D(1.5)]), "1.5");
        let error = render("x%5.2Lf", DataModel::Lp64, &[D(1.5)]).unwrap_err();
        assert_eq!(
            error,
            FormatError::Unsupported {
                conversion: "5.2Lf".into()
            }
        );
        assert_eq!(
            error.to_string(),
            "unsupported conversion `%5.2Lf` in a format string"
        );
    }

    #[test]
    fn unsupported_directives() {
        for fmt in ["%n", "%hn", "%m", "%y", "%1$d", "%ls", "%lc", "abc%", "%5"] {
            let error = render(fmt, DataModel::Lp64, &[]).unwrap_err();
            assert!(
                matches!(error, FormatError::Unsupported { .. }),
                "{fmt}: {error:?}"
            );
        }
        assert_eq!(
            render("%-08q", DataModel::Lp64, &[]).unwrap_err(),
            FormatError::Unsupported {
                conversion: "-08q".into()
            }
        );
    }

    #[test]
    fn memory_faults_propagate() {
        let mut args = TestArgs {
            args: vec![I(0x1234)],
            next: 0,
        };
        let error = format(b"%s", DataModel::Lp64, &mut args).unwrap_err();
        assert_eq!(error, FormatError::Memory { address: 0x1234 });
        assert_eq!(error.to_string(), "cannot read memory at 0x1234");
    }

    fn parsed(text: &str) -> (f64, usize, bool) {
        let result = strtod(text.as_bytes());
        (result.value, result.consumed, result.range_error)
    }

    #[test]
    fn strtod_decimal() {
        assert_eq!(parsed("1.5"), (1.5, 3, false));
        assert_eq!(parsed("  -2.5e3xyz"), (-2500.0, 8, false));
        assert_eq!(parsed("12abc"), (12.0, 2, false));
        assert_eq!(parsed(".5"), (0.5, 2, false));
        assert_eq!(parsed("5."), (5.0, 2, false));
        assert_eq!(parsed("1e"), (1.0, 1, false));
        assert_eq!(parsed("1e+"), (1.0, 1, false));
        assert_eq!(parsed("1E-2"), (0.01, 4, false));
        assert_eq!(parsed("0.1"), (0.1, 3, false));
        assert_eq!(parsed("+7"), (7.0, 2, false));
        assert_eq!(parsed("\t\n\x0b\x0c\r 3"), (3.0, 7, false));
        assert_eq!(parsed("0e99999999999999999999"), (0.0, 22, false));
    }

    #[test]
    fn strtod_without_conversion() {
        for text in [".", "", "  ", "-", "+.", "e5", "abc", "-x", "in", "na"] {
            assert_eq!(parsed(text), (0.0, 0, false), "{text:?}");
        }
    }

    #[test]
    fn strtod_range() {
        assert_eq!(parsed("  1e400"), (f64::INFINITY, 7, true));
        assert_eq!(parsed("-1e400"), (f64::NEG_INFINITY, 6, true));
        assert_eq!(parsed("1e-400"), (0.0, 6, true));
        let negative_underflow = strtod(b"-1e-400");
        assert!(negative_underflow.value == 0.0 && negative_underflow.value.is_sign_negative());
        assert!(negative_underflow.range_error);
        // glibc: a subnormal result is a range error only when inexact.
        assert_eq!(parsed("1e-310"), (1e-310, 6, true));
        assert_eq!(parsed("4.9406564584124654e-324"), (5e-324, 23, true));
        let exact = "4.940656458412465441765687928682213723650598026143247644255856825006755072702087518652998363616359923797965646954457177309266567103559397963987747960107818781263007131903114045278458171678489821036887186360569987307230500063874091535649843873124733972731696151400317153853980741262385655911710266585566867681870395603106249319452715914924553293054565444011274801297099995419319894090804165633245247571478690147267801593552386115501348035264934720193790268107107491703332226844753335720832431936092382893458368060106011506169809753078342277318329247904982524730776375927247874656084778203734469699533647017972677717585125660551199131504891101451037862738167250955837389733598993664809941164205702637090279242767544565229087538682506419718265533447265625e-324";
        assert_eq!(parsed(exact), (5e-324, exact.len(), false));
        assert_eq!(
            parsed("2.2250738585072014e-308"),
            (f64::MIN_POSITIVE, 23, false)
        );
        assert_eq!(parsed("0.0"), (0.0, 3, false));
    }

    #[test]
    fn strtod_hexadecimal() {
        assert_eq!(parsed("0x1p-2"), (0.25, 6, false));
        assert_eq!(parsed("0x1.8p3"), (12.0, 7, false));
        assert_eq!(parsed("-0X.8"), (-0.5, 5, false));
        assert_eq!(parsed("0x1p"), (1.0, 3, false));
        assert_eq!(parsed("0x"), (0.0, 1, false));
        assert_eq!(parsed("0x.p1"), (0.0, 1, false));
        assert_eq!(parsed("0xg"), (0.0, 1, false));
        assert_eq!(parsed("0x1.fffffffffffff8p0"), (2.0, 20, false));
        assert_eq!(parsed("0x1.00000000000008p0"), (1.0, 20, false));
        assert_eq!(
            parsed("0x1.000000000000080000001p0"),
            (1.0 + f64::EPSILON, 27, false)
        );
        assert_eq!(
            parsed("0x1.00000000000018p0"),
            (1.0 + 2.0 * f64::EPSILON, 20, false)
        );
        assert_eq!(parsed("0x1.0000000000000180p0"), (1.0, 22, false));
        let long = 0x0012_3456_789a_bcdf_u64 as f64 * 1024.0 * 1024.0;
        assert_eq!(parsed("0x123456789abcdef0123p0"), (long, 23, false));
        assert_eq!(parsed("0x1p-1074"), (5e-324, 9, false));
        assert_eq!(parsed("0x1.1p-1074"), (5e-324, 11, true));
        assert_eq!(parsed("0x1p-1076"), (0.0, 9, true));
        assert_eq!(
            parsed("0x1.ffffffffffffep-1023").0.to_bits(),
            0x000f_ffff_ffff_ffff
        );
        assert_eq!(parsed("0x1.fffffffffffff8p-1023").0, f64::MIN_POSITIVE);
        assert_eq!(parsed("0x1.fffffffffffffp1023"), (f64::MAX, 22, false));
        assert_eq!(parsed("0x1p1024"), (f64::INFINITY, 8, true));
        assert_eq!(parsed("0x1.fffffffffffff8p1023"), (f64::INFINITY, 23, true));
        assert_eq!(parsed("0x0.0000000000001p-1022"), (5e-324, 23, false));
    }

    #[test]
    fn strtod_special_values() {
        assert_eq!(parsed("-inf"), (f64::NEG_INFINITY, 4, false));
        assert_eq!(parsed("INFINITY"), (f64::INFINITY, 8, false));
        assert_eq!(parsed("infinit"), (f64::INFINITY, 3, false));
        assert_eq!(parsed("+InF"), (f64::INFINITY, 4, false));
        let nan_bits = |text: &str| {
            let result = strtod(text.as_bytes());
            assert!(result.value.is_nan() && !result.range_error);
            (result.value.to_bits(), result.consumed)
        };
        assert_eq!(nan_bits("nan"), (0x7ff8_0000_0000_0000, 3));
        assert_eq!(nan_bits("NaN(123)"), (0x7ff8_0000_0000_007b, 8));
        assert_eq!(nan_bits("nan(0x5)"), (0x7ff8_0000_0000_0005, 8));
        assert_eq!(nan_bits("nan(abc)"), (0x7ff8_0000_0000_0000, 8));
        assert_eq!(nan_bits("nan()"), (0x7ff8_0000_0000_0000, 5));
        assert_eq!(nan_bits("nan(abc"), (0x7ff8_0000_0000_0000, 3));
        assert_eq!(nan_bits("-nan(7)"), (0xfff8_0000_0000_0007, 7));
    }

    fn integer(text: &str, base: u32, signed: bool, bits: u32) -> (u64, usize, bool) {
        let result = strtol(text.as_bytes(), base, signed, bits);
        (result.value, result.consumed, result.range_error)
    }

    #[test]
    fn strtol_bases_and_prefixes() {
        assert_eq!(integer("0x1f", 16, true, 64), (31, 4, false));
        assert_eq!(integer("0x1f", 0, true, 64), (31, 4, false));
        assert_eq!(integer("0X1F", 0, false, 32), (31, 4, false));
        assert_eq!(integer("  -42z", 10, true, 64), (-42i64 as u64, 5, false));
        assert_eq!(integer("  -42z", 10, true, 32), (-42i64 as u64, 5, false));
        assert_eq!(integer("0x", 16, true, 64), (0, 1, false));
        assert_eq!(integer("0x", 0, true, 64), (0, 1, false));
        assert_eq!(integer(" 0xg", 16, true, 64), (0, 2, false));
        assert_eq!(integer("017", 0, true, 64), (15, 3, false));
        assert_eq!(integer("08", 0, true, 64), (0, 1, false));
        assert_eq!(integer("017", 10, true, 64), (17, 3, false));
        assert_eq!(integer("zz", 36, true, 64), (1295, 2, false));
        assert_eq!(integer("ZZ!", 36, false, 32), (1295, 2, false));
        assert_eq!(integer("1012", 2, true, 64), (5, 3, false));
        assert_eq!(integer("+7", 10, true, 64), (7, 2, false));
    }

    #[test]
    fn strtol_without_digits() {
        for (text, base) in [
            ("", 10),
            ("-", 10),
            ("  +", 0),
            ("z", 10),
            ("8", 8),
            ("12", 1),
            ("12", 37),
        ] {
            assert_eq!(
                integer(text, base, true, 64),
                (0, 0, false),
                "{text:?} base {base}"
            );
        }
    }

    #[test]
    fn strtol_ranges() {
        let max = i64::MAX as u64;
        let min = i64::MIN as u64;
        assert_eq!(
            integer("9223372036854775807", 10, true, 64),
            (max, 19, false)
        );
        assert_eq!(
            integer("9223372036854775808", 10, true, 64),
            (max, 19, true)
        );
        assert_eq!(
            integer("-9223372036854775808", 10, true, 64),
            (min, 20, false)
        );
        assert_eq!(
            integer("-9223372036854775809", 10, true, 64),
            (min, 20, true)
        );
        assert_eq!(
            integer("99999999999999999999999", 10, true, 64),
            (max, 23, true)
        );
        assert_eq!(integer("2147483648", 10, true, 32), (0x7fff_ffff, 10, true));
        assert_eq!(
            integer("-2147483648", 10, true, 32),
            (i32::MIN as i64 as u64, 11, false)
        );
        assert_eq!(
            integer("-2147483649", 10, true, 32),
            (i32::MIN as i64 as u64, 11, true)
        );
        assert_eq!(integer("-1", 10, false, 32), (0xffff_ffff, 2, false));
        assert_eq!(integer("-1", 10, false, 64), (u64::MAX, 2, false));
        assert_eq!(
            integer("4294967295", 10, false, 32),
            (0xffff_ffff, 10, false)
        );
        assert_eq!(
            integer("4294967296", 10, false, 32),
            (0xffff_ffff, 10, true)
        );
        assert_eq!(
            integer("-4294967296", 10, false, 32),
            (0xffff_ffff, 11, true)
        );
        assert_eq!(
            integer("18446744073709551615", 10, false, 64),
            (u64::MAX, 20, false)
        );
        assert_eq!(
            integer("18446744073709551616", 0, false, 64),
            (u64::MAX, 20, true)
        );
        assert_eq!(
            integer("-18446744073709551615", 10, false, 64),
            (1, 21, false)
        );
    }
}
