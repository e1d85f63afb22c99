//! WebDAV request bodies in, multistatus bodies out.
//!
//! Bodies are small documents (capped at [`MAX_BODY`] before parsing), read with quick-xml
//! into a little tree with our own namespace scopes. A DOCTYPE is refused outright, so there
//! is no entity expansion of any kind (billion laughs, external entities): only the five
//! predefined entities and character references are understood. Depth and element counts are
//! capped too.

use hyper::StatusCode;
use quick_xml::Reader;
use quick_xml::events::Event;

use crate::error::HttpError;

/// Largest request body we parse as XML.
pub const MAX_BODY: usize = 1 << 20;
const MAX_DEPTH: usize = 64;
const MAX_ELEMENTS: usize = 20_000;

/// The WebDAV namespace.
pub const DAV: &str = "DAV:";
/// ownCloud's namespace (`oc:` properties the Nextcloud clients sync by).
pub const OC: &str = "http://owncloud.org/ns";
/// Nextcloud's namespace.
pub const NC: &str = "http://nextcloud.org/ns";

/// A namespace-qualified name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QName {
    /// Namespace URI ('' for none).
    pub ns: String,
    /// Local name.
    pub local: String,
}

impl QName {
    /// A name in `DAV:`.
    pub fn dav(local: &str) -> QName {
        QName { ns: DAV.to_owned(), local: local.to_owned() }
    }
}

/// One element of a parsed body.
#[derive(Debug)]
pub struct Element {
    /// Its name.
    pub name: QName,
    /// Child elements, in order.
    pub children: Vec<Element>,
    /// Text directly inside (unescaped, concatenated).
    pub text: String,
    /// The raw bytes between its start and end tags.
    pub inner: String,
    /// Namespace bindings in scope at this element: (prefix or "" for default, uri).
    pub scope: Vec<(String, String)>,
}

fn bad(msg: impl Into<String>) -> HttpError {
    HttpError::new(StatusCode::BAD_REQUEST, msg)
}

/// Parse a document into its root element.
pub fn parse(body: &[u8]) -> Result<Element, HttpError> {
    if body.len() > MAX_BODY {
        return Err(HttpError::new(StatusCode::PAYLOAD_TOO_LARGE, "XML body too large"));
    }
    let text = std::str::from_utf8(body).map_err(|_| bad("XML body is not UTF-8"))?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    // Open elements with where their content starts; scopes per open element.
    let mut stack: Vec<(Element, usize)> = Vec::new();
    let mut scopes: Vec<Vec<(String, String)>> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| bad(format!("malformed XML: {e}")))?;
        match event {
            Event::DocType(_) => return Err(bad("DOCTYPE is not allowed")),
            Event::Start(ref e) | Event::Empty(ref e) => {
                count += 1;
                if count > MAX_ELEMENTS || stack.len() >= MAX_DEPTH {
                    return Err(bad("XML body too complex"));
                }
                if root.is_some() {
                    return Err(bad("more than one root element"));
                }
                let mut decls = Vec::new();
                for attr in e.attributes() {
                    let attr = attr.map_err(|e| bad(format!("malformed attribute: {e}")))?;
                    let key =
                        std::str::from_utf8(attr.key.as_ref()).map_err(|_| bad("bad attribute name"))?;
                    let value =
                        unescape(std::str::from_utf8(&attr.value).map_err(|_| bad("bad attribute"))?)?;
                    if key == "xmlns" {
                        decls.push((String::new(), value));
                    } else if let Some(prefix) = key.strip_prefix("xmlns:") {
                        if value.is_empty() {
                            return Err(bad("a namespace prefix cannot be bound to an empty URI"));
                        }
                        decls.push((prefix.to_owned(), value));
                    }
                }
                scopes.push(decls);
                let qname =
                    std::str::from_utf8(e.name().as_ref()).map_err(|_| bad("bad element name"))?.to_owned();
                let name = resolve(&scopes, &qname)?;
                let scope = flatten(&scopes);
                let el =
                    Element { name, children: Vec::new(), text: String::new(), inner: String::new(), scope };
                if matches!(event, Event::Empty(_)) {
                    scopes.pop();
                    attach(&mut stack, &mut root, el);
                } else {
                    stack.push((el, reader.buffer_position() as usize));
                }
            }
            Event::End(_) => {
                let (mut el, start) = stack.pop().ok_or_else(|| bad("unbalanced XML"))?;
                el.inner = text[start..before].to_owned();
                scopes.pop();
                attach(&mut stack, &mut root, el);
            }
            Event::Text(t) => {
                if let Some((el, _)) = stack.last_mut() {
                    el.text.push_str(&unescape(std::str::from_utf8(&t).map_err(|_| bad("bad text"))?)?);
                } else if !t.iter().all(|b| b.is_ascii_whitespace()) {
                    return Err(bad("text outside the root element"));
                }
            }
            Event::CData(t) => {
                if let Some((el, _)) = stack.last_mut() {
                    el.text.push_str(std::str::from_utf8(&t).map_err(|_| bad("bad CDATA"))?);
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(bad("unterminated XML"));
    }
    root.ok_or_else(|| bad("empty XML body"))
}

fn attach(stack: &mut [(Element, usize)], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some((parent, _)) => parent.children.push(el),
        None => *root = Some(el),
    }
}

