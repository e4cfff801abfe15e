"""The benchmark suite: per-message cost of the instrumented clients against the raw clients and
against hand-written OpenTelemetry code, all measured in one run, with the bounds checked.

    python benchmarks/run.py            # ~10 minutes; starts its own nats-server on a free loopback port
    scripts/bench.sh suite              # the same, with the dependencies (and a Python 3.13 env) installed
    python benchmarks/run.py --quick    # a smoke run: too few pairs for most bounds to be decided

Two client families: nats-py (publish, callback delivery, request/reply, JetStream publish) and, when a
Python 3.13 interpreter with nats-core and nats-jetstream is given (``--natscore-python``), nats-core
(the same plus iterator receive, ``async for msg in sub``, which calls ``sub.next()``). The cost is
the CPU time of the worker process per message (``time.process_time()``: all its threads, the batch
span processor's export included), with wall time beside it. nats-server is pinned to one CPU and the
workers to the others (``--no-pin`` to turn that off); one worker measures at a time.

Why the design is what it is (measured on the 2-core machines this runs on, 2026-12):

- **Identical code in two processes is not equally fast.** Four processes running the same raw
  JetStream publish, measured in turn for a minute, came out at 1.17/0.94/0.94/0.96 of their
  geometric mean (another run: 0.94/1.21/0.94/0.94, with address-space randomisation off; others:
  all within 2 %); an offset stays with its process for the whole run, and which process gets it
  is random. With raw and "after ``uninstrument()``" in different processes, a bound of 1.02 was
  decided by which processes were paired: one run failed with 1.064 (middle half 1.009-1.171) on
  code identical to raw. So **every bound compares two paths in the same process**: hand-written
  and instrumented blocks in the SDK worker (instrumenting before the block, uninstrumenting after);
  no-SDK blocks against plain blocks in the no-SDK worker (``instrument()`` with no provider before
  the block, ``uninstrument()`` after; the plain blocks run between them).
- **After ``uninstrument()``** is measured in the very same process before ``instrument()`` and after
  ``uninstrument()`` (the ``unit`` worker switches once, halfway through the rounds). A process's
  cost also drifts with the machine's load, so each unit block is paired with a block of a control
  process that is never instrumented (the same history otherwise); the bound's estimate is how much
  the unit/control ratio rose across the switch. The process offset is in both halves and divides
  out; the load is in both blocks of a pair. Each of the ``--units`` unit/control pairs measures
  every round.
- **Pairs, in ABBA order.** Each measurement is a quad of blocks A B B A (or B A A B) back to back:
  a linear drift cancels, and the load that two adjacent blocks share cancels in their ratio. The
  per-message noise that remains is mostly wake-up and cache cost that other processes' bursts add to
  a round trip (CPU time, not only wall time, grows under load: a raw JetStream publish took 75 µs of
  CPU on a quiet machine and 100-150 µs beside other test runs), and it is shared by adjacent blocks.
  Short blocks and many quads beat long ones: 12 rounds of request/reply quads gave intervals as
  narrow with 300 messages a block as with 1000, in less than a third of the time (the shared noise
  cancels better the closer the blocks are). The JetStream stream's fill level made no difference to
  the client (purged against full: 0.99, 95 % interval 0.92-1.07), so it is not reset between blocks.
- **Estimate and verdict.** A bound's estimate is the Hodges-Lehmann median of its per-quad log
  ratios with a 95 % Wilcoxon interval (after ``uninstrument()``: the median of the within-unit
  after-minus-before differences with a stratified Mann-Whitney interval), see ``stats.py``. A bound
  **passes when the whole interval is within it** (shown at 95 %), fails when the whole interval is
  above it, and is **undecided** when the limit lies inside the interval: the run could not tell, and
  says so instead of letting noise pick the verdict. The exit status is 0 only when every bound passes.
- **Two stages.** The first stage runs ``--rounds`` rounds of every quad (units switch halfway). The
  bounds it leaves undecided get up to ``--extra-rounds`` more rounds, as long as ``--minutes`` allow
  (after-``uninstrument()`` bounds on new unit/control pairs, switched halfway through, and on the
  first units after their switch); the verdict is taken once more at the end. Two looks, not a look
  after every round: repeated looks until the interval clears the limit would pass a bound that sits
  right at its limit far more often than 2.5 % of the time.

Each round runs every quad once, in a shuffled order; round 0 is a warm-up (dropped) that sizes the
blocks to at least ``BLOCK_SECONDS`` each. Writes ``benchmarks/results/results.md`` and
``benchmarks/results/paths.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import report as rep

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


# --- what is measured -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """A client family: its worker script, interpreter, operations and bounds."""

    name: str
    script: str
    operations: tuple[str, ...]
    titles: dict[str, str]
    messages: dict[str, int]  # per block, at least (scaled)
    nosdk_limits: dict[str, float]  # no SDK / raw; other operations: reported
    hand_limits: dict[str, float]  # unsampled and sampled / hand-written
    ratio_operations: tuple[str, ...]  # the reported ParentBased(TraceIdRatioBased(0.01)) rows
    python: str = sys.executable
    patched: tuple[str, ...] = ()  # the operations the installed instrumentation patches (nats-core)


TITLES = {
    "publish": "publish",
    "callback": "callback delivery",
    "iterator": "iterator receive",
    "request": "request/reply",
    "js_publish": "JetStream publish",
}
# The bounds, as multiples of the baseline: no SDK 1.6 of raw for publish and 1.3 for delivery
# (request/reply and JetStream publish: reported); unsampled and sampled 1.0 of hand-written for publish
# and delivery, 1.05 for request/reply and JetStream publish; after uninstrument() 1.02 of raw; metrics
# on 1.1 of hand-written span + metrics.
UNINSTRUMENTED_LIMIT = 1.02
METRICS_LIMIT = 1.1

NATS_PY = Family(
    name="nats-py",
    script="worker.py",
    operations=("publish", "callback", "request", "js_publish"),
    titles=TITLES,
    # Messages per block, at least: short blocks, many quads (the noise that adjacent blocks share
    # cancels; a run of 12 rounds of request/reply quads gave as narrow intervals with 300 messages a
    # block as with 1000, in less than a third of the time).
    messages={"publish": 600, "callback": 600, "request": 300, "js_publish": 400},
    nosdk_limits={"publish": 1.6, "callback": 1.3},
    hand_limits={"publish": 1.0, "callback": 1.0, "request": 1.05, "js_publish": 1.05},
    ratio_operations=("publish", "callback"),
)
NATS_CORE = Family(
    name="nats-core",
    script="natscore_worker.py",
    operations=("publish", "callback", "iterator", "request", "js_publish"),
    titles=TITLES,
    # nats-core 0.2 flushes a connection's writes at most every 5 ms: a sequential round trip takes
    # 3-4 ms of wall time (mostly idle), so its blocks are short.
    messages={"publish": 600, "callback": 600, "iterator": 600, "request": 50, "js_publish": 60},
    nosdk_limits={"publish": 1.6, "callback": 1.3, "iterator": 1.3},
    hand_limits={"publish": 1.0, "callback": 1.0, "iterator": 1.0, "request": 1.05, "js_publish": 1.05},
    ratio_operations=(),
)

# The worker kinds (worker.py says what each holds) and how many processes of each.
CONTROL, UNIT, NOSDK, SDK = "control", "unit", "nosdk", "sdk"


@dataclass(frozen=True)
class Bound:
    family: str
    title: str
    path: str
    baseline: str
    limit: float | None  # None: reported only
    worker: str  # the worker kind measuring both paths; UNIT: before/after the switch, against the control
    binding: bool = True  # a performance bound (decides the verdict and the exit status); else reported only


def bounds(family: Family, paths: dict[str, set[str]]) -> list[Bound]:
    """The family's bounds whose paths its workers have (``paths``: worker kind -> paths)."""
    f = family.name
    out: list[Bound] = []
    for op in family.operations:
        t = family.titles[op]
        nosdk = family.nosdk_limits.get(op)
        limit = family.hand_limits[op]
        out += [
            Bound(f, f"{t}: no SDK / raw", f"nosdk.{op}", f"base.{op}", nosdk, NOSDK, nosdk is not None),
            Bound(f, f"{t}: unsampled / hand-written", f"off.inst.{op}", f"off.hand.{op}", limit, SDK),
            Bound(f, f"{t}: sampled / hand-written", f"on.inst.{op}", f"on.hand.{op}", limit, SDK),
            Bound(f, f"{t}: after uninstrument() / raw", f"uninst.{op}", f"raw.{op}", UNINSTRUMENTED_LIMIT, UNIT),
        ]
        if op in family.ratio_operations:
            out.append(Bound(f, f"{t}: ratio 0.01 / hand-written", f"ratio.inst.{op}", f"ratio.hand.{op}", None, SDK))
    out += [
        Bound(
            f,
            "publish: metrics on / hand-written + metrics",
            "metrics.inst.publish",
            "metrics.hand.publish",
            METRICS_LIMIT,
            SDK,
        ),
        Bound(f, "publish: constant traceparent header (floor) / raw", "floor.publish", "raw.publish", None, CONTROL),
    ]

    def present(b: Bound) -> bool:
        if b.worker == UNIT:
            return b.baseline in paths.get(UNIT, set())
        return {b.path, b.baseline} <= paths.get(b.worker, set())

    return [b for b in out if present(b)]


