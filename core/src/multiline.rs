//! Records out of a byte stream (parsers/multiline.py): continuation lines join the record whose
//! header started them; HEADLESS, TRUNCATED and PARTIAL as the reference decides them.

use memchr::memchr_iter;

use crate::byteset::Newlines;
use crate::decode::{decode, decode_borrowed, Codec};
use crate::lines::{flags, LineBuffer, Piece};
use crate::matcher::Matcher;
use crate::start::{Head, Marks, StartTest};
use std::borrow::Cow;
use std::sync::Arc;

/// One record's text and where it ends in the file. The text is borrowed from the chunk fed
/// when it is those very bytes (a whole record in the chunk, valid UTF-8 with nothing to
/// clean: nearly every record), else owned: no allocation and copy per record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    pub text: Cow<'a, str>,
    pub end: u64,
    pub line_no: u64,
    pub size: u64,
    pub flags: u8,
    /// Where the start walk's steps ended on the record's first line (start.rs
    /// `Marks`), when the text begins with the bytes walked (`Marks::NONE` otherwise): the
    /// record parser's prefix match resumes from them.
    pub marks: Marks,
}

impl Frame<'_> {
    /// The frame with its text its own (for frames kept past the bytes they were framed from).
    pub fn into_owned(self) -> Frame<'static> {
        Frame {
            text: Cow::Owned(self.text.into_owned()),
            end: self.end,
            line_no: self.line_no,
            size: self.size,
            flags: self.flags,
            marks: self.marks,
        }
    }
}

/// Joins lines into records for one file.
#[derive(Debug)]
pub struct Assembler {
    first: StartTest,
    codec: Codec,
    cap: usize,
    lines: LineBuffer,
    offset: u64,
    done: u64,
    line_no: u64,
    last_data: Option<f64>,
    parts: Vec<u8>,
    size: u64,
    pend_line: u64,
    pend_flags: u8,
}

/// The record buffer's capacity kept between records (more is given back).
const KEEP_CAPACITY: usize = 64 << 10;

/// The text of bytes `scan` read as plain ASCII: what `decode_borrowed` answers for them in
/// UTF-8 (its plain-ASCII case, flags 0), without reading them again.
///
/// # Safety
/// Every byte of `raw` is ASCII.
unsafe fn plain_text(raw: &[u8]) -> &str {
    debug_assert!(raw.iter().all(|&b| b.is_ascii() && b != 0 && b != b'\r'));
    // SAFETY: ASCII is valid UTF-8, which is all `from_utf8_unchecked` requires, and the
    // caller promises every byte is ASCII.
    unsafe { std::str::from_utf8_unchecked(raw) }
}

fn count_newlines(s: &[u8]) -> u64 {
    memchr_iter(b'\n', s).count() as u64
}

impl Assembler {
    /// `first`: the record-start test at the start of a line (BOM? NUL* header).
    pub fn new(
        first: Arc<Matcher>,
        codec: Codec,
        max_record_bytes: usize,
        start_offset: u64,
    ) -> Assembler {
        Assembler {
            first: StartTest::new(first),
            codec,
            cap: max_record_bytes,
            lines: LineBuffer::new(max_record_bytes),
            offset: start_offset,
            done: start_offset,
            line_no: 1,
            last_data: None,
            parts: Vec::new(),
            size: 0,
            pend_line: 0,
            pend_flags: 0,
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Memory held for records not yet complete: the pending record's kept bytes and the
    /// partial line's.
    pub fn pending_bytes(&self) -> u64 {
        (self.parts.len() + self.lines.head().len()) as u64
    }

    /// Records completed by `chunk`.
    pub fn feed<'a>(&mut self, chunk: &'a [u8], now: f64, out: &mut Vec<Frame<'a>>) {
        if chunk.is_empty() {
            return;
        }
        self.offset += chunk.len() as u64;
        self.last_data = Some(now);
        let pieces = self.lines.push(chunk);
        for piece in pieces {
            self.piece(piece, out, 0);
        }
    }

    /// Records to flush because the writer went idle (see the reference's docstring).
    pub fn due(
        &mut self,
        now: f64,
        partial_after: f64,
        pending_after: f64,
        out: &mut Vec<Frame<'_>>,
    ) {
        let Some(last) = self.last_data else { return };
        let idle = now - last;
        if self.lines.held() > 0 && idle >= partial_after {
            self.drain(out);
            return;
        }
        if self.pend_line > 0 && idle >= pending_after {
            let held = self.lines.head();
            if held.is_empty() || self.first.test(held) {
                self.flush(out);
            }
        }
    }

    /// Everything held, the partial last line included.
    pub fn drain(&mut self, out: &mut Vec<Frame<'_>>) {
        if let Some(piece) = self.lines.take_partial() {
            self.piece(piece, out, flags::PARTIAL);
        }
        self.flush(out);
    }

    /// Pending records emitted as they are.
    pub fn flush_pending(&mut self, out: &mut Vec<Frame<'_>>) {
        self.flush(out);
    }

    fn piece<'a>(&mut self, piece: Piece<'a>, out: &mut Vec<Frame<'a>>, fl: u8) {
        match piece {
            Piece::Block(data) => self.scan(data, out, fl),
            Piece::Held(data) => {
                // Bytes of this call's own (a line across chunks): their frames own their text.
                let mut held: Vec<Frame<'_>> = Vec::new();
                self.scan(&data, &mut held, fl);
                out.extend(held.into_iter().map(|f| f.into_owned()));
            }
            Piece::Long {
                kept,
                size,
                complete,
            } => {
                if self.first.test(&kept) {
                    self.flush(out);
                }
                self.append(&kept, size, fl | flags::TRUNCATED);
                self.done += size;
                if complete {
                    self.line_no += 1;
                }
            }
        }
    }

