//! Graceful shutdown: waiting for SIGTERM or Ctrl-C ([`shutdown_signal`]), a
//! handle that many tasks wait on and anyone can trigger ([`Shutdown`]), and
//! a bounded drain ([`drain_with_timeout`]).
//!
//! The sequence in a role: trigger on a signal, servers stop accepting and
//! drain, the process waits for them at most `shutdown.drain_timeout_secs`,
//! then exits.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Completes when the process receives SIGTERM (Unix) or Ctrl-C (SIGINT).
///
/// If a listener cannot be installed, that is logged and only the other
/// signal is awaited.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };

    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                if sigterm.recv().await.is_none() {
                    std::future::pending::<()>().await;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => tracing::info!("received Ctrl-C, shutting down"),
        () = terminate => tracing::info!("received SIGTERM, shutting down"),
    }
}

/// A shutdown that can be triggered once and awaited by any number of tasks.
///
/// Clones share the same state: triggering any clone wakes every waiter,
/// and waiting after the trigger returns at once.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use shikko_runtime::shutdown::Shutdown;
/// let shutdown = Shutdown::new();
/// let worker = tokio::spawn({
///     let shutdown = shutdown.clone();
///     async move { shutdown.wait().await; "drained" }
/// });
/// shutdown.trigger();
/// assert_eq!(worker.await.unwrap(), "drained");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Shutdown {
    triggered: watch::Sender<bool>,
}

impl Shutdown {
    /// A shutdown not yet triggered.
    pub fn new() -> Self {
        Shutdown {
            triggered: watch::Sender::new(false),
        }
    }

    /// Starts the shutdown: every current and future [`Self::wait`] returns.
    /// Triggering again is a no-op.
    pub fn trigger(&self) {
        self.triggered.send_replace(true);
    }

    /// Whether [`Self::trigger`] has been called.
    pub fn is_triggered(&self) -> bool {
        *self.triggered.borrow()
    }

    /// Completes once the shutdown is triggered.
    pub async fn wait(&self) {
        let mut triggered = self.triggered.subscribe();
        // Err only if every sender is dropped, and `self` holds one.
        let _ = triggered.wait_for(|&triggered| triggered).await;
    }

    /// [`Self::wait`] as an owned `'static` future, for APIs that take the
    /// shutdown future by value (`axum::serve(..).with_graceful_shutdown`,
    /// tonic's `serve_with_incoming_shutdown`, [`crate::serve_metrics`]).
    pub fn wait_owned(&self) -> impl Future<Output = ()> + Send + 'static {
        let shutdown = self.clone();
        async move { shutdown.wait().await }
    }

    /// Spawns a task that triggers this shutdown on SIGTERM or Ctrl-C
    /// ([`shutdown_signal`]). Must be called within a Tokio runtime.
    pub fn trigger_on_signal(&self) -> JoinHandle<()> {
        let shutdown = self.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            shutdown.trigger();
        })
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

/// Awaits `fut` (typically a server's future after its shutdown was
/// triggered) for at most `timeout`.
///
/// On timeout `fut` is dropped, which for a spawned task's `JoinHandle`
/// detaches rather than cancels it; the process is expected to exit next.
pub async fn drain_with_timeout<F: Future>(
    fut: F,
    timeout: Duration,
) -> Result<F::Output, Elapsed> {
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| Elapsed { timeout })
}

/// The drain did not finish within its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed {
    timeout: Duration,
}

impl Elapsed {
    /// The timeout that passed.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "drain did not finish within {:?}", self.timeout)
    }
}

impl std::error::Error for Elapsed {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_trigger() {
        let shutdown = Shutdown::new();
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let shutdown = shutdown.clone();
                tokio::spawn(async move { shutdown.wait().await })
            })
            .collect();
        assert!(!shutdown.is_triggered());
        shutdown.clone().trigger();
        for waiter in waiters {
            drain_with_timeout(waiter, Duration::from_secs(5))
                .await
                .unwrap()
                .unwrap();
        }
        assert!(shutdown.is_triggered());
    }

    #[tokio::test]
    async fn wait_after_trigger_returns_at_once() {
        let shutdown = Shutdown::new();
        shutdown.trigger();
        shutdown.trigger();
        drain_with_timeout(shutdown.wait_owned(), Duration::from_secs(5))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn drain_times_out_on_a_stuck_future() {
        let timeout = Duration::from_millis(20);
        let err = drain_with_timeout(std::future::pending::<()>(), timeout)
            .await
            .unwrap_err();
        assert_eq!(err.timeout(), timeout);
        assert_eq!(err.to_string(), "drain did not finish within 20ms");
    }

    #[tokio::test]
    async fn drain_returns_the_output() {
        let out = drain_with_timeout(async { 7 }, Duration::from_secs(1)).await;
        assert_eq!(out, Ok(7));
    }
}
