//! Decodes arbitrary bytes as a message: it must return a value or an
//! error, never panic, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promiscuous_core::wire::Message;

fuzz_target!(|data: &[u8]| {
    if let Err(error) = Message::decode(data) {
        // Every refusal says why.
        assert!(!error.to_string().is_empty());
    }
});
