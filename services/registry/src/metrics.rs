//! The registry's metrics. Labels are bounded: event type and outcome only.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

use crate::Result;

#[derive(Clone)]
pub(crate) struct RegistryMetrics {
    pub(crate) events: IntCounterVec,
    pub(crate) batch_seconds: Histogram,
    pub(crate) last_seq: IntGauge,
    pub(crate) followers: IntGauge,
}

impl RegistryMetrics {
    pub(crate) fn register(r: &Registry) -> Result<Self> {
        let m = RegistryMetrics {
            events: IntCounterVec::new(
                Opts::new(
                    "shikko_registry_events_total",
                    "Events received, by event type and outcome (applied, duplicate, rejected, aborted).",
                ),
                &["type", "outcome"],
            )?,
            batch_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "shikko_registry_ingest_batch_seconds",
                    "Time to apply and durably write one ingest batch.",
                )
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16)?),
            )?,
            last_seq: IntGauge::new(
                "shikko_registry_last_seq",
                "Sequence number of the last accepted event.",
            )?,
            followers: IntGauge::new(
                "shikko_registry_feed_followers",
                "Open change-feed streams.",
            )?,
        };
        r.register(Box::new(m.events.clone()))?;
        r.register(Box::new(m.batch_seconds.clone()))?;
        r.register(Box::new(m.last_seq.clone()))?;
        r.register(Box::new(m.followers.clone()))?;
        Ok(m)
    }
}
