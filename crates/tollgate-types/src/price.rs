//! Model prices: microdollars per million input and output tokens, and the exact cost of a call.

use serde::Serialize;

use crate::{Microdollars, ModelName, ProviderName, ValidationError};

/// The list price of one model. Costs are computed in integers and rounded up, so usage that is
/// not free never costs zero.
///
/// ```
/// # use tollgate_types::{Microdollars, ModelName, ModelPrice, ProviderName};
/// let price = ModelPrice::new(
///     ProviderName::parse("openai").unwrap(),
///     ModelName::parse("gpt-4o-mini").unwrap(),
///     Microdollars::parse_dollars("input", "0.15").unwrap(),
///     Microdollars::parse_dollars("output", "0.60").unwrap(),
/// )
/// .unwrap();
/// // 1 input token costs $0.00000015: rounded up to one microdollar, never down to zero.
/// assert_eq!(price.cost(1, 0).micros(), 1);
/// assert_eq!(price.cost(1_000_000, 1_000_000).micros(), 750_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelPrice {
    provider: ProviderName,
    model: ModelName,
    #[serde(rename = "input_per_million_micros")]
    input_per_million: Microdollars,
    #[serde(rename = "output_per_million_micros")]
    output_per_million: Microdollars,
}

impl ModelPrice {
    /// The most a million tokens may cost: one million dollars.
    pub const MAX_PER_MILLION: Microdollars = Microdollars::from_micros(1_000_000 * 1_000_000);

    /// A price; each amount must be between zero and [`ModelPrice::MAX_PER_MILLION`].
    pub fn new(
        provider: ProviderName,
        model: ModelName,
        input_per_million: Microdollars,
        output_per_million: Microdollars,
    ) -> Result<Self, ValidationError> {
        for (field, amount) in [("input_per_million", input_per_million), ("output_per_million", output_per_million)] {
            if amount.is_negative() {
                return Err(ValidationError::new(field, "must not be negative"));
            }
            if amount > Self::MAX_PER_MILLION {
                return Err(ValidationError::new(
                    field,
                    format!("must be at most {} per million tokens", Self::MAX_PER_MILLION.to_dollars()),
                ));
            }
        }
        Ok(Self { provider, model, input_per_million, output_per_million })
    }

    /// The provider.
    pub fn provider(&self) -> &ProviderName {
        &self.provider
    }

    /// The model.
    pub fn model(&self) -> &ModelName {
        &self.model
    }

    /// Price of a million input tokens.
    pub fn input_per_million(&self) -> Microdollars {
        self.input_per_million
    }

    /// Price of a million output tokens.
    pub fn output_per_million(&self) -> Microdollars {
        self.output_per_million
    }

    /// The cost of a call, rounded up to the next microdollar (once, on the sum).
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> Microdollars {
        // Both factors are bounded (u64 tokens, prices ≤ 10^12), so u128 cannot overflow.
        let input = u128::from(input_tokens) * u128::from(self.input_per_million.micros().unsigned_abs());
        let output = u128::from(output_tokens) * u128::from(self.output_per_million.micros().unsigned_abs());
        let micros = (input + output).div_ceil(1_000_000);
        Microdollars::from_micros(i64::try_from(micros).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(input: i64, output: i64) -> Result<ModelPrice, ValidationError> {
        ModelPrice::new(
            ProviderName::parse("openai").unwrap(),
            ModelName::parse("gpt-4o").unwrap(),
            Microdollars::from_micros(input),
            Microdollars::from_micros(output),
        )
    }

    #[test]
    fn costs_round_up_and_never_to_zero() {
        let gpt_4o = price(2_500_000, 10_000_000).unwrap();
        assert_eq!(gpt_4o.cost(0, 0).micros(), 0);
        assert_eq!(gpt_4o.cost(1, 0).micros(), 3); // 2.5 µ$ → 3
        assert_eq!(gpt_4o.cost(0, 1).micros(), 10);
        assert_eq!(gpt_4o.cost(2, 0).micros(), 5);
        assert_eq!(gpt_4o.cost(1_000, 500).micros(), 7_500);
        assert_eq!(gpt_4o.cost(1, 1).micros(), 13); // rounded once on the sum (12.5 → 13)
        let cheap = price(75_000, 300_000).unwrap(); // $0.075 / $0.30 per million
        assert_eq!(cheap.cost(1, 0).micros(), 1);
        assert_eq!(cheap.cost(13, 0).micros(), 1); // 0.975 µ$ → 1
        assert_eq!(cheap.cost(14, 0).micros(), 2); // 1.05 µ$ → 2
        let free = price(0, 0).unwrap();
        assert_eq!(free.cost(1_000_000, 1_000_000).micros(), 0);
        let largest = price(ModelPrice::MAX_PER_MILLION.micros(), ModelPrice::MAX_PER_MILLION.micros()).unwrap();
        assert!(largest.cost(u64::MAX, u64::MAX).micros() > 0);
    }

    #[test]
    fn negative_or_huge_prices_name_the_field() {
        assert_eq!(price(-1, 0).unwrap_err().field, "input_per_million");
        assert_eq!(price(0, i64::MAX).unwrap_err().field, "output_per_million");
    }
}
