//! The functions of the emulated kernel's C runtime, in groups: memory and strings, the
//! allocator, formatted output, conversions, control flow, math, time and locale, the 64-bit
//! arithmetic helpers 32-bit code calls, and the file functions a kernel refuses.

use super::{Call, Function};
use crate::error::Stop;
use crate::machine::emulated::cformat;

type Result<T = ()> = std::result::Result<T, Stop>;

const ENOENT: u64 = 2;
const EBADF: u64 = 9;
const ENOMEM: u64 = 12;
const ERANGE: u64 = 34;
pub(in crate::machine::emulated) const ENOSYS: u64 = 38;
/// Largest block malloc hands out, so that a module's size bug fails instead of eating the heap.
const MAX_ALLOC: u64 = 1 << 30;

macro_rules! table {
    ($($name:literal => $run:expr,)*) => {
        &[$(Function { name: $name, run: $run },)*]
    };
}

pub(in crate::machine::emulated) static FUNCTIONS: &[Function] = table! {
    "memcpy" => memmove,
    "memmove" => memmove,
    "memset" => memset,
    "memcmp" => memcmp,
    "bcmp" => memcmp,
    "memchr" => memchr,
    "strlen" => strlen,
    "strcmp" => strcmp,
    "strcoll" => strcmp,
    "strncmp" => strncmp,
    "strcpy" => strcpy,
    "strchr" => strchr,
    "strrchr" => strrchr,
    "strstr" => strstr,
    "strspn" => strspn,
    "strcspn" => strcspn,
    "strpbrk" => strpbrk,
    "strerror" => strerror,
    "malloc" => malloc,
    "calloc" => calloc,
    "realloc" => realloc,
    "free" => free,
    "snprintf" => snprintf,
    "vsnprintf" => vsnprintf,
    "sprintf" => sprintf,
    "printf" => printf,
    "fprintf" => fprintf,
    "vfprintf" => vfprintf,
    "puts" => puts,
    "putchar" => putchar,
    "fputs" => fputs,
    "fputc" => fputc,
    "putc" => fputc,
    "fwrite" => fwrite,
    "fflush" => fflush,
    "write" => write,
    "__errno_location" => errno_location,
    "__ctype_b_loc" => ctype_b_loc,
    "__ctype_tolower_loc" => ctype_tolower_loc,
    "__ctype_toupper_loc" => ctype_toupper_loc,
    "strtol" => strtol,
    "strtoul" => strtoul,
    "strtoll" => strtoll,
    "strtoull" => strtoull,
    "atoi" => atoi,
    "strtod" => strtod,
    "abort" => abort,
    "exit" => exit,
    "getenv" => zero,
    "system" => minus_one_enosys,
    "_setjmp" => setjmp,
    "setjmp" => setjmp,
    "longjmp" => longjmp,
    "_longjmp" => longjmp,
    "qsort" => qsort,
    "sin" => |c| math1(c, f64::sin),
    "cos" => |c| math1(c, f64::cos),
    "tan" => |c| math1(c, f64::tan),
    "asin" => |c| math1(c, f64::asin),
    "acos" => |c| math1(c, f64::acos),
    "atan" => |c| math1(c, f64::atan),
    "exp" => |c| math1(c, f64::exp),
    "log" => |c| math1(c, f64::ln),
    "log10" => |c| math1(c, f64::log10),
    "log2" => |c| math1(c, f64::log2),
    "sqrt" => |c| math1(c, f64::sqrt),
    "floor" => |c| math1(c, f64::floor),
    "ceil" => |c| math1(c, f64::ceil),
    "fabs" => |c| math1(c, f64::abs),
    "pow" => |c| math2(c, f64::powf),
    "atan2" => |c| math2(c, f64::atan2),
    "fmod" => |c| math2(c, |x, y| x % y),
    "ldexp" => ldexp,
    "frexp" => frexp,
    "time" => time,
    "clock" => clock,
    "difftime" => |c| math2(c, |a, b| a - b),
    "gmtime" => gmtime,
    "localtime" => gmtime,
    "mktime" => mktime,
    "strftime" => zero,
    "setlocale" => setlocale,
    "localeconv" => localeconv,
    "__divdi3" => |c| int64_op(c, |a, b| (a as i64).checked_div(b as i64).map(|v| v as u64)),
    "__moddi3" => |c| int64_op(c, |a, b| (a as i64).checked_rem(b as i64).map(|v| v as u64)),
    "__udivdi3" => |c| int64_op(c, |a, b| a.checked_div(b)),
    "__umoddi3" => |c| int64_op(c, |a, b| a.checked_rem(b)),
    "__muldi3" => |c| int64_op(c, |a, b| Some(a.wrapping_mul(b))),
    "__ashldi3" => |c| shift64(c, |a, n| a.wrapping_shl(n)),
    "__lshrdi3" => |c| shift64(c, |a, n| a.wrapping_shr(n)),
    "__ashrdi3" => |c| shift64(c, |a, n| (a as i64).wrapping_shr(n) as u64),
    "__fixdfdi" => |c| { let x = c.double()?; c.ret_int64(x as i64 as u64) },
    "__fixunsdfdi" => |c| { let x = c.double()?; c.ret_int64(x as u64) },
    "__floatdidf" => |c| { let x = c.int64()?; c.ret_double(x as i64 as f64) },
    "__floatundidf" => |c| { let x = c.int64()?; c.ret_double(x as f64) },
    "fopen64" => null_enoent,
    "fopen" => null_enoent,
    "freopen64" => null_enoent,
    "tmpfile64" => null_enoent,
    "tmpnam" => zero,
    "fclose" => eof_ebadf,
    "fread" => zero,
    "fgets" => zero,
    "getc" => eof_ebadf,
    "ungetc" => eof_ebadf,
    "feof" => zero,
    "ferror" => zero,
    "clearerr" => zero,
    "fseek" => minus_one_ebadf,
    "ftell" => minus_one_ebadf,
    "setvbuf" => zero,
    "open" => minus_one_enoent,
    "close" => minus_one_ebadf,
    "read" => minus_one_ebadf,
    "lseek64" => minus_one_ebadf,
    "fcntl" => minus_one_ebadf,
    "remove" => minus_one_enoent,
    "rename" => minus_one_enoent,
};

