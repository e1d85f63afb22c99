//! The reconciliation planner: a pure function from three trees — the base (what both sides
//! had at the last sync, from the state database), the local tree and the remote tree — to the
//! actions that make the two sides equal without losing an edit.
//!
//! Per path, a side "changed" if it differs from the base. One side changed: its state wins.
//! Both changed to the same thing: nothing to do. Both changed differently:
//! - edit vs delete keeps the edit;
//! - two different contents: the server's keeps the name, the local one is renamed to a
//!   conflict copy and uploaded;
//! - a folder deleted on one side while something below it changed on the other is not
//!   deleted: it is recreated and only its unchanged contents go.

use std::collections::{BTreeMap, BTreeSet};

/// What is at a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Dir,
    /// A file and its content hash (hex blake3).
    File(String),
}

/// Relative paths (`a/b.txt`, no leading slash) to what is there.
pub type Tree = BTreeMap<String, Kind>;

/// One step. Paths are relative to the synced folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Rename the local item at `path` (a file or a folder) to `copy`; both sides' contents
    /// are then transferred by other actions.
    ConflictLocal {
        path: String,
        copy: String,
    },
    DeleteLocal(String),
    DeleteRemote(String),
    MkdirLocal(String),
    MkdirRemote(String),
    MoveLocal {
        from: String,
        to: String,
    },
    MoveRemote {
        from: String,
        to: String,
    },
    Download(String),
    Upload(String),
    /// Both sides agree: remember it as the new base.
    Record(String),
    /// Gone on both sides: forget the base.
    Forget(String),
}

impl Action {
    /// The order actions run in: conflict renames, deletions, folders, moves, transfers, and
    /// bookkeeping last. Within a phase the plan's order (parents before children) holds.
    pub fn phase(&self) -> u8 {
        match self {
            Action::ConflictLocal { .. } => 0,
            Action::DeleteLocal(_) | Action::DeleteRemote(_) => 1,
            Action::MkdirLocal(_) | Action::MkdirRemote(_) => 2,
            Action::MoveLocal { .. } | Action::MoveRemote { .. } => 3,
            Action::Download(_) | Action::Upload(_) => 4,
            Action::Record(_) | Action::Forget(_) => 5,
        }
    }

    /// The paths it names.
    fn paths(&self) -> Vec<&String> {
        match self {
            Action::ConflictLocal { path: a, copy: b }
            | Action::MoveLocal { from: a, to: b }
            | Action::MoveRemote { from: a, to: b } => vec![a, b],
            Action::DeleteLocal(p)
            | Action::DeleteRemote(p)
            | Action::MkdirLocal(p)
            | Action::MkdirRemote(p)
            | Action::Download(p)
            | Action::Upload(p)
            | Action::Record(p)
            | Action::Forget(p) => vec![p],
        }
    }

    /// Does this move bytes or change either side?
    pub fn is_work(&self) -> bool {
        !matches!(self, Action::Record(_) | Action::Forget(_))
    }
}

fn under(path: &str, dir: &str) -> bool {
    path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/'
}

fn descendants<'a>(tree: &'a Tree, dir: &'a str) -> impl Iterator<Item = (&'a String, &'a Kind)> + 'a {
    let start = format!("{dir}/");
    tree.range(start.clone()..).take_while(move |(p, _)| p.starts_with(&start))
}

/// Did anything below `dir` change on the side `side` (relative to `base`)?
fn changed_below(base: &Tree, side: &Tree, dir: &str) -> bool {
    descendants(side, dir).any(|(p, k)| base.get(p) != Some(k))
        || descendants(base, dir).any(|(p, _)| !side.contains_key(p))
}

