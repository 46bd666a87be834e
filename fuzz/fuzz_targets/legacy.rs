//! See fuzz/entries.rs: `legacy` must return an error, never panic, on any input.
#![no_main]

#[path = "../entries.rs"]
mod entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entries::legacy(data));
