#!/usr/bin/env python3
"""Checks docs/claims.md against the tree: every test it names exists, every
script or kept output it names exists, and every row of its tables names at
least one of them or says "no test yet". Also checks the test column of the
faults table in docs/reliability.md. Exit 1 with one line per problem.

Names, in backticks:
  `area::test`            fn test in tests/it/area.rs
  `src/x.rs::test`        fn test in that file (likewise tests/, xtask/)
  `a::b::test`            fn test somewhere under src/ (unit-test paths)
  `scripts/x`, `docs/..`  a file that exists"""
import os, re, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = re.compile(r"`([^`\s]+)`")


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def has_fn(text, name):
    return re.search(r"\bfn " + re.escape(name) + r"\s*[(<]", text) is not None


def src_texts():
    out = []
    for d, _, files in os.walk(os.path.join(ROOT, "src")):
        out += [open(os.path.join(d, f), encoding="utf-8").read() for f in files if f.endswith(".rs")]
    return out


def check_name(tok, areas, srcs):
    """None when `tok` is not a reference; else (ok, what)."""
    if tok.startswith(("scripts/", "docs/bench/")):
        return os.path.exists(os.path.join(ROOT, tok)), "file"
    m = re.match(r"^((?:src|tests|xtask)/[\w/]+\.rs)::(\w+)$", tok)
    if m:
        path, name = m.groups()
        if not os.path.exists(os.path.join(ROOT, path)):
            return False, "file"
        return has_fn(read(path), name), "test"
    m = re.match(r"^(\w+)::(\w+)$", tok)
    if m and m.group(1) in areas:
        return has_fn(read(f"tests/it/{m.group(1)}.rs"), m.group(2)), "test"
    m = re.match(r"^\w+(?:::\w+)+$", tok)
    if m and tok.split("::")[0] in ("acme", "alert", "store", "shutdown", "hooks", "renew", "probe", "cluster", "daemon", "cert", "config", "webroot"):
        name = tok.split("::")[-1]
        return any(has_fn(t, name) for t in srcs), "test"
    return None


def rows(text):
    for n, line in enumerate(text.splitlines(), 1):
        cells = [c.strip() for c in line.replace("\\|", "/").strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) >= 3 and not set(cells[0]) <= set("-: ") and cells[0] not in ("#", "test", "fault"):
            yield n, cells


def main():
    areas = {f[:-3] for f in os.listdir(os.path.join(ROOT, "tests/it")) if f.endswith(".rs")}
    srcs = src_texts()
    bad, claims, tested, partly, untested = [], 0, 0, 0, 0
    for n, cells in rows(read("docs/claims.md")):
        if not re.match(r"^[A-Z]+\d+$", cells[0]):
            continue
        claims += 1
        shown = cells[2]
        refs = 0
        for tok in TICK.findall(shown):
            r = check_name(tok, areas, srcs)
            if r is None:
                continue
            ok, what = r
            refs += 1
            if not ok:
                bad.append(f"docs/claims.md:{n}: {cells[0]}: {what} `{tok}` does not exist")
        gap = "no test yet" in shown or "not kept" in shown
        if gap and refs and "scripts/" not in shown:
            partly += 1
        elif gap:
            untested += 1
        elif refs:
            tested += 1
        else:
            bad.append(f"docs/claims.md:{n}: {cells[0]} names no test, script or kept output and does not say \"no test yet\"")
    # The faults table: its last column names tests.
    for n, cells in rows(read("docs/reliability.md")):
        for tok in TICK.findall(cells[-1]):
            r = check_name(tok, areas, srcs)
            if r is not None and not r[0]:
                bad.append(f"docs/reliability.md:{n}: {r[1]} `{tok}` does not exist")
    for b in bad:
        print(b)
    print(
        f"claims: {claims} rows: {tested} shown, {partly} shown in part (the rest: no test yet), "
        f"{untested} not shown (no test yet, or a figure whose output was not kept)",
        file=sys.stderr,
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
