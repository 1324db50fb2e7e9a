//! Fuzzes money parsing (`Microdollars::parse_dollars`) and price arithmetic (`ModelPrice::cost`).
//!
//! Properties: no panic or overflow; a parsed amount is between zero and `Microdollars::MAX`, and its
//! decimal text and its `$` display both parse back to the same amount; a cost never goes below zero
//! and grows with the number of tokens.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_types::{Microdollars, ModelName, ModelPrice, ProviderName};

fuzz_target!(|data: &[u8]| {
    // The first 32 bytes are two prices and two token counts; the whole input is also an amount text.
    if let Some(numbers) = data.get(..32) {
        let word = |index: usize| u64::from_le_bytes(numbers[index * 8..index * 8 + 8].try_into().expect("8 bytes"));
        check_price(word(0) as i64, word(1) as i64, word(2), word(3));
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(amount) = Microdollars::parse_dollars("fuzz", text) else { return };
    assert!(!amount.is_negative() && amount <= Microdollars::MAX);
    assert_eq!(Microdollars::parse_dollars("fuzz", &amount.to_dollars()), Ok(amount));
    assert_eq!(Microdollars::parse_dollars("fuzz", &amount.to_string()), Ok(amount));
});

fn check_price(input: i64, output: i64, input_tokens: u64, output_tokens: u64) {
    let provider = ProviderName::parse("acme").expect("valid provider");
    let model = ModelName::parse("fast-1").expect("valid model");
    let price = ModelPrice::new(provider, model, Microdollars::from_micros(input), Microdollars::from_micros(output));
    let Ok(price) = price else {
        assert!(input < 0 || output < 0 || input.max(output) > ModelPrice::MAX_PER_MILLION.micros());
        return;
    };
    let cost = price.cost(input_tokens, output_tokens);
    assert!(!cost.is_negative());
    assert!(price.cost(input_tokens / 2, output_tokens / 2) <= cost);
    assert_eq!(price.cost(0, 0), Microdollars::ZERO);
    if (input_tokens > 0 && input > 0) || (output_tokens > 0 && output > 0) {
        assert!(cost > Microdollars::ZERO, "usage that is not free never costs zero");
    }
}
