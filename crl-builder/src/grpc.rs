//! gRPC publication (`shikko.v1.CrlPublisher`): list, chunked download,
//! watch for new CRLs, and builds on demand.

use std::io::{Read, Seek, SeekFrom};
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use shikko_core::CertKind;
use shikko_proto::convert;
use shikko_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::build::CrlName;
use crate::catalog::PublishedCrl;
use crate::error::Error;
use crate::role::{BuildKind, CrlRole};

const DEFAULT_CHUNK: usize = 1 << 20;
const MAX_CHUNK: usize = 4 << 20;
const MIN_CHUNK: usize = 16 << 10;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn info(p: &PublishedCrl) -> pb::CrlInfo {
    pb::CrlInfo {
        issuer: convert::issuer(p.kind),
        name: p.name.to_string(),
        crl_number: p.summary.number,
        delta_base: p.summary.delta_base,
        this_update: p.summary.this_update.0,
        next_update: p.summary.next_update.map_or(0, |t| t.0),
        size: p.summary.size,
        etag: p.summary.etag(),
        path: p.url_path(),
    }
}

/// The status of a failed build. Messages carry no file paths (those go to
/// the server's log).
fn status_of(e: Error) -> Status {
    match e {
        Error::Busy(_) => Status::unavailable("another CRL build is running; try again"),
        Error::NotReady | Error::JoinedCancelled => Status::unavailable(e.to_string()),
        Error::NoBase(_) | Error::UnknownIssuer(_) => Status::failed_precondition(e.to_string()),
        Error::NumberNotIncreasing { published, new, .. } => Status::failed_precondition(format!(
            "CRL number {new} does not increase over the published {published}; not published"
        )),
        Error::Failed { issuers, first } => {
            let inner = status_of(*first);
            Status::new(
                inner.code(),
                format!(
                    "CRL builds failed for {}: {}",
                    issuers.join(", "),
                    inner.message()
                ),
            )
        }
        _ => Status::internal("the CRL build failed; see the server log"),
    }
}

/// The `CrlPublisher` service of a crl role.
#[derive(Debug, Clone)]
pub struct CrlService {
    role: Arc<CrlRole>,
}

impl CrlService {
    /// The service over `role`.
    pub fn new(role: Arc<CrlRole>) -> CrlService {
        CrlService { role }
    }

    /// As a tonic service.
    pub fn into_service(self) -> pb::crl_publisher_server::CrlPublisherServer<CrlService> {
        pb::crl_publisher_server::CrlPublisherServer::new(self)
    }
}

#[tonic::async_trait]
impl pb::crl_publisher_server::CrlPublisher for CrlService {
    async fn list(
        &self,
        req: Request<pb::ListCrlsRequest>,
    ) -> Result<Response<pb::ListCrlsResponse>, Status> {
        let kind = req
            .into_inner()
            .issuer
            .map(convert::cert_kind_arg)
            .transpose()?;
        let crls = self.role.catalog().list(kind).iter().map(info).collect();
        Ok(Response::new(pb::ListCrlsResponse { crls }))
    }

    type DownloadStream = BoxStream<pb::CrlChunk>;

