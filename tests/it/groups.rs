//! Groups of accounts: made and changed by admins through `cairnctl` and the REST admin API,
//! refused to everyone else, audited, and left behind by a deleted account.

use serde_json::{Value, json};
use tests::{Env, basic, describe, http};

fn names(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_owned()).collect()
}

#[test]
fn cairnctl_manages_groups_and_says_what_is_wrong() {
    let env = Env::new();
    env.add_user("alice", None);
    env.add_user("bob", None);
    env.ctl_ok(&["group", "add", "family"]);
    let out = env.ctl(&["group", "add", "family"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("group family exists"), "{}", describe(&out));
    let out = env.ctl(&["group", "add", "Family Photos"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid group name"), "{}", describe(&out));

    let g = env.ctl_json(&["group", "add-member", "family", "bob", "alice"]);
    assert_eq!(names(&g["members"]), ["alice", "bob"]);
    // Twice is fine; an unknown account or group is named.
    env.ctl_ok(&["group", "add-member", "family", "alice"]);
    let out = env.ctl(&["group", "add-member", "family", "carol"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("carol"), "{}", describe(&out));
    let out = env.ctl(&["group", "add-member", "office", "alice"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("group office"), "{}", describe(&out));

    env.ctl_ok(&["group", "add", "office"]);
    let list = env.ctl_json(&["group", "list"]);
    assert_eq!(
        list,
        json!([{"name": "family", "members": ["alice", "bob"]}, {"name": "office", "members": []}])
    );
    let text = env.ctl_ok(&["group", "list"]);
    assert!(text.contains("family") && text.contains("alice, bob"), "{text}");

    let g = env.ctl_json(&["group", "remove-member", "family", "bob"]);
    assert_eq!(names(&g["members"]), ["alice"]);
    // A deleted account leaves its groups; the group stays.
    env.ctl_ok(&["user", "delete", "alice", "--yes"]);
    assert_eq!(env.ctl_json(&["group", "list"])[0], json!({"name": "family", "members": []}));
    let out = env.ctl(&["group", "delete", "family"]);
    assert_eq!(out.status.code(), Some(2), "deleting needs --yes: {}", describe(&out));
    env.ctl_ok(&["group", "delete", "family", "--yes"]);
    assert_eq!(env.ctl_json(&["group", "list"]), json!([{"name": "office", "members": []}]));

    let audit = env.ctl_json(&["audit", "--limit", "50"]);
    let details: Vec<String> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r["action"].as_str().unwrap_or(""), r["detail"].as_str().unwrap_or("")))
        .collect();
    for want in [
        "group.create group family",
        "group.add alice joins group family",
        "group.add bob joins group family",
        "group.remove bob leaves group family",
        "group.delete group family",
    ] {
        assert!(details.iter().any(|d| d.starts_with(want)), "no {want:?} in {details:#?}");
    }
}

#[test]
fn admins_manage_groups_over_rest_and_no_one_else_can() {
    let env = Env::new();
    env.add_admin("root");
    env.add_user("alice", None);
    env.add_user("bob", None);
    let _d = env.start_daemon();
    let call = |who: &str, method: &str, target: &str, body: Option<Value>| -> (u16, Value) {
        let data = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = basic(who);
        let mut headers = vec![("Authorization", auth.as_str())];
        if !data.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        let r = http(env.port, method, target, &headers, data.as_bytes());
        (r.status, serde_json::from_slice(&r.body).unwrap_or(Value::Null))
    };
    let (s, g) = call("root", "POST", "/api/v1/admin/groups", Some(json!({"name": "family"})));
    assert_eq!((s, g), (201, json!({"name": "family", "members": []})));
    assert_eq!(call("root", "POST", "/api/v1/admin/groups", Some(json!({"name": "family"}))).0, 409);
    let (s, e) = call("root", "POST", "/api/v1/admin/groups", Some(json!({"name": "No Spaces"})));
    assert_eq!(s, 400, "{e}");
    assert!(e.to_string().contains("invalid group name"), "{e}");
    let (s, g) = call("root", "PUT", "/api/v1/admin/groups/family/members/alice", None);
    assert_eq!((s, names(&g["members"])), (200, vec!["alice".to_owned()]));
    let (s, g) = call("root", "PUT", "/api/v1/admin/groups/family/members/bob", None);
    assert_eq!((s, names(&g["members"])), (200, vec!["alice".to_owned(), "bob".to_owned()]));
    assert_eq!(call("root", "PUT", "/api/v1/admin/groups/family/members/carol", None).0, 404);
    assert_eq!(call("root", "PUT", "/api/v1/admin/groups/office/members/alice", None).0, 404);
    let (s, list) = call("root", "GET", "/api/v1/admin/groups", None);
    assert_eq!((s, list), (200, json!([{"name": "family", "members": ["alice", "bob"]}])));

    // A member is not an admin: every admin call is refused, and nothing changed.
    for (method, target, body) in [
        ("GET", "/api/v1/admin/groups", None),
        ("POST", "/api/v1/admin/groups", Some(json!({"name": "mine"}))),
        ("PUT", "/api/v1/admin/groups/family/members/alice", None),
        ("DELETE", "/api/v1/admin/groups/family/members/bob", None),
        ("DELETE", "/api/v1/admin/groups/family", None),
    ] {
        assert_eq!(call("alice", method, target, body).0, 403, "{method} {target}");
    }
    assert_eq!(call("root", "GET", "/api/v1/admin/groups", None).1[0]["members"], json!(["alice", "bob"]));

    let (s, g) = call("root", "DELETE", "/api/v1/admin/groups/family/members/bob", None);
    assert_eq!((s, names(&g["members"])), (200, vec!["alice".to_owned()]));
    assert_eq!(call("root", "DELETE", "/api/v1/admin/groups/family", None).0, 204);
    assert_eq!(call("root", "DELETE", "/api/v1/admin/groups/family", None).0, 404);
    assert_eq!(call("root", "GET", "/api/v1/admin/groups", None).1, json!([]));
    // The OpenAPI document describes them.
    let spec = http(env.port, "GET", "/api/v1/openapi.json", &[], b"").text();
    assert!(spec.contains("/api/v1/admin/groups/{name}/members/{user}"), "not in the OpenAPI document");
}
