//! Parsers for everything a WebDAV request carries outside its body: the URL space, Depth,
//! Overwrite, Destination, Timeout, Lock-Token, Range and the If header (RFC 4918 §10). Pure
//! functions of strings, tested here; handlers never read raw headers.

use hyper::StatusCode;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use store::VPath;

use crate::error::HttpError;

/// Where a WebDAV URL points: which mount of the URL space, and the path inside the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DavUrl {
    /// The URL prefix the client used (`/dav`, `/remote.php/webdav`,
    /// `/remote.php/dav/files/USER`); replies use the same one.
    pub prefix: String,
    /// For `/remote.php/dav/files/USER/`: the user the URL names (must be the signed-in one).
    pub user: Option<String>,
    /// The path inside the user's tree.
    pub path: VPath,
}

fn bad(msg: impl Into<String>) -> HttpError {
    HttpError::new(StatusCode::BAD_REQUEST, msg)
}

/// Map a request path (still percent-encoded, no query) into the WebDAV URL space; `None` for
/// paths outside it. Each segment is decoded on its own, so `%2F` cannot add a separator, and
/// the decoded segments go through `store`'s path policy (`%2e%2e` is `..`, refused).
pub fn parse_dav_url(raw: &str) -> Result<Option<DavUrl>, HttpError> {
    const FILES: &str = "/remote.php/dav/files/";
    let (prefix, user, rest) = if let Some(rest) = strip_mount(raw, "/dav") {
        ("/dav".to_owned(), None, rest)
    } else if let Some(rest) = strip_mount(raw, "/remote.php/webdav") {
        ("/remote.php/webdav".to_owned(), None, rest)
    } else if let Some(after) = raw.strip_prefix(FILES) {
        let (user_enc, rest) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        let user = decode_segment(user_enc)?;
        if user.is_empty() {
            return Ok(None);
        }
        (format!("/remote.php/dav/files/{user_enc}"), Some(user), rest)
    } else {
        return Ok(None);
    };
    let mut path = VPath::root();
    let inner = rest.strip_prefix('/').unwrap_or(rest);
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    if !inner.is_empty() {
        for seg in inner.split('/') {
            let name = decode_segment(seg)?;
            path = path.join(&name).map_err(|e| bad(e.to_string()))?;
        }
    }
    Ok(Some(DavUrl { prefix, user, path }))
}

fn strip_mount<'a>(raw: &'a str, mount: &str) -> Option<&'a str> {
    let rest = raw.strip_prefix(mount)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

fn decode_segment(seg: &str) -> Result<String, HttpError> {
    percent_decode_str(seg).decode_utf8().map(|s| s.into_owned()).map_err(|_| bad("URL is not UTF-8"))
}

/// Characters left as they are in hrefs: unreserved plus a few sub-delims clients expect raw.
const HREF_KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The href of `path` under `prefix`, percent-encoded per segment; collections end with `/`.
pub fn href(prefix: &str, path: &VPath, is_dir: bool) -> String {
    let mut out = String::with_capacity(prefix.len() + path.as_str().len() + 8);
    out.push_str(prefix);
    for seg in path.as_str().split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.extend(utf8_percent_encode(seg, HREF_KEEP));
    }
    if is_dir || path.is_root() {
        out.push('/');
    }
    out
}

/// The `Destination` header: an absolute URI on this server (same host) or an absolute path.
pub fn parse_destination(raw: &str, host: Option<&str>) -> Result<DavUrl, HttpError> {
    let path = if let Some(rest) = raw.strip_prefix("http://").or_else(|| raw.strip_prefix("https://")) {
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if host.is_some_and(|h| !h.eq_ignore_ascii_case(authority)) {
            return Err(HttpError::new(StatusCode::BAD_GATEWAY, "Destination is on another server"));
        }
        path
    } else if raw.starts_with('/') {
        raw
    } else {
        return Err(bad("Destination must be an absolute URI or path"));
    };
    let path = path.split(['?', '#']).next().unwrap_or(path);
    parse_dav_url(path)?
        .ok_or_else(|| HttpError::new(StatusCode::BAD_GATEWAY, "Destination is outside WebDAV"))
}

/// `Depth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// `0`
    Zero,
    /// `1`
    One,
    /// `infinity`
    Infinity,
}

