//! A linked module's symbols as one table. A large object defines thousands of symbols; as a
//! table they cost a few allocations and no reference counts to make, clone and free: every
//! name lives in one buffer and every section name once, and a symbol is a 32-byte row.
//!
//! A table can also keep its rows where they were encoded ([`LinkedSymbols::decode_shared`]):
//! a loader that maps a module's symbols from a file (its image cache) keeps the mapping and
//! decodes each row as it is read, so that a load copies none of them and processes loading
//! the same module share those pages. Its names are copied: read where they lie, each would
//! be checked for UTF-8 every time it is read, which costs more than the copy.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use crate::input::{Symbol, SymbolType};

/// Bytes a table reads its rows from and keeps for as long as it lives, shared with whoever
/// else holds them (a mapped file, say). They must not change while they are held: a table
/// checks them once, when it is decoded, and afterwards reads a row that has changed as
/// absent or as a nameless symbol at 0, never panicking.
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// A symbol of the linked module, at its final address; borrowed from [`LinkedSymbols`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkedSymbol<'a> {
    pub name: &'a str,
    pub address: u64,
    pub size: u64,
    pub ty: SymbolType,
    /// Visible to the kernel and other modules.
    pub exported: bool,
    /// The section it is defined in (`*common*`, `*abs*` for those without one).
    pub section: &'a str,
}

/// The symbols a linked module defines.
#[derive(Clone, Default)]
pub struct LinkedSymbols {
    /// All the names, one after another; rows give their ranges.
    names: Arc<str>,
    sections: Arc<[Box<str>]>,
    rows: Rows,
    /// The rows that are exported, by index: a kernel walks these on every load and unload,
    /// and most of a large module's rows are not.
    exports: Arc<[u32]>,
}

#[derive(Clone)]
enum Rows {
    Owned(Vec<Row>),
    /// Encoded rows ([`ROW_BYTES`] each) in shared bytes, checked when the table was decoded.
    Shared(SharedBytes, Range<usize>),
}

impl Default for Rows {
    fn default() -> Self {
        Rows::Owned(Vec::new())
    }
}

#[derive(Debug, Clone, Copy)]
struct Row {
    name_start: u32,
    name_len: u32,
    address: u64,
    size: u64,
    section: u32,
    ty: SymbolType,
    exported: bool,
}

const _: () = assert!(std::mem::size_of::<Row>() == ROW_BYTES);

impl Row {
    /// What a row reads as when shared bytes no longer hold it.
    const VANISHED: Row = Row {
        name_start: 0,
        name_len: 0,
        address: 0,
        size: 0,
        section: u32::MAX,
        ty: SymbolType::NoType,
        exported: false,
    };

    fn name_range(&self) -> Range<usize> {
        let start = self.name_start as usize;
        start..start + self.name_len as usize
    }
}

/// The indexes of the exported rows among `rows`.
fn export_indexes(rows: impl Iterator<Item = Row>) -> Arc<[u32]> {
    // Rows come from ELF symbol tables, whose indexes are 32-bit.
    (0u32..)
        .zip(rows)
        .filter(|(_, row)| row.exported)
        .map(|(index, _)| index)
        .collect()
}

fn shared_slice<'a>(bytes: &'a SharedBytes, range: &Range<usize>) -> &'a [u8] {
    (**bytes).as_ref().get(range.clone()).unwrap_or_default()
}

impl Rows {
    fn len(&self) -> usize {
        match self {
            Rows::Owned(rows) => rows.len(),
            Rows::Shared(_, range) => range.len() / ROW_BYTES,
        }
    }

    fn get(&self, index: usize) -> Option<Row> {
        match self {
            Rows::Owned(rows) => rows.get(index).copied(),
            Rows::Shared(bytes, range) => {
                let start = index.checked_mul(ROW_BYTES)?;
                row_in(shared_slice(bytes, range).get(start..start.checked_add(ROW_BYTES)?)?)
            }
        }
    }

    fn iter(&self) -> RowIter<'_> {
        match self {
            Rows::Owned(rows) => RowIter::Owned(rows.iter()),
            Rows::Shared(bytes, range) => {
                RowIter::Shared(shared_slice(bytes, range).chunks_exact(ROW_BYTES))
            }
        }
    }
}

