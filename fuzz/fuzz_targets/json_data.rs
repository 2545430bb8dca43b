//! Fuzzes the fast reader of JSON tensor data, `protocol::v2::json_data::scan`, against the
//! reference it stands in for, serde_json's deserializer (`json_data::walk`): whenever `scan`
//! takes a text whole, serde_json must take it too and hand over the same elements, bit for bit
//! (`json_data::check_agreement` panics otherwise). Input: the text (inputs that are not UTF-8
//! are skipped, as a request body's JSON must be UTF-8).

#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::v2::json_data::check_agreement;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_agreement(text);
    }
});
