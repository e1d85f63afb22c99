//! `cairn vault`: encrypted vaults on this device (the design: `docs/design/vaults.md`).
//!
//! The server holds a vault as a flat folder of stored objects named by id — `config` (the
//! owner-signed member list and wrapped keys), `m-<dir id>` (each directory's signed, encrypted
//! manifest; the root's id is all zeros) and `f-<file id>` (each file, CEF v1) — so it sees
//! neither names nor the tree's shape. This device keeps its account seed (`vault/seed`, mode
//! 0600, like an SSH key) and what it has seen (`vault/pins.json`: each vault's owner key and the
//! newest config and manifest counters), so a server that swaps the owner or rolls anything back
//! is caught.
//!
//! `push` encrypts a local tree into a vault (a file whose ciphertext is unchanged — synthetic
//! nonces make it so — is not sent again); `pull` and `open-copy` check every object before
//! writing anything: a tree is decrypted into a staging folder first and moved into place only
//! when all of it verified, so a bad object leaves the local tree untouched.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use vault::account::{self, Cost, Seed, Unlock};
use vault::cef::{self, HEADER_LEN, Header, Layout};
use vault::config::{self, Config, Epoch, Role};
use vault::keys::{VaultKey, commitment, file_keys, manifest_key};
use vault::manifest::{self, Entry, Expect, Kind, Manifest};
use vault::rng::{SysRng, random};
use vault::share::{Member, safety_number};

use crate::api::Api;

const ROOT: [u8; 16] = [0; 16];
const CONFIG: &str = "config";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn grouped(bytes: &[u8]) -> String {
    hex::encode(bytes)
        .as_bytes()
        .chunks(8)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// `N` bytes from hex digits, whatever separates them (`-`, `:`, spaces).
fn ungroup<const N: usize>(s: &str, what: &str) -> Result<[u8; N]> {
    let clean: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    hex::decode(&clean)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow!("{what}: {} hex digits", N * 2))
}

/// What this device has seen of each vault.
#[derive(Default, Serialize, Deserialize)]
struct Pins {
    vaults: BTreeMap<String, Pin>,
}

#[derive(Default, Clone, Serialize, Deserialize)]
struct Pin {
    owner: String,
    config: u64,
    dirs: BTreeMap<String, u64>,
}

/// This device's vault state: its config directory's `vault/`.
pub struct Device {
    dir: PathBuf,
    user: String,
}

impl Device {
    pub fn new(config_dir: &Path, user: &str) -> Device {
        Device { dir: config_dir.join("vault"), user: user.to_owned() }
    }

    fn seed(&self) -> Result<Seed> {
        let raw = std::fs::read_to_string(self.dir.join("seed"))
            .context("no vault keys on this device: run `cairn vault enroll` (or `unlock`) first")?;
        Ok(Seed(ungroup(&raw, "seed")?))
    }

    fn keep_seed(&self, seed: &Seed) -> Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        crate::write_private(&self.dir.join("seed"), hex::encode(seed.0).as_bytes())
    }

    fn pins(&self) -> Result<Pins> {
        match std::fs::read(self.dir.join("pins.json")) {
            Ok(raw) => Ok(serde_json::from_slice(&raw)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Pins::default()),
            Err(e) => Err(e.into()),
        }
    }

    fn keep_pins(&self, pins: &Pins) -> Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        crate::write_private(&self.dir.join("pins.json"), &serde_json::to_vec_pretty(pins)?)
    }
}

/// The emergency kit, printed once at enrolment: what opens the account's keys with no device
/// (the kit secret with the passphrase) or with no passphrase (the recovery key and its blob).
fn kit_text(server: &str, user: &str, kit: &[u8; 16], recovery: &[u8; 32], recovery_blob: &[u8]) -> String {
    format!(
        "Cairn emergency kit — print it, keep it away from this computer.\n\
         server: {server}\n\
         account: {user}\n\
         kit secret: {}\n\
         recovery key: {}\n\
         recovery blob: {}\n\
         With the passphrase and the kit secret: `cairn vault unlock`. Without the passphrase: \n\
         `cairn vault recover` with the recovery key. With neither, the vaults' data is gone.\n",
        grouped(kit),
        grouped(recovery),
        b64().encode(recovery_blob)
    )
}

fn kit_field<'a>(kit: &'a str, name: &str) -> Result<&'a str> {
    kit.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')).map(str::trim))
        .ok_or_else(|| anyhow!("the emergency kit has no `{name}:` line"))
}

