//! What the registry's tests that follow it share: sinks that keep what
//! they are given, events, a registry over a temp dir.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use shikko_core::{
    CertKind, ChangeRecord, DateOfBirth, Effect, Event, EventBody, EventId, FourInfo, HolderId,
    Municipality, NewCert, PartitionId, RevocationReason, Serial, Sex, StatusChange, UnixTime,
};
use shikko_follow::{FollowError, ReplicaSink, SnapshotContent, StatusBatch, StatusSink};
use shikko_registry::Registry;
use shikko_store::{RegistryStore, ReplicaStore};
use tokio::sync::oneshot;

/// A sink that keeps what it is given: records, and a snapshot's statuses.
#[derive(Default)]
pub struct Kept {
    pub records: Mutex<Vec<ChangeRecord>>,
    pub municipalities: Mutex<Vec<Municipality>>,
    pub loaded: Mutex<Vec<StatusChange>>,
    pub snapshot_seq: Mutex<Option<u64>>,
    pub content: Option<SnapshotContent>,
}

impl StatusSink for Kept {
    fn position(&self) -> u64 {
        let base = self.snapshot_seq.lock().unwrap().unwrap_or(0);
        self.records.lock().unwrap().last().map_or(base, |r| r.seq)
    }
    fn apply(&self, batch: StatusBatch) -> Result<u64, FollowError> {
        let mut m = self.municipalities.lock().unwrap();
        m.extend(batch.municipalities);
        m.extend(batch.records.iter().flat_map(|r| r.municipalities.clone()));
        self.records.lock().unwrap().extend(batch.records);
        Ok(self.position())
    }
    fn snapshot_content(&self) -> SnapshotContent {
        self.content.unwrap_or(SnapshotContent::Status)
    }
    fn begin_snapshot(&self) -> Result<(), FollowError> {
        self.records.lock().unwrap().clear();
        self.loaded.lock().unwrap().clear();
        *self.snapshot_seq.lock().unwrap() = None;
        Ok(())
    }
    fn load_snapshot(
        &self,
        municipalities: Vec<Municipality>,
        changes: Vec<StatusChange>,
    ) -> Result<(), FollowError> {
        self.municipalities.lock().unwrap().extend(municipalities);
        self.loaded.lock().unwrap().extend(changes);
        Ok(())
    }
    fn end_snapshot(&self, seq: u64) -> Result<u64, FollowError> {
        *self.snapshot_seq.lock().unwrap() = Some(seq);
        Ok(seq)
    }
}

/// A replica sink over a real store, as the info role's.
pub struct StoreReplica(pub ReplicaStore);

impl ReplicaSink for StoreReplica {
    fn position(&self) -> u64 {
        self.0.last_seq()
    }
    fn apply(&self, records: Vec<(ChangeRecord, Vec<Effect>)>) -> Result<u64, FollowError> {
        self.0.apply_replicated(&records).map_err(FollowError::sink)
    }
    fn begin_snapshot(&self) -> Result<(), FollowError> {
        self.0.begin_reload().map_err(FollowError::sink)
    }
    fn load_snapshot(&self, writes: Vec<Effect>) -> Result<(), FollowError> {
        self.0.reload(writes).map_err(FollowError::sink)
    }
    fn end_snapshot(&self, seq: u64) -> Result<u64, FollowError> {
        self.0.end_reload(seq).map_err(FollowError::sink)
    }
}

pub fn signing_issue(n: u32, municipality: u32) -> Event {
    Event {
        id: EventId::new(format!("issue-{n}")).unwrap(),
        time: UnixTime(2_000),
        body: EventBody::Issue {
            holder: HolderId::new(format!("H{n:08}")).unwrap(),
            cert: NewCert {
                kind: CertKind::CardSigning,
                serial: Serial::from_u128(u128::from(n) + 1).unwrap(),
                not_before: UnixTime(1_000),
                not_after: UnixTime(10_000_000),
                municipality: Some(Municipality {
                    code: PartitionId(municipality),
                    prefecture: "東京都".into(),
                    city: format!("市{municipality}"),
                }),
                cert_der: None,
            },
            four_info: Some(FourInfo {
                name: format!("氏名 {n}"),
                address: format!("東京都千代田区 {n}"),
                date_of_birth: DateOfBirth::parse("319800101").unwrap(),
                sex: Sex::Female,
            }),
        },
    }
}

pub fn revoke(n: u32) -> Event {
    Event {
        id: EventId::new(format!("revoke-{n}")).unwrap(),
        time: UnixTime(3_000),
        body: EventBody::Revoke {
            kind: CertKind::CardSigning,
            serial: Serial::from_u128(u128::from(n) + 1).unwrap(),
            reason: RevocationReason::KeyCompromise,
            invalidity_date: None,
        },
    }
}

pub fn registry(dir: &std::path::Path) -> Arc<Registry> {
    let store = RegistryStore::open(dir).unwrap();
    Arc::new(Registry::new(store, &prometheus::Registry::new()).unwrap())
}

pub async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..200 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

pub fn metric(registry: &prometheus::Registry, name: &str, role: &str) -> i64 {
    registry
        .gather()
        .iter()
        .find(|f| f.name() == name)
        .and_then(|f| {
            f.get_metric()
                .iter()
                .find(|m| m.get_label().iter().any(|l| l.value() == role))
                .map(|m| m.get_gauge().get_value() as i64)
        })
        .unwrap_or_else(|| panic!("no {name}{{role={role}}}"))
}

/// The registry on a gRPC port: its address, and what stops it.
pub async fn serve(registry: &Arc<Registry>) -> (String, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(shikko_registry::serve(
        registry.clone(),
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    (format!("http://{addr}"), stop)
}
