//! How certkeep writes a point in time: RFC 3339 in UTC, one function for
//! every output (tables, JSON, alerts, the status page).

use time::OffsetDateTime;

/// RFC 3339, e.g. `2026-01-02T03:04:05Z`; the Unix time if it cannot be written so.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_utc_rfc3339() {
        let t = time::macros::datetime!(2026-01-02 03:04:05 UTC);
        assert_eq!(super::rfc3339(t), "2026-01-02T03:04:05Z");
    }
}