/// Make this account's vault keys: a new seed, wrapped under the passphrase and a new kit secret
/// and under a new recovery key, stored on the server; the seed kept on this device. Returns the
/// emergency kit's text.
pub async fn enroll(api: &Api, dev: &Device, passphrase: &str, replace: bool) -> Result<String> {
    if passphrase.chars().count() < 8 {
        bail!("a passphrase of at least 8 characters, please");
    }
    if !replace && api.json(Method::GET, "/vault/account", None).await?.is_some() {
        bail!(
            "this account has vault keys already: `cairn vault unlock` on a new device, or --replace (old vaults then stay closed)"
        );
    }
    let seed = Seed(random());
    let (kit, recovery): ([u8; 16], [u8; 32]) = (random(), random());
    let user = dev.user.as_bytes();
    let by_pass = account::wrap(
        &seed,
        user,
        &Unlock::Passphrase { passphrase, secret_key: &kit },
        Cost::default(),
        &random(),
    )?;
    let by_recovery = account::wrap(&seed, user, &Unlock::Recovery(&recovery), Cost::default(), &random())?;
    put_account(api, &seed, &by_pass, &by_recovery).await?;
    dev.keep_seed(&seed)?;
    std::fs::create_dir_all(&dev.dir)?;
    crate::write_private(&dev.dir.join("kit-secret"), hex::encode(kit).as_bytes())?;
    Ok(kit_text(api.base(), &dev.user, &kit, &recovery, &by_recovery))
}

async fn put_account(api: &Api, seed: &Seed, by_pass: &[u8], by_recovery: &[u8]) -> Result<()> {
    let me = seed.member();
    let body = serde_json::json!({
        "passphrase_blob": b64().encode(by_pass),
        "recovery_blob": b64().encode(by_recovery),
        "x25519": hex::encode(me.x25519),
        "ed25519": hex::encode(me.ed25519),
    });
    api.json(Method::PUT, "/vault/account", Some(&body)).await?;
    Ok(())
}

async fn account_blobs(api: &Api) -> Result<(Vec<u8>, Vec<u8>)> {
    let v = api
        .json(Method::GET, "/vault/account", None)
        .await?
        .ok_or_else(|| anyhow!("this account has no vault keys: `cairn vault enroll`"))?;
    let blob = |k: &str| -> Result<Vec<u8>> { Ok(b64().decode(v[k].as_str().unwrap_or_default())?) };
    Ok((blob("passphrase_blob")?, blob("recovery_blob")?))
}

/// On another device: open the account's keys with the passphrase and the kit secret.
pub async fn unlock(api: &Api, dev: &Device, passphrase: &str, kit: &str) -> Result<()> {
    let kit: [u8; 16] = ungroup(kit, "kit secret")?;
    let (by_pass, _) = account_blobs(api).await?;
    let seed =
        account::unwrap(&by_pass, dev.user.as_bytes(), &Unlock::Passphrase { passphrase, secret_key: &kit })
            .context("the vault keys did not open")?;
    dev.keep_seed(&seed)
}

/// A forgotten passphrase: open the keys with the recovery key, and wrap them under a new
/// passphrase and a new kit secret (the keys, and so every vault, stay the same). Returns the
/// new kit's text.
pub async fn recover(api: &Api, dev: &Device, recovery: &str, new_passphrase: &str) -> Result<String> {
    let recovery: [u8; 32] = ungroup(recovery, "recovery key")?;
    let (_, by_recovery) = account_blobs(api).await?;
    let seed = account::unwrap(&by_recovery, dev.user.as_bytes(), &Unlock::Recovery(&recovery))
        .context("the recovery key did not open the vault keys")?;
    let kit: [u8; 16] = random();
    let unlock = Unlock::Passphrase { passphrase: new_passphrase, secret_key: &kit };
    let by_pass = account::wrap(&seed, dev.user.as_bytes(), &unlock, Cost::default(), &random())?;
    put_account(api, &seed, &by_pass, &by_recovery).await?;
    dev.keep_seed(&seed)?;
    crate::write_private(&dev.dir.join("kit-secret"), hex::encode(kit).as_bytes())?;
    Ok(kit_text(api.base(), &dev.user, &kit, &recovery, &by_recovery))
}

