//! Extended attributes are dead properties: `user.NAME` is the property NAME in the namespace
//! [`NAMESPACE`], so `getfattr` on the mount and `PROPFIND` over WebDAV show the same thing.
//!
//! A dead property's stored value is WebDAV's "namespace declarations `>` inner XML" form. Text
//! values are stored as escaped XML text (readable in PROPFIND); any other bytes as base64
//! inside a `<b64>` element of our namespace. A value set over WebDAV with child elements reads
//! back through the mount as its XML.

use base64::Engine;

/// The namespace of properties that are extended attributes.
pub(crate) const NAMESPACE: &str = "urn:cairn:xattr";
/// Only this xattr namespace is stored; `security.*`, `trusted.*` and ACLs are not supported.
pub(crate) const PREFIX: &str = "user.";

const B64_OPEN: &str = "<b64 xmlns=\"urn:cairn:xattr\">";
const B64_CLOSE: &str = "</b64>";

/// Encode an attribute value as a stored property value.
pub(crate) fn encode(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) if text.chars().all(|c| !c.is_control() || matches!(c, '\t' | '\n')) => {
            let mut out = String::with_capacity(text.len() + 1);
            out.push('>');
            for c in text.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    c => out.push(c),
                }
            }
            out
        }
        _ => format!(">{B64_OPEN}{}{B64_CLOSE}", base64::engine::general_purpose::STANDARD.encode(value)),
    }
}

/// Decode a stored property value into attribute bytes.
pub(crate) fn decode(stored: &str) -> Vec<u8> {
    let inner = stored.split_once('>').map_or(stored, |(_, inner)| inner);
    if let Some(b64) = inner.strip_prefix(B64_OPEN).and_then(|r| r.strip_suffix(B64_CLOSE))
        && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64)
    {
        return bytes;
    }
    if inner.contains('<') {
        // Structured XML from a WebDAV client: show it as it is.
        return inner.as_bytes().to_vec();
    }
    unescape(inner).into_bytes()
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        for v in [&b""[..], b"plain", b"a<b>&c", b"\x00\xff\x01binary", "ünï".as_bytes(), b"line\nbreak"] {
            assert_eq!(decode(&encode(v)), v, "{v:?}");
        }
        assert_eq!(encode(b"a<b"), ">a&lt;b");
    }

    #[test]
    fn webdav_values_read_back() {
        assert_eq!(decode(">x &amp; y &#65;"), b"x & y A");
        assert_eq!(decode(" xmlns:z=\"urn:z\"><z:el>v</z:el>"), b"<z:el>v</z:el>");
    }
}
