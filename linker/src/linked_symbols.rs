//! A linked module's symbols as one table. A large object defines thousands of symbols; as a
//! table they cost a few allocations and no reference counts to make, clone and free: every
//! name lives in one buffer and every section name once, and a symbol is a 32-byte row.

use std::sync::Arc;

use crate::input::{Symbol, SymbolType};

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
#[derive(Debug, Clone, Default)]
pub struct LinkedSymbols {
    names: Arc<str>,
    sections: Arc<[Box<str>]>,
    rows: Vec<Row>,
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

impl LinkedSymbols {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The bytes of all the names together.
    pub(crate) fn names_len(&self) -> usize {
        self.names.len()
    }

    pub fn get(&self, index: usize) -> Option<LinkedSymbol<'_>> {
        self.rows.get(index).map(|row| self.view(row))
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter {
            table: self,
            rows: self.rows.iter(),
        }
    }

    /// The symbols visible to the kernel, in table order: a kernel walks these on every load
    /// and unload, and most of a large module's symbols are not.
    pub fn exported(&self) -> impl Iterator<Item = LinkedSymbol<'_>> {
        self.rows
            .iter()
            .filter(|row| row.exported)
            .map(|row| self.view(row))
    }

    /// The first symbol called `name` (a module may define a local more than once).
    pub fn find(&self, name: &str) -> Option<LinkedSymbol<'_>> {
        let names = &*self.names;
        let row = self.rows.iter().find(|row| row_name(names, row) == name)?;
        Some(self.view(row))
    }

    /// The addresses of the first symbols called each of `names`, in one pass.
    pub fn addresses_of<const N: usize>(&self, names: [&str; N]) -> [Option<u64>; N] {
        let mut found = [None; N];
        for row in &self.rows {
            let name = row_name(&self.names, row);
            for (wanted, slot) in names.iter().zip(&mut found) {
                if slot.is_none() && *wanted == name {
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
            .map(|row| (self.view(row), row.section as usize))
    }

    /// Ordered by address, then name.
    pub fn sort_by_address(&mut self) {
        let names = &*self.names;
        self.rows.sort_by(|a, b| {
            a.address
                .cmp(&b.address)
                .then_with(|| row_name(names, a).cmp(row_name(names, b)))
        });
    }

    fn view(&self, row: &Row) -> LinkedSymbol<'_> {
        LinkedSymbol {
            name: row_name(&self.names, row),
            address: row.address,
            size: row.size,
            ty: row.ty,
            exported: row.exported,
            section: &self.sections[row.section as usize],
        }
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
        out.extend_from_slice(&count(self.names.len()));
        out.extend_from_slice(self.names.as_bytes());
        out.extend_from_slice(&count(self.rows.len()));
        for row in &self.rows {
            let (ty, other) = encode_type(row.ty);
            out.extend_from_slice(&row.name_start.to_le_bytes());
            out.extend_from_slice(&row.name_len.to_le_bytes());
            out.extend_from_slice(&row.address.to_le_bytes());
            out.extend_from_slice(&row.size.to_le_bytes());
            out.extend_from_slice(&row.section.to_le_bytes());
            out.extend_from_slice(&[ty, other, row.exported as u8, 0]);
        }
    }

    /// A table [`LinkedSymbols::encode`] wrote at the start of `bytes`, and the bytes after
    /// it. Every row is checked: a name inside the names and on character boundaries, a
    /// section that exists.
    pub fn decode(bytes: &[u8]) -> Result<(LinkedSymbols, &[u8]), BadSymbolTable> {
        let mut input = Input(bytes);
        let section_count = input.count(9)?;
        let mut sections = Vec::with_capacity(section_count);
        for _ in 0..section_count {
            let len = input.count(1)?;
            sections.push(input.text(len)?.into());
        }
        let names_len = input.count(1)?;
        let names: Arc<str> = input.text(names_len)?.into();
        let row_count = input.count(ROW_BYTES)?;
        let mut rows = Vec::with_capacity(row_count);
        for _ in 0..row_count {
            let row = input.take(ROW_BYTES)?;
            let word = |at: usize| u32::from_le_bytes(row[at..at + 4].try_into().unwrap());
            let long = |at: usize| u64::from_le_bytes(row[at..at + 8].try_into().unwrap());
            let row = Row {
                name_start: word(0),
                name_len: word(4),
                address: long(8),
                size: long(16),
                section: word(24),
                ty: decode_type(row[28], row[29]).ok_or(BadSymbolTable("a symbol type"))?,
                exported: match row[30] {
                    0 => false,
                    1 => true,
                    _ => return Err(BadSymbolTable("a symbol's export flag")),
                },
            };
            let start = row.name_start as usize;
            if names.get(start..start + row.name_len as usize).is_none() {
                return Err(BadSymbolTable("a symbol name outside the names"));
            }
            if row.section as usize >= sections.len() {
                return Err(BadSymbolTable("a symbol in a section that is not there"));
            }
            rows.push(row);
        }
        let table = LinkedSymbols {
            names,
            sections: sections.into(),
            rows,
        };
        Ok((table, input.0))
    }
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
        let raw = u64::from_le_bytes(self.take(8)?.try_into().unwrap());
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
    rows: std::slice::Iter<'a, Row>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = LinkedSymbol<'a>;

    fn next(&mut self) -> Option<LinkedSymbol<'a>> {
        self.rows.next().map(|row| self.table.view(row))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.rows.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.rows.next_back().map(|row| self.table.view(row))
    }
}

impl ExactSizeIterator for Iter<'_> {}

fn row_name<'a>(names: &'a str, row: &Row) -> &'a str {
    let start = row.name_start as usize;
    &names[start..start + row.name_len as usize]
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
            rows: self.rows,
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

    #[test]
    fn rows_read_back_as_pushed_and_sort_by_address_then_name() {
        let sections = vec![".text".into(), ".data".into()];
        let mut builder = LinkedSymbolsBuilder::new(sections, 3, 0);
        builder.push(&symbol("zeta", false), 0x20, 0).unwrap();
        builder.push(&symbol("export", true), 0x10, 1).unwrap();
        builder.push(&symbol("alpha", false), 0x20, 0).unwrap();
        let mut table = builder.finish();
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
        let sections = vec![".text".into(), ".data".into()];
        let mut builder = LinkedSymbolsBuilder::new(sections, 2, 0);
        builder.push(&symbol("zeta", false), 0x20, 0).unwrap();
        builder.push(&symbol("export", true), 0x10, 1).unwrap();
        let table = builder.finish();
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
}
