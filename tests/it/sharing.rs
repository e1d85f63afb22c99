//! Shares through every front end, as one table: front end × role × operation, each cell the
//! answer a user of that role must get. Alice owns `/Family` and shares it with bob (editor),
//! carol (viewer) and the group `family` (editor), of which dave is a member and erin was one;
//! mallory is a stranger. A stranger's (and a former member's) answer must be exactly the answer
//! for a path that never existed: they learn nothing.

use serde_json::{Value, json};
use tests::{Env, HttpResponse, basic, http};

/// The roles, in the table's column order, with the account playing each.
const ROLES: [(&str, &str); 6] = [
    ("owner", "alice"),
    ("editor", "bob"),
    ("viewer", "carol"),
    ("member", "dave"),
    ("former", "erin"),
    ("stranger", "mallory"),
];

/// What a cell expects.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// This status.
    S(u16),
    /// The same status and body as the same request on a name that never existed.
    Absent,
}
use Want::{Absent, S};

/// Refused to a viewer: they can see it, so it is not hidden from them.
const DENIED: Want = S(403);

/// `(front end, operation, [owner, editor, viewer, member, former, stranger])`.
const TABLE: &[(&str, &str, [Want; 6])] = &[
    // Each empties their own trash: the owner's holds what editors delete below, untouched.
    ("rest", "empty trash", [S(200), S(200), S(200), S(200), Absent, Absent]),
    ("dav", "list", [S(207), S(207), S(207), S(207), Absent, Absent]),
    ("dav", "read", [S(200), S(200), S(200), S(200), Absent, Absent]),
    ("dav", "head", [S(200), S(200), S(200), S(200), Absent, Absent]),
    ("dav", "stat", [S(207), S(207), S(207), S(207), Absent, Absent]),
    ("dav", "read range", [S(206), S(206), S(206), S(206), Absent, Absent]),
    ("dav", "lock", [S(200), S(200), DENIED, S(200), Absent, Absent]),
    ("dav", "delete folder", [S(204), S(204), DENIED, S(204), Absent, Absent]),
    ("dav", "write new", [S(201), S(201), DENIED, S(201), Absent, Absent]),
    ("dav", "overwrite", [S(204), S(204), DENIED, S(204), Absent, Absent]),
    ("dav", "mkdir", [S(201), S(201), DENIED, S(201), Absent, Absent]),
    ("dav", "rename inside", [S(201), S(201), DENIED, S(201), Absent, Absent]),
    ("dav", "copy inside", [S(201), S(201), DENIED, S(201), Absent, Absent]),
    ("dav", "move in", [S(201), S(201), DENIED, S(201), Absent, Absent]),
    ("dav", "move out", [S(201), S(201), DENIED, S(201), Absent, Absent]),
    ("dav", "copy out", [S(201), S(201), S(201), S(201), Absent, Absent]),
    ("dav", "delete", [S(204), S(204), DENIED, S(204), Absent, Absent]),
    ("rest", "list", [S(200), S(200), S(200), S(200), Absent, Absent]),
    ("rest", "stat", [S(200), S(200), S(200), S(200), Absent, Absent]),
    ("rest", "read", [S(200), S(200), S(200), S(200), Absent, Absent]),
    ("rest", "overwrite", [S(200), S(200), DENIED, S(200), Absent, Absent]),
    ("rest", "mkdir", [S(201), S(201), DENIED, S(201), Absent, Absent]),
    ("rest", "rename inside", [S(200), S(200), DENIED, S(200), Absent, Absent]),
    ("rest", "move out", [S(200), S(200), DENIED, S(200), Absent, Absent]),
    ("rest", "move in", [S(200), S(200), DENIED, S(200), Absent, Absent]),
    ("rest", "copy inside", [S(201), S(201), DENIED, S(201), Absent, Absent]),
    ("rest", "copy out", [S(201), S(201), S(201), S(201), Absent, Absent]),
    ("rest", "delete folder", [S(200), S(200), DENIED, S(200), Absent, Absent]),
    ("rest", "delete", [S(200), S(200), DENIED, S(200), Absent, Absent]),
    ("rest", "versions", [S(200), S(200), S(200), S(200), Absent, Absent]),
    ("rest", "read version", [S(200), S(200), S(200), S(200), Absent, Absent]),
    ("rest", "restore version", [S(200), S(200), DENIED, S(200), Absent, Absent]),
    ("rest", "share further", [S(201), DENIED, DENIED, DENIED, Absent, Absent]),
    ("rest", "tree", [S(200), S(200), S(200), S(200), Absent, Absent]),
    // Last for each role: a REST upload makes missing folders, so a stranger's own `/Family`
    // would appear here and change what later rows see.
    ("rest", "write new", [S(201), S(201), DENIED, S(201), Absent, Absent]),
];

struct World {
    env: Env,
    port: u16,
    /// Version ids of each fixture file (alice's listing), by fixture prefix.
    versions: std::collections::HashMap<String, i64>,
}

impl World {
    fn call(
        &self,
        who: &str,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        let auth = basic(who);
        let mut h = vec![("Authorization", auth.as_str())];
        h.extend_from_slice(headers);
        http(self.port, method, target, &h, body)
    }

    fn json(&self, who: &str, method: &str, target: &str, body: Value) -> HttpResponse {
        self.call(who, method, target, &[("Content-Type", "application/json")], body.to_string().as_bytes())
    }

