//! PostgreSQL: the connection pool and the embedded, checksummed migrations.

use std::path::PathBuf;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::{Error, ErrorKind, Result};

/// Where the metadata database is.
#[derive(Clone)]
pub enum DbTarget {
    /// A `postgres://` URL or a libpq key=value string.
    Url(String),
    /// A server reached through a Unix socket directory (the managed cluster).
    Socket {
        /// The directory holding `.s.PGSQL.<port>`.
        dir: PathBuf,
        /// The socket's port number.
        port: u16,
        /// Role to connect as.
        user: String,
        /// Database name.
        dbname: String,
    },
}

impl std::fmt::Debug for DbTarget {
    // Redacts passwords: configs are logged.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbTarget::Url(url) => match url.parse::<tokio_postgres::Config>() {
                Ok(cfg) => write!(
                    f,
                    "Url(host={:?} db={:?} user={:?} password={})",
                    cfg.get_hosts(),
                    cfg.get_dbname(),
                    cfg.get_user(),
                    if cfg.get_password().is_some() { "<redacted>" } else { "none" }
                ),
                Err(_) => f.write_str("Url(<unparseable>)"),
            },
            DbTarget::Socket { dir, port, user, dbname } => {
                write!(f, "Socket(dir={} port={port} user={user} db={dbname})", dir.display())
            }
        }
    }
}

impl DbTarget {
    /// The tokio-postgres configuration for this target.
    pub fn pg_config(&self) -> Result<tokio_postgres::Config> {
        match self {
            DbTarget::Url(url) => url
                .parse::<tokio_postgres::Config>()
                .map_err(|e| Error::new(ErrorKind::Setup, "invalid [database] url").with_source(e)),
            DbTarget::Socket { dir, port, user, dbname } => {
                let mut cfg = tokio_postgres::Config::new();
                cfg.host_path(dir).port(*port).user(user).dbname(dbname);
                Ok(cfg)
            }
        }
    }
}

pub(crate) fn pool(target: &DbTarget, max_size: usize) -> Result<Pool> {
    let mut cfg = target.pg_config()?;
    cfg.application_name("cairn");
    cfg.connect_timeout(std::time::Duration::from_secs(10));
    let mgr = Manager::from_config(cfg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(mgr)
        .max_size(max_size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(std::time::Duration::from_secs(30)))
        .create_timeout(Some(std::time::Duration::from_secs(10)))
        .build()
        .map_err(|e| Error::internal(format!("building the database pool: {e}")))
}

/// One forward-only migration file from `schema/`.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every file in `schema/`, in order. A test checks that this list and the folder agree.
const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "0001_init.sql", sql: include_str!("../../schema/0001_init.sql") },
    Migration { version: 2, name: "0002_fuse.sql", sql: include_str!("../../schema/0002_fuse.sql") },
    Migration { version: 3, name: "0003_api.sql", sql: include_str!("../../schema/0003_api.sql") },
    Migration { version: 4, name: "0004_sync.sql", sql: include_str!("../../schema/0004_sync.sql") },
    Migration {
        version: 5,
        name: "0005_write_log.sql",
        sql: include_str!("../../schema/0005_write_log.sql"),
    },
    Migration {
        version: 6,
        name: "0006_batch_locks.sql",
        sql: include_str!("../../schema/0006_batch_locks.sql"),
    },
    Migration {
        version: 7,
        name: "0007_nextcloud.sql",
        sql: include_str!("../../schema/0007_nextcloud.sql"),
    },
    Migration { version: 8, name: "0008_scrub.sql", sql: include_str!("../../schema/0008_scrub.sql") },
    Migration { version: 9, name: "0009_groups.sql", sql: include_str!("../../schema/0009_groups.sql") },
    Migration { version: 10, name: "0010_shares.sql", sql: include_str!("../../schema/0010_shares.sql") },
    Migration {
        version: 11,
        name: "0011_share_mounts.sql",
        sql: include_str!("../../schema/0011_share_mounts.sql"),
    },
    Migration { version: 12, name: "0012_links.sql", sql: include_str!("../../schema/0012_links.sql") },
    Migration {
        version: 13,
        name: "0013_link_uploads.sql",
        sql: include_str!("../../schema/0013_link_uploads.sql"),
    },
    Migration { version: 14, name: "0014_vaults.sql", sql: include_str!("../../schema/0014_vaults.sql") },
    Migration {
        version: 15,
        name: "0015_vault_accounts.sql",
        sql: include_str!("../../schema/0015_vault_accounts.sql"),
    },
];

