//! A user's content: files, earlier versions, the trash.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde::Serialize;
use store::{Actor, Store};

use crate::output::{FileJson, Report, Row, out, said};
use crate::{user, vpath};

#[derive(Debug, Subcommand)]
pub(crate) enum VersionsCmd {
    /// List a file's earlier contents, newest first.
    List { user: String, path: String },
    /// Make an earlier content current again (the current one becomes a version).
    Restore { user: String, path: String, version: i64 },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TrashCmd {
    /// List deleted items, newest first.
    List { user: String },
    /// Put an item back (where it was, or at --to).
    Restore {
        user: String,
        id: i64,
        #[arg(long)]
        to: Option<String>,
    },
    /// Delete items for good: one id, or --all.
    Purge {
        user: String,
        id: Option<i64>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum FilesCmd {
    /// List a folder.
    Ls {
        user: String,
        #[arg(default_value = "/")]
        path: String,
    },
    /// Show one file or folder.
    Stat { user: String, path: String },
    /// Write a file from stdin (or --from FILE); the old content becomes a version.
    Put {
        user: String,
        path: String,
        #[arg(long)]
        from: Option<PathBuf>,
        /// Create missing parent folders.
        #[arg(long, short)]
        parents: bool,
    },
    /// Print a file to stdout (or --to FILE).
    Get {
        user: String,
        path: String,
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// Create a folder.
    Mkdir { user: String, path: String },
    /// Move to the trash.
    Rm { user: String, path: String },
    /// Move or rename.
    Mv {
        user: String,
        from: String,
        to: String,
        #[arg(long)]
        overwrite: bool,
    },
    /// Copy.
    Cp {
        user: String,
        from: String,
        to: String,
        #[arg(long)]
        overwrite: bool,
    },
}

/// A line of `versions list`.
#[derive(Serialize)]
struct Version {
    id: i64,
    file_id: i64,
    size: u64,
    mtime: String,
    created_at: String,
    etag: String,
    blake3: String,
}

impl Row for Version {
    const HEADER: &'static [&'static str] = &["ID", "SIZE", "REPLACED AT", "BLAKE3"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            store::format_size(self.size),
            self.created_at.clone(),
            self.blake3[..16].to_owned(),
        ]
    }
}

/// A line of `trash list`.
#[derive(Serialize)]
struct TrashItem {
    id: i64,
    file_id: i64,
    path: String,
    #[serde(rename = "type")]
    kind: &'static str,
    size: u64,
    deleted_at: String,
}

impl Row for TrashItem {
    const HEADER: &'static [&'static str] = &["ID", "TYPE", "SIZE", "DELETED AT", "PATH"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.kind.to_owned(),
            store::format_size(self.size),
            self.deleted_at.clone(),
            self.path.clone(),
        ]
    }
}

/// `files stat`: one file, shown as a one-line table.
#[derive(Serialize)]
#[serde(transparent)]
struct Stat(FileJson);

impl Report for Stat {
    fn human(&self) -> String {
        crate::output::table(FileJson::HEADER, vec![self.0.cells()])
    }
}

/// `files put`.
#[derive(Serialize)]
struct Written {
    file: FileJson,
    created: bool,
    version: Option<i64>,
}

impl Report for Written {
    fn human(&self) -> String {
        format!(
            "{} {} ({})",
            if self.created { "created" } else { "replaced" },
            self.file.path,
            store::format_size(self.file.size)
        )
    }
}

#[derive(Serialize)]
struct Freed {
    freed: u64,
}
#[derive(Serialize)]
struct Trashed {
    trash_id: i64,
}

pub(crate) async fn versions_cmd(
    store: &Store,
    actor: &Actor,
    j: bool,
    cmd: &VersionsCmd,
) -> anyhow::Result<ExitCode> {
    match cmd {
        VersionsCmd::List { user: u, path } => {
            let u = user(store, u).await?;
            let rows: Vec<Version> = store
                .versions(&u, &vpath(path)?)
                .await?
                .iter()
                .map(|v| Version {
                    id: v.id.0,
                    file_id: v.file_id.0,
                    size: v.size,
                    mtime: v.mtime.to_rfc3339(),
                    created_at: v.created_at.to_rfc3339(),
                    etag: v.etag.0.clone(),
                    blake3: v.content_hash.to_hex(),
                })
                .collect();
            out(j, &rows)
        }
        VersionsCmd::Restore { user: u, path, version } => {
            let u = user(store, u).await?;
            let node = store.restore_version(actor, &u, &vpath(path)?, store::VersionId(*version)).await?;
            out(j, &said(FileJson::from(&node), format!("restored version {version} of {}", node.path)))
        }
    }
}

