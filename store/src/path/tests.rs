//! Table tests of the path policy: every hostile name a front end can hand us.

use super::*;

/// Parse `raw` and render the outcome as one line: the normalized path, or the refusal.
fn check(raw: &str, expect: &str) {
    let got = match VPath::parse(raw) {
        Ok(p) => format!("ok {p}"),
        Err(e) => e.to_string(),
    };
    assert_eq!(got, expect, "input {raw:?}");
}

#[test]
fn accepted_paths() {
    check("", "ok /");
    check("/", "ok /");
    check("/a/b.txt", "ok /a/b.txt");
    check("a/b.txt", "ok /a/b.txt");
    check("/docs/", "ok /docs");
    check("/with space/#hash%25", "ok /with space/#hash%25");
    check("/emoji 🎉.txt", "ok /emoji 🎉.txt");
    check("/...", "ok /...");
    check("/.hidden", "ok /.hidden");
    check("/a..b", "ok /a..b");
}

#[test]
fn hostile_paths() {
    check("/a/../../b", "invalid path: parent segment");
    check("..", "invalid path: parent segment");
    check("/a/./b", "invalid path: '.' segment");
    check("a//b", "invalid path: empty segment");
    check("//", "invalid path: empty segment");
    check("/a/b//", "invalid path: empty segment");
    check("a\\..\\b", "invalid path: backslash");
    check("a\0b", "invalid path: NUL byte");
    check("a\nb", "invalid path: control character");
    check("a\u{7f}b", "invalid path: control character");
    check("a\u{85}b", "invalid path: control character");
    // Percent-decoding is the front end's job; what reaches us decoded is judged as text, so an
    // encoded `..` that was decoded is refused, and one left encoded is just an odd name.
    check("%2e%2e", "ok /%2e%2e");
    check(&"x".repeat(255), &format!("ok /{}", "x".repeat(255)));
    check(&"x".repeat(256), "invalid path: name longer than 255 bytes");
    check(&["abcdefgh"; 600].join("/"), "invalid path: longer than 2560 bytes");
}

#[test]
fn one_normalization() {
    let nfd = "cafe\u{301}";
    let nfc = "caf\u{e9}";
    assert_eq!(VPath::parse(nfd).unwrap(), VPath::parse(nfc).unwrap());
    assert_eq!(VPath::parse(nfd).unwrap().as_str(), nfc);
    // Normalization may change length: a 255-byte limit applies after it.
    let root = VPath::root();
    assert_eq!(root.join(nfd).unwrap().as_str(), nfc);
}

#[test]
fn navigation() {
    let p = VPath::parse("/a/b/c").unwrap();
    assert_eq!(p.name(), "c");
    assert_eq!(p.parent().unwrap().to_string(), "/a/b");
    let ancestors: Vec<String> = p.ancestors().iter().map(|a| a.to_string()).collect();
    assert_eq!(ancestors, ["/a/b", "/a", "/"]);
    assert!(p.starts_with(&VPath::parse("/a").unwrap()));
    assert!(!p.starts_with(&VPath::parse("/a/b/cd").unwrap()));
    assert!(!VPath::parse("/ab").unwrap().starts_with(&VPath::parse("/a").unwrap()));
    assert_eq!(
        p.rebase(&VPath::parse("/a").unwrap(), &VPath::parse("/x/y").unwrap()).unwrap().to_string(),
        "/x/y/b/c"
    );
    assert_eq!(p.rebase(&p, &VPath::root()).unwrap().to_string(), "/");
    assert_eq!(VPath::root().join("..").unwrap_err(), InvalidPath::ParentSegment);
    assert_eq!(VPath::root().join("a/b").unwrap_err(), InvalidPath::Slash);
}

#[test]
fn user_names() {
    for ok in ["alice", "bob2", "a.b-c_d", "0"] {
        assert!(UserName::parse(ok).is_ok(), "{ok}");
    }
    for bad in ["", "Alice", "-x", ".x", "a/b", "a b", "é", &"a".repeat(65)] {
        assert!(UserName::parse(bad).is_err(), "{bad}");
    }
}