/// The rows of a table in order, decoded as they are walked where they are shared.
#[derive(Debug, Clone)]
enum RowIter<'a> {
    Owned(std::slice::Iter<'a, Row>),
    Shared(std::slice::ChunksExact<'a, u8>),
}

impl Iterator for RowIter<'_> {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        match self {
            RowIter::Owned(rows) => rows.next().copied(),
            // A row that no longer decodes (its bytes changed) ends the walk.
            RowIter::Shared(chunks) => row_in(chunks.next()?),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            RowIter::Owned(rows) => rows.size_hint(),
            RowIter::Shared(chunks) => (0, Some(chunks.len())),
        }
    }
}

impl DoubleEndedIterator for RowIter<'_> {
    fn next_back(&mut self) -> Option<Row> {
        match self {
            RowIter::Owned(rows) => rows.next_back().copied(),
            RowIter::Shared(chunks) => row_in(chunks.next_back()?),
        }
    }
}

impl LinkedSymbols {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of all the names together.
    pub(crate) fn names_len(&self) -> usize {
        self.names.len()
    }

    pub fn get(&self, index: usize) -> Option<LinkedSymbol<'_>> {
        self.rows.get(index).map(|row| self.view(&row))
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter {
            table: self,
            rows: self.rows.iter(),
        }
    }

    /// The symbols visible to the kernel, in table order.
    pub fn exported(&self) -> impl ExactSizeIterator<Item = LinkedSymbol<'_>> {
        self.exports.iter().map(|&index| {
            // An index the table made; absent only where shared bytes have changed.
            let row = self.rows.get(index as usize).unwrap_or(Row::VANISHED);
            self.view(&row)
        })
    }

    /// The first symbol called `name` (a module may define a local more than once).
    pub fn find(&self, name: &str) -> Option<LinkedSymbol<'_>> {
        let names = self.names.as_bytes();
        let wanted = Some(name.as_bytes());
        let row = self
            .rows
            .iter()
            .find(|row| names.get(row.name_range()) == wanted)?;
        Some(self.view(&row))
    }

    /// The addresses of the first symbols called each of `names`, in one pass.
    pub fn addresses_of<const N: usize>(&self, names: [&str; N]) -> [Option<u64>; N] {
        let mut found = [None; N];
        let all = self.names.as_bytes();
        for row in self.rows.iter() {
            let name = all.get(row.name_range());
            for (wanted, slot) in names.iter().zip(&mut found) {
                if slot.is_none() && Some(wanted.as_bytes()) == name {
                    *slot = Some(row.address);
                }
            }
            if found.iter().all(Option::is_some) {
                break;
            }
        }
        found
    }

    /// Each symbol with the index of the section it is defined in: an index of the object's
    /// sections, or past them for `*common*` and `*abs*`.
    pub(crate) fn iter_with_sections(&self) -> impl Iterator<Item = (LinkedSymbol<'_>, usize)> {
        self.rows
            .iter()
            .map(|row| (self.view(&row), row.section as usize))
    }

    /// Ordered by address, then name. A table whose rows are shared gets rows of its own.
    pub fn sort_by_address(&mut self) {
        let mut rows: Vec<Row> = self.rows.iter().collect();
        let names = self.names.as_bytes();
        rows.sort_by(|a, b| {
            a.address
                .cmp(&b.address)
                .then_with(|| names.get(a.name_range()).cmp(&names.get(b.name_range())))
        });
        self.exports = export_indexes(rows.iter().copied());
        self.rows = Rows::Owned(rows);
    }

    fn view(&self, row: &Row) -> LinkedSymbol<'_> {
        LinkedSymbol {
            name: self.names.get(row.name_range()).unwrap_or_default(),
            address: row.address,
            size: row.size,
            ty: row.ty,
            exported: row.exported,
            section: self
                .sections
                .get(row.section as usize)
                .map_or("", |section| section),
        }
    }
}