/// Plan the sync. `conflict_name` turns a path into its conflict-copy path.
pub fn plan(base: &Tree, local: &Tree, remote: &Tree, conflict_name: &dyn Fn(&str) -> String) -> Vec<Action> {
    let paths: BTreeSet<&String> = base.keys().chain(local.keys()).chain(remote.keys()).collect();
    let mut out = Vec::new();
    // Subtrees fully handled by one action (a recursive delete, a folder renamed away).
    let mut done: Vec<String> = Vec::new();
    for p in paths {
        if done.iter().any(|d| under(p, d)) {
            continue;
        }
        let (b, l, r) = (base.get(p), local.get(p), remote.get(p));
        if l == r {
            match l {
                Some(_) if b != l => out.push(Action::Record(p.clone())),
                None if b.is_some() => out.push(Action::Forget(p.clone())),
                _ => {}
            }
            continue;
        }
        let (lc, rc) = (l != b, r != b);
        match (lc, rc) {
            (false, false) => unreachable!("l != r, so one differs from the base"),
            // Only the remote changed: bring it here.
            (false, true) => match r {
                None => {
                    if l == Some(&Kind::Dir) && changed_below(base, local, p) {
                        out.push(Action::MkdirRemote(p.clone()));
                    } else {
                        out.push(Action::DeleteLocal(p.clone()));
                        done.push(p.clone());
                    }
                }
                Some(Kind::Dir) => {
                    if l.is_some() {
                        out.push(Action::DeleteLocal(p.clone()));
                    }
                    out.push(Action::MkdirLocal(p.clone()));
                }
                Some(Kind::File(_)) => {
                    if l == Some(&Kind::Dir) {
                        if changed_below(base, local, p) {
                            conflict(p, local, conflict_name, &mut out, &mut done);
                        } else {
                            out.push(Action::DeleteLocal(p.clone()));
                            done.push(p.clone());
                        }
                    }
                    out.push(Action::Download(p.clone()));
                }
            },
            // Only the local side changed: send it.
            (true, false) => match l {
                None => {
                    if r == Some(&Kind::Dir) && changed_below(base, remote, p) {
                        out.push(Action::MkdirLocal(p.clone()));
                    } else {
                        out.push(Action::DeleteRemote(p.clone()));
                        done.push(p.clone());
                    }
                }
                Some(Kind::Dir) => {
                    if r.is_some() {
                        out.push(Action::DeleteRemote(p.clone()));
                    }
                    out.push(Action::MkdirRemote(p.clone()));
                }
                Some(Kind::File(_)) => {
                    if r == Some(&Kind::Dir) && changed_below(base, remote, p) {
                        // Something new below the remote folder: the server's folder keeps the
                        // name, the local file becomes a conflict copy.
                        conflict(p, local, conflict_name, &mut out, &mut done);
                        out.push(Action::MkdirLocal(p.clone()));
                    } else {
                        if r == Some(&Kind::Dir) {
                            out.push(Action::DeleteRemote(p.clone()));
                            done.push(p.clone());
                        }
                        out.push(Action::Upload(p.clone()));
                    }
                }
            },
            // Both changed, differently.
            (true, true) => match (l, r) {
                (None, Some(Kind::File(_))) => out.push(Action::Download(p.clone())),
                (None, Some(Kind::Dir)) => out.push(Action::MkdirLocal(p.clone())),
                (Some(Kind::File(_)), None) => out.push(Action::Upload(p.clone())),
                (Some(Kind::Dir), None) => out.push(Action::MkdirRemote(p.clone())),
                (Some(_), Some(Kind::File(_))) => {
                    conflict(p, local, conflict_name, &mut out, &mut done);
                    out.push(Action::Download(p.clone()));
                }
                (Some(Kind::File(_)), Some(Kind::Dir)) => {
                    conflict(p, local, conflict_name, &mut out, &mut done);
                    out.push(Action::MkdirLocal(p.clone()));
                }
                (Some(Kind::Dir), Some(Kind::Dir)) | (None, None) => unreachable!("equal sides"),
            },
        }
    }
    detect_moves(base, local, remote, &mut out);
    out.sort_by_key(Action::phase);
    out
}

