//! The process's Prometheus registry and typed registration helpers.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// A metric could not be registered or the registry could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// Invalid name, help or label names, or a metric with the same name
    /// (and different help or labels) is already registered.
    #[error("cannot register metric `{name}`: {source}")]
    Register {
        /// The metric's name.
        name: String,
        /// What prometheus found wrong.
        source: prometheus::Error,
    },
    /// The registry's contents could not be encoded in the text format.
    #[error("cannot encode metrics: {0}")]
    Encode(#[source] prometheus::Error),
}

/// The metrics of one process: a [`prometheus::Registry`] plus helpers that
/// create and register typed metrics in one step.
///
/// Cloning is cheap and clones share the registry. A new `Metrics` already
/// holds two process metrics:
/// - `shikko_build_info{version="..."}`, a gauge set to 1;
/// - `shikko_start_time_seconds`, the Unix time the `Metrics` was created.
///
/// # Naming and labels
///
/// Names are `shikko_<role>_<what>_<unit>`, counters end in `_total`,
/// durations are histograms in seconds (`_seconds`), sizes in bytes.
///
/// **Labels must be bounded.** A label value comes from a small fixed set
/// known in the code: an issuer id (`sign`, `auth`, `phone-sign`,
/// `phone-auth`), a method, an outcome, a revocation reason, a CRL partition
/// count class. Never put a certificate serial number, a holder id, an
/// operator's free text, a request id or any of the 4 information (name,
/// date of birth, sex, address) in a label: each distinct value creates a
/// new time series, and labels are exported to systems that must not see
/// personal data.
///
/// ```
/// use shikko_runtime::telemetry::Metrics;
/// let metrics = Metrics::new("0.1.0").unwrap();
/// let answers = metrics
///     .register_int_counter_vec(
///         "shikko_ocsp_responses_total",
///         "OCSP responses sent, by issuer and certificate status.",
///         &["issuer", "status"],
///     )
///     .unwrap();
/// answers.with_label_values(&["auth", "good"]).inc();
/// let text = metrics.encode_text().unwrap();
/// assert!(text.contains(r#"shikko_ocsp_responses_total{issuer="auth",status="good"} 1"#));
/// ```
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// A fresh registry holding the process metrics; `version` is the
    /// build's version, usually the binary's `env!("CARGO_PKG_VERSION")`.
    pub fn new(version: &str) -> Result<Self, MetricsError> {
        let metrics = Metrics {
            registry: Registry::new(),
        };
        let build_info = metrics.register_int_gauge_vec(
            "shikko_build_info",
            "Build information; the value is always 1.",
            &["version"],
        )?;
        build_info.with_label_values(&[version]).set(1);

        let start_time = metrics.register_gauge(
            "shikko_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
        )?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        start_time.set(now);
        Ok(metrics)
    }

    /// The underlying registry, to register collectors built elsewhere or to
    /// gather families directly.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Registers any collector (for metrics the typed helpers do not cover).
    /// `name` is used only in the error.
    pub fn register<C>(&self, name: &str, collector: C) -> Result<C, MetricsError>
    where
        C: Collector + Clone + 'static,
    {
        self.registry
            .register(Box::new(collector.clone()))
            .map_err(|source| MetricsError::Register {
                name: name.to_owned(),
                source,
            })?;
        Ok(collector)
    }

    /// Registers an integer counter without labels.
    pub fn register_int_counter(&self, name: &str, help: &str) -> Result<IntCounter, MetricsError> {
        let counter = IntCounter::with_opts(Opts::new(name, help)).map_err(wrap(name))?;
        self.register(name, counter)
    }

    /// Registers an integer counter with the given (bounded) label names.
    pub fn register_int_counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, MetricsError> {
        let counter = IntCounterVec::new(Opts::new(name, help), labels).map_err(wrap(name))?;
        self.register(name, counter)
    }

    /// Registers an integer gauge without labels.
    pub fn register_int_gauge(&self, name: &str, help: &str) -> Result<IntGauge, MetricsError> {
        let gauge = IntGauge::with_opts(Opts::new(name, help)).map_err(wrap(name))?;
        self.register(name, gauge)
    }

    /// Registers an integer gauge with the given (bounded) label names.
    pub fn register_int_gauge_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntGaugeVec, MetricsError> {
        let gauge = IntGaugeVec::new(Opts::new(name, help), labels).map_err(wrap(name))?;
        self.register(name, gauge)
    }

    /// Registers a floating-point gauge without labels.
    pub fn register_gauge(&self, name: &str, help: &str) -> Result<Gauge, MetricsError> {
        let gauge = Gauge::with_opts(Opts::new(name, help)).map_err(wrap(name))?;
        self.register(name, gauge)
    }

    /// Registers a histogram without labels. `buckets` are upper bounds in
    /// increasing order; empty means [`prometheus::DEFAULT_BUCKETS`]
    /// (5 ms to 10 s, suited to request durations in seconds).
    pub fn register_histogram(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
    ) -> Result<Histogram, MetricsError> {
        let histogram =
            Histogram::with_opts(histogram_opts(name, help, buckets)).map_err(wrap(name))?;
        self.register(name, histogram)
    }

    /// Registers a histogram with the given (bounded) label names; `buckets`
    /// as for [`Self::register_histogram`].
    pub fn register_histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> Result<HistogramVec, MetricsError> {
        let histogram =
            HistogramVec::new(histogram_opts(name, help, buckets), labels).map_err(wrap(name))?;
        self.register(name, histogram)
    }

    /// Everything registered, in the Prometheus text exposition format 0.0.4
    /// (content type [`prometheus::TEXT_FORMAT`]).
    pub fn encode_text(&self) -> Result<String, MetricsError> {
        let families = self.registry.gather();
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut buf)
            .map_err(MetricsError::Encode)?;
        // The text encoder writes only UTF-8 (names, labels and help are &str).
        String::from_utf8(buf)
            .map_err(|e| MetricsError::Encode(prometheus::Error::Msg(e.to_string())))
    }
}

