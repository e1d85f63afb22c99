#!/usr/bin/env python3
"""Every metric the shipped dashboard and alert rules name must be one cairnd exports.

    scripts/check-metric-names.py EXPOSITION_FILE FILE...

EXPOSITION_FILE is a scrape of /metrics; each FILE (a Grafana dashboard JSON or a rules
YAML) is searched for `cairn_...` names. A histogram `x` exports `x_bucket`, `x_count` and
`x_sum`. Prints each unknown name with its file and exits 1 if there is any."""
import re
import sys

exposition = open(sys.argv[1]).read()
known = set()
for line in exposition.splitlines():
    m = re.match(r"# TYPE (\S+) (\S+)", line)
    if m:
        name, kind = m.groups()
        known.add(name)
        if kind == "histogram":
            known.update({name + "_bucket", name + "_count", name + "_sum"})
    elif line and not line.startswith("#"):
        known.add(re.split(r"[{ ]", line, maxsplit=1)[0])
bad = 0
for path in sys.argv[2:]:
    names = set(re.findall(r"\bcairn_[a-z0-9_]+", open(path).read()))
    for name in sorted(names - known):
        print(f"{path}: {name} is not exported by cairnd")
        bad += 1
    print(f"{path}: {len(names)} metric names, {len(names) - len([n for n in names if n not in known])} exported")
sys.exit(1 if bad else 0)
