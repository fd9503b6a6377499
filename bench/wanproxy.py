#!/usr/bin/env python3
"""wanproxy: a TCP proxy that makes a store on loopback look distant, for bench/run's WAN profiles.

It listens on 127.0.0.1 (a free port, printed on stdout's first line) and forwards every
connection to UPSTREAM (Garage's S3 port). Each direction of each connection is a pipe with
latency and a rate cap, not a stop-and-wait relay:

- a chunk read at time t leaves at max(t, the moment the chunk before it has left) + size / rate
  (the rate cap, per direction per connection: a token bucket 1 MiB deep), and is written to
  the other side DELAY later; chunks read meanwhile keep flowing behind it, in order, so a
  connection's throughput is the rate cap whatever the delay, and a request-response exchange
  costs 2 x DELAY;
- connections are independent: one connection's delay never holds up another's;
- what is in flight in one direction is bounded (rate x delay plus 1 MiB, about a TCP window
  that fills the pipe); above it the proxy stops reading, so back-pressure reaches the sender;
- with --total-rate-mbps, every connection's chunks in one direction also pass one shared link
  of that rate (a token bucket 1 MiB deep, per direction, shared by all connections): a chunk
  leaves at the later of the moment its connection's cap and the shared link's allow, so 16
  connections together get no more than the total, as on a real path with one bottleneck. The
  shared link queues at most one round trip's worth beyond its bucket (a router buffer of one
  bandwidth-delay product); past that every connection in that direction stops reading until
  the queue drains.

Connection set-up is free here (a real distant store costs a round trip for TCP and another for
TLS on each new connection) unless --handshake is given, which holds each new connection's
first bytes back by one round trip (the SYN, SYN-ACK exchange). TLS itself is not the proxy's
business: bench.py puts stunnel behind it, so a TLS handshake's own round trips pass through
the delay like any other bytes.

When it ends (SIGTERM or SIGINT) it writes its own CPU time and totals as JSON to --stats. With
--control it also listens on a second port (printed on stdout's second line): each connection
there gets one line of JSON with the totals so far (connections accepted, bytes each way, CPU)
and is closed, so that bench.py can count the connections each timed command opened.

    wanproxy.py --upstream 127.0.0.1:3900 --delay-ms 40 [--rate-mbps 100] [--total-rate-mbps 125]
                [--handshake] [--control] [--stats FILE]
    wanproxy.py --self-check [--delay-ms 40] [--rate-mbps 100] [--total-rate-mbps 125] [--handshake]

--self-check starts a small HTTP server and the proxy in front of it and checks that a small
request's round trip is about 2 x DELAY (4 x DELAY on a new connection with --handshake), that
requests on 8 connections at once take no longer than one, that one connection's bulk
throughput is about the rate cap (a stop-and-wait relay would manage one chunk per round
trip), and, with --total-rate-mbps, that 4 connections downloading at once together get about
the total cap and no more; it exits 1 if any of these is off.
"""
import argparse
import asyncio
import json
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time

MB = 1_000_000
BURST = 1 << 20


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


class Link:
    """One direction of the path, shared by every connection: a token bucket at the total rate
    (0: none), BURST deep, and a queue of at most one round trip's worth beyond it."""

    def __init__(self, loop, rate, delay):
        self.loop = loop
        self.rate = rate  # bytes per second, 0 for no shared cap
        self.free_at = 0.0  # when the link has sent every chunk reserved on it so far
        self.backlog = 2 * delay + (BURST / rate if rate else 0.0)  # the most queue, in seconds
        self.waiting = set()  # pipes that stopped reading because the queue is full
        self.timer = None

    def reserve(self, now, size):
        """The moment a chunk of `size` bytes read now has crossed the link."""
        if not self.rate:
            return now
        self.free_at = max(self.free_at, now - BURST / self.rate) + size / self.rate
        return self.free_at

    def full(self, now):
        return bool(self.rate) and self.free_at - now > self.backlog

    def wait(self, pipe):
        """`pipe` stopped reading for a full queue: wakes it once the queue is below its limit."""
        self.waiting.add(pipe)
        if self.timer is None:
            self.timer = self.loop.call_at(self.free_at - self.backlog + 1e-4, self._wake)

    def _wake(self):
        self.timer = None
        waiting, self.waiting = self.waiting, set()
        for pipe in waiting:
            pipe._flow()


