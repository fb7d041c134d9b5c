//! Snapshots of the registry's state for followers that start empty or
//! find the feed pruned below their position: one RocksDB snapshot, read on
//! a thread of its own and handed over a part at a time through a channel
//! two parts deep, so a follower that reads slowly holds back only that
//! thread (the Snapshot method's limits bound how many there are).

use std::sync::Arc;

use shikko_follow::{SnapshotContent, SnapshotPart};
use shikko_store::Store;
use tokio::sync::mpsc;

use crate::error::{Error, Result};

/// Statuses per part (about 40 octets each on the wire).
const STATUS_PART: usize = 10_000;
/// Writes per part (a holder or a DER can be kilobytes).
const WRITES_PART: usize = 1_000;

enum Stop {
    /// The follower went away.
    Gone,
    Failed(Error),
}

impl From<shikko_store::Error> for Stop {
    fn from(e: shikko_store::Error) -> Stop {
        Stop::Failed(Error::Store(e))
    }
}

/// The parts of a snapshot of `store` (what `content` says): the first
/// carries every municipality, the last says so.
pub(crate) fn produce(
    store: Arc<Store>,
    content: SnapshotContent,
) -> Result<mpsc::Receiver<Result<SnapshotPart>>> {
    let (tx, rx) = mpsc::channel(2);
    std::thread::Builder::new()
        .name("registry-snapshot".into())
        .spawn(move || {
            let send = |part: SnapshotPart| tx.blocking_send(Ok(part)).map_err(|_| Stop::Gone);
            let run = || -> std::result::Result<u64, Stop> {
                let snap = store.snapshot()?;
                let base = SnapshotPart {
                    store_id: store.store_id()?,
                    seq: snap.seq(),
                    ..SnapshotPart::default()
                };
                send(SnapshotPart {
                    municipalities: snap.municipalities()?,
                    ..base.clone()
                })?;
                let n = match content {
                    SnapshotContent::Status => snap.scan_statuses(STATUS_PART, |changes| {
                        send(SnapshotPart {
                            changes,
                            ..base.clone()
                        })
                    })?,
                    SnapshotContent::Listed => snap.scan_listed(STATUS_PART, |changes| {
                        send(SnapshotPart {
                            changes,
                            ..base.clone()
                        })
                    })?,
                    SnapshotContent::Replication => snap.scan_writes(WRITES_PART, |writes| {
                        send(SnapshotPart {
                            writes,
                            ..base.clone()
                        })
                    })?,
                };
                send(SnapshotPart { last: true, ..base })?;
                Ok(n)
            };
            let started = std::time::Instant::now();
            match run() {
                Ok(entries) => tracing::info!(
                    ?content,
                    entries,
                    secs = started.elapsed().as_secs_f64(),
                    "snapshot sent"
                ),
                Err(Stop::Gone) => tracing::info!(?content, "snapshot abandoned by the follower"),
                Err(Stop::Failed(e)) => {
                    tracing::error!(error = %e, "snapshot failed");
                    let _ = tx.blocking_send(Err(e));
                }
            }
        })
        .map_err(|e| Error::Internal(format!("a snapshot thread: {e}")))?;
    Ok(rx)
}