    /// Carry out `op` through `fe` as `who` on the fixtures named `p`, in the folder `base`
    /// (`Family`, or a name that never existed).
    fn run(&self, fe: &str, op: &str, who: &str, base: &str, p: &str) -> HttpResponse {
        let dav = |rest: &str| format!("/dav/{base}/{rest}");
        let q = |rest: &str| format!("/{base}/{rest}");
        let port = self.port;
        let dest = |path: String| format!("http://127.0.0.1:{port}{path}");
        match (fe, op) {
            ("dav", "list") => self.call(who, "PROPFIND", &format!("/dav/{base}/"), &[("Depth", "1")], b""),
            ("dav", "read") => self.call(who, "GET", &dav(&format!("{p}.txt")), &[], b""),
            ("dav", "write new") => self.call(who, "PUT", &dav(&format!("{p}-new.txt")), &[], b"new"),
            ("dav", "overwrite") => self.call(who, "PUT", &dav(&format!("{p}.txt")), &[], b"v3"),
            ("dav", "mkdir") => self.call(who, "MKCOL", &dav(&format!("{p}-made")), &[], b""),
            ("dav", "rename inside") => self.call(
                who,
                "MOVE",
                &dav(&format!("{p}-dir")),
                &[("Destination", &dest(dav(&format!("{p}-dir2"))))],
                b"",
            ),
            ("dav", "copy inside") => self.call(
                who,
                "COPY",
                &dav(&format!("{p}.txt")),
                &[("Destination", &dest(dav(&format!("{p}-copy.txt"))))],
                b"",
            ),
            ("dav", "move in") => self.call(
                who,
                "MOVE",
                &format!("/dav/{p}-own.txt"),
                &[("Destination", &dest(dav(&format!("{p}-in.txt"))))],
                b"",
            ),
            ("dav", "move out") => self.call(
                who,
                "MOVE",
                &dav(&format!("{p}-mv.txt")),
                &[("Destination", &dest(format!("/dav/{p}-out.txt")))],
                b"",
            ),
            ("dav", "copy out") => self.call(
                who,
                "COPY",
                &dav(&format!("{p}.txt")),
                &[("Destination", &dest(format!("/dav/{p}-copied-out.txt")))],
                b"",
            ),
            ("dav", "stat") => self.call(who, "PROPFIND", &dav(&format!("{p}.txt")), &[("Depth", "0")], b""),
            ("dav", "head") => self.call(who, "HEAD", &dav(&format!("{p}.txt")), &[], b""),
            ("dav", "read range") => self.call(who, "GET", &dav(&format!("{p}.txt")), &[("Range", "bytes=0-0")], b""),
            ("dav", "lock") => self.call(
                who,
                "LOCK",
                &dav(&format!("{p}-lock.txt")),
                &[("Depth", "0"), ("Timeout", "Second-60")],
                br#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#,
            ),
            ("dav", "delete folder") => self.call(who, "DELETE", &dav(&format!("{p}-rmdir")), &[], b""),
            ("dav", "delete") => self.call(who, "DELETE", &dav(&format!("{p}-del.txt")), &[], b""),
            ("rest", "list") => self.call(who, "GET", &format!("/api/v1/files?path=/{base}"), &[], b""),
            ("rest", "stat") => {
                self.call(who, "GET", &format!("/api/v1/stat?path={}", q(&format!("{p}.txt"))), &[], b"")
            }
            ("rest", "read") => {
                self.call(who, "GET", &format!("/api/v1/content?path={}", q(&format!("{p}.txt"))), &[], b"")
            }
            ("rest", "overwrite") => {
                self.call(who, "PUT", &format!("/api/v1/content?path={}", q(&format!("{p}.txt"))), &[], b"v3")
            }
            ("rest", "write new") => self.call(
                who,
                "PUT",
                &format!("/api/v1/content?path={}", q(&format!("{p}-new.txt"))),
                &[],
                b"new",
            ),
            ("rest", "mkdir") => {
                self.json(who, "POST", "/api/v1/folders", json!({"path": q(&format!("{p}-made"))}))
            }
            ("rest", "rename inside") => self.json(
                who,
                "POST",
                "/api/v1/move",
                json!({"from": q(&format!("{p}-dir")), "to": q(&format!("{p}-dir2"))}),
            ),
            ("rest", "move out") => self.json(
                who,
                "POST",
                "/api/v1/move",
                json!({"from": q(&format!("{p}-mv.txt")), "to": format!("/{p}-out.txt")}),
            ),
            ("rest", "empty trash") => self.call(who, "DELETE", "/api/v1/trash", &[], b""),
            ("rest", "move in") => self.json(
                who,
                "POST",
                "/api/v1/move",
                json!({"from": format!("/{p}-own.txt"), "to": q(&format!("{p}-in.txt"))}),
            ),
            ("rest", "copy inside") => self.json(
                who,
                "POST",
                "/api/v1/copy",
                json!({"from": q(&format!("{p}.txt")), "to": q(&format!("{p}-copy.txt"))}),
            ),
            ("rest", "copy out") => self.json(
                who,
                "POST",
                "/api/v1/copy",
                json!({"from": q(&format!("{p}.txt")), "to": format!("/{p}-copied-out.txt")}),
            ),
            ("rest", "delete folder") => {
                self.call(who, "DELETE", &format!("/api/v1/files?path={}", q(&format!("{p}-rmdir"))), &[], b"")
            }
            ("rest", "delete") => self.call(
                who,
                "DELETE",
                &format!("/api/v1/files?path={}", q(&format!("{p}-del.txt"))),
                &[],
                b"",
            ),
            ("rest", "versions") => {
                self.call(who, "GET", &format!("/api/v1/versions?path={}", q(&format!("{p}.txt"))), &[], b"")
            }
            ("rest", "read version") => self.call(
                who,
                "GET",
                &format!("/api/v1/versions/{}/content?path={}", self.versions[p], q(&format!("{p}.txt"))),
                &[],
                b"",
            ),
            ("rest", "restore version") => self.call(
                who,
                "POST",
                &format!("/api/v1/versions/{}/restore?path={}", self.versions[p], q(&format!("{p}.txt"))),
                &[],
                b"",
            ),
            ("rest", "share further") => self.json(
                who,
                "POST",
                "/api/v1/shares",
                json!({"path": format!("/{base}"), "user": "zed", "role": "viewer"}),
            ),
            ("rest", "tree") => self.call(who, "GET", &format!("/api/v1/tree?path=/{base}"), &[], b""),
            _ => panic!("no operation {fe} {op}"),
        }
    }
}

