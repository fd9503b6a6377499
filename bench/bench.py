#!/usr/bin/env python3
"""The benchmark harness: this tool against s5cmd and the AWS CLI, side by side, in one run.

Run through bench/run, which starts Garage the way the tests do and exports S3AM_TEST_*.
Every workload runs for each tool in turn, interleaved, for several repetitions; the table
reports medians and this tool's median divided by the fastest peer's.

    bench/run [--reps N] [--only NAME,...] [--quick]
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple, Optional

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("S3AM_CACHE_DIR", Path.home() / ".cache/s3-asset-manager"))
VENV = CACHE / "bench-venv"
PEERS = {"awscli": "1.46.2", "s5cmd": "0.3.3"}
BIN = REPO / "target/release/s3-asset-manager"
MIB = 1 << 20


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def install_peers():
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


class Env:
    def __init__(self, work: Path):
        self.endpoint = os.environ["S3AM_TEST_ENDPOINT"]
        self.work = work
        cfg = work / "aws-config"
        cfg.write_text("[default]\nregion = garage\ns3 =\n    addressing_style = path\n    max_concurrent_requests = 16\n")
        self.base = {
            "PATH": f"{VENV / 'bin'}:{os.environ['PATH']}",
            "HOME": str(work),
            "AWS_ACCESS_KEY_ID": os.environ["S3AM_TEST_ACCESS_KEY"],
            "AWS_SECRET_ACCESS_KEY": os.environ["S3AM_TEST_SECRET_KEY"],
            "AWS_REGION": "garage",
            "AWS_DEFAULT_REGION": "garage",
            "AWS_CONFIG_FILE": str(cfg),
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_COLOR": "1",
        }
        # Tuning knobs (S3AM_CONCURRENCY, S3AM_PART_SIZE, ...) pass through to this tool.
        knobs = {k: v for k, v in os.environ.items() if k.startswith("S3AM_") and not k.startswith(("S3AM_TEST_", "S3AM_CACHE_DIR", "S3AM_BENCH"))}
        self.ours = dict(self.base, AWS_ENDPOINT_URL=self.endpoint, S3AM_PATH_STYLE="true", **knobs)

    def bucket(self, name):
        # A fresh name per run, so bench.py can run again against the same Garage.
        name = f"{name}-{random.getrandbits(32):08x}"
        self.aws(["s3", "mb", f"s3://{name}"], quiet=True)
        return name

    def aws(self, args, quiet=False):
        return run([str(VENV / "bin/aws"), "--endpoint-url", self.endpoint] + args, self.base, quiet=quiet)

    def s5(self, args):
        return run([str(VENV / "bin/s5cmd"), "--endpoint-url", self.endpoint] + args, self.base)


class Run(NamedTuple):
    seconds: float
    rss_kb: int
    stderr: str
    cpu: float  # the tool's user + system CPU seconds
    store_cpu: Optional[float]  # Garage's CPU seconds over the same interval, when known


def store_cpu():
    """Garage's user + system CPU seconds so far (bench/run exports GARAGE_PID), or None."""
    try:
        fields = Path(f"/proc/{os.environ['GARAGE_PID']}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (KeyError, OSError, ValueError, IndexError):
        return None


def run(cmd, env, cwd=None, quiet=True):
    """Runs a command after flushing dirty pages, so that no run pays for the writeback of the
    one before it; returns its wall time, peak RSS, stderr and CPU, and the store's CPU."""
    os.sync()
    g0 = store_cpu()
    start = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    took = time.perf_counter() - start
    g1 = store_cpu()
    err = p.stderr.read().decode(errors="replace")
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"benchmark command failed ({p.returncode}): {' '.join(map(str, cmd))}\n{err[-2000:]}")
    store = g1 - g0 if g0 is not None and g1 is not None else None
    return Run(took, usage.ru_maxrss, err, usage.ru_utime + usage.ru_stime, store)


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

    def add_run(self, workload, tool, r: Run):
        self.add(workload, tool, r.seconds, {"rss_kb": r.rss_kb, "cpu": r.cpu, "store_cpu": r.store_cpu})
        store = f", store CPU {r.store_cpu:5.2f} s" if r.store_cpu is not None else ""
        log(f"    {workload:32} {tool:18} {r.seconds:7.2f} s  CPU {r.cpu:5.2f} s{store}  peak RSS {r.rss_kb / 1024:.0f} MB")

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
        env.s5(["cp", f"{src}/*", f"s3://{b}/warm-up/"])
        for rep in range(reps):
            tools = ["s3-asset-manager", "s5cmd", "aws"]
            random.shuffle(tools)
            for tool in tools:
                key = f"{tool}-{rep}-{random.getrandbits(32):x}"
                if tool == "s3-asset-manager":
                    pkg = package(env.work, "up", src, fake_commit())
                    e = dict(env.ours, PACKAGE_ASSETS_BUCKET=b, PACKAGE_DIRECTORY=str(pkg))
                    r = run([str(BIN), "upload", "-q"], e)
                elif tool == "s5cmd":
                    r = env.s5(["cp", f"{src}/*", f"s3://{b}/{key}/"])
                else:
                    r = env.aws(["s3", "cp", "--recursive", "--quiet", str(src), f"s3://{b}/{key}/"])
                res.add_run(name, tool, r)


