//! What a gateway expects a call to use at most, sent with a verify to hold it against the token's
//! tokens and cost limits before the call starts (a reservation, settled later with the actual).

use serde::Deserialize;

use crate::usage::count_in_range;
use crate::{MAX_COST_PER_EVENT, MAX_TOKENS_PER_EVENT, Microdollars, ModelName, ProviderName, ValidationError};

/// An estimate as a client sends it (the `reserve` object of `POST /v1/tokens/verify`, the
/// `X-Tollgate-Reserve` header of `GET /v1/auth/verify`, CLI flags), before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstimateInput {
    /// The provider, to price the estimate from the table (with `model`).
    #[serde(default)]
    pub provider: Option<String>,
    /// The model, to price the estimate from the table (with `provider`).
    #[serde(default)]
    pub model: Option<String>,
    /// The prompt's tokens.
    #[serde(default)]
    pub max_input_tokens: i64,
    /// The most tokens the call may produce (its `max_tokens`).
    #[serde(default)]
    pub max_output_tokens: i64,
    /// The most money the call may cost, in microdollars (instead of pricing from the table).
    #[serde(default)]
    pub cost_micros: Option<i64>,
}

/// A validated estimate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate {
    /// The model to price by, when given.
    pub model: Option<(ProviderName, ModelName)>,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Completion tokens at most.
    pub output_tokens: u32,
    /// Money at most, when given.
    pub cost: Option<Microdollars>,
}

impl Estimate {
    /// Input plus output tokens.
    pub fn total_tokens(&self) -> u64 {
        u64::from(self.input_tokens) + u64::from(self.output_tokens)
    }
}

impl EstimateInput {
    /// Validates every field, naming the first one that is wrong.
    ///
    /// ```
    /// # use tollgate_types::EstimateInput;
    /// let input = EstimateInput { max_output_tokens: -1, ..EstimateInput::default() };
    /// assert_eq!(input.parse().unwrap_err().field, "max_output_tokens");
    /// ```
    pub fn parse(&self) -> Result<Estimate, ValidationError> {
        let model = match (&self.provider, &self.model) {
            (Some(provider), Some(model)) => {
                Some((ProviderName::parse(provider.trim())?, ModelName::parse(model.trim())?))
            }
            (None, None) => None,
            (None, Some(_)) => return Err(ValidationError::new("provider", "is required with model")),
            (Some(_), None) => return Err(ValidationError::new("model", "is required with provider")),
        };
        let cost = match self.cost_micros {
            Some(micros) if micros < 0 => return Err(ValidationError::new("cost_micros", "must not be negative")),
            Some(micros) if micros > MAX_COST_PER_EVENT.micros() => {
                return Err(ValidationError::new("cost_micros", "must be at most one million dollars"));
            }
            other => other.map(Microdollars::from_micros),
        };
        let estimate = Estimate {
            model,
            input_tokens: count_in_range("max_input_tokens", self.max_input_tokens, MAX_TOKENS_PER_EVENT)?,
            output_tokens: count_in_range("max_output_tokens", self.max_output_tokens, MAX_TOKENS_PER_EVENT)?,
            cost,
        };
        if estimate.model.is_none() && estimate.cost.is_none() && estimate.total_tokens() == 0 {
            return Err(ValidationError::new(
                "reserve",
                "needs max_input_tokens, max_output_tokens, a provider and model, or cost_micros",
            ));
        }
        Ok(estimate)
    }

    /// Reads the `X-Tollgate-Reserve` header form: `key=value` pairs separated by `,` or `;`
    /// (`provider=openai, model=gpt-4o, max_input_tokens=1200, max_output_tokens=800`). A bad
    /// pair names the key, never the value.
    pub fn from_pairs(text: &str) -> Result<Self, ValidationError> {
        let mut input = Self::default();
        for pair in text.split([',', ';']).map(str::trim).filter(|pair| !pair.is_empty()) {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(ValidationError::new("X-Tollgate-Reserve", "must be key=value pairs"));
            };
            let (key, value) = (key.trim(), value.trim());
            let number = |field: &'static str| {
                value.parse::<i64>().map_err(|_| ValidationError::new(field, "must be a whole number"))
            };
            match key {
                "provider" => input.provider = Some(value.to_owned()),
                "model" => input.model = Some(value.to_owned()),
                "max_input_tokens" => input.max_input_tokens = number("max_input_tokens")?,
                "max_output_tokens" => input.max_output_tokens = number("max_output_tokens")?,
                "cost_micros" => input.cost_micros = Some(number("cost_micros")?),
                _ => return Err(ValidationError::new("X-Tollgate-Reserve", "has an unknown key")),
            }
        }
        Ok(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_estimate_names_the_field_at_fault() {
        let parse = |input: EstimateInput| input.parse().map_err(|error| error.field);
        assert_eq!(parse(EstimateInput::default()), Err("reserve"));
        assert_eq!(parse(EstimateInput { model: Some("gpt-4o".into()), ..Default::default() }), Err("provider"));
        assert_eq!(parse(EstimateInput { cost_micros: Some(-1), ..Default::default() }), Err("cost_micros"));
        assert_eq!(
            parse(EstimateInput { max_input_tokens: i64::from(MAX_TOKENS_PER_EVENT) + 1, ..Default::default() }),
            Err("max_input_tokens")
        );
        let estimate = EstimateInput {
            provider: Some("openai".into()),
            model: Some("gpt-4o".into()),
            max_input_tokens: 1_200,
            max_output_tokens: 800,
            cost_micros: None,
        }
        .parse()
        .unwrap();
        assert_eq!(estimate.total_tokens(), 2_000);
    }

    #[test]
    fn the_header_form_reads_pairs_and_never_echoes_a_value() {
        let input = EstimateInput::from_pairs("provider=openai; model=gpt-4o, max_output_tokens=800").unwrap();
        assert_eq!((input.model.as_deref(), input.max_output_tokens), (Some("gpt-4o"), 800));
        let error = EstimateInput::from_pairs("max_input_tokens=lots-of-secret").unwrap_err();
        assert_eq!(error.field, "max_input_tokens");
        assert!(!error.reason.contains("secret"));
        assert_eq!(EstimateInput::from_pairs("secret=1").unwrap_err().field, "X-Tollgate-Reserve");
        assert_eq!(EstimateInput::from_pairs("oops").unwrap_err().field, "X-Tollgate-Reserve");
    }
}
