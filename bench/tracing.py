"""What traces cost the ack path: the ingress benchmark with ``GATEWAY_TRACING`` off, on, and before it.

Run from anywhere (about a minute in quick mode)::

    .venv/bin/python bench/tracing.py [--duration 3] [--repeat 1] [--baseline REF]

The same load as ``bench/ingress.py`` (wrk at saturation, then an open-loop client at ``--rate``),
in one invocation, against four uvicorn processes on 127.0.0.1 run one after the other with the
phases interleaved: the bare ceiling; ``gateway serve`` on the code of ``--baseline`` (a git
ref, default the commit before traces existed, exported to a temporary directory); this code
with tracing off (the default); and this code with ``GATEWAY_TRACING=otlp``, exporting with the
SDK's default batching to a fake collector (``python -m tests.fakes.otlp``, its own process)
that counts the spans. Every gateway run's work is checked in Redis as ``bench/ingress.py``
does. Results replace the "## Tracing on the ack path" section of ``docs/benchmarks.md`` unless
``--no-write``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingress  # noqa: E402
from ingress import ROOT, Bench, Run, Target  # noqa: E402

from bench._doc import write_section  # noqa: E402
from tests.support.redis_server import RedisServer, free_port  # noqa: E402  (ingress put ROOT on sys.path)

# The last commit before GATEWAY_TRACING: what "off" is compared with.
DEFAULT_BASELINE = "aba1b9f"
HEADING = "## Tracing on the ack path"
TRACED = "gateway+otlp"


class TracingBench(Bench):
    """``Bench`` whose traced target also reports the spans the collector received per run."""

    collector: str = ""
    _counted: int = 0

    def check(self, target: Target, run: Run, *, exact: bool) -> Run:
        """The work in Redis after every gateway run; for the traced one, the spans too."""
        run = ingress.check_work(self.client, run, exact=exact) if target.name != "bare" else run
        if target.name == TRACED:
            spans = self._spans_since_last()
            run = dataclasses.replace(run, work=f"{run.work}; {spans} spans exported")
        return run

    def _spans_since_last(self, *, timeout: float = 30.0) -> int:
        """Spans the collector got since the last call, once its count held for 6 s (the SDK
        exports a part batch every 5 s by default)."""
        last, stable, deadline = -1, 0, time.monotonic() + timeout
        while stable < 12 and time.monotonic() < deadline:
            with urllib.request.urlopen(f"{self.collector}/_count", timeout=5) as answer:
                count = int(json.load(answer)["spans"])
            stable, last = (stable + 1 if count == last else 0), count
            time.sleep(0.5)
        spans, self._counted = last - self._counted, last
        return spans


def _baseline_code(ref: str, tmp: Path) -> Path:
    """``ref`` of this repository, exported to ``tmp/baseline``."""
    code = tmp / "baseline"
    code.mkdir()
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(code)], input=archive, check=True)
    return code


def _start_collector(stack: contextlib.ExitStack) -> str:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.otlp"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    stack.callback(lambda: (process.terminate(), process.wait(timeout=10)))
    assert process.stdout is not None
    return process.stdout.readline().strip()


def start_all(stack: contextlib.ExitStack, args: argparse.Namespace, tmp: Path) -> TracingBench:
    """Redis, the collector, the bare app and the gateways; their shutdown goes on ``stack``."""
    server = RedisServer().start()
    stack.callback(server.cleanup)
    collector = _start_collector(stack)
    python = str(ROOT / ".venv/bin/python")
    serve, env = [python, "-m", "gateway.cli", "serve"], ingress.gateway_env(server.url)
    uvicorn = [str(ROOT / ".venv/bin/uvicorn"), "bare_app:app", "--app-dir", str(ROOT / "bench")]
    plan = [("bare", [*uvicorn, *ingress.SERVER_OPTIONS], {**os.environ})]
    if args.baseline != "none":
        old = f"import sys; sys.path.insert(0, {str(_baseline_code(args.baseline, tmp))!r}); "
        old += "from gateway.cli import main; sys.exit(main())"
        plan.append(("baseline", [python, "-c", old, "serve"], env))
    plan.append(("gateway", serve, env))
    plan.append((TRACED, serve, env | {"GATEWAY_TRACING": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": collector}))
    targets = []
    for name, argv, target_env in plan:
        target = Target(name, free_port(), tmp / f"{name}.log")
        stack.callback(ingress.stop_target, target)
        where = ["--host", ingress.HOST, "--port", str(target.port)]
        ingress.start_target(target, [*argv, *where], env=target_env)
        targets.append(target)
    bench = TracingBench(args, tmp, targets, stack.enter_context(redis.Redis.from_url(server.url)))
    bench.collector = collector
    return bench


def section(bench: TracingBench, *, when: str, others: float) -> str:
    """The "## Tracing on the ack path" section of docs/benchmarks.md."""
    a = bench.args
    options = f"--duration {a.duration:g} --repeat {a.repeat} --rate {a.rate:g} --baseline {a.baseline}"
    gateways = [t.name for t in bench.targets if t.name != "bare"]
    phases = ("saturation", "latency")
    runs = [(name, phase, run) for name in gateways for phase in phases for run in bench.runs[phase, name]]
    ratios = [_ratio(bench, TRACED, "gateway")]
    if "baseline" in gateways:
        ratios.insert(0, _ratio(bench, "gateway", "baseline"))
    text = f"""{HEADING}

