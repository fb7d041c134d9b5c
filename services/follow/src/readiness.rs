//! Readiness: the one vocabulary every following role answers by.
//!
//! | state | OCSP | CRL builds | 4-information replica |
//! |---|---|---|---|
//! | `CatchingUp` | tryLater | held | UNAVAILABLE |
//! | `Current` | answers | run | answers |
//! | `Lost { since }` | answers within its stale window, then tryLater | held | UNAVAILABLE |
//!
//! A role over the registry's own store (the demo's CRL builder, the
//! co-located 4-information service) is [`Readiness::always_current`].

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use shikko_core::UnixTime;
use tokio::sync::watch;

/// Where a follower stands with the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedState {
    /// Not yet caught up with the registry since the start.
    CatchingUp,
    /// Holds every event the registry had when it last said its head.
    Current,
    /// Was current, then lost the registry at `since`; holds what it had then.
    Lost {
        /// When the registry went out of reach.
        since: UnixTime,
    },
}

/// A follower's readiness, shared by the follower (which sets it) and the
/// role (which reads it or waits for it).
#[derive(Debug)]
pub struct Readiness {
    state: watch::Sender<FeedState>,
    /// The state as one word, for readers on a hot path (every OCSP
    /// request asks): -1 catching up, 0 current, > 0 lost since (Unix
    /// seconds). Written with `state`, under its lock.
    word: AtomicI64,
}

const CATCHING_UP: i64 = -1;
const CURRENT: i64 = 0;

fn word_of(state: FeedState) -> i64 {
    match state {
        FeedState::CatchingUp => CATCHING_UP,
        FeedState::Current => CURRENT,
        // A loss is at least 1 (Unix second 0 would read as current).
        FeedState::Lost { since } => since.0.max(1),
    }
}

impl Readiness {
    /// Catching up: nothing may be answered from the replica yet.
    pub fn new() -> Arc<Readiness> {
        Arc::new(Readiness {
            state: watch::Sender::new(FeedState::CatchingUp),
            word: AtomicI64::new(CATCHING_UP),
        })
    }

    /// Current for good: a role over the registry's own store.
    pub fn always_current() -> Arc<Readiness> {
        Arc::new(Readiness {
            state: watch::Sender::new(FeedState::Current),
            word: AtomicI64::new(CURRENT),
        })
    }

    /// The state now.
    pub fn state(&self) -> FeedState {
        match self.word.load(Ordering::Acquire) {
            CATCHING_UP => FeedState::CatchingUp,
            CURRENT => FeedState::Current,
            since => FeedState::Lost {
                since: UnixTime(since),
            },
        }
    }

    /// Whether the follower holds everything the registry had when last asked.
    pub fn is_current(&self) -> bool {
        self.state() == FeedState::Current
    }

    /// Whether the follower has been current at least once (its data is
    /// complete up to some moment, possibly stale).
    pub fn caught_up_once(&self) -> bool {
        self.state() != FeedState::CatchingUp
    }

    /// Since when the registry is out of reach (`None` while current or catching up).
    pub fn lost_since(&self) -> Option<UnixTime> {
        match self.state() {
            FeedState::Lost { since } => Some(since),
            _ => None,
        }
    }

    /// Whether answers from this data would be older than `max_stale` at
    /// `now`: never caught up, or lost longer ago than the window.
    pub fn too_stale(&self, now: UnixTime, max_stale: std::time::Duration) -> bool {
        match self.state() {
            FeedState::CatchingUp => true,
            FeedState::Current => false,
            FeedState::Lost { since } => {
                let window = i64::try_from(max_stale.as_secs()).unwrap_or(i64::MAX);
                now.0.saturating_sub(since.0) > window
            }
        }
    }

    /// Waits until the follower is current.
    pub async fn wait_current(&self) {
        let mut rx = self.state.subscribe();
        // The sender lives as long as `self`: the wait ends only by becoming current.
        let _ = rx.wait_for(|s| *s == FeedState::Current).await;
    }

    /// A receiver of every change.
    pub fn subscribe(&self) -> watch::Receiver<FeedState> {
        self.state.subscribe()
    }

    /// The follower holds everything the registry had when last asked.
    pub fn set_current(&self) {
        self.state.send_if_modified(|s| {
            let changed = *s != FeedState::Current;
            *s = FeedState::Current;
            self.word.store(CURRENT, Ordering::Release);
            changed
        });
    }

    /// Back to catching up: the follower starts its copy again (a new
    /// history, a replica past the registry's retention window).
    pub fn set_catching_up(&self) {
        self.state.send_modify(|s| {
            *s = FeedState::CatchingUp;
            self.word.store(CATCHING_UP, Ordering::Release);
        });
    }

    /// The registry went out of reach at `now`: a current follower becomes
    /// lost (the first loss counts); one still catching up stays so.
    pub fn set_lost(&self, now: UnixTime) {
        self.state.send_if_modified(|s| match s {
            FeedState::Current => {
                *s = FeedState::Lost { since: now };
                self.word.store(word_of(*s), Ordering::Release);
                true
            }
            _ => false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn catching_up_then_current_then_lost_then_current() {
        let r = Readiness::new();
        assert!(!r.is_current() && !r.caught_up_once());
        assert!(r.too_stale(UnixTime(100), Duration::from_secs(1_000)));
        r.set_lost(UnixTime(50));
        assert_eq!(r.state(), FeedState::CatchingUp, "no data to be stale yet");
        r.set_current();
        assert!(r.is_current() && r.caught_up_once());
        assert!(!r.too_stale(UnixTime(100), Duration::ZERO));
        r.set_lost(UnixTime(100));
        r.set_lost(UnixTime(200));
        assert_eq!(r.lost_since(), Some(UnixTime(100)), "the first loss counts");
        assert!(!r.too_stale(UnixTime(160), Duration::from_secs(60)));
        assert!(r.too_stale(UnixTime(161), Duration::from_secs(60)));
        r.set_current();
        assert_eq!(r.lost_since(), None);
    }

    #[tokio::test]
    async fn wait_current_returns_once_current() {
        let r = Readiness::new();
        let w = {
            let r = r.clone();
            tokio::spawn(async move { r.wait_current().await })
        };
        tokio::task::yield_now().await;
        assert!(!w.is_finished());
        r.set_current();
        w.await.unwrap();
        Readiness::always_current().wait_current().await;
    }
}
