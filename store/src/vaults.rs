//! Encrypted vaults, the server's side (the design: `docs/design/vaults.md`).
//!
//! A vault is a folder of its owner's tree marked with the vault's 16-byte id. What is inside is
//! the `cairn` client's (or the browser's) ciphertext: encrypted files, signed manifests and the
//! signed vault config, each beginning with its format's magic and the vault's id. The server
//! cannot check their cryptography (it holds no key) and does not try; it keeps one rule, so that
//! plaintext never lands in a vault by mistake — through WebDAV, the mount, a Nextcloud app or a
//! move: **every file written into a vault is one of those stored objects, of that vault**. A
//! write that is not is refused (`PermissionDenied`, naming the vault) before it commits, so
//! nothing is half-written; an empty file is refused; a move or copy into a vault from outside
//! it is refused. Folders may be made inside (the client names them). Everything else is as for
//! any folder: versions, trash, quota, shares, ranges.
//!
//! The check costs a query only for accounts that have a vault (kept in memory, see
//! [`VaultUsers`]).

use std::collections::HashSet;
use std::sync::Mutex;

use crate::db::Cached;
use crate::path::VPath;
use crate::staging::Content;
use crate::txn::{Change, LockSet, Tx, in_txn};
use crate::types::{Actor, Timestamp, User, UserId};
use crate::{Error, ErrorKind, Result, Store, blocking};

/// The length of the start of a stored object that names its vault.
const HEAD: usize = 40;

/// The stored formats (`vault/src`): magic, and where the vault id sits.
const FORMATS: [(&[u8; 8], usize); 3] = [
    // An encrypted file (CEF v1): 64-byte header, vault id at 24.
    (b"CAIRNCEF", 24),
    // A directory manifest: magic, version, vault id.
    (b"CAIRNMAN", 9),
    // The vault config: magic, version, vault id.
    (b"CAIRNVCF", 9),
];

/// Which vault a stored object's first bytes say it belongs to (`None`: not a vault object).
pub fn claimed_vault(head: &[u8]) -> Option<[u8; 16]> {
    FORMATS.iter().find_map(|(magic, at)| {
        (head.len() >= at + 16 && &head[..8] == *magic)
            .then(|| head[*at..at + 16].try_into().expect("16 bytes"))
    })
}

/// An account's vault keys as the server holds them: its seed wrapped twice on the member's
/// device, and its public keys. Nothing here opens without a secret the server never sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultAccount {
    /// The seed under the passphrase and the emergency kit's secret (`CAIRNACC`, kind 1).
    pub passphrase_blob: Vec<u8>,
    /// The seed under the recovery key (`CAIRNACC`, kind 2).
    pub recovery_blob: Vec<u8>,
    /// The X25519 key vault keys are wrapped to.
    pub x25519: [u8; 32],
    /// The Ed25519 key its manifests and configs are signed with.
    pub ed25519: [u8; 32],
}

/// A wrapped account blob's start: magic, version 1, kind.
const ACCOUNT_MAGIC: &[u8; 8] = b"CAIRNACC";
/// The longest wrapped blob taken (today's are 98 bytes).
const ACCOUNT_MAX: usize = 1024;

/// A vault, as its owner lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vault {
    /// Its folder.
    pub path: VPath,
    /// Its id (the one its stored objects carry).
    pub id: [u8; 16],
    /// When it was made.
    pub created: Timestamp,
}

/// The accounts that have (or had) a vault, loaded on first use: the write path asks the
/// database where a write lands only for them. Vaults are made through `cairnd` only, which
/// adds to its own set, so the set is complete once loaded (a `cairnctl` run loads it afresh).
#[derive(Default)]
pub(crate) struct VaultUsers(Mutex<(bool, HashSet<UserId>)>);

impl VaultUsers {
    /// Whether `user` surely has no vault, without asking the database.
    fn surely_none(&self, user: UserId) -> bool {
        let held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        held.0 && !held.1.contains(&user)
    }

    async fn contains(&self, db: &impl Cached, user: UserId) -> Result<bool> {
        {
            let held = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if held.0 {
                return Ok(held.1.contains(&user));
            }
        }
        let rows = db.cquery("SELECT DISTINCT user_id FROM vaults", &[]).await?;
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Merged with what was added meanwhile (a vault being made while this loaded).
        held.1.extend(rows.iter().map(|r| UserId(r.get(0))));
        held.0 = true;
        Ok(held.1.contains(&user))
    }

