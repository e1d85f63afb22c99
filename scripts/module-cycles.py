#!/usr/bin/env python3
"""Fail if a crate's modules import each other in a circle.

For every workspace crate, each module (a file under src/) gets an edge to every module it
names through `crate::` or `super::` paths; edges between a module and its own ancestors
(a `mod.rs` dispatching to its children, a child using its parent's helpers) do not count.
A strongly connected set of two or more modules is a cycle. Cycles listed in
scripts/module-cycles-known.txt (one per line, modules sorted, space-separated) are reported
and tolerated until the layering work removes them; any other fails the run, and so does a
listed cycle that no longer exists (so the list only shrinks).
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP = re.compile(r"\buse\s+(crate|super)::\{([^;]*)\};", re.S)


def modules(src):
    """Module path (tuple) -> file, for every .rs file under src."""
    out = {}
    for f in src.rglob("*.rs"):
        parts = list(f.relative_to(src).with_suffix("").parts)
        if parts[-1] in ("lib", "main", "mod"):
            parts = parts[:-1]
        if parts and parts[0] == "bin":
            continue
        out[tuple(parts)] = f
    return out


def strip_tests(text):
    """The text before a `#[cfg(test)] mod tests` (test code may reach anywhere)."""
    m = re.search(r"#\[cfg\(test\)\]\s*mod\s+tests", text)
    return text[: m.start()] if m else text


def references(text):
    """(root, [segments]) of every crate:: or super:: path, `use` groups expanded one level."""
    for m in USE_GROUP.finditer(text):
        for item in re.split(r",", m.group(2)):
            name = item.strip().split("::")[0].strip("{} \n")
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or ""):
                yield m.group(1), [name]
    for m in PATH.finditer(text):
        yield m.group(1), [s for s in m.group(2).split("::") if s]


def resolve(mods, here, root, segs):
    """The module a `crate::`/`super::` path names: its longest prefix that is a module."""
    base = []
    if root == "super":
        base = list(here[:-1])
        while segs and segs[0] == "super":
            base, segs = base[:-1], segs[1:]
    path = base + segs
    for n in range(len(path), 0, -1):
        if tuple(path[:n]) in mods:
            return tuple(path[:n])
    return None


def cycles(crate_dir):
    src = crate_dir / "src"
    mods = modules(src)
    edges = {m: set() for m in mods}
    for m, f in mods.items():
        text = strip_tests(f.read_text())
        for root, segs in references(text):
            t = resolve(mods, m, root, segs)
            if t is None or t == m or t == m[: len(t)] or m == t[: len(m)]:
                continue
            edges[m].add(t)
    # Tarjan's strongly connected components.
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted("::".join(c) for c in comp))

    sys.setrecursionlimit(10000)
    for v in mods:
        if v not in index:
            visit(v)
    return out


def main():
    members = re.search(r"members\s*=\s*\[([^\]]*)\]", (ROOT / "Cargo.toml").read_text()).group(1)
    crates = re.findall(r'"([^"]+)"', members)
    known_file = ROOT / "scripts" / "module-cycles-known.txt"
    known = set()
    for line in known_file.read_text().splitlines() if known_file.exists() else []:
        line = line.split("#")[0].strip()
        if line:
            known.add(line)
    found, bad = set(), []
    for c in crates:
        for comp in cycles(ROOT / c):
            key = f"{c}: " + " ".join(comp)
            found.add(key)
            if key not in known:
                bad.append(key)
    for k in sorted(found & known):
        print(f"known cycle (to be removed): {k}", file=sys.stderr)
    gone = sorted(known - found)
    for k in gone:
        print(f"error: {k} is no longer a cycle: remove it from {known_file.name}", file=sys.stderr)
    for k in bad:
        print(f"error: modules in a cycle: {k}", file=sys.stderr)
    sys.exit(1 if bad or gone else 0)


if __name__ == "__main__":
    main()
