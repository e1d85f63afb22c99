//! PROPFIND's answer: the live properties Cairn serves, and the multistatus document rendered
//! from nodes, locks, dead properties and usage ([`render`], a pure function, tested against a
//! snapshot of its XML).

use std::collections::HashMap;

use hyper::StatusCode;
use store::{Lock, Node, VPath};

use super::headers::href;
use super::xml::{self, DAV, NC, OC, PropfindBody, QName, escape};
use crate::download;

/// The media type served for `path` (by its name).
pub(crate) fn content_type(path: &VPath) -> &'static str {
    download::content_type(path.name())
}

/// The live properties we serve, and whether `allprop` includes them.
pub(crate) const LIVE: &[(&str, bool)] = &[
    ("creationdate", true),
    ("displayname", true),
    ("getcontentlength", true),
    ("getcontenttype", true),
    ("getetag", true),
    ("getlastmodified", true),
    ("lockdiscovery", true),
    ("resourcetype", true),
    ("supportedlock", true),
    ("quota-available-bytes", false),
    ("quota-used-bytes", false),
];

/// What PROPFIND needs besides the nodes.
pub(crate) struct PropCtx {
    pub(crate) usage: Option<store::Usage>,
    pub(crate) locks: HashMap<VPath, Vec<Lock>>,
    pub(crate) dead: HashMap<store::FileId, Vec<store::DeadProp>>,
    pub(crate) prefix: String,
    /// The store's clock, for the time left on locks.
    pub(crate) now: store::Timestamp,
    /// What the `oc:`/`nc:` properties need.
    pub(crate) oc: OcCtx,
}

/// What the Nextcloud properties need besides the nodes.
#[derive(Default)]
pub(crate) struct OcCtx {
    /// The server's instance id, the suffix of `oc:id`.
    pub(crate) instance: String,
    /// The owner of the tree (`oc:owner-id`).
    pub(crate) owner: String,
    /// Known checksums by content (`oc:checksums`).
    pub(crate) checksums: HashMap<store::ContentHash, String>,
    /// Folders' recursive sizes (`oc:size`), where computed.
    pub(crate) tree_sizes: HashMap<store::FileId, u64>,
}

/// `oc:id`: the file id zero-padded to 8 digits, then the instance id (Nextcloud's format).
pub(crate) fn oc_id(id: store::FileId, instance: &str) -> String {
    format!("{:08}{instance}", id.0)
}

/// `oc:permissions` in Nextcloud's letters and order: `S` shared with you (or `R` yours, may
/// be shared further), readable, deletable, renamable, movable, and writable or creating files
/// and folders. A viewer may still hide (delete), rename and move the mount point itself:
/// only their own view changes.
pub(crate) fn oc_permissions(node: &Node) -> &'static str {
    use store::{Access, Role};
    match (&node.access, node.is_dir) {
        (Access::Own, true) => "RGDNVCK",
        (Access::Own, false) => "RGDNVW",
        (Access::Shared { role: Role::Editor, .. }, true) => "SGDNVCK",
        (Access::Shared { role: Role::Editor, .. }, false) => "SGDNVW",
        (Access::Shared { role: Role::Viewer, mount_point: true, .. }, _) => "SGDNV",
        (Access::Shared { role: Role::Viewer, .. }, _) => "SG",
    }
}

/// Append an `oc:` or `nc:` live property of `node`; false if Cairn has none by that name
/// for it (it is then a dead property, or 404).
pub(crate) fn write_oc(out: &mut String, q: &QName, node: &Node, pc: &PropCtx) -> bool {
    use std::fmt::Write;
    let (prefix, name) = match q.ns.as_str() {
        OC => ("oc", q.local.as_str()),
        NC => ("nc", q.local.as_str()),
        _ => return false,
    };
    let value: std::borrow::Cow<'_, str> = match (prefix, name) {
        ("oc", "id") => oc_id(node.id, &pc.oc.instance).into(),
        ("oc", "fileid") => node.id.0.to_string().into(),
        ("oc", "permissions") => oc_permissions(node).into(),
        ("oc", "size") if !node.is_dir => node.size.to_string().into(),
        ("oc", "size") => match pc.oc.tree_sizes.get(&node.id) {
            Some(n) => n.to_string().into(),
            None => return false,
        },
        ("oc", "checksums") => match node.content_hash.as_ref().and_then(|h| pc.oc.checksums.get(h)) {
            Some(c) => {
                let _ = write!(out, "<oc:checksums><oc:checksum>{}</oc:checksum></oc:checksums>", escape(c));
                return true;
            }
            None => return false,
        },
        // Share types list the shares one made (not built for the owner's side yet); an empty
        // fingerprint means "nothing restored from a backup".
        ("oc", "share-types") | ("oc", "data-fingerprint") => "".into(),
        ("oc", "owner-id") | ("oc", "owner-display-name") => match &node.access {
            store::Access::Shared { owner, .. } => escape(owner.as_str()).into(),
            store::Access::Own => escape(&pc.oc.owner).into(),
        },
        ("nc", "has-preview") => crate::nextcloud::preview::has_preview(node).to_string().into(),
        ("nc", "is-encrypted") => "0".into(),
        _ => return false,
    };
    let _ = write!(out, "<{prefix}:{name}>{value}</{prefix}:{name}>");
    true
}