pub(crate) async fn trash_cmd(
    store: &Store,
    actor: &Actor,
    j: bool,
    cmd: &TrashCmd,
) -> anyhow::Result<ExitCode> {
    match cmd {
        TrashCmd::List { user: u } => {
            let u = user(store, u).await?;
            let rows: Vec<TrashItem> = store
                .trash_list(&u)
                .await?
                .iter()
                .map(|t| TrashItem {
                    id: t.id.0,
                    file_id: t.file_id.0,
                    path: t.orig_path.to_string(),
                    kind: if t.is_dir { "dir" } else { "file" },
                    size: t.size,
                    deleted_at: t.deleted_at.to_rfc3339(),
                })
                .collect();
            out(j, &rows)
        }
        TrashCmd::Restore { user: u, id, to } => {
            let u = user(store, u).await?;
            let to = to.as_deref().map(vpath).transpose()?;
            let node = store.trash_restore(actor, &u, store::TrashId(*id), to).await?;
            out(j, &said(FileJson::from(&node), format!("restored {}", node.path)))
        }
        TrashCmd::Purge { user: u, id, all } => {
            let u = user(store, u).await?;
            if id.is_none() && !all {
                anyhow::bail!("name a trash item id, or pass --all to empty the trash");
            }
            let freed = store.trash_purge(actor, &u, id.map(store::TrashId)).await?;
            out(j, &said(Freed { freed }, format!("freed {}", store::format_size(freed))))
        }
    }
}

pub(crate) async fn files_cmd(
    store: &Store,
    actor: &Actor,
    j: bool,
    cmd: &FilesCmd,
) -> anyhow::Result<ExitCode> {
    match cmd {
        FilesCmd::Ls { user: u, path } => {
            let u = user(store, u).await?;
            let rows: Vec<FileJson> =
                store.list(&u, &vpath(path)?).await?.iter().map(FileJson::from).collect();
            out(j, &rows)
        }
        FilesCmd::Stat { user: u, path } => {
            let u = user(store, u).await?;
            let n = store.stat(&u, &vpath(path)?).await?;
            out(j, &Stat(FileJson::from(&n)))
        }
        FilesCmd::Put { user: u, path, from, parents } => {
            let u = user(store, u).await?;
            let path = vpath(path)?;
            let opts = store::WriteOptions { create_parents: *parents, ..Default::default() };
            let outcome = match from {
                Some(file) => {
                    let f = tokio::fs::File::open(file)
                        .await
                        .with_context(|| format!("opening {}", file.display()))?;
                    let len = f.metadata().await?.len();
                    store
                        .write(actor, &u, &path, f, store::WriteOptions { expected_len: Some(len), ..opts })
                        .await?
                }
                None => store.write(actor, &u, &path, tokio::io::stdin(), opts).await?,
            };
            out(
                j,
                &Written {
                    file: FileJson::from(&outcome.node),
                    created: outcome.created,
                    version: outcome.version.map(|v| v.0),
                },
            )
        }
        FilesCmd::Get { user: u, path, to } => {
            let u = user(store, u).await?;
            let (_, file) = store.open_file(&u, &vpath(path)?).await?;
            let mut src = tokio::fs::File::from_std(file);
            match to {
                Some(dest) => {
                    let mut dst = tokio::fs::File::create(dest)
                        .await
                        .with_context(|| format!("creating {}", dest.display()))?;
                    tokio::io::copy(&mut src, &mut dst).await?;
                }
                None => {
                    tokio::io::copy(&mut src, &mut tokio::io::stdout()).await?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        FilesCmd::Mkdir { user: u, path } => {
            let u = user(store, u).await?;
            let n = store.mkdir(actor, &u, &vpath(path)?).await?;
            out(j, &said(FileJson::from(&n), format!("created folder {}", n.path)))
        }
        FilesCmd::Rm { user: u, path } => {
            let u = user(store, u).await?;
            let path = vpath(path)?;
            let tid = store.delete(actor, &u, &path, None).await?;
            out(j, &said(Trashed { trash_id: tid.0 }, format!("moved {path} to the trash (item {tid})")))
        }
        FilesCmd::Mv { user: u, from, to, overwrite } => {
            let u = user(store, u).await?;
            let n = store
                .rename(actor, &u, &vpath(from)?, &vpath(to)?, store::Replace::overwrite(*overwrite))
                .await?;
            out(j, &said(FileJson::from(&n), format!("moved to {}", n.path)))
        }
        FilesCmd::Cp { user: u, from, to, overwrite } => {
            let u = user(store, u).await?;
            let n = store
                .copy(actor, &u, &vpath(from)?, &vpath(to)?, store::Replace::overwrite(*overwrite))
                .await?;
            out(j, &said(FileJson::from(&n), format!("copied to {}", n.path)))
        }
    }
}