    /// Before `user`'s vault commits, so that no write after the commit skips the check.
    fn add(&self, user: UserId) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).1.insert(user);
    }
}

/// The vault whose folder is the path `$2` of user `$1` or one of its ancestors.
const AROUND: &str = "SELECT n.path, v.vault_id, v.created_ns FROM vaults v JOIN nodes n ON n.id = v.node_id
     WHERE v.user_id = $1 AND n.trash_id IS NULL
       AND (n.path = $2 OR left($2, length(n.path) + 1) = n.path || '/')";

fn vault_id(b: &[u8]) -> Result<[u8; 16]> {
    b.try_into().map_err(|_| Error::internal("a vault id of another length"))
}

fn key32(b: &[u8]) -> Result<[u8; 32]> {
    b.try_into().map_err(|_| Error::internal("a stored public key of another length"))
}

fn refused(vault: &VPath, what: &str) -> Error {
    Error::new(
        ErrorKind::PermissionDenied,
        format!(
            "{vault} is an encrypted vault: {what}; only its own encrypted files can be stored there (use `cairn vault`)"
        ),
    )
}

impl Store {
    /// Make the empty folder `path` a vault with id `id` (chosen by the client; unique).
    pub async fn create_vault(
        &self,
        actor: &Actor,
        user: &User,
        path: &VPath,
        id: [u8; 16],
    ) -> Result<Vault> {
        if path.is_root() {
            return Err(Error::new(ErrorKind::InvalidInput, "a vault is a folder, not your whole tree"));
        }
        self.inner.vault_users.add(user.id);
        let (store, actor, user, path) = (self.clone(), actor.clone(), user.clone(), path.clone());
        crate::detached(async move {
            let now = store.clock().now();
            let s = &store;
            in_txn!(s, LockSet::Tree(user.id), &user, &actor, now, |tx, cx| {
                let row = tx
                    .cquery_opt(
                        "SELECT id, is_dir, EXISTS (SELECT 1 FROM nodes c WHERE c.parent_id = n.id AND c.trash_id IS NULL)
                         FROM nodes n WHERE user_id = $1 AND path = $2 AND trash_id IS NULL",
                        &[&user.id.0, &path.as_str()],
                    )
                    .await?
                    .ok_or_else(|| Error::not_found(&path))?;
                let (node, is_dir, full): (i64, bool, bool) = (row.get(0), row.get(1), row.get(2));
                if !is_dir {
                    return Err(Error::new(ErrorKind::NotADirectory, format!("{path} is a file")));
                }
                if full {
                    return Err(Error::new(ErrorKind::NotEmpty, format!("{path} is not empty: a vault starts empty")));
                }
                if let Some((outer, _)) = s.vault_around(&tx, user.id, &path).await? {
                    return Err(Error::new(ErrorKind::Conflict, format!("{path} is inside the vault {outer}")));
                }
                let below = tx
                    .cquery_opt(
                        "SELECT n.path FROM vaults v JOIN nodes n ON n.id = v.node_id
                         WHERE v.user_id = $1 AND n.path > $2 || '/' AND n.path < $2 || '0' LIMIT 1",
                        &[&user.id.0, &path.as_str()],
                    )
                    .await?;
                if below.is_some() {
                    return Err(Error::new(ErrorKind::Conflict, format!("{path} holds a vault")));
                }
                let made = tx
                    .cquery_opt(
                        "INSERT INTO vaults (node_id, user_id, vault_id, created_ns) VALUES ($1, $2, $3, $4)
                         ON CONFLICT DO NOTHING RETURNING node_id",
                        &[&node, &user.id.0, &&id[..], &now.0],
                    )
                    .await?;
                if made.is_none() {
                    return Err(Error::new(ErrorKind::AlreadyExists, format!("{path} is a vault already, or the id is taken")));
                }
                cx.fx.audit.push(("vault.create", Some(path.to_string()), Some(hex::encode(id))));
                Vault { path: path.clone(), id, created: now }
            })
        })
        .await
    }

