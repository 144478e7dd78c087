"""Ingress benchmark: signed Slack deliveries fired at ``gateway serve`` and at a bare Starlette ceiling.

Run from anywhere (about three minutes with the defaults)::

    .venv/bin/python bench/ingress.py [--duration 10] [--connections 64] [--rate 1000] [--repeat 3]

Two targets run side by side, each one uvicorn process on 127.0.0.1 with the same server options:
the gateway (``--gateway-cmd``, default ``.venv/bin/gateway serve``) with its own throwaway
redis-server, and ``bench/bare_app.py``, which only reads the body and answers 200. Every request is
a distinct, freshly signed app_mention ``event_callback`` (unique ``event_id``), so the gateway
verifies, claims and queues each one. Two phases, each repeated with the targets interleaved:

- saturation: wrk (``bench/wrk/slack.lua``) for ``--duration`` seconds, after one warm-up per target;
- latency at ``--rate`` req/s offered: an open-loop asyncio client sends on a fixed schedule and
  measures from each scheduled send time, so a slow server cannot slow the offered load down.

After every gateway run Redis must hold one queued RQ job, one job hash and one claim per 200. The
bench measures and reports (medians over the repeats); it never fails on a missed target. Results
replace the "## Ingress" section of ``docs/benchmarks.md`` unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import hmac
import json
import math
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._doc import DOC, write_section  # noqa: E402
from tests.support.redis_server import RedisServer, free_port  # noqa: E402

HOST = "127.0.0.1"
ROUTE = "/webhooks/slack"
SECRET = "bench-slack-signing-secret-0123456789abcdef"
QUEUE_KEY = "rq:queue:gateway"
# What `gateway serve` gets from uvicorn.run(access_log=False) with uvloop and httptools installed.
SERVER_OPTIONS = ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
DEFAULT_GATEWAY_CMD = f"{ROOT / '.venv/bin/gateway'} serve"
WRK_SCRIPT = ROOT / "bench/wrk/slack.lua"
WARMUP_SECONDS = 2.0
FIRST_RATE_GUESS = 40_000.0  # req/s; sizes the warm-up's request file, later files follow measured rates
TARGET_RATIO = 0.4
TARGET_P99_MS = 25.0
# A real app_mention event_callback (~1.2 KB); ids and times are filled in per request.
_TEMPLATE = json.dumps(json.loads((ROOT / "bench/wrk/app_mention.json").read_text()), separators=(",", ":"))
_TEMPLATE = _TEMPLATE.replace('"%(time)s"', "%(time)s")


def build_requests(count: int, *, tag: str, port: int) -> Iterator[bytes]:
    """Yield ``count`` whole HTTP/1.1 requests: app_mention deliveries ``Ev<tag><n>``, signed now.

    Slack signs ``v0:<timestamp>:<body>`` with HMAC-SHA256 and the gateway refuses timestamps more
    than 300 s away, so requests are built right before the run that sends them.
    """
    now = int(time.time())
    key, signed_prefix = SECRET.encode(), f"v0:{now}:".encode()
    head = (
        f"POST {ROUTE} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"X-Slack-Request-Timestamp: {now}\r\nX-Slack-Signature: v0=%s\r\nContent-Length: %d\r\n\r\n"
    )
    for n in range(count):
        msg = f"{n:08x}-{tag.lower()}00-4a1e-9c3b-{now:012x}"
        values = {"ts": f"{now}.{n % 999_999:06d}", "msg": msg, "id": f"Ev{tag}{n:08X}", "time": now}
        body = (_TEMPLATE % values).encode()
        signature = hmac.digest(key, signed_prefix + body, "sha256").hex()
        yield (head % (signature, len(body))).encode() + body


def write_wrk_files(prefix: Path, requests: Iterator[bytes], *, threads: int) -> None:
    """Deal the requests round-robin into ``prefix.<i>``, one file per wrk thread, length-prefixed."""
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open(f"{prefix}.{i}", "wb")) for i in range(threads)]
        for n, request in enumerate(requests):
            files[n % threads].write(b"%d\n%b" % (len(request), request))


# --- servers ----------------------------------------------------------------------------------


@dataclass
class Target:
    """A server under test: its name, port, log file and (while running) process."""

    name: str
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The Slack webhook URL on this target."""
        return f"http://{HOST}:{self.port}{ROUTE}"