/// Whether the live property `name` exists on `node` (without computing its value).
pub(crate) fn live_applies(name: &str, node: &Node, pc: &PropCtx) -> bool {
    match name {
        "getcontentlength" | "getcontenttype" => !node.is_dir,
        "quota-available-bytes" | "quota-used-bytes" => node.is_dir && pc.usage.is_some(),
        _ => LIVE.iter().any(|(n, _)| *n == name),
    }
}

/// Append `<D:name>value</D:name>` for a live property of `node`; false if it does not apply.
/// Written straight into the response buffer: a 1,000-entry PROPFIND renders ~10,000 of these.
pub(crate) fn write_live(out: &mut String, name: &str, node: &Node, pc: &PropCtx) -> bool {
    use std::fmt::Write;
    if !live_applies(name, node, pc) {
        return false;
    }
    out.push_str("<D:");
    out.push_str(name);
    out.push('>');
    match name {
        "creationdate" => out.push_str(&node.mtime.to_rfc3339()),
        "displayname" => escape_into(out, node.path.name()),
        "getcontentlength" => {
            let _ = write!(out, "{}", node.size);
        }
        "getcontenttype" => escape_into(out, content_type(&node.path)),
        "getetag" => {
            out.push_str("&quot;");
            escape_into(out, &node.etag.0);
            out.push_str("&quot;");
        }
        "getlastmodified" => out.push_str(&download::http_date(node.mtime)),
        "resourcetype" if node.is_dir => out.push_str("<D:collection/>"),
        "supportedlock" => out.push_str(
            "<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>\
             <D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>",
        ),
        "lockdiscovery" => {
            for l in pc.locks.get(&node.path).map(Vec::as_slice).unwrap_or(&[]) {
                out.push_str(&activelock(l, &pc.prefix, pc.now));
            }
        }
        "quota-available-bytes" => {
            let u = pc.usage.expect("checked by live_applies");
            // What a new file can take now (store's rule: versions and trash make room).
            match u.available() {
                Some(free) => {
                    let _ = write!(out, "{free}");
                }
                None => out.push_str("-3"), // Nextcloud's "unlimited"
            }
        }
        "quota-used-bytes" => {
            let _ = write!(out, "{}", pc.usage.expect("checked by live_applies").used);
        }
        _ => {}
    }
    out.push_str("</D:");
    out.push_str(name);
    out.push('>');
    true
}

pub(crate) fn escape_into(out: &mut String, s: &str) {
    if s.bytes().any(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'')) {
        out.push_str(&escape(s));
    } else {
        out.push_str(s);
    }
}

pub(crate) fn activelock(l: &Lock, prefix: &str, now: store::Timestamp) -> String {
    let left = ((l.expires_at.0 - now.0) / 1_000_000_000).max(0);
    format!(
        "<D:activelock><D:locktype><D:write/></D:locktype><D:lockscope><D:{}/></D:lockscope><D:depth>{}</D:depth>{}\
         <D:timeout>Second-{left}</D:timeout><D:locktoken><D:href>{}</D:href></D:locktoken>\
         <D:lockroot><D:href>{}</D:href></D:lockroot></D:activelock>",
        if l.exclusive { "exclusive" } else { "shared" },
        if l.depth_infinite { "infinity" } else { "0" },
        l.owner.as_deref().unwrap_or(""),
        escape(&l.token),
        escape(&href(prefix, &l.path, false)),
    )
}