/// Make the (new or empty) folder `remote` a vault owned by this account.
pub async fn create(api: &Api, dev: &Device, remote: &str) -> Result<String> {
    let seed = dev.seed()?;
    let (vault_id, key): ([u8; 16], VaultKey) = (random(), VaultKey(random()));
    if api.stat(remote).await?.is_none() {
        api.mkdir(remote).await?;
    }
    let body = serde_json::json!({ "path": remote, "id": hex::encode(vault_id) });
    api.json(Method::POST, "/vaults", Some(&body))
        .await?
        .ok_or_else(|| anyhow!("{remote}: no such folder"))?;
    let me = seed.member();
    let wrapped = vault::share::wrap(&key, &vault_id, 0, &me, &mut SysRng)?;
    let cfg = Config {
        vault_id,
        counter: 1,
        owner: me.ed25519,
        members: vec![(Role::Writer, me)],
        epochs: vec![Epoch { epoch: 0, commitment: commitment(&key), wrapped: vec![(0, wrapped)] }],
    };
    api.put_bytes(&format!("{remote}/{CONFIG}"), config::seal(&seed.signing_key(), &cfg)).await?;
    let mut pins = dev.pins()?;
    pins.vaults.insert(
        hex::encode(vault_id),
        Pin { owner: hex::encode(me.ed25519), config: 1, dirs: BTreeMap::new() },
    );
    dev.keep_pins(&pins)?;
    Ok(hex::encode(vault_id))
}

/// Where a vault's stored objects come from: the server, or a copy of its folder.
pub enum Source<'a> {
    Remote(&'a Api, &'a str),
    Copy(&'a Path),
}

impl Source<'_> {
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Source::Remote(api, remote) => api.get_bytes(&format!("{remote}/{name}")).await,
            Source::Copy(dir) => match std::fs::read(dir.join(name)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
        }
    }
}

/// An opened vault: its config and its key for the newest epoch this account holds.
struct Opened {
    cfg: Config,
    vault_id: [u8; 16],
    keys: HashMap<u32, VaultKey>,
}

impl Opened {
    fn key(&mut self, seed: &Seed, epoch: u32) -> Result<&VaultKey> {
        if !self.keys.contains_key(&epoch) {
            let k =
                self.cfg.key_for(seed, epoch).with_context(|| format!("the vault key of epoch {epoch}"))?;
            self.keys.insert(epoch, k);
        }
        Ok(&self.keys[&epoch])
    }

    fn newest_epoch(&self) -> u32 {
        self.cfg.epochs.iter().map(|e| e.epoch).max().unwrap_or(0)
    }

    /// The key of manifests sealed in `epoch` (a manifest's epoch is in its clear header; a
    /// member removed before that epoch holds no key for it).
    fn manifest_key(&mut self, seed: &Seed, epoch: u32) -> Result<[u8; 32]> {
        let vault_id = self.vault_id;
        Ok(manifest_key(self.key(seed, epoch)?, &vault_id))
    }

    /// Open a manifest the server handed over for `dir_id`.
    fn open_manifest(
        &mut self,
        seed: &Seed,
        raw: &[u8],
        dir_id: [u8; 16],
        min_counter: u64,
    ) -> Result<Manifest> {
        let epoch = raw
            .get(49..53)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4")))
            .ok_or(vault::Error::Length)?;
        let key = self.manifest_key(seed, epoch)?;
        let writers = self.cfg.writers();
        let expect = Expect { vault_id: self.vault_id, dir_id, min_counter, writers: &writers };
        Ok(manifest::open(&key, raw, &expect)?)
    }
}

/// Open the config at `src` (fetched once): signed by the pinned owner (or, the first time,
/// whoever signed it — pinned from then on), not older than seen. Returns the vault, its pin as
/// it stands after this, and the vault's id (hex), under which `pins` keeps it.
async fn open_config(src: &Source<'_>, pins: &Pins) -> Result<(Opened, Pin, String)> {
    let raw = src.get(CONFIG).await?.ok_or_else(|| anyhow!("not a vault: no config"))?;
    if raw.len() < 9 + 16 + 8 + 32 {
        bail!("the vault's config: {}", vault::Error::Length);
    }
    let vault_id: [u8; 16] = raw[9..25].try_into().expect("16");
    let id = hex::encode(vault_id);
    let pin = pins.vaults.get(&id);
    let owner: [u8; 32] = match pin {
        Some(p) => ungroup(&p.owner, "pinned owner")?,
        None => raw[33..65].try_into().expect("32"),
    };
    let cfg =
        config::open(&raw, &vault_id, &owner, pin.map_or(0, |p| p.config)).context("the vault's config")?;
    let mut next = pin.cloned().unwrap_or_default();
    next.owner = hex::encode(owner);
    next.config = cfg.counter;
    Ok((Opened { cfg, vault_id, keys: HashMap::new() }, next, id))
}

