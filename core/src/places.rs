//! Where a record's named fields are, found in one pass over its fields for everyone who reads
//! them by name: masking (the event and the texts it may mask), the Stream's counters (event,
//! `parse_error`, `time`) and the LLM aggregate (six labels, four numbers). Each looked its
//! names up in a pass of its own before: three passes of a string match per field.

use crate::payload::{Key, Value};

/// The names, in this order: masking's text fields (crate::mask), the LLM aggregate's roles
/// (crate::llm), then `time`.
pub const NAMES: [&str; 17] = [
    "event",
    "message",
    "__raw_log__",
    "error_message",
    "parse_error",
    "comment",
    "app",
    "module",
    "model",
    "workspace",
    "status_code",
    "error_code",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "duration_ms",
    "time",
];
pub const EVENT: usize = 0;
pub const MESSAGE: usize = 1;
pub const RAW_LOG: usize = 2;
pub const ERROR_MESSAGE: usize = 3;
pub const PARSE_ERROR: usize = 4;
pub const COMMENT: usize = 5;
/// The first of the LLM aggregate's ten roles.
pub const ROLES: usize = 6;
pub const TIME: usize = 16;

/// Whether the count wire reads a field named `k`: `NAMES`, and a feedback's `rating` (the
/// LLM aggregate's). Nothing else of a record is read when nothing is encoded, so the parser
/// writes no other field there (`RecordParser::parse_counted`).
pub fn counted(k: &str) -> bool {
    k == "rating" || name(k).is_some()
}

/// The index in `NAMES` of `k` (a match on byte literals: a length switch, then a compare).
#[inline]
fn name(k: &str) -> Option<usize> {
    Some(match k.as_bytes() {
        b"event" => 0,
        b"message" => 1,
        b"__raw_log__" => 2,
        b"error_message" => 3,
        b"parse_error" => 4,
        b"comment" => 5,
        b"app" => 6,
        b"module" => 7,
        b"model" => 8,
        b"workspace" => 9,
        b"status_code" => 10,
        b"error_code" => 11,
        b"input_tokens" => 12,
        b"output_tokens" => 13,
        b"total_tokens" => 14,
        b"duration_ms" => 15,
        b"time" => 16,
        _ => return None,
    })
}

/// No field of that name.
const NONE: u32 = u32::MAX;

/// The first and the last field of each name of `NAMES` (a lookup by name finds the first,
/// a dict built from the fields keeps the last; a record has each name once at most, so the
/// two differ only for hand-made field lists). Indices as u32 (`NONE`: absent): small enough
/// to copy per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Places {
    first: [u32; NAMES.len()],
    last: [u32; NAMES.len()],
}

impl Default for Places {
    fn default() -> Places {
        Places {
            first: [NONE; NAMES.len()],
            last: [NONE; NAMES.len()],
        }
    }
}

impl Places {
    pub fn of(fields: &[(Key, Value)]) -> Places {
        let mut p = Places::default();
        for (i, (k, _)) in fields.iter().enumerate() {
            // A record has a few dozen fields: an index past u32 is not one of them.
            let (Some(n), Ok(i)) = (name(k), u32::try_from(i)) else {
                continue;
            };
            if let Some(slot) = p.first.get_mut(n).filter(|s| **s == NONE) {
                *slot = i;
            }
            if let Some(slot) = p.last.get_mut(n) {
                *slot = i;
            }
        }
        p
    }

    /// The index of the first field named `NAMES[n]`.
    #[inline]
    pub fn first_at(&self, n: usize) -> Option<usize> {
        at(self.first.get(n).copied())
    }

    /// The values of the first fields named `NAMES[from..from + N]` (`first` of each): the
    /// LLM aggregate's ten roles in one read. `NONE` is past the end of any field list that
    /// can be held (more than u32::MAX fields is over 100 GiB), so each index needs only its
    /// bounds check, not `first`'s test for `NONE` as well; a longer list takes that way.
    #[inline]
    pub fn firsts<'f, const N: usize>(
        &self,
        fields: &'f [(Key, Value)],
        from: usize,
    ) -> [Option<&'f Value>; N] {
        let at = self.first.get(from..).and_then(|f| f.first_chunk::<N>());
        match at {
            Some(at) if fields.len() <= NONE as usize => {
                at.map(|i| fields.get(i as usize).map(|(_, v)| v))
            }
            _ => std::array::from_fn(|j| self.first(fields, from + j)),
        }
    }

    /// The value of the first field named `NAMES[n]`.
    #[inline]
    pub fn first<'f>(&self, fields: &'f [(Key, Value)], n: usize) -> Option<&'f Value> {
        fields.get(self.first_at(n)?).map(|(_, v)| v)
    }

    /// The value of the last field named `NAMES[n]`.
    #[inline]
    pub fn last<'f>(&self, fields: &'f [(Key, Value)], n: usize) -> Option<&'f Value> {
        fields.get(at(self.last.get(n).copied())?).map(|(_, v)| v)
    }
}