/// Parse `Depth` (absent: `default`).
pub fn parse_depth(raw: Option<&str>, default: Depth) -> Result<Depth, HttpError> {
    match raw.map(str::trim) {
        None => Ok(default),
        Some("0") => Ok(Depth::Zero),
        Some("1") => Ok(Depth::One),
        Some(s) if s.eq_ignore_ascii_case("infinity") => Ok(Depth::Infinity),
        Some(_) => Err(bad("invalid Depth header")),
    }
}

/// Parse `Overwrite` (absent: true).
pub fn parse_overwrite(raw: Option<&str>) -> Result<bool, HttpError> {
    match raw.map(str::trim) {
        None | Some("T") | Some("t") => Ok(true),
        Some("F") | Some("f") => Ok(false),
        Some(_) => Err(bad("invalid Overwrite header")),
    }
}

/// Longest lock we grant, and the default.
pub const MAX_LOCK_SECS: u64 = 7 * 24 * 3600;
/// The lock time when the client asks for none.
pub const DEFAULT_LOCK_SECS: u64 = 3600;

/// `Timeout: Second-600, Infinite` → seconds, capped.
pub fn parse_timeout(raw: Option<&str>) -> u64 {
    let Some(raw) = raw else { return DEFAULT_LOCK_SECS };
    for part in raw.split(',').map(str::trim) {
        if part.eq_ignore_ascii_case("infinite") {
            return MAX_LOCK_SECS;
        }
        if let Some(n) = part.strip_prefix("Second-").and_then(|n| n.parse::<u64>().ok()) {
            return n.clamp(1, MAX_LOCK_SECS);
        }
    }
    DEFAULT_LOCK_SECS
}

/// `Lock-Token: <urn:uuid:...>` → the token.
pub fn parse_lock_token(raw: Option<&str>) -> Result<String, HttpError> {
    let raw = raw.ok_or_else(|| bad("Lock-Token header missing"))?.trim();
    raw.strip_prefix('<')
        .and_then(|r| r.strip_suffix('>'))
        .map(str::to_owned)
        .ok_or_else(|| bad("Lock-Token must be a Coded-URL <...>"))
}

/// Most parts of a multi-range request we serve; more is refused (416).
pub const MAX_RANGES: usize = 32;

/// A `Range: bytes=...` header against a length: inclusive (start, end) pairs. `Ok(None)`: no
/// usable Range (serve the whole body). `Err`: 416.
pub fn parse_range(raw: Option<&str>, len: u64) -> Result<Option<Vec<(u64, u64)>>, HttpError> {
    let Some(raw) = raw else { return Ok(None) };
    let Some(spec) = raw.trim().strip_prefix("bytes=") else { return Ok(None) };
    let parts: Vec<&str> = spec.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
    if parts.len() > MAX_RANGES {
        return Err(HttpError::new(StatusCode::RANGE_NOT_SATISFIABLE, "too many ranges"));
    }
    let mut out = Vec::new();
    for p in parts {
        let (a, b) = p.split_once('-').ok_or_else(|| bad("malformed Range"))?;
        let range = match (a.trim(), b.trim()) {
            ("", "") => return Err(bad("malformed Range")),
            ("", suffix) => {
                let n: u64 = suffix.parse().map_err(|_| bad("malformed Range"))?;
                if n == 0 || len == 0 {
                    continue;
                }
                (len.saturating_sub(n), len - 1)
            }
            (start, end) => {
                let start: u64 = start.parse().map_err(|_| bad("malformed Range"))?;
                let end: u64 = if end.is_empty() {
                    u64::MAX
                } else {
                    end.parse().map_err(|_| bad("malformed Range"))?
                };
                if end < start {
                    return Err(bad("malformed Range"));
                }
                if start >= len {
                    continue;
                }
                (start, end.min(len - 1))
            }
        };
        out.push(range);
    }
    if out.is_empty() {
        return Err(HttpError::new(StatusCode::RANGE_NOT_SATISFIABLE, "no satisfiable range"));
    }
    Ok(Some(out))
}

/// One condition of an If-header list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `<state-token>` (a lock token, or something like `DAV:no-lock`).
    Token(String),
    /// `[entity-tag]`, as written (quotes included).
    ETag(String),
}

/// One parenthesized list, with the resource it is tagged to (`None`: the request URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfList {
    /// The Resource-Tag, an absolute URI or path.
    pub resource: Option<String>,
    /// (negated, condition), all of which must hold.
    pub conditions: Vec<(bool, Condition)>,
}

