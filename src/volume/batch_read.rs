//! Whole-block reads decode their t5 frames as one batch on a GPU (`t5::batched::lockstep`), when
//! built with the `cuda` feature and one is present; every other block, and every read
//! on a machine without one, goes the way of `read.rs`. A frame the batch does not decode
//! is decoded again on the CPU, so a read returns the same bytes, or the same error,
//! either way.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::Device;
use rayon::prelude::*;

use super::{BlockRead, Core, lock, missing_record};
use crate::codec::{CodecId, FrameHeader};
use crate::error::Result;

/// The GPU whole-block reads decode t5 frames on. None without the `cuda` feature (known
/// when compiling: the batched path then costs nothing) or without a GPU (looked for once,
/// at the first read).
pub(super) fn gpu() -> Option<&'static Device> {
    if !cfg!(feature = "cuda") {
        return None;
    }
    static GPU: OnceLock<Option<Device>> = OnceLock::new();
    GPU.get_or_init(|| {
        let device = crate::t5::batch_device();
        if device.is_cuda() {
            log::info!("reads of several whole blocks decode their t5 frames in batches on {device:?}");
            Some(device)
        } else {
            log::info!("no GPU: reads decode t5 frames on the CPU, a block per core");
            None
        }
    })
    .as_ref()
}

