//! `shutdown_signal` completes on a real SIGTERM. Its own test binary: the
//! handler is process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

use std::time::Duration;

use anyhow::{Result, ensure};
use shikko_runtime::shutdown::{drain_with_timeout, shutdown_signal};

#[tokio::test]
async fn sigterm_completes_shutdown_signal() -> Result<()> {
    let signal = shutdown_signal();
    tokio::pin!(signal);
    // Poll once so the handlers are installed before the signal is sent;
    // otherwise SIGTERM's default action would end the test process.
    tokio::select! {
        biased;
        () = &mut signal => anyhow::bail!("completed before any signal"),
        () = std::future::ready(()) => {}
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()?;
    ensure!(status.success(), "kill failed: {status}");
    drain_with_timeout(signal, Duration::from_secs(10)).await?;
    Ok(())
}
