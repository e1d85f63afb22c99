//! Public links beyond the basics in `sharing`: every kind of link against every operation a
//! visitor can try (a table), upload-only drop links, zips of folders (checked by Python's
//! `zipfile`, including a 5 GiB folder with cairnd's memory flat), previews, the grant cookie a
//! password earns, and 10,000 wrong passwords.

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::process::Command;

use serde_json::{Value, json};
use tests::{Env, call_as, http, peak_rss, record_figure, require_program};

/// alice with a folder `Photos` (a picture, a text file, a subfolder with a file) and a file
/// outside it.
fn photos() -> (Env, tests::Daemon, Vec<u8>) {
    let env = Env::new();
    env.add_user("alice", Some("50M"));
    env.add_user("bob", None);
    let d = env.start_daemon();
    let photo = image::RgbImage::from_fn(800, 600, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    let mut jpeg = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(photo).write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
    let jpeg = jpeg.into_inner();
    for (path, body) in [
        ("/dav/Photos/", &b""[..]),
        ("/dav/Photos/beach.jpg", &jpeg[..]),
        ("/dav/Photos/notes.txt", b"sunny"),
        ("/dav/Photos/Trip/", b""),
        ("/dav/Photos/Trip/day1.txt", b"day one"),
        ("/dav/secret.txt", b"not linked"),
    ] {
        let method = if path.ends_with('/') { "MKCOL" } else { "PUT" };
        let r = call_as(env.port, "alice", method, path.trim_end_matches('/'), body);
        assert_eq!(r.status, 201, "{path}: {}", r.text());
    }
    (env, d, jpeg)
}

fn make_link(port: u16, body: Value) -> (String, i64) {
    let r = call_as(port, "alice", "POST", "/api/v1/links", body.to_string().as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["page"], format!("/s/{}", v["token"].as_str().unwrap()));
    (v["token"].as_str().unwrap().to_owned(), v["link"]["id"].as_i64().unwrap())
}

fn audit_count(env: &Env, action: &str, link: i64) -> usize {
    let audit = env.ctl_json(&["audit", "--limit", "100000"]);
    let actor = format!("link:{link}");
    audit.as_array().unwrap().iter().filter(|r| r["action"] == action && r["actor"] == actor.as_str()).count()
}

/// Every kind of link × every operation a visitor can try, each with its expected answer; the
/// refusals of links that are gone are exactly those of a token that never existed.
#[test]
fn every_kind_of_link_answers_every_visitor_operation_as_expected() {
    let (env, _d, _) = photos();
    let port = env.port;
    let pw = "grandma's secret";
    let (open, _) = make_link(port, json!({"path": "/Photos"}));
    let (locked, _) = make_link(port, json!({"path": "/Photos", "password": pw}));
    let (drop, _) = make_link(port, json!({"path": "/Photos", "upload_only": true}));
    let (drop_locked, _) = make_link(port, json!({"path": "/Photos", "upload_only": true, "password": pw}));
    let (file, _) = make_link(port, json!({"path": "/Photos/notes.txt"}));
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let (expired, _) = make_link(port, json!({"path": "/Photos", "expires_at": now + 1}));
    let (revoked, revoked_id) = make_link(port, json!({"path": "/Photos"}));
    assert_eq!(call_as(port, "alice", "DELETE", &format!("/api/v1/links/{revoked_id}"), b"").status, 204);
    let (used_up, _) = make_link(port, json!({"path": "/Photos", "max_downloads": 1}));
    let r = http(port, "GET", &format!("/api/v1/public/{used_up}/content?path=/notes.txt"), &[], b"");
    assert_eq!(r.status, 200);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let never = "0123456789abcdef0123456789abcdef".to_owned();

    // (kind, token, password header)
    let kinds: Vec<(&str, &str, Option<&str>)> = vec![
        ("open link", &open, None),
        ("password link, right password", &locked, Some(pw)),
        ("password link, no password", &locked, None),
        ("upload-only link", &drop, None),
        ("upload-only link with password", &drop_locked, Some(pw)),
        ("link to a file", &file, None),
        ("expired link", &expired, None),
        ("revoked link", &revoked, None),
        ("used-up link", &used_up, None),
        ("never-made token", &never, None),
        // Last: its failures slow the next password attempts from this address (the throttle).
        ("password link, wrong password", &locked, Some("not it at all")),
    ];
    // (operation, method, target after the token, body)
    let ops: [(&str, &str, &str, &[u8]); 9] = [
        ("list", "GET", "", b""),
        ("list a subfolder", "GET", "?path=/Trip", b""),
        ("read a file", "GET", "/content?path=/notes.txt", b""),
        ("read outside the link", "GET", "/content?path=/../secret.txt", b""),
        ("read a file of the owner outside the link", "GET", "/content?path=/secret.txt", b""),
        ("preview a photo", "GET", "/preview?path=/beach.jpg&size=64", b""),
        ("zip the folder", "GET", "/zip", b""),
        ("upload", "POST", "/upload?name=new.txt", b"sent"),
        ("upload with a folder in the name", "POST", "/upload?name=a/b.txt", b"x"),
    ];
    let expect = |kind: &str, op: &str| -> u16 {
        let gone = matches!(kind, "expired link" | "revoked link" | "used-up link" | "never-made token");
        if gone {
            return 404;
        }
        if matches!(kind, "password link, no password" | "password link, wrong password") {
            return 401;
        }
        let upload_only = kind.starts_with("upload-only");
        match op {
            "list" => 200,
            // Not a path at all, whatever the link.
            "read outside the link" => 400,
            "upload" if upload_only => 201,
            "upload with a folder in the name" if upload_only => 400,
            "upload" | "upload with a folder in the name" => 403,
            // Nothing in an upload-only link, nothing below a file, no other file of alice's.
            _ if upload_only || kind == "link to a file" => 404,
            "read a file of the owner outside the link" => 404,
            _ => 200,
        }
    };
    let mut cases = 0;
    let mut wrong = Vec::new();
    let mut gone_bodies = Vec::new();
    for (kind, token, password) in &kinds {
        for (op, method, tail, body) in ops {
            let target = format!("/api/v1/public/{token}{tail}");
            let headers: Vec<(&str, &str)> = password.iter().map(|p| ("X-Link-Password", *p)).collect();
            let r = http(port, method, &target, &headers, body);
            let want = expect(kind, op);
            cases += 1;
            if r.status != want {
                wrong.push(format!("{kind} / {op}: {} (expected {want}) {}", r.status, r.text()));
            }
            if want == 404
                && matches!(*kind, "expired link" | "revoked link" | "used-up link" | "never-made token")
            {
                gone_bodies.push((kind.to_string(), op, r.text()));
            }
        }
    }
    assert!(wrong.is_empty(), "{} of {cases} cases answered otherwise:\n{}", wrong.len(), wrong.join("\n"));
    // A link that is gone tells nothing a token never made does not.
    for (kind, op, text) in &gone_bodies {
        let same = gone_bodies.iter().find(|(k, o, _)| k == "never-made token" && o == op).unwrap();
        assert_eq!(text, &same.2, "{kind} / {op}");
    }
    // The file link reads its file at its own root.
    let r = http(port, "GET", &format!("/api/v1/public/{file}/content"), &[], b"");
    assert_eq!((r.status, r.text()), (200, "sunny".to_owned()));
    record_figure(&format!(
        "public links: {cases} cases (11 kinds of link × 9 visitor operations) answered as expected"
    ));
}

/// An upload-only link: the visitor sees nothing of the folder, sends files that never replace
/// anything, within the owner's quota, each audited.
#[test]
fn upload_only_links_take_files_and_show_nothing() {
    let (env, _d, _) = photos();
    let port = env.port;
    let (token, id) = make_link(port, json!({"path": "/Photos", "upload_only": true}));
    let r = http(port, "GET", &format!("/api/v1/public/{token}"), &[], b"");
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (v["upload_only"].as_bool(), v["entries"].as_array().map(Vec::len)),
        (Some(true), Some(0)),
        "{v:#}"
    );
    let send = |name: &str, body: &[u8]| {
        let target = format!(
            "/api/v1/public/{token}/upload?name={}",
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
        );
        http(port, "POST", &target, &[], body)
    };
    let names: Vec<String> = (0..3)
        .map(|i| {
            let r = send("beach.jpg", format!("from grandma {i}").as_bytes());
            assert_eq!(r.status, 201, "{}", r.text());
            serde_json::from_slice::<Value>(&r.body).unwrap()["name"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(names, ["beach (2).jpg", "beach (3).jpg", "beach (4).jpg"]);
    // alice's own photo is untouched; the sent ones are hers, counted in her usage.
    let r = call_as(port, "alice", "GET", "/api/v1/content?path=/Photos/beach%20(3).jpg", b"");
    assert_eq!(r.text(), "from grandma 1");
    let r = call_as(port, "alice", "GET", "/api/v1/content?path=/Photos/beach.jpg", b"");
    assert!(r.body.starts_with(&[0xFF, 0xD8]), "the JPEG was replaced");
    for bad in ["..", "", "a/b", "."] {
        assert_eq!(send(bad, b"x").status, 400, "{bad:?}");
    }
    // Over alice's quota (50M): refused, nothing left behind.
    let big = vec![7u8; 51 << 20];
    let r = send("huge.bin", &big);
    assert_eq!(r.status, 413, "{}", r.text());
    let r = call_as(port, "alice", "GET", "/api/v1/files?path=/Photos", b"");
    assert!(!r.text().contains("huge"), "{}", r.text());
    assert_eq!(audit_count(&env, "link.upload", id), 3);
    // An upload-only link is to a folder.
    let r = call_as(
        port,
        "alice",
        "POST",
        "/api/v1/links",
        json!({"path": "/secret.txt", "upload_only": true}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
}

/// A folder's zip through a password link: the password earns a cookie that serves previews
/// and the zip without it; the zip holds every file byte for byte (Python's `zipfile` checks
/// it) and counts as one download.
#[test]
fn a_password_link_zips_its_folder_and_serves_previews_with_its_cookie() {
    require_program("python3", "python3");
    let (env, _d, jpeg) = photos();
    let port = env.port;
    let (token, id) =
        make_link(port, json!({"path": "/Photos", "password": "correct horse", "max_downloads": 1}));
    let r =
        http(port, "GET", &format!("/api/v1/public/{token}"), &[("X-Link-Password", "correct horse")], b"");
    assert_eq!(r.status, 200);
    let set = r.header("set-cookie").expect("a grant cookie").to_owned();
    assert!(set.contains(&format!("Path=/api/v1/public/{token}")) && set.contains("HttpOnly"), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    let with = [("Cookie", cookie.as_str())];
    let r =
        http(port, "GET", &format!("/api/v1/public/{token}/preview?path=/beach.jpg&size=200"), &with, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let img = image::load_from_memory(&r.body).unwrap();
    assert!(
        img.width() <= 200 && img.height() <= 200 && img.width() == 200,
        "{}x{}",
        img.width(),
        img.height()
    );
    let forged = [("Cookie", "cairn_link=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")];
    assert_eq!(http(port, "GET", &format!("/api/v1/public/{token}"), &forged, b"").status, 401);
    // Previews are not downloads: the one download allowed is still there for the zip.
    let r = http(port, "GET", &format!("/api/v1/public/{token}/zip"), &with, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/zip"));
    assert!(r.header("content-disposition").is_some_and(|d| d.contains("Photos.zip")), "{:?}", r.headers);
    let dir = env.dir.join("unzipped");
    std::fs::create_dir_all(&dir).unwrap();
    let zip = env.dir.join("photos.zip");
    std::fs::write(&zip, &r.body).unwrap();
    let out = Command::new("python3")
        .args(["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print('\\n'.join(sorted(z.namelist()))); z.extractall(sys.argv[2])"])
        .arg(&zip)
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let names = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        ["Photos/", "Photos/Trip/", "Photos/Trip/day1.txt", "Photos/beach.jpg", "Photos/notes.txt"]
    );
    assert_eq!(std::fs::read(dir.join("Photos/beach.jpg")).unwrap(), jpeg);
    assert_eq!(std::fs::read(dir.join("Photos/Trip/day1.txt")).unwrap(), b"day one");
    assert_eq!(
        http(port, "GET", &format!("/api/v1/public/{token}/zip"), &with, b"").status,
        404,
        "one download allowed"
    );
    assert_eq!(audit_count(&env, "link.download", id), 1);
}

/// 10,000 wrong passwords against one link: the first few are checked (and each audited), the
/// rest refused as throttled — the right password too, until the window passes — and the
/// refusals audited in a handful of rows, not ten thousand.
#[test]
fn ten_thousand_wrong_link_passwords_are_throttled_and_audited() {
    let env = Env::new();
    env.add_user("alice", None);
    let _d = env.start_daemon();
    assert_eq!(call_as(env.port, "alice", "MKCOL", "/dav/Photos", b"").status, 201);
    let (token, id) = make_link(env.port, json!({"path": "/Photos", "password": "correct horse"}));
    let target = format!("/api/v1/public/{token}");
    let t0 = std::time::Instant::now();
    const N: usize = 10_000;
    // Eight clients on kept-alive connections.
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|c| {
                let target = target.clone();
                let port = env.port;
                s.spawn(move || keep_alive_gets(port, &target, c, N / 8))
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let elapsed = t0.elapsed();
    assert_eq!(statuses.len(), N);
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + throttled, N, "only 401 and 429");
    assert!(checked <= 20 + 8, "{checked} passwords checked: the lockout comes after 20");
    let r = http(env.port, "GET", &target, &[("X-Link-Password", "correct horse")], b"");
    assert_eq!(r.status, 429, "locked out");
    let wrong = audit_count(&env, "link.password_wrong", id);
    let rows = audit_count(&env, "link.throttled", id);
    assert_eq!(wrong, checked);
    assert!(
        (throttled / 1000..=throttled / 1000 + 2).contains(&rows),
        "{rows} rows for {throttled} refusals"
    );
    record_figure(&format!(
        "public link: {N} wrong passwords in {:.1} s: {checked} checked (each audited), {throttled} throttled (429, audited in {rows} rows); the right one then 429",
        elapsed.as_secs_f64()
    ));
}

/// GETs of `target` with a wrong password on one kept-alive connection; their statuses.
fn keep_alive_gets(port: u16, target: &str, client: usize, n: usize) -> Vec<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    let mut out = Vec::with_capacity(n);
    let mut buf = Vec::new();
    for i in 0..n {
        // One write per request (several small ones would wait on delayed ACKs).
        let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nX-Link-Password: guess {client}-{i}\r\n\r\n");
        s.write_all(req.as_bytes()).unwrap();
        // Read one response: headers, then Content-Length bytes.
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    out.push(head[9..12].parse().unwrap());
                    buf.drain(..end + 4 + len);
                    break;
                }
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "the server closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
    }
    out
}

/// A zip of a 5 GiB folder (one 5 GiB file, so ZIP64 sizes and offsets, and small files after
/// it) streams with cairnd's peak memory flat; the archive (kept sparse) passes `zipfile`'s
/// check of every CRC.
#[test]
fn a_five_gib_folder_zips_through_a_link_in_flat_memory() {
    require_program("python3", "python3");
    let env = Env::new();
    env.add_user("alice", None);
    let d = env.start_daemon();
    let folder = env.user_dir("alice").join("Big");
    std::fs::create_dir_all(&folder).unwrap();
    const SIZE: u64 = 5 << 30;
    {
        // Sparse, with bytes at both ends and in the middle, so a CRC of zeros would not pass.
        let mut f = std::fs::File::create(folder.join("video.bin")).unwrap();
        f.set_len(SIZE).unwrap();
        for at in [0, SIZE / 2, SIZE - 4096] {
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&[0xA5; 4096]).unwrap();
        }
    }
    std::fs::write(folder.join("after.txt"), b"after the big one").unwrap();
    env.ctl_ok(&["scan", "alice"]);
    let (token, _) = make_link(env.port, json!({"path": "/Big"}));
    let zip = env.dir.join("big.zip");
    let t0 = std::time::Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", env.port)).unwrap();
    write!(s, "GET /api/v1/public/{token}/zip HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let total = save_sparse(&mut s, &zip);
    let secs = t0.elapsed().as_secs_f64();
    let rss = peak_rss(d.child.id());
    assert!(total > SIZE, "{total} bytes");
    let out = Command::new("python3")
        .args(["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print(' '.join(f'{i.filename}={i.file_size}' for i in z.infolist()))"])
        .arg(&zip)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("Big/=0 Big/after.txt=17 Big/video.bin={SIZE}")
    );
    assert!(rss < 150 << 20, "cairnd's peak RSS {} MiB", rss >> 20);
    record_figure(&format!(
        "public link zip: a 5 GiB folder streamed in {secs:.1} s ({:.0} MB/s), cairnd peak RSS {} MiB",
        total as f64 / secs / 1e6,
        rss >> 20
    ));
}

/// Read a chunked HTTP response's body into `path`, seeking over runs of zeros (the file stays
/// sparse); its length.
fn save_sparse(s: &mut TcpStream, path: &std::path::Path) -> u64 {
    let mut r = std::io::BufReader::with_capacity(1 << 20, s);
    let mut line = String::new();
    loop {
        line.clear();
        std::io::BufRead::read_line(&mut r, &mut line).unwrap();
        assert!(!line.is_empty(), "no response");
        if line.starts_with("HTTP/1.1") {
            assert!(line.contains(" 200 "), "{line}");
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut out = std::fs::File::create(path).unwrap();
    let mut at = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        line.clear();
        std::io::BufRead::read_line(&mut r, &mut line).unwrap();
        let len = u64::from_str_radix(line.trim(), 16).unwrap();
        if len == 0 {
            break;
        }
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            r.read_exact(&mut buf[..n]).unwrap();
            if buf[..n].iter().any(|b| *b != 0) {
                out.seek(SeekFrom::Start(at)).unwrap();
                out.write_all(&buf[..n]).unwrap();
            }
            at += n as u64;
            left -= n as u64;
        }
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf).unwrap();
    }
    out.set_len(at).unwrap();
    at
}
