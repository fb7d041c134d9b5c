//! The `shikko.v1.Registry` gRPC service over the store.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use shikko_core::Event;
use shikko_proto::v1 as pb;
use shikko_proto::v1::registry_server::{Registry as RegistryApi, RegistryServer};
use shikko_store::{IngestMode, Outcome, Store};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

use crate::convert;
use crate::error::{Error, Result};
use crate::metrics::RegistryMetrics;

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
    store: Arc<Store>,
    head: Arc<watch::Sender<u64>>,
    closing: watch::Sender<bool>,
    metrics: RegistryMetrics,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("store", &self.store)
            .finish()
    }
}

impl Registry {
    /// A registry over an open store; its metrics go into `metrics`.
    pub fn new(store: Arc<Store>, metrics: &prometheus::Registry) -> Result<Registry> {
        let metrics = RegistryMetrics::register(metrics)?;
        let last = store.last_seq();
        metrics
            .last_seq
            .set(i64::try_from(last).unwrap_or(i64::MAX));
        Ok(Registry {
            store,
            head: Arc::new(watch::Sender::new(last)),
            closing: watch::Sender::new(false),
            metrics,
        })
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Ingests a batch on a blocking thread; returns once it is durable.
    pub async fn ingest(&self, events: Vec<Event>, mode: IngestMode) -> Result<Vec<Outcome>> {
        if events.len() > MAX_EVENTS_PER_BATCH {
            return Err(Error::Invalid(format!(
                "{} events in one batch; at most {MAX_EVENTS_PER_BATCH}",
                events.len()
            )));
        }
        let store = self.store.clone();
        let head = self.head.clone();
        let last_seq = self.metrics.last_seq.clone();
        let started = Instant::now();
        // The followers are told inside the blocking task, so a caller that
        // goes away mid-call cannot leave a durable write unannounced.
        let (events, outcomes) = tokio::task::spawn_blocking(move || {
            let out = store.ingest(&events, mode);
            let last = store.last_seq();
            last_seq.set(i64::try_from(last).unwrap_or(i64::MAX));
            head.send_replace(last);
            (events, out)
        })
        .await
        .map_err(|e| Error::Internal(format!("ingest task: {e}")))?;
        let outcomes = outcomes?;
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

    /// The head of the change feed: its value is the last accepted sequence
    /// number, and it changes when events are accepted (in-process followers
    /// wait on it).
    pub fn head(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
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
            .map(|(i, e)| convert::event_from_pb(e).map_err(|err| Error::bad_event(i, &e.id, &err)))
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
        let req = request.into_inner();
        let kind = convert::kind_from_pb(req.issuer).map_err(|e| Error::Invalid(e.to_string()))?;
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
            issuer: convert::kind_to_pb(kind) as i32,
            serial: serial.magnitude().to_vec(),
            status: status as i32,
            reason,
            revocation_time: time,
            invalidity_date: inv,
            not_before: cert.not_before.0,
            not_after: cert.not_after.0,
            partition: cert.partition.0,
            newest_serial: match newest {
                Some((n, hops)) if hops > 0 => n.magnitude().to_vec(),
                _ => Vec::new(),
            },
        }))
    }

    type FollowStream = BoxStream<pb::ChangeBatch>;

    async fn follow(
        &self,
        request: Request<pb::FollowRequest>,
    ) -> std::result::Result<Response<Self::FollowStream>, Status> {
        let req = request.into_inner();
        let max = match req.max_batch {
            0 => DEFAULT_FOLLOW_BATCH,
            n => (n as usize).min(MAX_FOLLOW_BATCH),
        };
        let head = self.inner.store.last_seq();
        if req.from_seq > head + 1 {
            return Err(Status::out_of_range(format!(
                "from_seq {} is past this registry's head {head}: its history is shorter than the follower's (restored from an older backup?)",
                req.from_seq
            )));
        }
        let store = self.inner.store.clone();
        let store_id = tokio::task::spawn_blocking(move || store.store_id())
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(Error::from)?;
        let (tx, rx) = mpsc::channel(4);
        let inner = self.inner.clone();
        tokio::spawn(follow_task(
            inner,
            req.from_seq.max(1),
            max,
            req.with_events,
            store_id,
            tx,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type ScanRevokedStream = BoxStream<pb::RevokedChunk>;

    async fn scan_revoked(
        &self,
        request: Request<pb::ScanRevokedRequest>,
    ) -> std::result::Result<Response<Self::ScanRevokedStream>, Status> {
        let req = request.into_inner();
        let kind = convert::kind_from_pb(req.issuer).map_err(|e| Error::Invalid(e.to_string()))?;
        let partition = req.partition.map(shikko_core::PartitionId);
        let chunk = match req.chunk_size {
            0 => DEFAULT_SCAN_CHUNK,
            n => (n as usize).min(MAX_SCAN_CHUNK),
        };
        let (tx, rx) = mpsc::channel(2);
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut entries = Vec::with_capacity(chunk);
            for item in store.revoked(kind, partition) {
                match item {
                    Ok(e) => entries.push(convert::revoked_to_pb(&e)),
                    Err(e) => {
                        let _ = tx.blocking_send(Err(Status::from(Error::from(e))));
                        return;
                    }
                }
                if entries.len() == chunk {
                    let full = std::mem::replace(&mut entries, Vec::with_capacity(chunk));
                    if tx
                        .blocking_send(Ok(pb::RevokedChunk { entries: full }))
                        .is_err()
                    {
                        return;
                    }
                }
            }
            if !entries.is_empty() {
                let _ = tx.blocking_send(Ok(pb::RevokedChunk { entries }));
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
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

/// Streams change records from `next` on, then waits for new ones, until the
/// client goes away or the registry closes its streams.
async fn follow_task(
    inner: Arc<Registry>,
    mut next: u64,
    max: usize,
    with_events: bool,
    store_id: String,
    tx: mpsc::Sender<std::result::Result<pb::ChangeBatch, Status>>,
) {
    inner.metrics.followers.inc();
    let mut head = inner.head.subscribe();
    let mut closing = inner.closing.subscribe();
    // A follower that starts caught up gets one empty batch carrying the head,
    // so it knows it is current without waiting for the next event.
    let mut sent_any = false;
    loop {
        if *closing.borrow_and_update() {
            break;
        }
        // Mark the head seen before reading, so an ingest after the read wakes us.
        head.borrow_and_update();
        // The head before the read: the records read reach at least it.
        let head_seq = inner.store.last_seq();
        let store = inner.store.clone();
        let read = tokio::task::spawn_blocking(move || {
            let records = store.changes_since(next, max)?;
            let mut out: Vec<pb::ChangeRecord> =
                records.iter().map(convert::record_to_pb).collect();
            if with_events {
                for r in &mut out {
                    let event = store.event(r.seq)?.ok_or(shikko_store::Error::Corrupt {
                        cf: "events",
                        why: format!("no event for feed record {}", r.seq),
                    })?;
                    r.event_json =
                        serde_json::to_vec(&event).map_err(|e| shikko_store::Error::Corrupt {
                            cf: "events",
                            why: format!("cannot encode event {}: {e}", r.seq),
                        })?;
                }
            }
            Ok::<_, shikko_store::Error>(out)
        })
        .await;
        let records = match read {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let _ = tx.send(Err(Error::from(e).into())).await;
                break;
            }
            Err(e) => {
                let _ = tx.send(Err(Error::Internal(e.to_string()).into())).await;
                break;
            }
        };
        if records.is_empty() && !sent_any {
            sent_any = true;
            let batch = pb::ChangeBatch {
                records: Vec::new(),
                head_seq,
                store_id: store_id.clone(),
            };
            tokio::select! {
                sent = tx.send(Ok(batch)) => if sent.is_err() { break },
                _ = closing.changed() => break,
            }
            continue;
        }
        if let Some(last) = records.last() {
            sent_any = true;
            next = last.seq + 1;
            let batch = pb::ChangeBatch {
                records,
                head_seq,
                store_id: store_id.clone(),
            };
            // A follower that stops reading must not hold up shutdown.
            tokio::select! {
                sent = tx.send(Ok(batch)) => if sent.is_err() { break },
                _ = closing.changed() => break,
            }
            continue;
        }
        tokio::select! {
            changed = head.changed() => if changed.is_err() { break },
            _ = closing.changed() => break,
            () = tx.closed() => break,
        }
    }
    inner.metrics.followers.dec();
}

/// Serves the registry and gRPC health on a bound listener until `shutdown`
/// completes, then closes feed streams and drains in-flight calls.
pub async fn serve(
    registry: Arc<Registry>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::result::Result<(), tonic::transport::Error> {
    serve_with(registry, listener, shutdown, |r| r).await
}

/// [`serve`], with a hook to add more services to the router (the demo adds its other roles).
pub async fn serve_with(
    registry: Arc<Registry>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    add: impl FnOnce(tonic::service::Routes) -> tonic::service::Routes,
) -> std::result::Result<(), tonic::transport::Error> {
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
}