// ------------------------------------------------------------------ memory and strings --

fn memmove(c: &mut Call) -> Result {
    let (dst, src, n) = (c.arg()?, c.arg()?, c.arg()?);
    let bytes = c.read(src, n)?;
    c.write(dst, &bytes)?;
    c.ret(dst)
}

fn memset(c: &mut Call) -> Result {
    let (dst, byte, n) = (c.arg()?, c.arg()?, c.arg()?);
    c.fill(dst, byte as u8, n)?;
    c.ret(dst)
}

fn compare(a: &[u8], b: &[u8]) -> u64 {
    match a.iter().zip(b).find(|(x, y)| x != y) {
        Some((x, y)) => (i64::from(*x) - i64::from(*y)) as u64,
        None => (a.len() as i64 - b.len() as i64).signum() as u64,
    }
}

fn memcmp(c: &mut Call) -> Result {
    let (a, b, n) = (c.arg()?, c.arg()?, c.arg()?);
    let result = compare(&c.read(a, n)?, &c.read(b, n)?);
    c.ret(result)
}

fn memchr(c: &mut Call) -> Result {
    let (s, byte, n) = (c.arg()?, c.arg()?, c.arg()?);
    let found = c.read(s, n)?.iter().position(|&b| b == byte as u8);
    c.ret(found.map_or(0, |i| s + i as u64))
}

fn strlen(c: &mut Call) -> Result {
    let s = c.arg()?;
    let len = c.c_string(s, None)?.len() as u64;
    c.ret(len)
}

fn strcmp(c: &mut Call) -> Result {
    let (a, b) = (c.arg()?, c.arg()?);
    let result = compare(&c.c_string(a, None)?, &c.c_string(b, None)?);
    c.ret(result)
}

fn strncmp(c: &mut Call) -> Result {
    let (a, b, n) = (c.arg()?, c.arg()?, c.arg()?);
    let limit = Some(n as usize);
    let result = compare(&c.c_string(a, limit)?, &c.c_string(b, limit)?);
    c.ret(result)
}

fn strcpy(c: &mut Call) -> Result {
    let (dst, src) = (c.arg()?, c.arg()?);
    let mut bytes = c.c_string(src, None)?;
    bytes.push(0);
    c.write(dst, &bytes)?;
    c.ret(dst)
}

