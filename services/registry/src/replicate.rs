//! The link of a synchronous pair (see [`crate::pair`]): the primary's side
//! of `Registry.Replicate` (seed, then every stored record, reading the
//! standby's confirmations) and the standby's side (apply, sync, confirm).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use shikko_proto::v1 as pb;
use shikko_proto::v1::registry_client::RegistryClient;
use shikko_runtime::ClientTls;
use shikko_store::{Continuation, Replicated, Role, SEED_FAMILIES};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use crate::Registry;
use crate::error::{Error, Result};

/// Bytes of one seed page or record batch (well under the message limit).
const MESSAGE_BYTES: usize = 8 << 20;
/// Records of one batch.
const BATCH_RECORDS: usize = 5_000;

type Sender = mpsc::Sender<std::result::Result<pb::ReplicateMessage, Status>>;

/// The primary's side: checks the standby's first message, then streams.
pub(crate) async fn serve_link(
    registry: Arc<Registry>,
    mut acks: Streaming<pb::ReplicateAck>,
) -> std::result::Result<mpsc::Receiver<std::result::Result<pb::ReplicateMessage, Status>>, Status>
{
    if registry.pair.is_standby() {
        return Err(Error::Standby.into());
    }
    let hello = acks
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("the standby sent no first message"))?;
    let store = registry.store().clone();
    let (store_id, epoch, durable) = (hello.store_id.clone(), hello.epoch, hello.durable_seq);
    let (continuation, mine) = tokio::task::spawn_blocking(move || {
        Ok::<_, shikko_store::Error>((
            store.continuation(&store_id, epoch, durable)?,
            store.epoch()?,
        ))
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
    .map_err(Error::from)?;
    let from = match continuation {
        Continuation::Continue => durable + 1,
        Continuation::Seed => 0,
        Continuation::Superseded { epoch } => {
            tracing::error!(
                mine,
                standby_epoch = epoch,
                "a standby has seen a later epoch: this primary was replaced and must be stopped"
            );
            return Err(Status::failed_precondition(format!(
                "this registry is the primary of epoch {mine}, and the standby has seen epoch {epoch}: this primary was replaced"
            )));
        }
        Continuation::Ahead { primary_last } => {
            tracing::error!(
                primary_last,
                durable,
                "the standby holds more than this primary: this primary lost records"
            );
            return Err(Status::failed_precondition(format!(
                "the standby holds records up to {durable}, this primary only up to {primary_last}: this primary lost acknowledged records (restored from an older copy?). Keep the standby: promote it"
            )));
        }
        Continuation::Diverged { common } => {
            tracing::warn!(
                common,
                durable,
                "refused a standby whose history went past this primary's"
            );
            return Err(Status::failed_precondition(format!(
                "the standby's history goes to {durable}, past {common}, where its history and this primary's part: its later records were never acknowledged. Move its data directory aside and start it empty (it is then seeded)"
            )));
        }
    };
    let link = registry.pair.new_link(if from == 0 { 0 } else { durable });
    tracing::info!(
        link,
        from,
        seed = from == 0,
        "a standby linked to this primary"
    );
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(send(registry.clone(), link, from, mine, tx));
    tokio::spawn(async move {
        while let Ok(Some(ack)) = acks.message().await {
            if !registry.pair.is_current(link) {
                break;
            }
            registry
                .pair
                .confirmed(link, ack.durable_seq, &registry.head);
        }
        registry.pair.link_ended(link);
        tracing::warn!(link, "the standby's link ended");
    });
    Ok(rx)
}

/// Seeds (when `from` is 0) then sends every record from `from` on as it is stored.
async fn send(registry: Arc<Registry>, link: u64, from: u64, epoch: u64, tx: Sender) {
    let mut closing = registry.closing();
    let mut written = registry.pair.written.subscribe();
    let mut next = from;
    if from == 0 {
        match seed(&registry, epoch, &tx).await {
            Ok(seq) => next = seq + 1,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
    loop {
        if !registry.pair.is_current(link) || *closing.borrow_and_update() {
            return;
        }
        written.borrow_and_update();
        let store = registry.store().clone();
        let read = tokio::task::spawn_blocking(move || {
            let records = store.replication_records(next, BATCH_RECORDS, MESSAGE_BYTES)?;
            Ok::<_, shikko_store::Error>((records, store.first_seq()))
        })
        .await;
        let (records, first_seq) = match read {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let _ = tx.send(Err(Error::from(e).into())).await;
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(Error::Internal(e.to_string()).into())).await;
                return;
            }
        };
        if records.is_empty() {
            if next < first_seq {
                // Pruned under the link: the standby reconnects and is seeded.
                let _ = tx
                    .send(Err(Status::failed_precondition(
                        "the records the standby needs were pruned: reconnect to be seeded",
                    )))
                    .await;
                return;
            }
            tokio::select! {
                changed = written.changed() => if changed.is_err() { return },
                _ = closing.changed() => return,
                () = tx.closed() => return,
                () = tokio::time::sleep(HEARTBEAT) => {
                    // Nothing new: an empty batch says this primary is alive.
                    let beat = pb::ReplicateMessage {
                        epoch,
                        part: Some(pb::replicate_message::Part::Records(pb::ReplicatedRecords::default())),
                    };
                    if tx.send(Ok(beat)).await.is_err() {
                        return;
                    }
                }
            }
            continue;
        }
        next = records.last().map_or(next, |r| r.seq + 1);
        let message = pb::ReplicateMessage {
            epoch,
            part: Some(pb::replicate_message::Part::Records(
                pb::ReplicatedRecords {
                    records: records
                        .into_iter()
                        .map(|r| pb::ReplicatedRecord {
                            seq: r.seq,
                            event: r.event,
                            record: r.record,
                            writes: r.writes,
                        })
                        .collect(),
                },
            )),
        };
        tokio::select! {
            sent = tx.send(Ok(message)) => if sent.is_err() { return },
            _ = closing.changed() => return,
        }
    }
}

/// Sends a seed of the store's families from one snapshot; returns its seq.
async fn seed(
    registry: &Arc<Registry>,
    epoch: u64,
    tx: &Sender,
) -> std::result::Result<u64, Status> {
    let store = registry.store().shared();
    let tx = tx.clone();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("shikko-seed".into())
        .spawn(move || {
            let result = (|| -> std::result::Result<u64, Status> {
                let snap = store.snapshot().map_err(Error::from)?;
                for family in SEED_FAMILIES {
                    let mut after: Option<Vec<u8>> = None;
                    loop {
                        let (page, next) = snap
                            .raw_page(family, after.as_deref(), MESSAGE_BYTES)
                            .map_err(Error::from)?;
                        if !page.is_empty() {
                            let (keys, values) = page.into_iter().unzip();
                            let m = pb::ReplicateMessage {
                                epoch,
                                part: Some(pb::replicate_message::Part::Seed(pb::SeedPage {
                                    family: family.to_string(),
                                    keys,
                                    values,
                                })),
                            };
                            if tx.blocking_send(Ok(m)).is_err() {
                                return Err(Status::cancelled("the standby went away"));
                            }
                        }
                        match next {
                            Some(k) => after = Some(k),
                            None => break,
                        }
                    }
                }
                let (meta_keys, meta_values) =
                    snap.seed_meta().map_err(Error::from)?.into_iter().unzip();
                let seq = snap.seq();
                let m = pb::ReplicateMessage {
                    epoch,
                    part: Some(pb::replicate_message::Part::SeedEnd(pb::SeedEnd {
                        seq,
                        meta_keys,
                        meta_values,
                    })),
                };
                if tx.blocking_send(Ok(m)).is_err() {
                    return Err(Status::cancelled("the standby went away"));
                }
                Ok(seq)
            })();
            let _ = done_tx.send(result);
        })
        .map_err(|e| Status::internal(format!("seed thread: {e}")))?;
    let seq = done_rx
        .await
        .map_err(|_| Status::internal("the seed thread ended"))??;
    tracing::info!(seq, "seeded a standby");
    Ok(seq)
}

impl Registry {
    /// On a standby: keeps this registry a copy of `primary`'s (seeded
    /// when new or behind its retention, then record by record, each
    /// confirmed once durable) until promoted or `shutdown`, reconnecting
    /// with backoff. `tls`: the standby identity (`None`: plaintext, loopback).
    pub async fn follow_primary(
        self: Arc<Self>,
        primary: String,
        tls: Option<Arc<ClientTls>>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        run_standby(self, primary, tls, shutdown).await;
    }
}

/// [`Registry::follow_primary`].
async fn run_standby(
    registry: Arc<Registry>,
    primary: String,
    tls: Option<Arc<ClientTls>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut promoted = registry.pair.promoted.subscribe();
    let mut backoff = Duration::from_millis(200);
    loop {
        if *promoted.borrow_and_update() {
            return;
        }
        tokio::select! {
            r = link_once(&registry, &primary, tls.as_ref()) => {
                registry.pair.metrics.connected.set(0);
                match r {
                    Ok(()) => tracing::warn!(primary, "the primary ended the link; reconnecting"),
                    Err(e) => tracing::warn!(primary, error = %e, "the link to the primary failed; reconnecting"),
                }
            }
            _ = promoted.changed() => return,
            () = &mut shutdown => return,
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = promoted.changed() => return,
            () = &mut shutdown => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn link_once(
    registry: &Arc<Registry>,
    primary: &str,
    tls: Option<&Arc<ClientTls>>,
) -> Result<()> {
    let channel = shikko_access::connect(primary, tls, |ep| {
        ep.connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
    })
    .await
    .map_err(|e| Error::Unavailable(e.to_string()))?;
    let mut client = RegistryClient::new(channel)
        .max_decoding_message_size(crate::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(crate::MAX_MESSAGE_BYTES);
    let store = registry.store().clone();
    let (role, store_id, epoch, last) = tokio::task::spawn_blocking(move || {
        Ok::<_, shikko_store::Error>((
            store.replication_role()?,
            store.store_id()?,
            store.epoch()?,
            store.last_seq(),
        ))
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))??;
    let hello = pb::ReplicateAck {
        // A store being seeded is no copy of anything yet.
        store_id: if role == Role::Seeding {
            String::new()
        } else {
            store_id
        },
        epoch,
        durable_seq: if role == Role::Seeding { 0 } else { last },
    };
    let (ack_tx, ack_rx) = mpsc::channel(16);
    ack_tx
        .send(hello)
        .await
        .map_err(|_| Error::Internal("ack channel".into()))?;
    let mut stream = client
        .replicate(tokio_stream::wrappers::ReceiverStream::new(ack_rx))
        .await
        .map_err(|s| Error::Unavailable(format!("Replicate: {}", s.message())))?
        .into_inner();
    registry.pair.metrics.connected.set(1);
    registry.pair.heard_from_primary();
    tracing::info!(primary, from = last + 1, "linked to the primary");
    let mut seeding = false;
    while let Some(message) = stream.next().await {
        let message =
            message.map_err(|s| Error::Unavailable(format!("{:?}: {}", s.code(), s.message())))?;
        registry.pair.heard_from_primary();
        let store = registry.store().clone();
        let durable = match message.part {
            Some(pb::replicate_message::Part::Seed(page)) => {
                let begin = !seeding;
                seeding = true;
                tokio::task::spawn_blocking(move || {
                    if begin {
                        tracing::info!("seeding this standby from the primary");
                        store.begin_seed()?;
                    }
                    let entries: Vec<_> = page.keys.into_iter().zip(page.values).collect();
                    store.seed(&page.family, &entries)
                })
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
                None
            }
            Some(pb::replicate_message::Part::SeedEnd(end)) => {
                let begin = !seeding;
                seeding = false;
                let seq = tokio::task::spawn_blocking(move || {
                    if begin {
                        store.begin_seed()?;
                    }
                    let meta: Vec<_> = end.meta_keys.into_iter().zip(end.meta_values).collect();
                    store.end_seed(end.seq, &meta)
                })
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
                tracing::info!(seq, "this standby is seeded");
                Some(seq)
            }
            Some(pb::replicate_message::Part::Records(batch)) => {
                let records: Vec<Replicated> = batch
                    .records
                    .into_iter()
                    .map(|r| Replicated {
                        seq: r.seq,
                        event: r.event,
                        record: r.record,
                        writes: r.writes,
                    })
                    .collect();
                let seq = tokio::task::spawn_blocking(move || store.apply_standby(&records))
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))??;
                Some(seq)
            }
            None => None,
        };
        if let Some(seq) = durable {
            registry
                .metrics
                .last_seq
                .set(i64::try_from(seq).unwrap_or(i64::MAX));
            if ack_tx
                .send(pb::ReplicateAck {
                    store_id: String::new(),
                    epoch: message.epoch,
                    durable_seq: seq,
                })
                .await
                .is_err()
            {
                break;
            }
        }
    }
    Ok(())
}

/// The primary stays silent no longer than this on an idle link (the
/// standby's promotion check tells a live primary from a dead one by it).
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);
/// A standby that heard from its primary more recently refuses promotion
/// unless forced.
const ALIVE_WITHIN: Duration = Duration::from_secs(5);

impl Registry {
    /// On a primary: acknowledge ingests on this registry's own disk until
    /// a standby has caught up, then wait for it again (its standby's
    /// machine is lost, and revocations must go on being accepted).
    /// Returns the epoch and the last sequence number. Refused on a standby.
    pub async fn acknowledge_alone(&self) -> Result<(u64, u64)> {
        if self.pair.is_standby() {
            return Err(Error::Refused(
                "this registry is a standby: it acknowledges nothing".into(),
            ));
        }
        let was = self.pair.alone_until_caught_up();
        let last = self.store().last_seq();
        // Everything stored may be shown: it is acknowledged from now on.
        self.head.send_if_modified(|h| {
            let newer = last > *h;
            if newer {
                *h = last;
            }
            newer
        });
        tracing::warn!(
            last_seq = last,
            was_waiting = was,
            "acknowledging on this registry's disk alone until a standby has caught up"
        );
        let store = self.store().clone();
        let epoch = tokio::task::spawn_blocking(move || store.epoch())
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        Ok((epoch, last))
    }

    /// Makes this standby the primary of a new epoch (see
    /// [`crate::pair`]); returns the epoch and the last sequence number.
    /// A primary answers with its own. Refused while the old primary was
    /// heard from within the last 5 s, unless `force`.
    pub async fn promote(&self, alone: bool, force: bool) -> Result<(u64, u64)> {
        let store = self.store().clone();
        if !self.pair.is_standby() {
            let epoch = tokio::task::spawn_blocking(move || store.epoch())
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
            return Ok((epoch, self.store().last_seq()));
        }
        if !force
            && let Some(silent) = self.pair.primary_silent_for()
            && silent < ALIVE_WITHIN
        {
            return Err(Error::Refused(format!(
                "the primary sent to this standby {:.1} s ago: it is alive. Stop it first (so that it can acknowledge nothing more), or promote with force once it cannot",
                silent.as_secs_f64()
            )));
        }
        let epoch = tokio::task::spawn_blocking(move || store.promote())
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::Refused(e.to_string()))?;
        let last = self.store().last_seq();
        self.pair.written.send_replace(last);
        // Everything this store holds was stored by the old primary first:
        // no follower of it saw more, so all of it may be seen.
        self.head.send_replace(last);
        self.pair.became_primary(epoch, alone);
        tracing::warn!(
            epoch,
            last_seq = last,
            alone,
            "promoted: this registry is the primary"
        );
        Ok((epoch, last))
    }
}
