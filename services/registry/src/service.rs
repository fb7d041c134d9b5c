//! The `shikko.v1.Registry` gRPC service over the store.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use shikko_core::Event;
use shikko_proto::v1 as pb;
use shikko_proto::v1::registry_server::{Registry as RegistryApi, RegistryServer};
use shikko_store::{IngestMode, Outcome, RegistryStore};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

use crate::error::{Error, Result};
use crate::feed::FeedCursor;
use crate::metrics::RegistryMetrics;
use shikko_follow::{Content, FeedBatch};
use shikko_proto::convert;

/// Most events accepted in one ingest message.
pub const MAX_EVENTS_PER_BATCH: usize = 50_000;
/// Largest gRPC message the registry decodes.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;
const DEFAULT_FOLLOW_BATCH: usize = 1_000;
const MAX_FOLLOW_BATCH: usize = 10_000;
const DEFAULT_SCAN_CHUNK: usize = 10_000;
const MAX_SCAN_CHUNK: usize = 100_000;
const MAX_BULK_REJECTIONS: usize = 1_000;

/// The registry: the store, the head of the change feed, and metrics.
pub struct Registry {
    store: RegistryStore,
    /// What followers may see: every stored record, or (in a synchronous
    /// pair) those the standby confirmed.
    pub(crate) head: Arc<watch::Sender<u64>>,
    /// Primary or standby, and the link between them.
    pub(crate) pair: Arc<crate::pair::Pair>,
    closing: watch::Sender<bool>,
    pub(crate) metrics: RegistryMetrics,
    /// The last status index image built for a new responder.
    pub(crate) images: Arc<crate::snapshot::ImageCache>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("store", &self.store)
            .finish()
    }
}

impl Registry {
    /// A registry over an open store, alone (no standby); its metrics go into `metrics`.
    pub fn new(store: RegistryStore, metrics: &prometheus::Registry) -> Result<Registry> {
        Registry::in_pair(store, metrics, &crate::pair::PairSection::default())
    }

    /// A registry over an open store, primary or standby as the store
    /// records, waiting for its standby as `pair` says.
    pub fn in_pair(
        store: RegistryStore,
        metrics: &prometheus::Registry,
        pair: &crate::pair::PairSection,
    ) -> Result<Registry> {
        let standby = store.replication_role()? != shikko_store::Role::Primary;
        let pair = Arc::new(crate::pair::Pair::new(
            standby,
            pair,
            store.last_seq(),
            store.epoch()?,
            metrics,
        )?);
        let metrics = RegistryMetrics::register(metrics)?;
        let last = store.last_seq();
        metrics
            .last_seq
            .set(i64::try_from(last).unwrap_or(i64::MAX));
        Ok(Registry {
            store,
            head: Arc::new(watch::Sender::new(pair.initial_head(last))),
            pair,
            closing: watch::Sender::new(false),
            metrics,
            images: Arc::default(),
        })
    }

    /// The store.
    pub fn store(&self) -> &RegistryStore {
        &self.store
    }