    async fn download(
        &self,
        req: Request<pb::DownloadCrlRequest>,
    ) -> Result<Response<Self::DownloadStream>, Status> {
        let req = req.into_inner();
        let kind = convert::cert_kind_arg(req.issuer)?;
        let name = CrlName::parse(&req.name).ok_or_else(|| {
            Status::invalid_argument(
                "name must be full, delta, a 6-digit partition, full-filter or delta-filter",
            )
        })?;
        let chunk = match req.chunk_size as usize {
            0 => DEFAULT_CHUNK,
            n => n.clamp(MIN_CHUNK, MAX_CHUNK),
        };
        let catalog = self.role.catalog().clone();
        let path = catalog.path_of(kind, name);
        let (file, published) = tokio::task::spawn_blocking(move || {
            let f = std::fs::File::open(&path)?;
            let p = catalog
                .describe(kind, name, &path, &f)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            Ok::<_, std::io::Error>((f, p))
        })
        .await
        .map_err(|_| Status::internal("CRL read task failed"))?
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Status::not_found(format!("{}/{} is not published", kind.issuer_id(), name))
            } else {
                Status::internal("the CRL cannot be read")
            }
        })?;
        let first = info(&published);
        if req.if_none_match.as_deref() == Some(first.etag.as_str()) {
            let chunk = pb::CrlChunk {
                info: Some(first),
                data: Vec::new(),
                offset: 0,
                not_modified: true,
            };
            return Ok(Response::new(Box::pin(futures::stream::iter([Ok(chunk)]))));
        }
        // Read from the opened file (a rebuild renaming a new CRL in place
        // does not disturb this download), a chunk when the client has taken
        // the one before: a client that stops reading holds no thread.
        struct Reading {
            file: std::fs::File,
            info: Option<pb::CrlInfo>,
            offset: u64,
            done: bool,
        }
        let reading = Reading {
            file,
            info: Some(first),
            offset: 0,
            done: false,
        };
        let chunks = shikko_runtime::stream::blocking_stream(reading, move |r: &mut Reading| {
            if r.done {
                return Ok(None);
            }
            let unreadable = || Status::internal("the CRL cannot be read");
            if r.offset == 0 {
                r.file.seek(SeekFrom::Start(0)).map_err(|_| unreadable())?;
            }
            let mut buf = vec![0u8; chunk];
            let mut filled = 0;
            while filled < chunk {
                match r.file.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(_) => return Err(unreadable()),
                }
            }
            if filled == 0 && r.info.is_none() {
                return Ok(None);
            }
            buf.truncate(filled);
            let msg = pb::CrlChunk {
                info: r.info.take(),
                data: buf,
                offset: r.offset,
                not_modified: false,
            };
            r.offset += filled as u64;
            r.done = filled < chunk;
            Ok(Some(msg))
        });
        Ok(Response::new(chunks))
    }

    type WatchStream = BoxStream<pb::CrlInfo>;

    async fn watch(
        &self,
        req: Request<pb::WatchCrlsRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let req = req.into_inner();
        let kind = req.issuer.map(convert::cert_kind_arg).transpose()?;
        // Subscribe before listing, so nothing published in between is missed.
        let mut sub = self.role.catalog().subscribe();
        let current = if req.send_current {
            self.role.catalog().list(kind)
        } else {
            Vec::new()
        };
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            for p in current {
                if tx.send(Ok(info(&p))).await.is_err() {
                    return;
                }
            }
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    got = sub.recv() => match got {
                        Ok(p) if kind.is_none_or(|k| k == p.kind) => {
                            if tx.send(Ok(info(&p))).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            let _ = tx
                                .send(Err(Status::data_loss(format!(
                                    "{n} notices were dropped while this watcher lagged; List, then Watch again"
                                ))))
                                .await;
                            return;
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn build(
        &self,
        req: Request<pb::BuildCrlsRequest>,
    ) -> Result<Response<pb::BuildCrlsResponse>, Status> {
        let req = req.into_inner();
        let kind = match pb::BuildKind::try_from(req.kind) {
            Ok(pb::BuildKind::Full) => BuildKind::Full,
            Ok(pb::BuildKind::Delta) => BuildKind::Delta,
            _ => {
                return Err(Status::invalid_argument(
                    "kind must be FULL (1) or DELTA (2)",
                ));
            }
        };
        // One entry per issuer at most: a request repeating issuers must not
        // keep the builder busy (or be decoded at length) for nothing.
        if req.issuers.len() > CertKind::ALL.len() {
            return Err(Status::invalid_argument(format!(
                "{} issuers named; there are {} (name each at most once, or none for all)",
                req.issuers.len(),
                CertKind::ALL.len()
            )));
        }
        let kinds = if req.issuers.is_empty() {
            self.role.kinds()
        } else {
            let mut kinds = Vec::with_capacity(req.issuers.len());
            for i in &req.issuers {
                let kind = convert::cert_kind_arg(*i)?;
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
            kinds
        };
        let report = self
            .role
            .build_on_demand(kind, &kinds)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::BuildCrlsResponse {
            seq: report.seq,
            crls: report
                .crls
                .iter()
                .map(|c| pb::BuiltCrl {
                    issuer: convert::issuer(c.kind),
                    name: c.name.to_string(),
                    crl_number: c.number,
                    entries: c.entries,
                    bytes: c.bytes,
                    millis: c.elapsed.as_millis() as u64,
                })
                .collect(),
        }))
    }
}