# --- CPU placement --------------------------------------------------------------------------------

# With two or more CPUs, nats-server gets the last one and the workers the others, so that a worker
# never shares a CPU with the server (otherwise the scheduler's placement differs from process to
# process and biases comparisons between workers). --no-pin turns this off.
SERVER_CPUS: set[int] | None = None
WORKER_CPUS: set[int] | None = None


def plan_cpus(enabled: bool) -> None:
    global SERVER_CPUS, WORKER_CPUS
    cpus = sorted(os.sched_getaffinity(0)) if enabled and hasattr(os, "sched_getaffinity") else []
    if len(cpus) >= 2:
        SERVER_CPUS, WORKER_CPUS = {cpus[-1]}, set(cpus[:-1])


def pin(cpus: set[int] | None) -> Callable[[], None] | None:
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


# --- nats-server ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A throw-away nats-server with JetStream on a free loopback port."""

    def __init__(self) -> None:
        self.binary = os.environ.get("NATS_SERVER_BIN") or shutil.which("nats-server") or "/usr/sbin/nats-server"
        if not Path(self.binary).exists():
            raise SystemExit("nats-server not found: install it (apt-get install nats-server) or set NATS_SERVER_BIN")
        self.workdir = Path(tempfile.mkdtemp(prefix="otel-nats-bench-"))
        self.name = f"otel-bench-{uuid.uuid4().hex[:8]}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> str:
        for _ in range(5):  # another process may take the "free" port first
            self.port = free_port()
            conf = self.workdir / "server.conf"
            conf.write_text(
                f"listen: 127.0.0.1:{self.port}\nserver_name: {self.name}\n"
                f'jetstream {{ store_dir: "{self.workdir / "js"}" }}\n'
            )
            log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - owned by the process
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(conf)], stdout=log, stderr=log, preexec_fn=pin(SERVER_CPUS)
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                        if f'"server_name":"{self.name}"'.encode() in s.recv(4096):
                            return f"nats://127.0.0.1:{self.port}"
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise SystemExit(f"nats-server did not start: {(self.workdir / 'server.log').read_text()}")

    def version(self) -> str:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, check=False)
        return (out.stdout or out.stderr).strip()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