fn strchr(c: &mut Call) -> Result {
    let (s, ch) = (c.arg()?, c.arg()? as u8);
    let bytes = c.c_string(s, None)?;
    let found = if ch == 0 {
        Some(bytes.len())
    } else {
        bytes.iter().position(|&b| b == ch)
    };
    c.ret(found.map_or(0, |i| s + i as u64))
}

fn strrchr(c: &mut Call) -> Result {
    let (s, ch) = (c.arg()?, c.arg()? as u8);
    let bytes = c.c_string(s, None)?;
    let found = if ch == 0 {
        Some(bytes.len())
    } else {
        bytes.iter().rposition(|&b| b == ch)
    };
    c.ret(found.map_or(0, |i| s + i as u64))
}

fn strstr(c: &mut Call) -> Result {
    let (hay, needle) = (c.arg()?, c.arg()?);
    let (h, n) = (c.c_string(hay, None)?, c.c_string(needle, None)?);
    let found = if n.is_empty() {
        Some(0)
    } else {
        h.windows(n.len()).position(|w| w == n.as_slice())
    };
    c.ret(found.map_or(0, |i| hay + i as u64))
}

/// The length of the prefix of the first string whose bytes are (or are not) in the second.
fn span(c: &mut Call, inside: bool) -> Result<(u64, Vec<u8>, usize)> {
    let (s, set) = (c.arg()?, c.arg()?);
    let (bytes, set) = (c.c_string(s, None)?, c.c_string(set, None)?);
    let len = bytes
        .iter()
        .position(|b| set.contains(b) != inside)
        .unwrap_or(bytes.len());
    Ok((s, bytes, len))
}

fn strspn(c: &mut Call) -> Result {
    let (_, _, len) = span(c, true)?;
    c.ret(len as u64)
}

fn strcspn(c: &mut Call) -> Result {
    let (_, _, len) = span(c, false)?;
    c.ret(len as u64)
}

fn strpbrk(c: &mut Call) -> Result {
    let (s, bytes, len) = span(c, false)?;
    c.ret(if len < bytes.len() { s + len as u64 } else { 0 })
}

fn strerror(c: &mut Call) -> Result {
    let errno = c.int()?;
    let text = format!("{}\0", crate::error::errno_name(errno));
    // The message lives in the heap until the next strerror, like glibc's static buffer.
    let old = std::mem::take(&mut c.runtime().strerror_buffer);
    if old != 0 {
        c.heap().free(old);
    }
    let at = c
        .heap()
        .alloc(text.len() as u64)
        .ok_or(c.fail("heap exhausted"))?;
    c.write(at, text.as_bytes())?;
    c.runtime().strerror_buffer = at;
    c.ret(at)
}

// ------------------------------------------------------------------------ allocator --

fn allocate(c: &mut Call, size: u64) -> Result<u64> {
    let block = if size <= MAX_ALLOC {
        c.heap().alloc(size)
    } else {
        None
    };
    if block.is_none() {
        c.set_errno(ENOMEM)?;
    }
    Ok(block.unwrap_or(0))
}

fn malloc(c: &mut Call) -> Result {
    let size = c.arg()?;
    let block = allocate(c, size)?;
    c.ret(block)
}

fn calloc(c: &mut Call) -> Result {
    let (n, size) = (c.arg()?, c.arg()?);
    let block = match n.checked_mul(size) {
        Some(total) => allocate(c, total)?,
        None => 0,
    };
    if block != 0 {
        c.fill(block, 0, n * size)?;
    }
    c.ret(block)
}

fn realloc(c: &mut Call) -> Result {
    let (old, size) = (c.arg()?, c.arg()?);
    if old == 0 {
        let block = allocate(c, size)?;
        return c.ret(block);
    }
    let Some(old_size) = c.heap().size_of(old) else {
        return Err(c.fail(format!("{old:#x} is not a block malloc returned")));
    };
    if size == 0 {
        c.heap().free(old);
        return c.ret(0);
    }
    let block = allocate(c, size)?;
    if block != 0 {
        let bytes = c.read(old, old_size.min(size))?;
        c.write(block, &bytes)?;
        c.heap().free(old);
    }
    c.ret(block)
}