class Pipe:
    """One direction of one connection."""

    def __init__(self, conn, delay, rate, link, floor=0.0):
        self.conn = conn
        self.loop = conn.loop
        self.delay = delay
        self.rate = rate  # bytes per second, 0 for no cap
        self.link = link  # this direction's link, shared by every connection
        self.limit = int(rate * delay) + (1 << 20) if rate else (64 << 20)
        self.free_at = floor  # when the link has sent everything read so far
        self.last_at = 0.0
        self.inflight = 0
        self.src = None  # the transport this pipe reads from
        self.dst = None  # the transport it writes to (None until connected)
        self.pending = []
        self.src_paused = False
        self.dst_paused = False
        self.eof_done = False
        self.other = None
        self.bytes = 0

    def _when(self, size):
        now = self.loop.time()
        if self.rate:
            # A token bucket BURST deep: a link left idle (the proxy was not scheduled in time,
            # or the sender paused) may send that much at once, but no faster on average.
            self.free_at = max(self.free_at, now - BURST / self.rate) + size / self.rate
        # The shared link: the chunk leaves when both its connection and the link let it.
        at = max(self.free_at, now, self.link.reserve(now, size)) + self.delay
        if at <= self.last_at:  # equal deadlines could run in any order: keep the stream's
            at = self.last_at + 1e-6
        self.last_at = at
        return at

    def feed(self, data):
        n = len(data)
        self.bytes += n
        self.inflight += n
        self.loop.call_at(self._when(n), self._deliver, data)
        self._flow()

    def _deliver(self, data):
        self.inflight -= len(data)
        if self.dst is None:
            self.pending.append(data)
        elif not self.dst.is_closing():
            self.dst.write(data)
        self._flow()

    def set_dst(self, transport):
        self.dst = transport
        for data in self.pending:
            transport.write(data)
        self.pending = []

    def set_dst_paused(self, paused):
        self.dst_paused = paused
        self._flow()

    def _flow(self):
        if self.src is None or self.src.is_closing():
            return
        link_full = self.link.full(self.loop.time())
        if link_full:
            self.link.wait(self)  # woken when the shared queue has drained below its limit
        stop = self.inflight > self.limit or self.dst_paused or link_full
        if stop == self.src_paused:
            return
        self.src_paused = stop
        (self.src.pause_reading if stop else self.src.resume_reading)()

    def eof(self):
        self.loop.call_at(self._when(0), self._deliver_eof)

    def _deliver_eof(self):
        self.eof_done = True
        if self.other.eof_done:
            self.conn.close()
        elif self.dst is not None and not self.dst.is_closing() and self.dst.can_write_eof():
            try:
                self.dst.write_eof()
            except OSError:  # the other side has gone already
                self.conn.close(abort=True)

    def lost(self, exc):
        self.loop.call_at(self._when(0), self.conn.close, exc is not None)


class Conn:
    def __init__(self, proxy, client):
        self.proxy = proxy
        self.loop = proxy.loop
        self.client = client
        self.upstream = None
        floor = self.loop.time() + 2 * proxy.delay if proxy.handshake else 0.0
        self.up = Pipe(self, proxy.delay, proxy.rate, proxy.link_up, floor)  # client -> store
        self.down = Pipe(self, proxy.delay, proxy.rate, proxy.link_down)  # store -> client
        self.up.other, self.down.other = self.down, self.up
        self.up.src = client
        self.down.dst = client
        self.closed = False
        proxy.live.add(self)
        proxy.connections += 1
        self.loop.create_task(self._connect())

    async def _connect(self):
        try:
            transport, _ = await self.loop.create_connection(lambda: Side(self, upstream=True), *self.proxy.upstream)
        except OSError:
            self.close(abort=True)
            return
        if self.closed:
            transport.abort()
            return
        self.upstream = transport
        self.down.src = transport
        self.up.set_dst(transport)

    def close(self, abort=False):
        if self.closed:
            return
        self.closed = True
        self.proxy.live.discard(self)
        self.proxy.bytes_up += self.up.bytes
        self.proxy.bytes_down += self.down.bytes
        for t in (self.client, self.upstream):
            if t is not None:
                t.abort() if abort else t.close()


