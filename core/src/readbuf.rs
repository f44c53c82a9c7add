//! The reader's kept buffer: a turn's reads land in memory already faulted in, and the chunks
//! handed to the Streams are views of it, never fresh allocations.
//!
//! A `bytes` from `os.pread` of up to a turn's 1 MiB is a fresh block each read: under the
//! agent's fixed 1 MiB mmap threshold it is served from the heap's kept top when that fits and
//! mmapped otherwise, so some runs faulted in 256 new pages per MB of log (~4% of the agent's
//! CPU). A `Buffer` is allocated once and read into again and again.
//!
//! The rule that keeps every view sound: a `Chunk` covers bytes `[start, start + len)` below
//! the buffer's fill mark; `pread` writes only above the mark, and the mark goes back to 0
//! (`reset`) only when no `Chunk` of the buffer lives. So no byte is ever written while a
//! chunk that covers it exists, whoever holds that chunk (a Stream reading it without the GIL,
//! a memoryview kept by Python code): a reader that finds its buffer still referenced takes a
//! new one and leaves the old to its holders.

use std::fs::File;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;
use std::sync::Arc;

/// Linux's "bad file descriptor", for a negative `fd`.
const EBADF: i32 = 9;

/// The memory of a buffer: `len` initialised bytes owned like a `Box<[u8]>`, written only by
/// the `Buffer` (above its fill mark) and read only through `Chunk`s (below it).
struct Area {
    bytes: NonNull<[u8]>,
}

// SAFETY: an Area is an owned allocation of plain bytes, like a Box<[u8]>, which is Send and
// Sync. Its bytes are accessed only as the module comment says: written through the one
// `Buffer` (`&mut`), in a range no `Chunk` covers, and read through Chunks, so no byte is read
// on one thread while another writes it.
unsafe impl Send for Area {}
// SAFETY: as for Send.
unsafe impl Sync for Area {}

impl Area {
    fn new(len: usize) -> Area {
        let bytes = NonNull::from(Box::leak(vec![0u8; len].into_boxed_slice()));
        Area { bytes }
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    fn start(&self) -> *mut u8 {
        self.bytes.cast::<u8>().as_ptr()
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: `bytes` came from `Box::leak` in `new` and is given back once, here; no
        // Chunk or Buffer refers to it any more (this is the last Arc).
        drop(unsafe { Box::from_raw(self.bytes.as_ptr()) });
    }
}

/// A fixed block of memory that reads fill from its start to its end, turn after turn.
pub struct Buffer {
    area: Arc<Area>,
    /// Bytes `[0, filled)` were read this turn (some may be covered by Chunks); `[filled,
    /// len)` are free to be read into.
    filled: usize,
}

impl Buffer {
    /// A buffer of `capacity` bytes (zeroed: the kernel's zero pages until first read into).
    pub fn new(capacity: usize) -> Buffer {
        Buffer {
            area: Arc::new(Area::new(capacity)),
            filled: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.area.len()
    }

    /// Bytes that can still be read into before the next `reset`.
    pub fn room(&self) -> usize {
        self.area.len() - self.filled
    }

    /// Start over at the buffer's beginning, when no Chunk of it is left anywhere; false
    /// (nothing changed) while one is: its bytes must stay as they are.
    pub fn reset(&mut self) -> bool {
        // `get_mut` succeeds only on the last reference, with the acquire ordering that makes
        // every read of a Chunk dropped on another thread happen before our next write.
        if Arc::get_mut(&mut self.area).is_none() {
            return false;
        }
        self.filled = 0;
        true
    }

    /// Up to `n` bytes of the open file `fd` from `offset` (`pread`, retried when a signal
    /// interrupts it), read into the room and returned as a Chunk of the buffer; an empty
    /// one at the end of the file or when the buffer is full. `fd` is not closed.
    pub fn pread(&mut self, fd: RawFd, n: usize, offset: u64) -> io::Result<Chunk> {
        if fd < 0 {
            // std asserts a descriptor is not -1: a negative one fails as the kernel would.
            return Err(io::Error::from_raw_os_error(EBADF));
        }
        let start = self.filled;
        let n = n.min(self.room());
        // SAFETY: `[start, start + n)` lies inside the area (`n <= len - filled`), is
        // initialised (zeroed in `new`), and no Chunk covers it: every Chunk lies below the
        // fill mark, which only `reset` lowers, and only when no Chunk is left. Nothing else
        // writes the area (this `&mut self` is its only writer), so this is the only reference
        // to these bytes while it lives.
        let room = unsafe { std::slice::from_raw_parts_mut(self.area.start().add(start), n) };
        // SAFETY: a File over a descriptor we do not own, never dropped (so never closed): a
        // closed or reused `fd` makes the read fail or read another file, as `os.pread` would,
        // and touches no memory but `room`.
        let file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
        let got = loop {
            match file.read_at(room, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        self.filled += got;
        Ok(Chunk {
            area: Arc::clone(&self.area),
            start,
            len: got,
        })
    }
}

/// Bytes read into a Buffer: they stay as read for as long as the Chunk lives.
pub struct Chunk {
    area: Arc<Area>,
    start: usize,
    len: usize,
}

impl Chunk {
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `[start, start + len)` is inside the area and was written by the `pread`
        // that made this Chunk; the Buffer writes only above its fill mark, which stays above
        // this range while the Chunk lives (see `Buffer::pread` and `reset`); the Arc keeps
        // the allocation alive for the borrow of `self`.
        unsafe { std::slice::from_raw_parts(self.area.start().add(self.start), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    fn file_of(content: &[u8]) -> File {
        let path =
            std::env::temp_dir().join(format!("readbuf-{}-{}", std::process::id(), content.len()));
        let mut f = File::create(&path).unwrap();
        f.write_all(content).unwrap();
        let f = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }

    #[test]
    fn chunks_keep_their_bytes_until_dropped_and_the_buffer_is_reused_after() {
        let content: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let f = file_of(&content);
        let mut buf = Buffer::new(4096);
        let a = buf.pread(f.as_raw_fd(), 3000, 0).unwrap();
        let b = buf.pread(f.as_raw_fd(), 3000, 3000).unwrap();
        assert_eq!(a.bytes(), &content[..3000]);
        assert_eq!(
            b.bytes(),
            &content[3000..4096],
            "only the room is read into"
        );
        assert_eq!(buf.room(), 0);
        assert!(!buf.reset(), "chunks still live: their bytes must stay");
        drop(a);
        assert!(!buf.reset());
        let kept = b.bytes().to_vec();
        assert_eq!(buf.pread(f.as_raw_fd(), 100, 0).unwrap().bytes(), b"");
        assert_eq!(b.bytes(), kept.as_slice());
        drop(b);
        assert!(buf.reset());
        let c = buf.pread(f.as_raw_fd(), 4096, 5000).unwrap();
        assert_eq!(c.bytes(), &content[5000..9096]);
        assert_eq!(buf.pread(f.as_raw_fd(), 10, 10_000).unwrap().bytes(), b"");
    }

    #[test]
    fn a_bad_descriptor_is_an_error_not_a_read() {
        let mut buf = Buffer::new(16);
        for fd in [-1, -7, 1_000_000] {
            let err = buf.pread(fd, 16, 0).err().and_then(|e| e.raw_os_error());
            assert_eq!(err, Some(EBADF));
        }
        assert_eq!(buf.room(), 16);
    }
}