fn free(c: &mut Call) -> Result {
    let block = c.arg()?;
    if block != 0 && !c.heap().free(block) {
        return Err(c.fail(format!("{block:#x} is not a block malloc returned")));
    }
    Ok(())
}

// ------------------------------------------------------------------ formatted output --

/// Stores `text` at `buf` as snprintf does (at most `size` bytes with the NUL); returns its
/// full length.
fn store_formatted(c: &mut Call, buf: u64, size: u64, text: &[u8]) -> Result {
    if size > 0 {
        let n = text.len().min(size as usize - 1);
        let mut bytes = text[..n].to_vec();
        bytes.push(0);
        c.write(buf, &bytes)?;
    }
    c.ret(text.len() as u64)
}

fn snprintf(c: &mut Call) -> Result {
    let (buf, size, fmt) = (c.arg()?, c.arg()?, c.arg()?);
    c.start_varargs();
    let text = c.format(fmt, None)?;
    store_formatted(c, buf, size, &text)
}

fn vsnprintf(c: &mut Call) -> Result {
    let (buf, size, fmt, va) = (c.arg()?, c.arg()?, c.arg()?, c.arg()?);
    let text = c.format(fmt, Some(va))?;
    store_formatted(c, buf, size, &text)
}

fn sprintf(c: &mut Call) -> Result {
    let (buf, fmt) = (c.arg()?, c.arg()?);
    c.start_varargs();
    let text = c.format(fmt, None)?;
    store_formatted(c, buf, u64::MAX, &text)
}

/// The descriptor behind a `FILE *` of the runtime (its first word).
fn stream_fd(c: &mut Call, stream: u64) -> Result<u64> {
    if stream == 0 {
        return Ok(u64::MAX);
    }
    c.read_word(stream, 4)
}

/// Writes to a stream; returns whether it took the bytes.
fn put(c: &mut Call, stream: u64, bytes: &[u8]) -> Result<bool> {
    let fd = stream_fd(c, stream)?;
    let taken = c.output(fd, bytes);
    if !taken {
        c.set_errno(EBADF)?;
    }
    Ok(taken)
}

fn stdout_stream(c: &mut Call) -> Result<u64> {
    let (variable, _) = c.runtime().variable("stdout").ok_or(c.fail("no stdout"))?;
    let word = c.word_bytes();
    c.read_word(variable, word)
}

fn printed(c: &mut Call, stream: u64, text: &[u8]) -> Result {
    let ok = put(c, stream, text)?;
    c.ret(if ok { text.len() as u64 } else { u64::MAX })
}

fn printf(c: &mut Call) -> Result {
    let fmt = c.arg()?;
    c.start_varargs();
    let text = c.format(fmt, None)?;
    let stream = stdout_stream(c)?;
    printed(c, stream, &text)
}

fn fprintf(c: &mut Call) -> Result {
    let (stream, fmt) = (c.arg()?, c.arg()?);
    c.start_varargs();
    let text = c.format(fmt, None)?;
    printed(c, stream, &text)
}

fn vfprintf(c: &mut Call) -> Result {
    let (stream, fmt, va) = (c.arg()?, c.arg()?, c.arg()?);
    let text = c.format(fmt, Some(va))?;
    printed(c, stream, &text)
}

fn puts(c: &mut Call) -> Result {
    let s = c.arg()?;
    let mut text = c.c_string(s, None)?;
    text.push(b'\n');
    let stream = stdout_stream(c)?;
    printed(c, stream, &text)
}

fn putchar(c: &mut Call) -> Result {
    let ch = c.arg()?;
    let stream = stdout_stream(c)?;
    let ok = put(c, stream, &[ch as u8])?;
    c.ret(if ok { ch & 0xff } else { u64::MAX })
}

fn fputs(c: &mut Call) -> Result {
    let (s, stream) = (c.arg()?, c.arg()?);
    let text = c.c_string(s, None)?;
    let ok = put(c, stream, &text)?;
    c.ret(if ok { 0 } else { u64::MAX })
}

fn fputc(c: &mut Call) -> Result {
    let (ch, stream) = (c.arg()?, c.arg()?);
    let ok = put(c, stream, &[ch as u8])?;
    c.ret(if ok { ch & 0xff } else { u64::MAX })
}

