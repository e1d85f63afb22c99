//! The configuration file (TOML), read once, validated into [`Config`]. Every key is documented
//! in README.md with its default; `daemon/cairnd.example.toml` is a commented sample (a test
//! checks that it parses).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

/// The file as written (stage one: only what the user typed).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: PathBuf,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    fuse: RawFuse,
    #[serde(default)]
    versions: RawVersions,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    webdav: RawWebdav,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    scrub: RawScrub,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScrub {
    enabled: Option<bool>,
    rate: Option<String>,
    interval: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    token: Option<String>,
}

impl std::fmt::Debug for RawMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMetrics").field("token", &self.token.as_ref().map(|_| "<set>")).finish()
    }
}

/// A secret from the config file: its `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    write_log_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebdav {
    propfind_infinity: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
    tls: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<String>,
    pool_size: Option<usize>,
}

impl std::fmt::Debug for RawDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawDatabase").field("url", &self.url.as_ref().map(|_| "<set>")).finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFuse {
    mountpoint: Option<PathBuf>,
    owner: Option<String>,
    #[serde(default)]
    owners: std::collections::BTreeMap<String, String>,
    threads: Option<usize>,
    passthrough: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVersions {
    keep_all: Option<String>,
    hourly_until: Option<String>,
    daily_until: Option<String>,
    max_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    slow: Option<String>,
}