/// The local item at `p` keeps its bytes under a conflict name: rename it, then send it (a
/// folder with everything in it).
fn conflict(
    p: &str,
    local: &Tree,
    name: &dyn Fn(&str) -> String,
    out: &mut Vec<Action>,
    done: &mut Vec<String>,
) {
    let copy = name(p);
    out.push(Action::ConflictLocal { path: p.to_owned(), copy: copy.clone() });
    match local.get(p) {
        Some(Kind::Dir) => {
            out.push(Action::MkdirRemote(copy.clone()));
            for (q, k) in descendants(local, p) {
                let moved = format!("{copy}{}", &q[p.len()..]);
                out.push(match k {
                    Kind::Dir => Action::MkdirRemote(moved),
                    Kind::File(_) => Action::Upload(moved),
                });
            }
            done.push(p.to_owned());
        }
        _ => out.push(Action::Upload(copy)),
    }
}

/// A file deleted on one side and the same content created at a new path on that side is a
/// move: replay it as one on the other side instead of a delete and a transfer.
fn detect_moves(base: &Tree, local: &Tree, remote: &Tree, out: &mut Vec<Action>) {
    let mut pair = |deleted_is: fn(&Action) -> Option<&String>,
                    created_is: fn(&Action) -> Option<&String>,
                    side: &Tree,
                    other: &Tree,
                    remote_move: bool| {
        let mut i = 0;
        while i < out.len() {
            let Some(from) = deleted_is(&out[i]).cloned() else {
                i += 1;
                continue;
            };
            let Some(Kind::File(h)) = base.get(&from).filter(|k| other.get(&from) == Some(k)) else {
                i += 1;
                continue;
            };
            // Only a clean pair: nothing else in the plan touches the source's place.
            let clean = out
                .iter()
                .enumerate()
                .all(|(k, a)| k == i || a.paths().iter().all(|q| q.as_str() != from && !under(q, &from)));
            let found = out.iter().position(|a| {
                created_is(a).is_some_and(|to| {
                    side.get(to) == Some(&Kind::File(h.clone()))
                        && !other.contains_key(to)
                        && !under(to, &from)
                })
            });
            let found = found.filter(|_| clean);
            match found {
                Some(j) => {
                    let to = created_is(&out[j]).expect("matched").clone();
                    out[i] = if remote_move {
                        Action::MoveRemote { from, to }
                    } else {
                        Action::MoveLocal { from, to }
                    };
                    out.remove(j);
                    if j < i {
                        i -= 1;
                    }
                    i += 1;
                }
                None => i += 1,
            }
        }
    };
    fn del_remote(a: &Action) -> Option<&String> {
        if let Action::DeleteRemote(p) = a { Some(p) } else { None }
    }
    fn up(a: &Action) -> Option<&String> {
        if let Action::Upload(p) = a { Some(p) } else { None }
    }
    fn del_local(a: &Action) -> Option<&String> {
        if let Action::DeleteLocal(p) = a { Some(p) } else { None }
    }
    fn down(a: &Action) -> Option<&String> {
        if let Action::Download(p) = a { Some(p) } else { None }
    }
    pair(del_remote, up, local, remote, true);
    pair(del_local, down, remote, local, false);
}

/// `dir/name.ext` → `dir/name (conflict from DEVICE STAMP).ext`.
pub fn conflict_name(path: &str, device: &str, stamp: &str) -> String {
    let (dir, name) = match path.rsplit_once('/') {
        Some((d, n)) => (format!("{d}/"), n),
        None => (String::new(), path),
    };
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    format!("{dir}{stem} (conflict from {device} {stamp}){ext}")
}

/// The name for this account's copy of `name`, edited in `owner`'s share where it may only
/// read: placed at the top of the synced folder.
pub fn read_only_copy_name(name: &str, owner: &str, device: &str, stamp: &str) -> String {
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    format!("{stem} (not saved to {owner}'s share, from {device} {stamp}){ext}")
}