# --- workers --------------------------------------------------------------------------------------


Sample = tuple[float, float]  # per-message (wall, CPU) seconds
WALL, CPU = 0, 1


class WorkerProcess:
    """A benchmark worker process pinned to the worker CPUs, answering one JSON line per request
    (``benchmarks/scale.py`` uses it too)."""

    def __init__(self, argv: list[str], label: str, python: str = sys.executable) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}  # defaults only
        env["PYTHONHASHSEED"] = "0"
        self.label = label
        self.proc = subprocess.Popen(
            [python, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=HERE,
            preexec_fn=pin(WORKER_CPUS),
        )

    def _read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"{self.label} exited with {self.proc.wait()}")
        return json.loads(line)

    def _send(self, request: Any) -> Any:
        stdin: IO[str] | None = self.proc.stdin
        assert stdin is not None
        stdin.write(json.dumps(request) + "\n")
        stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.write("\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Worker(WorkerProcess):
    """A suite worker (``worker.py`` or ``natscore_worker.py``, see ``protocol.py``)."""

    def __init__(self, family: Family, kind: str, url: str) -> None:
        argv = [str(HERE / family.script), kind, url, ",".join(family.patched)]
        super().__init__(argv, f"{family.name} worker {kind!r}", family.python)
        ready = self._read()
        self.paths: set[str] = set(ready["ready"])
        self.commands: set[str] = set(ready["commands"])
        self.info: dict[str, str] = ready["info"]
        self.notes: list[str] = ready.get("notes", [])

    def run(self, blocks: list[tuple[str, int]]) -> list[Sample]:
        """Per-message (wall, CPU) seconds of each block, measured back to back."""
        answer = self._send({"run": [[path, n] for path, n in blocks]})
        return [(float(w), float(c)) for w, c in answer["samples"]]

    def command(self, name: str) -> None:
        self._send({"command": name})


# --- rounds ---------------------------------------------------------------------------------------

# After the warm-up round every path gets enough messages for a block of at least this long (a
# short block - raw publish is ~1 µs a message - is easily swamped by a burst from another process).
BLOCK_SECONDS = 0.05


def log_ratio(a: tuple[Sample, Sample], b: tuple[Sample, Sample], clock: int) -> float:
    """Log ratio of two paths' costs from a quad (two blocks of each)."""
    return (math.log(a[0][clock]) + math.log(a[1][clock]) - math.log(b[0][clock]) - math.log(b[1][clock])) / 2


@dataclass
class Measurements:
    """Everything a run measured."""

    blocks: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)  # (family, path) -> per block
    quads: dict[Bound, list[tuple[float, float]]] = field(default_factory=dict)  # paired: (CPU, wall) log ratios
    # after uninstrument(): per unit, the (CPU, wall) log ratios unit/control before and after the switch
    switched: dict[Bound, dict[int, tuple[list[tuple[float, float]], list[tuple[float, float]]]]] = field(
        default_factory=dict
    )

    def add_blocks(self, family: str, path: str, samples: list[Sample]) -> None:
        self.blocks.setdefault((family, path), []).extend(samples)


