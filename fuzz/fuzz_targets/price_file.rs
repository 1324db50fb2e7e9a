//! Fuzzes the price file parser (`tollgate::parse_price_toml`).
//!
//! Properties: no panic; every parsed price lies between zero and `ModelPrice::MAX_PER_MILLION`, and
//! the file written back from the parsed prices parses to the same prices.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_types::ModelPrice;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(prices) = tollgate::parse_price_toml(text) else { return };
    let mut written = String::new();
    for price in &prices {
        for amount in [price.input_per_million(), price.output_per_million()] {
            assert!(!amount.is_negative() && amount <= ModelPrice::MAX_PER_MILLION);
        }
        written.push_str(&format!(
            "[{:?}]\n{:?} = {{ input = \"{}\", output = \"{}\" }}\n",
            price.provider().as_str(),
            price.model().as_str(),
            price.input_per_million().to_dollars(),
            price.output_per_million().to_dollars(),
        ));
    }
    // Each provider's table is written once per model, which TOML refuses, so write one table a price
    // only when each provider has one model.
    let mut providers: Vec<&str> = prices.iter().map(|price| price.provider().as_str()).collect();
    providers.dedup();
    if providers.len() == prices.len() {
        let again = tollgate::parse_price_toml(&written).expect("written prices parse");
        assert_eq!(again, prices, "parse -> write -> parse is the identity");
    }
});
