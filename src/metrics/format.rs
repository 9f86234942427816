//! The two exposition formats: OpenMetrics, which prometheus-client writes and Prometheus asks for
//! first, and the classic text format 0.0.4 for every other reader (`curl`, promtool, client
//! libraries' parsers).
//!
//! The classic format differs from what we write in three ways only: a counter's `# HELP` and
//! `# TYPE` lines name its samples (`x_total`) where OpenMetrics names the family (`x`), there is
//! no `# UNIT` line, and no `# EOF`. prometheus-client has no classic encoder (its issue #51), so
//! `to_text` renames those comment lines of our own output; samples, labels and escaping are
//! the same in both formats and pass through untouched. We register only counters, gauges and
//! histograms (no info, stateset or `_created` samples), which the classic format has too; a unit
//! test keeps it so.

use std::collections::HashSet;

use axum::http::{HeaderMap, header};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Text,
}

impl Format {
    /// OpenMetrics when the scraper accepts it (Prometheus does, first), else the classic format.
    pub fn negotiate(headers: &HeaderMap) -> Self {
        let accepts_openmetrics =
            headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| {
                v.split(',').any(|range| {
                    let mut parts = range.split(';').map(str::trim);
                    let essence = parts.next().unwrap_or_default();
                    let weight = |p: &str| p.strip_prefix("q=").or(p.strip_prefix("Q="))?.parse::<f32>().ok();
                    let refused = parts.any(|p| weight(p) == Some(0.0));
                    essence.eq_ignore_ascii_case("application/openmetrics-text") && !refused
                })
            });
        if accepts_openmetrics { Format::OpenMetrics } else { Format::Text }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The classic text format of an OpenMetrics exposition written by prometheus-client.
pub fn to_text(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 8 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let comment = ["# HELP ", "# TYPE "].into_iter().find_map(|k| Some((k, line.strip_prefix(k)?)));
        match comment {
            Some((keyword, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(keyword);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn accept(value: &str) -> Format {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        Format::negotiate(&headers)
    }

    #[test]
    fn openmetrics_goes_to_whoever_accepts_it_and_the_classic_format_to_everyone_else() {
        // Prometheus 3's default scrape Accept header.
        let prometheus = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
        assert_eq!(accept(prometheus), Format::OpenMetrics);
        assert_eq!(accept("application/OpenMetrics-Text; version=1.0.0"), Format::OpenMetrics);
        assert_eq!(accept("text/plain;version=0.0.4"), Format::Text);
        assert_eq!(accept("*/*"), Format::Text);
        assert_eq!(accept("application/openmetrics-text; q=0, text/plain"), Format::Text);
        assert_eq!(Format::negotiate(&HeaderMap::new()), Format::Text);
    }

    #[test]
    fn counters_are_named_by_their_samples_and_openmetrics_only_lines_go() {
        let openmetrics = "\
# HELP portcullis_http_requests HTTP requests.
# TYPE portcullis_http_requests counter
portcullis_http_requests_total{method=\"GET\",route=\"/metrics\",code=\"200\"} 3
# HELP portcullis_http_request_duration_seconds Latency.
# TYPE portcullis_http_request_duration_seconds histogram
# UNIT portcullis_http_request_duration_seconds seconds
portcullis_http_request_duration_seconds_sum 0.5
portcullis_http_request_duration_seconds_count 3
portcullis_http_request_duration_seconds_bucket{le=\"+Inf\"} 3
# HELP portcullis_counted_things Not a counter, though named like one.
# TYPE portcullis_counted_things gauge
portcullis_counted_things 2
# EOF
";
        assert_eq!(
            to_text(openmetrics),
            "\
# HELP portcullis_http_requests_total HTTP requests.
# TYPE portcullis_http_requests_total counter
portcullis_http_requests_total{method=\"GET\",route=\"/metrics\",code=\"200\"} 3
# HELP portcullis_http_request_duration_seconds Latency.
# TYPE portcullis_http_request_duration_seconds histogram
portcullis_http_request_duration_seconds_sum 0.5
portcullis_http_request_duration_seconds_count 3
portcullis_http_request_duration_seconds_bucket{le=\"+Inf\"} 3
# HELP portcullis_counted_things Not a counter, though named like one.
# TYPE portcullis_counted_things gauge
portcullis_counted_things 2
"
        );
    }

    /// What `to_text` relies on: only the types both formats have, help without the characters
    /// the two formats escape differently, and no `_created` samples.
    #[test]
    fn the_registry_writes_only_what_both_formats_share() {
        let (_d, _i, metrics) = super::super::tests::metrics();
        let body = metrics.encode(Format::OpenMetrics).unwrap();
        for line in body.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let kind = rest.rsplit(' ').next().unwrap();
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            }
            if let Some(help) = line.strip_prefix("# HELP ") {
                assert!(!help.contains(['\\', '"']), "{line}");
            }
            assert!(!line.contains("_created"), "{line}");
        }
        assert!(body.ends_with("# EOF\n"));
        let text = metrics.encode(Format::Text).unwrap();
        assert!(text.contains("# TYPE portcullis_signins_total counter\n"), "{text}");
        assert!(text.contains("# TYPE portcullis_sessions_revoked_total counter\n"), "{text}");
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
    }
}
