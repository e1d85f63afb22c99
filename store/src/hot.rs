//! The bytes of small files recently read, kept in memory by content version, so that a hot
//! small GET costs no open, read and close of its file.
//!
//! An entry is keyed by the content's blake3, and added only if the bytes read hash to it: the
//! bytes served for a node are always its content as the database records it, so an entry
//! never needs invalidating. It can only fall out of use, and is evicted in the order it was
//! added once the bytes held pass the cap. A read that raced a commit (the node already new,
//! the file on disk not yet renamed into place) or a file changed behind Cairn's back is served
//! as read but never kept.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::types::Node;

/// Most bytes held.
const CAP: usize = 16 * 1024 * 1024;

/// Largest file kept.
const MAX_FILE: u64 = 64 * 1024;

type Key = [u8; 32];

#[derive(Default)]
pub(crate) struct HotFiles {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Key, Arc<[u8]>>,
    order: VecDeque<Key>,
    held: usize,
}

impl HotFiles {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The content of `node`, if held.
    pub(crate) fn get(&self, node: &Node) -> Option<Arc<[u8]>> {
        let hash = node.content_hash?;
        self.lock().map.get(&hash.0).cloned()
    }

    /// Keep `bytes` as the content of `node` if they are its content (by hash) and small.
    pub(crate) fn offer(&self, node: &Node, bytes: &[u8]) {
        let Some(hash) = node.content_hash else { return };
        if bytes.len() as u64 > MAX_FILE
            || bytes.len() as u64 != node.size
            || *blake3::hash(bytes).as_bytes() != hash.0
        {
            return;
        }
        let key = hash.0;
        let mut inner = self.lock();
        if inner.map.contains_key(&key) {
            return;
        }
        inner.held += bytes.len();
        inner.map.insert(key, bytes.into());
        inner.order.push_back(key);
        while inner.held > CAP {
            let Some(old) = inner.order.pop_front() else { break };
            if let Some(b) = inner.map.remove(&old) {
                inner.held -= b.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::VPath;
    use crate::types::{ContentHash, ETag, FileId, Timestamp};

    fn node(id: i64, etag: &str, bytes: &[u8]) -> Node {
        Node {
            id: FileId(id),
            path: VPath::parse("/f").unwrap(),
            is_dir: false,
            size: bytes.len() as u64,
            mtime: Timestamp(0),
            content_hash: Some(ContentHash(*blake3::hash(bytes).as_bytes())),
            etag: ETag(etag.to_owned()),
            mode: None,
            access: Default::default(),
        }
    }

    #[test]
    fn keeps_only_bytes_that_match_the_node_and_forgets_the_oldest_past_the_cap() {
        let hot = HotFiles::default();
        let n = node(1, "a", b"hello");
        hot.offer(&n, b"hellO");
        assert!(hot.get(&n).is_none(), "bytes that do not hash to the node are not kept");
        hot.offer(&n, b"hello");
        assert_eq!(&*hot.get(&n).unwrap(), b"hello");
        let changed = node(1, "b", b"hello, again");
        assert!(hot.get(&changed).is_none(), "another content is another entry");
        assert_eq!(&*hot.get(&node(2, "c", b"hello")).unwrap(), b"hello", "by content, whatever the file");

        let big = vec![7u8; MAX_FILE as usize];
        let count = CAP / big.len() + 1;
        let bigs: Vec<Vec<u8>> = (0..count)
            .map(|i| {
                let mut b = big.clone();
                b[..8].copy_from_slice(&(i as u64).to_le_bytes());
                b
            })
            .collect();
        for (i, b) in bigs.iter().enumerate() {
            hot.offer(&node(100 + i as i64, "x", b), b);
        }
        assert!(hot.get(&n).is_none(), "the oldest entry went first");
        assert!(hot.get(&node(100, "x", bigs.last().unwrap())).is_some());
        assert!(hot.lock().held <= CAP);
    }
}
