//! The audit log: who did what, through which front end, written in the transaction that
//! does it.

use crate::Result;
use crate::db::Cached;
use crate::types::{Actor, Timestamp, UserId};

pub(crate) fn audit_detail(actor: &Actor, detail: Option<&str>) -> Option<String> {
    match (&actor.remote, detail) {
        (Some(remote), Some(d)) => Some(format!("{d} (from {remote})")),
        (Some(remote), None) => Some(format!("from {remote}")),
        (None, d) => d.map(str::to_owned),
    }
}

/// Write one audit record.
pub(crate) async fn audit(
    tx: &impl deadpool_postgres::GenericClient,
    user: Option<UserId>,
    actor: &Actor,
    action: &str,
    path: Option<&str>,
    detail: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    let detail = audit_detail(actor, detail);
    tx.cexecute(
        "INSERT INTO audit_log (at, user_id, actor, origin, action, path, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[&now.0, &user.map(|u| u.0), &actor.name, &actor.origin.as_str(), &action, &path, &detail],
    )
    .await?;
    Ok(())
}
