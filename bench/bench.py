#!/usr/bin/env python3
"""The benchmark harness: this tool against s5cmd and the AWS CLI, side by side, in one run.

Run through bench/run, which starts Garage the way the tests do and exports S3AM_TEST_*.
Every workload runs for each tool in turn, interleaved, for several repetitions; the table
reports medians and this tool's median divided by the fastest peer's.

Profiles: `loopback` talks to Garage directly; `region` and `remote` put bench/wanproxy.py
between every tool and Garage (15 and 40 ms each way, 100 MB/s per direction per connection).
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

    bench/run [--profile loopback|region|remote|far|all|LIST] [--reps N] [--wan-reps N]
              [--only NAME,...] [--quick] [--trace DIR] [--store-cpus LIST --tool-cpus LIST]
"""
import argparse
import hashlib
import http.client
import json
import os
import random
import re
import shutil
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


AWS = (PREBUILT / "aws" if (PREBUILT / "aws").exists() else None) if PREBUILT else VENV / "bin/aws"
PROXY = REPO / "bench/wanproxy.py"
RUSAGE = PREBUILT / "bench-rusage" if PREBUILT else CACHE / "bench-rusage"  # built from bench/rusage.c
# The peers each workload compares against: the AWS CLI only where it is there.
PEER_TOOLS = ["s5cmd"] + (["aws"] if AWS else [])
# --trace DIR: this tool's uploads and downloads each write an S3AM_TRACE file there.
TRACE_DIR: Optional[Path] = None
MIB = 1 << 20
# name: (one-way delay in ms, cap per direction per connection in MB/s), None for no proxy
PROFILES = {"loopback": None, "region": (15, 100), "remote": (40, 100), "far": (400, 100)}
# What `--profile all` runs: `far` is a diagnostic, asked for by name.
ALL = ["loopback", "region", "remote"]
# Processes whose CPU time each run records: Garage (bench/run exports GARAGE_PID) and the proxy.
PIDS = {"store": os.environ.get("GARAGE_PID"), "proxy": None}


class Store(NamedTuple):
    """An S3 server the harness measures against."""
    name: str
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    pid: Optional[str]


GARAGE = Store("Garage 2.5.0", os.environ.get("S3AM_TEST_ENDPOINT", ""), os.environ.get("S3AM_TEST_ACCESS_KEY", ""),
               os.environ.get("S3AM_TEST_SECRET_KEY", ""), "garage", os.environ.get("GARAGE_PID"))