    /// Keep `user`'s vault keys (made or changed on their device). Each blob must be a wrapped
    /// account blob of its kind — never a bare seed or anything else a careless client might
    /// send. Changing the public keys (a new seed) is audited as such: members who pinned the
    /// old ones will see different safety numbers.
    pub async fn set_vault_account(&self, actor: &Actor, user: &User, account: &VaultAccount) -> Result<()> {
        for (blob, kind, what) in
            [(&account.passphrase_blob, 1u8, "passphrase_blob"), (&account.recovery_blob, 2, "recovery_blob")]
        {
            if blob.len() > ACCOUNT_MAX || blob.len() < 10 || &blob[..8] != ACCOUNT_MAGIC || blob[9] != kind {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("{what}: not a wrapped account blob of its kind (made by `cairn vault`)"),
                ));
            }
        }
        let now = self.clock().now();
        let mut client = self.inner.pool.get().await?;
        let tx = client.transaction().await?;
        let old: Option<(Vec<u8>, Vec<u8>)> = tx
            .cquery_opt(
                "SELECT x25519, ed25519 FROM vault_accounts WHERE user_id = $1 FOR UPDATE",
                &[&user.id.0],
            )
            .await?
            .map(|r| (r.get(0), r.get(1)));
        tx.cexecute(
            "INSERT INTO vault_accounts (user_id, passphrase_blob, recovery_blob, x25519, ed25519, updated_ns)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (user_id) DO UPDATE SET passphrase_blob = $2, recovery_blob = $3, x25519 = $4,
               ed25519 = $5, updated_ns = $6",
            &[
                &user.id.0,
                &account.passphrase_blob,
                &account.recovery_blob,
                &&account.x25519[..],
                &&account.ed25519[..],
                &now.0,
            ],
        )
        .await?;
        let action = match old {
            None => "vault.account.create",
            Some((x, e)) if x == account.x25519 && e == account.ed25519 => "vault.account.rewrap",
            Some(_) => "vault.account.new_keys",
        };
        crate::txn::audit(&tx, Some(user.id), actor, action, None, None, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// `user`'s own vault keys (`NotFound` before they enrolled).
    pub async fn vault_account(&self, user: &User) -> Result<VaultAccount> {
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_opt(
                "SELECT passphrase_blob, recovery_blob, x25519, ed25519 FROM vault_accounts WHERE user_id = $1",
                &[&user.id.0],
            )
            .await?
            .ok_or_else(|| Error::not_found("vault keys (run `cairn vault enroll`)"))?;
        Ok(VaultAccount {
            passphrase_blob: row.get(0),
            recovery_blob: row.get(1),
            x25519: key32(row.get(2))?,
            ed25519: key32(row.get(3))?,
        })
    }

    /// The public keys of the account `name` (to share a vault with them): `(x25519, ed25519)`.
    /// An account that does not exist and one that has not enrolled are the same `NotFound`.
    pub async fn vault_public_keys(&self, name: &crate::path::UserName) -> Result<([u8; 32], [u8; 32])> {
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_opt(
                "SELECT a.x25519, a.ed25519 FROM vault_accounts a JOIN users u ON u.id = a.user_id WHERE u.name = $1",
                &[&name.as_str()],
            )
            .await?
            .ok_or_else(|| Error::not_found(format!("vault keys of {name}")))?;
        Ok((key32(row.get(0))?, key32(row.get(1))?))
    }

    /// `user`'s vaults, by path.
    pub async fn vaults(&self, user: &User) -> Result<Vec<Vault>> {
        let client = self.inner.pool.get().await?;
        let rows = client
            .cquery(
                "SELECT n.path, v.vault_id, v.created_ns FROM vaults v JOIN nodes n ON n.id = v.node_id
                 WHERE v.user_id = $1 AND n.trash_id IS NULL ORDER BY n.path",
                &[&user.id.0],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Vault {
                    path: VPath::from_db(r.get(0))?,
                    id: vault_id(r.get(1))?,
                    created: Timestamp(r.get(2)),
                })
            })
            .collect()
    }

    /// The vault `path` is in (or is), with its id.
    async fn vault_around(
        &self,
        tx: &Tx<'_>,
        user: UserId,
        path: &VPath,
    ) -> Result<Option<(VPath, [u8; 16])>> {
        Ok(self.vault_made(tx, user, path).await?.map(|(p, id, _)| (p, id)))
    }

    /// [`Store::vault_around`] with the time the vault was made.
    async fn vault_made(
        &self,
        tx: &Tx<'_>,
        user: UserId,
        path: &VPath,
    ) -> Result<Option<(VPath, [u8; 16], Timestamp)>> {
        if !self.inner.vault_users.contains(tx.db(), user).await? {
            return Ok(None);
        }
        let row = tx.cquery_opt(AROUND, &[&user.0, &path.as_str()]).await?;
        row.map(|r| Ok((VPath::from_db(r.get(0))?, vault_id(r.get(1))?, Timestamp(r.get(2))))).transpose()
    }

    /// Whether `path` of `user` is in a vault (or is one): the FUSE mount, a plaintext front end
    /// whose writes reach the store only after `close` returns, refuses writing there up front.
    /// No query for an account known to have no vault.
    pub async fn in_vault(&self, user: &User, path: &VPath) -> Result<bool> {
        if self.inner.vault_users.surely_none(user.id) {
            return Ok(false);
        }
        let client = self.inner.pool.get().await?;
        if !self.inner.vault_users.contains(&client, user.id).await? {
            return Ok(false);
        }
        Ok(client.cquery_opt(AROUND, &[&user.id.0, &path.as_str()]).await?.is_some())
    }

    /// Refuse `content` at `path` unless it is a stored object of the vault `path` is in (if any).
    pub(crate) async fn check_vault_content(
        &self,
        cx: &Change<'_>,
        path: &VPath,
        content: &Content,
    ) -> Result<()> {
        let Some((vault, id)) = self.vault_around(cx.tx, cx.user.id, path).await? else {
            return Ok(());
        };
        let head: Vec<u8> = match &content.logged {
            Some(bytes) => bytes[..bytes.len().min(HEAD)].to_vec(),
            None => {
                let (store, rel) = (self.clone(), content.staging.clone());
                blocking(move || {
                    use std::os::unix::fs::FileExt;
                    let file =
                        store.inner.disk.open_read(&rel).map_err(|e| Error::io("staged content", e))?;
                    let mut head = vec![0u8; HEAD];
                    let n = file.read_at(&mut head, 0).map_err(|e| Error::io("staged content", e))?;
                    head.truncate(n);
                    Ok(head)
                })
                .await?
            }
        };
        match claimed_vault(&head) {
            Some(claimed) if claimed == id => Ok(()),
            Some(_) => Err(refused(&vault, "this file belongs to another vault")),
            None => Err(refused(&vault, "this file is not encrypted")),
        }
    }

    /// Refuse restoring the trash item that was `orig`, deleted at `deleted`, to `target` in a
    /// vault, unless it was that vault's own: deleted from inside it after it was made (anything
    /// older was there before the folder became a vault, and may be plaintext).
    pub(crate) async fn check_vault_restore(
        &self,
        cx: &Change<'_>,
        target: &VPath,
        orig: &VPath,
        deleted: Timestamp,
    ) -> Result<()> {
        match self.vault_made(cx.tx, cx.user.id, target).await? {
            Some((vault, _, made)) if !(orig.starts_with(&vault) && &vault != orig && deleted >= made) => {
                Err(refused(&vault, "what is restored from the trash was not its own"))
            }
            _ => Ok(()),
        }
    }

    /// Refuse a new entry at `path` made without content: an empty file in a vault (folders may
    /// be made), or anything brought in from outside it — a move or copy from `from` (a path of
    /// the same `user`; `None` for an entry made here).
    pub(crate) async fn check_vault_entry(
        &self,
        cx: &Change<'_>,
        path: &VPath,
        is_dir: bool,
        from: Option<&VPath>,
    ) -> Result<()> {
        let Some((vault, _)) = self.vault_around(cx.tx, cx.user.id, path).await? else {
            return Ok(());
        };
        match from {
            None if is_dir => Ok(()),
            None => Err(refused(&vault, "an empty file is not encrypted")),
            Some(from) if from.starts_with(&vault) && &vault != from => Ok(()),
            Some(_) => Err(refused(&vault, "what is moved or copied in from outside it is not its own")),
        }
    }
}