pub(crate) fn empty_prop_element(q: &QName) -> String {
    if q.ns == DAV {
        format!("<D:{}/>", q.local)
    } else if q.ns.is_empty() {
        format!("<{} xmlns=\"\"/>", q.local)
    } else {
        format!("<P:{} xmlns:P=\"{}\"/>", q.local, escape(&q.ns))
    }
}

pub(crate) const PROPSTAT_OPEN: &str = "<D:propstat><D:prop>";

/// Close a propstat opened with [`PROPSTAT_OPEN`] (its properties written in between).
pub(crate) fn end_propstat(out: &mut String, code: StatusCode) {
    out.push_str("</D:prop><D:status>HTTP/1.1 ");
    out.push_str(code.as_str());
    out.push(' ');
    out.push_str(code.canonical_reason().unwrap_or(""));
    out.push_str("</D:status></D:propstat>");
}

pub(crate) fn push_propstat(out: &mut String, props: &str, code: StatusCode) {
    out.push_str(PROPSTAT_OPEN);
    out.push_str(props);
    end_propstat(out, code);
}

pub(crate) fn propstat(props: &str, code: StatusCode) -> String {
    let mut out = String::new();
    push_propstat(&mut out, props, code);
    out
}

pub(crate) const MULTISTATUS_HEAD: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\" \
     xmlns:s=\"http://sabredav.org/ns\" xmlns:oc=\"http://owncloud.org/ns\" xmlns:nc=\"http://nextcloud.org/ns\">";

pub(crate) const MULTISTATUS_TAIL: &str = "</D:multistatus>\n";

