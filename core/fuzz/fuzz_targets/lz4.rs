//! The SLS body's lz4 block (crate::lz4) on arbitrary bytes, into an output buffer kept from
//! input to input as the pool keeps it: the block fits in `bound`, and liblz4's own safe
//! decoder gives back exactly the input (never a byte of the block the buffer held before).

#![no_main]

use std::cell::RefCell;
use std::os::raw::c_int;

use libfuzzer_sys::fuzz_target;
use llmtail_core::lz4::{bound, compress_into};

thread_local! {
    static OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fuzz_target!(|data: &[u8]| {
    OUT.with_borrow_mut(|out| {
        compress_into(data, out).expect("a fuzz input is far below liblz4's limit");
        assert!(!out.is_empty() && out.len() <= bound(data.len()));
        let mut back = vec![0u8; data.len() + 1];
        // SAFETY: `LZ4_decompress_safe` reads at most `compressedSize` bytes at `src` and
        // writes at most `dstCapacity` bytes at `dst`, checking every read and write against
        // them; both are live, distinct allocations of those sizes (`back` has at least one
        // byte).
        let n = unsafe {
            lz4_sys::LZ4_decompress_safe(
                out.as_ptr().cast(),
                back.as_mut_ptr().cast(),
                c_int::try_from(out.len()).unwrap(),
                c_int::try_from(back.len()).unwrap(),
            )
        };
        assert_eq!(usize::try_from(n).ok(), Some(data.len()));
        assert_eq!(&back[..data.len()], data);
    });
});