    /// Ingests a batch on a blocking thread; returns once it is durable
    /// (here, and in a synchronous pair on the standby too).
    pub async fn ingest(&self, events: Vec<Event>, mode: IngestMode) -> Result<Vec<Outcome>> {
        if self.pair.is_standby() {
            return Err(Error::Standby);
        }
        if events.len() > MAX_EVENTS_PER_BATCH {
            return Err(Error::Invalid(format!(
                "{} events in one batch; at most {MAX_EVENTS_PER_BATCH}",
                events.len()
            )));
        }
        let store = self.store.clone();
        let head = self.head.clone();
        let pair = self.pair.clone();
        let last_seq = self.metrics.last_seq.clone();
        let started = Instant::now();
        // The followers are told inside the blocking task, so a caller that
        // goes away mid-call cannot leave a durable write unannounced.
        let (events, outcomes) = tokio::task::spawn_blocking(move || {
            let out = store.ingest(&events, mode);
            let last = store.last_seq();
            last_seq.set(i64::try_from(last).unwrap_or(i64::MAX));
            pair.written.send_replace(last);
            // In a synchronous pair the standby's confirmation moves the head.
            if !pair.is_synchronous() {
                head.send_replace(last);
            }
            (events, out)
        })
        .await
        .map_err(|e| Error::Internal(format!("ingest task: {e}")))?;
        let outcomes = outcomes?;
        // Every record the answer names must be on the standby's disk too.
        let names = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Applied { seq } | Outcome::Duplicate { seq } => Some(*seq),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        self.pair.wait_durable(names).await?;
        self.metrics
            .batch_seconds
            .observe(started.elapsed().as_secs_f64());
        for (e, o) in events.iter().zip(&outcomes) {
            let outcome = match o {
                Outcome::Applied { .. } => "applied",
                Outcome::Duplicate { .. } => "duplicate",
                Outcome::Rejected(_) => "rejected",
                Outcome::Aborted => "aborted",
            };
            self.metrics
                .events
                .with_label_values(&[e.body.type_name(), outcome])
                .inc();
        }
        Ok(outcomes)
    }

