//! Ingest throughput of [`RegistryStore::ingest`] on batches of 1,000 events, each batch
//! one `WriteBatch` synced to the write-ahead log (as `ingest` always does), on a
//! real RocksDB in a temp dir. Beside it, in the same run, raw RocksDB writing a
//! synced `WriteBatch` of about the same shape: the floor the rules and the
//! encoding sit on.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench -p shikko-store --bench ingest
//! ```
//!
//! Databases go to the system temp dir, or to `SHIKKO_BENCH_DIR` if set (put it
//! on the disk you want to measure: a tmpfs makes fsync free). Figures and the
//! command that made them live in docs/BENCHMARKS.md.
//!
//! Every iteration gets fresh event ids, holders and serials, so no event is a
//! duplicate; every outcome is checked to be `Applied`. Building the events and
//! topping up the pre-issued populations happen outside the timed section
//! (`iter_custom`).

use std::collections::VecDeque;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use shikko_core::{
    CertKind, DateOfBirth, Event, EventBody, EventId, FourInfo, HolderId, Municipality, NewCert,
    PartitionId, RevocationReason, Serial, Sex, UnixTime,
};
use shikko_store::{IngestMode, Outcome, RegistryStore};

/// Events per ingest call: the batch size the goal is stated for.
const BATCH: usize = 1_000;
/// Certificates issued before the revoke benchmark starts.
const PREISSUED_CERTS: usize = 200_000;
/// Events per ingest call while pre-populating (untimed).
const PREPOP_BATCH: usize = 10_000;
/// About as many municipalities as Japan has: the signing CRL partitions.
const MUNICIPALITIES: u64 = 1_741;
const NOT_BEFORE: i64 = 1_600_000_000;
const NOT_AFTER: i64 = 2_000_000_000;

/// Fresh ids, serials and increasing times: no event of a run repeats another.
struct Gen {
    n: u64,
    time: i64,
    rng: u64,
}

impl Gen {
    fn new() -> Gen {
        Gen {
            n: 0,
            time: 1_700_000_000,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    fn next(&mut self) -> u64 {
        self.n += 1;
        self.n
    }

    /// xorshift64: a deterministic order for picking pre-issued certificates.
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.random() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }

    fn event(&mut self, body: EventBody) -> Event {
        let n = self.next();
        self.time += 1;
        Event {
            id: EventId::new(format!("jlis-{n:012}")).expect("valid event id"),
            time: UnixTime(self.time),
            body,
        }
    }

    fn holder(&mut self) -> HolderId {
        HolderId::new(format!("H{:015}", self.next())).expect("valid holder id")
    }

    fn serial(&mut self) -> Serial {
        // Spread like real serials (random high bits), unique thanks to the counter.
        let n = u128::from(self.next());
        let high = u128::from(self.random() >> 8);
        Serial::from_u128((high << 64) | n).expect("non-zero serial")
    }

    fn cert(&mut self, kind: CertKind) -> NewCert {
        let municipality = kind.is_signing().then(|| {
            let code = 10_000 + (self.random() % MUNICIPALITIES) as u32 * 7;
            Municipality {
                code: PartitionId(code),
                prefecture: "東京都".into(),
                city: format!("市{code}"),
            }
        });
        NewCert {
            kind,
            serial: self.serial(),
            not_before: UnixTime(NOT_BEFORE),
            not_after: UnixTime(NOT_AFTER),
            municipality,
            cert_der: None,
        }
    }

    fn four_info(&mut self) -> FourInfo {
        let n = self.next();
        FourInfo {
            name: format!("山田 太郎{}", n % 1_000),
            address: format!("東京都千代田区千代田一丁目{}番{}号", n % 50 + 1, n % 30 + 1),
            date_of_birth: DateOfBirth::parse("319800101").expect("valid date of birth"),
            sex: if n.is_multiple_of(2) {
                Sex::Male
            } else {
                Sex::Female
            },
        }
    }

    /// A card user-authentication certificate issued to a new holder.
    fn issue_card_auth(&mut self) -> Event {
        let holder = self.holder();
        let cert = self.cert(CertKind::CardAuth);
        self.event(EventBody::Issue {
            holder,
            cert,
            four_info: None,
        })
    }

    /// A card signing certificate, with 4 information and a municipality, issued to a new holder.
    fn issue_card_signing(&mut self, holder: HolderId) -> Event {
        let cert = self.cert(CertKind::CardSigning);
        let four_info = Some(self.four_info());
        self.event(EventBody::Issue {
            holder,
            cert,
            four_info,
        })
    }

    fn issue_card_auth_to(&mut self, holder: HolderId) -> Event {
        let cert = self.cert(CertKind::CardAuth);
        self.event(EventBody::Issue {
            holder,
            cert,
            four_info: None,
        })
    }
}

/// A temp dir on the disk under test.
fn temp_dir() -> tempfile::TempDir {
    let dir = std::env::var_os("SHIKKO_BENCH_DIR").map(PathBuf::from);
    match dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("temp dir")
}

fn open_store() -> (tempfile::TempDir, RegistryStore) {
    let dir = temp_dir();
    let store = RegistryStore::open(dir.path()).expect("open store");
    (dir, store)
}

fn assert_applied(outcomes: &[Outcome]) {
    if let Some(bad) = outcomes
        .iter()
        .find(|o| !matches!(o, Outcome::Applied { .. }))
    {
        panic!("benchmark event not applied: {bad:?}");
    }
}

/// Ingests `events` untimed, in large batches.
fn prepopulate(store: &RegistryStore, events: Vec<Event>) {
    for chunk in events.chunks(PREPOP_BATCH) {
        assert_applied(&store.ingest(chunk, IngestMode::PerEvent).expect("ingest"));
    }
}

/// Times only `RegistryStore::ingest`; `make` builds each batch outside the clock.
fn time_batches(
    store: &RegistryStore,
    iters: u64,
    mut make: impl FnMut() -> Vec<Event>,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let batch = make();
        let start = Instant::now();
        let outcomes = store
            .ingest(black_box(&batch), IngestMode::PerEvent)
            .expect("ingest");
        total += start.elapsed();
        assert_applied(&outcomes);
    }
    total
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>, events_per_iter: usize) {
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(events_per_iter as u64));
}