# SeaweedFS, when bench/run started it: it enforces conditional writes.
SEAWEEDFS = (Store("SeaweedFS 4.48", os.environ["S3AM_BENCH_SEAWEEDFS_ENDPOINT"], os.environ["S3AM_BENCH_SEAWEEDFS_ACCESS_KEY"],
                   os.environ["S3AM_BENCH_SEAWEEDFS_SECRET_KEY"], "us-east-1", os.environ.get("S3AM_BENCH_SEAWEEDFS_PID"))
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


class Env:
    def __init__(self, work: Path, endpoint: str, store: Store = GARAGE):
        # The timed commands use `endpoint` (the proxy in a WAN profile); setup goes direct.
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
        # Tuning knobs (S3AM_CONCURRENCY, S3AM_PART_SIZE, ..., glibc's MALLOC_ARENA_MAX and
        # tokio's TOKIO_WORKER_THREADS) pass through to this tool.
        knobs = {k: v for k, v in os.environ.items()
                 if k in ("MALLOC_ARENA_MAX", "TOKIO_WORKER_THREADS")
                 or k.startswith("S3AM_") and not k.startswith(("S3AM_TEST_", "S3AM_CACHE_DIR", "S3AM_BENCH"))}
        self.ours = dict(self.base, AWS_ENDPOINT_URL=self.endpoint, S3AM_PATH_STYLE="true", **knobs)
        self.ours_direct = dict(self.ours, AWS_ENDPOINT_URL=self.direct)

    def bucket(self, name):
        # A fresh name per run, so bench.py can run again against the same Garage.
        name = f"{name}-{random.getrandbits(32):08x}"
        self.s5(["mb", f"s3://{name}"], direct=True)
        return name

    def aws(self, args, quiet=False, direct=False):
        return run([str(AWS), "--endpoint-url", self.direct if direct else self.endpoint] + args, self.base, quiet=quiet)

    def s5(self, args, direct=False):
        return run([str(s5cmd_bin()), "--endpoint-url", self.direct if direct else self.endpoint] + args, self.base)


class Run(NamedTuple):
    seconds: float
    rss_kb: int
    stderr: str
    cpu: float  # the tool's user + system CPU seconds
    store_cpu: Optional[float]  # Garage's CPU seconds over the same interval, when known
    proxy_cpu: Optional[float]  # the WAN proxy's, when there is one


def proc_cpu(pid):
    """A process's user + system CPU seconds so far, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (TypeError, OSError, ValueError, IndexError):
        return None


def run(cmd, env, cwd=None, quiet=True, stdin=None):
    """Runs a command after flushing dirty pages, so that no run pays for the writeback of the
    one before it; returns its wall time, peak RSS, stderr and CPU, and the store's and the
    proxy's CPU over the same interval."""
    os.sync()
    # Through bench/rusage.c, which forks the command itself: a command this Python starts
    # directly reports at least the harness's own peak RSS as its ru_maxrss.
    with tempfile.TemporaryFile() as inp, tempfile.NamedTemporaryFile("r", prefix="s3am-rusage.") as report:
        if stdin is not None:
            inp.write(stdin)
            inp.seek(0)
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
        line = report.read().split()
        drain.join()
    err = b"".join(chunks).decode(errors="replace")
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0 or len(line) != 4:
        raise SystemExit(f"benchmark command failed ({p.returncode}): {' '.join(map(str, cmd))}\n{err[-2000:]}")
    wall_ns, rss_kb, user_us, sys_us = map(int, line)
    d = {k: after[k] - before[k] if before[k] is not None and after[k] is not None else None for k in PIDS}
    return Run(wall_ns / 1e9, rss_kb, err, (user_us + sys_us) / 1e6, d["store"], d["proxy"])


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
    slug = re.sub(r"[^a-z0-9]+", "-", workload.lower()).strip("-")
    return dict(env, S3AM_TRACE=str(TRACE_DIR / f"{slug}-{rep}.json"))


def package(work: Path, name: str, src: Path, commit: str) -> Path:
    """A package directory for `upload`: the assets (hard links) plus .commit-hash."""
    pkg = work / f"pkg-{name}"
    shutil.rmtree(pkg, ignore_errors=True)
    shutil.copytree(src, pkg, copy_function=os.link)
    (pkg / ".commit-hash").write_text(commit)
    return pkg


class Results:
    def __init__(self):
        self.rows = []

    def add(self, workload, tool, seconds, extra=None):
        self.rows.append((workload, tool, seconds, extra or {}))

    def add_run(self, workload, tool, r: Run, extra=None):
        self.add(workload, tool, r.seconds, dict(extra or {}, rss_kb=r.rss_kb, cpu=r.cpu, store_cpu=r.store_cpu, proxy_cpu=r.proxy_cpu))
        store = f", store CPU {r.store_cpu:5.2f} s" if r.store_cpu is not None else ""
        proxy = f", proxy CPU {r.proxy_cpu:5.2f} s" if r.proxy_cpu is not None else ""
        log(f"    {workload:32} {tool:18} {r.seconds:7.3f} s  CPU {r.cpu:5.2f} s{store}{proxy}  peak RSS {r.rss_kb / 1024:.0f} MB")

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


def bench_uploads(env, res, reps, files_big, dir_small):
    b = env.bucket("bench-up")
    for name, src in [("upload one 1 GiB file", files_big), ("upload 2,000 files of 64 KiB", dir_small)]:
        # One untimed upload first: Garage stores blocks by content, so the first copy of
        # these bytes costs it more disk work than any later one (10.2 s of its CPU against
        # about 6 s for the 1 GiB file), and that cost would fall on whichever tool drew rep 0.
        env.s5(["cp", f"{src}/*", f"s3://{b}/warm-up/"], direct=True)
        for rep in range(reps):
            tools = ["s3-asset-manager"] + PEER_TOOLS
            random.shuffle(tools)
            for tool in tools:
                key = f"{tool}-{rep}-{random.getrandbits(32):x}"
                if tool == "s3-asset-manager":
                    pkg = package(env.work, "up", src, fake_commit())
                    e = traced(dict(env.ours, PACKAGE_ASSETS_BUCKET=b, PACKAGE_DIRECTORY=str(pkg)), name, rep)
                    r = run([str(BIN), "upload", "-q"], e)
                elif tool == "s5cmd":
                    r = env.s5(["cp", f"{src}/*", f"s3://{b}/{key}/"])
                else:
                    r = env.aws(["s3", "cp", "--recursive", "--quiet", str(src), f"s3://{b}/{key}/"])
                res.add_run(name, tool, r)


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
            res.add_run(names[caching], "s3-asset-manager", run([str(BIN), "upload", "-q"], e))


def bench_publish_seaweedfs(work, shape, store_cpus, res, reps, src):
    """The small publishes again, against SeaweedFS (through a proxy of the same shape): its
    CPU is counted as the store's while they run."""
    garage_proxy = PIDS["proxy"]
    proxy = Proxy(work, shape[0], shape[1], store_cpus, SEAWEEDFS) if shape else None
    PIDS["store"] = SEAWEEDFS.pid
    try:
        env = Env(work, proxy.endpoint if proxy else SEAWEEDFS.endpoint, SEAWEEDFS)
        # SeaweedFS enforces If-None-Match, and is said to, as AWS S3 is taken to without a
        # word: the publish writes its objects first.
        enforced = {"S3AM_CONDITIONAL_WRITES_ENFORCED": "true"}
        bench_publish(env, res, reps, src, {False: PUB_OFF_SW, True: PUB_ON_SW}, enforced)
    finally:
        PIDS["store"] = GARAGE.pid
        if proxy:
            proxy.stop()
        PIDS["proxy"] = garage_proxy


def bench_downloads(env, res, reps, files_big, dir_small):
    b = env.bucket("bench-down")
    for name, src in [("download (verified) 1 GiB set", files_big), ("download (verified) 2,000-file set", dir_small)]:
        commit = fake_commit()
        publish(env, b, src, commit)
        kept = []
        for rep in range(reps):
            tools = ["s3-asset-manager"] + PEER_TOOLS
            random.shuffle(tools)
            for tool in tools:
                # A fresh directory each time. Many small files are deleted only after the
                # workload: on ext4, creating files right after deleting thousands makes the
                # inode allocator skip the recently freed ones, at a cost that lands on whichever
                # tool runs next.
                dest = env.work / f"down-{tool}-{rep}"
                dest.mkdir()
                if tool == "s3-asset-manager":
                    e = traced(dict(env.ours, PACKAGE_ASSETS_BUCKET=b), name, rep)
                    r = run([str(BIN), "fetch", "-q", "--commit", commit, "--dest", str(dest)], e)
                elif tool == "s5cmd":
                    r = env.s5(["cp", f"s3://{b}/artifacts/{commit}/*", f"{dest}/"])
                else:
                    r = env.aws(["s3", "cp", "--recursive", "--quiet", f"s3://{b}/artifacts/{commit}/", str(dest)])
                res.add_run(name, tool, r)
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
    up, down = f"upload {MANY:,} files of 1 KiB", f"download (verified) {MANY:,}-file set"
    commit = fake_commit()
    publish(env, b, src, commit)
    kept = []
    for rep in range(reps):
        tools = ["s3-asset-manager", "s5cmd"]
        random.shuffle(tools)
        for tool in tools:
            if tool == "s3-asset-manager":
                pkg = package(env.work, "many", src, fake_commit())
                res.add_run(up, tool, run([str(BIN), "upload", "-q"], dict(env.ours, PACKAGE_ASSETS_BUCKET=b, PACKAGE_DIRECTORY=str(pkg))))
            else:
                res.add_run(up, tool, env.s5(["cp", f"{src}/*", f"s3://{b}/{tool}-{rep}/"]))
            dest = env.work / f"many-{tool}-{rep}"
            dest.mkdir()
            if tool == "s3-asset-manager":
                r = run([str(BIN), "fetch", "-q", "--commit", commit, "--dest", str(dest)], dict(env.ours, PACKAGE_ASSETS_BUCKET=b))
            else:
                r = env.s5(["cp", f"s3://{b}/artifacts/{commit}/*", f"{dest}/"])
            res.add_run(down, tool, r)
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
    name = "cache restore of the 2,000-file set (server-side copy)"
    for rep in range(reps):
        tools = ["s3-asset-manager"] + PEER_TOOLS
        random.shuffle(tools)
        for tool in tools:
            if tool == "s3-asset-manager":
                (repo / "NOTES").write_text(f"{rep} {random.random()}\n")
                subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=g)
                subprocess.run(["git", "-C", str(repo), "commit", "-qm", "n"], check=True, env=g)
                shutil.rmtree(pk, ignore_errors=True)
                r = run([str(BIN), "check", "-q", "--package-dir", str(pk)], e)
                assert (pk / ".found").exists(), "the restore did not happen"
            elif tool == "s5cmd":
                r = env.s5(["cp", f"s3://{b}/cache/{code_hash}/*", f"s3://{b}/s5-{rep}/"])
            else:
                r = env.aws(["s3", "cp", "--recursive", "--quiet", f"s3://{b}/cache/{code_hash}/", f"s3://{b}/aws-{rep}/"])
            res.add_run(name, tool, r)


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
    name = "check when the set exists"
    for rep in range(max(reps, 5)):
        for tool in ["s3-asset-manager"] + (["aws s3api head-object"] if AWS else []):
            pk = env.work / "check-pk"
            shutil.rmtree(pk, ignore_errors=True)
            if tool == "s3-asset-manager":
                r = run([str(BIN), "check", "-q", "--package-dir", str(pk)], e)
                assert (pk / ".found").exists()
            else:
                r = env.aws(["s3api", "head-object", "--bucket", b, "--key", f"artifacts/{commit}/.manifest.json"])
            res.add_run(name, tool, r)