fn file_name(id: &[u8; 16]) -> String {
    format!("f-{}", hex::encode(id))
}

fn manifest_name(id: &[u8; 16]) -> String {
    format!("m-{}", hex::encode(id))
}

/// A verified tree: per directory (relative path), its entries, and each file's plaintext
/// staged at `staging/<file id>`.
struct Verified {
    dirs: Vec<(PathBuf, Manifest)>,
}

/// Read and check the whole tree below the root manifest, decrypting every file into `staging`.
async fn verify_tree(
    src: &Source<'_>,
    seed: &Seed,
    v: &mut Opened,
    pin: &mut Pin,
    staging: &Path,
) -> Result<Verified> {
    let mut out = Verified { dirs: Vec::new() };
    let mut todo = vec![(PathBuf::new(), ROOT)];
    while let Some((rel, dir_id)) = todo.pop() {
        let name = manifest_name(&dir_id);
        let raw = src
            .get(&name)
            .await?
            .ok_or_else(|| anyhow!("{}: its manifest is missing (hidden by the server?)", show(&rel)))?;
        let seen = pin.dirs.get(&hex::encode(dir_id)).copied().unwrap_or(0);
        let m = v
            .open_manifest(seed, &raw, dir_id, seen)
            .with_context(|| format!("{}: its manifest", show(&rel)))?;
        pin.dirs.insert(hex::encode(dir_id), m.counter);
        for e in &m.entries {
            match e.kind {
                Kind::Folder => todo.push((rel.join(&e.name), e.id)),
                Kind::File => {
                    let path = rel.join(&e.name);
                    let raw = src
                        .get(&file_name(&e.id))
                        .await?
                        .ok_or_else(|| anyhow!("{}: missing", show(&path)))?;
                    let plain = open_file(seed, v, e, &raw).with_context(|| show(&path))?;
                    std::fs::write(staging.join(hex::encode(e.id)), plain)?;
                }
            }
        }
        out.dirs.push((rel, m));
    }
    Ok(out)
}

fn show(rel: &Path) -> String {
    format!("/{}", rel.display())
}

fn open_file(seed: &Seed, v: &mut Opened, e: &Entry, raw: &[u8]) -> Result<Vec<u8>> {
    let head = raw.get(..HEADER_LEN).ok_or(vault::Error::Length)?;
    let header = Header::parse(head)?;
    if header.vault_id != v.vault_id {
        return Err(vault::Error::Identity.into());
    }
    let span = Layout::trailer_span(raw.len() as u64, &raw[raw.len().saturating_sub(4)..])?;
    let trailer = &raw[raw.len() - span as usize..];
    manifest::check_file(e, head, trailer)?;
    let keys = file_keys(v.key(seed, header.epoch)?, &header.file_id, header.key_gen);
    let plain = cef::decrypt(&keys, raw, Some(&header))?;
    if plain.len() as u64 != e.size {
        return Err(vault::Error::Length.into());
    }
    Ok(plain)
}

/// Write a verified tree into `local`: every file moved from `staging` into place.
fn place(tree: &Verified, staging: &Path, local: &Path) -> Result<usize> {
    let mut files = 0;
    for (rel, m) in &tree.dirs {
        let dir = local.join(rel);
        std::fs::create_dir_all(&dir)?;
        for e in m.entries.iter().filter(|e| e.kind == Kind::File) {
            let to = dir.join(&e.name);
            std::fs::rename(staging.join(hex::encode(e.id)), &to)?;
            let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(e.mtime.max(0) as u64);
            let _ = std::fs::File::options().write(true).open(&to).and_then(|f| f.set_modified(mtime));
            files += 1;
        }
    }
    Ok(files)
}

fn staging_dir(near: &Path) -> Result<PathBuf> {
    let parent = near.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let dir = parent.join(format!(".cairn-vault-{}", hex::encode(random::<8>())));
    std::fs::create_dir(&dir)?;
    Ok(dir)
}

/// Decrypt the vault at `src` into `local` after checking all of it. Returns the files written.
async fn decrypt_into(src: &Source<'_>, seed: &Seed, dev: Option<&Device>, local: &Path) -> Result<usize> {
    let mut pins = match dev {
        Some(d) => d.pins()?,
        None => Pins::default(),
    };
    let (mut v, mut pin, id) = open_config(src, &pins).await?;
    let staging = staging_dir(local)?;
    let res = async {
        let tree = verify_tree(src, seed, &mut v, &mut pin, &staging).await?;
        place(&tree, &staging, local)
    }
    .await;
    let _ = std::fs::remove_dir_all(&staging);
    let n = res?;
    if let Some(d) = dev {
        pins.vaults.insert(id, pin);
        d.keep_pins(&pins)?;
    }
    Ok(n)
}

