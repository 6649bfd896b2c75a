//! The emulated kernel's allocator: malloc's memory lives in the emulated machine, its
//! bookkeeping here. First fit over address-ordered free blocks, coalesced on free, so a
//! module that frees what it allocates can run forever in a bounded heap.

use std::collections::{BTreeMap, HashMap};

/// Every block is aligned (and sized) to this, as glibc's malloc aligns on 64-bit targets.
pub(super) const ALIGN: u64 = 16;

#[derive(Debug)]
pub(super) struct Heap {
    /// Free blocks: start → size.
    free: BTreeMap<u64, u64>,
    /// Allocated blocks: start → size.
    used: HashMap<u64, u64>,
}

impl Heap {
    pub fn new(start: u64, size: u64) -> Heap {
        Heap {
            free: BTreeMap::from([(start, size)]),
            used: HashMap::new(),
        }
    }

    /// A block of at least `size` bytes, or `None` when the heap is exhausted.
    pub fn alloc(&mut self, size: u64) -> Option<u64> {
        let size = size.max(1).checked_next_multiple_of(ALIGN)?;
        let (&start, &len) = self.free.iter().find(|(_, &len)| len >= size)?;
        self.free.remove(&start);
        if len > size {
            self.free.insert(start + size, len - size);
        }
        self.used.insert(start, size);
        Some(start)
    }

    /// The usable size of the block at `address`, if it is one.
    pub fn size_of(&self, address: u64) -> Option<u64> {
        self.used.get(&address).copied()
    }

    /// Frees the block at `address`; false if it is not an allocated block.
    pub fn free(&mut self, address: u64) -> bool {
        let Some(mut size) = self.used.remove(&address) else {
            return false;
        };
        let mut start = address;
        if let Some((&before, &len)) = self.free.range(..start).next_back() {
            if before + len == start {
                self.free.remove(&before);
                start = before;
                size += len;
            }
        }
        if let Some(len) = self.free.remove(&(start + size)) {
            size += len;
        }
        self.free.insert(start, size);
        true
    }

    /// Bytes in allocated blocks.
    #[cfg(test)]
    pub fn in_use(&self) -> u64 {
        self.used.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_distinct_and_reused_after_free() {
        let mut heap = Heap::new(0x1000, 0x1000);
        let a = heap.alloc(10).unwrap();
        let b = heap.alloc(100).unwrap();
        assert_eq!(a % ALIGN, 0);
        assert!(b >= a + 16);
        assert!(heap.free(a));
        assert!(!heap.free(a), "double free refused");
        assert_eq!(heap.alloc(16), Some(a));
    }

    #[test]
    fn freeing_everything_coalesces_into_one_block() {
        let mut heap = Heap::new(0x1000, 0x1000);
        let blocks: Vec<u64> = (0..8).map(|i| heap.alloc(16 * (i + 1)).unwrap()).collect();
        for b in blocks
            .iter()
            .rev()
            .step_by(2)
            .chain(blocks.iter().step_by(2))
        {
            assert!(heap.free(*b));
        }
        assert_eq!(heap.in_use(), 0);
        assert_eq!(
            heap.alloc(0x1000),
            Some(0x1000),
            "the whole heap in one block again"
        );
        assert_eq!(heap.alloc(1), None, "exhausted");
    }
}
