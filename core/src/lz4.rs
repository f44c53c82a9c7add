//! lz4 block compression of a batch's body for the SLS output (`x-log-compresstype: lz4`: one
//! raw block, no size prefix), by liblz4 itself (`lz4-sys` builds the C library from source:
//! the library python-lz4 wraps, so the same blocks and the same ratio, which SLS bills by),
//! into output buffers kept from batch to batch.
//!
//! Why not python-lz4: `lz4.block.compress` mallocs a fresh `compressBound(n)` bytes per call
//! (~2 MB for a LogGroup batch), which the agent's malloc settings (agent/ops/malloc.py) mmap,
//! so every page it writes faults in, then unmaps it again: ~155 page faults per MB of log end
//! to end. Here the block is written into a buffer that an earlier block was written into
//! (its pages mapped already) and lent to Python as it is (`BatchBytes`, read-only), and it
//! comes back to the pool when the sender lets go of it.
//!
//! Bounds: at most `set_max_spares` buffers are kept (the agent passes its number of senders,
//! each of which holds one body at a time), none once a second passed without a block
//! (`release_if_idle`), and the bytes they keep count in the same bound as the Streams' spare
//! buffers (`stream::reserve_spare`: half of `max_in_flight_bytes`, counted against that
//! bound by the reader). A kept buffer counts the most bytes any block wrote into
//! it (`touched`), not its capacity: the capacity is `compressBound` of the largest batch, of
//! which a LogGroup block writes about a third, and pages never written are never resident
//! (under the agent's malloc settings a buffer of 1 MiB or more is its own mmap).

use crate::stream::{lock, reserve_spare, unreserve_spare};
use std::os::raw::{c_char, c_int};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// The largest input liblz4 takes (`LZ4_MAX_INPUT_SIZE`).
pub const MAX_INPUT: usize = 0x7E00_0000;
/// Buffers kept when nobody said how many (the agent's default number of senders).
const DEFAULT_MAX_SPARES: usize = 4;

/// Why no block was made.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The input is over `MAX_INPUT` (2 GiB less 32 MiB); a batch never is.
    TooLarge,
    /// liblz4 said the block did not fit in `bound` bytes, which its contract rules out.
    Failed,
}

/// The most bytes a block of `len` input bytes takes (`LZ4_COMPRESSBOUND`): with this room,
/// liblz4 never fails for want of space.
pub fn bound(len: usize) -> usize {
    len + len / 255 + 16
}

/// `src` as one lz4 block in `out` (its old contents dropped; it grows to `bound` if smaller).
pub fn compress_into(src: &[u8], out: &mut Vec<u8>) -> Result<(), Refused> {
    if src.len() > MAX_INPUT {
        return Err(Refused::TooLarge);
    }
    let src_len = c_int::try_from(src.len()).map_err(|_| Refused::TooLarge)?;
    out.clear();
    out.reserve(bound(src.len()));
    let room = c_int::try_from(out.capacity()).unwrap_or(c_int::MAX);
    // SAFETY: `LZ4_compress_default(src, dst, srcSize, dstCapacity)` reads at most `srcSize`
    // bytes at `src` and writes at most `dstCapacity` bytes at `dst` (liblz4's contract, lz4.h:
    // given at least `LZ4_compressBound(srcSize)`, the formula of `bound`, it needs no checks,
    // as no block is longer; given less, it checks each write and returns 0 rather than
    // overflow); it keeps its working state on its own stack (lz4-sys builds liblz4 with the
    // default LZ4_HEAPMODE 0) and touches no global state, so concurrent calls from several
    // threads are sound. Here `src` is a live
    // slice of `src_len` bytes; `out`'s allocation holds `capacity() >= room` bytes, writable
    // through the pointer of the `&mut Vec`, which no one else can reach while we hold it, and
    // which cannot overlap `src` (a shared and a unique borrow). The bytes written need not
    // have been initialised before.
    let written = unsafe {
        lz4_sys::LZ4_compress_default(
            src.as_ptr().cast::<c_char>(),
            out.as_mut_ptr().cast::<c_char>(),
            src_len,
            room,
        )
    };
    // liblz4 returns the bytes written (at least 1: an empty input is one token byte), or 0
    // when they did not fit, which `bound`'s room rules out.
    let written = usize::try_from(written)
        .ok()
        .filter(|&n| n > 0 && n <= out.capacity())
        .ok_or(Refused::Failed)?;
    // SAFETY: liblz4 initialised the first `written` bytes of the allocation, and `written`
    // is within the capacity (checked just above).
    unsafe { out.set_len(written) };
    Ok(())
}

/// `block` decoded by liblz4's safe decoder, if it is a valid block of at most `len` bytes:
/// how the tests and the fuzz target check a block (the agent itself never decompresses).
pub fn decompress(block: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; len.max(1)];
    let src_len = c_int::try_from(block.len()).ok()?;
    let room = c_int::try_from(out.len()).ok()?;
    // SAFETY: `LZ4_decompress_safe` reads at most `compressedSize` bytes at `src` and writes
    // at most `dstCapacity` bytes at `dst` (it checks every read and write against them, and
    // returns a negative number for a malformed block); both are live, distinct slices of
    // those sizes (`out` has at least one byte, so its pointer is a real allocation).
    let n = unsafe {
        lz4_sys::LZ4_decompress_safe(
            block.as_ptr().cast::<c_char>(),
            out.as_mut_ptr().cast::<c_char>(),
            src_len,
            room,
        )
    };
    out.truncate(usize::try_from(n).ok()?);
    Some(out)
}

