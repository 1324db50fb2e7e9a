//! Human durations for flags and configuration: `250ms`, `90s`, `15m`, `1h`, `30d`, `2w`.

use std::time::Duration;

use crate::ValidationError;

/// Parses a human duration (`<number><unit>`, unit one of `ms s m h d w`), naming `field` on failure.
///
/// ```
/// # use tollgate_types::parse_duration;
/// assert_eq!(parse_duration("grace", "90s").unwrap().as_secs(), 90);
/// assert_eq!(parse_duration("grace", "30d").unwrap().as_secs(), 30 * 86_400);
/// assert_eq!(parse_duration("bound", "250ms").unwrap().as_millis(), 250);
/// assert!(parse_duration("grace", "soon").is_err());
/// ```
pub fn parse_duration(field: &'static str, text: &str) -> Result<Duration, ValidationError> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    // A hundred years is far beyond any token lifetime; refuse larger values instead of overflowing.
    const MAX_SECONDS: u64 = 100 * 366 * 86_400;
    let help = "must be a duration such as 250ms, 90s, 15m, 1h, 30d or 2w";
    if digits.is_empty() {
        return Err(ValidationError::new(field, help));
    }
    let amount: u64 = digits.parse().map_err(|_| ValidationError::new(field, "is too large"))?;
    if unit == "ms" {
        return match Duration::from_millis(amount) {
            millis if millis.as_secs() <= MAX_SECONDS => Ok(millis),
            _ => Err(ValidationError::new(field, "is too large (at most 100 years)")),
        };
    }
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(ValidationError::new(field, help)),
    };
    match amount.checked_mul(unit_seconds) {
        Some(seconds) if seconds <= MAX_SECONDS => Ok(Duration::from_secs(seconds)),
        _ => Err(ValidationError::new(field, "is too large (at most 100 years)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit_and_refuses_nonsense() {
        for (text, seconds) in [("0s", 0), ("90s", 90), ("15m", 900), ("1h", 3600), ("2w", 1_209_600)] {
            assert_eq!(parse_duration("d", text).unwrap().as_secs(), seconds, "{text}");
        }
        assert_eq!(parse_duration("d", "1500ms").unwrap(), Duration::from_millis(1_500));
        for bad in ["", "h", "1", "1y", "5mss", "ms", "-1h", "1.5h", "99999999999999999999d", "36600000d"] {
            assert!(parse_duration("d", bad).is_err(), "{bad}");
        }
    }
}