/// Apply `actions` to in-memory trees the way the executor applies them to the real sides.
#[cfg(test)]
pub fn simulate(actions: &[Action], local: &mut Tree, remote: &mut Tree) {
    fn parents(tree: &mut Tree, p: &str) {
        let mut at = 0;
        while let Some(i) = p[at..].find('/') {
            tree.insert(p[..at + i].to_owned(), Kind::Dir);
            at += i + 1;
        }
    }
    fn remove(tree: &mut Tree, p: &str) {
        tree.remove(p);
        tree.retain(|q, _| !under(q, p));
    }
    fn rename(tree: &mut Tree, from: &str, to: &str) {
        let moved: Vec<(String, Kind)> = tree
            .iter()
            .filter(|(q, _)| q.as_str() == from || under(q, from))
            .map(|(q, k)| (format!("{to}{}", &q[from.len()..]), k.clone()))
            .collect();
        remove(tree, from);
        parents(tree, to);
        tree.extend(moved);
    }
    for a in actions {
        match a {
            Action::ConflictLocal { path, copy } => rename(local, path, copy),
            Action::DeleteLocal(p) => remove(local, p),
            Action::DeleteRemote(p) => remove(remote, p),
            Action::MkdirLocal(p) => {
                parents(local, p);
                local.insert(p.clone(), Kind::Dir);
            }
            Action::MkdirRemote(p) => {
                parents(remote, p);
                remote.insert(p.clone(), Kind::Dir);
            }
            Action::MoveLocal { from, to } => rename(local, from, to),
            Action::MoveRemote { from, to } => rename(remote, from, to),
            Action::Download(p) => {
                if let Some(k) = remote.get(p).cloned() {
                    parents(local, p);
                    local.insert(p.clone(), k);
                }
            }
            Action::Upload(p) => {
                if let Some(k) = local.get(p).cloned() {
                    parents(remote, p);
                    remote.insert(p.clone(), k);
                }
            }
            Action::Record(_) | Action::Forget(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(p: &str) -> String {
        conflict_name(p, "dev", "2026-01-01 000000")
    }

    fn tree(items: &[(&str, Option<&str>)]) -> Tree {
        items.iter().map(|(p, h)| (p.to_string(), h.map_or(Kind::Dir, |h| Kind::File(h.into())))).collect()
    }

    #[test]
    fn conflict_names() {
        assert_eq!(
            conflict_name("a/report.pdf", "laptop", "2026-11-24 101500"),
            "a/report (conflict from laptop 2026-11-24 101500).pdf"
        );
        assert_eq!(conflict_name(".bashrc", "d", "s"), ".bashrc (conflict from d s)");
        assert_eq!(conflict_name("x/Makefile", "d", "s"), "x/Makefile (conflict from d s)");
    }

    #[test]
    fn both_edited_keeps_both() {
        let base = tree(&[("f.txt", Some("1"))]);
        let (mut l, mut r) = (tree(&[("f.txt", Some("L"))]), tree(&[("f.txt", Some("R"))]));
        let p = plan(&base, &l, &r, &name);
        simulate(&p, &mut l, &mut r);
        assert_eq!(l, r);
        assert_eq!(l.get("f.txt"), Some(&Kind::File("R".into())));
        assert_eq!(l.get(&name("f.txt")), Some(&Kind::File("L".into())));
    }

    #[test]
    fn deleted_folder_with_new_files_inside_keeps_them() {
        let base = tree(&[("d", None), ("d/old", Some("1"))]);
        let mut l = tree(&[]);
        let mut r = tree(&[("d", None), ("d/old", Some("1")), ("d/new", Some("2"))]);
        let p = plan(&base, &l, &r, &name);
        simulate(&p, &mut l, &mut r);
        assert_eq!(l, r);
        assert_eq!(l, tree(&[("d", None), ("d/new", Some("2"))]));
    }

    #[test]
    fn moves_are_moves() {
        let base = tree(&[("a", Some("1"))]);
        let l = tree(&[("b", Some("1"))]);
        let r = base.clone();
        assert_eq!(plan(&base, &l, &r, &name), vec![Action::MoveRemote { from: "a".into(), to: "b".into() }]);
        assert_eq!(plan(&base, &r, &l, &name), vec![Action::MoveLocal { from: "a".into(), to: "b".into() }]);
    }

    const NAMES: [&str; 4] = ["a", "b", "c.txt", "d"];

    fn arb_path() -> impl Strategy<Value = String> {
        prop::collection::vec(0..NAMES.len(), 1..4)
            .prop_map(|ix| ix.iter().map(|i| NAMES[*i]).collect::<Vec<_>>().join("/"))
    }

    #[derive(Debug, Clone)]
    enum Op {
        Write(String, u8),
        Mkdir(String),
        Delete(String),
        Rename(String, String),
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (arb_path(), any::<u8>()).prop_map(|(p, c)| Op::Write(p, c)),
            arb_path().prop_map(Op::Mkdir),
            arb_path().prop_map(Op::Delete),
            (arb_path(), arb_path()).prop_map(|(a, b)| Op::Rename(a, b)),
        ]
    }

    /// Apply an edit the way a file system would (a write needs its parent folders, which it
    /// creates; nothing may be inside a file).
    fn apply(tree: &mut Tree, op: &Op, tag: &str) {
        let blocked = |tree: &Tree, p: &str| {
            let mut at = 0;
            while let Some(i) = p[at..].find('/') {
                if matches!(tree.get(&p[..at + i]), Some(Kind::File(_))) {
                    return true;
                }
                at += i + 1;
            }
            false
        };
        match op {
            Op::Write(p, c) if !blocked(tree, p) && tree.get(p) != Some(&Kind::Dir) => {
                let one = vec![Action::Upload(p.clone())];
                let mut src: Tree = [(p.clone(), Kind::File(format!("{tag}{c}")))].into();
                simulate(&one, &mut src, tree);
            }
            Op::Mkdir(p) if !blocked(tree, p) && !tree.contains_key(p) => {
                simulate(&[Action::MkdirRemote(p.clone())], &mut Tree::new(), tree);
            }
            Op::Delete(p) => simulate(&[Action::DeleteRemote(p.clone())], &mut Tree::new(), tree),
            Op::Rename(a, b)
                if tree.contains_key(a)
                    && !tree.contains_key(b)
                    && !under(b, a)
                    && a != b
                    && !blocked(tree, b) =>
            {
                simulate(&[Action::MoveRemote { from: a.clone(), to: b.clone() }], &mut Tree::new(), tree);
            }
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn plans_converge_and_lose_no_edit(
            base_ops in prop::collection::vec(arb_op(), 0..12),
            local_ops in prop::collection::vec(arb_op(), 0..8),
            remote_ops in prop::collection::vec(arb_op(), 0..8),
        ) {
            let mut base = Tree::new();
            for op in &base_ops { apply(&mut base, op, "b"); }
            let (mut local, mut remote) = (base.clone(), base.clone());
            for op in &local_ops { apply(&mut local, op, "l"); }
            for op in &remote_ops { apply(&mut remote, op, "r"); }
            // Every content written on either side (an edit) must survive somewhere.
            let base_contents: BTreeSet<Kind> = base.values().cloned().collect();
            let edits: BTreeSet<Kind> = local.values().chain(remote.values())
                .filter(|k| matches!(k, Kind::File(_)) && !base_contents.contains(k)).cloned().collect();

            let p = plan(&base, &local, &remote, &name);
            // A file replacing a file is an overwrite (the server keeps the old one as a
            // version), never a delete and a new file.
            for a in &p {
                match a {
                    Action::DeleteRemote(q) => prop_assert!(remote.get(q) == Some(&Kind::Dir) || !p.contains(&Action::Upload(q.clone())), "{:?}", p),
                    Action::DeleteLocal(q) => prop_assert!(local.get(q) == Some(&Kind::Dir) || !p.contains(&Action::Download(q.clone())), "{:?}", p),
                    _ => {}
                }
            }
            let (mut l2, mut r2) = (local.clone(), remote.clone());
            simulate(&p, &mut l2, &mut r2);
            prop_assert_eq!(&l2, &r2, "plan {:?}", p);
            let after: BTreeSet<Kind> = l2.values().cloned().collect();
            for e in &edits {
                prop_assert!(after.contains(e), "edit {:?} lost by {:?}", e, p);
            }
            // Terminates: with the result as the new base, nothing is left to do.
            let again = plan(&l2, &l2, &r2, &name);
            prop_assert!(again.iter().all(|a| !a.is_work()), "second plan {:?}", again);
        }
    }
}
