//! The Nextcloud and ownCloud desktop clients' command-line syncers (`nextcloudcmd`,
//! `owncloudcmd`) against Cairn, following the protocol notes' recipe: every run is a real
//! client sync, checked against the plain files on the server and against the requests the
//! server logged. Plus the parts no command-line client exercises on its own: the
//! notify_push websocket, and chunked uploads fed bad input.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tests::{
    Daemon, Env, b3, basic, basic_auth, call_as, describe, http, pattern, record_figure, require_program,
    share_with,
};

/// One of the two syncers.
#[derive(Clone, Copy)]
struct Syncer {
    program: &'static str,
    package: &'static str,
}

const NEXTCLOUD: Syncer = Syncer { program: "nextcloudcmd", package: "nextcloud-desktop-cmd" };
const OWNCLOUD: Syncer = Syncer { program: "owncloudcmd", package: "owncloud-client-cmd" };

/// Start cairnd logging every request (`davbridge` at debug: method, path, status).
fn start(env: &Env) -> Daemon {
    env.start_daemon_with_env(&[("RUST_LOG", "info,davbridge=debug")])
}

/// A fresh app password for `user` (what a phone or desktop app signs in with).
fn app_password(env: &Env, user: &str, label: &str) -> String {
    env.ctl_json(&["token", "add", user, "--label", label])["secret"].as_str().unwrap().to_owned()
}

/// One sync run of `local` against the server; `chunk` sets the client's chunk size.
fn sync(s: Syncer, env: &Env, user: &str, secret: &str, local: &Path, chunk: Option<u64>) -> Output {
    require_program(s.program, s.package);
    let home = env.dir.join(format!("home-{}", s.program));
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(s.program);
    cmd.env("HOME", &home).env("XDG_CONFIG_HOME", home.join(".config"));
    cmd.args(["--non-interactive", "--max-sync-retries", "1"]);
    if s.program == "owncloudcmd" {
        // Without an exclude list owncloudcmd looks for one beside its binary and fails.
        let empty = env.dir.join("empty-exclude.lst");
        std::fs::write(&empty, b"").unwrap();
        cmd.arg("--exclude").arg(&empty);
    }
    if let Some(n) = chunk {
        // Fixed: the clients otherwise grow the chunks toward a minute each after the first.
        for var in ["OWNCLOUD_CHUNK_SIZE", "OWNCLOUD_MIN_CHUNK_SIZE", "OWNCLOUD_MAX_CHUNK_SIZE"] {
            cmd.env(var, n.to_string());
        }
    }
    cmd.args(["-u", user, "-p", secret]).arg(local).arg(format!("http://127.0.0.1:{}", env.port));
    cmd.output().unwrap()
}

/// [`sync`], which must succeed (exit 0: every item synced).
fn sync_ok(s: Syncer, env: &Env, user: &str, secret: &str, local: &Path, chunk: Option<u64>) {
    let out = sync(s, env, user, secret, local, chunk);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !log.contains("Could not complete propagation of") || is_benign(&log),
        "{} failed: {}",
        s.program,
        describe(&out)
    );
}

/// nextcloudcmd 3.7 logs "Could not complete propagation" with status Success for a new
/// folder (it logs every finished job that way); only other statuses are failures.
fn is_benign(log: &str) -> bool {
    log.lines()
        .filter(|l| l.contains("Could not complete propagation of"))
        .all(|l| l.contains("with status OCC::SyncFileItem::Success"))
}

/// A request the daemon logged.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Req {
    method: String,
    path: String,
    status: u16,
}