/// `cairn vault pull`: the vault at `remote` decrypted into `local`.
pub async fn pull(api: &Api, dev: &Device, remote: &str, local: &Path) -> Result<usize> {
    let seed = dev.seed()?;
    decrypt_into(&Source::Remote(api, remote), &seed, Some(dev), local).await
}

/// `cairn vault open-copy`: a copy of a vault's folder (from a backup of the server's data
/// directory, say) decrypted into `out` with the emergency kit alone — no server, no database.
pub async fn open_copy(copy: &Path, kit: &str, recovery: &str, out: &Path) -> Result<usize> {
    let user = kit_field(kit, "account")?;
    let blob = b64().decode(kit_field(kit, "recovery blob")?).context("the kit's recovery blob")?;
    let recovery: [u8; 32] = ungroup(recovery, "recovery key")?;
    let seed = account::unwrap(&blob, user.as_bytes(), &Unlock::Recovery(&recovery))
        .context("the recovery key did not open the kit")?;
    decrypt_into(&Source::Copy(copy), &seed, None, out).await
}

/// What `push` did.
#[derive(Debug, Default)]
pub struct Pushed {
    pub sent: usize,
    pub unchanged: usize,
    pub bytes: u64,
}

/// `cairn vault push`: `local` encrypted into the vault at `remote` (which then holds exactly
/// `local`'s tree). Files whose ciphertext the vault holds already are not sent again.
pub async fn push(api: &Api, dev: &Device, local: &Path, remote: &str) -> Result<Pushed> {
    let seed = dev.seed()?;
    let src = Source::Remote(api, remote);
    let mut pins = dev.pins()?;
    let (mut v, pin, id) = open_config(&src, &pins).await?;
    let me = seed.member();
    if me.ed25519 != v.cfg.owner && !v.cfg.members.iter().any(|(r, m)| *r == Role::Writer && *m == me) {
        bail!("you may read this vault, not write to it");
    }
    let epoch = v.newest_epoch();
    let mut cx = PushCx {
        api,
        remote,
        vault_id: v.vault_id,
        mkey: v.manifest_key(&seed, epoch)?,
        epoch,
        vkey: v.key(&seed, epoch)?.clone(),
        signer: seed.signing_key(),
        seed: seed.clone(),
        v,
        pin,
        keep: vec![CONFIG.to_owned()],
        tmp: dev.dir.join("tmp"),
        done: Pushed::default(),
    };
    std::fs::create_dir_all(&cx.tmp)?;
    push_dir(&mut cx, local.to_path_buf(), ROOT).await?;
    // Objects nothing names any more (deleted or replaced files, removed folders).
    for name in api.names(remote).await? {
        if !cx.keep.contains(&name) && (name.starts_with("f-") || name.starts_with("m-")) {
            api.delete(&format!("{remote}/{name}")).await?;
        }
    }
    pins.vaults.insert(id, cx.pin);
    dev.keep_pins(&pins)?;
    Ok(cx.done)
}

struct PushCx<'a> {
    api: &'a Api,
    remote: &'a str,
    vault_id: [u8; 16],
    /// The newest epoch's manifest key, which new manifests are sealed under.
    mkey: [u8; 32],
    epoch: u32,
    seed: Seed,
    v: Opened,
    vkey: VaultKey,
    signer: ed25519_dalek::SigningKey,
    pin: Pin,
    /// The objects the vault holds after this push.
    keep: Vec<String>,
    /// Where files are encrypted before they are sent.
    tmp: PathBuf,
    done: Pushed,
}

