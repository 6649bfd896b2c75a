//! The emulated kernel's C runtime, host-side: each function reads its arguments through the
//! target's calling convention, works on emulated memory, and sets its result; the return
//! instruction of its kernel slot then goes back to the module. Written once for every
//! architecture. Functions a kernel has no business offering (files, processes) exist so that
//! modules link, and fail as C says they may (NULL, -1, EOF with errno set).

use unicorn_engine::unicorn_const::uc_error;

use super::cformat::{self, DataModel, FormatArgs, FormatError};
use super::engine::{call_guest, KERNEL_DATA};
use super::heap::Heap;
use super::target::{read_word, write_word, ArgClass, ArgCursor, Target, Uc};
use crate::error::Stop;

mod functions;

pub(super) use functions::FUNCTIONS;

/// The most bytes one runtime function reads or writes at once: more than any region holds.
const MAX_ACCESS: u64 = 1 << 28;

/// A runtime function: its C name and what it does.
pub(super) struct Function {
    pub name: &'static str,
    pub run: fn(&mut Call) -> Result<(), Stop>,
}

/// The runtime's state: its variables in kernel data, and buffered output.
#[derive(Default)]
pub(crate) struct Runtime {
    variables: Vec<(&'static str, u64, u64)>,
    next_data: u64,
    /// Output not yet handed to the host: (fd, bytes) runs in the order written.
    output: Vec<(u64, Vec<u8>)>,
    pub errno_address: u64,
    /// The heap blocks behind strerror's and gmtime's results, reused by their next call.
    pub strerror_buffer: u64,
    pub tm_buffer: u64,
}

impl Runtime {
    pub fn variable(&self, name: &str) -> Option<(u64, u64)> {
        self.variables
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|&(_, address, size)| (address, size))
    }

    /// The variables laid out in kernel data: name (empty for a block no symbol names),
    /// address and size.
    pub fn variables(&self) -> impl Iterator<Item = (&'static str, u64, u64)> + '_ {
        self.variables.iter().copied()
    }

    pub fn variable_at(&self, address: u64) -> Option<(String, u64)> {
        self.variables
            .iter()
            .find(|(name, start, size)| {
                !name.is_empty() && (*start..start + size).contains(&address)
            })
            .map(|&(name, start, _)| (name.to_string(), start))
    }

    fn allocate(&mut self, size: u64, align: u64) -> u64 {
        let base = if self.next_data == 0 {
            KERNEL_DATA.0
        } else {
            self.next_data
        };
        let address = base.next_multiple_of(align);
        self.next_data = address + size;
        assert!(
            self.next_data <= KERNEL_DATA.1,
            "kernel data region too small"
        );
        address
    }
}

/// glibc's character classes, by bit number (`_ISupper` … `_ISalnum`).
const CTYPE_BITS: [fn(u8) -> bool; 12] = [
    |c| c.is_ascii_uppercase(),
    |c| c.is_ascii_lowercase(),
    |c| c.is_ascii_alphabetic(),
    |c| c.is_ascii_digit(),
    |c| c.is_ascii_hexdigit(),
    |c| c.is_ascii_whitespace() || c == 0x0b,
    |c| (0x20..0x7f).contains(&c),
    |c| (0x21..0x7f).contains(&c),
    |c| c == b' ' || c == b'\t',
    |c| c < 0x20 || c == 0x7f,
    |c| c.is_ascii_punctuation(),
    |c| c.is_ascii_alphanumeric(),
];

/// The glibc mask of class `bit`: glibc numbers the bits in the host's byte order.
fn ctype_mask(bit: usize, big_endian: bool) -> u16 {
    let plain = 1u16 << bit;
    if big_endian {
        plain
    } else if bit < 8 {
        plain << 8
    } else {
        plain >> 8
    }
}

/// Lays out the runtime's variables in kernel data: the stdio streams, errno, glibc's ctype
/// tables (indexed from -128), and the C locale's `struct lconv`.
pub(super) fn install_data(uc: &mut Uc) -> Result<(), uc_error> {
    let target = uc.get_data().target;
    let big = target.kind().big_endian();
    let word = target.kind().word_bytes();
    let define = |uc: &mut Uc, name: &'static str, size: u64, align: u64| {
        let runtime = &mut uc.get_data_mut().runtime;
        let address = runtime.allocate(size, align);
        runtime.variables.push((name, address, size));
        address
    };
    // FILE objects are opaque to modules; each stream variable points to one.
    for (stream, fd) in [("stdin", 0u64), ("stdout", 1), ("stderr", 2)] {
        let file = define(uc, "", 64, 16);
        write_word(uc, file, 4, big, fd)?;
        let variable = define(uc, stream, word, word);
        write_word(uc, variable, word, big, file)?;
    }
    let errno = define(uc, "errno", 4, 4);
    uc.get_data_mut().runtime.errno_address = errno;

