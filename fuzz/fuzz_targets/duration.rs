//! Fuzzes human duration parsing (`parse_duration`: `250ms`, `90s`, `15m`, `1h`, `30d`, `2w`).
//!
//! Properties: no panic; a parsed duration is at most 100 years and shown again in milliseconds (or
//! whole seconds) parses back to the same duration.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_types::parse_duration;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(duration) = parse_duration("fuzz", text) else { return };
    assert!(duration.as_secs() <= 100 * 366 * 86_400);
    assert_eq!(duration.subsec_nanos() % 1_000_000, 0, "durations are whole milliseconds");
    assert_eq!(parse_duration("fuzz", &format!("{}ms", duration.as_millis())), Ok(duration));
    if duration.subsec_millis() == 0 {
        assert_eq!(parse_duration("fuzz", &format!("{}s", duration.as_secs())), Ok(duration));
    }
});