def bench_resource_check(env, res, reps):
    b = env.bucket("bench-index")
    # 10,000 older sets in the index, copied up as a tree of empty files by s5cmd.
    tree = env.work / "index-tree"
    (tree / "index").mkdir(parents=True, exist_ok=True)
    for i in range(10_000):
        (tree / "index" / f"{9_000_000_000_000 + i:013}-{i:040x}").write_bytes(b"")
    env.s5(["cp", f"{tree}/*", f"s3://{b}/"], direct=True)
    shutil.rmtree(tree)
    src = env.work / "one-file"
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
        res.add_run(name, "s3-asset-manager", r, {"requests": requests})
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
        "s3-asset-manager": [str(BIN), "hash", "--repo", str(tree), "--filter", "."],
        "find + xargs -P2 sha256sum": ["sh", "-c", f"find {tree} -type f -print0 | xargs -0 -P2 -n 500 sha256sum >/dev/null"],
    }
    for c in cmds.values():
        run(c, env.base)  # warm the page cache
    for rep in range(reps):
        for tool, c in cmds.items():
            res.add(name, tool, run(c, env.base).seconds)
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


UP_BIG, UP_SMALL = "upload one 1 GiB file", "upload 2,000 files of 64 KiB"
DOWN_BIG, DOWN_SMALL = "download (verified) 1 GiB set", "download (verified) 2,000-file set"
RESTORE = "cache restore of the 2,000-file set (server-side copy)"
CHECK = "check when the set exists"
PUB_OFF, PUB_ON = "publish 5 files of 64 KiB, caching off", "publish 5 files of 64 KiB, caching on"
PUB_OFF_SW, PUB_ON_SW = PUB_OFF + ", SeaweedFS", PUB_ON + ", SeaweedFS"
INDEX = "resource check, 10,000 sets, nothing new"
# Whole-process latencies: shown in ms and, through the proxy, as round trips (wall / (2 x delay)).
LATENCY = (CHECK, PUB_OFF, PUB_ON, PUB_OFF_SW, PUB_ON_SW, INDEX)