/// The validated configuration (stage two).
#[derive(Debug, Clone)]
pub struct Config {
    /// The backing directory (absolute).
    pub data_dir: PathBuf,
    /// Where HTTP listens.
    pub listen: SocketAddr,
    /// An external PostgreSQL, or `None` for the managed cluster under the data directory.
    pub database: Option<store::DbTarget>,
    /// Most database connections.
    pub pool_size: usize,
    /// The FUSE mount, if `[fuse] mountpoint` is set.
    pub fuse: Option<fusefs::MountConfig>,
    /// Version thinning.
    pub retention: store::RetentionPolicy,
    /// Log filter (tracing `EnvFilter` syntax); `RUST_LOG` wins when set.
    pub log_level: String,
    /// Requests, FUSE waits and commits older than this are logged by the watchdog.
    pub log_slow: Duration,
    /// Answer `PROPFIND Depth: infinity`.
    pub propfind_infinity: bool,
    /// TLS on the HTTP listener.
    pub tls: Option<crate::tls::TlsSource>,
    /// How long logged small writes may wait for the filesystem sync (`None`: no write log,
    /// each write fsyncs before it is answered).
    pub write_log: Option<Duration>,
    /// `[metrics] token`: `/metrics` then needs `Authorization: Bearer <token>` from anywhere;
    /// without one it answers loopback clients only.
    pub metrics_token: Option<Secret>,
    /// The integrity scrub (`None`: `[scrub] enabled = false`).
    pub scrub: Option<store::ScrubOptions>,
}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        Config::parse(&text, path.parent().unwrap_or(Path::new(".")))
            .with_context(|| format!("in config file {}", path.display()))
    }

    /// Parse config text; relative paths are taken from `base` (the config file's folder).
    pub fn parse(text: &str, base: &Path) -> anyhow::Result<Config> {
        let raw: RawConfig = toml::from_str(text)?;
        let data_dir = if raw.data_dir.is_absolute() { raw.data_dir } else { base.join(raw.data_dir) };
        let listen = raw.http.listen.as_deref().unwrap_or("127.0.0.1:8080");
        let listen: SocketAddr =
            listen.parse().with_context(|| format!("[http] listen = {listen:?} is not an address:port"))?;
        let defaults = store::RetentionPolicy::default();
        let dur = |v: &Option<String>, key: &str, default: Duration| -> anyhow::Result<Duration> {
            v.as_deref()
                .map_or(Ok(default), |s| parse_duration(s).with_context(|| format!("[versions] {key}")))
        };
        let retention = store::RetentionPolicy {
            keep_all: dur(&raw.versions.keep_all, "keep_all", defaults.keep_all)?,
            hourly_until: dur(&raw.versions.hourly_until, "hourly_until", defaults.hourly_until)?,
            daily_until: dur(&raw.versions.daily_until, "daily_until", defaults.daily_until)?,
            max_age: raw
                .versions
                .max_age
                .as_deref()
                .map(parse_duration)
                .transpose()
                .context("[versions] max_age")?,
        };
        if !(retention.keep_all <= retention.hourly_until && retention.hourly_until <= retention.daily_until)
        {
            anyhow::bail!("[versions] needs keep_all <= hourly_until <= daily_until");
        }
        let rel = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let tls = match (raw.http.tls.as_deref(), raw.http.tls_cert, raw.http.tls_key) {
            (None | Some("off"), None, None) => None,
            (Some("self-signed"), None, None) => Some(crate::tls::TlsSource::SelfSigned),
            (None | Some("files"), Some(cert), Some(key)) => {
                Some(crate::tls::TlsSource::Files { cert: rel(cert), key: rel(key) })
            }
            (Some(other), None, None) => {
                anyhow::bail!("[http] tls = {other:?}: use \"self-signed\" or set tls_cert and tls_key")
            }
            _ => anyhow::bail!("[http] needs both tls_cert and tls_key (or tls = \"self-signed\")"),
        };
        let write_log = match raw.storage.write_log_ms.unwrap_or(DEFAULT_WRITE_LOG_MS) {
            0 => None,
            ms if ms <= 60_000 => Some(Duration::from_millis(ms)),
            _ => anyhow::bail!("[storage] write_log_ms is at most 60000 (0 turns the write log off)"),
        };
        let metrics_token = match raw.metrics.token {
            Some(t) if t.trim().len() < 16 => {
                anyhow::bail!("[metrics] token must have at least 16 characters")
            }
            Some(t) => Some(Secret(t.trim().to_owned())),
            None => None,
        };
        let scrub = match raw.scrub.enabled.unwrap_or(true) {
            false => None,
            true => {
                let defaults = store::ScrubOptions::default();
                let rate = match raw.scrub.rate.as_deref() {
                    None => defaults.rate,
                    Some(r) => match store::parse_size(r.trim_end_matches("/s")) {
                        Ok(n) if n >= 1 << 20 => n,
                        Ok(_) => anyhow::bail!("[scrub] rate is at least 1MiB (per second)"),
                        Err(e) => anyhow::bail!("[scrub] rate: {}", e.message()),
                    },
                };
                let interval = match raw.scrub.interval.as_deref() {
                    None => defaults.interval,
                    Some(i) => match parse_duration(i).context("[scrub] interval")? {
                        d if d < Duration::from_secs(3600) => {
                            anyhow::bail!("[scrub] interval is at least 1h")
                        }
                        d => d,
                    },
                };
                Some(store::ScrubOptions { rate, interval })
            }
        };
        Ok(Config {
            scrub,
            tls,
            write_log,
            metrics_token,
            data_dir,
            listen,
            database: raw.database.url.map(store::DbTarget::Url),
            pool_size: raw.database.pool_size.unwrap_or(32).clamp(2, 512),
            fuse: match raw.fuse.mountpoint {
                None => None,
                Some(mp) => {
                    let owner = match &raw.fuse.owner {
                        Some(o) => parse_owner(o).context("[fuse] owner")?,
                        None => fusefs::Owner {
                            uid: rustix::process::getuid().as_raw(),
                            gid: rustix::process::getgid().as_raw(),
                        },
                    };
                    let mut owners = std::collections::HashMap::new();
                    for (user, o) in &raw.fuse.owners {
                        owners.insert(
                            user.clone(),
                            parse_owner(o).with_context(|| format!("[fuse.owners] {user}"))?,
                        );
                    }
                    Some(fusefs::MountConfig {
                        mountpoint: rel(mp),
                        owner,
                        owners,
                        threads: raw.fuse.threads.unwrap_or(4).clamp(1, 64),
                        passthrough: raw.fuse.passthrough.unwrap_or(true),
                    })
                }
            },
            retention,
            log_slow: match &raw.log.slow {
                Some(s) => match parse_duration(s).context("[log] slow")? {
                    d if d.is_zero() => anyhow::bail!("[log] slow must be at least 1s"),
                    d => d,
                },
                None => Duration::from_secs(10),
            },
            log_level: raw.log.level.unwrap_or_else(|| "info".to_owned()),
            propfind_infinity: raw.webdav.propfind_infinity.unwrap_or(false),
        })
    }

    /// What `store` needs from this.
    pub fn store_config(&self) -> store::StoreConfig {
        let mut cfg = store::StoreConfig::new(&self.data_dir);
        cfg.retention = self.retention;
        cfg.pool_size = self.pool_size;
        cfg.write_log = self.write_log;
        cfg
    }

    /// What the HTTP front end needs from this.
    pub fn bridge_options(&self) -> davbridge::BridgeOptions {
        davbridge::BridgeOptions {
            propfind_infinity: self.propfind_infinity,
            metrics_token: self.metrics_token.as_ref().map(|s| s.0.clone()),
            tls_expiry: None,
        }
    }

    /// Where the managed cluster lives.
    pub fn managed_pg_dir(&self) -> PathBuf {
        self.data_dir.join(".cairn/pg")
    }
}

