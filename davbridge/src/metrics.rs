//! `/metrics` in the Prometheus text format, and `/livez` and `/readyz`.
//!
//! Names follow Prometheus' rules: the `cairn_` prefix, base units in the name (`_seconds`,
//! `_bytes`), counters ending in `_total`, and labels from fixed sets only (a front end, a
//! method, a status class — never a user, a path or an id), so the number of series is
//! bounded whatever the traffic. Request durations run to the answer's head (a download's
//! body streams afterwards; its bytes are in `cairn_transfer_bytes_total`).
//!
//! What costs a query (totals over users) is read at most every [`REFRESH`], so a scrape stays
//! cheap; the rest is counted as it happens or read from the system at the scrape.
//!
//! `/metrics` answers loopback clients, or anyone with the configured bearer token (then
//! everyone needs it); others get 404. `/livez` says the process serves; `/readyz` (and
//! `/healthz`) that it can do its work: the database answers within a second, the data
//! directory is writable, and the daemon is not shutting down.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::Bridge;
use crate::body::{self, Body};

/// Totals that cost a query are read at most this often.
const REFRESH: Duration = Duration::from_secs(15);

/// The front end a request came through.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum Protocol {
    webdav,
    rest,
    tus,
    nextcloud,
    web,
    health,
    metrics,
    other,
}

/// An HTTP method, from a fixed set.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(clippy::upper_case_acronyms)]
pub(crate) enum MethodLabel {
    GET,
    HEAD,
    PUT,
    POST,
    PATCH,
    DELETE,
    OPTIONS,
    PROPFIND,
    PROPPATCH,
    MKCOL,
    COPY,
    MOVE,
    LOCK,
    UNLOCK,
    OTHER,
}