def target(profile, w, rt):
    """Issues 11's and 18's target for a workload in a profile: (text, test(ours seconds, ratio)), or None."""
    if profile == "far":
        return None  # a diagnostic: no target was set this far away
    if w == DOWN_BIG:
        # Issue 18: verified, as fast as s5cmd's unverified download near the store, and well
        # ahead of it far away.
        return ("≤ 0.6", lambda o, r: r <= 0.6) if rt else ("≤ 1.0", lambda o, r: r <= 1.0)
    if w in (UP_BIG, UP_SMALL, DOWN_SMALL):
        return "≤ 0.8", lambda o, r: r <= 0.8
    if w == RESTORE:
        return ("≤ 0.8", lambda o, r: r <= 0.8) if rt else ("≤ 0.5", lambda o, r: r <= 0.5)
    if w.startswith("code hash"):
        return "≤ 0.5", lambda o, r: r <= 0.5
    if profile == "loopback" and w == CHECK:
        return "≤ 50 ms", lambda o, r: o <= 0.050
    if profile == "remote":
        # Issue 18: a store that enforces If-None-Match (SeaweedFS, said to with
        # S3AM_CONDITIONAL_WRITES_ENFORCED) lets a small set's publish write first: 2 round trips.
        for name, trips, slack in [(CHECK, 1, 20), (PUB_OFF, 3, 50), (PUB_ON, 4, 50), (PUB_OFF_SW, 2, 50), (PUB_ON_SW, 2, 50)]:
            if w == name:
                limit = trips * rt + slack / 1000
                plural = "s" if trips > 1 else ""
                return f"≤ {trips} round trip{plural} + {slack} ms = {limit * 1000:.0f} ms", lambda o, r, limit=limit: o <= limit
    return None