    let classes = define(uc, "", 384 * 2, 16);
    let lower = define(uc, "", 384 * 4, 16);
    let upper = define(uc, "", 384 * 4, 16);
    for i in 0..384u64 {
        let c = (i as i64 - 128) as u8;
        let in_ascii = i >= 128;
        let mask = CTYPE_BITS
            .iter()
            .enumerate()
            .filter(|(_, class)| in_ascii && class(c))
            .fold(0u16, |m, (bit, _)| m | ctype_mask(bit, big));
        write_word(uc, classes + 2 * i, 2, big, u64::from(mask))?;
        let value = i as i64 - 128;
        let (l, u) = if in_ascii {
            (c.to_ascii_lowercase() as i64, c.to_ascii_uppercase() as i64)
        } else {
            (value, value)
        };
        write_word(uc, lower + 4 * i, 4, big, l as u32 as u64)?;
        write_word(uc, upper + 4 * i, 4, big, u as u32 as u64)?;
    }
    for (name, table, entry) in [
        ("__ctype_b", classes, 2),
        ("__ctype_tolower", lower, 4),
        ("__ctype_toupper", upper, 4),
    ] {
        let pointer = define(uc, name, word, word);
        write_word(uc, pointer, word, big, table + 128 * entry)?;
    }

    // struct lconv: decimal_point, thousands_sep, grouping, … (ten char pointers), then chars.
    let strings = define(uc, "", 16, 4);
    uc.mem_write(strings, b".\0\0\0")?;
    let lconv = define(uc, "", 10 * word + 16, word);
    write_word(uc, lconv, word, big, strings)?;
    for i in 1..10 {
        write_word(uc, lconv + i * word, word, big, strings + 2)?;
    }
    uc.mem_write(lconv + 10 * word, &[0x7f; 14])?;
    uc.get_data_mut()
        .runtime
        .variables
        .push(("__dlkm_lconv", lconv, 10 * word + 16));
    let c_locale = define(uc, "", 2, 1);
    uc.mem_write(c_locale, b"C\0")?;
    uc.get_data_mut()
        .runtime
        .variables
        .push(("__dlkm_c_locale", c_locale, 2));
    Ok(())
}

/// Runs runtime function `index` for the call that reached its slot.
pub(super) fn dispatch(uc: &mut Uc, index: usize) {
    let Some(function) = FUNCTIONS.get(index) else {
        return;
    };
    let target = uc.get_data().target;
    let mut call = Call {
        uc,
        target,
        cursor: ArgCursor::default(),
        name: function.name,
    };
    if let Err(stop) = (function.run)(&mut call) {
        let uc = call.uc;
        uc.get_data_mut().stop = Some(stop);
        let _ = uc.emu_stop();
    }
}

/// Makes the call that reached a kernel slot return -1 with errno ENOSYS: what a call through
/// a stub whose module cannot be loaded gets.
pub(super) fn fail_with_enosys(uc: &mut Uc) -> Result<(), uc_error> {
    let target = uc.get_data().target;
    target.set_result(uc, ArgClass::Word, u64::MAX)?;
    let errno = uc.get_data().runtime.errno_address;
    write_word(uc, errno, 4, target.kind().big_endian(), functions::ENOSYS)
}

/// Takes the output modules wrote to stdout and stderr since the last time, in order, for
/// the calling thread to write: the emulator's thread never touches the host's streams, whose
/// locks the embedding program may hold while it waits for a call.
pub(super) fn take_output(uc: &mut Uc) -> Vec<(u64, Vec<u8>)> {
    std::mem::take(&mut uc.get_data_mut().runtime.output)
}

/// One call of a runtime function: its arguments, the memory it works on, its result.
pub(super) struct Call<'c, 'a> {
    pub uc: &'c mut Uc<'a>,
    pub target: &'static dyn Target,
    cursor: ArgCursor,
    name: &'static str,
}