impl fmt::Debug for LinkedSymbols {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Why bytes given to [`LinkedSymbols::decode`] are not a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an encoded symbol table: {0}")]
pub struct BadSymbolTable(&'static str);

impl LinkedSymbols {
    /// The table as bytes [`LinkedSymbols::decode`] reads back: a loader keeps a linked
    /// module's symbols beside its image and restores them without relinking. Little-endian,
    /// whatever the host; not a format to exchange between versions of this crate.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let count = |n: usize| (n as u64).to_le_bytes();
        out.extend_from_slice(&count(self.sections.len()));
        for section in self.sections.iter() {
            out.extend_from_slice(&count(section.len()));
            out.extend_from_slice(section.as_bytes());
        }
        let names = self.names.as_bytes();
        out.extend_from_slice(&count(names.len()));
        out.extend_from_slice(names);
        let rows = self.rows.iter();
        out.extend_from_slice(&count(rows.clone().count()));
        for row in rows {
            let (ty, other) = encode_type(row.ty);
            out.extend_from_slice(&row.name_start.to_le_bytes());
            out.extend_from_slice(&row.name_len.to_le_bytes());
            out.extend_from_slice(&row.address.to_le_bytes());
            out.extend_from_slice(&row.size.to_le_bytes());
            out.extend_from_slice(&row.section.to_le_bytes());
            out.extend_from_slice(&[ty, other, row.exported as u8, 0]);
        }
    }

    /// A table [`LinkedSymbols::encode`] wrote at the start of `bytes`, copied out of them,
    /// and the bytes after it. Every row is checked: a name inside the names and on character
    /// boundaries, a section that exists.
    pub fn decode(bytes: &[u8]) -> Result<(LinkedSymbols, &[u8]), BadSymbolTable> {
        let mut rows = Vec::new();
        let parts = read_table(bytes, |row| rows.push(row))?;
        let table = LinkedSymbols {
            names: parts.names.into(),
            sections: parts.sections.into(),
            exports: parts.exports,
            rows: Rows::Owned(rows),
        };
        Ok((table, &bytes[parts.end..]))
    }

    /// A table [`LinkedSymbols::encode`] wrote at the start of `range` of `bytes`, checked as
    /// [`LinkedSymbols::decode`] checks it, whose rows are read where they lie: the table
    /// keeps `bytes` and copies only the names. Also where in `bytes` the table ends.
    pub fn decode_shared(
        bytes: SharedBytes,
        range: Range<usize>,
    ) -> Result<(LinkedSymbols, usize), BadSymbolTable> {
        let within = (*bytes)
            .as_ref()
            .get(range.clone())
            .ok_or(BadSymbolTable("it ends early"))?;
        let TableParts {
            sections,
            names,
            rows_at,
            exports,
            end,
        } = read_table(within, |_| {})?;
        let at = |r: Range<usize>| range.start + r.start..range.start + r.end;
        let table = LinkedSymbols {
            names: names.into(),
            sections: sections.into(),
            rows: Rows::Shared(bytes, at(rows_at)),
            exports,
        };
        Ok((table, range.start + end))
    }
}

/// An encoded table's parts, checked: every row decodes, names a range of the names on
/// character boundaries and a section that is there.
struct TableParts<'a> {
    sections: Vec<Box<str>>,
    names: &'a str,
    rows_at: Range<usize>,
    exports: Arc<[u32]>,
    end: usize,
}

/// Reads and checks the table at the start of `bytes`, handing each row to `row`.
fn read_table(bytes: &[u8], mut row: impl FnMut(Row)) -> Result<TableParts<'_>, BadSymbolTable> {
    let mut input = Input(bytes);
    let at = |input: &Input| bytes.len() - input.0.len();
    let section_count = input.count(9)?;
    let mut sections = Vec::with_capacity(section_count);
    for _ in 0..section_count {
        let len = input.count(1)?;
        sections.push(input.text(len)?.into());
    }
    let names_len = input.count(1)?;
    let names = input.text(names_len)?;
    let row_count = input.count(ROW_BYTES)?;
    let rows_start = at(&input);
    let mut exports = Vec::new();
    for index in 0..row_count {
        let decoded =
            row_in(input.take(ROW_BYTES)?).ok_or(BadSymbolTable("a symbol type or export flag"))?;
        if names.get(decoded.name_range()).is_none() {
            return Err(BadSymbolTable("a symbol name outside the names"));
        }
        if decoded.section as usize >= sections.len() {
            return Err(BadSymbolTable("a symbol in a section that is not there"));
        }
        if decoded.exported {
            // Fits: a count of rows that each take bytes of a u32-sized table.
            exports.push(u32::try_from(index).map_err(|_| BadSymbolTable("too many rows"))?);
        }
        row(decoded);
    }
    Ok(TableParts {
        sections,
        names,
        rows_at: rows_start..at(&input),
        exports: exports.into(),
        end: at(&input),
    })
}

