//! Running under systemd: the listening socket it hands over (socket activation, so a restart
//! or an upgrade refuses no connection: they wait in the kernel's queue until the new process
//! accepts them), and the notifications of `Type=notify` — `READY=1` once the daemon can
//! serve, `WATCHDOG=1` at half the watchdog interval from the runtime (so a wedged runtime is
//! restarted), `STOPPING=1` when it begins to shut down. Without systemd every call here does
//! nothing. The units are in `deploy/systemd/`.

use std::os::fd::{FromRawFd, RawFd};
use std::time::Duration;

use anyhow::Context;
use sd_notify::NotifyState;

/// The sockets systemd passed (`LISTEN_FDS` for this process), made close-on-exec so no child
/// (the managed PostgreSQL) holds them, and the variables removed so none sees them.
///
/// # Safety
///
/// Call before any thread starts (it changes the environment).
pub unsafe fn take_listen_fds() -> anyhow::Result<Vec<RawFd>> {
    let fds: Vec<RawFd> = sd_notify::listen_fds().context("reading LISTEN_FDS")?.collect();
    for var in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        // SAFETY: the caller guarantees no other thread exists yet.
        unsafe { std::env::remove_var(var) };
    }
    Ok(fds)
}

/// The listener to serve on: the one socket systemd passed, or a new one bound to `addr`.
pub async fn listener(fds: &[RawFd], addr: std::net::SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    match fds {
        [] => tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding HTTP to {addr}")),
        [fd] => {
            // SAFETY: systemd passed this descriptor to this process (LISTEN_PID matched) and
            // nothing else owns it.
            let std = unsafe { std::net::TcpListener::from_raw_fd(*fd) };
            std.set_nonblocking(true).context("the passed socket")?;
            let l =
                tokio::net::TcpListener::from_std(std).context("the passed socket is not a TCP listener")?;
            l.local_addr().context("the passed socket is not a TCP listener")?;
            Ok(l)
        }
        more => {
            anyhow::bail!("systemd passed {} sockets; cairnd serves one (ListenStream= once)", more.len())
        }
    }
}

/// Tell systemd the daemon is ready (`READY=1`).
pub fn ready() {
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready]) {
        tracing::warn!(error = %e, "telling systemd we are ready");
    }
}

/// Tell systemd the daemon is shutting down (`STOPPING=1`).
pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
}

/// If systemd watches this process (`WATCHDOG_USEC`), ping it at half the interval from a
/// task of the runtime, which a wedged runtime stops.
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let every = sd_notify::watchdog_enabled()? / 2;
    let every = every.max(Duration::from_millis(10));
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = sd_notify::notify(&[NotifyState::Watchdog]) {
                tracing::warn!(error = %e, "pinging the systemd watchdog");
            }
        }
    }))
}