/// Parse an If header: `1*No-tag-list | 1*Tagged-list`.
pub fn parse_if(raw: &str) -> Result<Vec<IfList>, HttpError> {
    let err = || bad("malformed If header");
    let mut out = Vec::new();
    let mut tag: Option<String> = None;
    let mut tagged = None::<bool>;
    let mut rest = raw.trim_start();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('<') {
            let end = after.find('>').ok_or_else(err)?;
            if tagged == Some(false) {
                return Err(err());
            }
            tagged = Some(true);
            tag = Some(after[..end].to_owned());
            rest = after[end + 1..].trim_start();
        } else if let Some(after) = rest.strip_prefix('(') {
            if tagged.is_none() {
                tagged = Some(false);
            }
            if tagged == Some(true) && tag.is_none() {
                return Err(err());
            }
            let mut inner = after.trim_start();
            let mut conditions = Vec::new();
            loop {
                if let Some(after) = inner.strip_prefix(')') {
                    rest = after.trim_start();
                    break;
                }
                let mut negated = false;
                if inner.len() >= 3 && inner[..3].eq_ignore_ascii_case("not") {
                    negated = true;
                    inner = inner[3..].trim_start();
                }
                if let Some(after) = inner.strip_prefix('<') {
                    let end = after.find('>').ok_or_else(err)?;
                    conditions.push((negated, Condition::Token(after[..end].to_owned())));
                    inner = after[end + 1..].trim_start();
                } else if let Some(after) = inner.strip_prefix('[') {
                    let end = after.find(']').ok_or_else(err)?;
                    conditions.push((negated, Condition::ETag(after[..end].trim().to_owned())));
                    inner = after[end + 1..].trim_start();
                } else {
                    return Err(err());
                }
            }
            if conditions.is_empty() {
                return Err(err());
            }
            out.push(IfList { resource: tag.clone(), conditions });
        } else {
            return Err(err());
        }
    }
    if out.is_empty() {
        return Err(err());
    }
    Ok(out)
}

/// The value of an entity tag from a header: `W/"abc"` → `abc`.
pub fn etag_value(header_tag: &str) -> &str {
    let t = header_tag.trim();
    t.strip_prefix("W/").unwrap_or(t).trim_matches('"')
}