/// The body of a PROPFIND answer: a multistatus with a `<D:response>` per node in `nodes`
/// (the target first), for the `request` parsed from the client's body. A pure function of its
/// arguments; the handler gathers them from `store`.
pub(crate) fn render(request: &PropfindBody, nodes: &[&Node], pc: &PropCtx) -> String {
    // Rendered straight into one buffer sized for the usual ~800 bytes an entry: a 1,000-entry
    // folder is ~10,000 properties, and copying or regrowing the document dominated the time.
    let mut out = String::with_capacity(MULTISTATUS_HEAD.len() + 64 + nodes.len() * 1024);
    out.push_str(MULTISTATUS_HEAD);
    // Named properties of one entry, reused from entry to entry.
    let (mut found, mut missing) = (String::new(), String::new());
    for n in nodes.iter().copied() {
        out.push_str("<D:response><D:href>");
        escape_into(&mut out, &href(&pc.prefix, &n.path, n.is_dir));
        out.push_str("</D:href>");
        let dead = pc.dead.get(&n.id).map(Vec::as_slice).unwrap_or(&[]);
        match request {
            PropfindBody::PropName => {
                let mut names: String = LIVE
                    .iter()
                    .filter(|(name, _)| live_applies(name, n, pc))
                    .map(|(name, _)| format!("<D:{name}/>"))
                    .collect();
                for d in dead {
                    names.push_str(&empty_prop_element(&QName {
                        ns: d.namespace.clone(),
                        local: d.name.clone(),
                    }));
                }
                out.push_str(&propstat(&names, StatusCode::OK));
            }
            PropfindBody::AllProp(include) => {
                out.push_str(PROPSTAT_OPEN);
                for (name, in_all) in LIVE {
                    if *in_all || include.iter().any(|q| q.ns == DAV && q.local == *name) {
                        write_live(&mut out, name, n, pc);
                    }
                }
                for d in dead {
                    out.push_str(&xml::render_dead(
                        &QName { ns: d.namespace.clone(), local: d.name.clone() },
                        &d.value,
                    ));
                }
                end_propstat(&mut out, StatusCode::OK);
            }
            PropfindBody::Props(names) => {
                found.clear();
                missing.clear();
                for q in names {
                    if q.ns == DAV && write_live(&mut found, &q.local, n, pc)
                        || write_oc(&mut found, q, n, pc)
                    {
                        continue;
                    } else if let Some(d) = dead.iter().find(|d| d.namespace == q.ns && d.name == q.local) {
                        found.push_str(&xml::render_dead(q, &d.value));
                    } else {
                        missing.push_str(&empty_prop_element(q));
                    }
                }
                if !found.is_empty() {
                    push_propstat(&mut out, &found, StatusCode::OK);
                }
                if !missing.is_empty() {
                    push_propstat(&mut out, &missing, StatusCode::NOT_FOUND);
                }
            }
        }
        out.push_str("</D:response>");
    }
    out.push_str(MULTISTATUS_TAIL);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::{DeadProp, ETag, FileId, Timestamp, Usage};

    const SNAPSHOT: &str = "src/dav/snapshots/propfind.xml";

    fn node(id: i64, path: &str, is_dir: bool, size: u64) -> Node {
        Node {
            id: FileId(id),
            path: VPath::parse(path).unwrap(),
            is_dir,
            size,
            mtime: Timestamp(1_795_484_915_000_000_000 + id * 1_000_000_000),
            content_hash: (!is_dir).then_some(store::ContentHash([id as u8; 32])),
            etag: ETag(format!("etag-{id}")),
            mode: None,
            access: Default::default(),
        }
    }

    fn q(ns: &str, local: &str) -> QName {
        QName { ns: ns.to_owned(), local: local.to_owned() }
    }

    /// What a client sees for a folder with a locked file carrying a dead property, a name that
    /// needs escaping in XML and in the href, and a subfolder: for `allprop` (with and without
    /// `include`), named properties (found and missing) and `propname`. Compared byte for byte
    /// with the snapshot; `UPDATE_SNAPSHOTS=1 cargo test -p davbridge` rewrites it after a
    /// deliberate change, to be reviewed in the diff.
    #[test]
    fn propfind_xml_matches_the_snapshot() {
        let root = node(1, "/", true, 0);
        let file = node(2, "/a b & <c>.txt", false, 5);
        let docs = node(3, "/docs", true, 0);
        let now = Timestamp(1_795_484_915_000_000_000);
        let lock = Lock {
            token: "urn:uuid:0f0e0d0c-0b0a-4908-8706-050403020100".to_owned(),
            path: file.path.clone(),
            depth_infinite: false,
            exclusive: true,
            owner: Some("<D:href>mailto:alice@example.org</D:href>".to_owned()),
            expires_at: Timestamp(now.0 + 600_000_000_000),
        };
        let pc = PropCtx {
            usage: Some(Usage {
                quota: Some(1000),
                used: 400,
                files: 300,
                versions: 60,
                trash: 40,
                uploads: 0,
            }),
            locks: HashMap::from([(file.path.clone(), vec![lock])]),
            dead: HashMap::from([(
                file.id,
                vec![DeadProp {
                    namespace: "urn:x".to_owned(),
                    name: "color".to_owned(),
                    value: "blue".to_owned(),
                }],
            )]),
            prefix: "/dav".to_owned(),
            now,
            oc: OcCtx {
                instance: "oc0123456789".to_owned(),
                owner: "alice".to_owned(),
                checksums: HashMap::from([(
                    file.content_hash.unwrap(),
                    "SHA1:a9993e364706816aba3e25717850c26c9cd0d89d".to_owned(),
                )]),
                tree_sizes: HashMap::from([(root.id, 5)]),
            },
        };
        let nodes = [&root, &file, &docs];
        let requests = [
            ("allprop", PropfindBody::AllProp(vec![])),
            (
                "allprop include quota",
                PropfindBody::AllProp(vec![q(DAV, "quota-available-bytes"), q(DAV, "quota-used-bytes")]),
            ),
            (
                "named, found and missing",
                PropfindBody::Props(vec![
                    q(DAV, "getetag"),
                    q(DAV, "getcontentlength"),
                    q("urn:x", "color"),
                    q("urn:x", "missing"),
                ]),
            ),
            ("propname", PropfindBody::PropName),
            (
                "the Nextcloud client's listing",
                PropfindBody::Props(
                    [
                        (DAV, "resourcetype"),
                        (DAV, "getlastmodified"),
                        (DAV, "getcontentlength"),
                        (DAV, "getetag"),
                        (OC, "size"),
                        (OC, "id"),
                        (OC, "fileid"),
                        (OC, "downloadURL"),
                        (OC, "dDC"),
                        (OC, "permissions"),
                        (OC, "checksums"),
                        (OC, "data-fingerprint"),
                        (OC, "share-types"),
                    ]
                    .map(|(ns, l)| q(ns, l))
                    .to_vec(),
                ),
            ),
        ];
        let mut got = String::new();
        for (name, request) in &requests {
            got.push_str(&format!("<!-- {name} -->\n"));
            got.push_str(&render(request, &nodes, &pc));
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SNAPSHOT);
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!("{SNAPSHOT} is missing: run UPDATE_SNAPSHOTS=1 cargo test -p davbridge")
        });
        assert!(got == want, "PROPFIND XML differs from {SNAPSHOT}:\n{got}");
    }
}