/// (a) Issue batches to new holders.
fn issue(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest_issue");
    configure(&mut group, BATCH);

    let (_dir, store) = open_store();
    let mut g = Gen::new();
    group.bench_function("card_auth", |b| {
        b.iter_custom(|iters| {
            time_batches(&store, iters, || {
                (0..BATCH).map(|_| g.issue_card_auth()).collect()
            })
        });
    });

    let (_dir, store) = open_store();
    let mut g = Gen::new();
    group.bench_function("card_signing", |b| {
        b.iter_custom(|iters| {
            time_batches(&store, iters, || {
                (0..BATCH)
                    .map(|_| {
                        let h = g.holder();
                        g.issue_card_signing(h)
                    })
                    .collect()
            })
        });
    });
    group.finish();
}

/// Issues a card signing and a card user-authentication certificate to `holders`
/// new holders (untimed); returns them with their serials.
fn issue_card_pairs(
    store: &RegistryStore,
    g: &mut Gen,
    holders: usize,
) -> Vec<(HolderId, Serial, Serial)> {
    let mut events = Vec::with_capacity(2 * holders);
    let mut out = Vec::with_capacity(holders);
    for _ in 0..holders {
        let h = g.holder();
        let sign = g.issue_card_signing(h.clone());
        let auth = g.issue_card_auth_to(h.clone());
        let serial = |e: &Event| match &e.body {
            EventBody::Issue { cert, .. } => cert.serial,
            _ => unreachable!("issue event"),
        };
        out.push((h, serial(&sign), serial(&auth)));
        events.push(sign);
        events.push(auth);
    }
    prepopulate(store, events);
    g.shuffle(&mut out);
    out
}

/// (b) Revoke batches against a store with 200,000 pre-issued certificates.
fn revoke(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest_revoke");
    configure(&mut group, BATCH);

    let (_dir, store) = open_store();
    let mut g = Gen::new();
    let mut live: VecDeque<(CertKind, Serial)> = VecDeque::new();
    let top_up = |g: &mut Gen, live: &mut VecDeque<(CertKind, Serial)>| {
        let mut certs: Vec<_> = issue_card_pairs(&store, g, PREISSUED_CERTS / 2)
            .into_iter()
            .flat_map(|(_, sign, auth)| [(CertKind::CardSigning, sign), (CertKind::CardAuth, auth)])
            .collect();
        g.shuffle(&mut certs);
        live.extend(certs);
    };
    top_up(&mut g, &mut live);

    group.bench_function("key_compromise_or_cessation", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if live.len() < BATCH {
                    top_up(&mut g, &mut live);
                }
                let batch: Vec<Event> = live
                    .drain(..BATCH)
                    .enumerate()
                    .map(|(i, (kind, serial))| {
                        let reason = if i.is_multiple_of(4) {
                            RevocationReason::KeyCompromise
                        } else {
                            RevocationReason::CessationOfOperation
                        };
                        g.event(EventBody::Revoke {
                            kind,
                            serial,
                            reason,
                            invalidity_date: None,
                        })
                    })
                    .collect();
                let mut once = Some(batch);
                total += time_batches(&store, 1, || once.take().unwrap_or_default());
            }
            total
        });
    });
    group.finish();
}

