//! The REST API and tus uploads over real HTTP against the real daemon: the round trip of every
//! endpoint a client uses, sessions with CSRF, cross-user replays, resumable uploads across a
//! crash, quota reservations, and a large upload in flat memory.

use base64::Engine;
use serde_json::{Value, json};
use tests::{Env, HttpResponse, b3, basic, http, pattern, peak_rss, record_figure};

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A client of one user: `Authorization` given per request.
struct Client {
    port: u16,
    auth: String,
}

impl Client {
    fn new(env: &Env, auth: String) -> Client {
        Client { port: env.port, auth }
    }

    fn req(&self, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
        let mut h: Vec<(&str, &str)> = vec![("Authorization", &self.auth)];
        h.extend_from_slice(headers);
        http(self.port, method, target, &h, body)
    }

    fn json(&self, method: &str, target: &str, body: Option<Value>) -> (u16, Value) {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let headers: &[(&str, &str)] =
            if bytes.is_empty() { &[] } else { &[("Content-Type", "application/json")] };
        let res = self.req(method, target, headers, &bytes);
        let v = if res.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&res.body).unwrap_or(Value::Null)
        };
        (res.status, v)
    }

    fn ok(&self, method: &str, target: &str, body: Option<Value>) -> Value {
        let (status, v) = self.json(method, target, body);
        assert!((200..300).contains(&status), "{method} {target}: {status} {v}");
        v
    }

    fn tus_create(&self, path: &str, len: u64) -> HttpResponse {
        let meta = format!("path {}", b64(path.as_bytes()));
        let len = len.to_string();
        self.req(
            "POST",
            "/api/v1/uploads/",
            &[("Tus-Resumable", "1.0.0"), ("Upload-Length", &len), ("Upload-Metadata", &meta)],
            &[],
        )
    }

    fn tus_patch(&self, loc: &str, offset: u64, data: &[u8], extra: &[(&str, &str)]) -> HttpResponse {
        let off = offset.to_string();
        let mut h = vec![
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Offset", off.as_str()),
            ("Content-Type", "application/offset+octet-stream"),
        ];
        h.extend_from_slice(extra);
        self.req("PATCH", loc, &h, data)
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn enc(p: &str) -> String {
    percent_encoding::utf8_percent_encode(p, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[test]
fn rest_round_trip_with_tokens_sessions_and_csrf() {
    let env = Env::new();
    env.add_user("alice", None);
    let _d = env.start_daemon();
    let basic_alice = Client::new(&env, basic("alice"));

    // A token made with Basic, then used as Bearer.
    let t = basic_alice.ok("POST", "/api/v1/tokens", Some(json!({"label": "laptop"})));
    let token = t["token"].as_str().unwrap().to_owned();
    let alice = Client::new(&env, format!("Bearer {token}"));
    assert_eq!(alice.ok("GET", "/api/v1/me", None)["name"], "alice");
    let bad = Client::new(&env, "Bearer 00".into());
    let (status, v) = bad.json("GET", "/api/v1/me", None);
    assert_eq!((status, code(&v)), (401, "unauthenticated"));

    // Upload (parents created), stat, list, download with a range.
    let body = pattern(300_000, 1);
    let res = alice.req("PUT", "/api/v1/content?path=%2Fdocs%2Fcaf%C3%A9%20%231.bin", &[], &body);
    assert_eq!(res.status, 201, "{}", res.text());
    let created: Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(created["path"], "/docs/café #1.bin");
    assert_eq!(created["hash"], b3(&body));
    let listing = alice.ok("GET", "/api/v1/files?path=%2Fdocs", None);
    assert_eq!(listing["total"], 1);
    assert_eq!(listing["entries"][0]["id"], created["id"]);
    let part = alice.req(
        "GET",
        &format!("/api/v1/content?path={}", enc("/docs/café #1.bin")),
        &[("Range", "bytes=10-19")],
        &[],
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.body, body[10..20]);
    assert_eq!(part.header("x-content-type-options"), Some("nosniff"));

    // Overwrite → a version; its bytes; restore it.
    let v2 = pattern(1000, 2);
    assert_eq!(
        alice.req("PUT", &format!("/api/v1/content?path={}", enc("/docs/café #1.bin")), &[], &v2).status,
        200
    );
    let versions = alice.ok("GET", &format!("/api/v1/versions?path={}", enc("/docs/café #1.bin")), None);
    assert_eq!(versions.as_array().unwrap().len(), 1);
    assert_eq!(versions[0]["author"], "alice");
    let vid = versions[0]["id"].as_i64().unwrap();
    let old = alice.req(
        "GET",
        &format!("/api/v1/versions/{vid}/content?path={}", enc("/docs/café #1.bin")),
        &[],
        &[],
    );
    assert_eq!(old.body, body);
    let restored =
        alice.ok("POST", &format!("/api/v1/versions/{vid}/restore?path={}", enc("/docs/café #1.bin")), None);
    assert_eq!(restored["hash"], b3(&body));

    // Folders, move (id kept), copy (new id), search, sorting and paging.
    alice.ok("POST", "/api/v1/folders", Some(json!({"path": "/a/b/c"})));
    let (status, v) = alice.json("POST", "/api/v1/folders", Some(json!({"path": "/a/b/c"})));
    assert_eq!((status, code(&v)), (409, "already_exists"));
    let moved =
        alice.ok("POST", "/api/v1/move", Some(json!({"from": "/docs/café #1.bin", "to": "/a/b/report.bin"})));
    assert_eq!(moved["id"], created["id"]);
    let copied = alice.ok("POST", "/api/v1/copy", Some(json!({"from": "/a", "to": "/a copy"})));
    assert_ne!(copied["id"], alice.ok("GET", "/api/v1/stat?path=/a", None)["id"]);
    let found = alice.ok("GET", "/api/v1/search?q=REPORT", None);
    let paths: Vec<&str> = found.as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/a copy/b/report.bin", "/a/b/report.bin"]);
    // A NUL (which no name holds, and PostgreSQL text cannot carry) finds nothing, not a 5xx.
    assert_eq!(alice.ok("GET", "/api/v1/search?q=%0F%00", None), json!([]));
    for (i, n) in [3usize, 1, 2].iter().enumerate() {
        alice.req("PUT", &format!("/api/v1/content?path=/s/f{i}"), &[], &vec![b'x'; n * 10]);
    }
    let by_size = alice.ok("GET", "/api/v1/files?path=/s&sort=size&order=desc&limit=2&offset=1", None);
    let names: Vec<&str> =
        by_size["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!((by_size["total"].as_u64(), names), (Some(3), vec!["f2", "f1"]));
    let (status, _) = alice.json("GET", "/api/v1/files?path=/s&limit=0", None);
    assert_eq!(status, 400);

    // Delete → trash → restore.
    let trashed = alice.ok("DELETE", "/api/v1/files?path=/a%20copy", None);
    let tid = trashed["trash_id"].as_i64().unwrap();
    let trash = alice.ok("GET", "/api/v1/trash", None);
    assert_eq!(trash[0]["path"], "/a copy");
    assert_eq!(alice.ok("POST", &format!("/api/v1/trash/{tid}/restore"), None)["path"], "/a copy");
    let (status, v) = alice.json("GET", "/api/v1/stat?path=/nope", None);
    assert_eq!((status, code(&v)), (404, "not_found"));
    let (status, v) = alice.json("GET", "/api/v1/stat?path=/a/../etc", None);
    assert_eq!((status, code(&v)), (400, "invalid_path"));
    let q = alice.ok("GET", "/api/v1/quota", None);
    assert!(q["used"].as_u64().unwrap() > 300_000);

    // Browser session: HttpOnly cookie; state changes need the CSRF token; sign-out ends it.
    let res = http(
        env.port,
        "POST",
        "/api/v1/session",
        &[("Content-Type", "application/json")],
        br#"{"user":"alice","password":"correct horse battery"}"#,
    );
    assert_eq!(res.status, 200, "{}", res.text());
    let cookie = res.header("set-cookie").unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let csrf = serde_json::from_slice::<Value>(&res.body).unwrap()["csrf"].as_str().unwrap().to_owned();
    let session = cookie.split(';').next().unwrap().to_owned();
    let with_cookie = |method: &str, target: &str, extra: &[(&str, &str)], body: &[u8]| {
        let mut h = vec![("Cookie", session.as_str())];
        h.extend_from_slice(extra);
        http(env.port, method, target, &h, body)
    };
    assert_eq!(with_cookie("GET", "/api/v1/me", &[], b"").status, 200);
    let forged =
        with_cookie("POST", "/api/v1/folders", &[("Content-Type", "application/json")], br#"{"path":"/x"}"#);
    assert_eq!((forged.status, forged.text().contains("csrf")), (403, true));
    let fine = with_cookie(
        "POST",
        "/api/v1/folders",
        &[("Content-Type", "application/json"), ("X-CSRF-Token", &csrf)],
        br#"{"path":"/x"}"#,
    );
    assert_eq!(fine.status, 201, "{}", fine.text());
    assert_eq!(with_cookie("DELETE", "/api/v1/session", &[("X-CSRF-Token", &csrf)], b"").status, 204);
    assert_eq!(with_cookie("GET", "/api/v1/me", &[], b"").status, 401);

    // Revoking the token ends it at once.
    let tid = t["id"].as_i64().unwrap();
    assert_eq!(basic_alice.req("DELETE", &format!("/api/v1/tokens/{tid}"), &[], &[]).status, 204);
    assert_eq!(alice.json("GET", "/api/v1/me", None).0, 401);

    // Non-admins cannot manage users; the audit trail has the REST mutations.
    let (status, v) = basic_alice.json("GET", "/api/v1/admin/users", None);
    assert_eq!((status, code(&v)), (403, "forbidden"));
    let audit = env.ctl_ok(&["audit", "--limit", "200"]);
    assert!(audit.contains("rest") && audit.contains("file.write"), "{audit}");
}

#[test]
fn a_second_user_replaying_ids_paths_and_uploads_gets_403_or_404() {
    let env = Env::new();
    env.add_user("alice", None);
    env.add_user("bob", None);
    let _d = env.start_daemon();
    let alice = Client::new(&env, basic("alice"));
    let bob = Client::new(&env, basic("bob"));

    alice.req("PUT", "/api/v1/content?path=/secret.txt", &[], b"v1");
    alice.req("PUT", "/api/v1/content?path=/secret.txt", &[], b"v2 secret");
    let vid = alice.ok("GET", "/api/v1/versions?path=/secret.txt", None)[0]["id"].as_i64().unwrap();
    alice.req("PUT", "/api/v1/content?path=/gone.txt", &[], b"trash me");
    let tid = alice.ok("DELETE", "/api/v1/files?path=/gone.txt", None)["trash_id"].as_i64().unwrap();
    let loc = alice.tus_create("/upload.bin", 10).header("location").unwrap().to_owned();
    let token_id = alice.ok("POST", "/api/v1/tokens", Some(json!({"label": "x"})))["id"].as_i64().unwrap();

    let refused = |method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]| {
        let r = bob.req(method, target, headers, body);
        assert!(r.status == 403 || r.status == 404, "bob {method} {target}: {} {}", r.status, r.text());
    };
    refused("GET", "/api/v1/stat?path=/secret.txt", &[], b"");
    refused("GET", "/api/v1/content?path=/secret.txt", &[], b"");
    refused("GET", "/api/v1/versions?path=/secret.txt", &[], b"");
    refused("GET", &format!("/api/v1/versions/{vid}/content?path=/secret.txt"), &[], b"");
    refused("POST", &format!("/api/v1/versions/{vid}/restore?path=/secret.txt"), &[], b"");
    // Even with a file of his own at that path, Alice's version id is not his.
    bob.req("PUT", "/api/v1/content?path=/secret.txt", &[], b"bob's");
    refused("GET", &format!("/api/v1/versions/{vid}/content?path=/secret.txt"), &[], b"");
    refused("POST", &format!("/api/v1/versions/{vid}/restore?path=/secret.txt"), &[], b"");
    refused("POST", &format!("/api/v1/trash/{tid}/restore"), &[], b"");
    refused("DELETE", &format!("/api/v1/trash/{tid}"), &[], b"");
    refused("HEAD", &loc, &[("Tus-Resumable", "1.0.0")], b"");
    refused(
        "PATCH",
        &loc,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Offset", "0"),
            ("Content-Type", "application/offset+octet-stream"),
        ],
        b"0123456789",
    );
    refused("DELETE", &loc, &[("Tus-Resumable", "1.0.0")], b"");
    refused("DELETE", &format!("/api/v1/tokens/{token_id}"), &[], b"");
    refused("GET", "/api/v1/admin/users", &[], b"");
    refused("DELETE", "/api/v1/admin/users/alice", &[], b"");
    refused(
        "PATCH",
        "/api/v1/admin/users/alice",
        &[("Content-Type", "application/json")],
        br#"{"disabled":true}"#,
    );
    // Bob's search and listing show none of Alice's names.
    assert!(
        bob.ok("GET", "/api/v1/search?q=secret", None)
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["path"] == "/secret.txt")
    );
    assert!(bob.ok("GET", "/api/v1/trash", None).as_array().unwrap().is_empty());

    // Everything of Alice's is intact.
    assert_eq!(alice.req("GET", "/api/v1/content?path=/secret.txt", &[], &[]).body, b"v2 secret");
    assert_eq!(alice.ok("GET", "/api/v1/trash", None).as_array().unwrap().len(), 1);
    assert_eq!(
        alice.req("HEAD", &loc, &[("Tus-Resumable", "1.0.0")], &[]).header("upload-offset"),
        Some("0")
    );
    assert_eq!(alice.ok("GET", "/api/v1/tokens", None).as_array().unwrap().len(), 1);
}

#[test]
fn tus_upload_survives_a_crash_checks_checksums_and_reserves_quota() {
    let env = Env::new();
    env.add_user("alice", Some("1M"));
    let d = env.start_daemon();
    let alice = Client::new(&env, basic("alice"));

    let opts = http(env.port, "OPTIONS", "/api/v1/uploads/", &[], b"");
    assert_eq!(opts.status, 204);
    assert!(opts.header("tus-extension").unwrap().contains("creation-with-upload"));
    assert_eq!(alice.req("POST", "/api/v1/uploads/", &[("Upload-Length", "1")], &[]).status, 412);

    // Over quota: refused at creation, before a byte.
    let res = alice.tus_create("/big.bin", 2_000_000);
    assert_eq!(res.status, 413, "{}", res.text());

    let data = pattern(600_000, 7);
    let res = alice.tus_create("/in/a folder/file.bin", data.len() as u64);
    assert_eq!(res.status, 201, "{}", res.text());
    let loc = res.header("location").unwrap().to_owned();
    // The reservation counts: a plain upload that would not fit beside it is refused.
    assert_eq!(alice.req("PUT", "/api/v1/content?path=/other.bin", &[], &pattern(600_000, 8)).status, 413);

    assert_eq!(alice.tus_patch(&loc, 0, &data[..200_000], &[]).status, 204);
    // A wrong offset is a conflict; a wrong checksum appends nothing.
    assert_eq!(alice.tus_patch(&loc, 5, &data[200_000..300_000], &[]).status, 409);
    let wrong = format!("blake3 {}", b64(blake3::hash(b"nope").as_bytes()));
    assert_eq!(
        alice.tus_patch(&loc, 200_000, &data[200_000..300_000], &[("Upload-Checksum", &wrong)]).status,
        460
    );
    let head = alice.req("HEAD", &loc, &[("Tus-Resumable", "1.0.0")], &[]);
    assert_eq!(head.header("upload-offset"), Some("200000"));

    // SIGKILL, restart: the offset and the bytes are still there.
    d.kill();
    let _d = env.start_daemon();
    let head = alice.req("HEAD", &loc, &[("Tus-Resumable", "1.0.0")], &[]);
    assert_eq!(head.header("upload-offset"), Some("200000"));
    let right = format!("sha256 {}", b64(&sha256(&data[200_000..])));
    let res = alice.tus_patch(&loc, 200_000, &data[200_000..], &[("Upload-Checksum", &right)]);
    assert_eq!(res.status, 204, "{}", res.text());
    assert_eq!(res.header("upload-offset"), Some("600000"));
    let stat = alice.ok("GET", &format!("/api/v1/stat?path={}", enc("/in/a folder/file.bin")), None);
    assert_eq!(stat["hash"], b3(&data));
    assert_eq!(res.header("x-cairn-blake3"), stat["hash"].as_str());
    // Completed uploads are gone; their reservation too.
    assert_eq!(alice.req("HEAD", &loc, &[("Tus-Resumable", "1.0.0")], &[]).status, 404);
    assert_eq!(alice.ok("GET", "/api/v1/quota", None)["uploads"], 0);

    // Termination frees the reservation.
    let loc2 = alice.tus_create("/t.bin", 300_000).header("location").unwrap().to_owned();
    assert_eq!(alice.ok("GET", "/api/v1/quota", None)["uploads"], 300_000);
    assert_eq!(alice.req("DELETE", &loc2, &[("Tus-Resumable", "1.0.0")], &[]).status, 204);
    assert_eq!(alice.ok("GET", "/api/v1/quota", None)["uploads"], 0);
    // Creation-with-upload in one request, and an empty file.
    let meta = format!("path {}", b64(b"/one-shot.txt"));
    let res = alice.req(
        "POST",
        "/api/v1/uploads/",
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", "5"),
            ("Upload-Metadata", &meta),
            ("Content-Type", "application/offset+octet-stream"),
        ],
        b"hello",
    );
    assert_eq!((res.status, res.header("upload-offset")), (201, Some("5")));
    assert_eq!(alice.req("GET", "/api/v1/content?path=/one-shot.txt", &[], &[]).body, b"hello");
    assert_eq!(alice.tus_create("/empty.txt", 0).status, 201);
    assert_eq!(alice.ok("GET", "/api/v1/stat?path=/empty.txt", None)["size"], 0);
    env.assert_fsck_clean();
}

fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

#[test]
fn a_large_tus_upload_keeps_the_server_memory_flat() {
    let env = Env::new();
    env.add_user("alice", None);
    let d = env.start_daemon();
    let alice = Client::new(&env, basic("alice"));
    let total: u64 = 1 << 30;
    let chunk = pattern(64 << 20, 3);
    let loc = alice.tus_create("/large.bin", total).header("location").unwrap().to_owned();
    let mut hasher = blake3::Hasher::new();
    let mut offset = 0;
    let started = std::time::Instant::now();
    while offset < total {
        let res = alice.tus_patch(&loc, offset, &chunk, &[]);
        assert_eq!(res.status, 204, "{}", res.text());
        hasher.update(&chunk);
        offset += chunk.len() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    let stat = alice.ok("GET", "/api/v1/stat?path=/large.bin", None);
    assert_eq!(stat["hash"], hasher.finalize().to_hex().as_str());
    let rss = peak_rss(d.child.id());
    record_figure(&format!(
        "tus 1 GiB upload in 64 MiB PATCHes: {:.0} MB/s, cairnd peak RSS {} MiB",
        total as f64 / secs / 1e6,
        rss >> 20
    ));
    assert!(rss < 150 << 20, "cairnd peak RSS {} MiB", rss >> 20);
}

/// A quota given to the admin API is stored exactly as typed: bytes, or text with a binary
/// (MiB, G) or decimal (MB) unit; anything else is a clear 400 that changes nothing.
#[test]
fn admin_quotas_take_the_size_vocabulary_of_cairnctl() {
    let env = Env::new();
    env.add_admin("admin1");
    let _d = env.start_daemon();
    let admin = Client::new(&env, basic("admin1"));
    let pw = "correct horse battery";
    for (name, quota, bytes) in [
        ("u1", json!("50 MiB"), 52_428_800u64),
        ("u2", json!("50 MB"), 50_000_000),
        ("u3", json!("50mib"), 52_428_800),
        ("u4", json!("10G"), 10 << 30),
        ("u5", json!(123_456), 123_456),
    ] {
        let (status, v) = admin.json(
            "POST",
            "/api/v1/admin/users",
            Some(json!({"name": name, "password": pw, "quota": quota})),
        );
        assert_eq!((status, v["quota"].as_u64()), (201, Some(bytes)), "{quota}: {v}");
        let shown = env.ctl_json(&["quota", "show", name]);
        assert_eq!(shown["quota"], bytes, "cairnctl agrees for {quota}");
    }
    let (status, v) = admin.json("PATCH", "/api/v1/admin/users/u1", Some(json!({"quota": "2 GB"})));
    assert_eq!((status, v["quota"].as_u64()), (200, Some(2_000_000_000)));
    let (status, v) = admin.json("PATCH", "/api/v1/admin/users/u1", Some(json!({"quota": "lots"})));
    assert_eq!((status, code(&v)), (400, "invalid_input"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("500 MiB or 2 GB"), "{v}");
    assert_eq!(env.ctl_json(&["quota", "show", "u1"])["quota"], 2_000_000_000u64);
}