/// A row as encoded; `None` for a type or export flag that no row has. Walks of a shared
/// table decode every row they pass, so this is kept to loads from a fixed-size array.
fn decode_row(row: &[u8; ROW_BYTES]) -> Option<Row> {
    let word = |at: usize| u32::from_le_bytes([row[at], row[at + 1], row[at + 2], row[at + 3]]);
    let long = |at: usize| u64::from(word(at)) | u64::from(word(at + 4)) << 32;
    Some(Row {
        name_start: word(0),
        name_len: word(4),
        address: long(8),
        size: long(16),
        section: word(24),
        ty: decode_type(row[28], row[29])?,
        exported: match row[30] {
            0 => false,
            1 => true,
            _ => return None,
        },
    })
}

/// The row in `bytes`, which are [`ROW_BYTES`] long.
fn row_in(bytes: &[u8]) -> Option<Row> {
    decode_row(bytes.try_into().ok()?)
}

const ROW_BYTES: usize = 32;

fn encode_type(ty: SymbolType) -> (u8, u8) {
    match ty {
        SymbolType::NoType => (0, 0),
        SymbolType::Object => (1, 0),
        SymbolType::Function => (2, 0),
        SymbolType::Section => (3, 0),
        SymbolType::File => (4, 0),
        SymbolType::Tls => (5, 0),
        SymbolType::IFunc => (6, 0),
        SymbolType::Other(n) => (7, n),
    }
}

fn decode_type(ty: u8, other: u8) -> Option<SymbolType> {
    Some(match ty {
        0 => SymbolType::NoType,
        1 => SymbolType::Object,
        2 => SymbolType::Function,
        3 => SymbolType::Section,
        4 => SymbolType::File,
        5 => SymbolType::Tls,
        6 => SymbolType::IFunc,
        7 => SymbolType::Other(other),
        _ => return None,
    })
}

/// Encoded bytes not read yet.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], BadSymbolTable> {
        if len > self.0.len() {
            return Err(BadSymbolTable("it ends early"));
        }
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(taken)
    }

    /// A count of items of at least `item_bytes` bytes each, which must all fit in what is
    /// left: a corrupt count cannot make a huge allocation.
    fn count(&mut self, item_bytes: usize) -> Result<usize, BadSymbolTable> {
        let raw = u64::from_le_bytes(self.take(8)?.try_into().unwrap_or_default());
        usize::try_from(raw)
            .ok()
            .filter(|&n| n.checked_mul(item_bytes).is_some_and(|b| b <= self.0.len()))
            .ok_or(BadSymbolTable("a count larger than the bytes"))
    }

    fn text(&mut self, len: usize) -> Result<&'a str, BadSymbolTable> {
        std::str::from_utf8(self.take(len)?).map_err(|_| BadSymbolTable("a name not in UTF-8"))
    }
}

impl<'a> IntoIterator for &'a LinkedSymbols {
    type Item = LinkedSymbol<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The symbols of a [`LinkedSymbols`] in its order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    table: &'a LinkedSymbols,
    rows: RowIter<'a>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = LinkedSymbol<'a>;

    fn next(&mut self) -> Option<LinkedSymbol<'a>> {
        self.rows.next().map(|row| self.table.view(&row))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.rows.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.rows.next_back().map(|row| self.table.view(&row))
    }
}

/// Builds a [`LinkedSymbols`]: sections first, then symbols in order.
pub(crate) struct LinkedSymbolsBuilder {
    names: String,
    sections: Vec<Box<str>>,
    rows: Vec<Row>,
}

