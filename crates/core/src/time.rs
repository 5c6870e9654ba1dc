//! Timestamps are UTC with microsecond precision everywhere, so both backends sort and
//! compare them identically.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};

/// Truncates to microseconds, the precision PostgreSQL keeps.
pub fn normalize(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

pub fn now() -> DateTime<Utc> {
    normalize(Utc::now())
}

/// Fixed-width RFC 3339 (`2026-11-26T12:00:00.123456Z`): sorts lexicographically in time order.
pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn parse(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(s).map(|t| normalize(t.with_timezone(&Utc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_is_fixed_width_and_round_trips() {
        let t = parse("2026-01-02T03:04:05+02:00").unwrap();
        assert_eq!(format(t), "2026-01-02T01:04:05.000000Z");
        let u = parse("2026-01-02T01:04:05.1234567Z").unwrap();
        assert_eq!(format(u), "2026-01-02T01:04:05.123456Z");
        assert_eq!(parse(&format(u)).unwrap(), u);
    }
}