#[inline]
fn at(i: Option<u32>) -> Option<usize> {
    i.filter(|i| *i != NONE).map(|i| i as usize)
}

/// The layouts a Stream's records come in, most of them few: a record's fields are written
/// by the parser with its own keys (one `Arc` per name, shared by every record), in an
/// order fixed by the outcome (log, llm_call, feedback, raw...). A record whose keys are
/// the same `Arc`s, in the same order, as a layout seen before has that layout's places:
/// a pointer compare per field instead of a string match. The layouts hold clones of their
/// keys, so an equal pointer is the same key. At most `LAYOUTS`, replaced in turn.
#[derive(Debug, Default)]
pub struct Layouts {
    seen: Vec<(Vec<Key>, Places)>,
    next: usize,
    /// The layout the last record had, tried first (records mostly have the layout of the
    /// one before: runs of llm_call lines).
    last: usize,
}

const LAYOUTS: usize = 8;

impl Layouts {
    pub fn places(&mut self, fields: &[(Key, Value)]) -> Places {
        let same = |keys: &[Key]| {
            keys.len() == fields.len()
                && keys
                    .iter()
                    .zip(fields)
                    .all(|(a, (b, _))| std::sync::Arc::ptr_eq(a, b))
        };
        if let Some((keys, p)) = self.seen.get(self.last) {
            if same(keys) {
                return *p;
            }
        }
        if let Some((i, (_, p))) = self
            .seen
            .iter()
            .enumerate()
            .find(|(_, (keys, _))| same(keys))
        {
            self.last = i;
            return *p;
        }
        let p = Places::of(fields);
        let layout = (fields.iter().map(|(k, _)| k.clone()).collect(), p);
        if self.seen.len() < LAYOUTS {
            self.last = self.seen.len();
            self.seen.push(layout);
        } else if let Some(slot) = self.seen.get_mut(self.next) {
            *slot = layout;
            self.last = self.next;
            self.next = (self.next + 1) % LAYOUTS;
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(names: &[&str]) -> Vec<(Key, Value)> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (Key::from(*n), Value::Str(i.to_string())))
            .collect()
    }

    #[test]
    fn the_named_indices_name_their_fields() {
        let named = [
            (EVENT, "event"),
            (MESSAGE, "message"),
            (RAW_LOG, "__raw_log__"),
            (ERROR_MESSAGE, "error_message"),
            (PARSE_ERROR, "parse_error"),
            (COMMENT, "comment"),
            (ROLES, "app"),
            (TIME, "time"),
        ];
        for (i, want) in named {
            assert_eq!(NAMES[i], want);
        }
    }

    #[test]
    fn every_name_is_found_first_and_last() {
        for (n, want) in NAMES.iter().enumerate() {
            let f = fields(&["level", want, "x", want]);
            let p = Places::of(&f);
            assert_eq!(p.first_at(n), Some(1), "{want}");
            assert_eq!(p.first(&f, n), Some(&Value::Str("1".into())));
            assert_eq!(p.last(&f, n), Some(&Value::Str("3".into())));
        }
        let p = Places::of(&fields(&["events", "Time", "app_", ""]));
        assert_eq!(p, Places::default());
    }

    #[test]
    fn firsts_are_the_first_of_each_name() {
        // Some roles present (twice, or once), some absent, and places of a longer record
        // read against a shorter one (indices past its end read as absent, as `first` does).
        let f = fields(&[
            "model",
            "app",
            "level",
            "input_tokens",
            "app",
            "duration_ms",
            "error_code",
        ]);
        let p = Places::of(&f);
        let short = &f[..4];
        for list in [&f[..], short, &[]] {
            let got: [Option<&Value>; 10] = p.firsts(list, ROLES);
            let want: [Option<&Value>; 10] = std::array::from_fn(|j| p.first(list, ROLES + j));
            assert_eq!(got, want);
        }
        assert_eq!(p.firsts::<10>(&f, ROLES)[0], Some(&Value::Str("1".into())));
        // Past the names: nothing.
        assert_eq!(p.firsts::<2>(&f, NAMES.len() - 1), [None, None]);
    }

    #[test]
    fn a_layout_is_known_by_its_keys_not_their_text() {
        let mut layouts = Layouts::default();
        let a = fields(&["time", "event", "message"]);
        assert_eq!(layouts.places(&a), Places::of(&a));
        // The same texts under other keys (other Arcs) in another order: places of their own.
        let b = fields(&["event", "time", "message"]);
        assert_eq!(layouts.places(&b), Places::of(&b));
        assert_eq!(layouts.places(&a), Places::of(&a));
        // More layouts than are kept: each still gets its own places.
        let many: Vec<_> = (0..2 * LAYOUTS)
            .map(|i| {
                let mut f = fields(&["x"; 20][..i % 20]);
                f.extend(fields(&["event"]));
                f
            })
            .collect();
        for f in many.iter().chain(many.iter()) {
            assert_eq!(layouts.places(f), Places::of(f));
        }
        assert!(layouts.seen.len() <= LAYOUTS);
    }
}