/// How long logged small writes wait for the filesystem sync by default: long enough for many
/// to share one syncfs, short enough that little is left to replay after a crash.
const DEFAULT_WRITE_LOG_MS: u64 = 250;

/// `90s`, `30m`, `12h`, `7d`, `2w`.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().with_context(|| format!("{s:?} is not a duration like 30m, 12h, 7d"))?;
    let secs = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => anyhow::bail!("{s:?} is not a duration like 30m, 12h, 7d"),
    };
    Ok(Duration::from_secs(n * secs))
}

/// `"UID:GID"` (numbers).
fn parse_owner(s: &str) -> anyhow::Result<fusefs::Owner> {
    let (u, g) = s.split_once(':').context("expected \"UID:GID\"")?;
    Ok(fusefs::Owner {
        uid: u.trim().parse().context("the uid is not a number")?,
        gid: g.trim().parse().context("the gid is not a number")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_defaults() {
        let cfg = Config::parse("data_dir = \"data\"", Path::new("/etc/cairn")).unwrap();
        assert_eq!(cfg.data_dir, Path::new("/etc/cairn/data"));
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
        assert!(cfg.database.is_none());
        assert_eq!(cfg.retention, store::RetentionPolicy::default());
    }

    #[test]
    fn full_config() {
        let cfg = Config::parse(
            r#"
            data_dir = "/srv/cairn"
            [http]
            listen = "0.0.0.0:9000"
            [database]
            url = "postgres://cairn:secret@db/cairn"
            [fuse]
            mountpoint = "/mnt/cairn"
            [versions]
            keep_all = "2d"
            max_age = "52w"
            "#,
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(cfg.listen.port(), 9000);
        assert_eq!(cfg.retention.keep_all, Duration::from_secs(2 * 86_400));
        assert_eq!(cfg.retention.max_age, Some(Duration::from_secs(52 * 7 * 86_400)));
        // The password never shows in logs.
        assert!(!format!("{cfg:?}").contains("secret"));
    }

    #[test]
    fn the_example_config_parses() {
        let text = include_str!("../cairnd.example.toml");
        let cfg = Config::parse(text, Path::new("/")).unwrap();
        assert_eq!(cfg.data_dir, Path::new("/var/lib/cairn"));
        // Uncommenting every optional key must parse as well.
        let all: String = text
            .lines()
            .map(|l| if l.starts_with("# ") && l.contains(" = ") { &l[2..] } else { l })
            .collect::<Vec<_>>()
            .join("\n");
        let cfg = Config::parse(&all, Path::new("/")).unwrap();
        assert!(cfg.database.is_some() && cfg.fuse.is_some() && cfg.retention.max_age.is_some());
    }

    #[test]
    fn typos_are_refused() {
        let err =
            Config::parse("data_dir = \"/x\"\n[http]\nlisten_addr = \"1\"", Path::new("/")).unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
        assert!(Config::parse("data_dir = \"/x\"\n[versions]\nkeep_all = \"soon\"", Path::new("/")).is_err());
    }
}