fn fwrite(c: &mut Call) -> Result {
    let (data, size, n, stream) = (c.arg()?, c.arg()?, c.arg()?, c.arg()?);
    let total = size.checked_mul(n).ok_or(c.fail("size overflows"))?;
    let bytes = c.read(data, total)?;
    let ok = put(c, stream, &bytes)?;
    c.ret(if ok { n } else { 0 })
}

/// Output reaches the host when the kernel flushes it (after each call from msyms).
fn fflush(c: &mut Call) -> Result {
    c.ret(0)
}

fn write(c: &mut Call) -> Result {
    let (fd, data, n) = (c.arg()?, c.arg()?, c.arg()?);
    let bytes = c.read(data, n)?;
    if c.output(fd & 0xffff_ffff, &bytes) {
        c.ret(n)
    } else {
        c.set_errno(EBADF)?;
        c.ret(u64::MAX)
    }
}

// ----------------------------------------------------------- errno, ctype, conversions --

fn variable_ret(c: &mut Call, name: &str) -> Result {
    let (address, _) = c
        .runtime()
        .variable(name)
        .ok_or(c.fail("runtime variable missing"))?;
    c.ret(address)
}

fn errno_location(c: &mut Call) -> Result {
    let address = c.runtime().errno_address;
    c.ret(address)
}

fn ctype_b_loc(c: &mut Call) -> Result {
    variable_ret(c, "__ctype_b")
}

fn ctype_tolower_loc(c: &mut Call) -> Result {
    variable_ret(c, "__ctype_tolower")
}

fn ctype_toupper_loc(c: &mut Call) -> Result {
    variable_ret(c, "__ctype_toupper")
}

/// The text at `s` for a conversion: at most 4 KiB, which no number needs.
fn number_text(c: &mut Call, s: u64) -> Result<Vec<u8>> {
    c.c_string(s, Some(4096))
}

fn strto_integer(c: &mut Call, signed: bool, bits: u32, end_base: bool) -> Result {
    let s = c.arg()?;
    let (end, base) = if end_base {
        (c.arg()?, c.int()? as u32)
    } else {
        (0, 10)
    };
    let text = number_text(c, s)?;
    let parsed = cformat::strtol(&text, base, signed, bits);
    if parsed.range_error {
        c.set_errno(ERANGE)?;
    }
    if end != 0 {
        let word = c.word_bytes();
        c.write_word(end, word, s + parsed.consumed as u64)?;
    }
    if bits > 8 * c.word_bytes() as u32 {
        c.ret_int64(parsed.value)
    } else {
        c.ret(parsed.value)
    }
}

fn strtol(c: &mut Call) -> Result {
    let bits = 8 * c.word_bytes() as u32;
    strto_integer(c, true, bits, true)
}

fn strtoul(c: &mut Call) -> Result {
    let bits = 8 * c.word_bytes() as u32;
    strto_integer(c, false, bits, true)
}

fn strtoll(c: &mut Call) -> Result {
    strto_integer(c, true, 64, true)
}

fn strtoull(c: &mut Call) -> Result {
    strto_integer(c, false, 64, true)
}

fn atoi(c: &mut Call) -> Result {
    strto_integer(c, true, 32, false)
}

fn strtod(c: &mut Call) -> Result {
    let (s, end) = (c.arg()?, c.arg()?);
    let text = number_text(c, s)?;
    let parsed = cformat::strtod(&text);
    if parsed.range_error {
        c.set_errno(ERANGE)?;
    }
    if end != 0 {
        let word = c.word_bytes();
        c.write_word(end, word, s + parsed.consumed as u64)?;
    }
    c.ret_double(parsed.value)
}

// ------------------------------------------------------------------- control flow --

fn abort(_: &mut Call) -> Result {
    Err(Stop::Abort)
}

fn exit(c: &mut Call) -> Result {
    let status = c.int()?;
    Err(Stop::Exit(status))
}

/// setjmp saves every register the C calling convention preserves, the stack pointer and
/// the return address among them, 8 bytes each.
fn setjmp(c: &mut Call) -> Result {
    let buf = c.arg()?;
    for (i, &reg) in c.target.registers().preserved.iter().enumerate() {
        let value = c.reg(reg)?;
        c.write(buf + 8 * i as u64, &value.to_le_bytes())?;
    }
    c.ret(0)
}