/// A compressed block and the most bytes ever written into its buffer (what it counts as
/// when kept).
#[derive(Debug)]
pub struct Block {
    pub data: Vec<u8>,
    pub touched: usize,
}

/// The kept output buffers (one per process: `POOL`).
#[derive(Debug)]
pub struct Pool {
    spares: Mutex<Vec<Block>>,
    max_spares: AtomicUsize,
    /// Blocks made so far, and as many at the last `release_if_idle`.
    made: AtomicU64,
    seen: AtomicU64,
}

impl Pool {
    pub const fn new(max_spares: usize) -> Pool {
        Pool {
            spares: Mutex::new(Vec::new()),
            max_spares: AtomicUsize::new(max_spares),
            made: AtomicU64::new(0),
            seen: AtomicU64::new(0),
        }
    }

    /// `src` as one lz4 block, written into the most recently kept buffer when there is one.
    pub fn compress(&self, src: &[u8]) -> Result<Block, Refused> {
        self.made.fetch_add(1, Ordering::Relaxed);
        let kept = lock(&self.spares).pop();
        let mut block = match kept {
            Some(b) => {
                unreserve_spare(b.touched);
                b
            }
            None => Block {
                data: Vec::new(),
                touched: 0,
            },
        };
        let done = compress_into(src, &mut block.data);
        block.touched = block.touched.max(block.data.len());
        done.map(|()| block)
    }

    /// A block's buffer back, kept if fewer than `max_spares` are kept and its bytes fit in
    /// the spares' bound; otherwise freed.
    pub fn give(&self, block: Block) {
        let mut spares = lock(&self.spares);
        if spares.len() < self.max_spares.load(Ordering::Relaxed) && reserve_spare(block.touched) {
            spares.push(block);
            return;
        }
        drop(spares);
        drop(block); // freed outside the lock
    }

    /// Keep at most `n` buffers from now on; those beyond are freed now.
    pub fn set_max_spares(&self, n: usize) {
        self.max_spares.store(n, Ordering::Relaxed);
        self.free_beyond(n);
    }

    /// Frees the kept buffers if no block was made since the last call (the agent calls it
    /// once a second: an agent with nothing to send keeps none); returns how many were freed.
    pub fn release_if_idle(&self) -> usize {
        let made = self.made.load(Ordering::Relaxed);
        if self.seen.swap(made, Ordering::Relaxed) != made {
            return 0;
        }
        self.free_beyond(0)
    }

    /// Frees the kept buffers beyond the first `n`; returns how many.
    fn free_beyond(&self, n: usize) -> usize {
        let extra = {
            let mut spares = lock(&self.spares);
            let keep = spares.len().min(n);
            spares.split_off(keep)
        };
        for b in &extra {
            unreserve_spare(b.touched);
        }
        extra.len()
    }

    /// Buffers kept now (tests).
    pub fn spares(&self) -> usize {
        lock(&self.spares).len()
    }
}

/// The process's kept lz4 output buffers.
pub static POOL: Pool = Pool::new(DEFAULT_MAX_SPARES);

#[cfg(test)]
mod tests {
    use super::*;

    fn decompress(block: &[u8], len: usize) -> Vec<u8> {
        super::decompress(block, len).expect("a valid block")
    }

    fn noise(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn a_malformed_block_decodes_to_nothing() {
        // A token announcing 15 literals, and none follow.
        assert_eq!(super::decompress(&[0xF0], 64), None);
    }

    #[test]
    fn blocks_decompress_to_their_input() {
        let text = b"2025-07-09 14:23:24.748 INFO  [traceId:] [a.b.C#m():1] [main] - hello\n";
        for src in [
            Vec::new(),
            b"a".to_vec(),
            text.repeat(1000),
            noise(70_000),
            noise(1 << 20),
        ] {
            let mut out = Vec::new();
            compress_into(&src, &mut out).unwrap();
            assert!(!out.is_empty() && out.len() <= bound(src.len()));
            assert_eq!(decompress(&out, src.len()), src);
        }
    }

    #[test]
    fn a_buffer_is_reused_and_its_old_contents_do_not_leak_into_the_next_block() {
        let mut out = Vec::new();
        compress_into(&noise(100_000), &mut out).unwrap();
        let at = out.as_ptr();
        compress_into(b"short", &mut out).unwrap();
        assert_eq!(out.as_ptr(), at);
        assert_eq!(decompress(&out, 5), b"short");
    }

    #[test]
    fn the_pool_keeps_at_most_its_spares_and_counts_what_they_wrote() {
        let pool = Pool::new(2);
        let blocks: Vec<Block> = (0..3)
            .map(|i| pool.compress(&noise(10_000 + i)).unwrap())
            .collect();
        assert!(blocks.iter().all(|b| b.touched == b.data.len()));
        for b in blocks {
            pool.give(b);
        }
        assert_eq!(pool.spares(), 2);
        let small = pool.compress(b"x").unwrap();
        assert!(small.touched > 10_000, "the kept buffer's pages count");
        assert_eq!(decompress(&small.data, 1), b"x");
        pool.give(small);
        pool.set_max_spares(0);
        assert_eq!(pool.spares(), 0);
    }

    #[test]
    fn idle_buffers_are_freed_at_the_second_look_without_a_block_between() {
        let pool = Pool::new(2);
        pool.give(pool.compress(&noise(5000)).unwrap());
        assert_eq!(
            pool.release_if_idle(),
            0,
            "a block was made since the last look"
        );
        pool.give(pool.compress(&noise(5000)).unwrap());
        assert_eq!(pool.release_if_idle(), 0);
        assert_eq!(pool.spares(), 1);
        assert_eq!(pool.release_if_idle(), 1);
        assert_eq!(pool.spares(), 0);
    }
}