fn flatten(scopes: &[Vec<(String, String)>]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for scope in scopes {
        for (p, u) in scope {
            out.retain(|(q, _)| q != p);
            out.push((p.clone(), u.clone()));
        }
    }
    out
}

fn resolve(scopes: &[Vec<(String, String)>], qname: &str) -> Result<QName, HttpError> {
    let (prefix, local) = match qname.split_once(':') {
        Some((p, l)) => (p, l),
        None => ("", qname),
    };
    let uri =
        scopes.iter().rev().flat_map(|s| s.iter().rev()).find(|(p, _)| p == prefix).map(|(_, u)| u.clone());
    match (prefix, uri) {
        (_, Some(uri)) => Ok(QName { ns: uri, local: local.to_owned() }),
        ("", None) => Ok(QName { ns: String::new(), local: local.to_owned() }),
        (p, None) => Err(bad(format!("undeclared namespace prefix {p:?}"))),
    }
}

/// Unescape the predefined entities and character references; anything else is refused.
fn unescape(raw: &str) -> Result<String, HttpError> {
    quick_xml::escape::unescape(raw).map(|c| c.into_owned()).map_err(|_| bad("unknown entity in XML"))
}

/// Escape text for element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// What a PROPFIND asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropfindBody {
    /// All properties (an empty body means this too), plus any named in `include`.
    AllProp(Vec<QName>),
    /// Names only.
    PropName,
    /// These properties.
    Props(Vec<QName>),
}

/// Parse a PROPFIND body.
pub fn parse_propfind(body: &[u8]) -> Result<PropfindBody, HttpError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(PropfindBody::AllProp(Vec::new()));
    }
    let root = parse(body)?;
    if root.name != QName::dav("propfind") {
        return Err(bad("expected DAV:propfind"));
    }
    let mut include = Vec::new();
    let mut result = None;
    for child in &root.children {
        match (child.name.ns.as_str(), child.name.local.as_str()) {
            (DAV, "allprop") => result = Some(PropfindBody::AllProp(Vec::new())),
            (DAV, "propname") => result = Some(PropfindBody::PropName),
            (DAV, "prop") => {
                result = Some(PropfindBody::Props(child.children.iter().map(|c| c.name.clone()).collect()))
            }
            (DAV, "include") => include.extend(child.children.iter().map(|c| c.name.clone())),
            _ => {}
        }
    }
    match result {
        Some(PropfindBody::AllProp(_)) => Ok(PropfindBody::AllProp(include)),
        Some(r) => Ok(r),
        None => Err(bad("DAV:propfind needs allprop, propname or prop")),
    }
}

/// One property change from a PROPPATCH, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchItem {
    /// Set (else remove).
    pub set: bool,
    /// The property.
    pub name: QName,
    /// The stored form of the value (see [`dead_value`]).
    pub value: String,
}

