//! An LRU of decoded blocks, bounded in bytes.
//!
//! Reads go dirty buffer → this cache → frame → codec, so a hit saves a pack read, a
//! decompression and a checksum. Blocks are content-addressed, so the key is the block's
//! content hash: equal blocks of different files (or snapshots) share one entry, and an
//! entry can never be stale (a rewritten block has a new hash); `remove` exists only to
//! drop memory early, e.g. when a block is freed.
//!
//! The bound is in bytes, not entries, because it is a memory budget and blocks vary in
//! size (the tail block of a file is short). `lru`'s own bound counts entries, so the cache
//! is unbounded there and does its own byte accounting. Values are `Arc`s so a reader can
//! keep using a block after the cache lock is dropped, even if it is evicted meanwhile.
//!
//! Not internally synchronized: the volume wraps it in a `Mutex`, and every operation here
//! is short.

use std::sync::Arc;

use lru::LruCache;

/// The key: the store's content address of a block.
use crate::store::BlockHash;

/// Decoded blocks, least recently used evicted first, at most `capacity` bytes of them.
pub struct BlockCache {
    map: LruCache<BlockHash, Arc<Vec<u8>>>,
    /// Sum of the lengths of the cached blocks; never above `capacity`.
    bytes: usize,
    capacity: usize,
    /// Lookups by `get` that found their block, and that did not (statistics).
    hits: u64,
    misses: u64,
}

/// The cache's counters and size at one moment (`BlockCache::counters`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCounters {
    /// Lookups that found their block since the cache was made.
    pub hits: u64,
    /// Lookups that did not (the block was then read from its pack and decoded).
    pub misses: u64,
    /// Blocks cached now.
    pub blocks: u64,
    /// Bytes of block data cached now.
    pub bytes: u64,
    /// The byte bound.
    pub capacity: u64,
}

impl BlockCache {
    /// A cache holding at most `capacity_bytes` bytes of block data. Zero caches nothing.
    pub fn new(capacity_bytes: usize) -> Self {
        BlockCache { map: LruCache::unbounded(), bytes: 0, capacity: capacity_bytes, hits: 0, misses: 0 }
    }

    /// The block with this hash, marking it most recently used; counted as a hit or a miss.
    pub fn get(&mut self, key: &BlockHash) -> Option<Arc<Vec<u8>>> {
        let found = self.map.get(key).cloned();
        if found.is_some() {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
        found
    }

    /// Whether the block with this hash is cached; does not change its recency.
    pub fn contains(&self, key: &BlockHash) -> bool {
        self.map.contains(key)
    }

    /// Caches `block` as the most recently used entry, replacing any entry with the same
    /// key, then evicts least recently used blocks until the total fits the capacity.
    /// A block larger than the whole capacity is not cached (it would evict everything
    /// and then itself).
    pub fn insert(&mut self, key: BlockHash, block: Arc<Vec<u8>>) {
        self.remove(&key);
        if block.len() > self.capacity {
            return;
        }
        self.bytes += block.len();
        self.map.put(key, block);
        while self.bytes > self.capacity {
            match self.map.pop_lru() {
                Some((_, evicted)) => self.bytes -= evicted.len(),
                // Unreachable while `bytes` is kept in step with the map; stop rather
                // than spin if it ever is not.
                None => {
                    self.bytes = 0;
                    break;
                }
            }
        }
    }

    /// Drops the block with this hash, if cached.
    pub fn remove(&mut self, key: &BlockHash) {
        if let Some(old) = self.map.pop(key) {
            self.bytes -= old.len();
        }
    }

    /// Drops every block.
    pub fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
    }

    /// Bytes of block data currently cached.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The byte bound given to `new`.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of cached blocks.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Hits and misses of `get` so far (`contains` counts neither), and the size now.
    pub fn counters(&self) -> CacheCounters {
        CacheCounters {
            hits: self.hits,
            misses: self.misses,
            blocks: self.map.len() as u64,
            bytes: self.bytes as u64,
            capacity: self.capacity as u64,
        }
    }
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache")
            .field("blocks", &self.len())
            .field("bytes", &self.bytes)
            .field("capacity", &self.capacity)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> BlockHash {
        [n; 32]
    }

    fn block(len: usize, fill: u8) -> Arc<Vec<u8>> {
        Arc::new(vec![fill; len])
    }

    #[test]
    fn get_returns_what_was_inserted() {
        let mut c = BlockCache::new(1000);
        assert!(c.is_empty());
        c.insert(key(1), block(10, 1));
        assert_eq!(c.get(&key(1)).unwrap().as_slice(), &[1; 10]);
        assert!(c.get(&key(2)).is_none());
        assert_eq!((c.len(), c.bytes()), (1, 10));
    }

