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
/// Image octets per part.
const IMAGE_PART: usize = 4 << 20;
/// After this, the next responder that asks still gets the image it finds
/// (it follows the feed from the image's sequence number), and a new one
/// is built in the background for those after it.
const IMAGE_FRESH: std::time::Duration = std::time::Duration::from_secs(300);

/// The last status index image built, shared by the responders that start
/// after it: served while the feed still reaches on from it, rebuilt in
/// the background once older than [`IMAGE_FRESH`]; one build at a time. A
/// responder waits for a build only when there is no image the feed
/// reaches on from (the first, or one older than the retention).
#[derive(Debug, Default)]
pub(crate) struct ImageCache {
    last: std::sync::Mutex<Option<BuiltImage>>,
    building: std::sync::Mutex<()>,
}

/// An image, when it was built and the sequence number it reflects.
type BuiltImage = (std::time::Instant, u64, Arc<Vec<u8>>);

impl ImageCache {
    fn current(&self) -> Option<BuiltImage> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// An image of `store` the feed reaches on from: the one kept (a new
    /// one built in the background if it is old), or one built now.
    fn get(self: &Arc<Self>, store: &Arc<Store>) -> std::result::Result<(u64, Arc<Vec<u8>>), Stop> {
        if let Some((at, seq, image)) = self.current()
            && seq + 1 >= store.first_seq()
        {
            if at.elapsed() >= IMAGE_FRESH {
                self.refresh_in_background(store.clone());
            }
            return Ok((seq, image));
        }
        let _one = self
            .building
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Built by someone else while this waited?
        if let Some((_, seq, image)) = self.current()
            && seq + 1 >= store.first_seq()
        {
            return Ok((seq, image));
        }
        self.build(store)
    }

    /// Builds an image in the background unless one is being built.
    pub(crate) fn refresh_in_background(self: &Arc<Self>, store: Arc<Store>) {
        let cache = self.clone();
        let spawned = std::thread::Builder::new()
            .name("registry-image".into())
            .spawn(move || {
                let _one = match cache.building.try_lock() {
                    Ok(g) => g,
                    Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                    Err(std::sync::TryLockError::WouldBlock) => return,
                };
                if let Err(Stop::Failed(e)) = cache.build(&store) {
                    tracing::error!(error = %e, "building a status index image failed");
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "no thread to build a status index image");
        }
    }

    /// Builds an image from a snapshot of `store` and keeps it (the caller
    /// holds `building`).
    fn build(&self, store: &Store) -> std::result::Result<(u64, Arc<Vec<u8>>), Stop> {
        let started = std::time::Instant::now();
        let snap = store.snapshot()?;
        let index = shikko_status_index::StatusIndex::new();
        let n = snap.scan_statuses::<Stop>(STATUS_PART, |changes| {
            index.load(&changes);
            Ok(())
        })?;
        index.compact();
        index.set_seq(snap.seq());
        let image = Arc::new(index.write_image());
        tracing::info!(
            certificates = n,
            octets = image.len(),
            seq = snap.seq(),
            secs = started.elapsed().as_secs_f64(),
            "status index image built"
        );
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((std::time::Instant::now(), snap.seq(), image.clone()));
        Ok((snap.seq(), image))
    }
}

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

/// [`produce`] of `registry`'s store, its first part held back until
/// followers may see its seq (in a synchronous pair, once the standby
/// confirmed it): a snapshot never shows what a promoted standby could lack.
pub(crate) fn produce_visible(
    registry: Arc<crate::Registry>,
    content: SnapshotContent,
) -> Result<mpsc::Receiver<Result<SnapshotPart>>> {
    let mut parts = produce(registry.store().shared(), content, registry.images.clone())?;
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(async move {
        let mut first = true;
        while let Some(part) = parts.recv().await {
            if first && let Ok(p) = &part {
                first = false;
                if let Err(e) = registry.wait_visible(p.seq).await {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
            if tx.send(part).await.is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

/// The parts of a snapshot of `store` (what `content` says): the first
/// carries every municipality, the last says so.
pub(crate) fn produce(
    store: Arc<Store>,
    content: SnapshotContent,
    images: Arc<ImageCache>,
) -> Result<mpsc::Receiver<Result<SnapshotPart>>> {
    let (tx, rx) = mpsc::channel(2);
    std::thread::Builder::new()
        .name("registry-snapshot".into())
        .spawn(move || {
            let send = |part: SnapshotPart| tx.blocking_send(Ok(part)).map_err(|_| Stop::Gone);
            let run = || -> std::result::Result<u64, Stop> {
                if content == SnapshotContent::StatusImage {
                    let (seq, image) = images.get(&store)?;
                    let base = SnapshotPart {
                        store_id: store.store_id()?,
                        seq,
                        ..SnapshotPart::default()
                    };
                    let mut pieces = image.chunks(IMAGE_PART).peekable();
                    while let Some(piece) = pieces.next() {
                        send(SnapshotPart {
                            image: piece.to_vec(),
                            last: pieces.peek().is_none(),
                            ..base.clone()
                        })?;
                    }
                    if image.is_empty() {
                        send(SnapshotPart { last: true, ..base })?;
                    }
                    return Ok(image.len() as u64);
                }
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
                    SnapshotContent::StatusImage => 0,
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
