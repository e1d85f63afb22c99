//! Encrypted vaults, the server's side: a folder made a vault keeps its devices' ciphertext
//! like any folder (ranges, versions, quota), and plaintext never lands in it — through WebDAV,
//! the Nextcloud route, REST, tus or the FUSE mount, nor by a move or copy from outside. The
//! ciphertext here is real: made with the `vault` crate the `cairn` client uses.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};
use tests::{Env, call_as, http, record_figure};
use vault::cef::{self, Header};
use vault::keys::{VaultKey, file_keys};

const VAULT_ID: [u8; 16] = *b"family-vault-id!";
const OTHER_ID: [u8; 16] = *b"another-vault-id";

/// A CEF v1 file of `vault` holding `plain` (file id from `n`).
fn sealed(vault: [u8; 16], n: u8, plain: &[u8]) -> Vec<u8> {
    let key = VaultKey([n.wrapping_add(7); 32]);
    let header = Header { vault_id: vault, file_id: [n; 16], epoch: 0, key_gen: 0 };
    cef::encrypt(&file_keys(&key, &header.file_id, 0), &header, plain)
}

/// A signed directory manifest of `vault` (the other kind of object a vault holds).
fn manifest(vault: [u8; 16]) -> Vec<u8> {
    let writer = vault::account::Seed([3; 32]).signing_key();
    let m =
        vault::manifest::Manifest { vault_id: vault, dir_id: [0; 16], counter: 1, epoch: 0, entries: vec![] };
    vault::manifest::seal(&[9; 32], &writer, &m)
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// alice (quota 50M) with a vault at `/Secret` and a plain file `/plain.txt`; the mount's home.
fn family() -> (Env, tests::Daemon, std::path::PathBuf) {
    let mut env = Env::new();
    let mp = env.enable_fuse();
    let d = env.start_daemon();
    env.add_user("alice", Some("50M"));
    env.add_user("bob", None);
    let home = mp.join("alice");
    tests::eventually("alice's folder in the mount", || home.is_dir());
    assert_eq!(call_as(env.port, "alice", "MKCOL", "/dav/Secret", b"").status, 201);
    assert_eq!(call_as(env.port, "alice", "PUT", "/dav/plain.txt", b"a plain letter").status, 201);
    let r = call_as(
        env.port,
        "alice",
        "POST",
        "/api/v1/vaults",
        json!({"path": "/Secret", "id": hex(&VAULT_ID)}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    (env, d, home)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One way of writing `body` at `/Secret/NAME` (or elsewhere): the status it answered (FUSE:
/// 201 for success, 403 for `EPERM`, the errno otherwise).
type Writer = fn(&Env, &Path, &str, &[u8]) -> u16;

fn by_webdav(env: &Env, _: &Path, path: &str, body: &[u8]) -> u16 {
    call_as(env.port, "alice", "PUT", &format!("/dav{path}"), body).status
}

fn by_nextcloud(env: &Env, _: &Path, path: &str, body: &[u8]) -> u16 {
    call_as(env.port, "alice", "PUT", &format!("/remote.php/dav/files/alice{path}"), body).status
}

fn by_rest(env: &Env, _: &Path, path: &str, body: &[u8]) -> u16 {
    call_as(env.port, "alice", "PUT", &format!("/api/v1/content?path={path}"), body).status
}

fn by_tus(env: &Env, _: &Path, path: &str, body: &[u8]) -> u16 {
    let auth = tests::basic("alice");
    let (meta, len) = (format!("path {}", b64(path.as_bytes())), body.len().to_string());
    let made = http(
        env.port,
        "POST",
        "/api/v1/uploads/",
        &[
            ("Authorization", &auth),
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", &len),
            ("Upload-Metadata", &meta),
        ],
        b"",
    );
    if made.status != 201 {
        return made.status;
    }
    let loc = made.header("location").expect("a tus Location").to_owned();
    let done = http(
        env.port,
        "PATCH",
        &loc,
        &[
            ("Authorization", &auth),
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Offset", "0"),
            ("Content-Type", "application/offset+octet-stream"),
        ],
        body,
    );
    match done.status {
        204 => 201,
        s => s,
    }
}

fn by_mount(_: &Env, home: &Path, path: &str, body: &[u8]) -> u16 {
    let p = home.join(path.trim_start_matches('/'));
    let res = fs::File::create(&p).and_then(|mut f| {
        f.write_all(body)?;
        f.sync_all()
    });
    match res {
        Ok(()) => 201,
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => 403,
        Err(e) => e.raw_os_error().unwrap_or(-1) as u16,
    }
}

/// Every front end × every kind of content written into a vault, each with its answer; a
/// refused write leaves nothing behind, and an accepted one reads back byte for byte.
#[test]
fn plaintext_never_lands_in_a_vault_through_any_front_end() {
    let (env, _d, home) = family();
    let writers: [(&str, Writer); 5] = [
        ("WebDAV", by_webdav),
        ("Nextcloud", by_nextcloud),
        ("REST", by_rest),
        ("tus", by_tus),
        ("FUSE", by_mount),
    ];
    let plain = b"the family's bank details".to_vec();
    // (kind, content, accepted by the HTTP front ends)
    let kinds: Vec<(&str, Vec<u8>, bool)> = vec![
        ("its ciphertext", sealed(VAULT_ID, 1, &plain), true),
        ("its manifest", manifest(VAULT_ID), true),
        ("plaintext", plain.clone(), false),
        ("another vault's ciphertext", sealed(OTHER_ID, 2, &plain), false),
        ("an empty file", Vec::new(), false),
        ("a CEF magic alone", b"CAIRNCEF".to_vec(), false),
    ];
    let mut failures = Vec::new();
    let mut cases = 0;
    for (i, (front, write)) in writers.iter().enumerate() {
        for (k, (kind, body, ok)) in kinds.iter().enumerate() {
            cases += 1;
            let path = format!("/Secret/obj{i}-{k}");
            // The mount is a plaintext front end: it refuses every write into a vault.
            let expect = if *ok && *front != "FUSE" { 201 } else { 403 };
            let got = write(&env, &home, &path, body);
            let stored = call_as(env.port, "alice", "GET", &format!("/dav{path}"), b"");
            let left = match expect {
                201 => stored.status == 200 && &stored.body == body,
                _ => stored.status == 404,
            };
            if got != expect || !left {
                failures.push(format!(
                    "{front} writing {kind}: answered {got} (expected {expect}); afterwards GET {} ({} bytes)",
                    stored.status,
                    stored.body.len()
                ));
            }
        }
    }
    // The refusal says why.
    let r = call_as(env.port, "alice", "PUT", "/dav/Secret/letter.txt", &plain);
    assert!(r.text().contains("encrypted vault"), "the refusal names the vault: {}", r.text());
    let r = call_as(env.port, "alice", "PUT", "/api/v1/content?path=/Secret/letter.txt", &plain);
    let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    assert_eq!(v["error"]["code"], "forbidden", "{v}");
    // Outside the vault, plaintext is as welcome as ever (through the mount too).
    assert_eq!(by_mount(&env, &home, "/outside.txt", &plain), 201);
    assert_eq!(env.get("alice", "/outside.txt"), plain);
    assert!(failures.is_empty(), "{} of {cases} cases wrong:\n{}", failures.len(), failures.join("\n"));
    record_figure(&format!("vaults: {cases} front end x content cases into a vault, each as expected"));
}

/// What is in a vault stays its own: an overwrite with plaintext keeps the ciphertext, a move
/// or copy from outside is refused (and the source stays), moves inside it and folders in it
/// work, and the mount reads its ciphertext but refuses writing, truncating or creating there.
#[test]
fn a_vaults_files_stay_ciphertext_and_nothing_moves_in_from_outside() {
    let (env, _d, home) = family();
    let port = env.port;
    let c1 = sealed(VAULT_ID, 1, &vec![b'x'; 300_000]);
    assert_eq!(call_as(port, "alice", "PUT", "/dav/Secret/f1", &c1).status, 201);
    // Overwritten with plaintext: refused, the ciphertext kept, no version made.
    assert_eq!(call_as(port, "alice", "PUT", "/dav/Secret/f1", b"oops, plaintext").status, 403);
    assert_eq!(call_as(port, "alice", "GET", "/dav/Secret/f1", b"").body, c1);
    let versions = env.ctl_json(&["versions", "list", "alice", "/Secret/f1"]);
    assert_eq!(versions.as_array().map(Vec::len), Some(0), "{versions}");
    // A new ciphertext version is kept as a version, like any file's.
    let c2 = sealed(VAULT_ID, 1, &vec![b'y'; 300_000]);
    assert_eq!(call_as(port, "alice", "PUT", "/dav/Secret/f1", &c2).status, 204);
    let versions = env.ctl_json(&["versions", "list", "alice", "/Secret/f1"]);
    assert_eq!(versions.as_array().map(Vec::len), Some(1), "{versions}");
    // Ranges of ciphertext, as the client's range reads need them.
    let auth = tests::basic("alice");
    let r =
        http(port, "GET", "/dav/Secret/f1", &[("Authorization", &auth), ("Range", "bytes=65000-70999")], b"");
    assert_eq!((r.status, &r.body[..]), (206, &c2[65_000..71_000]));

    // Moves and copies from outside: refused, the source untouched.
    let dest = format!("http://127.0.0.1:{port}/dav/Secret/plain.txt");
    for method in ["MOVE", "COPY"] {
        let r =
            http(port, method, "/dav/plain.txt", &[("Authorization", &auth), ("Destination", &dest)], b"");
        assert_eq!(r.status, 403, "{method} into the vault: {}", r.text());
    }
    let body = json!({"from": "/plain.txt", "to": "/Secret/plain.txt"}).to_string();
    assert_eq!(call_as(port, "alice", "POST", "/api/v1/move", body.as_bytes()).status, 403);
    assert_eq!(call_as(port, "alice", "POST", "/api/v1/copy", body.as_bytes()).status, 403);
    let e = fs::rename(home.join("plain.txt"), home.join("Secret/plain.txt")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM), "rename into the vault through the mount: {e}");
    assert_eq!(env.get("alice", "/plain.txt"), b"a plain letter");
    assert_eq!(call_as(port, "alice", "GET", "/dav/Secret/plain.txt", b"").status, 404);

    // Inside the vault: folders and moves are the client's to make.
    assert_eq!(call_as(port, "alice", "MKCOL", "/dav/Secret/d1", b"").status, 201);
    let to = format!("http://127.0.0.1:{port}/dav/Secret/d1/f1");
    let r = http(port, "MOVE", "/dav/Secret/f1", &[("Authorization", &auth), ("Destination", &to)], b"");
    assert_eq!(r.status, 201, "a move inside the vault: {}", r.text());
    // Moved out, a vault file is still ciphertext: allowed (nothing plain is exposed).
    let out = format!("http://127.0.0.1:{port}/dav/f1-out");
    let r = http(port, "MOVE", "/dav/Secret/d1/f1", &[("Authorization", &auth), ("Destination", &out)], b"");
    assert_eq!(r.status, 201, "a move out of the vault: {}", r.text());
    assert_eq!(call_as(port, "alice", "GET", "/dav/f1-out", b"").body, c2);
    // ... and moving it back is moving in from outside.
    let back = format!("http://127.0.0.1:{port}/dav/Secret/f1");
    let r = http(port, "MOVE", "/dav/f1-out", &[("Authorization", &auth), ("Destination", &back)], b"");
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(call_as(port, "alice", "PUT", "/dav/Secret/f1", &c2).status, 201);

    // The mount: reads the ciphertext; refuses writing, truncating, creating.
    assert_eq!(fs::read(home.join("Secret/f1")).unwrap(), c2);
    let e = fs::OpenOptions::new().append(true).open(home.join("Secret/f1")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
    let e = fs::OpenOptions::new().write(true).open(home.join("Secret/f1")).map(|f| f.set_len(10));
    assert!(e.is_err(), "truncating a vault file through the mount");
    let e = fs::File::create(home.join("Secret/new.txt")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
    assert_eq!(call_as(port, "alice", "GET", "/dav/Secret/f1", b"").body, c2);
    assert_eq!(call_as(port, "alice", "GET", "/dav/Secret/new.txt", b"").status, 404);

    // Quota counts the ciphertext (and its version).
    let q: Value = serde_json::from_slice(&call_as(port, "alice", "GET", "/api/v1/quota", b"").body).unwrap();
    let used = q["used"].as_u64().unwrap_or_else(|| panic!("quota: {q}"));
    assert!(used >= (c1.len() + c2.len()) as u64, "used {used} counts the ciphertext and its version");

    // No preview of a vault file, whatever its name.
    assert_eq!(
        call_as(port, "alice", "PUT", "/dav/Secret/photo.jpg", &sealed(VAULT_ID, 5, b"jpeg")).status,
        201
    );
    let r = http(
        port,
        "GET",
        "/index.php/core/preview.png?file=%2FSecret%2Fphoto.jpg&x=64&y=64",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 404, "a preview of a vault file");
    env.assert_fsck_clean();
}

/// Making a vault: an empty folder of one's own, once; the list shows it to its owner only.
#[test]
fn a_vault_is_made_of_an_empty_folder_once() {
    let (env, _d, _home) = family();
    let port = env.port;
    let make = |user: &str, path: &str, id: &str| {
        let r = call_as(
            port,
            user,
            "POST",
            "/api/v1/vaults",
            json!({"path": path, "id": id}).to_string().as_bytes(),
        );
        (r.status, r.text())
    };
    assert_eq!(call_as(port, "alice", "MKCOL", "/dav/Full", b"").status, 201);
    assert_eq!(call_as(port, "alice", "PUT", "/dav/Full/a.txt", b"a").status, 201);
    assert_eq!(call_as(port, "alice", "MKCOL", "/dav/Secret/Inner", b"").status, 201);
    assert_eq!(call_as(port, "alice", "MKCOL", "/dav/Empty", b"").status, 201);
    let other = hex(&OTHER_ID);
    for (user, path, id, status) in [
        ("alice", "/Full", other.as_str(), 409),
        ("alice", "/Secret/Inner", other.as_str(), 409),
        ("alice", "/Secret", other.as_str(), 409),
        ("alice", "/plain.txt", other.as_str(), 409),
        ("alice", "/Nowhere", other.as_str(), 404),
        ("alice", "/", other.as_str(), 400),
        ("alice", "/Empty", "not hex", 400),
        ("alice", "/Empty", &hex(&VAULT_ID), 409),
        ("bob", "/Secret", other.as_str(), 404),
    ] {
        let (got, text) = make(user, path, id);
        assert_eq!(got, status, "{user} making {path} a vault: {text}");
    }
    assert_eq!(make("alice", "/Empty", &other).0, 201);
    let list: Value =
        serde_json::from_slice(&call_as(port, "alice", "GET", "/api/v1/vaults", b"").body).unwrap();
    let paths: Vec<&str> = list.as_array().unwrap().iter().map(|v| v["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/Empty", "/Secret"]);
    assert_eq!(list[1]["id"], hex(&VAULT_ID));
    let bobs: Value =
        serde_json::from_slice(&call_as(port, "bob", "GET", "/api/v1/vaults", b"").body).unwrap();
    assert_eq!(bobs, json!([]));
    let audit = env.ctl_json(&["audit", "--limit", "1000"]);
    let made = audit.as_array().unwrap().iter().filter(|r| r["action"] == "vault.create").count();
    assert_eq!(made, 2, "each vault made is audited");

    // The trash is no way in: a plain file deleted from a folder before it became a vault is not
    // restored into it; a vault object deleted from the vault is.
    assert_eq!(call_as(port, "alice", "MKCOL", "/dav/Later", b"").status, 201);
    assert_eq!(call_as(port, "alice", "PUT", "/dav/Later/old.txt", b"plain, from before").status, 201);
    assert_eq!(call_as(port, "alice", "DELETE", "/dav/Later/old.txt", b"").status, 204);
    let later = hex(b"a later vault id");
    assert_eq!(make("alice", "/Later", &later).0, 201);
    assert_eq!(
        call_as(port, "alice", "PUT", "/dav/Later/obj", &sealed(*b"a later vault id", 9, b"x")).status,
        201
    );
    assert_eq!(call_as(port, "alice", "DELETE", "/dav/Later/obj", b"").status, 204);
    let trash: Value =
        serde_json::from_slice(&call_as(port, "alice", "GET", "/api/v1/trash", b"").body).unwrap();
    let item = |path: &str| {
        trash
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["path"] == path)
            .unwrap_or_else(|| panic!("{path} in {trash}"))["id"]
            .as_i64()
            .unwrap()
    };
    let r = call_as(port, "alice", "POST", &format!("/api/v1/trash/{}/restore", item("/Later/old.txt")), b"");
    assert_eq!(r.status, 403, "a plain file restored into a vault: {}", r.text());
    assert_eq!(call_as(port, "alice", "GET", "/dav/Later/old.txt", b"").status, 404);
    let r = call_as(port, "alice", "POST", &format!("/api/v1/trash/{}/restore", item("/Later/obj")), b"");
    assert_eq!(r.status, 200, "the vault's own object back from the trash: {}", r.text());
}

/// Each account's vault keys: the server keeps the seed only wrapped (and refuses anything that
/// is not a wrapped blob of its kind), hands it back for the passphrase and kit or for the
/// recovery key to open on the device, and gives others the public keys to share with — the
/// same 404 for an account that never enrolled as for one that does not exist.
#[test]
fn vault_keys_are_kept_wrapped_and_public_keys_are_handed_out() {
    use base64::Engine;
    use vault::account::{Cost, Seed, Unlock, unwrap, wrap};
    let b64 = base64::engine::general_purpose::STANDARD;
    let env = Env::new();
    let _d = env.start_daemon();
    for u in ["alice", "bob", "carol"] {
        env.add_user(u, None);
    }
    let port = env.port;
    assert_eq!(call_as(port, "alice", "GET", "/api/v1/vault/account", b"").status, 404);

    let seed = Seed(*b"alice's seed, 32 bytes of secret");
    let (passphrase, kit, recovery) = ("correct horse battery staple", [0x5a; 16], [0xc3; 32]);
    let unlock = Unlock::Passphrase { passphrase, secret_key: &kit };
    let by_pass = wrap(&seed, b"alice", &unlock, Cost::default(), &[1; 16]).unwrap();
    let by_recovery = wrap(&seed, b"alice", &Unlock::Recovery(&recovery), Cost::default(), &[2; 16]).unwrap();
    let me = seed.member();
    let body = |p: &[u8], r: &[u8], x: &[u8; 32]| {
        json!({"passphrase_blob": b64.encode(p), "recovery_blob": b64.encode(r), "x25519": hex(x), "ed25519": hex(&me.ed25519)})
            .to_string()
    };
    // Refused: a bare seed, the blobs swapped, a key of another length.
    for (what, req) in [
        ("a bare seed", body(&seed.0, &by_recovery, &me.x25519)),
        ("the blobs swapped", body(&by_recovery, &by_pass, &me.x25519)),
        ("a short key", body(&by_pass, &by_recovery, &me.x25519).replace(&hex(&me.x25519), "abcd")),
    ] {
        let r = call_as(port, "alice", "PUT", "/api/v1/vault/account", req.as_bytes());
        assert_eq!(r.status, 400, "{what}: {}", r.text());
    }
    assert_eq!(call_as(port, "alice", "GET", "/api/v1/vault/account", b"").status, 404);
    let r = call_as(
        port,
        "alice",
        "PUT",
        "/api/v1/vault/account",
        body(&by_pass, &by_recovery, &me.x25519).as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.text());

    // Back on a device: the passphrase with the kit opens it, and so does the recovery key alone
    // (a forgotten passphrase); a wrong passphrase does not.
    let got: Value =
        serde_json::from_slice(&call_as(port, "alice", "GET", "/api/v1/vault/account", b"").body).unwrap();
    let blob = |k: &str| b64.decode(got[k].as_str().unwrap()).unwrap();
    assert_eq!(unwrap(&blob("passphrase_blob"), b"alice", &unlock).unwrap().0, seed.0);
    assert_eq!(unwrap(&blob("recovery_blob"), b"alice", &Unlock::Recovery(&recovery)).unwrap().0, seed.0);
    let wrong = Unlock::Passphrase { passphrase: "Correct horse battery staple", secret_key: &kit };
    assert_eq!(unwrap(&blob("passphrase_blob"), b"alice", &wrong).unwrap_err(), vault::Error::Unlock);

    // Others see the public keys only; no account and no keys answer alike.
    let keys: Value =
        serde_json::from_slice(&call_as(port, "bob", "GET", "/api/v1/vault/keys/alice", b"").body).unwrap();
    assert_eq!(
        (keys["x25519"].as_str(), keys["ed25519"].as_str()),
        (Some(&*hex(&me.x25519)), Some(&*hex(&me.ed25519)))
    );
    assert!(keys.get("passphrase_blob").is_none() && keys.get("recovery_blob").is_none(), "{keys}");
    let carol = call_as(port, "bob", "GET", "/api/v1/vault/keys/carol", b"");
    let nobody = call_as(port, "bob", "GET", "/api/v1/vault/keys/nobody", b"");
    assert_eq!((carol.status, nobody.status), (404, 404));
    let code =
        |r: &tests::HttpResponse| serde_json::from_slice::<Value>(&r.body).unwrap()["error"]["code"].clone();
    assert_eq!(code(&carol), code(&nobody));
    // bob cannot read alice's wrapped seed: his own account answers.
    assert_eq!(call_as(port, "bob", "GET", "/api/v1/vault/account", b"").status, 404);

    // A new passphrase rewraps the same seed; a new seed changes the public keys: audited apart.
    let by_pass2 = wrap(&seed, b"alice", &wrong, Cost::default(), &[3; 16]).unwrap();
    let r = call_as(
        port,
        "alice",
        "PUT",
        "/api/v1/vault/account",
        body(&by_pass2, &by_recovery, &me.x25519).as_bytes(),
    );
    assert_eq!(r.status, 204);
    let r = call_as(
        port,
        "alice",
        "PUT",
        "/api/v1/vault/account",
        body(&by_pass2, &by_recovery, &[7; 32]).as_bytes(),
    );
    assert_eq!(r.status, 204);
    let audit = env.ctl_json(&["audit", "--limit", "1000"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["action"].as_str())
        .filter(|a| a.starts_with("vault.account"))
        .collect();
    let mut sorted = actions.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["vault.account.create", "vault.account.new_keys", "vault.account.rewrap"],
        "{actions:?}"
    );
}

/// A `cairn` device: its own config directory, signed in as `user`.
struct Device {
    config: std::path::PathBuf,
}

impl Device {
    fn new(env: &Env, name: &str, user: &str) -> Device {
        let d = Device { config: env.dir.join(format!("device-{name}")) };
        let url = format!("http://127.0.0.1:{}", env.port);
        d.ok(
            &["login", &url, "--user", user, "--password-stdin", "--device", name],
            b"correct horse battery\n",
        );
        d
    }

    fn run(&self, args: &[&str], input: &[u8]) -> std::process::Output {
        let mut cmd = std::process::Command::new(tests::bin("cairn"));
        cmd.env("CAIRN_CLIENT_DIR", &self.config).args(args);
        tests::output_with_input(&mut cmd, input)
    }

    fn ok(&self, args: &[&str], input: &[u8]) -> String {
        let out = self.run(args, input);
        assert!(out.status.success(), "cairn {args:?}: {}", tests::describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn fails(&self, args: &[&str], input: &[u8]) -> String {
        let out = self.run(args, input);
        assert!(!out.status.success(), "cairn {args:?} should fail: {}", tests::describe(&out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// Relative path → content of every file below `root` (folders as `None`).
fn tree(root: &Path) -> std::collections::BTreeMap<String, Option<Vec<u8>>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                out.insert(rel, None);
                stack.push(e.path());
            } else {
                out.insert(rel, Some(fs::read(e.path()).unwrap()));
            }
        }
    }
    out
}

/// A copy of the vault folder `from` (what a backup of the data directory holds) at `to`.
fn copy_of(from: &Path, to: &Path) -> std::path::PathBuf {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    to.to_path_buf()
}

/// Every file below `dir`, for the canary search.
fn all_bytes(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push((e.path(), fs::read(e.path()).unwrap_or_default()));
            }
            // Names count too.
            out.push((e.path(), e.file_name().to_string_lossy().as_bytes().to_vec()));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The whole round: alice enrolls (an emergency kit printed), makes a vault, pushes a tree with
/// `cairn`; the server holds ciphertext only (canaries in contents, names, the passphrase and the
/// recovery key appear nowhere in its data directory or log); a second push sends only what
/// changed; another device unlocks with passphrase + kit; a lost passphrase is recovered with the
/// recovery key; a copy of the vault's folder opens offline with the kit alone; and a server
/// that changes a stored object or rolls a manifest back is caught, the local tree untouched.
#[test]
fn a_vault_pushed_with_cairn_is_ciphertext_on_the_server_and_opens_only_with_its_keys() {
    let env = Env::new();
    let d = env.start_daemon();
    env.add_user("alice", None);
    let laptop = Device::new(&env, "laptop", "alice");
    let passphrase = "CANARY-PASSPHRASE our family's long passphrase";
    let kit = laptop.ok(&["vault", "enroll"], format!("{passphrase}\n").as_bytes());
    let field = |name: &str| {
        kit.lines()
            .find_map(|l| l.strip_prefix(name).map(|r| r.trim_start_matches(':').trim().to_owned()))
            .unwrap()
    };
    let (kit_secret, recovery) = (field("kit secret"), field("recovery key"));
    let kit_file = env.dir.join("kit.txt");
    fs::write(&kit_file, &kit).unwrap();
    laptop.ok(&["vault", "create", "/Secret"], b"");

    let plain = env.dir.join("plain");
    fs::create_dir_all(plain.join("Taxes 2026/receipts")).unwrap();
    fs::write(plain.join("letter.txt"), b"Dear bank, CANARY-CONTENT-7f3a is our code.").unwrap();
    fs::write(plain.join("CANARY-NAME-91b2.txt"), b"a name the server must not see").unwrap();
    fs::write(plain.join("Taxes 2026/return.pdf"), tests::pattern(300_000, 7)).unwrap();
    fs::write(plain.join("Taxes 2026/receipts/r1.txt"), b"").unwrap();
    let out = laptop.ok(&["vault", "push", plain.to_str().unwrap(), "/Secret"], b"");
    assert!(out.starts_with("4 files sent"), "{out}");

    // The canaries: nowhere in what the server keeps or logs.
    let log = d.log_text();
    let recovery_hex: String = recovery.chars().filter(char::is_ascii_hexdigit).collect();
    let canaries: [&[u8]; 6] = [
        b"CANARY-CONTENT-7f3a",
        b"CANARY-NAME-91b2",
        b"CANARY-PASSPHRASE",
        b"Taxes 2026",
        recovery_hex.as_bytes(),
        recovery.as_bytes(),
    ];
    let stored = all_bytes(&env.data_dir);
    assert!(stored.len() > 8, "the data directory holds the vault's objects");
    for c in canaries {
        for (path, bytes) in &stored {
            assert!(!contains(bytes, c), "{:?} found in {}", String::from_utf8_lossy(c), path.display());
        }
        assert!(!contains(log.as_bytes(), c), "{:?} in the server's log", String::from_utf8_lossy(c));
    }

    // Pulled back on the same device: the same tree, byte for byte.
    let out1 = env.dir.join("out1");
    laptop.ok(&["vault", "pull", "/Secret", out1.to_str().unwrap()], b"");
    assert_eq!(tree(&out1), tree(&plain));

    // A second push sends only what changed (unchanged files encrypt to the same bytes).
    let m_root_before =
        call_as(env.port, "alice", "GET", "/dav/Secret/m-00000000000000000000000000000000", b"").body;
    let out = laptop.ok(&["vault", "push", plain.to_str().unwrap(), "/Secret"], b"");
    assert!(out.starts_with("0 files sent"), "{out}");
    fs::write(plain.join("letter.txt"), b"Dear bank, a new letter.").unwrap();
    fs::remove_file(plain.join("CANARY-NAME-91b2.txt")).unwrap();
    let out = laptop.ok(&["vault", "push", plain.to_str().unwrap(), "/Secret"], b"");
    assert!(out.starts_with("1 files sent"), "{out}");
    // An in-place edit of a larger file moves as an rsync delta of its ciphertext: the changed
    // chunk and the trailer, not the file.
    let mut pdf = fs::read(plain.join("Taxes 2026/return.pdf")).unwrap();
    pdf[150_000] ^= 0xff;
    fs::write(plain.join("Taxes 2026/return.pdf"), &pdf).unwrap();
    let out = laptop.ok(&["vault", "push", plain.to_str().unwrap(), "/Secret"], b"");
    let sent: u64 =
        out.split('(').nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
    assert!(out.starts_with("1 files sent") && sent < 100_000, "a one-byte edit of 300 kB: {out}");
    record_figure(&format!(
        "vaults: a 1-byte edit of a 300 kB vault file moved {sent} bytes (a delta of its ciphertext)"
    ));
    let objects = fs::read_dir(env.user_dir("alice").join("Secret")).unwrap().count();
    assert_eq!(objects, 1 + 3 + 3, "config, three manifests, three files: {objects}");

    // Another device: passphrase + kit secret.
    let phone = Device::new(&env, "phone", "alice");
    phone.ok(&["vault", "unlock", "--kit", &kit_secret], format!("{passphrase}\n").as_bytes());
    let out2 = env.dir.join("out2");
    phone.ok(&["vault", "pull", "/Secret", out2.to_str().unwrap()], b"");
    assert_eq!(tree(&out2), tree(&plain));
    let wrong = phone.fails(&["vault", "unlock", "--kit", &kit_secret], b"not our passphrase\n");
    assert!(wrong.contains("did not open"), "{wrong}");

    // The passphrase forgotten: the recovery key opens the keys and sets a new passphrase.
    let tablet = Device::new(&env, "tablet", "alice");
    let new_kit =
        tablet.ok(&["vault", "recover"], format!("{recovery}\na brand new passphrase\n").as_bytes());
    assert!(new_kit.contains("kit secret"), "{new_kit}");
    let out3 = env.dir.join("out3");
    tablet.ok(&["vault", "pull", "/Secret", out3.to_str().unwrap()], b"");
    assert_eq!(tree(&out3), tree(&plain));

    // A copy of the vault's folder (a backup of the data directory) opens with the kit alone.
    let copy = copy_of(&env.user_dir("alice").join("Secret"), &env.dir.join("copy"));
    let offline = env.dir.join("offline");
    let out = laptop.ok(
        &[
            "vault",
            "open-copy",
            copy.to_str().unwrap(),
            offline.to_str().unwrap(),
            "--kit-file",
            kit_file.to_str().unwrap(),
        ],
        format!("{recovery}\n").as_bytes(),
    );
    assert!(out.contains("decrypted 3 files"), "{out}");
    assert_eq!(tree(&offline), tree(&plain));

    // A server that changes a stored file: caught, nothing written.
    let letter_id = fs::read_dir(env.user_dir("alice").join("Secret"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| {
            n.starts_with("f-")
                && fs::metadata(env.user_dir("alice").join("Secret").join(n)).unwrap().len() < 200
        })
        .expect("the letter's object");
    let path = format!("/dav/Secret/{letter_id}");
    let good = call_as(env.port, "alice", "GET", &path, b"").body;
    let mut bad = good.clone();
    bad[70] ^= 1;
    assert_eq!(call_as(env.port, "alice", "PUT", &path, &bad).status, 204);
    let out4 = env.dir.join("out4");
    let err = laptop.fails(&["vault", "pull", "/Secret", out4.to_str().unwrap()], b"");
    assert!(err.contains("chunk 0 failed authentication"), "{err}");
    assert!(!out4.exists() || tree(&out4).is_empty(), "nothing written: {:?}", tree(&out4).keys());
    let before = tree(&out1);
    let err = laptop.fails(&["vault", "pull", "/Secret", out1.to_str().unwrap()], b"");
    assert!(err.contains("failed authentication"), "{err}");
    assert_eq!(tree(&out1), before, "the local tree untouched");
    assert_eq!(call_as(env.port, "alice", "PUT", &path, &good).status, 204);

    // ... or hands back an older root manifest: a rollback.
    let root = "/dav/Secret/m-00000000000000000000000000000000";
    assert_eq!(call_as(env.port, "alice", "PUT", root, &m_root_before).status, 204);
    let err = laptop.fails(&["vault", "pull", "/Secret", out4.to_str().unwrap()], b"");
    assert!(err.contains("rollback"), "{err}");
    assert!(!out4.exists() || tree(&out4).is_empty());
    record_figure(
        "vaults: cairn push/pull/unlock/recover/open-copy round trip; tampered file and rolled-back manifest refused, nothing written",
    );
}

/// Two family members share a vault: the safety numbers both see agree; bob reads and writes
/// it; removed, he loses the folder on the server, and even a full copy of it (a server handing
/// it over) does not open with his keys once alice has written under the new key.
#[test]
fn two_members_share_a_vault_and_a_removed_one_cannot_read_what_follows() {
    let env = Env::new();
    let _d = env.start_daemon();
    env.add_user("alice", None);
    env.add_user("bob", None);
    let alice = Device::new(&env, "alice-laptop", "alice");
    let bob = Device::new(&env, "bob-phone", "bob");
    alice.ok(&["vault", "enroll"], b"alice's long passphrase\n");
    let bob_kit = bob.ok(&["vault", "enroll"], b"bob's own long passphrase\n");
    let bob_kit_file = env.dir.join("bob-kit.txt");
    fs::write(&bob_kit_file, &bob_kit).unwrap();
    let bob_recovery =
        bob_kit.lines().find_map(|l| l.strip_prefix("recovery key:")).unwrap().trim().to_owned();

    alice.ok(&["vault", "create", "/Family"], b"");
    let ours = env.dir.join("alice-family");
    fs::create_dir_all(ours.join("Photos")).unwrap();
    fs::write(ours.join("Photos/beach.jpg"), tests::pattern(150_000, 3)).unwrap();
    fs::write(ours.join("plans.txt"), b"summer at grandma's").unwrap();
    alice.ok(&["vault", "push", ours.to_str().unwrap(), "/Family"], b"");

    // Shared: alice's number for bob and bob's for the owner are the same 60 digits.
    let said = alice.ok(&["vault", "share", "/Family", "bob", "--writer"], b"");
    let number = said.lines().last().unwrap().trim().to_owned();
    assert_eq!(number.split(' ').count(), 12, "{said}");
    let seen = bob.ok(&["vault", "members", "/Family"], b"");
    assert!(
        seen.lines().any(|l| l == format!("owner: {number}")),
        "bob sees the owner as\n{seen}\nalice said {number}"
    );

    // bob reads, and writes (a writer's manifests are accepted by alice's device).
    let his = env.dir.join("bob-family");
    bob.ok(&["vault", "pull", "/Family", his.to_str().unwrap()], b"");
    assert_eq!(tree(&his), tree(&ours));
    fs::write(his.join("from-bob.txt"), b"bob was here").unwrap();
    bob.ok(&["vault", "push", his.to_str().unwrap(), "/Family"], b"");
    let check = env.dir.join("alice-check");
    alice.ok(&["vault", "pull", "/Family", check.to_str().unwrap()], b"");
    assert_eq!(fs::read(check.join("from-bob.txt")).unwrap(), b"bob was here");

    // Removed: a new epoch; alice writes under it.
    let out = alice.ok(&["vault", "remove", "/Family", "bob"], b"");
    assert!(out.contains("epoch 1"), "{out}");
    fs::write(check.join("plans.txt"), b"the new plan bob must not read").unwrap();
    alice.ok(&["vault", "push", check.to_str().unwrap(), "/Family"], b"");
    let err = bob.fails(&["vault", "pull", "/Family", env.dir.join("bob-after").to_str().unwrap()], b"");
    assert!(err.contains("no config") || err.contains("404"), "the folder is no longer bob's: {err}");
    // A copy of the folder handed to bob anyway: his keys open nothing written since.
    let copy = copy_of(&env.user_dir("alice").join("Family"), &env.dir.join("leaked"));
    let leaked_out = env.dir.join("bob-leaked");
    let err = bob.fails(
        &[
            "vault",
            "open-copy",
            copy.to_str().unwrap(),
            leaked_out.to_str().unwrap(),
            "--kit-file",
            bob_kit_file.to_str().unwrap(),
        ],
        format!("{bob_recovery}\n").as_bytes(),
    );
    assert!(err.contains("epoch 1"), "{err}");
    assert!(!leaked_out.exists() || tree(&leaked_out).is_empty());
    // alice still reads everything.
    let again = env.dir.join("alice-again");
    alice.ok(&["vault", "pull", "/Family", again.to_str().unwrap()], b"");
    assert_eq!(tree(&again), tree(&check));
}

/// The vault `remote`'s objects by plaintext path, read with the owner's seed from `device`
/// (the test looks inside as the owner would, to know which stored object is which).
fn objects(env: &Env, device: &Device, remote: &str) -> std::collections::BTreeMap<String, String> {
    let seed_hex = fs::read_to_string(device.config.join("vault/seed")).unwrap();
    let seed = vault::account::Seed(
        (0..32)
            .map(|i| u8::from_str_radix(&seed_hex[2 * i..2 * i + 2], 16).unwrap())
            .collect::<Vec<_>>()
            .try_into()
            .unwrap(),
    );
    let get = |name: &str| call_as(env.port, "alice", "GET", &format!("/dav{remote}/{name}"), b"").body;
    let raw = get("config");
    let vault_id: [u8; 16] = raw[9..25].try_into().unwrap();
    let owner: [u8; 32] = raw[33..65].try_into().unwrap();
    let cfg = vault::config::open(&raw, &vault_id, &owner, 0).unwrap();
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![(String::new(), [0u8; 16])];
    while let Some((rel, dir)) = todo.pop() {
        let name = format!("m-{}", hex(&dir));
        let raw = get(&name);
        let epoch = u32::from_be_bytes(raw[49..53].try_into().unwrap());
        let key = vault::keys::manifest_key(&cfg.key_for(&seed, epoch).unwrap(), &vault_id);
        let writers = cfg.writers();
        let expect = vault::manifest::Expect { vault_id, dir_id: dir, min_counter: 0, writers: &writers };
        let m = vault::manifest::open(&key, &raw, &expect).unwrap();
        out.insert(format!("{rel}/"), name);
        for e in m.entries {
            let path = format!("{rel}/{}", e.name);
            match e.kind {
                vault::manifest::Kind::Folder => todo.push((path, e.id)),
                vault::manifest::Kind::File => {
                    out.insert(path, format!("f-{}", hex(&e.id)));
                }
            }
        }
    }
    out
}

/// The malicious server: each manipulation of stored objects a server (or whoever holds its
/// disk) can make, served by the real `cairnd`; `cairn vault pull` refuses every one with the
/// typed error that names it, writes nothing, and opens the vault again once the server is
/// honest. Then the key material: a tampered or downgraded account blob, a re-signed or
/// rolled-back config, and a substituted public key (safety numbers differ).
#[test]
fn a_malicious_server_is_caught_at_every_manipulation_and_nothing_is_written() {
    use vault::cef::HEADER_LEN;
    let env = Env::new();
    let _d = env.start_daemon();
    env.add_user("alice", None);
    env.add_user("bob", None);
    let alice = Device::new(&env, "alice", "alice");
    let bob = Device::new(&env, "bob", "bob");
    let kit = alice.ok(&["vault", "enroll"], b"alice's long passphrase\n");
    let kit_secret = kit.lines().find_map(|l| l.strip_prefix("kit secret:")).unwrap().trim().to_owned();
    bob.ok(&["vault", "enroll"], b"bob's long passphrase\n");
    alice.ok(&["vault", "create", "/V"], b"");
    let local = env.dir.join("v");
    fs::create_dir_all(local.join("sub")).unwrap();
    fs::write(local.join("big.bin"), tests::pattern(200_000, 1)).unwrap();
    fs::write(local.join("big2.bin"), tests::pattern(200_000, 2)).unwrap();
    fs::write(local.join("letter.txt"), b"version one").unwrap();
    fs::write(local.join("sub/inner.txt"), b"inside").unwrap();
    alice.ok(&["vault", "push", local.to_str().unwrap(), "/V"], b"");
    let ids = objects(&env, &alice, "/V");
    let get = |name: &str| call_as(env.port, "alice", "GET", &format!("/dav/V/{name}"), b"").body;
    let put = |name: &str, body: &[u8]| {
        let r = call_as(env.port, "alice", "PUT", &format!("/dav/V/{name}"), body);
        assert!(r.status == 201 || r.status == 204, "the server stores {name}: {} {}", r.status, r.text());
    };
    let (big, big2, letter) = (ids["/big.bin"].clone(), ids["/big2.bin"].clone(), ids["/letter.txt"].clone());
    let (root, sub) = (ids["/"].clone(), ids["/sub/"].clone());
    let letter_v1 = get(&letter);
    let root_v1 = get(&root);
    fs::write(local.join("letter.txt"), b"version two").unwrap();
    alice.ok(&["vault", "push", local.to_str().unwrap(), "/V"], b"");
    let config_v1 = get("config");
    alice.ok(&["vault", "share", "/V", "bob"], b"");
    // Everything the attacks touch, as the honest server holds it.
    let good: Vec<(String, Vec<u8>)> = [&big, &big2, &letter, &root, &sub, &"config".to_owned()]
        .iter()
        .map(|n| (n.to_string(), get(n)))
        .collect();
    let chunk = 65_536 + 16;
    let (b, b2) = (good[0].1.clone(), good[1].1.clone());
    let flipped = |mut v: Vec<u8>, at: usize| {
        v[at] ^= 1;
        v
    };
    let mallory = vault::account::Seed([0x66; 32]).signing_key();
    let forged_manifest = vault::manifest::seal(
        &[0; 32],
        &mallory,
        &vault::manifest::Manifest {
            vault_id: b[24..40].try_into().unwrap(),
            dir_id: [0; 16],
            counter: 99,
            epoch: 0,
            entries: vec![],
        },
    );
    let mut trailer_len_huge = b.clone();
    let n = trailer_len_huge.len();
    trailer_len_huge[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
    // (attack, object, what the server serves, the error `cairn` must name: `a|b` for either)
    let attacks: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        (
            "a bit flipped in a chunk",
            &big,
            flipped(b.clone(), HEADER_LEN + 100),
            "chunk 0 failed authentication",
        ),
        (
            "a bit flipped in a tag",
            &big,
            flipped(b.clone(), HEADER_LEN + chunk - 1),
            "chunk 0 failed authentication",
        ),
        (
            "two chunks swapped",
            &big,
            {
                let mut v = b.clone();
                let (c0, c1) = (
                    b[HEADER_LEN..HEADER_LEN + chunk].to_vec(),
                    b[HEADER_LEN + chunk..HEADER_LEN + 2 * chunk].to_vec(),
                );
                v[HEADER_LEN..HEADER_LEN + chunk].copy_from_slice(&c1);
                v[HEADER_LEN + chunk..HEADER_LEN + 2 * chunk].copy_from_slice(&c0);
                v
            },
            "chunk 0 failed authentication",
        ),
        (
            "a chunk from another file",
            &big,
            {
                let mut v = b.clone();
                v[HEADER_LEN..HEADER_LEN + chunk].copy_from_slice(&b2[HEADER_LEN..HEADER_LEN + chunk]);
                v
            },
            "chunk 0 failed authentication",
        ),
        // Cut at the end, the file's last 4 bytes (read as the trailer's length) are ciphertext,
        // random per run: a length of the wrong shape is `Oversized` (11 runs in 12), one of
        // the right shape overruns the file, `Length`. Both name the cut; the row takes either.
        (
            "the file truncated",
            &big,
            b[..b.len() - 100].to_vec(),
            "parameters are out of range|truncated or its length",
        ),
        (
            "the file cut by a whole chunk",
            &big,
            [&b[..HEADER_LEN + chunk], &b[HEADER_LEN + 2 * chunk..]].concat(),
            "truncated or its length",
        ),
        ("the file extended", &big, [&b[..], &[0u8; 100][..]].concat(), "parameters are out of range"),
        ("an oversized trailer length", &big, trailer_len_huge, "parameters are out of range"),
        (
            "the trailer changed",
            &big,
            flipped(b.clone(), b.len() - 30),
            "not the version its directory's manifest names",
        ),
        ("another file in its place", &big, b2.clone(), "belongs to another vault or file"),
        (
            "an older version spliced back",
            &letter,
            letter_v1.clone(),
            "not the version its directory's manifest names",
        ),
        (
            "the format version downgraded",
            &big,
            {
                let mut v = b.clone();
                v[8] = 0;
                v
            },
            "unsupported format version",
        ),
        ("the file hidden", &big, Vec::new(), "missing"),
        ("a manifest's byte flipped", &root, flipped(good[3].1.clone(), 100), "signature does not verify"),
        ("a manifest rolled back", &root, root_v1.clone(), "a rollback"),
        ("a manifest moved to another folder", &root, good[4].1.clone(), "belongs to another vault or file"),
        (
            "a manifest signed by the server's own key",
            &root,
            forged_manifest,
            "signed by someone who may not write",
        ),
        ("the config rolled back", "config", config_v1.clone(), "a rollback"),
        (
            "the config re-signed by another key",
            "config",
            {
                let raw = &good[5].1;
                let mut cfg = vault::config::open(
                    raw,
                    &raw[9..25].try_into().unwrap(),
                    &raw[33..65].try_into().unwrap(),
                    0,
                )
                .unwrap();
                cfg.owner = mallory.verifying_key().to_bytes();
                cfg.counter += 10;
                vault::config::seal(&mallory, &cfg)
            },
            "signed by someone who may not write",
        ),
        ("the config hidden", "config", Vec::new(), "no config"),
    ];
    let before = env.dir.join("before");
    alice.ok(&["vault", "pull", "/V", before.to_str().unwrap()], b"");
    let mut failures = Vec::new();
    for (i, (attack, object, served, expect)) in attacks.iter().enumerate() {
        if served.is_empty() {
            assert_eq!(
                call_as(env.port, "alice", "DELETE", &format!("/dav/V/{object}"), b"").status,
                204,
                "{attack}"
            );
        } else {
            put(object, served);
        }
        let out = env.dir.join(format!("attack{i}"));
        let res = alice.run(&["vault", "pull", "/V", out.to_str().unwrap()], b"");
        let err = String::from_utf8_lossy(&res.stderr).into_owned();
        let wrote = out.exists() && !tree(&out).is_empty();
        let named = expect.split('|').any(|e| err.contains(e));
        if res.status.success() || !named || wrote {
            failures.push(format!(
                "{attack}: {} (wrote: {wrote}): {err}",
                if res.status.success() { "accepted" } else { "refused" }
            ));
        }
        // The local copy made before is untouched by a failed pull over it.
        let res = alice.run(&["vault", "pull", "/V", before.to_str().unwrap()], b"");
        assert!(!res.status.success(), "{attack}: a pull over the old copy succeeded");
        // The server honest again: the vault opens.
        let (_, honest) = good.iter().find(|(n, _)| n == object).unwrap();
        put(object, honest);
        let again = env.dir.join(format!("again{i}"));
        let res = alice.run(&["vault", "pull", "/V", again.to_str().unwrap()], b"");
        assert!(res.status.success(), "after {attack}, the honest vault: {}", tests::describe(&res));
    }
    assert_eq!(tree(&before), tree(&local), "the earlier copy untouched by every failed pull");
    assert!(
        failures.is_empty(),
        "{} of {} attacks not caught as expected:\n{}",
        failures.len(),
        attacks.len(),
        failures.join("\n")
    );

    // The account's keys: tampered or downgraded by the server, they do not open.
    let phone = Device::new(&env, "phone", "alice");
    let acct: Value =
        serde_json::from_slice(&call_as(env.port, "alice", "GET", "/api/v1/vault/account", b"").body)
            .unwrap();
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(s).unwrap()
    };
    let enc = |v: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(v)
    };
    let blob = b64(acct["passphrase_blob"].as_str().unwrap());
    for (attack, bad, expect) in [
        ("the account blob tampered", flipped(blob.clone(), 60), "did not open"),
        (
            "the account blob downgraded",
            {
                let mut v = blob.clone();
                v[10..14].copy_from_slice(&(8 * 1024u32).to_be_bytes());
                v
            },
            "weaker key derivation",
        ),
        (
            "the account blob oversized",
            {
                let mut v = blob.clone();
                v[14..18].copy_from_slice(&100_000u32.to_be_bytes());
                v
            },
            "out of range",
        ),
    ] {
        let mut body = acct.clone();
        body["passphrase_blob"] = json!(enc(&bad));
        assert_eq!(
            call_as(env.port, "alice", "PUT", "/api/v1/vault/account", body.to_string().as_bytes()).status,
            204
        );
        let err = phone.fails(&["vault", "unlock", "--kit", &kit_secret], b"alice's long passphrase\n");
        assert!(format!("{err:?}").contains(expect) || err.contains(expect), "{attack}: {err}");
    }
    assert_eq!(
        call_as(env.port, "alice", "PUT", "/api/v1/vault/account", acct.to_string().as_bytes()).status,
        204
    );
    phone.ok(&["vault", "unlock", "--kit", &kit_secret], b"alice's long passphrase\n");

    // A public key substituted when sharing: the server hands out mallory's keys as carol's.
    env.add_user("carol", None);
    let carol = Device::new(&env, "carol", "carol");
    carol.ok(&["vault", "enroll"], b"carol's long passphrase\n");
    let real = tests::sql_i64(
        &env.db,
        "SELECT count(*) FROM vault_accounts WHERE user_id = (SELECT id FROM users WHERE name = 'carol')",
    );
    assert_eq!(real, 1);
    let m = vault::account::Seed([0x66; 32]).member();
    tests::admin_sql(
        &env.db,
        &format!(
            "UPDATE vault_accounts SET x25519 = '\\x{}', ed25519 = '\\x{}' WHERE user_id = (SELECT id FROM users WHERE name = 'carol')",
            hex(&m.x25519),
            hex(&m.ed25519)
        ),
    );
    let said = alice.ok(&["vault", "share", "/V", "carol"], b"");
    let alice_number = said.lines().last().unwrap().trim().to_owned();
    let seen = carol.ok(&["vault", "members", "/V"], b"");
    let owner_line =
        seen.lines().find(|l| l.starts_with("owner: ")).unwrap().trim_start_matches("owner: ").to_owned();
    assert_ne!(alice_number, owner_line, "a substituted key shows as different safety numbers");
    record_figure(&format!(
        "vaults: {} manipulations of stored objects, 3 of the account blob and a substituted key: each refused with its typed error, nothing written",
        attacks.len()
    ));
}
