#!/usr/bin/env python3
"""Checks the links in README.md and docs/*.md: every relative link points at
a file that exists, and every #anchor at a heading of the file it names.
With --fix, an anchor that moved to another docs file is rewritten to it.
Exit 1 with one line per broken link."""
import os, re, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = ["README.md"] + sorted("docs/" + f for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md"))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(title):
    s = title.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path):
    out, fence = set(), False
    for line in open(os.path.join(ROOT, path), encoding="utf-8"):
        if line.startswith("```"):
            fence = not fence
        m = None if fence else re.match(r"^#{1,6} (.*)", line)
        if m:
            out.add(slug(m.group(1)))
    return out


def main(fix):
    heads = {f: anchors(f) for f in FILES}
    bad = []
    for f in FILES:
        text = open(os.path.join(ROOT, f), encoding="utf-8").read()
        base = os.path.dirname(f)

        def check(m):
            target = m.group(1)
            if re.match(r"^[a-z]+:", target):
                return m.group(0)
            path, _, anchor = target.partition("#")
            full = os.path.normpath(os.path.join(base, path)) if path else f
            if not os.path.exists(os.path.join(ROOT, full)):
                bad.append(f"{f}: link to missing file {target}")
                return m.group(0)
            if anchor and full.endswith(".md") and anchor not in heads.get(full, anchors(full)):
                owners = [g for g in FILES if anchor in heads[g]]
                if fix and len(owners) == 1:
                    rel = os.path.relpath(owners[0], base or ".")
                    return "](" + rel + "#" + anchor + ")"
                bad.append(f"{f}: link to missing heading {target}")
            return m.group(0)

        new = LINK.sub(check, text)
        if fix and new != text:
            open(os.path.join(ROOT, f), "w", encoding="utf-8").write(new)
    for b in bad:
        print(b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main("--fix" in sys.argv))