def fmt_time(w, t):
    return f"{t * 1000:.0f} ms" if w in LATENCY else f"{t:.2f} s"


def table(profile, res, requests, size_mb, scaling, cpus):
    """One profile's tables. cpus: (tool cores, store cores), the same number when unpinned."""
    wan = PROFILES[profile] is not None
    rt = 2 * PROFILES[profile][0] / 1000 if wan else 0.0
    head = "| workload | s3-asset-manager | peak RSS | fastest peer | ratio |" + (" round trips |" if wan else "") + " target | met |" + (" proxy CPU |" if wan else "")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    seen = []
    for w, *_ in res.rows:
        if w not in seen:
            seen.append(w)
    for w in seen:
        m = res.medians(w)
        if "s3-asset-manager" not in m:
            continue
        ours = m.pop("s3-asset-manager")
        rss = res.peak(w, "s3-asset-manager", "rss_kb")
        rss = f"{rss / 1024:.0f} MB" if rss else ""
        shown = fmt_time(w, ours)
        if w == INDEX:
            shown += f", {requests} requests"
        peer, pt = "", None
        if w == RESTORE and not wan and "aws" in m:
            # On loopback the issue measured the restore against `aws s3 cp --recursive` S3-to-S3.
            others = ", ".join(f"{t} {fmt_time(w, v)}" for t, v in m.items() if t != "aws")
            peer, pt = f"aws (also {others})", m["aws"]
        elif w == RESTORE and "s5cmd" in m:
            # Through the proxy, issue 11 measures it against s5cmd's S3-to-S3 cp.
            others = ", ".join(f"{t} {fmt_time(w, v)}" for t, v in m.items() if t != "s5cmd")
            peer, pt = f"s5cmd (also {others})", m["s5cmd"]
        elif m:
            peer, pt = min(m.items(), key=lambda kv: kv[1])
        ratio = ours / pt if pt else None
        if pt:
            peer = f"{peer} {fmt_time(w, pt)}"
        t = target(profile, w, rt)
        if w == INDEX and profile == "loopback":
            t = ("≤ 100 ms, ≤ 3 requests", lambda o, r: o <= 0.100 and requests <= 3)
        met = "" if t is None else ("yes" if t[1](ours, ratio if ratio is not None else 0) else "no")
        row = f"| {w} | {shown} | {rss} | {peer} | {'' if ratio is None else f'{ratio:.2f}'} |"
        if wan:
            row += f" {ours / rt:.1f} |" if w in LATENCY else " |"
        row += f" {t[0] if t else ''} | {met} |"
        if wan:
            px = res.medians(w, "proxy_cpu").get("s3-asset-manager")
            row += f" {px:.2f} s ({px / ours * 100:.0f} % of a core) |" if px is not None else " |"
        lines.append(row)
    peak = max((x["rss_kb"] for w, t, _, x in res.rows if t == "s3-asset-manager" and x.get("rss_kb")), default=None)
    pad = " |" if wan else ""
    if peak is not None:
        lines.append(f"| peak RSS, any workload | {peak / 1024:.0f} MB | | | |{pad} ≤ 64 MB | {'yes' if peak <= 64 * 1024 else 'no'} |{pad}")
    if size_mb is not None:
        lines.append(f"| stripped release binary the image ships | {size_mb:.1f} MB | | | |{pad} ≤ 30 MB | {'yes' if size_mb <= 30 else 'no'} |{pad}")
    tool_cores, store_cores, pinned = cpus
    cpu_rows = []
    for w in seen:
        cpu, store, proxy, wall = res.medians(w, "cpu"), res.medians(w, "store_cpu"), res.medians(w, "proxy_cpu"), res.medians(w)
        for tool in sorted(cpu, key=lambda t: t != "s3-asset-manager"):
            if tool in store:
                px = proxy.get(tool, 0.0)
                if pinned:
                    floor = max(cpu[tool] / tool_cores, (store[tool] + px) / store_cores)
                else:
                    floor = (cpu[tool] + store[tool] + px) / tool_cores
                row = f"| {w} | {tool} | {fmt_time(w, wall[tool])} | {cpu[tool]:.2f} s | {store[tool]:.2f} s |"
                row += f" {px:.2f} s |" if wan else ""
                cpu_rows.append(row + f" {floor:.2f} s |")
    if cpu_rows:
        what = "the CPU Garage" + (" and the proxy" if wan else "")
        if pinned:
            floor_text = ("The store side (Garage" + (" and the proxy" if wan else "") + f") has {store_cores} core(s) of its own and the tools {tool_cores} other(s), "
                          "so no run can take less wall time than the larger of the tool's CPU over its cores and the store side's over its own (the last column).")
            last = "max(tool ÷ tool cores, store side ÷ store cores)"
        else:
            floor_text = ("Garage" + (" and the proxy run" if wan else " runs") + " on the same cores, so no run can take less wall time than "
                          "all of it added together and divided by the cores (the last column).")
            last = "(tool + store" + (" + proxy" if wan else "") + ") ÷ cores"
        lines += [
            "",
            f"Where the time goes: the CPU each tool used and {what} used serving it (medians; the store is SeaweedFS in the rows that say so). {floor_text}",
            "",
            "| workload | tool | wall | tool CPU | store CPU |" + (" proxy CPU |" if wan else "") + f" {last} |",
            "|" + "---|" * (7 if wan else 6),
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


def round_trip(port, n=10):
    """Median seconds of a small HTTP request to 127.0.0.1:port on a kept connection."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/")
    c.getresponse().read()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        c.request("GET", "/")
        c.getresponse().read()
        times.append(time.perf_counter() - start)
    c.close()
    return statistics.median(times)


class Proxy:
    """bench/wanproxy.py in front of Garage for one profile, on the store's cores when pinned."""

    def __init__(self, work, delay_ms, rate_mbps, store_cpus, store: Store = GARAGE):
        self.stats_file = work / f"proxy-{delay_ms}-{store.region}.json"
        upstream = urllib.parse.urlsplit(store.endpoint).netloc
        cmd = [sys.executable, str(PROXY), "--upstream", upstream, "--delay-ms", str(delay_ms),
               "--rate-mbps", str(rate_mbps), "--stats", str(self.stats_file)]
        if store_cpus:
            cmd = ["taskset", "-c", store_cpus] + cmd
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        self.port = int(self.p.stdout.readline())
        self.endpoint = f"http://127.0.0.1:{self.port}"
        PIDS["proxy"] = self.p.pid
        self.rtt = round_trip(self.port)
        self.direct_rtt = round_trip(urllib.parse.urlsplit(store.endpoint).port)

    def stop(self):
        PIDS["proxy"] = None
        self.p.terminate()
        self.p.wait()
        return json.loads(self.stats_file.read_text())


def merge_results(out: Path, sections):
    """Replaces the sections of the profiles that ran in bench/results.md and keeps the others."""
    parts = {}
    old = out.read_text() if out.exists() else ""
    if old.strip() and not old.startswith("## "):
        parts["loopback"] = "## loopback\n\n" + old.strip()  # the file from before the profiles
    elif old.strip():
        for chunk in re.split(r"(?m)^(?=## )", old):
            if chunk.strip():
                parts[chunk[3:].split(":")[0].split()[0]] = chunk.strip()
    parts.update(sections)
    out.write_text("\n\n".join(parts[p] for p in list(PROFILES) + sorted(set(parts) - set(PROFILES)) if p in parts) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="all", help="loopback, region, remote, all, or a comma-separated list")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--wan-reps", type=int, default=3, help="repetitions in the region and remote profiles (default 3)")
    ap.add_argument("--only", default="")
    ap.add_argument("--quick", action="store_true", help="smaller data: a 256 MiB file, a 3,000-file tree")
    ap.add_argument("--trace", default="", help="a directory: this tool's uploads and downloads write S3AM_TRACE files there")
    ap.add_argument("--store-cpus", default="", help="(from bench/run) the cores Garage runs on; the proxy goes there too")
    ap.add_argument("--tool-cpus", default="", help="(from bench/run) the cores the tools run on")
    args = ap.parse_args()
    profiles = ALL if args.profile == "all" else args.profile.split(",")
    for p in profiles:
        if p not in PROFILES:
            raise SystemExit(f"bench: unknown profile {p!r}: pick from loopback, region, remote, far, all")
    only = set(filter(None, args.only.split(",")))
    if args.trace:
        global TRACE_DIR
        TRACE_DIR = Path(args.trace).resolve()
        TRACE_DIR.mkdir(parents=True, exist_ok=True)
    want = lambda n: not only or n in only  # noqa: E731
    install_peers()
    build_rusage()
    data = Path(os.environ.get("S3AM_BENCH_DATA", CACHE / "bench-data"))
    data.mkdir(parents=True, exist_ok=True)
    big_size = 256 * MIB if args.quick else 1024 * MIB
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
    sections = {}
    prune_rows = {}
    with tempfile.TemporaryDirectory(prefix="s3am-bench.") as w:
        for profile in profiles:
            log(f"==> profile {profile}")
            shape = PROFILES[profile]
            reps = args.wan_reps if shape else args.reps
            work = Path(w) / profile
            work.mkdir()
            proxy = Proxy(work, shape[0], shape[1], args.store_cpus) if shape else None
            if proxy:
                log(f"    proxy at {proxy.endpoint}: round trip {proxy.rtt * 1000:.1f} ms (2 x {shape[0]} ms = {2 * shape[0]} ms; direct {proxy.direct_rtt * 1000:.1f} ms)")
            env = Env(work, proxy.endpoint if proxy else os.environ["S3AM_TEST_ENDPOINT"])
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
                if not shape and want("many"):
                    bench_many(env, res, min(reps, 2), data)
            finally:
                stats = proxy.stop() if proxy else None
            if not any(want(n) for n in PROFILE_WORK):
                continue  # only `prune` ran: the profile's own section stays as it was
            md = table(profile, res, requests or 0, None if shape else size_mb, scaling, cpus)
            latency = f"medians of {reps} interleaved runs (check, publish and resource check: {max(reps, 5)})"
            if shape:
                title = f"## {profile}: {shape[0]} ms each way, {shape[1]} MB/s per connection per direction"
                store = (f"Garage 2.5.0 behind bench/wanproxy.py ({shape[0]} ms each way, {shape[1]} MB/s per direction per "
                         f"connection; a small request's round trip through it measured {proxy.rtt * 1000:.1f} ms, "
                         f"{proxy.direct_rtt * 1000:.1f} ms direct)")
                cpu = stats["cpu_user_s"] + stats["cpu_system_s"]
                moved = (stats["bytes_up"] + stats["bytes_down"]) / 1e9
                if SEAWEEDFS and want("publish"):
                    store += f"; the publishes marked SeaweedFS: {SEAWEEDFS.name} behind a second proxy of the same shape"
                tail = (f"\n\nThe proxy over the whole profile, setup aside: {cpu:.1f} s of CPU in {stats['wall_s']:.0f} s "
                        f"({cpu / stats['wall_s'] * 100:.0f} % of one core on average), {stats['connections']:,} connections, {moved:.1f} GB moved. "
                        "Round trips = wall ÷ (2 × delay), the whole process, start-up included.")
            else:
                title = "## loopback"
                store = "Garage 2.5.0 on loopback" + (f" (the publishes marked SeaweedFS: {SEAWEEDFS.name})" if SEAWEEDFS and want("publish") else "")
                tail = ""
            header = (f"{title}\n\nMachine: {machine[0].strip()} cores,{machine[1]}; {store}; {where.format(' and the proxy' if shape else '')}; "
                      f"{latency}{'; --quick data' if args.quick else ''}; {time.strftime('%Y-%m-%d')}.{tail}\n\n")
            sections[profile] = header + md
            print(header + md + "\n", flush=True)
    if prune_rows:
        lines = [f"## list and prune: {PRUNE_SETS:,} sets\n",
                 f"Machine: {machine[0].strip()} cores,{machine[1]}; Garage 2.5.0; {PRUNE_SETS:,} artifacts sets of an asset, a "
                 f"manifest and an index entry each ({3 * PRUNE_SETS:,} objects); {where.format('')}; {time.strftime('%Y-%m-%d')}. "
                 "`prune --max-age 1s` deletes every set: its manifests and index entries first, then the assets. "
                 "`list` reads a first page of `artifacts/` and `cache/`, then the 16 key ranges of `artifacts/` at once, each paging on; "
                 "`list --verify` adds one GET of each set's manifest, 64 at once; "
                 "a prune reads and verifies the manifests as `list --verify` does, and adds the index (its keys share their leading "
                 "digits, so its pages come one after another), the unfinished uploads, and DeleteObjects requests of 1,000 keys, 8 at "
                 "once. With trusted keys each set costs one GET more (its signature).\n",
                 "| profile | command | S3 requests | seconds | peak RSS | runs |", "|---|---|---|---|---|---|"]
        for profile, rows in prune_rows.items():
            for name, requests, secs, rss, n in rows:
                lines.append(f"| {profile} | `{name}` | {requests} | {secs:.2f} | {rss / 1024:.0f} MB | {n} (median) |" if n > 1
                             else f"| {profile} | `{name}` | {requests} | {secs:.2f} | {rss / 1024:.0f} MB | 1 |")
        sections["list"] = "\n".join(lines)
        print(sections["list"] + "\n", flush=True)
    merge_results(REPO / "bench/results.md", sections)


if __name__ == "__main__":
    main()
