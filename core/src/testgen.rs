//! Reproducible generated inputs for the unit tests that hold a fast path to the general one
//! (the crate has no property-test dependency): xorshift64*, the same cases on every run.

pub struct Gen(pub u64);

impl Gen {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    /// `len` pieces drawn from `alphabet`.
    pub fn text(&mut self, alphabet: &[&str], len: usize) -> String {
        (0..len).map(|_| *self.pick(alphabet)).collect()
    }

    /// `base` with a few edits: characters from `alphabet` inserted, replaced, runs deleted or
    /// doubled (on character boundaries: the text stays UTF-8).
    pub fn mutate(&mut self, base: &str, alphabet: &[&str]) -> String {
        let mut cs: Vec<String> = base.chars().map(String::from).collect();
        for _ in 0..self.below(4) {
            let at = self.below(cs.len() + 1);
            match self.below(4) {
                0 => cs.insert(at, (*self.pick(alphabet)).to_string()),
                1 if at < cs.len() => cs[at] = (*self.pick(alphabet)).to_string(),
                2 if at < cs.len() => {
                    let n = self.below(6).min(cs.len() - at);
                    cs.drain(at..at + n);
                }
                _ => {
                    let n = self.below(8).min(cs.len() - at);
                    let run: Vec<String> = cs[at..at + n].to_vec();
                    for (k, c) in run.into_iter().enumerate() {
                        cs.insert(at + n + k, c);
                    }
                }
            }
        }
        cs.concat()
    }
}
