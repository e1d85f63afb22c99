//! Accounts, groups, app passwords and quotas.

use std::process::ExitCode;

use clap::Subcommand;
use serde::Serialize;
use store::{Actor, Store};

use crate::output::{Report, Row, out, quota_text, said};
use crate::{read_password, user, user_name};

#[derive(Debug, Subcommand)]
pub(crate) enum UserCmd {
    /// Create an account (the password comes from stdin, or is generated and printed).
    Add {
        name: String,
        #[arg(long)]
        password_stdin: bool,
        /// e.g. 50MiB (binary: KiB, MiB, GiB, TiB, or K, M, G, T) or 50MB (decimal: kB, MB, GB,
        /// TB); no limit if omitted.
        #[arg(long)]
        quota: Option<String>,
        #[arg(long)]
        admin: bool,
    },
    /// List accounts with their usage.
    List,
    /// Set a new password (from stdin, or generated and printed).
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Refuse sign-ins for an account.
    Disable { name: String },
    /// Allow sign-ins again.
    Enable { name: String },
    /// Delete an account with all its files, versions and trash.
    Delete {
        name: String,
        /// Confirm: this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCmd {
    /// Make an app password for USER; prints the secret once.
    Add {
        user: String,
        #[arg(long, default_value = "cairnctl")]
        label: String,
    },
    /// List USER's app passwords (never the secrets).
    List { user: String },
    /// Revoke one of USER's app passwords; clients using it are signed out at once.
    Revoke { user: String, id: i64 },
}

#[derive(Debug, Subcommand)]
pub(crate) enum QuotaCmd {
    /// Set a quota: 50MiB (binary: KiB, MiB, GiB, TiB, or K, M, G, T), 50MB (decimal: kB, MB,
    /// GB, TB), or `none` for no limit.
    Set { name: String, size: String },
    /// Show quota and usage.
    Show { name: String },
}

/// `user add`.
#[derive(Serialize)]
struct Created {
    id: i64,
    name: String,
    admin: bool,
    quota: Option<u64>,
    /// The generated password (none when it came from stdin).
    password: Option<String>,
}

impl Report for Created {
    fn human(&self) -> String {
        let mut s = format!("created user {} (id {}, quota {})", self.name, self.id, quota_text(self.quota));
        if let Some(pw) = &self.password {
            s.push_str(&format!("\npassword: {pw}"));
        }
        s
    }
}

/// A line of `user list`.
#[derive(Serialize)]
struct Account {
    id: i64,
    name: String,
    admin: bool,
    disabled: bool,
    quota: Option<u64>,
    used: u64,
    files: u64,
    versions: u64,
    trash: u64,
}

impl Row for Account {
    const HEADER: &'static [&'static str] = &["ID", "NAME", "ADMIN", "DISABLED", "USED", "QUOTA"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.name.clone(),
            self.admin.to_string(),
            self.disabled.to_string(),
            store::format_size(self.used),
            quota_text(self.quota),
        ]
    }
}

/// A line of `token list`.
#[derive(Serialize)]
struct Token {
    id: i64,
    label: String,
    created_at: String,
    last_used_at: Option<String>,
}

impl Row for Token {
    const HEADER: &'static [&'static str] = &["ID", "LABEL", "CREATED", "LAST USED"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.label.clone(),
            self.created_at.clone(),
            self.last_used_at.clone().unwrap_or_else(|| "never".to_owned()),
        ]
    }
}

/// `quota show`.
#[derive(Serialize)]
struct QuotaUsage {
    name: String,
    quota: Option<u64>,
    used: u64,
    files: u64,
    versions: u64,
    trash: u64,
    available: Option<u64>,
}

impl Report for QuotaUsage {
    fn human(&self) -> String {
        let free = self.available.map_or(String::new(), |a| {
            format!("; {} free (versions and trash make room)", store::format_size(a))
        });
        format!(
            "{}: {} used of {} (files {}, versions {}, trash {}){free}",
            self.name,
            store::format_size(self.used),
            quota_text(self.quota),
            store::format_size(self.files),
            store::format_size(self.versions),
            store::format_size(self.trash)
        )
    }
}