impl Core {
    /// Decodes the jobs that take whole blocks with t5 frames not in the cache, when there
    /// are two or more, as one batch on `device` (the frames of the other such jobs, read
    /// meanwhile, are decoded on the CPU beside it). Returns the jobs left for `read_block`.
    pub(super) fn read_batched<'a>(
        &self,
        ino: u64,
        jobs: Vec<BlockRead<'a>>,
        device: &Device,
    ) -> Result<Vec<BlockRead<'a>>> {
        let mut rest = Vec::with_capacity(jobs.len());
        let mut whole = Vec::new();
        {
            let cache = lock(&self.cache);
            for job in jobs {
                match job.hash {
                    Some(hash) if job.whole && !cache.contains(&hash) => whole.push((job, hash)),
                    _ => rest.push(job),
                }
            }
        }
        if whole.len() < 2 {
            rest.extend(whole.into_iter().map(|(job, _)| job));
            return Ok(rest);
        }
        let read: Vec<(BlockRead<'a>, Vec<u8>)> = whole
            .into_par_iter()
            .map(|(job, hash)| {
                let frame = self.store.read_frame(&hash)?.ok_or_else(|| missing_record(ino, job.block))?;
                Ok((job, frame))
            })
            .collect::<Result<_>>()?;
        let (t5, other): (Vec<_>, Vec<_>) =
            read.into_iter().partition(|(_, frame)| FrameHeader::parse(frame).is_ok_and(|h| h.codec == CodecId::T5));
        let on_cpu = |jobs: Vec<(BlockRead<'a>, Vec<u8>)>| {
            jobs.into_par_iter().try_for_each(|(job, frame)| self.decode_frame_to(ino, job.block, &frame, job.dst))
        };
        if t5.len() < 2 {
            on_cpu(t5)?;
            on_cpu(other)?;
            return Ok(rest);
        }
        #[cfg(test)]
        BATCHED.with(|n| n.set(n.get() + t5.len()));
        let (batched, others) = rayon::join(|| self.decode_batch(ino, t5, device), || on_cpu(other));
        batched?;
        others?;
        Ok(rest)
    }

    /// Decodes whole blocks' t5 frames in one batch on `device` into their `dst`; a frame
    /// the batch fails on is decoded again on the CPU (its bytes, or its error).
    fn decode_batch(&self, ino: u64, jobs: Vec<(BlockRead<'_>, Vec<u8>)>, device: &Device) -> Result<()> {
        let frames: Vec<&[u8]> = jobs.iter().map(|(_, frame)| &frame[..]).collect();
        let decoded = self.codecs().decode_frames_batched(&frames, device);
        for ((job, frame), plain) in jobs.into_iter().zip(decoded) {
            match plain {
                Ok(plain) => {
                    // Contents past end of file (a truncation left them): keep a part.
                    let n = plain.len().min(job.dst.len());
                    job.dst[..n].copy_from_slice(&plain[..n]);
                    job.dst[n..].fill(0);
                }
                Err(e) => {
                    self.decode_frame_to(ino, job.block, &frame, job.dst)?;
                    static REPORTED: AtomicBool = AtomicBool::new(false);
                    if !REPORTED.swap(true, Ordering::Relaxed) {
                        log::warn!(
                            "inode {ino} block {}: batched decoding on {device:?} failed ({e}) where the CPU succeeds; such blocks are decoded again on the CPU",
                            job.block
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
thread_local! {
    /// Blocks this thread's reads decoded in batches.
    static BATCHED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::sync::Arc;

    use super::*;
    use crate::codec::{CodecError, Target};
    use crate::error::Error;
    use crate::t5::fixtures;
    use crate::volume::{Caller, ROOT_INO, Volume, VolumeOptions};

    const ME: Caller = Caller { uid: 0, gid: 0 };
    const BS: usize = 4096;

    fn opts(cache_bytes: usize) -> VolumeOptions {
        VolumeOptions { block_size: BS as u32, cache_bytes, recompress_after: None, ..Default::default() }
    }

    fn set_writer(v: &Volume, target: Target) {
        let mut codecs = (*v.codecs()).clone();
        codecs.set_writer(target).unwrap();
        *v.codecs.write().unwrap() = Arc::new(codecs);
    }

    fn write(v: &Volume, ino: u64, offset: usize, data: &[u8]) {
        let fh = v.open_file(ino, libc::O_RDWR).unwrap();
        assert_eq!(v.write(ino, fh, offset as u64, data).unwrap() as usize, data.len());
        v.release(ino, fh).unwrap();
        v.core.commit_all().unwrap();
        v.core.store.flush().unwrap();
    }

    fn codec_of(v: &Volume, ino: u64, block: usize) -> Option<CodecId> {
        let hash = v.store.block(ino, block as u64).unwrap()?;
        Some(FrameHeader::parse(&v.store.read_frame(&hash).unwrap().unwrap()).unwrap().codec)
    }

    /// `read` with the batch on the CPU, and how many blocks went through the batch.
    fn batched(v: &Volume, ino: u64, offset: usize, size: usize) -> (Result<Vec<u8>>, usize) {
        let before = BATCHED.with(|n| n.get());
        let got = v.read_on(ino, offset as u64, size as u32, Some(&Device::Cpu));
        (got, BATCHED.with(|n| n.get()) - before)
    }

    #[test]
    fn batched_reads_return_what_reads_return() {
        let dir = tempfile::tempdir().unwrap();
        let model = fixtures::tiny_model();
        // t5 blocks, a zstd block, a raw block, a hole, and a t5 tail shorter than a block.
        let mut data = fixtures::text(6 * BS);
        data.extend(fixtures::text(BS + 500)[500..].iter().map(|b| b.to_ascii_uppercase()));
        let mut next = fixtures::xorshift(5);
        data.extend((0..BS).map(|_| next() as u8));
        data.resize(9 * BS, 0);
        data.extend(fixtures::text(2 * BS)[BS + 100..].iter());
        let ino = {
            let v = Volume::open(dir.path(), opts(64 << 10)).unwrap();
            v.add_model(model.clone()).unwrap();
            let (a, fh) = v.create(ME, ROOT_INO, OsStr::new("f"), 0o644, 0o022, libc::O_RDWR).unwrap();
            v.release(a.ino, fh).unwrap();
            set_writer(&v, Target::Learned { model: model.id() });
            write(&v, a.ino, 0, &data[..6 * BS]);
            set_writer(&v, Target::Zstd { level: 3 });
            write(&v, a.ino, 6 * BS, &data[6 * BS..8 * BS]);
            set_writer(&v, Target::Learned { model: model.id() });
            write(&v, a.ino, 9 * BS, &data[9 * BS..]);
            a.ino
        };
        // Reopened without a cache: every committed block is decoded from its frame.
        let v = Volume::open(dir.path(), opts(0)).unwrap();
        let codecs: Vec<Option<CodecId>> = (0..10).map(|b| codec_of(&v, ino, b)).collect();
        let t5 = Some(CodecId::T5);
        assert_eq!(codecs[..6], [t5; 6], "{codecs:?}");
        assert_eq!(codecs[6..], [Some(CodecId::Zstd), Some(CodecId::Raw), None, t5]);
        let len = data.len();
        for (offset, size, in_batch) in [
            (0, len, 7),
            (0, len + 1000, 7),
            (BS, 2 * BS, 2),
            (0, BS, 0),
            (3 * BS, BS, 0),
            (10, 3 * BS, 2),
            (5 * BS, 2 * BS, 0),
            (5 * BS, len - 5 * BS, 2),
            (3 * BS + 7, len, 3),
        ] {
            let (got, n) = batched(&v, ino, offset, size);
            let want = &data[offset.min(len)..(offset + size).min(len)];
            assert_eq!(got.unwrap(), want, "{offset} +{size}");
            assert_eq!(v.read(ino, offset as u64, size as u32).unwrap(), want, "{offset} +{size}");
            assert_eq!(n, in_batch, "{offset} +{size}");
        }
        drop(v);
        // A block in the cache (a partial read put it there) is not decoded again.
        let v = Volume::open(dir.path(), opts(64 << 10)).unwrap();
        v.read_on(ino, 2 * BS as u64 + 1, 10, None).unwrap();
        let (got, n) = batched(&v, ino, 0, 4 * BS);
        assert_eq!((got.unwrap(), n), (data[..4 * BS].to_vec(), 3));

        // A t5 frame whose plaintext checksum is wrong: that block is EIO, like without
        // the batch; the others read.
        let hash = v.store.block(ino, 4).unwrap().unwrap();
        let frame = v.store.read_frame(&hash).unwrap().unwrap();
        let mut header = FrameHeader::parse(&frame).unwrap();
        header.checksum ^= 1;
        let bad = header.encode(&frame[crate::codec::HEADER_LEN..]);
        let (_, rec) = v.store.blocks_page(None, usize::MAX).unwrap().into_iter().find(|(h, _)| *h == hash).unwrap();
        assert!(v.store.replace_frame(&hash, &rec, bad, rec.info.unwrap()).unwrap());
        let (got, n) = batched(&v, ino, 0, len);
        assert_eq!(n, 6, "block 2 is still cached");
        assert!(matches!(got, Err(Error::Corrupt { block: 4, source: CodecError::Checksum, .. })), "{got:?}");
        assert!(matches!(v.read(ino, 0, len as u32), Err(Error::Corrupt { block: 4, .. })));
        let (got, n) = batched(&v, ino, 0, 4 * BS);
        assert_eq!((got.unwrap(), n), (data[..4 * BS].to_vec(), 3));
        let (got, _) = batched(&v, ino, 5 * BS, len);
        assert_eq!(got.unwrap(), &data[5 * BS..]);
    }
}