class Side(asyncio.Protocol):
    """The protocol on either socket of a connection: what it reads feeds one pipe, and the
    other pipe writes to it."""

    def __init__(self, conn, upstream):
        self.conn = conn
        self.upstream = upstream

    def _pipes(self):
        c = self.conn
        return (c.down, c.up) if self.upstream else (c.up, c.down)  # (reads into, writes from)

    def data_received(self, data):
        self._pipes()[0].feed(data)

    def eof_received(self):
        self._pipes()[0].eof()
        return True  # keep the other direction open until its own end arrives

    def connection_lost(self, exc):
        if not self.conn.closed:
            self._pipes()[0].lost(exc)

    def pause_writing(self):
        self._pipes()[1].set_dst_paused(True)

    def resume_writing(self):
        self._pipes()[1].set_dst_paused(False)


class Listener(asyncio.Protocol):
    def __init__(self, proxy):
        self.proxy = proxy

    def connection_made(self, transport):
        conn = Conn(self.proxy, transport)
        self.side = Side(conn, upstream=False)

    def data_received(self, data):
        self.side.data_received(data)

    def eof_received(self):
        return self.side.eof_received()

    def connection_lost(self, exc):
        self.side.connection_lost(exc)

    def pause_writing(self):
        self.side.pause_writing()

    def resume_writing(self):
        self.side.resume_writing()