/// Parse a PROPPATCH body.
pub fn parse_proppatch(body: &[u8]) -> Result<Vec<PatchItem>, HttpError> {
    let root = parse(body)?;
    if root.name != QName::dav("propertyupdate") {
        return Err(bad("expected DAV:propertyupdate"));
    }
    let mut out = Vec::new();
    for op in &root.children {
        let set = match (op.name.ns.as_str(), op.name.local.as_str()) {
            (DAV, "set") => true,
            (DAV, "remove") => false,
            _ => continue,
        };
        for prop in op.children.iter().filter(|c| c.name == QName::dav("prop")) {
            for p in &prop.children {
                out.push(PatchItem {
                    set,
                    name: p.name.clone(),
                    value: if set { dead_value(p) } else { String::new() },
                });
            }
        }
    }
    if out.is_empty() {
        return Err(bad("PROPPATCH changes nothing"));
    }
    Ok(out)
}

/// How a dead property's value is kept: the namespace bindings in scope at the property
/// element, as attribute text, then `>`, then the raw XML inside it (the attribute text
/// escapes every `>`, so the first one separates). Re-emitting the bindings
/// on the property element keeps every prefix inside the value meaningful.
pub fn dead_value(el: &Element) -> String {
    let mut decls = String::new();
    for (p, u) in &el.scope {
        if p.is_empty() {
            decls.push_str(&format!(" xmlns=\"{}\"", escape(u)));
        } else {
            decls.push_str(&format!(" xmlns:{p}=\"{}\"", escape(u)));
        }
    }
    format!("{decls}>{}", el.inner)
}

/// Render a stored dead property as an element.
pub fn render_dead(name: &QName, stored: &str) -> String {
    let (decls, inner) = stored.split_once('>').unwrap_or(("", stored));
    // Each declaration is ` xmlns[:p]="v"`, with `"` escaped inside values.
    let mut items: Vec<&str> = Vec::new();
    let mut rest = decls;
    while let Some(open) = rest.find('"') {
        let Some(close) = rest[open + 1..].find('"') else { break };
        let end = open + 1 + close + 1;
        items.push(&rest[..end]);
        rest = &rest[end..];
    }
    if name.ns.is_empty() {
        // No namespace: an unprefixed element, the default namespace undeclared.
        let decls: String = items.iter().filter(|d| !d.trim_start().starts_with("xmlns=")).copied().collect();
        return format!("<{0} xmlns=\"\"{decls}>{inner}</{0}>", name.local);
    }
    // A prefix the value does not use.
    let mut prefix = "P".to_owned();
    let mut n = 0;
    while items.iter().any(|d| d.trim_start().starts_with(&format!("xmlns:{prefix}="))) {
        n += 1;
        prefix = format!("P{n}");
    }
    let decls: String = items.concat();
    format!(
        "<{prefix}:{0} xmlns:{prefix}=\"{1}\"{decls}>{inner}</{prefix}:{0}>",
        name.local,
        escape(&name.ns)
    )
}

/// A LOCK request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// Exclusive (else shared).
    pub exclusive: bool,
    /// The owner element, re-serialized with its namespace bindings, to hand back verbatim.
    pub owner: Option<String>,
}

