//! The mount and the HTTP front ends changing the same files and folders at once, under CPU
//! load, with one runtime worker and with the default. Each round opens a file through the
//! mount and, while it is open, moves, deletes or overwrites it or its folder over WebDAV, REST
//! or the mount itself, then closes it; readers GET a file that commits keep replacing. Every
//! request and every FUSE call must finish within [`LIMIT`] (a deadlock fails the test within
//! seconds instead of hanging the suite), no GET may answer 5xx, and nothing acknowledged may be
//! lost.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tests::{Daemon, Env, HttpResponse, basic, http_within, record_figure};

/// Longest any request or FUSE call may take. They take milliseconds; the margin is for the
/// rest of the suite running beside this test on two cores (fsyncs queue behind its writes).
const LIMIT: Duration = Duration::from_secs(10);

/// Busy threads beside the test, so that the daemon's threads are preempted at odd moments.
struct CpuLoad {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CpuLoad {
    fn start(n: usize) -> CpuLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 1u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..10_000 {
                            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                        }
                        std::hint::black_box(x);
                    }
                })
            })
            .collect();
        CpuLoad { stop, threads }
    }
}

impl Drop for CpuLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One world under test: the daemon, its mount, a client.
struct World {
    env: Env,
    daemon: Daemon,
    home: PathBuf,
    auth: String,
}

impl World {
    fn start(vars: &[(&str, &str)]) -> World {
        let mut env = Env::new();
        let mp = env.enable_fuse();
        let daemon = env.start_daemon_with_env(vars);
        env.add_user("alice", None);
        let home = mp.join("alice");
        let deadline = Instant::now() + LIMIT;
        while !home.is_dir() {
            assert!(Instant::now() < deadline, "the user's folder never appeared in the mount");
            std::thread::sleep(Duration::from_millis(10));
        }
        World { env, daemon, home, auth: basic("alice") }
    }

    /// A request answered within [`LIMIT`], or the test fails naming it.
    fn http(&self, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
        let mut h: Vec<(&str, &str)> = vec![("Authorization", &self.auth)];
        h.extend_from_slice(headers);
        http_within(self.env.port, method, target, &h, body, LIMIT).unwrap_or_else(|e| self.fail(&e))
    }

    fn dav(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/dav{path}", self.env.port)
    }

