//! Binary encodings of the records kept in the metadata store, and the key scheme.
//!
//! Everything lives in one table of the metadata database (meta.rs), so that one write
//! transaction makes any change atomic.
//! Keys start with a one-byte tag; integers are big-endian so keys sort numerically.

use super::StoreError;

pub const TAG_SUPER: u8 = b'S';
pub const TAG_INODE: u8 = b'I';
pub const TAG_NAME: u8 = b'N';
pub const TAG_DIRENT: u8 = b'D';
pub const TAG_BLOCKMAP: u8 = b'B';
pub const TAG_BLOCK: u8 = b'H';
pub const TAG_XATTR: u8 = b'X';
pub const TAG_ORPHAN: u8 = b'O';
/// The sequence number of the last change (`watermark.rs`); key is the tag alone.
pub const TAG_SEQ: u8 = b'Q';
/// The next inode number to hand out (meta.rs); key is the tag alone.
pub const TAG_IDS: u8 = b'C';

pub type BlockHash = [u8; 32];

pub fn key_u64(tag: u8, a: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(tag);
    k.extend_from_slice(&a.to_be_bytes());
    k
}

pub fn key_u64_u64(tag: u8, a: u64, b: u64) -> Vec<u8> {
    let mut k = key_u64(tag, a);
    k.extend_from_slice(&b.to_be_bytes());
    k
}

pub fn key_u64_bytes(tag: u8, a: u64, bytes: &[u8]) -> Vec<u8> {
    let mut k = key_u64(tag, a);
    k.extend_from_slice(bytes);
    k
}

pub fn key_block(hash: &BlockHash) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(TAG_BLOCK);
    k.extend_from_slice(hash);
    k
}

/// Readdir cookies lie in 1..COOKIE_END, so that a cookie + 2 (after "." and "..") fits
/// the kernel's signed 64-bit directory offsets.
const COOKIE_END: u64 = 1 << 62;

/// Where a name sits in its directory's readdir order: a hash of the name, as ext4's
/// htree orders entries. The same name always asks for the same place.
pub fn name_cookie(name: &[u8]) -> u64 {
    (xxhash_rust::xxh3::xxh3_64(name) % (COOKIE_END - 1)) + 1
}

/// The next place to try when a cookie is taken by another name (a hash collision).
pub fn next_cookie(cookie: u64) -> u64 {
    if cookie + 1 >= COOKIE_END { 1 } else { cookie + 1 }
}

/// Seconds and nanoseconds since the epoch (negative seconds allowed, as utimensat allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

/// Reads fixed-width fields from a record, turning a short record into `Damaged`.
struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.buf.len() < n {
            return Err(StoreError::Damaged { what: self.what.to_string() });
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, StoreError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn time(&mut self) -> Result<Timestamp, StoreError> {
        let secs = i64::from_le_bytes(self.array()?);
        let nanos = self.u32()?;
        Ok(Timestamp { secs, nanos })
    }
}

fn put_time(out: &mut Vec<u8>, t: Timestamp) {
    out.extend_from_slice(&t.secs.to_le_bytes());
    out.extend_from_slice(&t.nanos.to_le_bytes());
}

/// An inode as stored. `kind` uses the S_IFMT bits of st_mode (S_IFREG, S_IFDIR, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InodeRecord {
    pub kind: u32,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub size: u64,
    /// Bytes of plaintext held in non-hole blocks, for st_blocks.
    pub stored_blocks: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub crtime: Timestamp,
    /// Directories only: the parent, for "..".
    pub parent: u64,
    /// Symlinks only: the target.
    pub target: Vec<u8>,
}

const INODE_VERSION: u8 = 1;

impl InodeRecord {
    /// A fresh, empty inode of `kind` (S_IFMT bits), all times now. Directories start with
    /// two links ("." and their name) and know their parent; others start with one.
    pub fn new(kind: u32, perm: u16, uid: u32, gid: u32, parent: u64) -> InodeRecord {
        let t = super::now();
        let dir = kind == libc::S_IFDIR;
        InodeRecord {
            kind,
            perm,
            nlink: if dir { 2 } else { 1 },
            uid,
            gid,
            rdev: 0,
            size: 0,
            stored_blocks: 0,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            parent: if dir { parent } else { 0 },
            target: Vec::new(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.target.len());
        out.push(INODE_VERSION);
        out.extend_from_slice(&self.kind.to_le_bytes());
        out.extend_from_slice(&self.perm.to_le_bytes());
        out.extend_from_slice(&self.nlink.to_le_bytes());
        out.extend_from_slice(&self.uid.to_le_bytes());
        out.extend_from_slice(&self.gid.to_le_bytes());
        out.extend_from_slice(&self.rdev.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.stored_blocks.to_le_bytes());
        for t in [self.atime, self.mtime, self.ctime, self.crtime] {
            put_time(&mut out, t);
        }
        out.extend_from_slice(&self.parent.to_le_bytes());
        out.extend_from_slice(&self.target);
        out
    }

    pub fn decode(buf: &[u8]) -> Result<InodeRecord, StoreError> {
        let mut r = Reader { buf, what: "inode" };
        if r.u8()? != INODE_VERSION {
            return Err(StoreError::Damaged { what: "inode (unknown record version)".into() });
        }
        Ok(InodeRecord {
            kind: r.u32()?,
            perm: r.u16()?,
            nlink: r.u32()?,
            uid: r.u32()?,
            gid: r.u32()?,
            rdev: r.u32()?,
            size: r.u64()?,
            stored_blocks: r.u64()?,
            atime: r.time()?,
            mtime: r.time()?,
            ctime: r.time()?,
            crtime: r.time()?,
            parent: r.u64()?,
            target: r.buf.to_vec(),
        })
    }
}

/// A directory entry: which inode a name points at, its kind, and its readdir cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRecord {
    pub ino: u64,
    pub kind: u32,
    /// Position in readdir order (`name_cookie`): fixed while the entry exists, so a
    /// listing goes on from the right place while other entries come and go. Stores
    /// created before name cookies hold increasing numbers here; both kinds coexist.
    pub seq: u64,
}

