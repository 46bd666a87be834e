//! See fuzz/entries.rs: `certbot_ini` must return an error, never panic, on any input.
#![no_main]

#[path = "../entries.rs"]
mod entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entries::certbot_ini(data));