impl MethodLabel {
    pub(crate) fn of(m: &hyper::Method) -> MethodLabel {
        use MethodLabel as M;
        match m.as_str() {
            "GET" => M::GET,
            "HEAD" => M::HEAD,
            "PUT" => M::PUT,
            "POST" => M::POST,
            "PATCH" => M::PATCH,
            "DELETE" => M::DELETE,
            "OPTIONS" => M::OPTIONS,
            "PROPFIND" => M::PROPFIND,
            "PROPPATCH" => M::PROPPATCH,
            "MKCOL" => M::MKCOL,
            "COPY" => M::COPY,
            "MOVE" => M::MOVE,
            "LOCK" => M::LOCK,
            "UNLOCK" => M::UNLOCK,
            _ => M::OTHER,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    protocol: Protocol,
    method: MethodLabel,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    protocol: Protocol,
    method: MethodLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransferLabels {
    direction: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

fn code_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn duration_histogram() -> Histogram {
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0])
}

/// Every metric the daemon exports, and its registry.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<DurationLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    transfer: Family<TransferLabels, Counter>,
    push_connections: Gauge,
    db_up: Gauge,
    db_pool: Family<StateLabels, Gauge>,
    db_pool_max: Gauge,
    db_pool_waiting: Gauge,
    ready: Gauge,
    storage_total: Gauge,
    storage_free: Gauge,
    inodes_total: Gauge,
    inodes_free: Gauge,
    users: Gauge,
    users_near_quota: Gauge,
    used_bytes: Gauge,
    version_bytes: Gauge,
    trash_bytes: Gauge,
    uploads: Gauge,
    scrub_running: Gauge,
    fuse_ops: Family<OpLabels, Counter>,
    commits: Counter,
    commit_seconds: Counter<f64, AtomicU64>,
    group_commits: Counter,
    group_commit_writes: Counter,
    scrub_missing: Gauge,
    tls_expiry: Gauge,
    scrub_progress: Gauge<f64, AtomicU64>,
    scrub_last_completed: Gauge,
    scrub_corruptions: Counter,
    scrub_quarantined: Gauge,
    scrub_verified: Counter,
    resident: Gauge,
    open_fds: Gauge,
    cpu_seconds: Counter<f64, AtomicU64>,
    start_time: Gauge,
    last_refresh: Mutex<Option<Instant>>,
    /// Set when the daemon starts shutting down: `/readyz` then answers 503.
    pub(crate) draining: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut r = Registry::with_prefix("cairn");
        let m = Metrics {
            registry: Registry::default(),
            requests: Family::default(),
            durations: Family::new_with_constructor(duration_histogram),
            in_flight: Gauge::default(),
            transfer: Family::default(),
            push_connections: Gauge::default(),
            db_up: Gauge::default(),
            db_pool: Family::default(),
            db_pool_max: Gauge::default(),
            db_pool_waiting: Gauge::default(),
            ready: Gauge::default(),
            storage_total: Gauge::default(),
            storage_free: Gauge::default(),
            inodes_total: Gauge::default(),
            inodes_free: Gauge::default(),
            users: Gauge::default(),
            users_near_quota: Gauge::default(),
            used_bytes: Gauge::default(),
            version_bytes: Gauge::default(),
            trash_bytes: Gauge::default(),
            uploads: Gauge::default(),
            scrub_running: Gauge::default(),
            fuse_ops: Family::default(),
            commits: Counter::default(),
            commit_seconds: Counter::default(),
            group_commits: Counter::default(),
            group_commit_writes: Counter::default(),
            scrub_missing: Gauge::default(),
            tls_expiry: Gauge::default(),
            scrub_progress: Gauge::default(),
            scrub_last_completed: Gauge::default(),
            scrub_corruptions: Counter::default(),
            scrub_quarantined: Gauge::default(),
            scrub_verified: Counter::default(),
            resident: Gauge::default(),
            open_fds: Gauge::default(),
            cpu_seconds: Counter::default(),
            start_time: Gauge::default(),
            last_refresh: Mutex::new(None),
            draining: AtomicBool::new(false),
        };
        r.register(
            "build",
            "The running build (value 1)",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        r.register(
            "http_requests",
            "HTTP requests answered, by front end, method and status class",
            m.requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time to the answer's head, by front end and method",
            Unit::Seconds,
            m.durations.clone(),
        );
        r.register("http_requests_in_flight", "Requests being answered now", m.in_flight.clone());
        r.register_with_unit(
            "transfer",
            "Payload bytes moved by the sync and upload endpoints, by direction and kind",
            Unit::Bytes,
            m.transfer.clone(),
        );
        r.register(
            "push_connections",
            "Open push channels (change feed and notify_push)",
            m.push_connections.clone(),
        );
        r.register("db_up", "1 if the database answered the last check within a second", m.db_up.clone());
        r.register("db_pool_connections", "Database connections, by state", m.db_pool.clone());
        r.register(
            "db_pool_max_connections",
            "The most database connections the pool opens",
            m.db_pool_max.clone(),
        );
        r.register(
            "db_pool_waiting_requests",
            "Requests waiting for a database connection",
            m.db_pool_waiting.clone(),
        );
        r.register("ready", "1 if /readyz answers 200", m.ready.clone());
        r.register_with_unit(
            "storage_size",
            "Size of the data directory's filesystem",
            Unit::Bytes,
            m.storage_total.clone(),
        );
        r.register_with_unit(
            "storage_free",
            "Space left on the data directory's filesystem",
            Unit::Bytes,
            m.storage_free.clone(),
        );
        r.register("storage_inodes", "Inodes of the data directory's filesystem", m.inodes_total.clone());
        r.register(
            "storage_inodes_free",
            "Inodes left on the data directory's filesystem",
            m.inodes_free.clone(),
        );
        r.register("users", "Accounts", m.users.clone());
        r.register(
            "users_near_quota",
            "Accounts that have used 90 % of their quota or more",
            m.users_near_quota.clone(),
        );
        r.register_with_unit(
            "files_used",
            "Bytes of current files, all users",
            Unit::Bytes,
            m.used_bytes.clone(),
        );
        r.register_with_unit(
            "versions_kept",
            "Bytes kept as earlier versions",
            Unit::Bytes,
            m.version_bytes.clone(),
        );
        r.register_with_unit("trash_kept", "Bytes in the trash", Unit::Bytes, m.trash_bytes.clone());
        r.register(
            "uploads_in_progress",
            "Resumable and chunked uploads not yet finished",
            m.uploads.clone(),
        );
        r.register("fuse_operations", "Operations the FUSE mount answered, by kind", m.fuse_ops.clone());
        r.register("db_commits", "Database transactions committed", m.commits.clone());
        r.register_with_unit(
            "db_commit",
            "Time spent in COMMIT statements (the WAL flush); divided by cairn_db_commits_total, the mean",
            Unit::Seconds,
            m.commit_seconds.clone(),
        );
        r.register("db_group_commits", "Group commits of concurrent writes", m.group_commits.clone());
        r.register(
            "db_group_commit_writes",
            "Writes carried by group commits; divided by cairn_db_group_commits_total, the mean batch",
            m.group_commit_writes.clone(),
        );
        r.register(
            "scrub_missing_files",
            "Files and versions the last complete scrub pass found in the database but not on disk",
            m.scrub_missing.clone(),
        );
        r.register_with_unit(
            "tls_certificate_expiry_timestamp",
            "When the served TLS certificate expires, seconds since the Unix epoch (0 without TLS)",
            Unit::Seconds,
            m.tls_expiry.clone(),
        );
        r.register("scrub_running", "1 while an integrity scrub pass is under way", m.scrub_running.clone());
        r.register(
            "scrub_pass_progress_ratio",
            "Share of the stored bytes the pass under way has verified",
            m.scrub_progress.clone(),
        );
        r.register_with_unit(
            "scrub_last_completed_timestamp",
            "End of the last complete scrub pass (or when scrubbing became due), seconds since the Unix epoch",
            Unit::Seconds,
            m.scrub_last_completed.clone(),
        );
        r.register(
            "scrub_corruptions",
            "Damaged contents the scrub has found (repaired or not)",
            m.scrub_corruptions.clone(),
        );
        r.register(
            "scrub_quarantined_files",
            "Damaged contents whose reads are refused until replaced",
            m.scrub_quarantined.clone(),
        );
        r.register_with_unit(
            "scrub_verified",
            "Bytes the scrub has read and verified in this process",
            Unit::Bytes,
            m.scrub_verified.clone(),
        );
        r.register_with_unit(
            "process_resident_memory",
            "Resident memory of cairnd",
            Unit::Bytes,
            m.resident.clone(),
        );
        r.register("process_open_fds", "Open file descriptors of cairnd", m.open_fds.clone());
        r.register_with_unit(
            "process_cpu",
            "CPU time cairnd has used (user + system)",
            Unit::Seconds,
            m.cpu_seconds.clone(),
        );
        r.register_with_unit(
            "process_start_time",
            "When cairnd started, in seconds since the Unix epoch",
            Unit::Seconds,
            m.start_time.clone(),
        );
        m.start_time.set(process_start().unwrap_or(0));
        // Every transfer series exists from the start (at 0), so rates and dashboards have
        // data before the first transfer.
        for (direction, kind) in [
            ("up", "full"),
            ("down", "full"),
            ("up", "delta"),
            ("down", "delta"),
            ("down", "signature"),
            ("up", "tus"),
        ] {
            drop(m.transfer.get_or_create(&TransferLabels { direction, kind }));
        }
        Metrics { registry: r, ..m }
    }
}

/// When this process started, in seconds since the Unix epoch: the boot time (`btime` of
/// `/proc/stat`) plus the process' start in clock ticks after boot (field 22 of
/// `/proc/self/stat`; 100 ticks a second on Linux).
fn process_start() -> Option<i64> {
    let boot: i64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let ticks: i64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    Some(boot + ticks / 100)
}

/// Counts one request while it is answered (in flight until dropped).
pub(crate) struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

/// Counts one open push channel (held by the task serving it).
pub(crate) struct PushOpen(Gauge);

impl Drop for PushOpen {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    pub(crate) fn begin(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(self)
    }