/// (c) A day's mix against holders with a card signing and a card
/// user-authentication certificate: per 10 events, 5 four_info_change with a
/// new signing certificate, 3 renewals of both card certificates, 1 card_loss,
/// 1 death.
fn daily_mix(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest_daily_mix");
    configure(&mut group, BATCH);

    let (_dir, store) = open_store();
    let mut g = Gen::new();
    let mut holders: VecDeque<HolderId> = VecDeque::new();
    let top_up = |g: &mut Gen, holders: &mut VecDeque<HolderId>| {
        holders.extend(
            issue_card_pairs(&store, g, PREISSUED_CERTS / 2)
                .into_iter()
                .map(|(h, _, _)| h),
        );
    };
    top_up(&mut g, &mut holders);

    group.bench_function("move_renew_loss_death", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if holders.len() < BATCH {
                    top_up(&mut g, &mut holders);
                }
                let batch: Vec<Event> = holders
                    .drain(..BATCH)
                    .enumerate()
                    .map(|(i, holder)| {
                        let body = match i % 10 {
                            0..=4 => EventBody::FourInfoChange {
                                holder,
                                four_info: g.four_info(),
                                new_signing: Some(g.cert(CertKind::CardSigning)),
                            },
                            5..=7 => EventBody::Renewal {
                                holder,
                                new_signing: Some(g.cert(CertKind::CardSigning)),
                                new_auth: Some(g.cert(CertKind::CardAuth)),
                            },
                            8 => EventBody::CardLoss { holder },
                            _ => EventBody::Death { holder },
                        };
                        g.event(body)
                    })
                    .collect();
                let mut once = Some(batch);
                total += time_batches(&store, 1, || once.take().unwrap_or_default());
            }
            total
        });
    });
    group.finish();
}

/// Batch size: the same card auth issue events in calls of 100 and 10,000.
fn batch_size(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest_batch_size");
    for size in [100, 10_000] {
        configure(&mut group, size);
        let (_dir, store) = open_store();
        let mut g = Gen::new();
        group.bench_function(format!("card_auth_x{size}"), |b| {
            b.iter_custom(|iters| {
                time_batches(&store, iters, || {
                    (0..size).map(|_| g.issue_card_auth()).collect()
                })
            });
        });
    }
    group.finish();
}

/// Raw RocksDB, same run, same disk: a synced `WriteBatch` of 1,000 × 6 puts of
/// 21-byte keys and 100-byte values (about what an issue or revoke event writes:
/// event, feed record, event id, certificate, revoked index, holder), and the
/// floor of a synced write of one key per batch.
fn raw_rocksdb(c: &mut Criterion) {
    const PUTS_PER_EVENT: usize = 6;
    const VALUE_BYTES: usize = 100;
    let mut group = c.benchmark_group("rocksdb_raw");
    configure(&mut group, BATCH);

    let dir = temp_dir();
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    let db = rocksdb::DB::open(&opts, dir.path()).expect("open rocksdb");
    let mut sync = rocksdb::WriteOptions::default();
    sync.set_sync(true);
    let value = [0x5au8; VALUE_BYTES];
    let mut n: u64 = 0;

    group.bench_function("writebatch_6x100B_per_event", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let mut batch = rocksdb::WriteBatch::default();
                for _ in 0..BATCH * PUTS_PER_EVENT {
                    n += 1;
                    let mut key = [0u8; 21];
                    key[13..].copy_from_slice(&n.to_be_bytes());
                    batch.put(key, value);
                }
                db.write_opt(batch, &sync).expect("write");
                total += start.elapsed();
            }
            total
        });
    });

    group.bench_function("sync_floor_1_put_per_batch", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let start = Instant::now();
                db.put_opt(n.to_be_bytes(), value, &sync).expect("write");
                total += start.elapsed();
            }
            total
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = raw_rocksdb, issue, revoke, daily_mix, batch_size
}
criterion_main!(benches);