    /// Run a FUSE call on a thread of its own and fail if it takes longer than [`LIMIT`] (a
    /// hung call would otherwise hang the test).
    fn fuse<T: Send + 'static>(&self, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        let started = Instant::now();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        match rx.recv_timeout(LIMIT) {
            Ok(v) => v,
            Err(_) => self.fail(&format!("the FUSE call {what} took over {:?}", started.elapsed())),
        }
    }

    /// Poll `check` until it holds, at most [`LIMIT`].
    fn eventually(&self, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + LIMIT;
        while !check() {
            if Instant::now() > deadline {
                self.fail(&format!("{what}: not seen within {LIMIT:?}"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn fail(&self, why: &str) -> ! {
        let log = self.daemon.log_text();
        // A hung daemon answers nothing: end its mount's requests now, or the panic's unwinding
        // would hang closing the files this test holds open there.
        tests::abort_fuse(self.home.parent().expect("the mount point"));
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        panic!(
            "{why}\n--- cairnd's log, last lines ---\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
}

/// Open `path` through the mount and write `data` into it; returns the open handle.
fn open_and_write(w: &World, path: PathBuf, data: &'static [u8]) -> fs::File {
    w.fuse("create and write", move || {
        let mut h = fs::File::create(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        h.write_all(data).unwrap();
        h
    })
}

/// Open the existing `path` through the mount with `O_TRUNC` and write `data`; returns the
/// open handle.
fn rewrite(w: &World, path: PathBuf, data: &'static [u8]) -> fs::File {
    w.fuse("open and write", move || {
        let mut h = fs::OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
        h.write_all(data).unwrap();
        h
    })
}

/// PUT `body` at `target` on a thread of its own (to race something done through the mount).
fn put_meanwhile(
    w: &World,
    target: String,
    body: &'static [u8],
) -> std::thread::JoinHandle<Result<HttpResponse, String>> {
    let (port, auth) = (w.env.port, w.auth.clone());
    std::thread::spawn(move || http_within(port, "PUT", &target, &[("Authorization", &auth)], body, LIMIT))
}

fn close(w: &World, h: fs::File) {
    w.fuse("close", move || drop(h));
}

fn mkdir(w: &World, path: PathBuf) {
    w.fuse("mkdir", move || {
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()))
    });
}

/// One interleaving, picked by `round`: a file open through the mount while its folder or
/// itself is moved, deleted or overwritten through another front end (or the mount).
fn round(w: &World, worker: usize, round: usize) {
    let name = format!("w{worker}r{round}");
    let home = &w.home;
    match round % 6 {
        // Its folder moved over WebDAV while it is open: the close puts it in the new place.
        0 => {
            mkdir(w, home.join(&name));
            let h = open_and_write(w, home.join(&name).join("inside.txt"), b"follows its folder");
            let dest = w.dav(&format!("/{name}-moved/"));
            assert_eq!(w.http("MOVE", &format!("/dav/{name}/"), &[("Destination", &dest)], b"").status, 201);
            close(w, h);
            let target = format!("/dav/{name}-moved/inside.txt");
            w.eventually(&target, || w.http("GET", &target, &[], b"").body == b"follows its folder");
        }
        // Its folder deleted over WebDAV while it is open: the close brings nothing back.
        1 => {
            mkdir(w, home.join(&name));
            let h = open_and_write(w, home.join(&name).join("lost.txt"), b"gone with its folder");
            assert_eq!(w.http("DELETE", &format!("/dav/{name}/"), &[], b"").status, 204);
            close(w, h);
            assert_eq!(w.http("GET", &format!("/dav/{name}/lost.txt"), &[], b"").status, 404);
        }
        // Overwritten over WebDAV while open for writing through the mount: one whole content
        // wins, never a mix.
        2 => {
            let path = format!("/dav/{name}.txt");
            assert_eq!(w.http("PUT", &path, &[], b"first, over WebDAV").status, 201);
            let h = rewrite(w, home.join(format!("{name}.txt")), b"second, through the mount");
            let put = w.http("PUT", &path, &[], b"third, over WebDAV, while open");
            assert!(put.status == 204 || put.status == 201, "PUT while open: {}", put.status);
            close(w, h);
            let got = w.http("GET", &path, &[], b"");
            assert_eq!(got.status, 200);
            assert!(
                got.body == b"second, through the mount" || got.body == b"third, over WebDAV, while open",
                "a whole content wins: {:?}",
                got.text()
            );
        }
        // Renamed over REST while open: the close writes to the file wherever it is now.
        3 => {
            let path = format!("/{name}.txt");
            assert_eq!(w.http("PUT", &format!("/dav{path}"), &[], b"before").status, 201);
            let h = rewrite(w, home.join(format!("{name}.txt")), b"written while it moved");
            let body = format!(r#"{{"from": "{path}", "to": "/{name}-renamed.txt"}}"#);
            let r = w.http("POST", "/api/v1/move", &[("Content-Type", "application/json")], body.as_bytes());
            assert!(r.status == 200 || r.status == 201, "REST move: {} {}", r.status, r.text());
            close(w, h);
            let target = format!("/dav/{name}-renamed.txt");
            w.eventually(&target, || w.http("GET", &target, &[], b"").body == b"written while it moved");
        }
        // Its folder renamed through the mount while WebDAV writes into it.
        4 => {
            mkdir(w, home.join(&name));
            let h = open_and_write(w, home.join(&name).join("a.txt"), b"in a folder renamed by the mount");
            let (from, to) = (home.join(&name), home.join(format!("{name}-r")));
            let put = put_meanwhile(w, format!("/dav/{name}/b.txt"), b"put meanwhile");
            w.fuse("rename a folder", move || fs::rename(&from, &to).unwrap());
            let put = put.join().unwrap().unwrap_or_else(|e| w.fail(&e));
            close(w, h);
            // The PUT landed before the rename (and moved with the folder) or found no folder.
            let moved = w.http("GET", &format!("/dav/{name}-r/b.txt"), &[], b"");
            match put.status {
                201 => assert_eq!(moved.body, b"put meanwhile", "an acknowledged PUT moved with its folder"),
                409 => assert_eq!(moved.status, 404),
                s => w.fail(&format!("PUT into a folder being renamed: {s}")),
            }
            let target = format!("/dav/{name}-r/a.txt");
            w.eventually(&target, || {
                w.http("GET", &target, &[], b"").body == b"in a folder renamed by the mount"
            });
        }
        // Unlinked through the mount while it is open there and read over WebDAV.
        _ => {
            let path = format!("/dav/{name}.txt");
            assert_eq!(w.http("PUT", &path, &[], b"read while unlinked").status, 201);
            let p = home.join(format!("{name}.txt"));
            let h = w.fuse("open", {
                let p = p.clone();
                move || fs::File::open(&p).unwrap()
            });
            w.fuse("unlink", move || fs::remove_file(&p).unwrap());
            let got = w.http("GET", &path, &[], b"");
            assert!(
                got.status == 404 || got.body == b"read while unlinked",
                "GET after unlink: {}",
                got.status
            );
            close(w, h);
            assert_eq!(w.http("GET", &path, &[], b"").status, 404);
        }
    }
}

/// GETs of files that commits keep replacing (over WebDAV and through the mount, changing
/// their length each time), counted by status. The content read must always be one whole
/// version.
struct Readers {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Result<(), String>>>,
    gets: Arc<AtomicUsize>,
}

/// The hot files' lengths: from 1 byte to ~200 KiB, so that the small path (bytes in memory)
/// and the large one (a streamed file) both race.
const LENGTHS: [usize; 6] = [1, 700, 4096, 65_000, 70_000, 200_000];

/// Content `i` of a hot file: one letter, one of [`LENGTHS`].
fn content(i: usize) -> Vec<u8> {
    vec![b'a' + (i % 26) as u8; LENGTHS[i % LENGTHS.len()]]
}

/// Whether `body` is one whole content (not a mix or a cut of two).
fn whole(body: &[u8]) -> bool {
    LENGTHS.contains(&body.len()) && body.iter().all(|&b| b == body[0])
}

impl Readers {
    fn start(w: &World) -> Readers {
        let stop = Arc::new(AtomicBool::new(false));
        let gets = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        for r in 0..2 {
            let (stop, gets, port, auth) = (stop.clone(), gets.clone(), w.env.port, w.auth.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let res = http_within(
                        port,
                        "GET",
                        &format!("/dav/hot{r}.bin"),
                        &[("Authorization", &auth)],
                        b"",
                        LIMIT,
                    )?;
                    gets.fetch_add(1, Ordering::Relaxed);
                    match res.status {
                        200 if whole(&res.body) => {}
                        200 => {
                            return Err(format!(
                                "GET hot{r}.bin: a torn content of {} bytes",
                                res.body.len()
                            ));
                        }
                        s => {
                            return Err(format!(
                                "GET hot{r}.bin racing a commit answered {s}: {}",
                                res.text()
                            ));
                        }
                    }
                }
                Ok(())
            }));
        }
        Readers { stop, threads, gets }
    }

    fn finish(mut self) -> Result<usize, String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().unwrap()?;
        }
        Ok(self.gets.load(Ordering::Relaxed))
    }
}

/// Replace the hot files once: over WebDAV, and through the mount.
fn churn(w: &World, i: usize) {
    let r = w.http("PUT", "/dav/hot0.bin", &[], &content(i));
    assert!(r.status == 204 || r.status == 201, "PUT hot0.bin: {}", r.status);
    let p = w.home.join("hot1.bin");
    w.fuse("overwrite through the mount", move || fs::write(&p, content(i + 1)).unwrap());
}

fn stress(vars: &[(&str, &str)], rounds: usize, label: &str) {
    let w = Arc::new(World::start(vars));
    // Made over WebDAV: a new file closed through the mount reaches the store behind the close.
    for r in 0..2 {
        assert_eq!(w.http("PUT", &format!("/dav/hot{r}.bin"), &[], &content(r)).status, 201);
    }
    let _load = CpuLoad::start(2);
    let readers = Readers::start(&w);
    let started = Instant::now();
    let workers: Vec<_> = (0..2)
        .map(|worker| {
            let w = w.clone();
            std::thread::spawn(move || {
                for i in 0..rounds {
                    round(&w, worker, i);
                    if worker == 0 {
                        churn(&w, i + 1);
                    }
                }
            })
        })
        .collect();
    for t in workers {
        if let Err(e) = t.join() {
            std::panic::resume_unwind(e);
        }
    }
    let gets = readers.finish().unwrap_or_else(|e| w.fail(&e));
    let took = started.elapsed();
    record_figure(&format!(
        "stress ({label}): {} interleavings of the mount with WebDAV/REST and {gets} racing GETs in {:.1} s under CPU load, none over {LIMIT:?}, no 5xx",
        2 * rounds,
        took.as_secs_f64()
    ));
    let log = w.daemon.log_text();
    assert!(!log.contains("panicked"), "cairnd panicked:\n{log}");
    w.env.assert_fsck_clean();
}

#[test]
fn the_mount_and_http_changing_the_same_tree_never_hang_with_one_runtime_worker() {
    stress(&[("TOKIO_WORKER_THREADS", "1")], 60, "one runtime worker");
}

#[test]
fn the_mount_and_http_changing_the_same_tree_never_hang_with_the_default_workers() {
    stress(&[], 60, "default runtime workers");
}

/// The "replace only an empty folder" rule holds against a WebDAV PUT landing at the same
/// moment: `rmdir` and `rename` onto a folder through the mount either refuse (ENOTEMPTY) or
/// come first (and the PUT finds no folder); an acknowledged upload is never in the trash.
#[test]
fn rmdir_and_rename_onto_a_folder_refuse_a_folder_a_put_just_filled() {
    let w = World::start(&[]);
    // Plainly: a folder filled over WebDAV is not empty for the mount.
    mkdir(&w, w.home.join("full"));
    mkdir(&w, w.home.join("src"));
    assert_eq!(w.http("PUT", "/dav/full/up.txt", &[], b"uploaded").status, 201);
    let p = w.home.join("full");
    let e = w.fuse("rmdir", move || fs::remove_dir(&p).unwrap_err());
    assert_eq!(e.raw_os_error(), Some(libc::ENOTEMPTY));
    let (from, to) = (w.home.join("src"), w.home.join("full"));
    let e = w.fuse("rename onto a folder", move || fs::rename(&from, &to).unwrap_err());
    assert_eq!(e.raw_os_error(), Some(libc::ENOTEMPTY));
    assert_eq!(w.http("GET", "/dav/full/up.txt", &[], b"").body, b"uploaded");
    let trash = w.env.ctl_json(&["trash", "list", "alice"]);
    assert_eq!(trash.as_array().unwrap().len(), 0, "nothing in the trash: {trash}");

    // Racing: the PUT and the rmdir (or rename) at the same moment, many times.
    let _load = CpuLoad::start(2);
    let (mut refused, mut first) = (0, 0);
    for i in 0..60 {
        let dir = format!("race{i}");
        mkdir(&w, w.home.join(&dir));
        let by_rename = i % 2 == 1;
        if by_rename {
            mkdir(&w, w.home.join(format!("{dir}-src")));
        }
        let put = put_meanwhile(&w, format!("/dav/{dir}/up.txt"), b"raced");
        let (home, d) = (w.home.clone(), dir.clone());
        let res = w.fuse("rmdir or rename racing a PUT", move || match by_rename {
            true => fs::rename(home.join(format!("{d}-src")), home.join(&d)),
            false => fs::remove_dir(home.join(&d)),
        });
        let put = put.join().unwrap().unwrap_or_else(|e| w.fail(&e));
        match (&res, put.status) {
            (Err(e), 201) if e.raw_os_error() == Some(libc::ENOTEMPTY) => refused += 1,
            (Ok(()), 409) => first += 1,
            (Ok(()), 201) if by_rename => {
                // The PUT came after the rename, into the folder moved there.
                first += 1;
            }
            other => {
                w.fail(&format!("round {i}: the mount answered {res:?}, the PUT {} ({other:?})", put.status))
            }
        }
        if put.status == 201 {
            let got = w.http("GET", &format!("/dav/{dir}/up.txt"), &[], b"");
            assert_eq!(got.body, b"raced", "round {i}: an acknowledged upload is in place, not in the trash");
        }
    }
    for item in w.env.ctl_json(&["trash", "list", "alice"]).as_array().unwrap() {
        // Only the folders removed or replaced while empty.
        let path = item["path"].as_str().unwrap();
        assert!(item["type"] == "dir" && path.starts_with("/race"), "unexpected trash item {item}");
    }
    record_figure(&format!(
        "empty-folder rule under a racing PUT: {refused} refused (ENOTEMPTY), {first} came first, 0 uploads lost"
    ));
    w.env.assert_fsck_clean();
    assert!(Path::new(&w.home).is_dir());
}

/// A request held up (here by a table lock taken behind the daemon's back) is named in the log
/// by the watchdog within the threshold, with what it waits on, and again when it ends.
#[test]
fn the_watchdog_names_a_stuck_request_and_what_it_waits_on() {
    let env = Env::new();
    let cfg = fs::read_to_string(&env.config).unwrap();
    fs::write(&env.config, format!("{cfg}[log]\nslow = \"1s\"\n")).unwrap();
    let daemon = env.start_daemon();
    env.add_user("alice", None);
    let auth = basic("alice");
    let db = env.db.clone();
    let holder = std::thread::spawn(move || {
        tests::admin_sql(&db, "BEGIN; LOCK TABLE nodes IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(4); COMMIT");
    });
    let deadline = Instant::now() + LIMIT;
    while tests::sql_i64(
        &env.db,
        "SELECT count(*) FROM pg_locks WHERE relation = 'nodes'::regclass AND mode = 'AccessExclusiveLock' AND granted",
    ) == 0
    {
        assert!(Instant::now() < deadline, "the table lock was never granted");
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let r = http_within(env.port, "PUT", "/dav/stuck.txt", &[("Authorization", &auth)], b"held up", LIMIT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 201);
    assert!(started.elapsed() >= Duration::from_secs(2), "the PUT was not held up: {:?}", started.elapsed());
    holder.join().unwrap();
    // The watchdog looks every quarter of its threshold; its report came while the PUT waited.
    let log = daemon.log_text();
    let report = log
        .lines()
        .find(|l| l.contains("an operation is taking too long") && l.contains("PUT /dav/stuck.txt"))
        .unwrap_or_else(|| panic!("no watchdog report of the stuck PUT:\n{log}"));
    assert!(
        report.contains("the database") || report.contains("the group commit"),
        "the report names the wait: {report}"
    );
    assert!(
        log.lines().any(|l| l.contains("a slow operation ended") && l.contains("PUT /dav/stuck.txt")),
        "the end of the slow PUT is logged:\n{log}"
    );
}