class Suite:
    """The workers of every family and the rounds over them."""

    def __init__(self, families: list[Family], url: str, units: int) -> None:
        self.families = families
        self.units = units
        self.workers: dict[tuple[str, str, int], Worker] = {}
        self.bounds: list[Bound] = []
        self.notes: dict[str, list[str]] = {}
        self.info: dict[str, dict[str, str]] = {}
        try:
            for family in families:
                for kind, count in ((CONTROL, units), (UNIT, units), (NOSDK, 1), (SDK, 1)):
                    for i in range(count):
                        self.workers[(family.name, kind, i)] = Worker(family, kind, url)
                first = self.workers[(family.name, SDK, 0)]
                self.info[family.name] = first.info
                paths = {k: w.paths for (f, k, _), w in self.workers.items() if f == family.name}
                self.bounds += bounds(family, paths)
                self.notes[family.name] = sorted(
                    {n for (f, _, _), w in self.workers.items() if f == family.name for n in w.notes}
                )
        except BaseException:
            self.close()
            raise
        self.family = {f.name: f for f in families}
        self.sizes: dict[tuple[str, str], int] = {}

    def close(self) -> None:
        for w in self.workers.values():
            w.close()

    def count(self, b: Bound, path: str, scale: float) -> int:
        return self.sizes.get((b.family, path)) or self.base(b.family, path, scale)

    def replica(self, b: Bound, kind: str, r: int) -> Worker:
        n = sum(1 for (f, k, _) in self.workers if f == b.family and k == kind)
        return self.workers[(b.family, kind, r % n)]

    def quad(
        self, b: Bound, r: int, unit: int, rng: random.Random, scale: float, m: Measurements | None, after: bool
    ) -> None:
        """One quad of ``b``'s two paths (ABBA or BABA), recorded into ``m``; ``None``: the warm-up
        round, which sizes the blocks instead."""
        a_first = rng.random() < 0.5
        if b.worker == UNIT:  # the same path in the unit and in the control
            n = self.count(b, b.baseline, scale)
            workers = [self.workers[(b.family, UNIT, unit)], self.workers[(b.family, CONTROL, unit)]]
            blocks = [(b.baseline, n)] * 2
        else:
            workers = [self.replica(b, b.worker, r)]
            blocks = [(b.path, self.count(b, b.path, scale)), (b.baseline, self.count(b, b.baseline, scale))]
        a, z = (0, 1) if a_first else (1, 0)  # A B B A or B A A B
        if len(workers) == 2:
            got = [workers[i].run([blocks[i]])[0] for i in (a, z, z, a)]
        else:
            got = workers[0].run([blocks[i] for i in (a, z, z, a)])
        pa = (got[0], got[3]) if a_first else (got[1], got[2])
        pb = (got[1], got[2]) if a_first else (got[0], got[3])
        if m is None:
            for (path, _), (wall, _) in zip(blocks, (pa[0], pb[0]), strict=True):
                self.sizes.setdefault((b.family, path), self.size(b.family, path, scale, wall))
            return
        ratios = (log_ratio(pa, pb, CPU), log_ratio(pa, pb, WALL))
        m.add_blocks(b.family, b.baseline, list(pb))
        if b.worker == UNIT:
            m.add_blocks(b.family, b.path if after else b.baseline, list(pa))
            halves = m.switched.setdefault(b, {}).setdefault(unit, ([], []))
            halves[1 if after else 0].append(ratios)
        else:
            m.add_blocks(b.family, b.path, list(pa))
            m.quads.setdefault(b, []).append(ratios)

    def base(self, family: str, path: str, scale: float) -> int:
        return max(20, int(self.family[family].messages[path.rsplit(".", 1)[1]] * scale))

    def size(self, family: str, path: str, scale: float, wall: float) -> int:
        """Messages per block: at least the family's count (scaled), more for fast paths (by the warm-up's
        per-message wall time), so that a block lasts at least ``BLOCK_SECONDS`` (scaled)."""
        base = self.base(family, path, scale)
        return min(base * 100, max(base, int(BLOCK_SECONDS * scale / wall))) if wall > 0 else base

    def add_units(self, family: str, url: str) -> list[int]:
        """Start another ``units`` unit/control pairs of ``family`` (for the extension); their indices."""
        fam = self.family[family]
        first = sum(1 for (f, k, _) in self.workers if f == family and k == UNIT)
        added = list(range(first, first + self.units))
        for i in added:
            for kind in (UNIT, CONTROL):
                self.workers[(family, kind, i)] = Worker(fam, kind, url)
        return added

    def round(
        self, r: int, plan: list[tuple[Bound, int, bool]], rng: random.Random, scale: float, m: Measurements | None
    ) -> None:
        """One quad per ``(bound, unit, after)`` of ``plan``, bounds in a shuffled order."""
        by_bound: dict[Bound, list[tuple[int, bool]]] = {}
        for b, unit, after in plan:
            by_bound.setdefault(b, []).append((unit, after))
        order = list(by_bound)
        rng.shuffle(order)
        for b in order:
            for unit, after in by_bound[b]:
                self.quad(b, r, unit, rng, scale, m, after)

    def run(self, rounds: int, scale: float, shuffle: int) -> Measurements:
        """The warm-up round, then ``rounds`` rounds; the units switch after the first half."""
        rng = random.Random(shuffle)
        m = Measurements()
        units = range(self.units)
        switch_after = rounds // 2  # rounds 1..rounds/2 before the switch, the rest after it
        for r in range(rounds + 1):
            after = r > switch_after
            # after uninstrument(): every unit each round (its estimate needs the most quads)
            plan = [(b, i, after) for b in self.bounds for i in (units if b.worker == UNIT else [0])]
            t0 = time.monotonic()
            self.round(r, plan, rng, scale, m if r else None)
            label = "warm-up round" if r == 0 else f"round {r}/{rounds}"
            print(f"  {label} ({time.monotonic() - t0:.1f} s)", file=sys.stderr, flush=True)
            if r == switch_after:
                self.switch(units)
        return m

    def extend(self, m: Measurements, extra: int, deadline: float, url: str, scale: float, shuffle: int) -> str:
        """The second stage: up to ``extra`` more rounds for the bounds the first stage left undecided
        (until ``deadline``, a ``time.monotonic()``). An after-uninstrument() bound gets quads from new
        unit/control pairs (switched halfway through the extension) and more after-quads from the
        first ones. Returns what it did, for the report."""
        todo = rep.undecided(m, self.bounds)
        if not todo or extra <= 0:
            return "none needed" if not todo else "none (--extra-rounds 0)"
        print(f"  extension: {len(todo)} undecided bounds, up to {extra} more rounds", file=sys.stderr, flush=True)
        rng = random.Random(shuffle + 1)
        new_units: dict[str, list[int]] = {}
        for f in sorted({b.family for b in todo if b.worker == UNIT}):
            new_units[f] = self.add_units(f, url)
        old = range(self.units)
        # a dropped warm-up quad on each new unit
        self.round(0, [(b, i, False) for b in todo if b.worker == UNIT for i in new_units[b.family]], rng, scale, None)
        done = 0
        for e in range(extra):
            if time.monotonic() > deadline:
                break
            after = e >= extra // 2
            plan: list[tuple[Bound, int, bool]] = []
            for b in todo:
                if b.worker == UNIT:
                    plan += [(b, i, after) for i in new_units[b.family]] + [(b, i, True) for i in old]
                else:
                    plan.append((b, 0, False))
            t0 = time.monotonic()
            self.round(1 + e, plan, rng, scale, m)
            done += 1
            print(f"  extension round {e + 1}/{extra} ({time.monotonic() - t0:.1f} s)", file=sys.stderr, flush=True)
            if e == extra // 2 - 1 and new_units:
                self.switch([i for added in new_units.values() for i in added])
        titles = ", ".join(f"{b.family} {b.title.split(' / ')[0]}" for b in todo)
        return f"{done} more rounds for {len(todo)} bounds undecided after the first stage ({titles})"

    def switch(self, units: Iterable[int]) -> None:
        """The units ``units`` instrument, send traffic and uninstrument; their controls send the same
        traffic."""
        t0 = time.monotonic()
        wanted = set(units)
        for (_, kind, i), w in self.workers.items():
            if i in wanted and kind in (UNIT, CONTROL) and "switch" in w.commands:
                w.command("switch")
        print(
            f"  units {sorted(wanted)} switched: instrumented, traffic sent, uninstrumented"
            f" ({time.monotonic() - t0:.1f} s)",
            file=sys.stderr,
            flush=True,
        )