/// A table's names past 4 GiB, which its 32-bit offsets cannot hold.
#[derive(Debug)]
pub(crate) struct NamesTooLarge;

impl LinkedSymbolsBuilder {
    pub(crate) fn new(sections: Vec<Box<str>>, symbols: usize, name_bytes: usize) -> Self {
        LinkedSymbolsBuilder {
            names: String::with_capacity(name_bytes),
            sections,
            rows: Vec::with_capacity(symbols),
        }
    }

    /// Adds `symbol`, placed at `address` in `section` (an index of the sections given to
    /// [`Self::new`]).
    pub(crate) fn push(
        &mut self,
        symbol: &Symbol<'_>,
        address: u64,
        section: usize,
    ) -> Result<(), NamesTooLarge> {
        let name_start = u32::try_from(self.names.len()).map_err(|_| NamesTooLarge)?;
        let name_len = u32::try_from(symbol.name.len()).map_err(|_| NamesTooLarge)?;
        name_start.checked_add(name_len).ok_or(NamesTooLarge)?;
        self.names.push_str(symbol.name);
        self.rows.push(Row {
            name_start,
            name_len,
            address,
            size: symbol.size,
            section: u32::try_from(section).map_err(|_| NamesTooLarge)?,
            ty: symbol.ty,
            exported: symbol.is_exported(),
        });
        Ok(())
    }