/// Push the folder `dir` as the vault directory `dir_id`: its subfolders first, then its files,
/// then its manifest (the root's last: the commit point of the whole push).
fn push_dir<'a>(
    cx: &'a mut PushCx<'_>,
    dir: PathBuf,
    dir_id: [u8; 16],
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + 'a>> {
    Box::pin(async move {
        let (old_counter, old_epoch, old) =
            match cx.api.get_bytes(&format!("{}/{}", cx.remote, manifest_name(&dir_id))).await? {
                Some(raw) => {
                    let seen = cx.pin.dirs.get(&hex::encode(dir_id)).copied().unwrap_or(0);
                    let m =
                        cx.v.open_manifest(&cx.seed, &raw, dir_id, seen)
                            .with_context(|| format!("{}: its manifest", dir.display()))?;
                    (m.counter, m.epoch, m.entries)
                }
                None => (0, 0, Vec::new()),
            };
        let before: HashMap<&str, &Entry> = old.iter().map(|e| (e.name.as_str(), e)).collect();
        let mut list: Vec<(String, std::fs::Metadata)> = Vec::new();
        for ent in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
            let ent = ent?;
            let name = ent.file_name().into_string().map_err(|n| anyhow!("{n:?}: not UTF-8"))?;
            list.push((name, ent.metadata()?));
        }
        list.sort_by(|a, b| a.0.cmp(&b.0));
        let mut entries = Vec::new();
        for (name, meta) in &list {
            let was = before.get(name.as_str()).copied();
            if meta.is_dir() {
                let id = was.filter(|e| e.kind == Kind::Folder).map_or_else(random, |e| e.id);
                push_dir(cx, dir.join(name), id).await?;
                entries.push(Entry {
                    name: name.clone(),
                    kind: Kind::Folder,
                    id,
                    size: 0,
                    mtime: 0,
                    commit: [0; 32],
                });
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            let file_id = was.filter(|e| e.kind == Kind::File).map_or_else(random, |e| e.id);
            let header = Header { vault_id: cx.vault_id, file_id, epoch: cx.epoch, key_gen: 0 };
            let keys = file_keys(&cx.vkey, &file_id, 0);
            let (src, tmp) = (dir.join(name), cx.tmp.join(hex::encode(file_id)));
            let sealed = tokio::task::spawn_blocking(move || seal_file(&keys, &header, &src, &tmp)).await??;
            let commit = manifest::commit_of(&sealed.head, &sealed.trailer);
            let mtime =
                meta.modified()?.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
            cx.keep.push(file_name(&file_id));
            if was.is_some_and(|e| e.commit == commit) {
                cx.done.unchanged += 1;
            } else {
                cx.done.sent += 1;
                let path = format!("{}/{}", cx.remote, file_name(&file_id));
                cx.done.bytes += send(cx.api, &path, &sealed, was.is_some()).await?;
            }
            let _ = std::fs::remove_file(&sealed.path);
            let plain_len = sealed.plain_len;
            entries.push(Entry {
                name: name.clone(),
                kind: Kind::File,
                id: file_id,
                size: plain_len,
                mtime,
                commit,
            });
        }
        cx.keep.push(manifest_name(&dir_id));
        if old_counter == 0 || entries != old || old_epoch != cx.epoch {
            let m = Manifest {
                vault_id: cx.vault_id,
                dir_id,
                counter: old_counter + 1,
                epoch: cx.epoch,
                entries,
            };
            let sealed = manifest::seal(&cx.mkey, &cx.signer, &m);
            cx.api.put_bytes(&format!("{}/{}", cx.remote, manifest_name(&dir_id)), sealed).await?;
            cx.pin.dirs.insert(hex::encode(dir_id), m.counter);
        }
        Ok(())
    })
}

/// An account's public keys, as the server hands them out (a substituted key shows as a
/// different safety number).
async fn member_of(api: &Api, user: &str) -> Result<Member> {
    let v = api
        .json(Method::GET, &format!("/vault/keys/{}", crate::api::enc(user)), None)
        .await?
        .ok_or_else(|| anyhow!("{user} has no vault keys yet: they run `cairn vault enroll` first"))?;
    Ok(Member {
        x25519: ungroup(v["x25519"].as_str().unwrap_or_default(), "x25519")?,
        ed25519: ungroup(v["ed25519"].as_str().unwrap_or_default(), "ed25519")?,
    })
}

/// The vault at `remote` opened as its owner, for a change to its config.
async fn owned(api: &Api, dev: &Device, remote: &str) -> Result<(Seed, Opened, Pin, Pins, String)> {
    let seed = dev.seed()?;
    let src = Source::Remote(api, remote);
    let pins = dev.pins()?;
    let (v, pin, id) = open_config(&src, &pins).await?;
    if v.cfg.owner != seed.member().ed25519 {
        bail!("only the vault's owner changes its members");
    }
    Ok((seed, v, pin, pins, id))
}