# --- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20, help="rounds of the first stage (default 20)")
    parser.add_argument(
        "--extra-rounds", type=int, default=12, help="second stage: rounds for the undecided bounds (default 12)"
    )
    parser.add_argument(
        "--minutes", type=float, default=10, help="no second-stage round starts after this (default 10)"
    )
    parser.add_argument("--units", type=int, default=2, help="unit/control process pairs (default 2)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the messages per block")
    parser.add_argument("--quick", action="store_true", help="6 rounds at a quarter of the messages")
    parser.add_argument("--shuffle", type=int, default=1, help="which per-round shuffle (random generator start)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results.md and paths.png go")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write results")
    parser.add_argument("--no-pin", action="store_true", help="do not pin nats-server and the workers to CPUs")
    parser.add_argument("--families", default="nats-py,nats-core", help="client families (default both)")
    parser.add_argument("--only", help="comma-separated words: measure only the bounds whose title contains one")
    parser.add_argument(
        "--natscore-python",
        help="a Python 3.13 interpreter with nats-core, nats-jetstream, the SDK and this package"
        " (scripts/bench.sh makes .venv313); without it nats-core is skipped",
    )
    args = parser.parse_args(argv)
    rounds, scale, extra = (6, 0.25, 0) if args.quick else (args.rounds, args.scale, args.extra_rounds)
    if args.quick:
        print("--quick: a smoke run; too few pairs for most bounds to be decided", file=sys.stderr)

    wanted = set(args.families.split(","))
    families, skipped = [], []
    if "nats-py" in wanted:
        families.append(NATS_PY)
    if "nats-core" in wanted:
        if args.natscore_python:
            python = os.path.abspath(args.natscore_python)  # (not resolved: a venv's python is a link)
            probe = subprocess.run(
                [python, str(HERE / NATS_CORE.script), "probe"], capture_output=True, text=True, cwd=HERE
            )
            if probe.returncode:
                raise SystemExit(f"{python} cannot run the nats-core worker:\n{probe.stderr}")
            patched = tuple(json.loads(probe.stdout)["patched"])
            families.append(replace(NATS_CORE, python=python, patched=patched))
        else:
            skipped.append("nats-core: skipped (no --natscore-python: a Python 3.13 with nats-core and nats-jetstream)")
    for note in skipped:
        print(note, file=sys.stderr)

    plan_cpus(not args.no_pin)
    server = Server()
    url = server.start()
    info = rep.machine(HERE)
    info["nats-server"] = server.version()
    info["CPU placement"] = (
        f"nats-server on CPU {sorted(SERVER_CPUS)}, workers on CPUs {sorted(WORKER_CPUS or ())}"
        if SERVER_CPUS
        else "not pinned"
    )
    print(f"nats-server at {url}; {rounds} rounds", file=sys.stderr)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    t0 = time.monotonic()
    suite: Suite | None = None
    try:
        suite = Suite(families, url, args.units)
        if args.only:
            words = args.only.split(",")
            suite.bounds = [b for b in suite.bounds if any(w in b.title for w in words)]
        measured = suite.run(rounds, scale, args.shuffle)
        extension = suite.extend(measured, extra, t0 + args.minutes * 60, url, scale, args.shuffle)
    finally:
        if suite is not None:
            suite.close()
        server.cleanup()
    if load_before is not None:
        info["load average (1 min) before / after"] = f"{load_before:.2f} / {os.getloadavg()[0]:.2f}"
    info["duration"] = f"{(time.monotonic() - t0) / 60:.1f} minutes"

    notes = {**suite.notes}
    for line in skipped:
        notes.setdefault(line.split(":")[0], []).append(line.split(": ", 1)[1])
    report = rep.Report(
        measured,
        suite.bounds,
        families,
        info,
        suite.info,
        notes,
        rounds=rounds,
        extension=extension,
        units=args.units,
        block_seconds=BLOCK_SECONDS,
    )
    print(report.text())
    if not args.no_write:
        args.out.mkdir(parents=True, exist_ok=True)
        command = "python benchmarks/run.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
        (args.out / "results.md").write_text(report.markdown(command.strip()))
        try:
            rep.plot(report, args.out / "paths.png")
        except ImportError:
            print("matplotlib is not installed: no plot (pip install matplotlib)", file=sys.stderr)
        print(f"wrote {args.out / 'results.md'} and {args.out / 'paths.png'}", file=sys.stderr)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