impl Call<'_, '_> {
    pub fn fail(&self, reason: impl Into<String>) -> Stop {
        Stop::Runtime {
            function: self.name,
            reason: reason.into(),
        }
    }

    fn emulator(&self) -> impl Fn(uc_error) -> Stop {
        let function = self.name;
        move |e| Stop::Runtime {
            function,
            reason: format!("{e:?}"),
        }
    }

    fn next(&mut self, class: ArgClass) -> Result<u64, Stop> {
        let mut cursor = self.cursor;
        let value = self
            .target
            .next_arg(self.uc, &mut cursor, class)
            .map_err(self.emulator())?;
        self.cursor = cursor;
        Ok(value)
    }

    /// The next argument: an integer or pointer of register width.
    pub fn arg(&mut self) -> Result<u64, Stop> {
        self.next(ArgClass::Word)
    }

    /// The next argument as a C `int` (or `long` on 32-bit targets), sign-extended.
    pub fn int(&mut self) -> Result<i64, Stop> {
        Ok(self.arg()? as u32 as i32 as i64)
    }

    pub fn int64(&mut self) -> Result<u64, Stop> {
        self.next(ArgClass::Int64)
    }

    pub fn double(&mut self) -> Result<f64, Stop> {
        Ok(f64::from_bits(self.next(ArgClass::Double)?))
    }

    /// From here on the arguments are the variadic part of the call.
    pub fn start_varargs(&mut self) {
        self.cursor.variadic = true;
    }

    pub fn ret(&mut self, value: u64) -> Result<(), Stop> {
        let target = self.target;
        target
            .set_result(self.uc, ArgClass::Word, value)
            .map_err(self.emulator())
    }

    pub fn ret_int64(&mut self, value: u64) -> Result<(), Stop> {
        let target = self.target;
        target
            .set_result(self.uc, ArgClass::Int64, value)
            .map_err(self.emulator())
    }

    pub fn ret_double(&mut self, value: f64) -> Result<(), Stop> {
        let target = self.target;
        target
            .set_result(self.uc, ArgClass::Double, value.to_bits())
            .map_err(self.emulator())
    }

    pub fn word_bytes(&self) -> u64 {
        self.target.kind().word_bytes()
    }

    pub fn big_endian(&self) -> bool {
        self.target.kind().big_endian()
    }

    pub fn model(&self) -> DataModel {
        if self.word_bytes() == 4 {
            DataModel::Ilp32
        } else {
            DataModel::Lp64
        }
    }

    pub fn read(&self, address: u64, len: u64) -> Result<Vec<u8>, Stop> {
        self.check_length(len)?;
        self.uc
            .mem_read_as_vec(address, len as usize)
            .map_err(|_| self.fail(format!("cannot read {len} bytes at {address:#x}")))
    }

    /// Refuses lengths no mapping of the machine has, before the host allocates for them.
    fn check_length(&self, len: u64) -> Result<(), Stop> {
        if len > MAX_ACCESS {
            return Err(self.fail(format!("{len:#x} bytes is larger than any memory here")));
        }
        Ok(())
    }

    /// Sets `len` bytes at `address` to `byte`.
    pub fn fill(&mut self, address: u64, byte: u8, len: u64) -> Result<(), Stop> {
        self.check_length(len)?;
        self.write(address, &vec![byte; len as usize])
    }

    pub fn write(&mut self, address: u64, bytes: &[u8]) -> Result<(), Stop> {
        let len = bytes.len();
        self.uc
            .mem_write(address, bytes)
            .map_err(|_| Stop::Runtime {
                function: self.name,
                reason: format!("cannot write {len} bytes at {address:#x}"),
            })
    }

    pub fn read_word(&self, address: u64, bytes: u64) -> Result<u64, Stop> {
        read_word(self.uc, address, bytes, self.big_endian())
            .map_err(|_| self.fail(format!("cannot read {bytes} bytes at {address:#x}")))
    }

    pub fn write_word(&mut self, address: u64, bytes: u64, value: u64) -> Result<(), Stop> {
        let big = self.big_endian();
        write_word(self.uc, address, bytes, big, value).map_err(|_| Stop::Runtime {
            function: self.name,
            reason: format!("cannot write {bytes} bytes at {address:#x}"),
        })
    }