/// Compare an entity tag from a header with ours (weak comparison: `W/` ignored).
pub fn etag_matches(header_tag: &str, ours: &str) -> bool {
    etag_value(header_tag) == ours
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(raw: &str) -> String {
        match parse_dav_url(raw) {
            Ok(Some(u)) => format!("{} {:?} {}", u.prefix, u.user, u.path),
            Ok(None) => "outside".into(),
            Err(e) => format!("{} {}", e.status.as_u16(), e.message),
        }
    }

    #[test]
    fn url_space() {
        assert_eq!(url("/dav"), "/dav None /");
        assert_eq!(url("/dav/"), "/dav None /");
        assert_eq!(url("/dav/a%20b/c%23d.txt"), "/dav None /a b/c#d.txt");
        assert_eq!(url("/remote.php/webdav/x/"), "/remote.php/webdav None /x");
        assert_eq!(url("/remote.php/dav/files/alice/x"), "/remote.php/dav/files/alice Some(\"alice\") /x");
        assert_eq!(url("/davx"), "outside");
        assert_eq!(url("/dav/%2e%2e/etc"), "400 invalid path: parent segment");
        assert_eq!(url("/dav/a/%2E%2E/%2E%2E/b"), "400 invalid path: parent segment");
        assert_eq!(url("/dav/a%2Fb"), "400 invalid path: slash inside a name");
        assert_eq!(url("/dav/a%5Cb"), "400 invalid path: backslash");
        assert_eq!(url("/dav/a%00b"), "400 invalid path: NUL byte");
        assert_eq!(url("/dav/%ff"), "400 URL is not UTF-8");
        assert_eq!(url("/dav/a//b"), "400 invalid path: empty segment");
    }

    #[test]
    fn hrefs_round_trip() {
        for name in ["a b", "#%?", "émoji 🎉", "plain.txt", "[x]"] {
            let p = VPath::root().join(name).unwrap();
            let h = href("/dav", &p, false);
            assert!(h.is_ascii(), "{h}");
            assert_eq!(parse_dav_url(&h).unwrap().unwrap().path, p);
        }
        assert_eq!(href("/dav", &VPath::root(), true), "/dav/");
        assert_eq!(href("/dav", &VPath::parse("/d").unwrap(), true), "/dav/d/");
    }

    #[test]
    fn destinations() {
        let d = parse_destination("http://localhost:8080/dav/b%20c", Some("localhost:8080")).unwrap();
        assert_eq!(d.path.to_string(), "/b c");
        assert_eq!(parse_destination("/dav/x", None).unwrap().path.to_string(), "/x");
        assert_eq!(
            parse_destination("http://evil.example/dav/x", Some("localhost")).unwrap_err().status,
            502
        );
        assert_eq!(
            parse_destination("http://localhost/etc/passwd", Some("localhost")).unwrap_err().status,
            502
        );
        assert_eq!(parse_destination("x", None).unwrap_err().status, 400);
        assert_eq!(parse_destination("/dav/../../x", None).unwrap_err().status, 400);
    }

    #[test]
    fn simple_headers() {
        assert_eq!(parse_depth(None, Depth::Infinity).unwrap(), Depth::Infinity);
        assert_eq!(parse_depth(Some("1"), Depth::Zero).unwrap(), Depth::One);
        assert!(parse_depth(Some("2"), Depth::Zero).is_err());
        assert!(parse_overwrite(Some("F")).is_ok_and(|o| !o));
        assert!(parse_overwrite(Some("maybe")).is_err());
        assert_eq!(parse_timeout(Some("Second-600")), 600);
        assert_eq!(parse_timeout(Some("Infinite, Second-5")), MAX_LOCK_SECS);
        assert_eq!(parse_timeout(Some("Second-99999999999")), MAX_LOCK_SECS);
        assert_eq!(parse_timeout(None), DEFAULT_LOCK_SECS);
        assert_eq!(parse_lock_token(Some("<urn:uuid:1>")).unwrap(), "urn:uuid:1");
        assert!(parse_lock_token(Some("urn:uuid:1")).is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(Some("bytes=0-9"), 100).unwrap(), Some(vec![(0, 9)]));
        assert_eq!(parse_range(Some("bytes=90-"), 100).unwrap(), Some(vec![(90, 99)]));
        assert_eq!(parse_range(Some("bytes=-10"), 100).unwrap(), Some(vec![(90, 99)]));
        assert_eq!(parse_range(Some("bytes=0-0,5-9"), 100).unwrap(), Some(vec![(0, 0), (5, 9)]));
        assert_eq!(parse_range(Some("bytes=0-1000"), 100).unwrap(), Some(vec![(0, 99)]));
        assert_eq!(parse_range(Some("bytes=200-300"), 100).unwrap_err().status, 416);
        assert_eq!(parse_range(Some("items=0-1"), 100).unwrap(), None);
        let many = format!("bytes={}", (0..5000).map(|i| format!("{i}-{i}")).collect::<Vec<_>>().join(","));
        assert_eq!(parse_range(Some(&many), 100_000).unwrap_err().status, 416);
        assert_eq!(parse_range(Some("bytes=5-1"), 100).unwrap_err().status, 400);
    }

    #[test]
    fn if_headers() {
        let t = |s: &str| Condition::Token(s.to_owned());
        assert_eq!(
            parse_if("(<urn:uuid:a>)").unwrap(),
            vec![IfList { resource: None, conditions: vec![(false, t("urn:uuid:a"))] }]
        );
        let l = parse_if("(<urn:uuid:a> [\"e1\"]) (Not <DAV:no-lock> [W/\"e2\"])").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].conditions[0], (true, t("DAV:no-lock")));
        assert_eq!(l[1].conditions[1], (false, Condition::ETag("W/\"e2\"".into())));
        let l = parse_if("<http://h/dav/x> (<urn:uuid:a>) <http://h/dav/y> (NOT [\"e\"])").unwrap();
        assert_eq!(l[0].resource.as_deref(), Some("http://h/dav/x"));
        assert_eq!(l[1].resource.as_deref(), Some("http://h/dav/y"));
        assert!(l[1].conditions[0].0);
        for bad in ["", "()", "(<a>", "<x>", "(<a>) <x> (<b>)", "garbage", "(Not)"] {
            assert!(parse_if(bad).is_err(), "{bad:?}");
        }
        assert!(
            etag_matches("W/\"abc\"", "abc")
                && etag_matches("\"abc\"", "abc")
                && !etag_matches("\"x\"", "abc")
        );
    }
}