class Proxy:
    def __init__(self, loop, upstream, delay_ms, rate_mbps, handshake=False, total_rate_mbps=0.0):
        self.loop = loop
        self.upstream = upstream
        self.delay = delay_ms / 1000
        self.rate = rate_mbps * MB
        self.total_rate = total_rate_mbps * MB
        self.link_up = Link(loop, self.total_rate, self.delay)  # shared by every connection
        self.link_down = Link(loop, self.total_rate, self.delay)
        self.handshake = handshake
        self.live = set()
        self.connections = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self.server = None
        self.started = time.monotonic()

    async def start(self, port=0):
        self.server = await self.loop.create_server(lambda: Listener(self), "127.0.0.1", port)
        return self.server.sockets[0].getsockname()[1]

    async def start_control(self):
        """A second port: each connection gets the totals so far as one JSON line."""

        async def answer(reader, writer):
            writer.write(json.dumps(self.stats()).encode() + b"\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        return server.sockets[0].getsockname()[1]

    def stats(self):
        user, sys_ = cpu_seconds()
        return {
            "delay_ms": self.delay * 1000,
            "rate_mbps": self.rate / MB,
            "total_rate_mbps": self.total_rate / MB,
            "handshake": self.handshake,
            "connections": self.connections,
            "bytes_up": self.bytes_up + sum(c.up.bytes for c in self.live),
            "bytes_down": self.bytes_down + sum(c.down.bytes for c in self.live),
            "cpu_user_s": user,
            "cpu_system_s": sys_,
            "wall_s": time.monotonic() - self.started,
        }


def parse_hostport(s):
    host, _, port = s.rpartition(":")
    return host or "127.0.0.1", int(port)


async def serve(args):
    loop = asyncio.get_running_loop()
    proxy = Proxy(loop, parse_hostport(args.upstream), args.delay_ms, args.rate_mbps, args.handshake, args.total_rate_mbps)
    port = await proxy.start(args.port)
    print(port, flush=True)
    if args.control:
        print(await proxy.start_control(), flush=True)
    done = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    if args.stats:
        with open(args.stats, "w") as f:
            json.dump(proxy.stats(), f)


# --- self-check -------------------------------------------------------------------------------

async def http_server(body_size):
    """A minimal keep-alive HTTP/1.1 server: GET /small answers 2 bytes, GET /big body_size."""
    big = os.urandom(body_size)

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                body = big if b" /big " in head.split(b"\r\n", 1)[0] else b"ok"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def http_get(port, path, sock=None):
    """One GET on a (new or given) connection; returns (seconds, body length, socket)."""
    if sock is None:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start = time.perf_counter()
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, body = buf.split(b"\r\n\r\n", 1)
    length = int(next(l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")).split(b":")[1])
    got = len(body)
    while got < length:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed early")
        got += len(chunk)
    return time.perf_counter() - start, got, sock


def self_check(args):
    """Runs the proxy as its own process (as bench.py does) in front of a small HTTP server."""
    big_size = 32 * MB
    ready = threading.Event()
    box = {}

    def loop_thread():
        loop = asyncio.new_event_loop()
        box["loop"] = loop

        async def setup():
            box["server"], box["up"] = await http_server(big_size)
            ready.set()

        loop.run_until_complete(setup())
        loop.run_forever()

    threading.Thread(target=loop_thread, daemon=True).start()
    ready.wait()
    cmd = [sys.executable, os.path.abspath(__file__), "--upstream", f"127.0.0.1:{box['up']}",
           "--delay-ms", str(args.delay_ms), "--rate-mbps", str(args.rate_mbps),
           "--total-rate-mbps", str(args.total_rate_mbps), "--control"] + (["--handshake"] if args.handshake else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    control = int(proc.stdout.readline())
    d = args.delay_ms / 1000
    ok = True

    def report(name, got, want, tol):
        nonlocal ok
        good = abs(got - want) <= tol
        ok &= good
        print(f"{name:48} {got * 1000:8.1f} ms  (expect {want * 1000:.1f} ms ± {tol * 1000:.0f})  {'ok' if good else 'OFF'}")

    hs = 2 * d if args.handshake else 0.0
    start = time.perf_counter()
    _, _, sock = http_get(port, "/small")
    report("new connection and a small request", time.perf_counter() - start, 2 * d + hs, 0.005 + 0.1 * d)
    rtts = sorted(http_get(port, "/small", sock)[0] for _ in range(10))
    report("round trip, small request, kept connection", rtts[len(rtts) // 2], 2 * d, 0.005 + 0.05 * d)

    # Eight connections, opened and used once beforehand; then one request on each, all sent
    # before any answer is read: through a pipe with latency they all take one round trip.
    socks = [http_get(port, "/small")[2] for _ in range(8)]
    start = time.perf_counter()
    for s in socks:
        s.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
    for s in socks:
        buf = b""
        while not buf.endswith(b"ok"):
            buf += s.recv(4096)
        s.close()
    wall = time.perf_counter() - start
    report("8 connections at once, one request each", wall, 2 * d, 0.005 + 0.1 * d)

    t, n, _ = http_get(port, "/big", sock)
    if args.rate_mbps:  # without a cap, the machine sets the pace: nothing to check
        want = 2 * d + n / (args.rate_mbps * MB)
        report(f"{n // MB} MB on one connection", t, want, 0.03 + 0.25 * want)
    print(f"{'':48} {n / t / MB:8.1f} MB/s (cap {args.rate_mbps:g} MB/s)")
    sock.close()

    if args.total_rate_mbps:
        # Four connections at once, each fetching the big body: together they may not pass the
        # shared cap, whatever each one's own cap allows.
        socks = [http_get(port, "/small")[2] for _ in range(4)]
        results = []
        threads = [threading.Thread(target=lambda s=s: results.append(http_get(port, "/big", s)[1])) for s in socks]
        start = time.perf_counter()
        for t_ in threads:
            t_.start()
        for t_ in threads:
            t_.join()
        wall = time.perf_counter() - start
        total = sum(results)
        cap = min(args.total_rate_mbps, 4 * args.rate_mbps if args.rate_mbps else math.inf) * MB
        want = 2 * d + total / cap
        report(f"4 connections, {total // MB} MB together", wall, want, 0.03 + 0.25 * want)
        print(f"{'':48} {total / wall / MB:8.1f} MB/s together (total cap {args.total_rate_mbps:g} MB/s)")
        for s in socks:
            s.close()

    # The control port counts every connection accepted: the checks above opened 1 + 8 (+ 4).
    with socket.create_connection(("127.0.0.1", control)) as c:
        got = json.loads(c.makefile().readline())["connections"]
    want_conns = 9 + (4 if args.total_rate_mbps else 0)
    ok &= got == want_conns
    print(f"{'connections counted by the control port':48} {got:8d}     (expect {want_conns})  {'ok' if got == want_conns else 'OFF'}")
    proc.terminate()
    proc.wait()
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", help="host:port to forward to")
    ap.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    ap.add_argument("--delay-ms", type=float, default=40.0, help="one-way delay, each direction")
    ap.add_argument("--rate-mbps", type=float, default=100.0, help="cap per direction per connection, MB/s (0: none)")
    ap.add_argument("--total-rate-mbps", type=float, default=0.0,
                    help="cap per direction shared by all connections, MB/s (0: none, the default)")
    ap.add_argument("--handshake", action="store_true", help="charge each new connection one round trip")
    ap.add_argument("--control", action="store_true",
                    help="also listen on a second port (stdout's second line) that answers the totals so far as JSON")
    ap.add_argument("--stats", help="write CPU time and totals as JSON here on exit")
    ap.add_argument("--self-check", action="store_true")
    args = ap.parse_args()
    if args.self_check:
        sys.exit(self_check(args))
    if not args.upstream:
        ap.error("--upstream is required")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