/// Remember that this device wrote (and so has seen) the config `cfg` of vault `id`.
fn keep_config_pin(dev: &Device, cfg: &Config, mut pins: Pins, id: String, mut pin: Pin) -> Result<()> {
    pin.config = cfg.counter;
    pins.vaults.insert(id, pin);
    dev.keep_pins(&pins)
}

/// `cairn vault share`: give `user` the vault's keys (every epoch's, wrapped to their public
/// key) and access to its folder on the server. Returns the safety number to compare with them
/// in person: a server that substituted their key shows another one.
pub async fn share(api: &Api, dev: &Device, remote: &str, user: &str, writer: bool) -> Result<String> {
    let (seed, mut v, pin, pins, id) = owned(api, dev, remote).await?;
    let them = member_of(api, user).await?;
    let me = seed.member();
    if them == me {
        bail!("that is you");
    }
    let role = if writer { Role::Writer } else { Role::Reader };
    let idx = match v.cfg.members.iter().position(|(_, m)| *m == them) {
        Some(i) => {
            v.cfg.members[i].0 = role;
            i
        }
        None => {
            v.cfg.members.push((role, them));
            v.cfg.members.len() - 1
        }
    } as u16;
    let epochs: Vec<u32> = v.cfg.epochs.iter().map(|e| e.epoch).collect();
    for epoch in epochs {
        let key = v.key(&seed, epoch)?.clone();
        let wrapped = vault::share::wrap(&key, &v.vault_id, epoch, &them, &mut SysRng)?;
        let e = v.cfg.epochs.iter_mut().find(|e| e.epoch == epoch).expect("listed above");
        e.wrapped.retain(|(i, _)| *i != idx);
        e.wrapped.push((idx, wrapped));
    }
    v.cfg.counter += 1;
    api.put_bytes(&format!("{remote}/{CONFIG}"), config::seal(&seed.signing_key(), &v.cfg)).await?;
    keep_config_pin(dev, &v.cfg, pins, id, pin)?;
    let body =
        serde_json::json!({ "path": remote, "user": user, "role": if writer { "editor" } else { "viewer" } });
    api.json(Method::POST, "/shares", Some(&body)).await?;
    Ok(safety_number(&me, &them))
}

/// `cairn vault remove`: take `user` out of the vault — a new epoch whose key only the others
/// hold (what is written from now on does not open with anything they have), every manifest
/// re-signed by the owner under it (a former writer's signature is not accepted from then on) —
/// and end their access to the folder on the server.
pub async fn remove(api: &Api, dev: &Device, remote: &str, user: &str) -> Result<u32> {
    let (seed, mut v, mut pin, pins, id) = owned(api, dev, remote).await?;
    let them = member_of(api, user).await?;
    // Every manifest, checked under the config as it was.
    let src = Source::Remote(api, remote);
    let mut manifests = Vec::new();
    let mut todo = vec![ROOT];
    while let Some(dir_id) = todo.pop() {
        let Some(raw) = src.get(&manifest_name(&dir_id)).await? else { continue };
        let seen = pin.dirs.get(&hex::encode(dir_id)).copied().unwrap_or(0);
        let m = v.open_manifest(&seed, &raw, dir_id, seen).context("a manifest")?;
        todo.extend(m.entries.iter().filter(|e| e.kind == Kind::Folder).map(|e| e.id));
        manifests.push(m);
    }
    let idx = v
        .cfg
        .members
        .iter()
        .position(|(_, m)| *m == them)
        .ok_or_else(|| anyhow!("{user} is not a member"))?;
    v.cfg.members.remove(idx);
    let idx = idx as u16;
    for e in &mut v.cfg.epochs {
        e.wrapped.retain(|(i, _)| *i != idx);
        for (i, _) in &mut e.wrapped {
            if *i > idx {
                *i -= 1;
            }
        }
    }
    let epoch = v.newest_epoch() + 1;
    let key = VaultKey(random());
    let mut wrapped = Vec::new();
    for (i, (_, m)) in v.cfg.members.iter().enumerate() {
        wrapped.push((i as u16, vault::share::wrap(&key, &v.vault_id, epoch, m, &mut SysRng)?));
    }
    v.cfg.epochs.push(Epoch { epoch, commitment: commitment(&key), wrapped });
    v.cfg.counter += 1;
    // The config first (until the manifests follow, devices refuse the former writer's ones).
    api.put_bytes(&format!("{remote}/{CONFIG}"), config::seal(&seed.signing_key(), &v.cfg)).await?;
    let mkey = manifest_key(&key, &v.vault_id);
    for mut m in manifests {
        m.counter += 1;
        m.epoch = epoch;
        api.put_bytes(
            &format!("{remote}/{}", manifest_name(&m.dir_id)),
            manifest::seal(&mkey, &seed.signing_key(), &m),
        )
        .await?;
        pin.dirs.insert(hex::encode(m.dir_id), m.counter);
    }
    keep_config_pin(dev, &v.cfg, pins, id, pin)?;
    let shares = api.json(Method::GET, "/shares", None).await?.unwrap_or_default();
    let remote_path = format!("/{}", remote.trim_matches('/'));
    for s in shares.as_array().into_iter().flatten() {
        if s["path"].as_str() == Some(remote_path.as_str()) && s["user"].as_str() == Some(user) {
            let sid = s["id"].as_i64().unwrap_or_default();
            api.json(Method::DELETE, &format!("/shares/{sid}"), None).await?;
        }
    }
    Ok(epoch)
}