fn histogram_opts(name: &str, help: &str, buckets: &[f64]) -> HistogramOpts {
    let opts = HistogramOpts::new(name, help);
    if buckets.is_empty() {
        opts
    } else {
        opts.buckets(buckets.to_vec())
    }
}

fn wrap(name: &str) -> impl FnOnce(prometheus::Error) -> MetricsError + '_ {
    move |source| MetricsError::Register {
        name: name.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_metrics_are_present() {
        let metrics = Metrics::new("1.2.3").unwrap();
        let text = metrics.encode_text().unwrap();
        assert!(
            text.contains(r#"shikko_build_info{version="1.2.3"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("# TYPE shikko_start_time_seconds gauge"),
            "{text}"
        );
    }

    #[test]
    fn duplicate_registration_names_the_metric() {
        let metrics = Metrics::new("0").unwrap();
        metrics
            .register_int_counter("shikko_test_total", "A test counter.")
            .unwrap();
        let err = metrics
            .register_int_counter("shikko_test_total", "A test counter.")
            .unwrap_err();
        assert!(err.to_string().contains("`shikko_test_total`"), "{err}");
    }

    #[test]
    fn invalid_name_is_an_error() {
        let metrics = Metrics::new("0").unwrap();
        let err = metrics
            .register_int_gauge("shikko-bad-name", "Dashes are not allowed.")
            .unwrap_err();
        assert!(matches!(err, MetricsError::Register { .. }), "{err}");
    }

    #[test]
    fn histogram_uses_given_buckets() {
        let metrics = Metrics::new("0").unwrap();
        let h = metrics
            .register_histogram_vec(
                "shikko_test_duration_seconds",
                "Test durations.",
                &["issuer"],
                &[0.1, 1.0],
            )
            .unwrap();
        h.with_label_values(&["sign"]).observe(0.5);
        let text = metrics.encode_text().unwrap();
        assert!(
            text.contains(r#"shikko_test_duration_seconds_bucket{issuer="sign",le="1"} 1"#),
            "{text}"
        );
        assert!(!text.contains(r#"le="0.005""#), "{text}");
    }
}