/// Alice's `/Family` with fixtures for every (front end, role), shared three ways.
fn world() -> (World, tests::Daemon) {
    let env = Env::new();
    for (_, who) in ROLES {
        env.add_user(who, None);
    }
    env.add_user("zed", None);
    env.ctl_ok(&["group", "add", "family"]);
    env.ctl_ok(&["group", "add-member", "family", "dave", "erin"]);
    let d = env.start_daemon();
    let mut w = World { port: env.port, env, versions: Default::default() };
    assert_eq!(w.call("alice", "MKCOL", "/dav/Family", &[], b"").status, 201);
    for fe in ["dav", "rest"] {
        for (role, who) in ROLES {
            let p = format!("{fe}-{role}");
            for (name, body) in [
                (format!("{p}.txt"), "v1"),
                (format!("{p}.txt"), "v2"),
                (format!("{p}-del.txt"), "x"),
                (format!("{p}-mv.txt"), "x"),
                (format!("{p}-lock.txt"), "x"),
            ] {
                let r = w.call("alice", "PUT", &format!("/dav/Family/{name}"), &[], body.as_bytes());
                assert!(matches!(r.status, 201 | 204), "{name}: {}", r.status);
            }
            assert_eq!(w.call("alice", "MKCOL", &format!("/dav/Family/{p}-dir"), &[], b"").status, 201);
            assert_eq!(w.call("alice", "MKCOL", &format!("/dav/Family/{p}-rmdir"), &[], b"").status, 201);
            let r = w.call("alice", "PUT", &format!("/dav/Family/{p}-rmdir/inside.txt"), &[], b"in");
            assert_eq!(r.status, 201);
            // The user's own file, for moving in.
            assert_eq!(w.call(who, "PUT", &format!("/dav/{p}-own.txt"), &[], b"mine").status, 201);
            let v = w.call("alice", "GET", &format!("/api/v1/versions?path=/Family/{p}.txt"), &[], b"");
            let v: Value = serde_json::from_slice(&v.body).unwrap();
            w.versions.insert(p, v[0]["id"].as_i64().unwrap());
        }
    }
    for (to, role) in [
        (json!({"user": "bob"}), "editor"),
        (json!({"user": "carol"}), "viewer"),
        (json!({"group": "family"}), "editor"),
    ] {
        let mut body = to.clone();
        body["path"] = json!("/Family");
        body["role"] = json!(role);
        let r = w.json("alice", "POST", "/api/v1/shares", body);
        assert_eq!(r.status, 201, "{}", r.text());
    }
    // Erin saw the share while a member, then left the group.
    assert_eq!(w.call("erin", "PROPFIND", "/dav/Family/", &[("Depth", "0")], b"").status, 207);
    w.env.ctl_ok(&["group", "remove-member", "family", "erin"]);
    (w, d)
}