    pub(crate) fn finish(self) -> LinkedSymbols {
        LinkedSymbols {
            names: self.names.into(),
            sections: self.sections.into(),
            exports: export_indexes(self.rows.iter().copied()),
            rows: Rows::Owned(self.rows),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbol(name: &str, global: bool) -> Symbol<'_> {
        Symbol {
            name,
            size: 4,
            ty: SymbolType::Function,
            def: crate::input::SymbolDef::Section(1),
            global,
            ..Symbol::null()
        }
    }

    /// A table over `.text` and `.data` of (name, exported, address, section index) rows.
    fn table_of(rows: &[(&str, bool, u64, usize)]) -> LinkedSymbols {
        let sections = vec![".text".into(), ".data".into()];
        let mut builder = LinkedSymbolsBuilder::new(sections, rows.len(), 0);
        for &(name, exported, address, section) in rows {
            builder
                .push(&symbol(name, exported), address, section)
                .unwrap();
        }
        builder.finish()
    }

    #[test]
    fn rows_read_back_as_pushed_and_sort_by_address_then_name() {
        let mut table = table_of(&[
            ("zeta", false, 0x20, 0),
            ("export", true, 0x10, 1),
            ("alpha", false, 0x20, 0),
        ]);
        let export = table.find("export").unwrap();
        assert_eq!(
            (export.address, export.section, export.exported),
            (0x10, ".data", true)
        );
        assert_eq!(table.find("missing"), None);
        let found = table.addresses_of(["alpha", "missing", "zeta"]);
        assert_eq!(found, [Some(0x20), None, Some(0x20)]);
        let exported: Vec<&str> = table.exported().map(|s| s.name).collect();
        assert_eq!(exported, ["export"]);
        table.sort_by_address();
        let order: Vec<&str> = table.iter().map(|s| s.name).collect();
        assert_eq!(order, ["export", "alpha", "zeta"]);
        assert_eq!(table.get(2).unwrap().section, ".text");
    }

    #[test]
    fn a_table_decodes_to_what_was_encoded_and_bad_bytes_are_refused() {
        let table = table_of(&[("zeta", false, 0x20, 0), ("export", true, 0x10, 1)]);
        let mut bytes = Vec::new();
        table.encode(&mut bytes);
        bytes.extend_from_slice(b"rest");
        let (decoded, rest) = LinkedSymbols::decode(&bytes).unwrap();
        assert_eq!(rest, b"rest");
        assert!(decoded.iter().eq(table.iter()));
        // Every truncation is an error, never a panic or a shorter table.
        for len in 0..bytes.len() - 4 {
            assert!(LinkedSymbols::decode(&bytes[..len]).is_err(), "{len}");
        }
        // A name past the names, and a section that is not there.
        let rows_start = bytes.len() - 4 - 2 * ROW_BYTES;
        let mut bad_name = bytes.clone();
        bad_name[rows_start + 4] = 200;
        assert!(LinkedSymbols::decode(&bad_name).is_err());
        let mut bad_section = bytes.clone();
        bad_section[rows_start + 24] = 2;
        assert!(LinkedSymbols::decode(&bad_section).is_err());
    }

    /// Two tables' bytes; reads as the first until `flip`, then as the second: bytes that
    /// change under a table that shares them.
    struct Changing {
        before: Vec<u8>,
        after: Vec<u8>,
        flipped: std::sync::atomic::AtomicBool,
    }

    impl AsRef<[u8]> for Changing {
        fn as_ref(&self) -> &[u8] {
            if self.flipped.load(std::sync::atomic::Ordering::Relaxed) {
                &self.after
            } else {
                &self.before
            }
        }
    }

    fn sample_table() -> LinkedSymbols {
        table_of(&[
            ("zeta", false, 0x30, 0),
            ("export", true, 0x10, 1),
            ("alpha", true, 0x20, 0),
        ])
    }

    /// The table `before` holds, decoded shared, whose bytes then read as `after`.
    fn decoded_then_changed(before: &[u8], after: Vec<u8>) -> LinkedSymbols {
        let changing = Arc::new(Changing {
            before: before.to_vec(),
            after,
            flipped: false.into(),
        });
        let shared: SharedBytes = changing.clone();
        let (table, _) = LinkedSymbols::decode_shared(shared, 0..before.len()).unwrap();
        changing
            .flipped
            .store(true, std::sync::atomic::Ordering::Relaxed);
        table
    }

    #[test]
    fn a_shared_table_reads_as_the_table_it_was_encoded_from() {
        let table = sample_table();
        let mut bytes = b"head".to_vec();
        table.encode(&mut bytes);
        let table_end = bytes.len();
        bytes.extend_from_slice(b"rest");
        let len = bytes.len();
        let shared: SharedBytes = Arc::new(bytes.clone());
        let (mut decoded, end) = LinkedSymbols::decode_shared(shared.clone(), 4..len).unwrap();
        assert_eq!(end, table_end);
        assert!(decoded.iter().eq(table.iter()));
        assert!(decoded.iter().rev().eq(table.iter().rev()));
        assert!(decoded.exported().eq(table.exported()));
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded.get(1), table.get(1));
        assert_eq!(decoded.get(3), None);
        assert_eq!(decoded.find("alpha"), table.find("alpha"));
        assert_eq!(decoded.find("missing"), None);
        let wanted = ["alpha", "zeta", "missing"];
        assert_eq!(decoded.addresses_of(wanted), table.addresses_of(wanted));
        let mut again = Vec::new();
        decoded.encode(&mut again);
        assert_eq!(again, bytes[4..table_end]);
        decoded.sort_by_address();
        let order: Vec<&str> = decoded.iter().map(|s| s.name).collect();
        assert_eq!(order, ["export", "alpha", "zeta"]);
        // The range bounds the table: cut short, it is refused.
        for cut in 4..table_end {
            assert!(LinkedSymbols::decode_shared(shared.clone(), 4..cut).is_err());
        }
        assert!(LinkedSymbols::decode_shared(shared, len..len + 1).is_err());
    }

    #[test]
    fn shared_bytes_that_change_after_decoding_never_panic() {
        let mut before = Vec::new();
        sample_table().encode(&mut before);
        // Every byte of the table in turn set to each of a few values.
        for at in 0..before.len() {
            for value in [0, 1, 0x7f, 0xff] {
                let mut after = before.clone();
                after[at] = value;
                let mut table = decoded_then_changed(&before, after);
                let _ = table.iter().count() + table.iter().rev().count();
                let _ = table.exported().count();
                let _ = (table.get(0), table.get(2), table.find("alpha"));
                let _ = table.addresses_of(["zeta", "export"]);
                table.encode(&mut Vec::new());
                table.sort_by_address();
                let _ = format!("{table:?}");
            }
        }
        // Bytes that shrink to nothing.
        let table = decoded_then_changed(&before, Vec::new());
        assert_eq!(table.iter().count(), 0);
        assert_eq!(table.find("alpha"), None);
    }
}