/// `cairn vault members`: the vault's owner and members as its signed config lists them, each
/// with the safety number to compare with them (pinning the owner on first sight).
pub async fn members(api: &Api, dev: &Device, remote: &str) -> Result<String> {
    let seed = dev.seed()?;
    let me = seed.member();
    let src = Source::Remote(api, remote);
    let mut pins = dev.pins()?;
    let (v, pin, id) = open_config(&src, &pins).await?;
    let mut out = String::new();
    for (role, m) in &v.cfg.members {
        let what = match (m.ed25519 == v.cfg.owner, role) {
            (true, _) => "owner",
            (false, Role::Writer) => "writer",
            (false, Role::Reader) => "reader",
        };
        let number = if *m == me { "(you)".to_owned() } else { safety_number(&me, m) };
        out.push_str(&format!("{what}: {number}\n"));
    }
    pins.vaults.insert(id, pin);
    dev.keep_pins(&pins)?;
    Ok(out)
}

/// A file encrypted into `path`, with what its manifest entry commits to.
struct Sealed {
    path: PathBuf,
    head: Vec<u8>,
    trailer: Vec<u8>,
    plain_len: u64,
    /// blake3 of the whole ciphertext (hex), for the delta upload's check.
    hash: String,
}

/// Encrypt `src` into `dst` chunk by chunk (memory stays flat whatever the size).
fn seal_file(keys: &vault::keys::FileKeys, header: &Header, src: &Path, dst: &Path) -> Result<Sealed> {
    use std::io::{Read, Write};
    let mut input = std::fs::File::open(src).with_context(|| format!("{}", src.display()))?;
    let len = input.metadata()?.len();
    let mut out = std::io::BufWriter::new(std::fs::File::create(dst)?);
    let mut hasher = blake3::Hasher::new();
    let (mut enc, head) = cef::Encryptor::new(keys, header);
    out.write_all(&head)?;
    hasher.update(&head);
    let mut buf = vec![0u8; cef::CHUNK];
    let mut done = 0u64;
    loop {
        let want = (len - done).min(cef::CHUNK as u64) as usize;
        input
            .read_exact(&mut buf[..want])
            .with_context(|| format!("{} changed while it was read", src.display()))?;
        done += want as u64;
        let last = done == len;
        let sealed = enc.chunk(&buf[..want], last);
        out.write_all(&sealed)?;
        hasher.update(&sealed);
        if last {
            break;
        }
    }
    let trailer = enc.finish();
    out.write_all(&trailer)?;
    hasher.update(&trailer);
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(Sealed {
        path: dst.to_path_buf(),
        head: head.to_vec(),
        trailer,
        plain_len: len,
        hash: hasher.finalize().to_hex().to_string(),
    })
}

/// Send a sealed file to `path`: over the stored object as an rsync delta when one is there and
/// the delta pays (unchanged chunks encrypt to the same bytes, so an edit moves its chunks and the
/// trailer), else whole. Returns the bytes sent.
async fn send(api: &Api, path: &str, sealed: &Sealed, exists: bool) -> Result<u64> {
    const DELTA_MIN: u64 = 256 * 1024;
    let size = std::fs::metadata(&sealed.path)?.len();
    if exists && size >= DELTA_MIN {
        let (etag, sig) = api.signature(path).await?;
        let delta = crate::engine::delta_paying(sig, sealed.path.clone(), size).await?;
        if let Some(d) = delta {
            let n = d.len() as u64;
            api.put_delta(path, &etag, d, &sealed.hash).await?;
            return Ok(n);
        }
    }
    api.put_bytes(path, std::fs::read(&sealed.path)?).await?;
    Ok(size)
}