    /// The head of the change feed: its value is the last sequence number
    /// followers may see (every accepted one; in a synchronous pair, those
    /// the standby confirmed), and it changes when that moves.
    pub fn head(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// Becomes true when the registry closes its feed streams.
    pub(crate) fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Waits until followers may see `seq` (at once unless a synchronous
    /// pair's standby has yet to confirm it).
    pub(crate) async fn wait_visible(&self, seq: u64) -> Result<()> {
        let mut rx = self.head.subscribe();
        match tokio::time::timeout(
            std::time::Duration::from_secs(30),
            rx.wait_for(|h| *h >= seq),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::Unavailable(format!(
                "the standby has not confirmed sequence number {seq}: no snapshot of it yet"
            ))),
        }
    }

    /// Ends every open change-feed stream (on shutdown, so that draining can finish).
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// The tonic service, ready to add to a server.
    pub fn into_service(self: Arc<Self>) -> RegistryServer<RegistryService> {
        RegistryServer::new(RegistryService { inner: self })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    async fn ingest_pb(&self, req: pb::IngestRequest) -> Result<(Vec<Event>, Vec<Outcome>)> {
        let events = req
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| Event::try_from(e).map_err(|err| Error::bad_event(i, &e.id, &err)))
            .collect::<Result<Vec<_>>>()?;
        let mode = if req.all_or_nothing {
            IngestMode::AllOrNothing
        } else {
            IngestMode::PerEvent
        };
        let outcomes = self.ingest(events.clone(), mode).await?;
        if mode == IngestMode::AllOrNothing {
            for (e, o) in events.iter().zip(&outcomes) {
                if let Outcome::Rejected(v) = o {
                    return Err(Error::Rejected {
                        event_id: e.id.to_string(),
                        rule: v.rule(),
                        violation: v.clone(),
                    });
                }
            }
        }
        Ok((events, outcomes))
    }
}

fn outcome_to_pb(e: &Event, o: &Outcome) -> pb::EventOutcome {
    let mut out = pb::EventOutcome {
        event_id: e.id.to_string(),
        ..Default::default()
    };
    match o {
        Outcome::Applied { seq } => {
            out.kind = pb::OutcomeKind::Applied as i32;
            out.seq = *seq;
        }
        Outcome::Duplicate { seq } => {
            out.kind = pb::OutcomeKind::Duplicate as i32;
            out.seq = *seq;
        }
        Outcome::Rejected(v) => {
            out.kind = pb::OutcomeKind::Rejected as i32;
            out.rule = v.rule().to_owned();
            out.message = format!("event {}: {v}", e.id);
        }
        Outcome::Aborted => out.kind = pb::OutcomeKind::Aborted as i32,
    }
    out
}

/// The gRPC face of a [`Registry`].
#[derive(Debug, Clone)]
pub struct RegistryService {
    inner: Arc<Registry>,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl RegistryApi for RegistryService {
    async fn ingest(
        &self,
        request: Request<pb::IngestRequest>,
    ) -> std::result::Result<Response<pb::IngestResponse>, Status> {
        let (events, outcomes) = self.inner.ingest_pb(request.into_inner()).await?;
        Ok(Response::new(pb::IngestResponse {
            outcomes: events
                .iter()
                .zip(&outcomes)
                .map(|(e, o)| outcome_to_pb(e, o))
                .collect(),
            last_seq: self.inner.store.last_seq(),
        }))
    }

    async fn ingest_stream(
        &self,
        request: Request<Streaming<pb::IngestRequest>>,
    ) -> std::result::Result<Response<pb::BulkIngestResponse>, Status> {
        let mut stream = request.into_inner();
        let mut summary = pb::BulkIngestResponse::default();
        while let Some(mut req) = stream.message().await? {
            // The bulk form applies each event on its own merits.
            req.all_or_nothing = false;
            let (events, outcomes) = self.inner.ingest_pb(req).await?;
            for (e, o) in events.iter().zip(&outcomes) {
                match o {
                    Outcome::Applied { .. } => summary.applied += 1,
                    Outcome::Duplicate { .. } => summary.duplicates += 1,
                    Outcome::Rejected(_) | Outcome::Aborted => {
                        summary.rejected += 1;
                        if summary.rejections.len() < MAX_BULK_REJECTIONS {
                            summary.rejections.push(outcome_to_pb(e, o));
                        }
                    }
                }
            }
        }
        summary.last_seq = self.inner.store.last_seq();
        Ok(Response::new(summary))
    }

    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> std::result::Result<Response<pb::CertificateStatus>, Status> {
        // The newest serial links a person's certificates: only to those who need it.
        let links = shikko_access::caller_may(
            request.extensions().get::<shikko_runtime::Caller>(),
            shikko_proto::access::STATUS_WITH_NEWEST_SERIAL,
        );
        let req = request.into_inner();
        let kind = convert::cert_kind(req.issuer).map_err(|e| Error::Invalid(e.to_string()))?;
        let serial =
            convert::serial_from_pb(&req.serial).map_err(|e| Error::Invalid(e.to_string()))?;
        let store = self.inner.store.clone();
        let (cert, newest) = tokio::task::spawn_blocking(move || -> Result<_> {
            let cert = store.cert(kind, &serial)?;
            let newest = match cert {
                Some(_) => Some(store.newest(kind, &serial)?),
                None => None,
            };
            Ok((cert, newest))
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        let cert = cert
            .ok_or_else(|| Error::NotFound(format!("{kind} serial {serial} was never issued")))?;
        let (status, reason, time, inv) = convert::status_fields(&cert.status);
        Ok(Response::new(pb::CertificateStatus {
            issuer: convert::issuer(kind),
            serial: serial.magnitude().to_vec(),
            status: status as i32,
            reason,
            revocation_time: time,
            invalidity_date: inv,
            not_before: cert.not_before.0,
            not_after: cert.not_after.0,
            partition: cert.partition.0,
            newest_serial: match newest {
                Some((n, hops)) if hops > 0 && links => n.magnitude().to_vec(),
                _ => Vec::new(),
            },
        }))
    }

    type FollowStream = BoxStream<pb::ChangeBatch>;

    async fn follow(
        &self,
        request: Request<pb::FollowRequest>,
    ) -> std::result::Result<Response<Self::FollowStream>, Status> {
        let caller = request
            .extensions()
            .get::<shikko_runtime::Caller>()
            .cloned();
        let refusals = request
            .extensions()
            .get::<shikko_runtime::authz::Refusals>()
            .cloned();
        if self.inner.pair.is_standby() {
            return Err(Error::Standby.into());
        }
        let req = request.into_inner();
        // Writes carry 4 information: only to the info role and a standby.
        if req.with_writes
            && !shikko_access::caller_may(
                caller.as_ref(),
                shikko_proto::access::FOLLOW_WITH_PERSONAL_DATA,
            )
        {
            let who = caller.as_ref().map_or("?", shikko_runtime::Caller::name);
            tracing::warn!(caller = who, "Follow with writes refused");
            if let Some(r) = &refusals {
                r.count();
            }
            return Err(Status::permission_denied(format!(
                "{who} may follow the feed without writes only (writes carry personal data)"
            )));
        }
        let max = match req.max_batch {
            0 => DEFAULT_FOLLOW_BATCH,
            n => (n as usize).min(MAX_FOLLOW_BATCH),
        };
        let head = self.inner.store.last_seq();
        let first_seq = self.inner.store.first_seq();
        if req.from_seq.max(1) < first_seq {
            return Err(Error::Compacted { first_seq }.into());
        }
        if req.from_seq > head + 1 {
            return Err(Status::out_of_range(format!(
                "from_seq {} is past this registry's head {head}: its history is shorter than the follower's (restored from an older backup?)",
                req.from_seq
            )));
        }
        let content = if req.with_writes {
            Content::Replication
        } else {
            Content::Status
        };
        let cursor = FeedCursor::open(self.inner.clone(), req.from_seq, max, content).await?;
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(follow_task(self.inner.clone(), cursor, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type SnapshotStream = BoxStream<pb::SnapshotChunk>;

    async fn snapshot(
        &self,
        request: Request<pb::SnapshotRequest>,
    ) -> std::result::Result<Response<Self::SnapshotStream>, Status> {
        if self.inner.pair.is_standby() {
            return Err(Error::Standby.into());
        }
        let caller = request
            .extensions()
            .get::<shikko_runtime::Caller>()
            .cloned();
        let content = match pb::SnapshotContent::try_from(request.get_ref().content) {
            Ok(pb::SnapshotContent::Status) => shikko_follow::SnapshotContent::Status,
            Ok(pb::SnapshotContent::Listed) => shikko_follow::SnapshotContent::Listed,
            Ok(pb::SnapshotContent::Replica) => shikko_follow::SnapshotContent::Replication,
            Ok(pb::SnapshotContent::StatusImage) => shikko_follow::SnapshotContent::StatusImage,
            _ => {
                return Err(Status::invalid_argument(
                    "content must be STATUS, LISTED or REPLICA",
                ));
            }
        };
        // The replica's content carries 4 information: only to the info role and a standby.
        if content == shikko_follow::SnapshotContent::Replication
            && !shikko_access::caller_may(
                caller.as_ref(),
                shikko_proto::access::FOLLOW_WITH_PERSONAL_DATA,
            )
        {
            let who = caller.as_ref().map_or("?", shikko_runtime::Caller::name);
            tracing::warn!(caller = who, "Snapshot with writes refused");
            if let Some(r) = request
                .extensions()
                .get::<shikko_runtime::authz::Refusals>()
            {
                r.count();
            }
            return Err(Status::permission_denied(format!(
                "{who} may load statuses only (the replica's writes carry personal data)"
            )));
        }
        let rx = crate::snapshot::produce_visible(self.inner.clone(), content)?;
        Ok(Response::new(Box::pin(tokio_stream::StreamExt::map(
            ReceiverStream::new(rx),
            |part| {
                let part = part.map_err(Status::from)?;
                let writes = if part.writes.is_empty() {
                    Vec::new()
                } else {
                    rmp_serde::to_vec_named(&part.writes).map_err(|_| {
                        Status::from(Error::Internal("cannot encode a snapshot's writes".into()))
                    })?
                };
                Ok(pb::SnapshotChunk {
                    store_id: part.store_id,
                    seq: part.seq,
                    municipalities: part
                        .municipalities
                        .iter()
                        .map(pb::Municipality::from)
                        .collect(),
                    changes: part.changes.iter().map(pb::StatusChange::from).collect(),
                    writes,
                    image: part.image,
                    last: part.last,
                })
            },
        ))))
    }

    type ScanRevokedStream = BoxStream<pb::RevokedChunk>;

    async fn scan_revoked(
        &self,
        request: Request<pb::ScanRevokedRequest>,
    ) -> std::result::Result<Response<Self::ScanRevokedStream>, Status> {
        let req = request.into_inner();
        let kind = convert::cert_kind(req.issuer).map_err(|e| Error::Invalid(e.to_string()))?;
        let partition = req.partition.map(shikko_core::PartitionId);
        let chunk = match req.chunk_size {
            0 => DEFAULT_SCAN_CHUNK,
            n => (n as usize).min(MAX_SCAN_CHUNK),
        };
        // A page of the index per chunk, read when the client has taken the
        // chunk before: a client that stops reading holds no thread and no
        // RocksDB iterator (which would pin old files), only its cursor.
        let store = self.inner.store.clone();
        let pages = shikko_runtime::stream::blocking_stream(
            (None::<Vec<u8>>, false),
            move |(after, done): &mut (Option<Vec<u8>>, bool)| {
                if *done {
                    return Ok(None);
                }
                let (entries, next) = store
                    .revoked_page(kind, partition, after.as_deref(), chunk)
                    .map_err(|e| Status::from(Error::from(e)))?;
                match next {
                    Some(k) => *after = Some(k),
                    None => *done = true,
                }
                if entries.is_empty() {
                    return Ok(None);
                }
                Ok(Some(pb::RevokedChunk {
                    entries: entries.iter().map(pb::RevokedEntry::from).collect(),
                }))
            },
        );
        Ok(Response::new(pages))
    }

    async fn checkpoint(
        &self,
        request: Request<pb::CheckpointRequest>,
    ) -> std::result::Result<Response<pb::CheckpointResponse>, Status> {
        let name = request.into_inner().name;
        let store = self.inner.store.clone();
        let (path, last_seq, store_id) = tokio::task::spawn_blocking(move || {
            let (path, seq) = store.checkpoint_named(&name).map_err(|e| match e {
                shikko_store::CheckpointError::Store(e) => Error::Store(e),
                shikko_store::CheckpointError::Io(m) => Error::Internal(m),
                other => Error::Invalid(other.to_string()),
            })?;
            Ok::<_, Error>((path, seq, store.store_id()?))
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        tracing::info!(path = %path.display(), last_seq, "checkpoint written");
        Ok(Response::new(pb::CheckpointResponse {
            path: path.display().to_string(),
            last_seq,
            store_id,
        }))
    }

    type ReplicateStream = BoxStream<pb::ReplicateMessage>;

    async fn replicate(
        &self,
        request: Request<Streaming<pb::ReplicateAck>>,
    ) -> std::result::Result<Response<Self::ReplicateStream>, Status> {
        let rx = crate::replicate::serve_link(self.inner.clone(), request.into_inner()).await?;
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn promote(
        &self,
        request: Request<pb::PromoteRequest>,
    ) -> std::result::Result<Response<pb::PromoteResponse>, Status> {
        let req = request.into_inner();
        let (epoch, last_seq) = self.inner.promote(req.without_standby, req.force).await?;
        let store = self.inner.store.clone();
        let store_id = tokio::task::spawn_blocking(move || store.store_id())
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(Error::from)?;
        Ok(Response::new(pb::PromoteResponse {
            epoch,
            last_seq,
            store_id,
        }))
    }

    async fn acknowledge_alone(
        &self,
        _request: Request<pb::AcknowledgeAloneRequest>,
    ) -> std::result::Result<Response<pb::AcknowledgeAloneResponse>, Status> {
        let (epoch, last_seq) = self.inner.acknowledge_alone().await?;
        Ok(Response::new(pb::AcknowledgeAloneResponse {
            epoch,
            last_seq,
        }))
    }

    async fn list_partitions(
        &self,
        _request: Request<pb::ListPartitionsRequest>,
    ) -> std::result::Result<Response<pb::ListPartitionsResponse>, Status> {
        let store = self.inner.store.clone();
        let munis = tokio::task::spawn_blocking(move || store.municipalities())
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(Error::from)?;
        Ok(Response::new(pb::ListPartitionsResponse {
            partitions: munis
                .into_iter()
                .map(|m| pb::Municipality {
                    code: m.code.0,
                    prefecture: m.prefecture,
                    city: m.city,
                })
                .collect(),
        }))
    }
}

/// Streams change records from the cursor on, then waits for new ones,
/// until the client goes away or the registry closes its streams.
async fn follow_task(
    inner: Arc<Registry>,
    mut cursor: FeedCursor,
    tx: mpsc::Sender<std::result::Result<pb::ChangeBatch, Status>>,
) {
    inner.metrics.followers.inc();
    let mut closing = inner.closing.subscribe();
    loop {
        let next = tokio::select! {
            next = cursor.next_batch() => next,
            () = tx.closed() => break,
        };
        let batch = match next {
            Ok(Some(batch)) => batch_to_pb(batch),
            Ok(None) => break,
            Err(e) => Err(Status::from(e)),
        };
        let failed = batch.is_err();
        // A follower that stops reading must not hold up shutdown.
        tokio::select! {
            sent = tx.send(batch) => if sent.is_err() { break },
            _ = closing.changed() => break,
        }
        if failed {
            break;
        }
    }
    inner.metrics.followers.dec();
}

fn batch_to_pb(batch: FeedBatch) -> std::result::Result<pb::ChangeBatch, Status> {
    let mut records: Vec<pb::ChangeRecord> =
        batch.records.iter().map(pb::ChangeRecord::from).collect();
    for (r, writes) in records.iter_mut().zip(&batch.writes) {
        r.writes = rmp_serde::to_vec_named(writes).map_err(|_| {
            Status::from(Error::Internal(format!(
                "cannot encode the writes of record {}",
                r.seq
            )))
        })?;
    }
    Ok(pb::ChangeBatch {
        records,
        head_seq: batch.head_seq,
        store_id: batch.store_id,
        municipalities: batch
            .municipalities
            .iter()
            .map(pb::Municipality::from)
            .collect(),
    })
}

/// Serves the registry and gRPC health on a bound *loopback* listener until
/// `shutdown` completes, then closes feed streams and drains in-flight
/// calls: plaintext, without authorization (every caller may follow with
/// writes), for tests and embedding on one machine. A listener on any other
/// address is refused. Deployments serve through `RegistryProcess`
/// (mutual TLS and the authorization table).
pub async fn serve(
    registry: Arc<Registry>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(registry, listener, shutdown, |r| r).await
}

/// [`serve`], with a hook to add more services to the router.
pub async fn serve_with(
    registry: Arc<Registry>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    add: impl FnOnce(tonic::service::Routes) -> tonic::service::Routes,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{local}: the registry without TLS or authorization serves loopback only"),
        ));
    }
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<RegistryServer<RegistryService>>()
        .await;
    let routes =
        tonic::service::Routes::new(health_service).add_service(registry.clone().into_service());
    let routes = add(routes);
    let closer = registry.clone();
    let signal = async move {
        shutdown.await;
        health_reporter
            .set_not_serving::<RegistryServer<RegistryService>>()
            .await;
        closer.close_streams();
    };
    tonic::transport::Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal)
        .await
        .map_err(std::io::Error::other)
}