#[derive(Serialize)]
struct NamePassword {
    name: String,
    password: Option<String>,
}
#[derive(Serialize)]
struct NameDisabled {
    name: String,
    disabled: bool,
}
#[derive(Serialize)]
struct Deleted {
    deleted: String,
}
#[derive(Serialize)]
struct NewToken {
    id: i64,
    label: String,
    user: String,
    secret: String,
}
#[derive(Serialize)]
struct Revoked {
    revoked: i64,
}
#[derive(Serialize)]
struct NameQuota {
    name: String,
    quota: Option<u64>,
}

pub(crate) async fn user_cmd(
    store: &Store,
    actor: &Actor,
    j: bool,
    cmd: &UserCmd,
) -> anyhow::Result<ExitCode> {
    match cmd {
        UserCmd::Add { name, password_stdin, quota, admin } => {
            let name = user_name(name)?;
            let quota = quota.as_deref().map(store::parse_size).transpose()?;
            let (password, generated) = read_password(*password_stdin)?;
            let u = store
                .create_user(actor, &name, &password, store::NewUser { is_admin: *admin, quota })
                .await?;
            out(
                j,
                &Created {
                    id: u.id.0,
                    name: u.name.to_string(),
                    admin: u.is_admin,
                    quota: u.quota,
                    password: generated.then_some(password),
                },
            )
        }
        UserCmd::List => {
            let users = store.list_users().await?;
            let rows: Vec<Account> = users
                .iter()
                .map(|i| Account {
                    id: i.user.id.0,
                    name: i.user.name.to_string(),
                    admin: i.user.is_admin,
                    disabled: i.user.disabled,
                    quota: i.usage.quota,
                    used: i.usage.used,
                    files: i.usage.files,
                    versions: i.usage.versions,
                    trash: i.usage.trash,
                })
                .collect();
            out(j, &rows)
        }
        UserCmd::Passwd { name, password_stdin } => {
            let name = user_name(name)?;
            let (password, generated) = read_password(*password_stdin)?;
            store.set_password(actor, &name, &password).await?;
            let text = match generated {
                true => format!("new password for {name}: {password}"),
                false => format!("password of {name} changed"),
            };
            out(
                j,
                &said(NamePassword { name: name.to_string(), password: generated.then_some(password) }, text),
            )
        }
        UserCmd::Disable { name } | UserCmd::Enable { name } => {
            let disable = matches!(cmd, UserCmd::Disable { .. });
            let name = user_name(name)?;
            store.set_disabled(actor, &name, disable).await?;
            let text = format!("{name} {}", if disable { "disabled" } else { "enabled" });
            out(j, &said(NameDisabled { name: name.to_string(), disabled: disable }, text))
        }
        UserCmd::Delete { name, yes } => {
            let name = user_name(name)?;
            if !yes {
                anyhow::bail!(
                    "deleting {name} removes all their files, versions and trash for good; add --yes"
                );
            }
            store.delete_user(actor, &name).await?;
            out(j, &said(Deleted { deleted: name.to_string() }, format!("deleted user {name}")))
        }
    }
}

pub(crate) async fn token_cmd(
    store: &Store,
    actor: &Actor,
    j: bool,
    cmd: &TokenCmd,
) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCmd::Add { user: u, label } => {
            let u = user(store, u).await?;
            let (tok, secret) = store.create_app_password(actor, &u, label).await?;
            let text = format!("app password {} for {} ({}): {secret}", tok.id, u.name, tok.label);
            out(j, &said(NewToken { id: tok.id, label: tok.label, user: u.name.to_string(), secret }, text))
        }
        TokenCmd::List { user: u } => {
            let u = user(store, u).await?;
            let rows: Vec<Token> = store
                .list_app_passwords(&u)
                .await?
                .into_iter()
                .map(|t| Token {
                    id: t.id,
                    label: t.label,
                    created_at: t.created_at.to_rfc3339(),
                    last_used_at: t.last_used_at.map(|l| l.to_rfc3339()),
                })
                .collect();
            out(j, &rows)
        }
        TokenCmd::Revoke { user: u, id } => {
            let u = user(store, u).await?;
            store.revoke_app_password(actor, &u, *id).await?;
            out(j, &said(Revoked { revoked: *id }, format!("revoked app password {id} of {}", u.name)))
        }
    }
}