    #[test]
    fn evicts_least_recently_used_first() {
        let mut c = BlockCache::new(300);
        c.insert(key(1), block(100, 1));
        c.insert(key(2), block(100, 2));
        c.insert(key(3), block(100, 3));
        // Touch 1, so 2 is now the least recently used.
        assert!(c.get(&key(1)).is_some());
        c.insert(key(4), block(100, 4));
        assert!(c.get(&key(2)).is_none());
        for k in [1, 3, 4] {
            assert!(c.get(&key(k)).is_some(), "block {k} evicted");
        }
        // Order now (oldest first): 1, 3, 4. A 250-byte block needs all three gone.
        c.insert(key(5), block(250, 5));
        assert_eq!(c.len(), 1);
        assert_eq!(c.bytes(), 250);
        assert!(c.get(&key(5)).is_some());
    }

    #[test]
    fn eviction_stops_as_soon_as_it_fits() {
        let mut c = BlockCache::new(300);
        c.insert(key(1), block(100, 1));
        c.insert(key(2), block(100, 2));
        c.insert(key(3), block(100, 3));
        c.insert(key(4), block(150, 4));
        // 1 and 2 go (oldest first), 3 stays: 100 + 150 <= 300.
        assert!(c.get(&key(1)).is_none());
        assert!(c.get(&key(2)).is_none());
        assert!(c.get(&key(3)).is_some());
        assert_eq!(c.bytes(), 250);
    }

    #[test]
    fn byte_bound_holds_for_mixed_sizes() {
        let mut c = BlockCache::new(10_000);
        for i in 0..=255u8 {
            c.insert(key(i), block((i as usize * 37) % 3000 + 1, i));
            assert!(c.bytes() <= 10_000);
            let sum: usize = (0..=255u8).filter_map(|k| c.map.peek(&key(k)).map(|b| b.len())).sum();
            assert_eq!(sum, c.bytes());
        }
    }

    #[test]
    fn oversized_block_is_not_cached() {
        let mut c = BlockCache::new(100);
        c.insert(key(1), block(60, 1));
        c.insert(key(2), block(101, 2));
        assert!(c.get(&key(2)).is_none());
        // ...and it did not flush the rest.
        assert!(c.get(&key(1)).is_some());
        assert_eq!(c.bytes(), 60);
        // A block of exactly the capacity fits.
        c.insert(key(3), block(100, 3));
        assert_eq!((c.len(), c.bytes()), (1, 100));
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let mut c = BlockCache::new(0);
        c.insert(key(1), block(1, 1));
        c.insert(key(2), block(100, 2));
        assert!(c.get(&key(1)).is_none());
        assert_eq!((c.len(), c.bytes()), (0, 0));
        // An empty block costs no bytes; caching it is harmless either way.
        c.insert(key(3), block(0, 0));
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn reinsert_replaces_and_accounts() {
        let mut c = BlockCache::new(1000);
        c.insert(key(1), block(100, 1));
        c.insert(key(1), block(300, 9));
        assert_eq!((c.len(), c.bytes()), (1, 300));
        assert_eq!(c.get(&key(1)).unwrap()[0], 9);
        // Replacing with an oversized block drops the old entry too.
        c.insert(key(1), block(2000, 7));
        assert_eq!((c.len(), c.bytes()), (0, 0));
    }

    #[test]
    fn remove_and_clear() {
        let mut c = BlockCache::new(1000);
        c.insert(key(1), block(100, 1));
        c.insert(key(2), block(200, 2));
        c.remove(&key(1));
        c.remove(&key(7));
        assert!(c.get(&key(1)).is_none());
        assert_eq!((c.len(), c.bytes()), (1, 200));
        c.clear();
        assert_eq!((c.len(), c.bytes(), c.capacity()), (0, 0, 1000));
    }

    #[test]
    fn counters_count_hits_and_misses_of_get_only() {
        let mut c = BlockCache::new(1000);
        assert!(c.get(&key(1)).is_none());
        c.insert(key(1), block(100, 1));
        assert!(c.get(&key(1)).is_some());
        assert!(c.get(&key(1)).is_some());
        assert!(!c.contains(&key(2)));
        assert_eq!(c.counters(), CacheCounters { hits: 2, misses: 1, blocks: 1, bytes: 100, capacity: 1000 });
        // Clearing drops the blocks, not the history.
        c.clear();
        assert_eq!((c.counters().hits, c.counters().blocks), (2, 0));
    }

    #[test]
    fn evicted_blocks_stay_valid_for_holders() {
        let mut c = BlockCache::new(100);
        c.insert(key(1), block(100, 1));
        let held = c.get(&key(1)).unwrap();
        c.insert(key(2), block(100, 2));
        assert!(c.get(&key(1)).is_none());
        assert_eq!(held.as_slice(), &[1; 100]);
    }
}
