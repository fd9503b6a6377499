#!/usr/bin/env python3
"""An independent implementation of code hash v1, written from docs/code-hash-v1.md only.

Usage: codehash_ref.py [--list] [--salt SALT] REPO PATTERN...

It must print the same hash (and, with --list, the same records) as
`s3-asset-manager hash`; tests/it/codehash.rs checks that on a generated tree.
"""
import hashlib
import os
import re
import stat
import sys

TAG = b"s3-asset-manager code-hash v1\0"


def normalise(p):
    segs = []
    for s in p.split("/"):
        if s in ("", "."):
            continue
        if s == "..":
            raise SystemExit(f"invalid pattern {p!r}")
        if s == "**" and segs and segs[-1] == "**":
            continue
        segs.append(s)
    return "/".join(segs) if segs else "**"


def segment_regex(seg):
    out, i = "", 0
    while i < len(seg):
        c = seg[i]
        if c == "\\":
            out += re.escape(seg[i + 1])
            i += 2
        elif c == "*":
            out += "[^/]*"
            i += 1
        elif c == "?":
            out += "[^/]"
            i += 1
        elif c == "[":
            j = i + 1
            neg = seg[j] in "!^"
            if neg:
                j += 1
            members = ""
            if seg[j] == "]":
                members += "\\]"
                j += 1
            while seg[j] != "]":
                ch = seg[j]
                members += ch if ch == "-" else re.escape(ch)
                j += 1
            out += "[" + ("^" if neg else "") + members + "]"
            i = j + 1
        elif c == "{":
            j = seg.index("}", i)
            alts = seg[i + 1 : j].split(",")
            out += "(?:" + "|".join(segment_regex(a) for a in alts) + ")"
            i = j + 1
        else:
            out += re.escape(c)
            i += 1
    return out


def pattern_regex(p):
    parts = [None if s == "**" else segment_regex(s) for s in p.split("/")]
    r = ""
    last = len(parts) - 1
    for i, part in enumerate(parts):
        if part is None:
            if i == 0 and i == last:
                r += ".*"
            elif i == 0:
                r += "(?:.*/)?"
            elif i == last:
                r += "/.*"
            else:
                r += "/(?:.*/)?"
        else:
            if i > 0 and parts[i - 1] is not None:
                r += "/"
            r += part
    return re.compile(r, re.S)


def included(path, regexes):
    # A file is included when its path, or the path of one of its ancestor directories,
    # matches a pattern.
    segs = path.split("/")
    for n in range(1, len(segs) + 1):
        prefix = "/".join(segs[:n])
        if any(rx.fullmatch(prefix) for rx in regexes):
            return True
    return False


def walk(repo):
    for dirpath, dirnames, filenames in os.walk(repo, followlinks=False):
        entries = list(filenames)
        keep = []
        for d in dirnames:
            if os.path.islink(os.path.join(dirpath, d)):
                entries.append(d)  # a symlink to a directory is a record, never entered
            elif d != ".git":
                keep.append(d)
        dirnames[:] = keep
        for name in entries:
            if name == ".git":
                continue
            full = os.path.join(dirpath, name)
            yield os.path.relpath(full, repo).replace(os.sep, "/"), full


def record(full):
    st = os.lstat(full)
    if stat.S_ISLNK(st.st_mode):
        data = os.fsencode(os.readlink(full))
        kind = "l"
    elif stat.S_ISREG(st.st_mode):
        with open(full, "rb") as f:
            data = f.read()
        kind = "x" if st.st_mode & 0o100 else "f"
    else:
        return None
    return kind, len(data), hashlib.sha256(data).hexdigest()


def main(argv):
    listing = "--list" in argv
    argv = [a for a in argv if a != "--list"]
    salt = ""
    if argv[0] == "--salt":
        salt, argv = argv[1], argv[2:]
    repo, raw = argv[0], argv[1:]
    patterns = sorted(set(normalise(p) for p in raw), key=lambda p: p.encode())
    regexes = [pattern_regex(p) for p in patterns]
    records = []
    for rel, full in walk(repo):
        if included(rel, regexes):
            r = record(full)
            if r:
                records.append((os.fsencode(rel), r))
    records.sort(key=lambda x: x[0])
    if not records:
        raise SystemExit("no match")
    h = hashlib.sha256(TAG)
    for p in patterns:
        h.update(b"p " + p.encode() + b"\0")
    h.update(b"s " + salt.encode() + b"\0")
    for path, (kind, size, digest) in records:
        h.update(f"{kind} {size} {digest} ".encode() + path + b"\0")
        if listing:
            print(f"{kind} {size} {digest} {os.fsdecode(path)}")
    print(h.hexdigest())


if __name__ == "__main__":
    main(sys.argv[1:])