/// Parse a LOCK body; an empty body is a refresh (`None`).
pub fn parse_lockinfo(body: &[u8]) -> Result<Option<LockInfo>, HttpError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    let root = parse(body)?;
    if root.name != QName::dav("lockinfo") {
        return Err(bad("expected DAV:lockinfo"));
    }
    let mut exclusive = None;
    let mut write = false;
    let mut owner = None;
    for c in &root.children {
        match (c.name.ns.as_str(), c.name.local.as_str()) {
            (DAV, "lockscope") => {
                exclusive = c.children.first().map(|s| s.name == QName::dav("exclusive"));
            }
            (DAV, "locktype") => write = c.children.iter().any(|t| t.name == QName::dav("write")),
            (DAV, "owner") => owner = Some(render_dead(&QName::dav("owner"), &dead_value(c))),
            _ => {}
        }
    }
    if !write {
        return Err(bad("only write locks exist"));
    }
    let exclusive = exclusive.ok_or_else(|| bad("lockscope missing"))?;
    Ok(Some(LockInfo { exclusive, owner }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propfind_bodies() {
        assert_eq!(parse_propfind(b"").unwrap(), PropfindBody::AllProp(vec![]));
        let body = br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><x:foo xmlns:x="urn:x"/></D:prop></D:propfind>"#;
        assert_eq!(
            parse_propfind(body).unwrap(),
            PropfindBody::Props(vec![
                QName::dav("getetag"),
                QName { ns: "urn:x".into(), local: "foo".into() }
            ])
        );
        let body = br#"<propfind xmlns="DAV:"><propname/></propfind>"#;
        assert_eq!(parse_propfind(body).unwrap(), PropfindBody::PropName);
        assert_eq!(parse_propfind(b"<D:propfind xmlns:D=\"DAV:\"><D:prop>").unwrap_err().status, 400);
        assert_eq!(parse_propfind(b"<x:propfind/>").unwrap_err().status, 400);
        assert_eq!(
            parse_propfind(
                br#"<D:propfind xmlns:D="DAV:"><D:prop><bar:foo xmlns:bar=""/></D:prop></D:propfind>"#
            )
            .unwrap_err()
            .status,
            400
        );
    }

    #[test]
    fn hostile_bodies_are_refused_without_expansion() {
        let laughs = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><D:propfind xmlns:D="DAV:"><D:prop><D:x>&lol2;</D:x></D:prop></D:propfind>"#;
        assert_eq!(parse(laughs).unwrap_err().message, "DOCTYPE is not allowed");
        let xxe = br#"<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><D:propfind xmlns:D="DAV:">&x;</D:propfind>"#;
        assert_eq!(parse(xxe).unwrap_err().status, 400);
        assert_eq!(parse(b"<a>&unknown;</a>").unwrap_err().status, 400);
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert_eq!(parse(deep.as_bytes()).unwrap_err().status, 400);
        assert_eq!(parse(&vec![b' '; MAX_BODY + 1]).unwrap_err().status, 413);
    }

    #[test]
    fn dead_values_keep_their_namespaces() {
        let body = br#"<D:propertyupdate xmlns:D="DAV:" xmlns:z="urn:z"><D:set><D:prop><t:p xmlns:t="urn:t"><z:inner a="1">x &amp; y</z:inner></t:p></D:prop></D:set><D:remove><D:prop><t:q xmlns:t="urn:t"/></D:prop></D:remove></D:propertyupdate>"#;
        let items = parse_proppatch(body).unwrap();
        assert_eq!(items.len(), 2);
        assert!(items[0].set && !items[1].set);
        let rendered = render_dead(&items[0].name, &items[0].value);
        // The rendering parses back to the same name and the same inner content.
        let back = parse(rendered.as_bytes()).unwrap();
        assert_eq!(back.name, QName { ns: "urn:t".into(), local: "p".into() });
        assert_eq!(back.children[0].name, QName { ns: "urn:z".into(), local: "inner".into() });
        assert_eq!(back.children[0].text, "x & y");
        // A property in no namespace, with the default namespace and others in scope.
        let body = br#"<propertyupdate xmlns="DAV:" xmlns:a="urn:a"><set><prop><plain xmlns="" xmlns:b="urn:b"><b:x/><a:y/></plain></prop></set></propertyupdate>"#;
        let items = parse_proppatch(body).unwrap();
        let back = parse(render_dead(&items[0].name, &items[0].value).as_bytes()).unwrap();
        assert_eq!(back.name, QName { ns: String::new(), local: "plain".into() });
        assert_eq!(back.children[0].name.ns, "urn:b");
        assert_eq!(back.children[1].name.ns, "urn:a");
    }

    #[test]
    fn lockinfo() {
        let body = br#"<?xml version="1.0" encoding="utf-8" ?><D:lockinfo xmlns:D='DAV:'><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>http://example.org/~ejw/contact.html</D:href></D:owner></D:lockinfo>"#;
        let info = parse_lockinfo(body).unwrap().unwrap();
        assert!(info.exclusive);
        assert!(info.owner.unwrap().contains("contact.html"));
        assert_eq!(parse_lockinfo(b"").unwrap(), None);
    }
}