#[test]
fn every_front_end_role_and_operation_gets_its_answer() {
    let (w, _d) = world();
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut fresh = 0;
    for (fe, op, wants) in TABLE {
        for ((role, who), want) in ROLES.iter().zip(wants) {
            let p = format!("{fe}-{role}");
            cases += 1;
            match want {
                S(status) => {
                    let r = w.run(fe, op, who, "Family", &p);
                    if r.status != *status {
                        failures.push(format!(
                            "{fe} {op} as {role}: {} (want {status}) {}",
                            r.status,
                            r.text()
                        ));
                    }
                }
                Absent => {
                    fresh += 1;
                    let nowhere = format!("Nowhere{fresh}");
                    let r = w.run(fe, op, who, "Family", &p);
                    let never = w.run(fe, op, who, &nowhere, &p);
                    // Error bodies must match word for word; a success (a REST upload makes
                    // the missing folders: the user's own) differs only in ids and etags.
                    let (a, b) = (r.text(), never.text().replace(&nowhere, "Family"));
                    if r.status != never.status || (r.status >= 400 && a != b) {
                        failures.push(format!(
                            "{fe} {op} as {role}: {} {a:?}, but for a name that never existed {} {b:?}",
                            r.status, never.status
                        ));
                    }
                    // Whatever the user made in their own tree goes, so that the next case
                    // again asks about a name they do not have.
                    for base in ["Family", nowhere.as_str()] {
                        w.call(who, "DELETE", &format!("/dav/{base}"), &[], b"");
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {cases} cases wrong:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(cases, TABLE.len() * ROLES.len());
    tests::record_figure(&format!(
        "sharing: {cases} cases (front end × role × operation) with their expected answers"
    ));

    // What the editors wrote is the owner's: in her tree, in her trash, in her audit trail
    // under the name of who did it; strangers left nothing in it.
    let names: Vec<String> = {
        let r = w.call("alice", "GET", "/api/v1/files?path=/Family&limit=1000", &[], b"");
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        v["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect()
    };
    for want in [
        "dav-editor-new.txt",
        "dav-member-dir2",
        "rest-editor-new.txt",
        "rest-member-made",
        "dav-editor-in.txt",
    ] {
        assert!(names.contains(&want.to_owned()), "{want} not in alice's /Family: {names:?}");
    }
    // Moved out by an editor: gone from the share, whole in the editor's own files.
    assert!(!names.contains(&"dav-editor-mv.txt".to_owned()), "{names:?}");
    assert_eq!(w.call("bob", "GET", "/dav/dav-editor-out.txt", &[], b"").text(), "x");
    assert_eq!(w.call("dave", "GET", "/api/v1/content?path=/rest-member-out.txt", &[], b"").text(), "x");
    // Moved in: the editor's own file is alice's now, and counts for her.
    assert_eq!(w.call("bob", "GET", "/dav/dav-editor-own.txt", &[], b"").status, 404);
    assert_eq!(w.call("alice", "GET", "/dav/Family/dav-editor-in.txt", &[], b"").text(), "mine");
    // A viewer copies out: the copy is theirs.
    assert_eq!(w.call("carol", "GET", "/dav/dav-viewer-copied-out.txt", &[], b"").text(), "v2");
    for (role, _) in ROLES.iter().filter(|(r, _)| matches!(*r, "viewer" | "former" | "stranger")) {
        assert!(
            !names
                .iter()
                .any(|n| n.contains(&format!("-{role}-new")) || n.contains(&format!("-{role}-made"))),
            "{role} wrote into alice's folder: {names:?}"
        );
    }
    let trash = w.call("alice", "GET", "/api/v1/trash", &[], b"").text();
    assert!(trash.contains("dav-editor-del.txt") && trash.contains("rest-member-del.txt"), "{trash}");
    let audit = w.env.ctl_json(&["audit", "--limit", "1000"]);
    let by = |path: &str| -> Vec<String> {
        audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["path"].as_str().is_some_and(|p| p.trim_start_matches('/') == path))
            .map(|r| r["actor"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(by("Family/dav-editor-new.txt"), ["bob"], "{audit:#}");
    assert_eq!(by("Family/rest-member-new.txt"), ["dave"], "{audit:#}");
}

#[test]
fn revoking_and_leaving_take_effect_on_the_next_request() {
    let (w, _d) = world();
    let shares = w.call("alice", "GET", "/api/v1/shares", &[], b"");
    let shares: Value = serde_json::from_slice(&shares.body).unwrap();
    let bob_share =
        shares.as_array().unwrap().iter().find(|s| s["user"] == "bob").unwrap()["id"].as_i64().unwrap();
    assert_eq!(w.call("bob", "GET", "/dav/Family/dav-editor.txt", &[], b"").status, 200);
    assert_eq!(w.call("alice", "DELETE", &format!("/api/v1/shares/{bob_share}"), &[], b"").status, 204);
    assert_eq!(w.call("bob", "GET", "/dav/Family/dav-editor.txt", &[], b"").status, 404);
    assert_eq!(w.call("bob", "PUT", "/dav/Family/late.txt", &[], b"x").status, 409);
    // Someone else's share id: as if it did not exist.
    let carol_share =
        shares.as_array().unwrap().iter().find(|s| s["user"] == "carol").unwrap()["id"].as_i64().unwrap();
    let r = w.call("bob", "DELETE", &format!("/api/v1/shares/{carol_share}"), &[], b"");
    assert_eq!(r.status, 404, "{}", r.text());
    // Dave leaves the group (through cairnctl, another process): refused at once.
    assert_eq!(w.call("dave", "GET", "/dav/Family/dav-member.txt", &[], b"").status, 200);
    w.env.ctl_ok(&["group", "remove-member", "family", "dave"]);
    let t0 = std::time::Instant::now();
    loop {
        let s = w.call("dave", "GET", "/dav/Family/dav-member.txt", &[], b"").status;
        if s == 404 {
            break;
        }
        assert!(t0.elapsed() < std::time::Duration::from_secs(1), "dave still reads the share ({s})");
    }
    // The owner moving the folder to her trash suspends the share; restoring it brings it back.
    let r = w.call("alice", "DELETE", "/api/v1/files?path=/Family", &[], b"");
    let trash_id = serde_json::from_slice::<Value>(&r.body).unwrap()["trash_id"].as_i64().unwrap();
    assert_eq!(w.call("carol", "GET", "/dav/Family/dav-viewer.txt", &[], b"").status, 404);
    let r = w.json("alice", "POST", &format!("/api/v1/trash/{trash_id}/restore"), json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(w.call("carol", "GET", "/dav/Family/dav-viewer.txt", &[], b"").text(), "v2");
}

#[test]
fn recipients_place_hide_and_follow_their_shares() {
    let (w, _d) = world();
    // Frank has a folder of his own named Family: the share comes in beside it, named for its owner.
    let env = &w.env;
    env.add_user("frank", None);
    assert_eq!(w.call("frank", "MKCOL", "/dav/Family", &[], b"").status, 201);
    let r = w.json(
        "alice",
        "POST",
        "/api/v1/shares",
        json!({"path": "/Family", "user": "frank", "role": "viewer"}),
    );
    assert_eq!(r.status, 201);
    let incoming: Value =
        serde_json::from_slice(&w.call("frank", "GET", "/api/v1/shares/incoming", &[], b"").body).unwrap();
    assert_eq!(incoming[0]["path"], "/Family (alice)", "{incoming:#}");
    assert_eq!(w.call("frank", "GET", "/dav/Family%20(alice)/dav-viewer.txt", &[], b"").text(), "v2");
    // Nextcloud clients read what they may do from oc:permissions.
    let perms = |who: &str, path: &str| -> String {
        let body = br#"<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop><oc:permissions/></d:prop></d:propfind>"#;
        let r = w.call(who, "PROPFIND", path, &[("Depth", "0")], body);
        let t = r.text();
        let start =
            t.find("<oc:permissions>").unwrap_or_else(|| panic!("no permissions for {path}: {t}")) + 16;
        t[start..start + t[start..].find('<').unwrap()].to_owned()
    };
    assert_eq!(perms("frank", "/dav/Family%20(alice)/"), "SGDNV");
    assert_eq!(perms("frank", "/dav/Family%20(alice)/dav-viewer.txt"), "SG");
    assert_eq!(perms("frank", "/dav/Family/"), "RGDNVCK");
    assert_eq!(perms("bob", "/dav/Family/"), "SGDNVCK");
    assert_eq!(perms("bob", "/dav/Family/dav-editor.txt"), "SGDNVW");
    assert_eq!(perms("alice", "/dav/Family/dav-editor.txt"), "RGDNVW");
    let root = w.call("frank", "PROPFIND", "/dav/", &[("Depth", "1")], b"").text();
    assert!(
        root.contains("<D:href>/dav/Family/</D:href>") && root.contains("/dav/Family%20%28alice%29/"),
        "{root}"
    );

    // Renaming the mount point moves only frank's view; a change by the owner shows in the
    // etag of frank's root (clients that compare etags descend into the share).
    let r = w.call(
        "frank",
        "MOVE",
        "/dav/Family%20(alice)",
        &[("Destination", &format!("http://127.0.0.1:{}/dav/Family/From%20Alice", w.port))],
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(w.call("frank", "GET", "/dav/Family/From%20Alice/dav-viewer.txt", &[], b"").text(), "v2");
    let before = w.call("frank", "PROPFIND", "/dav/", &[("Depth", "0")], b"").text();
    assert_eq!(w.call("alice", "PUT", "/dav/Family/news.txt", &[], b"hello").status, 201);
    let after = w.call("frank", "PROPFIND", "/dav/", &[("Depth", "0")], b"").text();
    assert_ne!(before, after, "frank's root etag did not change with the share");
    assert_eq!(w.call("frank", "GET", "/dav/Family/From%20Alice/news.txt", &[], b"").text(), "hello");
    // Alice's tree is unchanged by frank's moves.
    assert_eq!(w.call("alice", "GET", "/dav/Family/news.txt", &[], b"").text(), "hello");

    // Hiding: the share leaves frank's tree, alice's files stay, the listing says where it was.
    let r = w.call("frank", "DELETE", "/dav/Family/From%20Alice", &[], b"");
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(w.call("frank", "GET", "/dav/Family/From%20Alice/news.txt", &[], b"").status, 404);
    assert_eq!(w.call("alice", "GET", "/dav/Family/news.txt", &[], b"").text(), "hello");
    let incoming: Value =
        serde_json::from_slice(&w.call("frank", "GET", "/api/v1/shares/incoming", &[], b"").body).unwrap();
    assert_eq!(incoming[0]["path"], Value::Null, "{incoming:#}");
}

/// A share that goes and comes back is placed afresh: it never hides a folder of the
/// recipient's own that took its old name meanwhile.
#[test]
fn a_share_given_again_never_hides_the_recipients_own_folder() {
    let (w, _d) = world();
    let shares: Value =
        serde_json::from_slice(&w.call("alice", "GET", "/api/v1/shares", &[], b"").body).unwrap();
    let carols =
        shares.as_array().unwrap().iter().find(|s| s["user"] == "carol").unwrap()["id"].as_i64().unwrap();
    assert_eq!(w.call("carol", "GET", "/dav/Family/dav-viewer.txt", &[], b"").status, 200);
    assert_eq!(w.call("alice", "DELETE", &format!("/api/v1/shares/{carols}"), &[], b"").status, 204);
    // Carol makes a folder of her own with that name, then alice shares again.
    assert_eq!(w.call("carol", "MKCOL", "/dav/Family", &[], b"").status, 201);
    assert_eq!(w.call("carol", "PUT", "/dav/Family/mine.txt", &[], b"carol's own").status, 201);
    tests::share_with(w.port, "alice", "/Family", "carol", "viewer");
    assert_eq!(w.call("carol", "GET", "/dav/Family/mine.txt", &[], b"").text(), "carol's own");
    assert_eq!(w.call("carol", "GET", "/dav/Family%20(alice)/dav-viewer.txt", &[], b"").text(), "v2");
}

#[test]
fn an_editor_filling_a_share_hits_the_owners_quota() {
    let env = Env::new();
    env.add_user("alice", Some("64KiB"));
    env.add_user("bob", None);
    let d = env.start_daemon();
    let w = World { port: env.port, env, versions: Default::default() };
    assert_eq!(w.call("alice", "MKCOL", "/dav/Family", &[], b"").status, 201);
    let r = w.json(
        "alice",
        "POST",
        "/api/v1/shares",
        json!({"path": "/Family", "user": "bob", "role": "editor"}),
    );
    assert_eq!(r.status, 201);
    let big = vec![7u8; 100 * 1024];
    let r = w.call("bob", "PUT", "/dav/Family/big.bin", &[], &big);
    assert_eq!(r.status, 507, "{}", r.text());
    // The REST API's documented answer for a quota is 413.
    let r = w.call("bob", "PUT", "/api/v1/content?path=/Family/big.bin", &[], &big);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("alice"), "the error names whose quota: {}", r.text());
    assert_eq!(w.call("alice", "GET", "/dav/Family/big.bin", &[], b"").status, 404, "nothing partial");
    // Within the quota it lands, counted as alice's.
    assert_eq!(w.call("bob", "PUT", "/dav/Family/small.bin", &[], &big[..40 * 1024]).status, 201);
    let q: Value = serde_json::from_slice(&w.call("alice", "GET", "/api/v1/quota", &[], b"").body).unwrap();
    assert!(q["used"].as_u64().unwrap() >= 40 * 1024, "{q:#}");
    let q: Value = serde_json::from_slice(&w.call("bob", "GET", "/api/v1/quota", &[], b"").body).unwrap();
    assert_eq!(q["used"].as_u64().unwrap(), 0, "{q:#}");
    drop(d);
}

/// A WebDAV lock on a shared file is one lock for everyone: taken by the owner it holds off an
/// editor, taken by an editor it holds off the owner, shown to members, and a viewer cannot take
/// one.
#[test]
fn locks_in_a_share_hold_for_the_owner_and_every_member() {
    const LOCKINFO: &[u8] = br#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>tester</D:owner></D:lockinfo>"#;
    let (w, _d) = world();
    let lock = |who: &str, path: &str| {
        let r = w.call(who, "LOCK", path, &[("Depth", "0"), ("Timeout", "Second-600")], LOCKINFO);
        (r.status, r.header("lock-token").unwrap_or("").to_owned())
    };
    let (status, alices) = lock("alice", "/dav/Family/dav-editor.txt");
    assert_eq!(status, 200);
    assert_eq!(w.call("bob", "PUT", "/dav/Family/dav-editor.txt", &[], b"bob's").status, 423);
    assert_eq!(w.call("bob", "DELETE", "/dav/Family/dav-editor.txt", &[], b"").status, 423);
    let body = br#"<D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>"#;
    let seen = w.call("bob", "PROPFIND", "/dav/Family/dav-editor.txt", &[("Depth", "0")], body).text();
    assert!(seen.contains(alices.trim_matches(|c| c == '<' || c == '>')), "bob sees alice's lock: {seen}");
    assert!(seen.contains("/dav/Family/dav-editor.txt"), "at the path bob knows: {seen}");
    // With the token (alice's client), the owner writes.
    let r =
        w.call("alice", "PUT", "/dav/Family/dav-editor.txt", &[("If", &format!("({alices})"))], b"alice's");
    assert_eq!(r.status, 204, "{}", r.text());

    let (status, bobs) = lock("bob", "/dav/Family/dav-member.txt");
    assert_eq!(status, 200);
    assert_eq!(w.call("alice", "PUT", "/dav/Family/dav-member.txt", &[], b"alice's").status, 423);
    assert_eq!(w.call("dave", "PUT", "/dav/Family/dav-member.txt", &[], b"dave's").status, 423);
    assert_eq!(lock("carol", "/dav/Family/dav-viewer.txt").0, 403);
    let r = w.call("bob", "UNLOCK", "/dav/Family/dav-member.txt", &[("Lock-Token", &bobs)], b"");
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(w.call("alice", "PUT", "/dav/Family/dav-member.txt", &[], b"alice's").status, 204);
}

/// Uploads that arrive in pieces land in the share too: the Nextcloud apps' chunked uploads
/// (MOVE of `.file`) and tus (what `cairn` and the web UI use for large files). A viewer's is
/// refused before a byte is kept; the owner's copy is the uploaded bytes.
#[test]
fn chunked_and_resumable_uploads_land_in_the_owners_tree() {
    use base64::Engine;
    let (w, _d) = world();
    let data = tests::pattern(3 << 20, 7);
    // Nextcloud chunking v2, by hand.
    for (who, want) in [("bob", 201), ("carol", 403)] {
        let base = format!("/remote.php/dav/uploads/{who}/up-{who}");
        assert_eq!(w.call(who, "MKCOL", &base, &[], b"").status, 201);
        assert_eq!(w.call(who, "PUT", &format!("{base}/00001"), &[], &data[..1 << 20]).status, 201);
        assert_eq!(w.call(who, "PUT", &format!("{base}/00002"), &[], &data[1 << 20..]).status, 201);
        let dest = format!("http://127.0.0.1:{}/remote.php/dav/files/{who}/Family/chunked-{who}.bin", w.port);
        let r = w.call(who, "MOVE", &format!("{base}/.file"), &[("Destination", &dest)], b"");
        assert_eq!(r.status, want, "{who}: {}", r.text());
    }
    assert_eq!(w.call("alice", "GET", "/dav/Family/chunked-bob.bin", &[], b"").body, data);
    assert_eq!(w.call("alice", "GET", "/dav/Family/chunked-carol.bin", &[], b"").status, 404);
    // tus.
    for (who, want) in [("dave", 204), ("carol", 403)] {
        let path = format!("/Family/tus-{who}.bin");
        let meta = format!("path {}", base64::engine::general_purpose::STANDARD.encode(&path));
        let len = data.len().to_string();
        let r = w.call(
            who,
            "POST",
            "/api/v1/uploads/",
            &[("Tus-Resumable", "1.0.0"), ("Upload-Length", &len), ("Upload-Metadata", &meta)],
            b"",
        );
        if want == 403 {
            assert_eq!(r.status, 403, "{who}: {}", r.text());
            continue;
        }
        assert_eq!(r.status, 201, "{}", r.text());
        let loc = r.header("location").unwrap().to_owned();
        let r = w.call(
            who,
            "PATCH",
            &loc,
            &[
                ("Tus-Resumable", "1.0.0"),
                ("Upload-Offset", "0"),
                ("Content-Type", "application/offset+octet-stream"),
            ],
            &data,
        );
        assert_eq!(r.status, want, "{}", r.text());
    }
    assert_eq!(w.call("alice", "GET", "/dav/Family/tus-dave.bin", &[], b"").body, data);
    // Counted as alice's, not the uploaders'.
    let used = |who: &str| -> u64 {
        let q: Value = serde_json::from_slice(&w.call(who, "GET", "/api/v1/quota", &[], b"").body).unwrap();
        q["used"].as_u64().unwrap()
    };
    assert!(used("alice") >= 2 * data.len() as u64);
    assert!(used("dave") < data.len() as u64 && used("bob") < data.len() as u64);
}

/// Ids handed to one account are nothing to another: a resumable upload's id, a chunked
/// upload's, a lock token and a share id replayed by a stranger — and by a member — are refused
/// as if they did not exist.
#[test]
fn ids_replayed_by_someone_else_are_refused() {
    use base64::Engine;
    let (w, _d) = world();
    // bob's resumable upload into the share.
    let meta = format!("path {}", base64::engine::general_purpose::STANDARD.encode("/Family/tus.bin"));
    let r = w.call(
        "bob",
        "POST",
        "/api/v1/uploads/",
        &[("Tus-Resumable", "1.0.0"), ("Upload-Length", "10"), ("Upload-Metadata", &meta)],
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let loc = r.header("location").unwrap().to_owned();
    let patch = |who: &str| {
        w.call(
            who,
            "PATCH",
            &loc,
            &[
                ("Tus-Resumable", "1.0.0"),
                ("Upload-Offset", "0"),
                ("Content-Type", "application/offset+octet-stream"),
            ],
            b"0123456789",
        )
        .status
    };
    let head = |who: &str| w.call(who, "HEAD", &loc, &[("Tus-Resumable", "1.0.0")], b"").status;
    for who in ["mallory", "dave", "alice"] {
        assert_eq!((head(who), patch(who)), (404, 404), "{who} used bob's upload");
    }
    assert_eq!(patch("bob"), 204);
    // bob's chunked upload.
    assert_eq!(w.call("bob", "MKCOL", "/remote.php/dav/uploads/bob/mine", &[], b"").status, 201);
    for who in ["mallory", "alice"] {
        let r = w.call(who, "PUT", "/remote.php/dav/uploads/bob/mine/00001", &[], b"x");
        assert!(matches!(r.status, 403 | 404), "{who} wrote into bob's chunked upload: {}", r.status);
        let r = w.call(who, "PUT", &format!("/remote.php/dav/uploads/{who}/mine/00001"), &[], b"x");
        assert_eq!(r.status, 404, "{who}'s own upload of that name does not exist");
    }
    // A lock token alice holds on a shared file.
    const LOCKINFO: &[u8] = br#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#;
    let r = w.call("alice", "LOCK", "/dav/Family/dav-owner.txt", &[("Depth", "0")], LOCKINFO);
    assert_eq!(r.status, 200);
    let token = r.header("lock-token").unwrap().to_owned();
    // Refused exactly as for a path that never existed.
    let r = w.call("mallory", "UNLOCK", "/dav/Family/dav-owner.txt", &[("Lock-Token", &token)], b"");
    let never = w.call("mallory", "UNLOCK", "/dav/Nowhere/dav-owner.txt", &[("Lock-Token", &token)], b"");
    assert_eq!((r.status, r.text()), (never.status, never.text()));
    assert_eq!(r.status, 409, "{}", r.text());
    let r = w.call("mallory", "PUT", "/dav/Family/dav-owner.txt", &[("If", &format!("({token})"))], b"x");
    assert_ne!(r.status / 100, 2, "a stranger wrote with alice's token");
    assert_eq!(w.call("alice", "GET", "/dav/Family/dav-owner.txt", &[], b"").text(), "v2");
}

/// Public links: anyone with the token lists and downloads what it reaches and nothing else; a
/// password is asked and checked (wrong ones throttled, then refused, and audited); a download
/// limit and an expiry end the link; revoking it answers 404 at once; a wrong token learns
/// nothing.
#[test]
fn public_links_reach_what_they_link_for_as_long_as_allowed() {
    let (w, _d) = world();
    let anon = |target: &str, headers: &[(&str, &str)]| http(w.port, "GET", target, headers, b"");
    let make = |body: Value| {
        let r = w.json("alice", "POST", "/api/v1/links", body);
        assert_eq!(r.status, 201, "{}", r.text());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        (v["token"].as_str().unwrap().to_owned(), v["link"]["id"].as_i64().unwrap())
    };
    // A folder, open to anyone with the token.
    let (token, id) = make(json!({"path": "/Family"}));
    assert_eq!(token.len(), 32, "128 bits");
    let r = anon(&format!("/api/v1/public/{token}"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["name"], "Family");
    let names: Vec<&str> =
        v["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"dav-owner.txt") && names.contains(&"dav-owner-dir"), "{names:?}");
    assert!(
        v["entries"].as_array().unwrap().iter().all(|e| e["path"].as_str().unwrap().starts_with('/')),
        "{v:#}"
    );
    let r = anon(&format!("/api/v1/public/{token}/content?path=/dav-owner.txt"), &[]);
    assert_eq!((r.status, r.text()), (200, "v2".to_owned()));
    assert!(r.header("content-disposition").is_some_and(|d| d.starts_with("attachment")));
    // Nothing outside the linked folder, nothing with another token.
    for bad in ["/../dav-owner-own.txt", "/%2e%2e/x", "/nope.txt"] {
        let r = anon(&format!("/api/v1/public/{token}/content?path={bad}"), &[]);
        assert!(matches!(r.status, 400 | 404), "{bad}: {}", r.status);
    }
    let never = anon(&format!("/api/v1/public/{}", "0".repeat(32)), &[]);
    assert_eq!(never.status, 404);
    for t in ["short", &token[..31], &format!("{token}0")] {
        let r = anon(&format!("/api/v1/public/{t}"), &[]);
        assert_eq!((r.status, r.text()), (never.status, never.text()), "{t}");
    }
    // Revoked: 404 at once, like a token that never existed; someone else cannot revoke.
    assert_eq!(w.call("bob", "DELETE", &format!("/api/v1/links/{id}"), &[], b"").status, 404);
    assert_eq!(w.call("alice", "DELETE", &format!("/api/v1/links/{id}"), &[], b"").status, 204);
    let r = anon(&format!("/api/v1/public/{token}"), &[]);
    assert_eq!((r.status, r.text()), (never.status, never.text()));

    // A file behind a password, for two downloads.
    let (token, id) =
        make(json!({"path": "/Family/dav-viewer.txt", "password": "grandma's secret", "max_downloads": 2}));
    let list = format!("/api/v1/public/{token}");
    let get = format!("/api/v1/public/{token}/content");
    assert_eq!(anon(&list, &[]).status, 401);
    assert_eq!(anon(&list, &[("X-Link-Password", "wrong password")]).status, 401);
    let right = [("X-Link-Password", "grandma's secret")];
    let v: Value = serde_json::from_slice(&anon(&list, &right).body).unwrap();
    assert_eq!(v["name"], "dav-viewer.txt");
    assert_eq!(v["folder"]["path"], "/dav-viewer.txt");
    assert_eq!(anon(&get, &right).text(), "v2");
    assert_eq!(anon(&get, &right).text(), "v2");
    assert_eq!(anon(&get, &right).status, 404, "the third download is past the limit");
    assert_eq!(anon(&list, &right).status, 404, "a used-up link is gone");
    let links: Value =
        serde_json::from_slice(&w.call("alice", "GET", "/api/v1/links", &[], b"").body).unwrap();
    let mine = links.as_array().unwrap().iter().find(|l| l["id"] == id).unwrap();
    assert_eq!(mine["downloads_left"], 0, "{mine:#}");
    let audit = w.env.ctl_json(&["audit", "--limit", "1000"]);
    let by_link = |action: &str| {
        audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == action && r["actor"] == format!("link:{id}").as_str())
            .count()
    };
    assert_eq!(by_link("link.download"), 2, "{audit:#}");
    assert_eq!(by_link("link.password_wrong"), 1, "{audit:#}");

    // Expired: 404. An expiry in the past is refused when made.
    let now = unix_now();
    let r = w.json("alice", "POST", "/api/v1/links", json!({"path": "/Family", "expires_at": now - 10}));
    assert_eq!(r.status, 400, "{}", r.text());
    let (token, _) = make(json!({"path": "/Family", "expires_at": now + 2}));
    assert_eq!(anon(&format!("/api/v1/public/{token}"), &[]).status, 200);
    std::thread::sleep(std::time::Duration::from_millis(2600));
    assert_eq!(anon(&format!("/api/v1/public/{token}"), &[]).status, 404, "expired");

    // Guessing a password: throttled, then refused even with the right one.
    let (token, _) = make(json!({"path": "/Family", "password": "correct horse"}));
    let list = format!("/api/v1/public/{token}");
    let t0 = std::time::Instant::now();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..40)
            .map(|i| {
                let list = list.clone();
                let port = w.port;
                s.spawn(move || {
                    http(port, "GET", &list, &[("X-Link-Password", &format!("guess {i}"))], b"").status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let refused = anon(&list, &[("X-Link-Password", "correct horse")]).status;
    assert!(statuses.iter().all(|s| matches!(s, 401 | 429)), "{statuses:?}");
    assert_eq!(refused, 429, "locked out after {statuses:?}");
    tests::record_figure(&format!(
        "public link: 40 wrong passwords sent at once answered in {} ms; {} refused as throttled; the right one then 429",
        t0.elapsed().as_millis(),
        statuses.iter().filter(|s| **s == 429).count()
    ));
}

/// The wall clock in unix seconds (the daemon under test reads the system clock).
#[allow(clippy::disallowed_methods)]
fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The change feed of a recipient follows their shares: the share's arrival as a `create` of its
/// mount point, then every change inside it by anyone at the paths they see (a file moved out
/// of the shared folder is a `delete` for them), each change's cursor a place to resume from,
/// a long poll woken by the owner's change, and the share's revocation as a `delete`.
#[test]
fn the_change_feed_follows_shares_as_their_recipients_see_them() {
    let env = Env::new();
    for who in ["alice", "bob"] {
        env.add_user(who, None);
    }
    let _d = env.start_daemon();
    let call = |who: &str, method: &str, target: &str, body: &[u8]| {
        tests::call_as(env.port, who, method, target, body)
    };
    let feed = |cursor: &str, wait: u32| -> Value {
        let r = call("bob", "GET", &format!("/api/v1/changes?cursor={cursor}&wait={wait}"), b"");
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    };
    let seen = |page: &Value| -> Vec<(String, String)> {
        page["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["kind"].as_str().unwrap().to_owned(), c["path"].as_str().unwrap().to_owned()))
            .collect()
    };
    for dir in ["/dav/Family", "/dav/Private"] {
        assert_eq!(call("alice", "MKCOL", dir, b"").status, 201);
    }
    let c0 = feed("now", 0)["cursor"].as_str().unwrap().to_owned();
    let share = tests::share_with(env.port, "alice", "/Family", "bob", "editor");
    let p0 = feed(&c0, 0);
    assert_eq!(seen(&p0), [("create".to_owned(), "/Family".to_owned())], "{p0:#}");
    let c1 = p0["cursor"].as_str().unwrap().to_owned();

    assert_eq!(call("alice", "PUT", "/dav/Family/a.txt", b"from alice").status, 201);
    assert_eq!(call("bob", "PUT", "/dav/Family/b.txt", b"from bob").status, 201);
    assert_eq!(call("alice", "PUT", "/dav/Private/not-shared.txt", b"x").status, 201);
    let dest = format!("http://127.0.0.1:{}/dav/Private/a.txt", env.port);
    let r = http(
        env.port,
        "MOVE",
        "/dav/Family/a.txt",
        &[("Authorization", &basic("alice")), ("Destination", &dest)],
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let p1 = feed(&c1, 0);
    let want: Vec<(String, String)> =
        [("create", "/Family/a.txt"), ("create", "/Family/b.txt"), ("delete", "/Family/a.txt")]
            .iter()
            .map(|(k, p)| (k.to_string(), p.to_string()))
            .collect();
    assert_eq!(seen(&p1), want, "{p1:#}");
    // Each change's cursor resumes right after it.
    let after_first = p1["changes"][0]["cursor"].as_str().unwrap().to_owned();
    assert_eq!(seen(&feed(&after_first, 0)), want[1..], "resumed after the first");
    let c2 = p1["cursor"].as_str().unwrap().to_owned();

    // A long poll is woken by the owner's change in the share.
    let port = env.port;
    let t0 = std::time::Instant::now();
    let waiter = std::thread::spawn(move || {
        let r = tests::call_as(port, "bob", "GET", &format!("/api/v1/changes?cursor={c2}&wait=20"), b"");
        (t0.elapsed(), serde_json::from_slice::<Value>(&r.body).unwrap())
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(call("alice", "PUT", "/dav/Family/c.txt", b"late").status, 201);
    let (waited, p2) = waiter.join().unwrap();
    assert_eq!(seen(&p2), [("create".to_owned(), "/Family/c.txt".to_owned())], "{p2:#}");
    assert!(waited < std::time::Duration::from_secs(10), "the long poll was not woken: {waited:?}");
    let c3 = p2["cursor"].as_str().unwrap().to_owned();

    // Revoked: the mount point goes from bob's feed.
    assert_eq!(call("alice", "DELETE", &format!("/api/v1/shares/{share}"), b"").status, 204);
    let p3 = feed(&c3, 0);
    assert_eq!(seen(&p3), [("delete".to_owned(), "/Family".to_owned())], "{p3:#}");
    tests::record_figure(&format!(
        "change feed: an owner's change in a share wakes a recipient's long poll {} ms after the wait began (300 ms of it before the change)",
        waited.as_millis()
    ));
}