    /// Frame the complete lines of `data` (a partial line when `fl` has PARTIAL).
    fn scan<'a>(&mut self, data: &'a [u8], out: &mut Vec<Frame<'a>>, fl: u8) {
        let base = self.done;
        let end = data.len();
        // The record being framed in `data`: its start and where its header ends (see
        // `StartTest::header`), and the newlines since its start.
        let mut current: Option<(usize, Head)> = None;
        if let Some(head) = self.first.marked(data) {
            self.flush(out);
            current = Some((0, head));
        }
        let mut lines = 0u64;
        for (nl, plain) in Newlines::new(data) {
            lines += 1;
            let b = nl + 1;
            let Some(head) = self.first.marked(data.get(b..).unwrap_or_default()) else {
                continue;
            };
            match current {
                None => {
                    self.append_range(data, 0, b, fl);
                    self.flush(out);
                }
                Some((a, head)) => {
                    self.done = base + a as u64;
                    let plain = plain <= a && self.codec == Codec::Utf8;
                    self.record(data, (a, b), (head, plain), lines, fl, out);
                }
            }
            current = Some((b, head));
            lines = 0;
        }
        match current {
            None => {
                self.append_range(data, 0, end, fl);
                self.done = base + end as u64;
            }
            Some((a, _)) => {
                self.done = base + a as u64;
                self.append_range(data, a, end, fl);
            }
        }
    }

    /// The whole record `data[a..b]` (its header `head.end` bytes long, `lines` newlines, the
    /// last at `b - 1`), with nothing pending: straight from the chunk to its frame, as
    /// `append_range` and `flush` would make it, without copying it into the record buffer.
    /// `plain`: the codec is UTF-8 and `scan` read every byte before `b - 1` as plain ASCII
    /// (`byteset::Newlines`: none from 0x80 up, no NUL, no CR), text as it is.
    fn record<'a>(
        &mut self,
        data: &'a [u8],
        (a, b): (usize, usize),
        (head, plain): (Head, bool),
        lines: u64,
        fl: u8,
        out: &mut Vec<Frame<'a>>,
    ) {
        let part = data.get(a..b).unwrap_or_default();
        if self.pend_line != 0 || part.len() > self.cap {
            self.append_range(data, a, b, fl);
            self.flush(out);
            return;
        }
        let mut fl = fl;
        // `append` tests the kept bytes alone: a header that ends inside them passes.
        if head.end > part.len() && !self.first.test(part) {
            fl |= flags::HEADLESS;
        }
        let body = part.strip_suffix(b"\n").unwrap_or(part);
        let (text, text_flags) = if plain {
            // SAFETY: `plain`: `scan` found no byte from 0x80 up in `data[a..b - 1]`, which is
            // `body` (`byteset::Newlines`, whose test
            // `newlines_come_with_a_plain_start_no_later_than_the_last_odd_byte` holds its
            // plain starts to that): every byte of `body` is ASCII.
            (Cow::Borrowed(unsafe { plain_text(body) }), 0)
        } else {
            decode_borrowed(body, self.codec, fl & flags::TRUNCATED != 0)
        };
        // The marks hold for the text when it is the bytes walked (not cleaned or decoded).
        let marks = match text {
            Cow::Borrowed(_) => head.marks,
            Cow::Owned(_) => Marks::NONE,
        };
        self.done += part.len() as u64;
        out.push(Frame {
            text,
            end: self.done,
            line_no: self.line_no,
            size: part.len() as u64,
            flags: fl | text_flags,
            marks,
        });
        self.line_no += lines;
    }

    fn append_range(&mut self, data: &[u8], a: usize, b: usize, fl: u8) {
        if a >= b {
            return;
        }
        let part = data.get(a..b).unwrap_or_default();
        let room = self.cap.saturating_sub(self.parts.len());
        if b - a <= room {
            self.append(part, (b - a) as u64, fl);
        } else {
            self.append(
                part.get(..room).unwrap_or_default(),
                (b - a) as u64,
                fl | flags::TRUNCATED,
            );
        }
        self.done += (b - a) as u64;
        self.line_no += count_newlines(part);
    }

    fn append(&mut self, kept: &[u8], size: u64, fl: u8) {
        if self.pend_line == 0 {
            self.pend_line = self.line_no;
            self.pend_flags = fl;
            if !self.first.test(kept) {
                self.pend_flags |= flags::HEADLESS;
            }
        } else {
            self.pend_flags |= fl;
        }
        let room = self.cap.saturating_sub(self.parts.len());
        let kept = if kept.len() > room {
            self.pend_flags |= flags::TRUNCATED;
            kept.get(..room).unwrap_or_default()
        } else {
            kept
        };
        self.parts.extend_from_slice(kept);
        self.size += size;
    }

    fn flush(&mut self, out: &mut Vec<Frame<'_>>) {
        if self.pend_line == 0 {
            return;
        }
        // The buffer is kept for the next record: cleared, not given away.
        let fl = self.pend_flags;
        let raw = &self.parts;
        let body = raw.strip_suffix(b"\n").unwrap_or(raw);
        let (text, text_flags) = decode(body, self.codec, fl & flags::TRUNCATED != 0);
        self.parts.clear();
        if self.parts.capacity() > KEEP_CAPACITY {
            self.parts = Vec::new(); // a huge record's buffer is not kept for the next one
        }
        out.push(Frame {
            text: Cow::Owned(text),
            end: self.done,
            line_no: self.pend_line,
            size: self.size,
            flags: fl | text_flags,
            marks: Marks::NONE,
        });
        self.size = 0;
        self.pend_line = 0;
        self.pend_flags = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::compile_pattern;

    fn assembler(cap: usize) -> Assembler {
        let p = compile_pattern("%d{HH:mm:ss dd} %m", None).unwrap();
        Assembler::new(
            Arc::new(p.start_matcher(Codec::Utf8, "utf-8").unwrap()),
            Codec::Utf8,
            cap,
            0,
        )
    }

    #[test]
    fn continuation_lines_join_and_a_banner_is_headless() {
        let mut a = assembler(1024);
        let mut out = Vec::new();
        a.feed(
            b"banner\n10:00:00 01 a\n\tat x\n10:00:01 01 b\n",
            0.0,
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].flags, flags::HEADLESS);
        assert_eq!(
            (&*out[1].text, out[1].end, out[1].line_no),
            ("10:00:00 01 a\n\tat x", 27, 2)
        );
        a.drain(&mut out);
        assert_eq!(out[2].text, "10:00:01 01 b");
    }

    /// Records whole in a chunk go straight to their frame; a byte at a time, every line is
    /// held and goes through the record buffer: both give the same frames.
    #[test]
    fn records_framed_from_the_chunk_equal_those_from_the_buffer() {
        const LINES: &[&[u8]] = &[
            b"2026-11-30 04:38:57.716 INFO  [traceId:e8] [c.a.C#f():1] [main] - a,b\n",
            b"2026-11-30 04:38:57.716 WARN [traceId:] x\r\n",
            b"\tat x(Y.java:1)\n",
            b"prompt: \xe4\xbd\xa0\xff\n",
            b"\xef\xbb\xbf2026-11-30 04:38:57.716 INFO [traceId:\n",
            b"\x002026-11-30 04:38:57.716 DEBUG [traceId:x\n",
            b"2026-11-30 04:38:57.716 INFO [trace\n",
            b"\n",
            b"\xed\xa0\x80 \0\n",
            // Odd bytes past the first blocks (`scan` reads 32 bytes a step), and plain
            // records of several blocks around them.
            b"2026-11-30 04:38:57.716 INFO [traceId:a] [c.a.C#f():1] [main] - caf\xc3\xa9 au lait\n",
            b"2026-11-30 04:38:57.716 INFO [traceId:a] [c.a.C#f():1] [main] - a\rb plain again\n",
            b"2026-11-30 04:38:57.716 INFO [traceId:a] [c.a.C#f():1] [main] - a long one, then\0\n",
            b"2026-11-30 04:38:57.716 INFO [traceId:a] [c.a.C#f():1] [main] - plain and long, ok.\n",
            b"\tplain continuation line of a record, long enough to fill a block or two\n",
        ];
        let p = compile_pattern(
            "%d{yyyy-MM-dd HH:mm:ss.SSS} %-5p [traceId:%X{traceId}] [%c{3}#%method\\(\\):%L] [%thread] - %m%n",
            Some("UTC"),
        )
        .unwrap();
        let starts = Arc::new(p.start_matcher(Codec::Utf8, "utf-8").unwrap());
        let mut marked = 0;
        let mut g = crate::testgen::Gen(0xA409_3822_299F_31D0);
        for _ in 0..300 {
            let mut data = Vec::new();
            for _ in 0..g.below(12) {
                data.extend_from_slice(LINES[g.below(LINES.len())]);
            }
            if g.below(2) == 0 {
                data.extend_from_slice(b"2026-11-30 04:38:57.716 INFO [traceId:partial");
            }
            let frames = |cuts: &mut dyn FnMut(usize) -> usize| {
                let mut a = Assembler::new(Arc::clone(&starts), Codec::Utf8, 1 << 20, 7);
                let mut out = Vec::new();
                let mut at = 0;
                while at < data.len() {
                    let n = cuts(data.len() - at).max(1);
                    a.feed(data.get(at..at + n).unwrap_or_default(), 0.0, &mut out);
                    at += n;
                }
                a.drain(&mut out);
                out
            };
            // The marks are the parser's hint, given only where a record's text is the bytes
            // walked (not for text held across chunks): where both framings give them, they
            // agree; the frames are otherwise the same.
            let same = |a: &[Frame], b: &[Frame]| {
                let bare = |fs: &[Frame]| -> Vec<Frame<'static>> {
                    fs.iter()
                        .map(|f| Frame {
                            marks: Marks::NONE,
                            ..f.clone().into_owned()
                        })
                        .collect()
                };
                assert_eq!(bare(a), bare(b), "{data:?}");
                for (x, y) in a.iter().zip(b) {
                    if x.marks.len > 0 && y.marks.len > 0 {
                        assert_eq!(x.marks, y.marks, "{data:?}");
                    }
                }
            };
            let whole = frames(&mut |n| n);
            same(&whole, &frames(&mut |_| 1));
            let mut g2 = crate::testgen::Gen(g.next() | 1);
            same(&whole, &frames(&mut |n| 1 + g2.below(n)));
            marked += whole.iter().filter(|f| f.marks.len == 4).count();
        }
        assert!(marked > 100, "{marked}");
    }

    /// The start walk's marks ride in the Frame's padding: a frame is no bigger for them (a
    /// feed reserves up to 16K frames; at 64 bytes each, a megabyte chunk's frames took ~10
    /// more page faults).
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn the_marks_fit_in_a_frame_s_padding() {
        assert_eq!(std::mem::size_of::<Frame>(), 56);
    }

    #[test]
    fn an_oversized_record_is_cut_and_its_bytes_still_count() {
        let mut a = assembler(8);
        let mut out = Vec::new();
        a.feed(b"10:00:00 01 abcdefgh\nmore\n", 0.0, &mut out);
        a.drain(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((&*out[0].text, out[0].size), ("10:00:00", 26));
        // The kept bytes no longer show the whole header: the reference flags it HEADLESS too.
        assert_eq!(out[0].flags, flags::TRUNCATED | flags::HEADLESS);
    }
}