    pub(crate) fn answered(&self, protocol: Protocol, method: MethodLabel, status: u16, took: Duration) {
        self.requests.get_or_create(&RequestLabels { protocol, method, code: code_class(status) }).inc();
        self.durations.get_or_create(&DurationLabels { protocol, method }).observe(took.as_secs_f64());
    }

    pub(crate) fn push_opened(&self) -> PushOpen {
        self.push_connections.inc();
        PushOpen(self.push_connections.clone())
    }

    /// Bytes moved by a transfer endpoint (`direction`: up or down; `kind`: full, delta,
    /// signature, tus, chunk).
    pub(crate) fn transferred(&self, direction: &'static str, kind: &'static str, n: u64) {
        self.transfer.get_or_create(&TransferLabels { direction, kind }).inc_by(n);
    }

    /// Read what is read at a scrape (and, at most every [`REFRESH`], what costs a query).
    async fn refresh(&self, bridge: &Bridge) {
        // One database check and one filesystem reading serve the gauges and readiness.
        let db = bridge.store.ping_within(Duration::from_secs(1)).await;
        let db_up = db.is_ok();
        self.db_up.set(i64::from(db_up));
        let pool = bridge.store.pool_state();
        self.db_pool.get_or_create(&StateLabels { state: "idle" }).set(pool.idle as i64);
        self.db_pool
            .get_or_create(&StateLabels { state: "busy" })
            .set(pool.open.saturating_sub(pool.idle) as i64);
        self.db_pool_max.set(pool.max as i64);
        self.db_pool_waiting.set(pool.waiting as i64);
        let fs = bridge.store.data_dir_state();
        if let Ok(fs) = &fs {
            self.storage_total.set(fs.bytes.0 as i64);
            self.storage_free.set(fs.bytes.1 as i64);
            self.inodes_total.set(fs.inodes.0 as i64);
            self.inodes_free.set(fs.inodes.1 as i64);
        }
        self.ready.set(i64::from(verdict(bridge, &db, &fs).is_ok()));
        self.tls_expiry.set(bridge.opts.tls_expiry.unwrap_or(0));
        let t = store::telemetry::snapshot();
        for (op, n) in t.mount_ops {
            set_total(&self.fuse_ops.get_or_create(&OpLabels { op: op.as_str() }), n);
        }
        set_total(&self.commits, t.commits);
        set_total(&self.group_commits, t.batches);
        set_total(&self.group_commit_writes, t.batched_writes);
        set_seconds(&self.commit_seconds, t.commit_seconds);
        set_total(&self.scrub_verified, t.scrub_verified);
        self.read_process();
        let due = {
            let mut last = self.last_refresh.lock().unwrap_or_else(|e| e.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= REFRESH);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due && db_up {
            match bridge.store.totals().await {
                Ok(t) => {
                    self.users.set(t.users as i64);
                    self.users_near_quota.set(t.users_near_quota as i64);
                    self.used_bytes.set(t.used_bytes as i64);
                    self.version_bytes.set(t.version_bytes as i64);
                    self.trash_bytes.set(t.trash_bytes as i64);
                    self.uploads.set(t.uploads_in_progress as i64);
                    self.scrub_running.set(i64::from(t.scrub_running));
                    self.scrub_missing.set(t.scrub_missing as i64);
                    let stored = t.used_bytes.saturating_sub(t.trash_bytes).max(1);
                    self.scrub_progress.set(match t.scrub_running {
                        true => (t.scrub_pass_bytes as f64 / stored as f64).min(1.0),
                        false => 0.0,
                    });
                    self.scrub_last_completed.set(t.scrub_last_completed_ns / 1_000_000_000);
                    self.scrub_quarantined.set(t.scrub_quarantined as i64);
                    set_total(&self.scrub_corruptions, t.scrub_corruptions);
                }
                Err(e) => tracing::warn!(error = %e, "metrics: totals unavailable"),
            }
        }
    }

    /// Resident memory, open descriptors and CPU time from `/proc/self`.
    fn read_process(&self) {
        if let Ok(status) = std::fs::read_to_string("/proc/self/status")
            && let Some(kb) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<i64>().ok())
        {
            self.resident.set(kb * 1024);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(dir.count() as i64);
        }
        // utime and stime (fields 14 and 15 of /proc/self/stat, in clock ticks of 1/100 s on
        // Linux), after the command name in parentheses.
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
            && let Some((_, rest)) = stat.rsplit_once(')')
        {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            set_seconds(&self.cpu_seconds, (ticks(11) + ticks(12)) as f64 / 100.0);
        }
    }

    fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics: encoding failed");
        }
        out
    }
}

/// Set a counter kept elsewhere (a process-wide atomic, the database, `/proc`) to its total
/// `now`. Totals only grow, so the larger value wins: scrapes at the same moment cannot count
/// a difference twice.
fn set_total(c: &Counter, now: u64) {
    c.inner().fetch_max(now, Ordering::Relaxed);
}

/// [`set_total`] for a count of seconds. A non-negative `f64` orders as its bits do.
fn set_seconds(c: &Counter<f64, AtomicU64>, now: f64) {
    c.inner().fetch_max(now.max(0.0).to_bits(), Ordering::Relaxed);
}

/// Why the daemon is not ready, if it is not.
pub(crate) async fn readiness(bridge: &Bridge) -> Result<(), String> {
    let db = bridge.store.ping_within(Duration::from_secs(1)).await;
    verdict(bridge, &db, &bridge.store.data_dir_state())
}

/// [`readiness`] from a database check and a data-directory reading already made.
fn verdict(
    bridge: &Bridge,
    db: &store::Result<()>,
    fs: &store::Result<store::DataDirState>,
) -> Result<(), String> {
    if bridge.metrics.draining.load(Ordering::Relaxed) {
        return Err("shutting down".into());
    }
    if let Err(e) = db {
        return Err(format!("database unavailable: {e}"));
    }
    match fs {
        Ok(fs) => fs.writable().map_err(|why| format!("the data directory {why}")),
        Err(e) => Err(format!("the data directory cannot be read: {e}")),
    }
}

