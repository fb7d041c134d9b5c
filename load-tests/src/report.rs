//! Latency histograms (HDR, microseconds) and the summary table.

use std::time::Duration;

use hdrhistogram::Histogram;

/// One scenario's result: a latency histogram and what it counted.
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) latency: Histogram<u64>,
    pub(crate) elapsed: Duration,
    pub(crate) errors: u64,
    pub(crate) note: String,
}

impl Row {
    pub(crate) fn new(name: impl Into<String>) -> Row {
        Row {
            name: name.into(),
            // 1 µs to an hour (a national-scale load), 3 significant digits.
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid")),
            elapsed: Duration::ZERO,
            errors: 0,
            note: String::new(),
        }
    }

    /// A row of one measurement that took `took`.
    pub(crate) fn once(name: impl Into<String>, took: Duration) -> Row {
        let mut row = Row::new(name);
        row.record(took);
        row.elapsed = took;
        row
    }

    /// Records one latency.
    pub(crate) fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        self.latency.saturating_record(us);
    }
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// The table, one row per scenario.
pub(crate) fn print(rows: &[Row]) {
    println!(
        "{:<34} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8} {:>7}  note",
        "scenario", "count", "per s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors"
    );
    for r in rows {
        let h = &r.latency;
        let count = h.len();
        let rate = count as f64 / r.elapsed.as_secs_f64().max(1e-9);
        println!(
            "{:<34} {:>9} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>8.2} {:>7}  {}",
            r.name,
            count,
            rate,
            ms(h, 0.50),
            ms(h, 0.90),
            ms(h, 0.99),
            ms(h, 0.999),
            h.max() as f64 / 1000.0,
            r.errors,
            r.note
        );
    }
}