def publish(env, bucket, src, commit, extra=None):
    pkg = package(env.work, "pub", src, commit)
    e = dict(env.ours, PACKAGE_ASSETS_BUCKET=bucket, PACKAGE_DIRECTORY=str(pkg), **(extra or {}))
    run([str(BIN), "upload", "-q"], e)


def bench_downloads(env, res, reps, files_big, dir_small):
    b = env.bucket("bench-down")
    for name, src in [("download (verified) 1 GiB set", files_big), ("download (verified) 2,000-file set", dir_small)]:
        commit = fake_commit()
        publish(env, b, src, commit)
        kept = []
        for rep in range(reps):
            tools = ["s3-asset-manager", "s5cmd", "aws"]
            random.shuffle(tools)
            for tool in tools:
                # A fresh directory each time. Many small files are deleted only after the
                # workload: on ext4, creating files right after deleting thousands makes the
                # inode allocator skip the recently freed ones, at a cost that lands on whichever
                # tool runs next.
                dest = env.work / f"down-{tool}-{rep}"
                dest.mkdir()
                if tool == "s3-asset-manager":
                    e = dict(env.ours, PACKAGE_ASSETS_BUCKET=b)
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
    pk = env.work / "restore-pk"
    shutil.rmtree(pk, ignore_errors=True)
    run([str(BIN), "check", "-q", "--package-dir", str(pk)], e)
    code_hash = (pk / ".code-hash").read_text()
    # Publish the set with its code hash, which fills cache/<code-hash>/.
    pkg = package(env.work, "cachefill", dir_small, (pk / ".commit-hash").read_text())
    (pkg / ".code-hash").write_text(code_hash)
    run([str(BIN), "upload", "-q"], dict(env.ours, PACKAGE_ASSETS_BUCKET=b, PACKAGE_DIRECTORY=str(pkg)))
    name = "cache restore of the 2,000-file set (server-side copy)"
    for rep in range(reps):
        tools = ["s3-asset-manager", "s5cmd", "aws"]
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
        for tool in ["s3-asset-manager", "aws s3api head-object"]:
            pk = env.work / "check-pk"
            shutil.rmtree(pk, ignore_errors=True)
            if tool == "s3-asset-manager":
                t = run([str(BIN), "check", "-q", "--package-dir", str(pk)], e).seconds
                assert (pk / ".found").exists()
            else:
                t = env.aws(["s3api", "head-object", "--bucket", b, "--key", f"artifacts/{commit}/.manifest.json"]).seconds
            res.add(name, tool, t)
    log(f"    {name:32} {res.medians(name)}")


def bench_resource_check(env, res, reps):
    b = env.bucket("bench-index")
    # 10,000 older sets in the index, put with the AWS CLI's own library.
    sys.path.insert(0, str(next((VENV / "lib").glob("python3*/site-packages"))))
    import botocore.session  # noqa: E402  (from the peers' venv)
    from botocore.config import Config  # noqa: E402

    s = botocore.session.get_session()
    client = s.create_client(
        "s3", endpoint_url=env.endpoint, region_name="garage",
        aws_access_key_id=env.base["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env.base["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=32),
    )
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda i: client.put_object(Bucket=b, Key=f"index/{9_000_000_000_000 + i:013}-{i:040x}", Body=b""), range(10_000)))
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
        start = time.perf_counter()
        p = subprocess.run([str(link)], input=req.encode(), env=env.base, capture_output=True)
        t = time.perf_counter() - start
        assert p.returncode == 0, p.stderr.decode()
        err = p.stderr.decode()
        requests = int(err.split(" S3 requests")[0].rsplit("(", 1)[1])
        res.add(name, "s3-asset-manager", t, {"requests": requests})
    log(f"    {name:32} {res.medians(name)} ({requests} requests)")
    return requests


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


