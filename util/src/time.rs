//! Wall-clock time and human durations.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// A duration as people write it: `30m`, `1h30m`, `10s`, `500ms`, `2d`, `0m` (humantime).
/// A bare number means minutes, as OpenClaw reads `heartbeat.every`.
pub fn parse_interval(s: &str) -> Option<Duration> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .ok()?
            .checked_mul(60)
            .map(Duration::from_secs);
    }
    humantime::parse_duration(s).ok()
}

/// Seconds from an untrusted number (a `Retry-After`, a JSON `retry_after`): NaN and
/// negatives are zero, infinities and values past `Duration::MAX` saturate. Never panics,
/// unlike `Duration::from_secs_f64`.
pub fn saturating_secs(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

/// A duration as `parse_interval` reads it back (`1h 30m`, `500ms`).
pub fn format_interval(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// RFC 3339 in UTC with millisecond precision (`2026-12-03T08:00:00.123Z`).
pub fn rfc3339_ms(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or_default());
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_interval("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_interval("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_interval("0m"), Some(Duration::ZERO));
        assert_eq!(parse_interval("15"), Some(Duration::from_secs(900)));
        assert_eq!(parse_interval("soon"), None);
        assert_eq!(parse_interval(""), None);
        assert_eq!(parse_interval("99999999999999999999"), None);
        assert_eq!(format_interval(Duration::from_secs(5400)), "1h 30m");
        assert_eq!(rfc3339_ms(1_000), "1970-01-01T00:00:01.000Z");
        assert_eq!(saturating_secs(1.5), Duration::from_millis(1500));
        assert_eq!(saturating_secs(f64::NAN), Duration::ZERO);
        assert_eq!(saturating_secs(-3.0), Duration::ZERO);
        assert_eq!(saturating_secs(f64::INFINITY), Duration::MAX);
        assert_eq!(saturating_secs(1e20), Duration::MAX);
    }
}
