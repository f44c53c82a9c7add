//! The SLS body's lz4 block (crate::lz4) on arbitrary bytes, into an output buffer kept from
//! input to input as the pool keeps it: the block fits in `bound`, and liblz4's own safe
//! decoder gives back exactly the input (never a byte of the block the buffer held before).

#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use llmtail_core::lz4::{bound, compress_into, decompress};

thread_local! {
    static OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fuzz_target!(|data: &[u8]| {
    OUT.with_borrow_mut(|out| {
        compress_into(data, out).expect("a fuzz input is far below liblz4's limit");
        assert!(!out.is_empty() && out.len() <= bound(data.len()));
        let back = decompress(out, data.len() + 1);
        assert_eq!(back.as_deref(), Some(data));
    });
});