/// Every request the daemon has logged so far, in order.
fn requests(d: &Daemon) -> Vec<Req> {
    let text = strip_ansi(&d.log_text());
    text.lines()
        .filter(|l| l.contains("davbridge: request "))
        .filter_map(|l| {
            let field = |name: &str| {
                let start = l.find(&format!(" {name}="))? + name.len() + 2;
                Some(l[start..].split(' ').next()?.to_owned())
            };
            Some(Req {
                method: field("method")?,
                path: field("path")?,
                status: field("status")?.parse().ok()?,
            })
        })
        .collect()
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The requests logged since `mark` (a length of [`requests`]) that touch files: WebDAV and
/// uploads (discovery and the push socket left out).
fn file_requests(d: &Daemon, mark: usize) -> Vec<Req> {
    requests(d).split_off(mark).into_iter().filter(|r| r.path.starts_with("/remote.php/")).collect()
}

/// Relative path → blake3 of every file under `root` (folders as `None`), leaving out the
/// syncers' own journal files.
fn tree(root: &Path) -> BTreeMap<String, Option<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<String>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".sync_") || name.starts_with("._sync_") || name == ".owncloudsync.log" {
                continue;
            }
            let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                out.insert(rel, None);
                walk(root, &e.path(), out);
            } else {
                out.insert(rel, Some(b3(&std::fs::read(e.path()).unwrap())));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The client's folder and the server's files are the same, byte for byte, and the server's
/// metadata agrees with its files (`cairnctl fsck --verify`).
fn assert_same_tree(local: &Path, env: &Env, user: &str) {
    assert_eq!(tree(local), tree(&env.user_dir(user)), "the client's folder and the server's files differ");
    env.assert_fsck_clean();
}

fn mtime(p: &Path) -> i64 {
    std::fs::metadata(p).unwrap().mtime()
}

/// Names the clients and servers commonly get wrong in URLs and XML.
const AWKWARD: &[&str] =
    &["with space.txt", "hash#name.txt", "percent%41%.txt", "plus+and&amp.txt", "why?.txt", "naïve café.txt"];

#[test]
fn nextcloudcmd_first_sync_then_changes_on_both_sides_conflict_and_restart() {
    require_program(NEXTCLOUD.program, NEXTCLOUD.package);
    let mut env = Env::new();
    let mp = env.enable_fuse();
    let d = start(&env);
    env.add_user("alice", None);
    let secret = app_password(&env, "alice", "nextcloudcmd");
    let local = env.dir.join("local");
    std::fs::create_dir_all(&local).unwrap();

    // 1. First sync of a seeded account: the same files, with the server's mtimes.
    env.put_ok("alice", "/hello.txt", b"hello\n");
    env.ctl_ok(&["files", "mkdir", "alice", "/Docs"]);
    env.put_ok("alice", "/Docs/readme.md", b"# readme\n");
    env.put_ok("alice", "/blob.bin", &pattern(3000, 1));
    sync_ok(NEXTCLOUD, &env, "alice", &secret, &local, None);
    assert_same_tree(&local, &env, "alice");
    assert_eq!(mtime(&local.join("Docs/readme.md")), mtime(&env.user_dir("alice").join("Docs/readme.md")));

    // 2. Nothing changed: one PROPFIND of the root and nothing else that touches files.
    let mark = requests(&d).len();
    sync_ok(NEXTCLOUD, &env, "alice", &secret, &local, None);
    let reqs = file_requests(&d, mark);
    assert_eq!(
        reqs,
        [Req { method: "PROPFIND".into(), path: "/remote.php/dav/files/alice/".into(), status: 207 }],
        "a run with nothing to do"
    );

    // 3. Changes made on the server through WebDAV (with the client's mtime header), the REST
    // API and the FUSE mount arrive, and only they are downloaded.
    let auth = basic("alice");
    let r = http(
        env.port,
        "PUT",
        "/dav/Docs/notes.txt",
        &[("Authorization", &auth), ("X-OC-Mtime", "1700000000")],
        b"written over WebDAV\n",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = http(
        env.port,
        "PUT",
        "/api/v1/content?path=%2Frest.txt",
        &[("Authorization", &auth)],
        b"from REST\n",
    );
    assert!(r.status < 300, "{} {}", r.status, r.text());
    let mut f = std::fs::File::create(mp.join("alice/fuse.txt")).unwrap();
    f.write_all(b"from the mount\n").unwrap();
    f.sync_all().unwrap();
    drop(f);
    let mark = requests(&d).len();
    sync_ok(NEXTCLOUD, &env, "alice", &secret, &local, None);
    assert_same_tree(&local, &env, "alice");
    assert_eq!(mtime(&local.join("Docs/notes.txt")), 1_700_000_000, "X-OC-Mtime is the file's mtime");
    let mut gets: Vec<String> =
        file_requests(&d, mark).into_iter().filter(|r| r.method == "GET").map(|r| r.path).collect();
    gets.sort();
    assert_eq!(
        gets,
        [
            "/remote.php/dav/files/alice/Docs/notes.txt",
            "/remote.php/dav/files/alice/fuse.txt",
            "/remote.php/dav/files/alice/rest.txt"
        ],
        "exactly the changed files are downloaded"
    );

    // 4. Local changes: new files with awkward names, an edit, a new folder with a file, a
    // rename (a MOVE on the server, not a new upload), a delete.
    for (i, name) in AWKWARD.iter().enumerate() {
        std::fs::write(local.join(name), pattern(100 + i, i as u64)).unwrap();
    }
    std::fs::write(local.join("hello.txt"), b"hello, edited on the desktop\n").unwrap();
    std::fs::write(local.join("empty.txt"), b"").unwrap();
    std::fs::create_dir_all(local.join("New Folder")).unwrap();
    std::fs::write(local.join("New Folder/inside.txt"), b"inside\n").unwrap();
    std::fs::rename(local.join("blob.bin"), local.join("Docs/blob moved.bin")).unwrap();
    std::fs::remove_file(local.join("Docs/readme.md")).unwrap();
    let id_before = env.ctl_json(&["files", "stat", "alice", "/blob.bin"])["id"].clone();
    let mark = requests(&d).len();
    sync_ok(NEXTCLOUD, &env, "alice", &secret, &local, None);
    assert_same_tree(&local, &env, "alice");
    let reqs = file_requests(&d, mark);
    assert!(reqs.iter().any(|r| r.method == "MOVE" && r.status == 201), "the rename is a MOVE: {reqs:?}");
    assert!(!reqs.iter().any(|r| r.method == "PUT" && r.path.contains("moved")), "a rename uploads nothing");
    assert_eq!(
        env.ctl_json(&["files", "stat", "alice", "/Docs/blob moved.bin"])["id"],
        id_before,
        "same file id"
    );
    assert!(reqs.iter().any(|r| r.method == "DELETE" && r.status == 204), "{reqs:?}");
    assert!(!reqs.iter().any(|r| r.method == "GET"), "nothing to download: {reqs:?}");

    // 5. A conflict: the server keeps its edit, the desktop's edit is kept beside it as a
    // conflicted copy (uploaded too, so no device holds the only copy), and nothing is lost.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(local.join("hello.txt"), b"the desktop's second edit\n").unwrap();
    let r = http(env.port, "PUT", "/dav/hello.txt", &[("Authorization", &auth)], b"the phone's edit\n");
    assert_eq!(r.status, 204, "{}", r.text());
    sync_ok(NEXTCLOUD, &env, "alice", &secret, &local, None);
    assert_eq!(std::fs::read(local.join("hello.txt")).unwrap(), b"the phone's edit\n");
    assert_eq!(env.get("alice", "/hello.txt"), b"the phone's edit\n");
    let copies: Vec<String> = std::fs::read_dir(env.user_dir("alice"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("hello (conflicted copy"))
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(env.get("alice", &format!("/{}", copies[0])), b"the desktop's second edit\n");
    assert_same_tree(&local, &env, "alice");
    // Another device gets both contents too.
    let laptop = env.dir.join("laptop");
    std::fs::create_dir_all(&laptop).unwrap();
    sync_ok(NEXTCLOUD, &env, "alice", &secret, &laptop, None);
    assert_same_tree(&laptop, &env, "alice");
    assert_eq!(std::fs::read(laptop.join(&copies[0])).unwrap(), b"the desktop's second edit\n");

    // 6. After a restart, ids and ETags are the same: the next run transfers nothing.
    assert!(d.stop().success());
    let d = start(&env);
    let mark = requests(&d).len();
    sync_ok(NEXTCLOUD, &env, "alice", &secret, &local, None);
    let moved: Vec<Req> =
        file_requests(&d, mark).into_iter().filter(|r| !matches!(r.method.as_str(), "PROPFIND")).collect();
    assert!(moved.is_empty(), "after a restart: {moved:?}");

    // 7. A wrong password: refused with 401 at the capabilities, the client exits 1.
    let mark = requests(&d).len();
    let out = sync(NEXTCLOUD, &env, "alice", "not the password", &local, None);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let reqs = requests(&d).split_off(mark);
    assert!(
        reqs.iter().any(|r| r.path.ends_with("/cloud/capabilities") && r.status == 401),
        "the capabilities refuse a wrong password: {reqs:?}"
    );
    assert_same_tree(&local, &env, "alice");
    drop(d);
    env.assert_fsck_clean();
}

/// A big file in 200 MiB: mostly repeated blocks, each stamped with its offset so no two
/// chunks are alike.
fn big_file(path: &Path, mib: usize, seed: u64) {
    let block = pattern(1 << 20, seed);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..mib {
        let mut b = block.clone();
        b[..8].copy_from_slice(&(i as u64).to_le_bytes());
        f.write_all(&b).unwrap();
    }
    f.flush().unwrap();
}

fn b3_file(path: &Path) -> String {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(path).unwrap()).unwrap();
    h.finalize().to_hex().to_string()
}

#[test]
fn nextcloudcmd_uploads_200_mib_in_chunks_and_replaces_it_keeping_a_version() {
    let env = Env::new();
    let d = start(&env);
    env.add_user("alice", None);
    let secret = app_password(&env, "alice", "desktop");
    let local = env.dir.join("local");
    std::fs::create_dir_all(&local).unwrap();
    let file = local.join("video.mkv");
    big_file(&file, 200, 7);
    let mark = requests(&d).len();
    let started = Instant::now();
    sync_ok(NEXTCLOUD, &env, "alice", &secret, &local, Some(20_000_000));
    let took = started.elapsed();
    let reqs = file_requests(&d, mark);
    let chunks =
        reqs.iter().filter(|r| r.method == "PUT" && r.path.starts_with("/remote.php/dav/uploads/")).count();
    assert!(chunks >= 5, "a 200 MiB file goes up in chunks: {reqs:?}");
    assert!(
        reqs.iter().any(|r| r.method == "MOVE" && r.path.ends_with("/.file") && r.status == 201),
        "{reqs:?}"
    );
    let on_server = env.user_dir("alice").join("video.mkv");
    assert_eq!(b3_file(&on_server), b3_file(&file));
    record_figure(&format!(
        "nextcloudcmd: 200 MiB chunked upload in {:.1} s ({chunks} chunks)",
        took.as_secs_f64()
    ));

    // Changed in the middle: uploaded again, replacing the file (204) under its ETag, and the
    // old content is a version.
    {
        use std::io::{Seek, SeekFrom};
        let mut f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.seek(SeekFrom::Start(100 << 20)).unwrap();
        f.write_all(&pattern(1 << 20, 99)).unwrap();
    }
    let mark = requests(&d).len();
    sync_ok(NEXTCLOUD, &env, "alice", &secret, &local, Some(20_000_000));
    let reqs = file_requests(&d, mark);
    assert!(
        reqs.iter().any(|r| r.method == "MOVE" && r.path.ends_with("/.file") && r.status == 204),
        "{reqs:?}"
    );
    assert_eq!(b3_file(&on_server), b3_file(&file));
    let versions = env.ctl_json(&["versions", "list", "alice", "/video.mkv"]);
    assert_eq!(versions.as_array().unwrap().len(), 1, "{versions}");
    // And it comes down to another device byte for byte.
    let other = env.dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    sync_ok(NEXTCLOUD, &env, "alice", &secret, &other, None);
    assert_eq!(b3_file(&other.join("video.mkv")), b3_file(&file));
    // The chunks are gone once assembled.
    let left = std::fs::read_dir(env.data_dir.join(".cairn/chunks")).unwrap().count();
    assert_eq!(left, 0, "chunk folders left behind");
    drop(d);
    env.assert_fsck_clean();
}

#[test]
fn owncloudcmd_first_sync_edit_chunked_upload_and_conflict() {
    require_program(OWNCLOUD.program, OWNCLOUD.package);
    let env = Env::new();
    let d = start(&env);
    env.add_user("alice", None);
    let secret = app_password(&env, "alice", "owncloudcmd");
    env.ctl_ok(&["files", "mkdir", "alice", "/from server"]);
    env.put_ok("alice", "/from server/a.txt", b"a\n");
    let local = env.dir.join("local");
    std::fs::create_dir_all(&local).unwrap();
    sync_ok(OWNCLOUD, &env, "alice", &secret, &local, None);
    assert_same_tree(&local, &env, "alice");

    // owncloudcmd 2.11 ignores names with `?` (not portable to Windows), whatever the server.
    for name in AWKWARD.iter().filter(|n| !n.contains('?')) {
        std::fs::write(local.join(name), name.as_bytes()).unwrap();
    }
    std::fs::write(local.join("from server/a.txt"), b"a, edited\n").unwrap();
    big_file(&local.join("big.bin"), 25, 3);
    let mark = requests(&d).len();
    sync_ok(OWNCLOUD, &env, "alice", &secret, &local, Some(4_000_000));
    assert_same_tree(&local, &env, "alice");
    let reqs = file_requests(&d, mark);
    assert!(reqs.iter().any(|r| r.method == "MOVE" && r.path.ends_with("/.file")), "chunked: {reqs:?}");

    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(local.join("from server/a.txt"), b"desktop\n").unwrap();
    env.put_ok("alice", "/from server/a.txt", b"server\n");
    sync_ok(OWNCLOUD, &env, "alice", &secret, &local, None);
    assert_eq!(std::fs::read(local.join("from server/a.txt")).unwrap(), b"server\n");
    let kept: Vec<Vec<u8>> = std::fs::read_dir(local.join("from server"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains("conflict"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(kept, [b"desktop\n".to_vec()], "the desktop's edit is kept as a conflict copy");
    drop(d);
    env.assert_fsck_clean();
}

/// A minimal websocket client (RFC 6455): what the desktop apps do on `/push/ws`.
struct Ws(TcpStream);

impl Ws {
    fn connect(port: u16) -> Ws {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "GET /push/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        // The accept value of the RFC's own example key.
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
        Ws(s)
    }

    fn send(&mut self, opcode: u8, payload: &[u8]) {
        assert!(payload.len() < 126);
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.0.write_all(&frame).unwrap();
    }

    /// The next text frame (answering pings on the way).
    fn text(&mut self) -> String {
        self.try_text(Duration::from_secs(20)).expect("a text frame within 20 s")
    }

    /// The next text frame, or None if none comes within `limit`.
    fn try_text(&mut self, limit: Duration) -> Option<String> {
        self.0.set_read_timeout(Some(limit)).unwrap();
        loop {
            let mut h = [0u8; 2];
            if let Err(e) = self.0.read_exact(&mut h) {
                assert!(
                    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
                    "{e}"
                );
                return None;
            }
            let mut len = u64::from(h[1] & 0x7f);
            if len == 126 {
                let mut l = [0u8; 2];
                self.0.read_exact(&mut l).unwrap();
                len = u64::from(u16::from_be_bytes(l));
            }
            let mut payload = vec![0u8; len as usize];
            self.0.read_exact(&mut payload).unwrap();
            match h[0] & 0x0f {
                1 => return Some(String::from_utf8(payload).unwrap()),
                9 => self.send(0xA, &payload),
                8 => panic!("the server closed the socket: {payload:?}"),
                _ => {}
            }
        }
    }
}

#[test]
fn notify_push_tells_a_connected_client_of_a_change_within_two_seconds() {
    let env = Env::new();
    let _d = start(&env);
    env.add_user("alice", None);
    let secret = app_password(&env, "alice", "phone");

    let mut wrong = Ws::connect(env.port);
    wrong.send(1, b"alice");
    wrong.send(1, b"not the password");
    assert_eq!(wrong.text(), "err: Invalid credentials");

    let mut ws = Ws::connect(env.port);
    ws.send(1, b"alice");
    ws.send(1, secret.as_bytes());
    assert_eq!(ws.text(), "authenticated");
    let metrics = http(env.port, "GET", "/metrics", &[], b"").text();
    assert!(metrics.lines().any(|l| l == "cairn_push_connections 1"), "one open push channel:\n{metrics}");
    let started = Instant::now();
    let r = http(env.port, "PUT", "/dav/new.txt", &[("Authorization", &basic_auth("alice", &secret))], b"x");
    assert_eq!(r.status, 201);
    assert_eq!(ws.text(), "notify_file");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "notify_file after {took:?}");
    record_figure(&format!(
        "notify_push: a WebDAV PUT reached a connected client in {} ms",
        took.as_millis()
    ));

    // A burst of changes is a few messages, not one each: at most one per 300 ms (the
    // debounce) after the first.
    while ws.try_text(Duration::from_millis(700)).is_some() {}
    let auth = basic_auth("alice", &secret);
    let started = Instant::now();
    for i in 0..30 {
        assert_eq!(
            http(env.port, "PUT", &format!("/dav/burst-{i}.txt"), &[("Authorization", &auth)], b"x").status,
            201
        );
    }
    let burst = started.elapsed();
    let mut messages = 0;
    while let Some(m) = ws.try_text(Duration::from_millis(700)) {
        assert_eq!(m, "notify_file");
        messages += 1;
    }
    let most = burst.as_millis() / 300 + 2;
    assert!(messages >= 1 && messages as u128 <= most, "{messages} messages for 30 changes in {burst:?}");

    // Another user's changes are not announced to alice.
    env.add_user("bob", None);
    env.put_ok("bob", "/bobs.txt", b"b");
    assert_eq!(ws.try_text(Duration::from_millis(1500)), None, "alice heard of bob's change");
    // Unless they are in a folder bob shares with her.
    assert_eq!(http(env.port, "MKCOL", "/dav/Family", &[("Authorization", &basic("bob"))], b"").status, 201);
    let r = http(
        env.port,
        "POST",
        "/api/v1/shares",
        &[("Authorization", &basic("bob")), ("Content-Type", "application/json")],
        br#"{"path": "/Family", "user": "alice", "role": "viewer"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    // (The listing places the share; the push follows the shares placed when it next waits.)
    assert_eq!(
        http(env.port, "PROPFIND", "/dav/Family/", &[("Authorization", &auth), ("Depth", "0")], b"").status,
        207
    );
    env.put_ok("bob", "/bobs-2.txt", b"b");
    while ws.try_text(Duration::from_millis(700)).is_some() {}
    let started = Instant::now();
    env.put_ok("bob", "/Family/news.txt", b"n");
    assert_eq!(ws.try_text(Duration::from_secs(2)).as_deref(), Some("notify_file"), "a change in a share");
    record_figure(&format!(
        "notify_push: a change in a shared folder reached a member's connected client in {} ms",
        started.elapsed().as_millis()
    ));
}

/// A chunked upload driven by hand: MKCOL, chunks, MOVE `.file`.
struct Upload<'a> {
    port: u16,
    auth: &'a str,
    base: String,
}

impl Upload<'_> {
    fn mkcol(&self, headers: &[(&str, &str)]) -> u16 {
        let mut h = vec![("Authorization", self.auth)];
        h.extend_from_slice(headers);
        http(self.port, "MKCOL", &self.base, &h, b"").status
    }

    fn put(&self, chunk: &str, data: &[u8]) -> u16 {
        http(self.port, "PUT", &format!("{}/{chunk}", self.base), &[("Authorization", self.auth)], data)
            .status
    }

    fn assemble(&self, dest: &str, headers: &[(&str, &str)]) -> tests::HttpResponse {
        let dest = format!("http://127.0.0.1:{}/remote.php/dav/files/{dest}", self.port);
        let mut h = vec![("Authorization", self.auth), ("Destination", dest.as_str())];
        h.extend_from_slice(headers);
        http(self.port, "MOVE", &format!("{}/.file", self.base), &h, b"")
    }
}

#[test]
fn chunked_uploads_refuse_bad_input_and_leave_the_tree_unchanged() {
    let env = Env::new();
    let _d = env.start_daemon();
    env.add_user("alice", Some("6MB"));
    env.add_user("bob", None);
    let alice = basic("alice");
    let up = |id: &str| Upload {
        port: env.port,
        auth: &alice,
        base: format!("/remote.php/dav/uploads/alice/{id}"),
    };
    let (one, two) = (pattern(700_000, 1), pattern(300_000, 2));
    let whole = [one.clone(), two.clone()].concat();

    // Chunks sent out of order are assembled in name order.
    let u = up("ordered");
    assert_eq!(u.mkcol(&[("OC-Total-Length", "1000000")]), 201);
    assert_eq!(u.put("00002", &two), 201);
    assert_eq!(u.put("00001", &one), 201);
    let r = u.assemble("alice/ok.bin", &[("OC-Total-Length", "1000000"), ("X-OC-Mtime", "1600000000")]);
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(r.header("oc-fileid").is_some() && r.header("oc-etag").is_some(), "{:?}", r.headers);
    assert_eq!(env.get("alice", "/ok.bin"), whole);

    let sha1_of_whole = {
        use sha1::Digest;
        let hex: String = sha1::Sha1::digest(&whole).iter().map(|b| format!("{b:02x}")).collect();
        format!("SHA1:{hex}")
    };
    // (upload, its chunks, the MOVE's headers, the status, what the message says)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a [u8])>, &'a [(&'a str, &'a str)], u16, &'a str);
    let both = vec![("00001", &one[..]), ("00002", &two[..])];
    let cases: Vec<Case<'_>> = vec![
        // A chunk missing: the total does not add up.
        ("missing", vec![("00001", &one[..])], &[("OC-Total-Length", "1000000")], 400, "sum up"),
        // The client claims another total.
        ("total", both.clone(), &[("OC-Total-Length", "999999")], 400, "sum up"),
        // A checksum that does not match the bytes.
        (
            "checksum",
            both.clone(),
            &[("OC-Checksum", "SHA1:0000000000000000000000000000000000000000")],
            400,
            "checksum",
        ),
        // Into another user's files.
        ("elsewhere", both, &[], 403, "another user"),
    ];
    for (id, chunks, headers, status, says) in &cases {
        let u = up(id);
        assert_eq!(u.mkcol(&[]), 201, "{id}");
        for (name, data) in chunks {
            assert_eq!(u.put(name, data), 201, "{id}");
        }
        let dest = if *id == "elsewhere" { "bob/stolen.bin".to_owned() } else { format!("alice/{id}.bin") };
        let r = u.assemble(&dest, headers);
        assert_eq!(r.status, *status, "{id}: {}", r.text());
        assert!(r.text().to_lowercase().contains(says), "{id}: {}", r.text());
    }
    // A WebDAV lock on the destination holds for chunked uploads too: refused (423) without
    // its token, assembled with it.
    let lockinfo = br#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#;
    let lock = http(env.port, "LOCK", "/dav/ok.bin", &[("Authorization", &alice)], lockinfo);
    assert_eq!(lock.status, 200, "{}", lock.text());
    let token = lock.header("lock-token").unwrap().trim_matches(['<', '>']).to_owned();
    let u = up("locked");
    assert_eq!(u.mkcol(&[]), 201);
    assert_eq!(u.put("1", b"replacement"), 201);
    let r = u.assemble("alice/ok.bin", &[]);
    assert_eq!(r.status, 423, "{}", r.text());
    assert_eq!(env.get("alice", "/ok.bin"), whole, "a refused assembly changes nothing");
    let with_token = format!("(<{token}>)");
    let r = u.assemble("alice/ok.bin", &[("If", &with_token)]);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(env.get("alice", "/ok.bin"), b"replacement");

    // Bob cannot touch alice's upload, nor learn it exists.
    let bob = basic("bob");
    for (method, path) in [
        ("PUT", "/remote.php/dav/uploads/alice/missing/00002"),
        ("PROPFIND", "/remote.php/dav/uploads/alice/missing"),
        ("DELETE", "/remote.php/dav/uploads/alice/missing"),
        ("PUT", "/remote.php/dav/uploads/bob/missing/00002"),
    ] {
        let r = http(env.port, method, path, &[("Authorization", &bob)], b"x");
        assert_eq!(r.status, 404, "bob {method} {path}: {}", r.text());
    }

    // Abandoned uploads are deleted, their chunks and reservations with them.
    for id in ["missing", "total", "elsewhere"] {
        let r = http(
            env.port,
            "DELETE",
            &format!("/remote.php/dav/uploads/alice/{id}"),
            &[("Authorization", &alice)],
            b"",
        );
        assert_eq!(r.status, 204, "{id}: {}", r.text());
    }
    // A refused assembly keeps the chunks: with the right checksum the same upload lands.
    let u = up("checksum");
    let r = u.assemble("alice/checked.bin", &[("OC-Checksum", sha1_of_whole.as_str())]);
    assert_eq!(r.status, 201, "{}", r.text());

    // Over quota partway (6 MB, about 1 MB used by the files above): refused with 507 while
    // chunks arrive, and nothing lands.
    let u = up("big");
    assert_eq!(u.mkcol(&[]), 201);
    let mut statuses = Vec::new();
    for i in 0..16 {
        statuses.push(u.put(&format!("{i:05}"), &pattern(400_000, i)));
    }
    assert!(statuses.contains(&507), "{statuses:?}");

    let ls = env.ctl_json(&["files", "ls", "alice", "/"]);
    let mut names: Vec<&str> = ls.as_array().unwrap().iter().map(|n| n["path"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["/checked.bin", "/ok.bin"], "only the good uploads landed");
    assert!(env.ctl_json(&["files", "ls", "bob", "/"]).as_array().unwrap().is_empty());
    env.assert_fsck_clean();
}

#[test]
fn previews_of_photos_fit_or_fill_the_box_and_only_their_owner_sees_them() {
    let (env, _d, a) = tests::alice();
    env.add_user("bob", None);
    let encode = |img: image::DynamicImage, format: image::ImageFormat| {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    };
    let photo =
        image::RgbImage::from_fn(1600, 1200, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
    let jpeg = encode(image::DynamicImage::ImageRgb8(photo), image::ImageFormat::Jpeg);
    let logo = image::RgbaImage::from_fn(300, 300, |x, _| image::Rgba([200, 30, 30, (x % 256) as u8]));
    let png = encode(image::DynamicImage::ImageRgba8(logo), image::ImageFormat::Png);
    assert_eq!(http(env.port, "MKCOL", "/dav/Photos", &a, b"").status, 201);
    for (path, body) in [
        ("/dav/Photos/IMG%200001.jpg", &jpeg[..]),
        ("/dav/Photos/logo.png", &png),
        ("/dav/notes.txt", b"text"),
    ] {
        assert_eq!(http(env.port, "PUT", path, &a, body).status, 201, "{path}");
    }
    let id = env.ctl_json(&["files", "stat", "alice", "/Photos/IMG 0001.jpg"])["id"].as_i64().unwrap();
    let preview = |target: &str, auth: &[(&str, &str)]| http(env.port, "GET", target, auth, b"");
    let dims = |r: &tests::HttpResponse, mime: &str| {
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some(mime));
        let img = image::load_from_memory(&r.body).unwrap();
        (img.width(), img.height())
    };

    // Android and the desktop: by file id; `a=1` fits the box, `mode=cover` fills it.
    let fit = preview(&format!("/index.php/core/preview?fileId={id}&x=256&y=256&a=1"), &a);
    assert_eq!(dims(&fit, "image/jpeg"), (256, 192));
    assert!(fit.body.len() < 40_000, "a preview is small: {} bytes", fit.body.len());
    let cover = preview(&format!("/index.php/core/preview?fileId={id}&x=256&y=256&a=1&mode=cover"), &a);
    assert_eq!(dims(&cover, "image/jpeg"), (256, 256));
    // iOS: by path; older apps: the thumbnail URL.
    let ios = preview("/index.php/core/preview.png?file=%2FPhotos%2FIMG%200001.jpg&x=64&y=64", &a);
    assert_eq!(dims(&ios, "image/jpeg"), (64, 64));
    let old = preview("/index.php/apps/files/api/v1/thumbnail/100/100/Photos/IMG%200001.jpg", &a);
    assert_eq!(dims(&old, "image/jpeg"), (100, 75));
    // Transparency stays: PNG.
    let logo = preview("/index.php/core/preview.png?file=%2FPhotos%2Flogo.png&x=100&y=100&a=1", &a);
    assert_eq!(dims(&logo, "image/png"), (100, 100));
    // Asked again with its ETag: 304.
    let etag = fit.header("etag").unwrap().to_owned();
    let again = preview(
        &format!("/index.php/core/preview?fileId={id}&x=256&y=256&a=1"),
        &[a[0], ("If-None-Match", &etag)],
    );
    assert_eq!(again.status, 304);

    // No preview of a text file; bob learns nothing of alice's photo; no sign-in, 401.
    let txt = env.ctl_json(&["files", "stat", "alice", "/notes.txt"])["id"].as_i64().unwrap();
    assert_eq!(preview(&format!("/index.php/core/preview?fileId={txt}&x=64&y=64"), &a).status, 404);
    let bob = basic("bob");
    let r = preview(&format!("/index.php/core/preview?fileId={id}&x=64&y=64"), &[("Authorization", &bob)]);
    assert_eq!(r.status, 404);
    assert_eq!(
        preview("/index.php/core/preview.png?file=%2FPhotos%2FIMG%200001.jpg", &[("Authorization", &bob)])
            .status,
        404
    );
    assert_eq!(preview(&format!("/index.php/core/preview?fileId={id}"), &[]).status, 401);

    // The listing tells the apps which files have previews.
    let body = br#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:nc="http://nextcloud.org/ns"><d:prop><nc:has-preview/></d:prop></d:propfind>"#;
    let text: String = ["/remote.php/dav/files/alice/", "/remote.php/dav/files/alice/Photos/"]
        .iter()
        .map(|url| http(env.port, "PROPFIND", url, &[a[0], ("Depth", "1")], body).text())
        .collect();
    let has = |name: &str| {
        let at = text.find(name).unwrap_or_else(|| panic!("{name} in {text}"));
        text[at..].split("</D:response>").next().unwrap().contains("has-preview>true<")
    };
    assert!(has("IMG%200001.jpg") && has("logo.png") && !has("notes.txt"), "{text}");
}

/// A folder shared with two accounts, synced by the real desktop client: the editor's new file
/// reaches the owner, the owner's edit reaches both, and the viewer's local edit is not sent:
/// the client reads `oc:permissions`, restores the server's version and keeps carol's as a
/// local conflicted copy; the owner's file stays.
#[test]
fn nextcloudcmd_syncs_a_shared_folder_as_editor_and_as_viewer() {
    let env = Env::new();
    for who in ["alice", "bob", "carol"] {
        env.add_user(who, None);
    }
    let _d = start(&env);
    let call =
        |who: &str, method: &str, target: &str, body: &[u8]| call_as(env.port, who, method, target, body);
    assert_eq!(call("alice", "MKCOL", "/dav/Family", b"").status, 201);
    assert_eq!(call("alice", "PUT", "/dav/Family/hello.txt", b"from alice\n").status, 201);
    for (who, role) in [("bob", "editor"), ("carol", "viewer")] {
        share_with(env.port, "alice", "/Family", who, role);
    }
    let (bob, carol) = (app_password(&env, "bob", "desktop"), app_password(&env, "carol", "desktop"));
    let (bdir, cdir) = (env.dir.join("nc-bob"), env.dir.join("nc-carol"));
    std::fs::create_dir_all(&bdir).unwrap();
    std::fs::create_dir_all(&cdir).unwrap();
    sync_ok(NEXTCLOUD, &env, "bob", &bob, &bdir, None);
    sync_ok(NEXTCLOUD, &env, "carol", &carol, &cdir, None);
    assert_eq!(std::fs::read_to_string(bdir.join("Family/hello.txt")).unwrap(), "from alice\n");
    assert_eq!(std::fs::read_to_string(cdir.join("Family/hello.txt")).unwrap(), "from alice\n");

    // The editor adds a file: it is alice's.
    std::fs::write(bdir.join("Family/from-bob.txt"), "bob's\n").unwrap();
    sync_ok(NEXTCLOUD, &env, "bob", &bob, &bdir, None);
    assert_eq!(call("alice", "GET", "/dav/Family/from-bob.txt", b"").text(), "bob's\n");
    // The owner edits: both members get it.
    assert_eq!(call("alice", "PUT", "/dav/Family/hello.txt", b"edited by alice\n").status, 204);
    sync_ok(NEXTCLOUD, &env, "bob", &bob, &bdir, None);
    sync_ok(NEXTCLOUD, &env, "carol", &carol, &cdir, None);
    assert_eq!(std::fs::read_to_string(bdir.join("Family/hello.txt")).unwrap(), "edited by alice\n");
    assert_eq!(std::fs::read_to_string(cdir.join("Family/hello.txt")).unwrap(), "edited by alice\n");
    assert_eq!(std::fs::read_to_string(cdir.join("Family/from-bob.txt")).unwrap(), "bob's\n");

    // The viewer edits locally: nothing reaches the server.
    std::fs::write(cdir.join("Family/hello.txt"), "carol's edit\n").unwrap();
    let _ = sync(NEXTCLOUD, &env, "carol", &carol, &cdir, None);
    assert_eq!(call("alice", "GET", "/dav/Family/hello.txt", b"").text(), "edited by alice\n");
    let local: Vec<(String, String)> = std::fs::read_dir(cdir.join("Family"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).unwrap()))
        .collect();
    // The client restores the server's version and keeps carol's as a local conflicted copy.
    assert!(local.iter().any(|(n, t)| n == "hello.txt" && t == "edited by alice\n"), "{local:?}");
    assert!(
        local.iter().any(|(n, t)| n != "hello.txt" && t == "carol's edit\n"),
        "carol's edit kept: {local:?}"
    );
    let listing = call("alice", "GET", "/api/v1/files?path=/Family", b"").text();
    assert!(!listing.contains("conflict"), "nothing of carol's reached alice's folder: {listing}");
    // And carol's own files are untouched by all this.
    let r = call("carol", "GET", "/api/v1/quota", b"");
    assert!(r.text().contains("\"used\":0"), "{}", r.text());
}
