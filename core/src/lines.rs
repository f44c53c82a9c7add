//! Bytes -> whole lines, holding at most `cap` bytes of a partial line (parsers/lines.py).

use memchr::{memchr, memrchr};

/// Frame flags, the values of parsers.lines.FrameFlag.
pub mod flags {
    pub const TRUNCATED: u8 = 1;
    pub const DECODE: u8 = 2;
    pub const NUL: u8 = 4;
    pub const HEADLESS: u8 = 8;
    pub const PARTIAL: u8 = 16;
}

/// Complete lines (a range of the chunk, or a released held line), or an over-long line.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Block(&'a [u8]),
    Held(Vec<u8>),
    Long {
        kept: Vec<u8>,
        size: u64,
        complete: bool,
    },
}

/// Splits a byte stream into complete lines.
#[derive(Debug, Default)]
pub struct LineBuffer {
    cap: usize,
    tail: Vec<u8>,
    skipped: u64,
}

impl LineBuffer {
    pub fn new(cap: usize) -> LineBuffer {
        LineBuffer {
            cap,
            tail: Vec::new(),
            skipped: 0,
        }
    }

    /// Bytes of the current partial line seen so far (kept or dropped).
    pub fn held(&self) -> u64 {
        self.tail.len() as u64 + self.skipped
    }

    /// The kept bytes of the partial line.
    pub fn head(&self) -> &[u8] {
        &self.tail
    }

    /// Complete lines in `chunk` (after what was held), in order.
    pub fn push<'a>(&mut self, chunk: &'a [u8]) -> Vec<Piece<'a>> {
        let mut pieces = Vec::new();
        if chunk.is_empty() {
            return pieces;
        }
        let mut pos = 0;
        if !self.tail.is_empty() || self.skipped > 0 {
            let Some(nl) = memchr(b'\n', chunk) else {
                self.hold(chunk);
                return pieces;
            };
            self.hold(chunk.get(..=nl).unwrap_or(chunk));
            pieces.push(self.release(true));
            pos = nl + 1;
        }
        let rest = chunk.get(pos..).unwrap_or_default();
        if let Some(last) = memrchr(b'\n', rest) {
            pieces.push(Piece::Block(rest.get(..=last).unwrap_or_default()));
            pos += last + 1;
        }
        if let Some(rest) = chunk.get(pos..).filter(|r| !r.is_empty()) {
            self.hold(rest);
        }
        pieces
    }

    /// The held partial line, handed out and forgotten.
    pub fn take_partial(&mut self) -> Option<Piece<'static>> {
        if self.tail.is_empty() && self.skipped == 0 {
            return None;
        }
        Some(self.release(false))
    }

    fn hold(&mut self, data: &[u8]) {
        let room = self.cap.saturating_sub(self.tail.len());
        if self.skipped > 0 || data.len() > room {
            let take = room.min(data.len());
            self.tail
                .extend_from_slice(data.get(..take).unwrap_or_default());
            self.skipped += (data.len() - take) as u64;
        } else {
            self.tail.extend_from_slice(data);
        }
    }

    fn release(&mut self, complete: bool) -> Piece<'static> {
        let tail = std::mem::take(&mut self.tail);
        let skipped = std::mem::take(&mut self.skipped);
        if skipped > 0 {
            let size = tail.len() as u64 + skipped;
            return Piece::Long {
                kept: tail,
                size,
                complete,
            };
        }
        Piece::Held(tail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_a_partial_line_up_to_the_cap() {
        let mut b = LineBuffer::new(4);
        assert_eq!(b.push(b"ab\ncdefgh"), vec![Piece::Block(b"ab\n")]);
        assert_eq!(b.held(), 6);
        assert_eq!(
            b.push(b"i\nj"),
            vec![Piece::Long {
                kept: b"cdef".to_vec(),
                size: 8,
                complete: true
            }]
        );
        assert_eq!(b.take_partial(), Some(Piece::Held(b"j".to_vec())));
    }
}