/// longjmp restores them and returns from the setjmp again, with `value` (1 for 0).
fn longjmp(c: &mut Call) -> Result {
    let (buf, value) = (c.arg()?, c.int()?);
    let target = c.target;
    for (i, &reg) in target.registers().preserved.iter().enumerate() {
        let bytes = c.read(buf + 8 * i as u64, 8)?;
        let saved = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        c.set_reg(reg, saved)?;
    }
    c.ret(if value == 0 { 1 } else { value as u64 })?;
    let resume = c.reg(target.registers().link)?;
    c.set_reg(target.registers().pc, resume)
}

/// qsort: a merge sort over copies of the elements, asking the module's comparator about
/// two scratch copies at a time (C allows the comparator to see elements anywhere).
fn qsort(c: &mut Call) -> Result {
    let (base, n, size, compare) = (c.arg()?, c.arg()?, c.arg()?, c.arg()?);
    if n < 2 || size == 0 {
        return Ok(());
    }
    let total = n.checked_mul(size).ok_or(c.fail("array size overflows"))?;
    let bytes = c.read(base, total)?;
    let mut items: Vec<&[u8]> = bytes.chunks(size as usize).collect();
    let scratch = c.heap().alloc(2 * size).ok_or(c.fail("heap exhausted"))?;
    let result = merge_sort(&mut items, &mut |a, b| {
        c.write(scratch, a)?;
        c.write(scratch + size, b)?;
        Ok(c.call_guest(compare, &[scratch, scratch + size])? as u32 as i32)
    });
    c.heap().free(scratch);
    result?;
    let sorted: Vec<u8> = items.concat();
    c.write(base, &sorted)
}

/// A stable bottom-up merge sort that tolerates comparators that are not total orders.
fn merge_sort<T: Copy>(
    items: &mut [T],
    less_or_equal: &mut dyn FnMut(T, T) -> Result<i32>,
) -> Result {
    let mut width = 1;
    while width < items.len() {
        let mut start = 0;
        while start + width < items.len() {
            let end = (start + 2 * width).min(items.len());
            let (left, right) = (
                items[start..start + width].to_vec(),
                &items[start + width..end],
            );
            let right = right.to_vec();
            let (mut i, mut j, mut k) = (0, 0, start);
            while i < left.len() && j < right.len() {
                if less_or_equal(left[i], right[j])? <= 0 {
                    items[k] = left[i];
                    i += 1;
                } else {
                    items[k] = right[j];
                    j += 1;
                }
                k += 1;
            }
            for &item in left[i..].iter().chain(&right[j..]) {
                items[k] = item;
                k += 1;
            }
            start = end;
        }
        width *= 2;
    }
    Ok(())
}

// -------------------------------------------------------------------------- math --

fn math1(c: &mut Call, f: fn(f64) -> f64) -> Result {
    let x = c.double()?;
    c.ret_double(f(x))
}

fn math2(c: &mut Call, f: fn(f64, f64) -> f64) -> Result {
    let (x, y) = (c.double()?, c.double()?);
    c.ret_double(f(x, y))
}

fn ldexp(c: &mut Call) -> Result {
    let (x, e) = (c.double()?, c.int()?);
    let e = e.clamp(-2200, 2200) as i32;
    // Scale in steps that cannot overflow or underflow on their own.
    let mut value = x;
    let mut left = e;
    while left != 0 {
        let step = left.clamp(-1000, 1000);
        value *= 2f64.powi(step);
        left -= step;
    }
    c.ret_double(value)
}

fn frexp(c: &mut Call) -> Result {
    let (x, exp_out) = (c.double()?, c.arg()?);
    let (mantissa, exponent) = if x == 0.0 || !x.is_finite() {
        (x, 0)
    } else {
        let bits = x.to_bits();
        let raw = ((bits >> 52) & 0x7ff) as i32;
        if raw == 0 {
            // Subnormal: normalise first.
            let scaled = x * 2f64.powi(64);
            let raw = ((scaled.to_bits() >> 52) & 0x7ff) as i32;
            let m = f64::from_bits((scaled.to_bits() & !(0x7ff << 52)) | (1022 << 52));
            (m, raw - 1022 - 64)
        } else {
            let m = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
            (m, raw - 1022)
        }
    };
    c.write_word(exp_out, 4, exponent as u32 as u64)?;
    c.ret_double(mantissa)
}