pub(crate) async fn quota_cmd(
    store: &Store,
    actor: &Actor,
    j: bool,
    cmd: &QuotaCmd,
) -> anyhow::Result<ExitCode> {
    match cmd {
        QuotaCmd::Set { name, size } => {
            let name = user_name(name)?;
            let quota = if size == "none" { None } else { Some(store::parse_size(size)?) };
            store.set_quota(actor, &name, quota).await?;
            let text = format!("quota of {name}: {}", quota_text(quota));
            out(j, &said(NameQuota { name: name.to_string(), quota }, text))
        }
        QuotaCmd::Show { name } => {
            let u = user(store, name).await?;
            let usage = store.usage(&u).await?;
            out(
                j,
                &QuotaUsage {
                    name: u.name.to_string(),
                    quota: usage.quota,
                    used: usage.used,
                    files: usage.files,
                    versions: usage.versions,
                    trash: usage.trash,
                    available: usage.available(),
                },
            )
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum GroupCmd {
    /// Create a group (e.g. family).
    Add { name: String },
    /// List groups with their members.
    List,
    /// Delete a group (its members keep their accounts and files).
    Delete {
        name: String,
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
    /// Add accounts to a group.
    AddMember { group: String, users: Vec<String> },
    /// Take accounts out of a group.
    RemoveMember { group: String, users: Vec<String> },
}

/// A line of `group list`.
#[derive(Serialize)]
struct GroupRow {
    name: String,
    members: Vec<String>,
}

impl Row for GroupRow {
    const HEADER: &'static [&'static str] = &["GROUP", "MEMBERS"];
    fn cells(&self) -> Vec<String> {
        vec![self.name.clone(), self.members.join(", ")]
    }
}

pub(crate) async fn group_cmd(
    store: &Store,
    actor: &Actor,
    j: bool,
    cmd: &GroupCmd,
) -> anyhow::Result<ExitCode> {
    let row = |g: store::Group| GroupRow { name: g.name, members: g.members };
    match cmd {
        GroupCmd::Add { name } => {
            let g = store.create_group(actor, name).await?;
            let text = format!("created group {}", g.name);
            out(j, &said(row(g), text))
        }
        GroupCmd::List => {
            let rows: Vec<GroupRow> = store.list_groups().await?.into_iter().map(row).collect();
            out(j, &rows)
        }
        GroupCmd::Delete { name, yes } => {
            if !yes {
                return Err(store::Error::new(
                    store::ErrorKind::InvalidInput,
                    format!("deleting group {name}: add --yes to confirm"),
                )
                .into());
            }
            store.delete_group(actor, name).await?;
            out(
                j,
                &said(GroupRow { name: name.clone(), members: Vec::new() }, format!("deleted group {name}")),
            )
        }
        GroupCmd::AddMember { group, users } | GroupCmd::RemoveMember { group, users } => {
            let add = matches!(cmd, GroupCmd::AddMember { .. });
            for u in users {
                let name = user_name(u)?;
                match add {
                    true => store.add_group_member(actor, group, &name).await?,
                    false => store.remove_group_member(actor, group, &name).await?,
                }
            }
            let g = store.group(group).await?;
            let text = format!(
                "{}: {}",
                g.name,
                if g.members.is_empty() { "no members".to_owned() } else { g.members.join(", ") }
            );
            out(j, &said(row(g), text))
        }
    }
}