def start_target(target: Target, argv: list[str], *, env: dict[str, str], timeout: float = 20.0) -> None:
    """Start ``argv`` (stdout and stderr to the target's log) and wait until its port accepts."""
    with open(target.log, "wb") as log:
        target.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.process.poll() is not None:
            tail = target.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{target.name} exited with {target.process.returncode}:\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, target.port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{target.name} did not listen on port {target.port} within {timeout:g}s")


def stop_target(target: Target) -> None:
    """Terminate the target's process: SIGTERM, then SIGKILL after 15 s."""
    process = target.process
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def gateway_env(redis_url: str) -> dict[str, str]:
    """The caller's environment minus every gateway setting, plus the bench secret and Redis."""
    prefixes = ("SLACK_", "GITHUB_", "STRIPE_", "GATEWAY_", "LLM_", "REDIS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return env | {"SLACK_SIGNING_SECRET": SECRET, "REDIS_URL": redis_url}


# --- load -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One run against one target: 200s, latency in ms, what went wrong, the work found in Redis."""

    ok: int
    seconds: float
    p50: float
    p99: float
    errors: dict[str, int]
    sent: int
    work: str = ""
    work_ok: bool = True

    @property
    def rate(self) -> float:
        """Acks (200s) per second."""
        return self.ok / self.seconds

    @property
    def error_count(self) -> int:
        """Requests that did not end in a 200, plus repeated deliveries."""
        return sum(self.errors.values())


def run_wrk(target: Target, prefix: Path, *, threads: int, connections: int, seconds: float) -> Run:
    """Run wrk with the request files at ``prefix`` against the target; parse its result line."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "5s"]
    argv += ["-s", str(WRK_SCRIPT), target.url, "--", str(prefix)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120, check=True).stdout
    line = next((x for x in out.splitlines() if x.startswith("WRK_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    data = json.loads(line.removeprefix("WRK_RESULT "))
    statuses: Counter[int] = Counter()
    for status, n in data["statuses"]:
        statuses[status] += n
    errors = {f"http {k}": v for k, v in statuses.items() if k != 200}
    errors |= {k: v for k, v in data["errors"].items() if v and k != "status"}
    if data["wrapped"]:
        errors["repeated deliveries"] = data["wrapped"]
    lat = data["latency_us"]
    seconds = data["duration_us"] / 1e6
    return Run(statuses[200], seconds, lat["p50"] / 1e3, lat["p99"] / 1e3, errors, sent=data["sent"])


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)


async def _read_status(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response that has a Content-Length; return its status."""
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    length = next((int(x[15:]) for x in lines if x.lower().startswith("content-length:")), None)
    if length is None:
        raise ValueError("response without Content-Length")
    await reader.readexactly(length)
    return int(lines[0].split(" ", 2)[1])


async def _connection(queue: asyncio.Queue[tuple[bytes, float] | None], port: int, tally: _Tally) -> None:
    """Send queued requests one at a time over one keep-alive connection, timing each one."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while (item := await queue.get()) is not None:
            request, scheduled = item
            try:
                writer.write(request)
                tally.statuses[await _read_status(reader)] += 1
                tally.latencies.append(time.perf_counter() - scheduled)
            except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
                tally.failures[type(exc).__name__] += 1
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port)
    finally:
        writer.close()


async def _offer(requests: list[bytes], *, port: int, rate: float, connections: int) -> tuple[_Tally, float]:
    """Hand request n to the next free connection at ``n / rate`` s whatever the answers."""
    queue: asyncio.Queue[tuple[bytes, float] | None] = asyncio.Queue()
    tally = _Tally()
    tasks = [asyncio.create_task(_connection(queue, port, tally)) for _ in range(connections)]
    await asyncio.sleep(0.2)  # let the connections open before the schedule starts
    start = time.perf_counter()
    for n, request in enumerate(requests):
        scheduled = start + n / rate
        if (delay := scheduled - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((request, scheduled))
    for _ in tasks:
        queue.put_nowait(None)
    done, pending = await asyncio.wait(tasks, timeout=30)
    for task in pending:
        task.cancel()
    tally.failures.update(type(t.exception()).__name__ for t in done if t.exception())
    return tally, time.perf_counter() - start


def run_open_loop(target: Target, requests: list[bytes], *, rate: float, connections: int) -> Run:
    """Offer the requests at ``rate`` per second; latency runs from each request's scheduled send."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        offer = _offer(requests, port=target.port, rate=rate, connections=connections)
        tally, seconds = runner.run(offer)
    errors = {f"http {k}": v for k, v in tally.statuses.items() if k != 200} | dict(tally.failures)
    if unanswered := len(requests) - tally.statuses.total() - tally.failures.total():
        errors["unanswered"] = unanswered
    lat = sorted(tally.latencies) or [math.nan]
    p50, p99 = (1e3 * lat[min(len(lat) - 1, int(q * len(lat)))] for q in (0.5, 0.99))
    return Run(tally.statuses[200], seconds, p50, p99, errors, sent=len(requests))


# --- the work behind the answers --------------------------------------------------------------


def settle(client: redis.Redis, *, timeout: float = 10.0) -> int:
    """Wait until the queue length stops changing (requests still inside the gateway); return it."""
    last, stable, deadline = -1, 0, time.monotonic() + timeout
    while stable < 3 and time.monotonic() < deadline:
        length = int(client.llen(QUEUE_KEY))
        stable = stable + 1 if length == last else 0
        last = length
        time.sleep(0.1)
    return last


def check_work(client: redis.Redis, run: Run, *, exact: bool) -> Run:
    """Count queued jobs, job hashes and claims, compare them with the run's 200s, then flush Redis.

    With ``exact`` (open loop) every request was answered, so queued must equal the 200s. wrk stops
    with requests in flight (at most one per connection), which the gateway may still have queued.
    """
    queued = settle(client)
    keys = Counter(key.split(b":", 2)[1] for key in client.scan_iter(count=10_000) if key.count(b":") >= 2)
    claims, jobs = keys[b"claim"], keys[b"job"]
    ok = run.ok <= queued <= (run.ok if exact else run.sent) and claims == jobs == queued
    work = f"{queued} queued, {jobs} job hashes, {claims} claims for {run.ok} 200s"
    if not exact:
        work += f" ({run.sent - 1 - run.ok} in flight when wrk stopped)"
    client.flushdb()
    return dataclasses.replace(run, work=work, work_ok=ok)


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Bench:
    """Settings, the two targets, Redis, and the runs collected per phase and target."""

    args: argparse.Namespace
    tmp: Path
    targets: list[Target]
    client: redis.Redis
    runs: dict[tuple[str, str], list[Run]] = field(default_factory=dict)
    peak: dict[str, float] = field(default_factory=dict)
    count: int = 0

    def tag(self) -> str:
        """Two characters, unique per run, that go into every event_id of that run."""
        self.count += 1
        return f"{self.count:02X}"

    def saturate(self, target: Target, seconds: float) -> Run:
        """Write enough fresh requests for ``seconds`` at the best rate seen, then run wrk."""
        count = int(1.3 * self.peak.get(target.name, FIRST_RATE_GUESS) * seconds) + 2_000
        prefix, threads = self.tmp / "requests", self.args.threads
        write_wrk_files(prefix, build_requests(count, tag=self.tag(), port=target.port), threads=threads)
        run = run_wrk(target, prefix, threads=threads, connections=self.args.connections, seconds=seconds)
        self.peak[target.name] = max(self.peak.get(target.name, 0.0), run.sent / run.seconds)
        return self.check(target, run, exact=False)

    def offer(self, target: Target) -> Run:
        """Offer ``--rate`` req/s for ``--duration`` seconds to the target."""
        a = self.args
        requests = list(build_requests(int(a.rate * a.duration), tag=self.tag(), port=target.port))
        run = run_open_loop(target, requests, rate=a.rate, connections=a.connections)
        return self.check(target, run, exact=True)

    def check(self, target: Target, run: Run, *, exact: bool) -> Run:
        """Check the work in Redis after a gateway run; the bare app queues nothing."""
        return check_work(self.client, run, exact=exact) if target.name == "gateway" else run

    def execute(self) -> None:
        """Warm up each target, then run each phase ``--repeat`` times, targets interleaved."""
        for target in self.targets:
            self.saturate(target, WARMUP_SECONDS)
        phases: list[tuple[str, Callable[[Target], Run]]] = [
            ("saturation", lambda target: self.saturate(target, self.args.duration)),
            ("latency", self.offer),
        ]
        for phase, run_once in phases:
            for n in range(self.args.repeat):
                for target in self.targets:
                    run = run_once(target)
                    self.runs.setdefault((phase, target.name), []).append(run)
                    print(f"  {phase:<10} #{n + 1} {target.name:<7} {describe(run)}", flush=True)

    def summary(self, phase: str, name: str) -> Summary:
        """Medians over the repeats of one phase against one target."""
        return Summary.of(self.runs[phase, name])


def describe(run: Run) -> str:
    """One run on one line: acks/s, latency, errors and the work found in Redis."""
    figures = f"{run.rate:>8,.0f}/s  p50 {run.p50:6.2f} ms  p99 {run.p99:6.2f} ms"
    return f"{figures}  errors {run.errors or 0}  {run.work}"


class CpuShare:
    """How much of the machine's CPU time went to processes other than this bench and its children.

    Other work on the machine (a test run, a build) slows both targets, not always evenly, so the
    report states it. Counts user and system time from ``/proc/stat`` against ``os.times()``
    (children count once waited for); interrupt time is left out, as loopback traffic lands there.
    """

    def __init__(self) -> None:
        self._start = (time.monotonic(), self._machine(), self._own())

    @staticmethod
    def _machine() -> float:
        user, nice, system = (int(x) for x in Path("/proc/stat").read_text().split()[1:4])
        return (user + nice + system) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def wall(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self._start[0]

    def others(self) -> float:
        """Share of all CPUs' time since the start used by other processes (0 to 1)."""
        busy = self._machine() - self._start[1] - (self._own() - self._start[2])
        return max(0.0, busy / (self.wall() * (os.cpu_count() or 1)))


# --- report -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """Medians over the repeats, errors summed, and whether every run's work checked out."""

    rate: float
    p50: float
    p99: float
    errors: int
    work_ok: bool

    @classmethod
    def of(cls, runs: list[Run]) -> Summary:
        """The median of each figure separately."""
        med = statistics.median
        rate, p50, p99 = med(r.rate for r in runs), med(r.p50 for r in runs), med(r.p99 for r in runs)
        return cls(rate, p50, p99, sum(r.error_count for r in runs), all(r.work_ok for r in runs))


def machine() -> str:
    """CPUs, CPU model, memory, kernel, Python and wrk versions, on one line."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((x.split(":", 1)[1].strip() for x in cpuinfo if x.startswith("model name")), "?")
    meminfo = Path("/proc/meminfo").read_text().split()
    memory = int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.split(" [")[0]
    return (
        f"{os.cpu_count()} CPUs ({model}), {memory:.1f} GiB RAM, {platform.system()} {platform.release()},"
        f" Python {platform.python_version()}, {wrk}"
    )


def verdicts(bench: Bench) -> list[str]:
    """One line per target: met or not met, with the figure behind it and what else failed."""
    sat, lat = bench.summary("saturation", "gateway"), bench.summary("latency", "gateway")
    ratio = sat.rate / bench.summary("saturation", "bare").rate
    rate = f"{bench.args.rate:,.0f} req/s"
    return [
        _verdict(f"ack throughput ≥ {TARGET_RATIO} × bare", ratio >= TARGET_RATIO, f"{ratio:.2f} ×", sat),
        _verdict(f"p99 < {TARGET_P99_MS:g} ms at {rate}", lat.p99 < TARGET_P99_MS, f"{lat.p99:.2f} ms", lat),
    ]


def _verdict(target: str, reached: bool, figure: str, summary: Summary) -> str:
    problems = [f"{summary.errors} errors"] if summary.errors else []
    problems += [] if summary.work_ok else ["jobs in Redis ≠ 200s"]
    met = "met" if reached and not problems else "not met"
    return f"{target}: **{met}** ({', '.join([figure, *problems])})"


def table(bench: Bench) -> list[str]:
    """The results as Markdown table rows."""
    rate = f"{bench.args.rate:,.0f}/s"
    rows = [
        f"| target | acks/s | p50 ms | p99 ms | p50 ms at {rate} | p99 ms at {rate} | errors | jobs = 200s |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for target in bench.targets:
        sat, lat = bench.summary("saturation", target.name), bench.summary("latency", target.name)
        work = "—" if target.name == "bare" else ("yes" if sat.work_ok and lat.work_ok else "**NO**")
        figures = f"{sat.rate:,.0f} | {sat.p50:.2f} | {sat.p99:.2f} | {lat.p50:.2f} | {lat.p99:.2f}"
        rows.append(f"| {target.name} | {figures} | {sat.errors + lat.errors} | {work} |")
    return rows


def section(bench: Bench, *, when: str, others: float) -> str:
    """The "## Ingress" section of docs/benchmarks.md."""
    a = bench.args
    ratio = bench.summary("saturation", "gateway").rate / bench.summary("saturation", "bare").rate
    gateway_runs = bench.runs["saturation", "gateway"] + bench.runs["latency", "gateway"]
    options = f"--duration {a.duration:g} --connections {a.connections} --rate {a.rate:g} --repeat {a.repeat}"
    text = f"""## Ingress

Signed Slack `app_mention` deliveries (~1.2 KB, every `event_id` unique, timestamps fresh) sent to
`POST /webhooks/slack` on `gateway serve` (verify, claim and queue an RQ job, one JSON log line to a file)
and, in the same run, to `bench/bare_app.py`, which only reads the body and answers 200: the ceiling.
Both are one uvicorn process on 127.0.0.1 with uvloop, httptools, no access log and the garbage
collector settings of `gateway serve` (startup heap frozen, youngest generation collected every
10,000 allocations; `bench/bare_app.py` applies them too). Load generator,
server and Redis share the machine, unpinned. Redis: a throwaway `redis-server`, default settings
except no RDB snapshots and `appendonly no` (so "queued" means in Redis memory), flushed after each run.

- Command: `.venv/bin/python bench/ingress.py` (ran {when}; `{options}`)
- Machine: {machine()}; other processes took {others:.0%} of its CPU time during the run
- Saturation: `wrk -t{a.threads} -c{a.connections} -d{a.duration:g}s --latency -s bench/wrk/slack.lua`
  after a {WARMUP_SECONDS:g} s warm-up per target; latency as wrk measures it (closed loop).
- At {a.rate:,.0f} req/s offered: open-loop asyncio client, {a.connections} keep-alive connections,
  {a.rate * a.duration:,.0f} requests over {a.duration:g} s, latency from each request's scheduled send.
- Each phase ran {a.repeat} times, bare and gateway interleaved; figures are medians of the runs.

{chr(10).join(table(bench))}

Ratio gateway/bare, acks/s: **{ratio:.2f}**.

Work behind the 200s, after each gateway run (`LLEN {QUEUE_KEY}`, `rq:job:*`, `gateway:claim:*`):
"""
    text += "".join(f"- {'ok' if r.work_ok else 'MISMATCH'}: {r.work}\n" for r in gateway_runs)
    return text + "\nTargets (gateway):\n" + "".join(f"- {line}\n" for line in verdicts(bench))


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options, bounded so that a run stays short."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    add = parser.add_argument
    add("--duration", type=float, default=10.0, help="seconds per measured run (default 10)")
    add("--connections", type=int, default=64, help="wrk and open-loop connections (default 64)")
    add("--threads", type=int, default=1, help="wrk threads (default 1)")
    add("--rate", type=float, default=1000.0, help="offered req/s in the latency phase (default 1000)")
    add("--repeat", type=int, default=3, help="runs per phase and target; medians reported (default 3)")
    add("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    add("--gateway-cmd", default=DEFAULT_GATEWAY_CMD, help="gateway command; --host and --port are appended")
    args = parser.parse_args(argv)
    if not (0 < args.duration <= 60 and 1 <= args.repeat <= 10 and 0 < args.rate <= 20_000):
        parser.error("bounds: 0 < --duration <= 60, 1 <= --repeat <= 10, 0 < --rate <= 20000")
    if not 1 <= args.threads <= args.connections <= 1024:
        parser.error("bounds: 1 <= --threads <= --connections <= 1024")
    return args


def start_all(stack: contextlib.ExitStack, args: argparse.Namespace, tmp: Path) -> Bench:
    """Start Redis, the bare app and the gateway; their shutdown goes on ``stack``."""
    server = RedisServer().start()
    stack.callback(server.cleanup)
    bare, gateway = (
        Target("bare", free_port(), tmp / "bare.log"),
        Target("gateway", free_port(), tmp / "gw.log"),
    )
    for target in (bare, gateway):
        stack.callback(stop_target, target)
    uvicorn = [str(ROOT / ".venv/bin/uvicorn"), "bare_app:app", "--app-dir", str(ROOT / "bench")]
    start_target(
        bare, [*uvicorn, "--host", HOST, "--port", str(bare.port), *SERVER_OPTIONS], env={**os.environ}
    )
    argv = [*shlex.split(args.gateway_cmd), "--host", HOST, "--port", str(gateway.port)]
    start_target(gateway, argv, env=gateway_env(server.url))
    client = stack.enter_context(redis.Redis.from_url(server.url))
    return Bench(args, tmp, [bare, gateway], client)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def begin() -> tuple[str, CpuShare]:
    """Check for wrk, make Ctrl-C and SIGTERM unwind; the start time, and the CPU share from now."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    # Unwind and stop every process on Ctrl-C or SIGTERM, even where the launcher ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"), CpuShare()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the results, and write the docs section unless ``--no-write``."""
    args = parse_args(argv)
    when, cpu = begin()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gateway-bench-")))
        bench = start_all(stack, args, tmp)
        print(f"bare on :{bench.targets[0].port}, gateway on :{bench.targets[1].port}, logs in {tmp}")
        bench.execute()
        log_lines = bench.targets[1].log.read_bytes().count(b"\n")
    others = cpu.others()
    text = section(bench, when=when, others=others)
    print(f"\n{text}\ngateway log: {log_lines} lines; took {cpu.wall():.0f} s")
    if others > 0.05:
        print(f"warning: other processes took {others:.0%} of the CPU time; figures are less reliable")
    if not args.no_write:
        write_section("## Ingress", text)
        print(f"wrote the Ingress section of {DOC}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted: every process the bench started has been stopped")