    /// The NUL-terminated string at `address`, without the NUL; at most `limit` bytes.
    pub fn c_string(&self, address: u64, limit: Option<usize>) -> Result<Vec<u8>, Stop> {
        const CHUNK: u64 = 256;
        let mut bytes = Vec::new();
        let mut at = address;
        loop {
            // Never read across a page boundary in one go: the next page may not be mapped.
            let len = CHUNK.min(0x1000 - (at & 0xfff));
            let chunk = self.read(at, len)?;
            match chunk.iter().position(|&b| b == 0) {
                Some(end) => {
                    bytes.extend_from_slice(&chunk[..end]);
                    break;
                }
                None => bytes.extend_from_slice(&chunk),
            }
            if limit.is_some_and(|l| bytes.len() >= l) {
                break;
            }
            at += len;
        }
        if let Some(limit) = limit {
            bytes.truncate(limit);
        }
        Ok(bytes)
    }

    pub fn heap(&mut self) -> &mut Heap {
        &mut self.uc.get_data_mut().heap
    }

    pub fn runtime(&mut self) -> &mut Runtime {
        &mut self.uc.get_data_mut().runtime
    }

    pub fn set_errno(&mut self, errno: u64) -> Result<(), Stop> {
        let address = self.runtime().errno_address;
        self.write_word(address, 4, errno)
    }

    pub fn reg(&self, reg: i32) -> Result<u64, Stop> {
        self.uc.reg_read(reg).map_err(self.emulator())
    }

    pub fn set_reg(&mut self, reg: i32, value: u64) -> Result<(), Stop> {
        let name = self.name;
        self.uc.reg_write(reg, value).map_err(|e| Stop::Runtime {
            function: name,
            reason: format!("{e:?}"),
        })
    }

    /// Calls module code (a comparator, a callback) and returns its integer result.
    pub fn call_guest(&mut self, address: u64, args: &[u64]) -> Result<u64, Stop> {
        let sp = (self.reg(self.target.registers().sp)? - 512) & !0xf;
        call_guest(self.uc, address, args, sp)
    }

    /// Appends module output for stdout (fd 1) or stderr (fd 2); false for other descriptors.
    pub fn output(&mut self, fd: u64, bytes: &[u8]) -> bool {
        if fd != 1 && fd != 2 {
            return false;
        }
        let output = &mut self.runtime().output;
        match output.last_mut() {
            Some((last, run)) if *last == fd => run.extend_from_slice(bytes),
            _ => output.push((fd, bytes.to_vec())),
        }
        true
    }

    /// Formats like printf: `format` the address of the format string, arguments from `args`.
    pub fn format(&mut self, format: u64, va_list: Option<u64>) -> Result<Vec<u8>, Stop> {
        let fmt = self.c_string(format, None)?;
        let model = self.model();
        let name = self.name;
        let mut source = ArgSource {
            call: self,
            va_list,
        };
        cformat::format(&fmt, model, &mut source).map_err(|e| Stop::Runtime {
            function: name,
            reason: e.to_string(),
        })
    }
}

/// printf's arguments: the variadic part of the call, or a `va_list`.
struct ArgSource<'s, 'c, 'a> {
    call: &'s mut Call<'c, 'a>,
    va_list: Option<u64>,
}

impl ArgSource<'_, '_, '_> {
    fn next(&mut self, class: ArgClass) -> Result<u64, FormatError> {
        let memory = |_| FormatError::Memory { address: 0 };
        match self.va_list.as_mut() {
            Some(va) => self
                .call
                .target
                .va_arg(self.call.uc, va, class)
                .map_err(memory),
            None => self
                .call
                .next(class)
                .map_err(|_| FormatError::Memory { address: 0 }),
        }
    }
}

impl FormatArgs for ArgSource<'_, '_, '_> {
    fn next_int(&mut self, bytes: u8) -> Result<u64, FormatError> {
        let class = if u64::from(bytes) > self.call.word_bytes() {
            ArgClass::Int64
        } else {
            ArgClass::Word
        };
        let value = self.next(class)?;
        Ok(if bytes == 4 {
            value & 0xffff_ffff
        } else {
            value
        })
    }

    fn next_double(&mut self) -> Result<f64, FormatError> {
        Ok(f64::from_bits(self.next(ArgClass::Double)?))
    }

    fn c_string(&mut self, address: u64, limit: Option<usize>) -> Result<Vec<u8>, FormatError> {
        self.call
            .c_string(address, limit)
            .map_err(|_| FormatError::Memory { address })
    }
}