What `GATEWAY_TRACING` costs the ack path, from `bench/tracing.py`: the load of the Ingress section
above, in one invocation, against the bare ceiling, `gateway serve` on the code before traces
existed (`baseline`, `{a.baseline}`), this code with tracing off (`gateway`, the default) and with
`GATEWAY_TRACING=otlp` (`{TRACED}`: an ingress span per delivery, its context in the job, the
SDK's default batching, exported to a fake collector in its own process on the same two CPUs,
as the load generator and Redis are). Targets run one after the other, phases interleaved.
The machine is shared: other processes took **{others:.0%}** of its CPU time during the run, so
compare rows of this table only with each other.

- Command: `.venv/bin/python bench/tracing.py {options}` (ran {when})
- Machine: {ingress.machine()}

{chr(10).join(ingress.table(bench))}

Ratios of the medians: {"; ".join(ratios)}. With tracing off, the ack path makes two `is None`
tests more than the baseline's (`gateway/app.py`); how far apart the repeats of one target are,
below, is what the machine's noise alone does.

Each run, with the work behind its 200s and the spans the collector received:
"""
    return text + "".join(f"- {name} {phase}: {ingress.describe(run)}\n" for name, phase, run in runs)


def _ratio(bench: TracingBench, name: str, to: str) -> str:
    sat = bench.summary("saturation", name).rate / bench.summary("saturation", to).rate
    lat = bench.summary("latency", name).p99 / bench.summary("latency", to).p99
    return f"`{name}` / `{to}`: acks/s **{sat:.2f}** ×, p99 at {bench.args.rate:,.0f}/s {lat:.2f} ×"


def main(argv: list[str] | None = None) -> int:
    """Run, print, and write the docs section unless ``--no-write``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0], add_help=False)
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git ref run as baseline ('none': skip)")
    known, rest = parser.parse_known_args(argv)
    args = ingress.parse_args(["--duration", "3", "--repeat", "1", *rest])  # quick unless told
    args.baseline = known.baseline
    when, cpu = ingress.begin()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gateway-bench-tracing-")))
        bench = start_all(stack, args, tmp)
        print(f"targets: {', '.join(f'{t.name} :{t.port}' for t in bench.targets)}; logs in {tmp}")
        bench.execute()
    others = cpu.others()
    text = section(bench, when=when, others=others)
    print(f"\n{text}\ntook {cpu.wall():.0f} s")
    if not args.no_write:
        write_section(HEADING, text)
        print(f"wrote the {HEADING[3:]} section of {ingress.DOC}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit("interrupted: every process the bench started has been stopped")