/// Whether this request may read `/metrics`: with a token configured, it must carry it;
/// without one, it must come from this machine.
fn allowed(bridge: &Bridge, remote: SocketAddr, headers: &HeaderMap) -> bool {
    match &bridge.opts.metrics_token {
        Some(token) => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| crate::api::constant_time_eq(t.trim().as_bytes(), token.as_bytes())),
        None => remote.ip().is_loopback(),
    }
}

/// `GET /metrics`.
pub(crate) async fn serve(bridge: &Bridge, remote: SocketAddr, headers: &HeaderMap) -> Response<Body> {
    if !allowed(bridge, remote, headers) {
        return body::text(StatusCode::NOT_FOUND, "not found\n");
    }
    exposition(bridge).await
}

/// The exposition (also served to admins at `/api/v1/admin/metrics`).
pub(crate) async fn exposition(bridge: &Bridge) -> Response<Body> {
    bridge.metrics.refresh(bridge).await;
    let mut res = Response::new(body::full(bridge.metrics.encode()));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_follow_the_rules() {
        let m = Metrics::default();
        m.answered(Protocol::webdav, MethodLabel::PROPFIND, 207, Duration::from_millis(3));
        m.transferred("up", "tus", 10);
        let text = m.encode();
        assert!(
            text.contains(
                "cairn_http_requests_total{protocol=\"webdav\",method=\"PROPFIND\",code=\"2xx\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE cairn_http_request_duration_seconds histogram"), "{text}");
        assert!(text.contains("cairn_transfer_bytes_total{direction=\"up\",kind=\"tus\"} 10"), "{text}");
        assert!(text.contains("cairn_build_info{version="), "{text}");
        assert_eq!(code_class(404), "4xx");
        // Started after 2023 and not in the future (100 ticks a second, boot time in seconds).
        let start = process_start().unwrap();
        assert!(start > 1_700_000_000, "{start}");
        assert_eq!(MethodLabel::of(&hyper::Method::from_bytes(b"BREW").unwrap()), MethodLabel::OTHER);
    }

    #[test]
    fn totals_kept_elsewhere_only_grow() {
        let (c, secs) = (Counter::<u64>::default(), Counter::<f64, AtomicU64>::default());
        set_total(&c, 7);
        set_total(&c, 5);
        assert_eq!(c.get(), 7, "an older reading does not lower the total");
        set_total(&c, 9);
        assert_eq!(c.get(), 9);
        set_seconds(&secs, 1.25);
        set_seconds(&secs, 0.5);
        assert_eq!(secs.get(), 1.25);
        set_seconds(&secs, 2.0);
        assert_eq!(secs.get(), 2.0);
    }
}