impl EntryRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20);
        out.extend_from_slice(&self.ino.to_le_bytes());
        out.extend_from_slice(&self.kind.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out
    }
    pub fn decode(buf: &[u8]) -> Result<EntryRecord, StoreError> {
        let mut r = Reader { buf, what: "directory entry" };
        Ok(EntryRecord { ino: r.u64()?, kind: r.u32()?, seq: r.u64()? })
    }
}

/// What a frame holds, as its header says: kept in the block record so that statistics
/// and the recompressor can tell codecs and models apart without reading frames. The store
/// never parses frames; whoever writes a frame says what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct FrameInfo {
    /// The frame header's codec id byte.
    pub codec: u8,
    /// The first 8 bytes of the model id: for a frame of a learned codec, the model that
    /// decodes it (its header's); for a classic frame (whose header names no model), the
    /// learned model the chooser weighed the block against and found no better, so that
    /// recompression to that model knows the block was tried; zero when none was.
    pub model: [u8; 8],
    /// Plaintext length of the block.
    pub plain_len: u32,
}

impl FrameInfo {
    /// Whether this (a record's) description fits `header`, what the frame's header says:
    /// the same codec and length, and the same model where the header names one.
    pub fn describes(&self, header: &FrameInfo) -> bool {
        self.codec == header.codec
            && self.plain_len == header.plain_len
            && (header.model == [0; 8] || self.model == header.model)
    }

    /// A codec id no frame has (ids are small and never reused): block totals count
    /// frames nobody could classify under it, and a 45-byte record holds it where the
    /// frame is not described (a record written before records described their frames,
    /// since given a new reference).
    pub const UNKNOWN_CODEC: u8 = 0xFF;
}

/// Where a frame lives and how many block-map entries share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRecord {
    pub pack: u32,
    pub offset: u64,
    pub frame_len: u32,
    pub refcount: u64,
    /// What the frame is; None for records written before records described their frames.
    pub info: Option<FrameInfo>,
    /// Unix seconds when the block was last written (the record made, or a block-map entry
    /// added to it); 0 when unknown. Recompression leaves recently written blocks alone.
    pub written: u64,
}

/// Length of a block record written before records described their frames.
const BLOCK_RECORD_V1_LEN: usize = 24;
/// Length of a block record with its frame's description and time of writing.
const BLOCK_RECORD_V2_LEN: usize = 45;

impl BlockRecord {
    /// 24 bytes (pack, offset, frame length, refcount) when nothing more is known, as
    /// records always were; otherwise 45: those, then codec, model prefix, plaintext
    /// length and time of writing.
    pub fn encode(&self) -> Vec<u8> {
        let long = self.info.is_some() || self.written != 0;
        let mut out = Vec::with_capacity(if long { BLOCK_RECORD_V2_LEN } else { BLOCK_RECORD_V1_LEN });
        out.extend_from_slice(&self.pack.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.frame_len.to_le_bytes());
        out.extend_from_slice(&self.refcount.to_le_bytes());
        if long {
            let info = self.info.unwrap_or(FrameInfo { codec: FrameInfo::UNKNOWN_CODEC, model: [0; 8], plain_len: 0 });
            out.push(info.codec);
            out.extend_from_slice(&info.model);
            out.extend_from_slice(&info.plain_len.to_le_bytes());
            out.extend_from_slice(&self.written.to_le_bytes());
        }
        out
    }

