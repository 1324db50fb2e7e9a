//! Money: integer microdollars (millionths of a US dollar), parsed from and shown as exact decimal
//! dollars. No float ever touches an amount.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Microdollars per dollar.
const PER_DOLLAR: i64 = 1_000_000;

/// An amount of money in microdollars ($0.000001). Serialized as the integer number of microdollars.
///
/// ```
/// # use tollgate_types::Microdollars;
/// let cap = Microdollars::parse_dollars("cost", "50.00").unwrap();
/// assert_eq!(cap.micros(), 50_000_000);
/// assert_eq!(cap.to_dollars(), "50.00");
/// assert_eq!(Microdollars::from_micros(125).to_dollars(), "0.000125");
/// assert!(Microdollars::parse_dollars("cost", "0.0000001").is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Microdollars(i64);

impl Microdollars {
    /// Nothing.
    pub const ZERO: Self = Self(0);

    /// The largest amount accepted from users: one trillion dollars, far beyond any bill and far
    /// enough below `i64::MAX` that sums of many such amounts still fit.
    pub const MAX: Self = Self(1_000_000_000_000 * PER_DOLLAR);

    /// `micros` microdollars.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Whole dollars.
    pub const fn from_dollars(dollars: i64) -> Self {
        Self(dollars.saturating_mul(PER_DOLLAR))
    }

    /// The amount in microdollars.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// The sum, or `None` on overflow.
    pub const fn checked_add(self, other: Self) -> Option<Self> {
        match self.0.checked_add(other.0) {
            Some(sum) => Some(Self(sum)),
            None => None,
        }
    }

    /// The difference, or `None` on overflow.
    pub const fn checked_sub(self, other: Self) -> Option<Self> {
        match self.0.checked_sub(other.0) {
            Some(difference) => Some(Self(difference)),
            None => None,
        }
    }

    /// The sum, saturating at the bounds of `i64`.
    pub const fn saturating_add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }

    /// Whether the amount is below zero.
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// Parses decimal dollars exactly: `50`, `50.00`, `$0.000125`. At most six decimal places,
    /// never negative, at most [`Microdollars::MAX`]. Names `field` on failure.
    pub fn parse_dollars(field: &'static str, text: &str) -> Result<Self, ValidationError> {
        let trimmed = text.trim();
        let unsigned = trimmed.strip_prefix('$').unwrap_or(trimmed);
        if unsigned.starts_with('-') {
            return Err(ValidationError::new(field, "must not be negative"));
        }
        let help = "must be an amount in dollars such as 50, 50.00 or 0.000125";
        let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        if whole.is_empty() && fraction.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
            || (unsigned.contains('.') && fraction.is_empty())
        {
            return Err(ValidationError::new(field, help));
        }
        if fraction.len() > 6 {
            return Err(ValidationError::new(
                field,
                "has more than six decimal places (the smallest amount is 0.000001)",
            ));
        }
        let too_large = || ValidationError::new(field, format!("must be at most {}", Self::MAX.to_dollars()));
        // Only digits remain, so a failed parse can only mean a number too large for i64.
        let significant = whole.trim_start_matches('0');
        let whole_value: i64 = if significant.is_empty() { 0 } else { significant.parse().map_err(|_| too_large())? };
        let fraction_value: i64 = format!("{fraction:0<6}").parse().map_err(|_| ValidationError::new(field, help))?;
        let micros = whole_value.checked_mul(PER_DOLLAR).and_then(|micros| micros.checked_add(fraction_value));
        match micros {
            Some(micros) if micros <= Self::MAX.0 => Ok(Self(micros)),
            _ => Err(too_large()),
        }
    }

    /// Exact decimal dollars with at least two decimal places: `50.00`, `1.50`, `0.000125`, `-2.00`.
    pub fn to_dollars(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let per_dollar = PER_DOLLAR.unsigned_abs();
        let fraction = format!("{:06}", magnitude % per_dollar);
        let trimmed = fraction.trim_end_matches('0');
        let shown = if trimmed.len() < 2 { &fraction[..2] } else { trimmed };
        format!("{sign}{}.{shown}", magnitude / per_dollar)
    }
}

impl fmt::Display for Microdollars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", self.to_dollars())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_exact_decimals() {
        for (text, micros) in [
            ("50", 50_000_000),
            ("50.00", 50_000_000),
            ("$2.5", 2_500_000),
            ("0.000001", 1),
            (".5", 500_000),
            ("007.10", 7_100_000),
            ("0", 0),
            ("1000000000000", Microdollars::MAX.micros()),
        ] {
            assert_eq!(Microdollars::parse_dollars("cost", text).unwrap().micros(), micros, "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_exact_non_negative_amount() {
        for (text, reason) in [
            ("-1", "negative"),
            ("1.0000001", "six decimal places"),
            ("1e3", "amount in dollars"),
            ("1.", "amount in dollars"),
            ("", "amount in dollars"),
            (".", "amount in dollars"),
            ("1,000", "amount in dollars"),
            ("NaN", "amount in dollars"),
            ("1000000000000.000001", "at most"),
            ("99999999999999999999999", "at most"),
        ] {
            let error = Microdollars::parse_dollars("cost_per_month", text).unwrap_err();
            assert_eq!(error.field, "cost_per_month");
            assert!(error.reason.contains(reason), "{text}: {}", error.reason);
        }
    }

    #[test]
    fn formats_with_at_least_two_decimals() {
        assert_eq!(Microdollars::from_micros(50_000_000).to_dollars(), "50.00");
        assert_eq!(Microdollars::from_micros(1_500_000).to_dollars(), "1.50");
        assert_eq!(Microdollars::from_micros(1).to_dollars(), "0.000001");
        assert_eq!(Microdollars::from_micros(-2_000_000).to_dollars(), "-2.00");
        assert_eq!(Microdollars::from_micros(1_234_567).to_string(), "$1.234567");
    }

    proptest! {
        #[test]
        fn formatting_then_parsing_is_the_identity(micros in 0..=Microdollars::MAX.micros()) {
            let amount = Microdollars::from_micros(micros);
            prop_assert_eq!(Microdollars::parse_dollars("cost", &amount.to_dollars()).unwrap(), amount);
        }
    }
}