/// The oldest PostgreSQL we run on.
const MIN_SERVER_VERSION: i32 = 130_000;

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Migrations applied by this call.
    pub applied: Vec<String>,
    /// Migrations that were already in place.
    pub already: usize,
}

/// Arbitrary constant naming "the migration lock" among advisory locks.
const MIGRATION_LOCK: i64 = 0x6361_6972_6e5f_6d67; // "cairn_mg"

pub(crate) async fn migrate(pool: &Pool) -> Result<MigrationReport> {
    let mut client = pool.get().await?;
    let version: String = client.query_one("SHOW server_version_num", &[]).await?.get(0);
    let version: i32 = version.parse().unwrap_or(0);
    if version < MIN_SERVER_VERSION {
        return Err(Error::new(
            ErrorKind::Setup,
            format!("PostgreSQL {version} is too old: Cairn needs 13 or newer"),
        ));
    }
    // Session-level lock: two processes starting at once apply each migration once.
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
    let res = migrate_locked(&mut client).await;
    let unlock = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    let report = res?;
    unlock?;
    Ok(report)
}

async fn migrate_locked(client: &mut deadpool_postgres::Client) -> Result<MigrationReport> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version    INTEGER PRIMARY KEY,
                name       TEXT NOT NULL,
                checksum   TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let rows =
        client.query("SELECT version, name, checksum FROM schema_migrations ORDER BY version", &[]).await?;
    let mut report = MigrationReport { applied: Vec::new(), already: 0 };
    for row in &rows {
        let version: i32 = row.get(0);
        let name: String = row.get(1);
        let checksum: String = row.get(2);
        match MIGRATIONS.iter().find(|m| m.version == version) {
            Some(m) if checksum_of(m.sql) == checksum => report.already += 1,
            Some(_) => {
                return Err(Error::new(
                    ErrorKind::Setup,
                    format!(
                        "migration {name} was edited after it was applied; \
                         applied migrations must not change (add a new one instead)"
                    ),
                ));
            }
            None => {
                return Err(Error::new(
                    ErrorKind::Setup,
                    format!("the database has migration {name}, which this build does not know: it is newer"),
                ));
            }
        }
    }
    for m in MIGRATIONS {
        if rows.iter().any(|r| r.get::<_, i32>(0) == m.version) {
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(m.sql).await.map_err(|e| {
            Error::new(ErrorKind::Setup, format!("migration {} failed", m.name)).with_source(e)
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &checksum_of(m.sql)],
        )
        .await?;
        tx.commit().await?;
        report.applied.push(m.name.to_owned());
    }
    Ok(report)
}

fn checksum_of(sql: &str) -> String {
    blake3::hash(sql.as_bytes()).to_hex().to_string()
}

/// Queries through the connection's prepared-statement cache: one round trip per query instead
/// of a parse round trip plus an execute round trip.
pub(crate) trait Cached {
    async fn cquery(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>>;
    async fn cquery_opt(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>>;
    async fn cquery_one(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<tokio_postgres::Row>;
    async fn cexecute(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)])
    -> Result<u64>;
}

impl<C: deadpool_postgres::GenericClient + Sync> Cached for C {
    async fn cquery(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>> {
        crate::watchdog::waiting("the database", async {
            let stmt = self.prepare_cached(sql).await?;
            Ok(self.query(&stmt, params).await?)
        })
        .await
    }

    async fn cquery_opt(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>> {
        crate::watchdog::waiting("the database", async {
            let stmt = self.prepare_cached(sql).await?;
            Ok(self.query_opt(&stmt, params).await?)
        })
        .await
    }

    async fn cquery_one(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<tokio_postgres::Row> {
        crate::watchdog::waiting("the database", async {
            let stmt = self.prepare_cached(sql).await?;
            Ok(self.query_one(&stmt, params).await?)
        })
        .await
    }

    async fn cexecute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64> {
        crate::watchdog::waiting("the database", async {
            let stmt = self.prepare_cached(sql).await?;
            Ok(self.execute(&stmt, params).await?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_file_is_embedded_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let embedded: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        assert_eq!(files, embedded);
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
            assert!(m.name.starts_with(&format!("{:04}_", m.version)));
        }
    }
}