    /// Either length `encode` writes; any other length is damage.
    pub fn decode(buf: &[u8]) -> Result<BlockRecord, StoreError> {
        if buf.len() != BLOCK_RECORD_V1_LEN && buf.len() != BLOCK_RECORD_V2_LEN {
            return Err(StoreError::Damaged { what: format!("block record ({} bytes)", buf.len()) });
        }
        let mut r = Reader { buf, what: "block record" };
        let mut rec = BlockRecord {
            pack: r.u32()?,
            offset: r.u64()?,
            frame_len: r.u32()?,
            refcount: r.u64()?,
            info: None,
            written: 0,
        };
        if !r.buf.is_empty() {
            let info = FrameInfo { codec: r.u8()?, model: r.array()?, plain_len: r.u32()? };
            rec.info = (info.codec != FrameInfo::UNKNOWN_CODEC).then_some(info);
            rec.written = r.u64()?;
        }
        Ok(rec)
    }
}

/// Volume-wide settings fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    pub format: u32,
    pub block_size: u32,
    pub created: Timestamp,
}

impl Superblock {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = b"s2sfs\0".to_vec();
        out.extend_from_slice(&self.format.to_le_bytes());
        out.extend_from_slice(&self.block_size.to_le_bytes());
        put_time(&mut out, self.created);
        out
    }
    pub fn decode(buf: &[u8]) -> Result<Superblock, StoreError> {
        let mut r = Reader { buf, what: "superblock" };
        if r.take(6)? != b"s2sfs\0" {
            return Err(StoreError::Damaged { what: "superblock (bad magic)".into() });
        }
        Ok(Superblock { format: r.u32()?, block_size: r.u32()?, created: r.time()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inode_round_trip_and_short_record_is_damage() {
        let rec = InodeRecord {
            kind: libc::S_IFLNK,
            perm: 0o777,
            nlink: 1,
            uid: 1000,
            gid: 100,
            rdev: 0,
            size: 5 << 30,
            stored_blocks: 3,
            atime: Timestamp { secs: -5, nanos: 7 },
            mtime: Timestamp { secs: 1, nanos: 2 },
            ctime: Timestamp { secs: 3, nanos: 4 },
            crtime: Timestamp { secs: 5, nanos: 6 },
            parent: 9,
            target: b"some/where".to_vec(),
        };
        let bytes = rec.encode();
        assert_eq!(InodeRecord::decode(&bytes).unwrap(), rec);
        assert!(matches!(InodeRecord::decode(&bytes[..40]), Err(StoreError::Damaged { .. })));
    }

    #[test]
    fn block_and_entry_round_trip() {
        let b = BlockRecord { pack: 3, offset: 1 << 40, frame_len: 9000, refcount: 2, info: None, written: 0 };
        assert_eq!(BlockRecord::decode(&b.encode()).unwrap(), b);
        let e = EntryRecord { ino: 42, kind: libc::S_IFDIR, seq: 77 };
        assert_eq!(EntryRecord::decode(&e.encode()).unwrap(), e);
        assert!(BlockRecord::decode(&[1, 2, 3]).is_err());
    }

    /// Records written before frames were described (24 bytes) still decode; new ones carry
    /// the description and the time of writing (45 bytes); every other length is damage.
    #[test]
    fn block_records_of_both_lengths() {
        let old = BlockRecord { pack: 7, offset: 4096, frame_len: 1234, refcount: 3, info: None, written: 0 };
        let mut v1 = Vec::new();
        v1.extend_from_slice(&7u32.to_le_bytes());
        v1.extend_from_slice(&4096u64.to_le_bytes());
        v1.extend_from_slice(&1234u32.to_le_bytes());
        v1.extend_from_slice(&3u64.to_le_bytes());
        assert_eq!(BlockRecord::decode(&v1).unwrap(), old);
        assert_eq!(old.encode(), v1, "nothing more known: the old form");

        let info = FrameInfo { codec: 2, model: [1, 2, 3, 4, 5, 6, 7, 8], plain_len: 131072 };
        let new = BlockRecord { info: Some(info), written: 1_700_000_000, ..old };
        let v2 = new.encode();
        assert_eq!(v2.len(), 45);
        assert_eq!(&v2[..24], v1.as_slice());
        assert_eq!(v2[24], 2);
        assert_eq!(&v2[25..33], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&v2[33..37], &131072u32.to_le_bytes());
        assert_eq!(&v2[37..45], &1_700_000_000u64.to_le_bytes());
        assert_eq!(BlockRecord::decode(&v2).unwrap(), new);

        // A known time without a description (an old record given a new reference).
        let touched = BlockRecord { written: 5, ..old };
        assert_eq!(touched.encode().len(), 45);
        assert_eq!(BlockRecord::decode(&touched.encode()).unwrap(), touched);

        for len in [0, 1, 23, 25, 44, 46, 64] {
            let bytes = vec![0xA5u8; len];
            assert!(matches!(BlockRecord::decode(&bytes), Err(StoreError::Damaged { .. })), "{len} bytes");
        }
    }

    #[test]
    fn keys_sort_numerically() {
        assert!(key_u64_u64(TAG_BLOCKMAP, 1, 255) < key_u64_u64(TAG_BLOCKMAP, 1, 256));
        assert!(key_u64_u64(TAG_BLOCKMAP, 1, u64::MAX) < key_u64_u64(TAG_BLOCKMAP, 2, 0));
    }
}
