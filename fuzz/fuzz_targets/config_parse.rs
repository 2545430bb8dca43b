//! Fuzzes the config parser and validator, `settings::Config::from_toml_str`: any text,
//! valid TOML or not, must give `Ok` or a `ConfigError`, never a panic.
//!
//! Input format: the whole input is the config text. Bytes that are not UTF-8 are replaced
//! (U+FFFD), since the function takes `&str`. Seeds: `fuzz/corpus/config_parse/` (written by
//! `fuzz/gen_corpus.py` from `configs/*.toml` and the strings in `settings/src/tests.rs`).
//!
//! `from_toml_str` reads one environment variable, `SWITCHYARD_ADMIN_TOKEN` (only when the
//! text sets no `admin_token`); `scripts/fuzz.sh` unsets it so runs are reproducible.

#![no_main]

use libfuzzer_sys::fuzz_target;
use settings::Config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Config::from_toml_str("fuzz.toml", &text) {
        Ok(config) => assert!(!config.models.is_empty(), "accepted a config with no model"),
        Err(e) => assert!(!e.problems.is_empty(), "a ConfigError with no problem in it"),
    }
});