def table(res, requests, size_mb, scaling, rss_mb):
    targets = {
        "upload one 1 GiB file": "≤ 0.8",
        "upload 2,000 files of 64 KiB": "≤ 0.8",
        "download (verified) 1 GiB set": "≤ 0.8",
        "download (verified) 2,000-file set": "≤ 0.8",
        "cache restore of the 2,000-file set (server-side copy)": "≤ 0.5",
    }
    lines = ["| workload | s3-asset-manager | fastest peer | ratio | target | met |", "|---|---|---|---|---|---|"]
    seen = []
    for w, *_ in res.rows:
        if w not in seen:
            seen.append(w)
    for w in seen:
        m = res.medians(w)
        ours = m.pop("s3-asset-manager")
        if w.startswith("check when"):
            peer, pt = min(m.items(), key=lambda kv: kv[1])
            met = ours <= 0.050
            lines.append(f"| {w} | {ours * 1000:.0f} ms | {peer} {pt * 1000:.0f} ms | {ours / pt:.2f} | ≤ 50 ms | {'yes' if met else 'no'} |")
            continue
        if w.startswith("resource check"):
            met = ours <= 0.100 and requests <= 3
            lines.append(f"| {w} | {ours * 1000:.0f} ms, {requests} requests | | | ≤ 100 ms, ≤ 3 requests | {'yes' if met else 'no'} |")
            continue
        # The issue measures the restore against `aws s3 cp --recursive` S3-to-S3.
        if w.startswith("cache restore") and "aws" in m:
            others = ", ".join(f"{t} {v:.2f} s" for t, v in m.items() if t != "aws")
            peer, pt = f"aws (also {others})", m["aws"]
        else:
            peer, pt = min(m.items(), key=lambda kv: kv[1])
        ratio = ours / pt
        target = "≤ 0.5" if w.startswith("code hash") else targets.get(w, "")
        met = ratio <= float(target.split()[-1]) if target else True
        lines.append(f"| {w} | {ours:.2f} s | {peer} {pt:.2f} s | {ratio:.2f} | {target} | {'yes' if met else 'no'} |")
    if rss_mb is not None:
        lines.append(f"| peak RSS uploading the 1 GiB file | {rss_mb:.0f} MB | | | ≤ 64 MB | {'yes' if rss_mb <= 64 else 'no'} |")
    lines.append(f"| stripped release binary the image ships | {size_mb:.1f} MB | | | ≤ 30 MB | {'yes' if size_mb <= 30 else 'no'} |")
    cpu_rows = []
    for w in seen:
        cpu, store, wall = res.medians(w, "cpu"), res.medians(w, "store_cpu"), res.medians(w)
        for tool in sorted(cpu, key=lambda t: t != "s3-asset-manager"):
            if tool in store:
                floor = (cpu[tool] + store[tool]) / os.cpu_count()
                cpu_rows.append(f"| {w} | {tool} | {wall[tool]:.2f} s | {cpu[tool]:.2f} s | {store[tool]:.2f} s | {floor:.2f} s |")
    if cpu_rows:
        lines += [
            "",
            "Where the time goes: the CPU each tool used and the CPU Garage used serving it (medians). "
            "Garage runs on the same cores, so no run can take less wall time than the two added "
            "together and divided by the cores (the last column).",
            "",
            "| workload | tool | wall | tool CPU | Garage CPU | (tool + Garage) ÷ cores |",
            "|---|---|---|---|---|---|",
        ] + cpu_rows
    if scaling:
        lines += ["", "| files (16 KiB each) | upload | per 1,000 files | code hash | per 1,000 files |", "|---|---|---|---|---|"]
        for n, up, h in scaling:
            lines.append(f"| {n:,} | {up:.2f} s | {up / n * 1000:.2f} s | {h:.3f} s | {h / n * 1000:.3f} s |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only", default="")
    ap.add_argument("--quick", action="store_true", help="smaller data: a 256 MiB file, a 3,000-file tree")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    want = lambda n: not only or n in only  # noqa: E731
    install_peers()
    data = Path(os.environ.get("S3AM_BENCH_DATA", CACHE / "bench-data"))
    data.mkdir(parents=True, exist_ok=True)
    big_size = 256 * MIB if args.quick else 1024 * MIB
    big = data / f"big-{big_size // MIB}"
    if not (big / "big.bin").exists():
        log(f"==> generating {big_size // MIB} MiB")
        write_random(big / "big.bin", big_size)
    small = data / "small-2000"
    make_files(small, 2000, 64 * 1024)
    tree = data / ("tree-3000" if args.quick else "tree-30000")
    n_tree = 3000 if args.quick else 30000
    make_files(tree, n_tree, 500 * 1000 * 1000 // 30000)
    res = Results()
    requests = None
    scaling = None
    with tempfile.TemporaryDirectory(prefix="s3am-bench.") as w:
        env = Env(Path(w))
        if want("upload"):
            bench_uploads(env, res, args.reps, big, small)
        if want("download"):
            bench_downloads(env, res, args.reps, big, small)
        if want("restore"):
            bench_restore(env, res, args.reps, small)
        if want("check"):
            bench_check(env, res, args.reps)
        if want("index"):
            requests = bench_resource_check(env, res, args.reps)
        if want("hash"):
            bench_codehash(env, res, args.reps, tree)
        if want("scaling"):
            scaling = bench_scaling(env, res, data)
    rss = [x["rss_kb"] / 1024 for w, t, _, x in res.rows if w == "upload one 1 GiB file" and t == "s3-asset-manager"]
    size_mb = BIN.stat().st_size / 1e6
    md = table(res, requests or 0, size_mb, scaling, max(rss) if rss else None)
    cpu = subprocess.run(["sh", "-c", "nproc; grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.split("\n")
    header = f"Machine: {cpu[0].strip()} cores,{cpu[1]}; Garage 2.5.0 on loopback; medians of {args.reps} interleaved runs; {time.strftime('%Y-%m-%d')}.\n\n"
    out = REPO / "bench/results.md"
    out.write_text(header + md + "\n")
    print(header + md)


if __name__ == "__main__":
    main()