// -------------------------------------------------------------- time and locale --

/// The emulated kernel's clock stands still at 2000-01-01, so that modules compute the same
/// answers on every run.
const EPOCH_2000: u64 = 946_684_800;

fn time(c: &mut Call) -> Result {
    let out = c.arg()?;
    if out != 0 {
        let word = c.word_bytes();
        c.write_word(out, word, EPOCH_2000)?;
    }
    c.ret(EPOCH_2000)
}

fn clock(c: &mut Call) -> Result {
    c.ret(0)
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count: (year, month 1–12, day 1–31).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// gmtime and localtime (the emulated kernel keeps UTC): a `struct tm` (nine ints) in the
/// heap, reused by the next call as C's static one is.
fn gmtime(c: &mut Call) -> Result {
    let at = c.arg()?;
    let word = c.word_bytes();
    let raw = c.read_word(at, word)?;
    let t = if word == 4 {
        raw as u32 as i32 as i64
    } else {
        raw as i64
    };
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let yday = days - days_from_civil(year, 1, 1);
    let wday = (days + 4).rem_euclid(7);
    let fields = [
        secs % 60,
        secs / 60 % 60,
        secs / 3600,
        day,
        month - 1,
        year - 1900,
        wday,
        yday,
        0,
    ];
    let tm = match c.runtime().tm_buffer {
        0 => {
            let block = c.heap().alloc(64).ok_or(c.fail("heap exhausted"))?;
            c.runtime().tm_buffer = block;
            block
        }
        block => block,
    };
    for (i, value) in fields.iter().enumerate() {
        c.write_word(tm + 4 * i as u64, 4, *value as u32 as u64)?;
    }
    c.ret(tm)
}

/// mktime, in UTC: normalises the fields as C asks and returns the time.
fn mktime(c: &mut Call) -> Result {
    let tm = c.arg()?;
    let mut field = [0i64; 6];
    for (i, f) in field.iter_mut().enumerate() {
        *f = c.read_word(tm + 4 * i as u64, 4)? as u32 as i32 as i64;
    }
    let [sec, min, hour, mday, mon, year] = field;
    let year = 1900 + year + mon.div_euclid(12);
    let days = days_from_civil(year, mon.rem_euclid(12) + 1, 1) + mday - 1;
    let t = days * 86_400 + hour * 3600 + min * 60 + sec;
    c.ret(t as u64)
}

fn setlocale(c: &mut Call) -> Result {
    variable_ret(c, "__dlkm_c_locale")
}

fn localeconv(c: &mut Call) -> Result {
    variable_ret(c, "__dlkm_lconv")
}

// ------------------------------------------------------------ 64-bit arithmetic --

fn int64_op(c: &mut Call, op: fn(u64, u64) -> Option<u64>) -> Result {
    let (a, b) = (c.int64()?, c.int64()?);
    let value = op(a, b).ok_or(c.fail("division by zero"))?;
    c.ret_int64(value)
}

fn shift64(c: &mut Call, op: fn(u64, u32) -> u64) -> Result {
    let (a, n) = (c.int64()?, c.int()?);
    c.ret_int64(op(a, n as u32 & 63))
}

// ------------------------------------------------------------ refused operations --

fn failing(c: &mut Call, result: u64, errno: u64) -> Result {
    if errno != 0 {
        c.set_errno(errno)?;
    }
    c.ret(result)
}

/// Returns 0 (or NULL): nothing there, or nothing done.
fn zero(c: &mut Call) -> Result {
    failing(c, 0, 0)
}

fn null_enoent(c: &mut Call) -> Result {
    failing(c, 0, ENOENT)
}

fn eof_ebadf(c: &mut Call) -> Result {
    failing(c, u64::MAX, EBADF)
}

fn minus_one_ebadf(c: &mut Call) -> Result {
    failing(c, u64::MAX, EBADF)
}

fn minus_one_enoent(c: &mut Call) -> Result {
    failing(c, u64::MAX, ENOENT)
}

fn minus_one_enosys(c: &mut Call) -> Result {
    failing(c, u64::MAX, ENOSYS)
}
