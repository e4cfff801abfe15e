"""The benchmark suite: per-message cost of the instrumented clients against the raw clients and
against hand-written OpenTelemetry code, all measured in one run, with the bounds checked.

    python benchmarks/run.py            # ~12 minutes; starts its own nats-server on a free loopback port
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
  code identical to raw. So **every bound compares two paths in the same process**, one worker
  process per kind and family: hand-written and instrumented blocks in the SDK worker
  (instrumenting before the block, uninstrumenting after); no-SDK blocks against plain blocks in the
  no-SDK worker (``instrument()`` with no provider before the block, ``uninstrument()`` after; the
  plain blocks run between them); after ``uninstrument()`` against raw in the unit worker.
- **After ``uninstrument()``** compares two sets of clients in the ``unit`` worker. At its start the
  worker connects the ``raw`` set and makes its subscriptions and responders, then instruments with
  the SDK, connects the ``switched`` set and makes its own (as an application does at start-up under
  instrumentation), sends traffic on every path through it, and calls ``uninstrument()``; the raw
  set is never used while instrumented (``common.unit_worker``). The bound is ``uninst.{op}`` (the
  switched set) against ``raw.{op}`` in quads like every other bound. An earlier design compared
  processes instead - a unit process before and after a switch halfway through the run, each block
  against a never-instrumented control process - and could not decide a 1.02 bound: the process
  offsets above and the machine's load drift between the halves stayed in its estimate (its
  clean-clone runs left every after-``uninstrument()`` bound undecided, e.g. nats-core request/reply
  1.012, interval 0.988-1.041). What this comparison catches: whatever the instrumentation leaves
  on the clients, subscriptions and responders that lived through ``instrument()`` and
  ``uninstrument()`` (a callback wrapped when the subscription was made, chained connection
  callbacks, per-client state) is in the switched set's path and not in the raw one. What it does
  not catch: a process-wide slowdown that affects every client alike (code left patched, a thread,
  garbage) is in both paths and divides out. That the globally patched code is restored exactly is
  checked by the test suite instead
  (``tests/matrix/test_lifecycle_metrics.py::test_uninstrument_restores_every_patched_attribute_exactly``:
  after ``uninstrument()`` every attribute the instrumentation patched, on both families, is the
  original object again).
- **Pairs, in ABBA order.** Each measurement is a quad of blocks A B B A (or B A A B) back to back:
  a linear drift cancels, and the load that two adjacent blocks share cancels in their ratio. The
  per-message noise that remains is mostly wake-up and cache cost that other processes' bursts add to
  a round trip (CPU time, not only wall time, grows under load: a raw JetStream publish took 75 µs of
  CPU on a quiet machine and 100-150 µs beside other test runs), and it is shared by adjacent blocks.
  Short blocks and many quads beat long ones: 12 rounds of request/reply quads gave intervals as
  narrow with 300 messages a block as with 1000, in less than a third of the time (the shared noise
  cancels better the closer the blocks are). The after-``uninstrument()`` bounds, whose 1.02 limit
  needs the narrowest intervals, run four quads a round of a quarter of the messages each
  (``UNIT_SPLIT``): alone, nats-py's four took 87 s for 240 such quads against 70 s for 60 full
  ones, and their intervals shrank from up to ±1 % to ±0.5 % (request/reply 1.002-1.021 to
  0.995-1.004, JetStream publish 0.994-1.009 to 0.997-1.004). Both paths of a quad run the same
  number of messages (sized by the baseline), so that per-block costs weigh alike. The JetStream
  stream's fill level made no difference to the client (purged against full: 0.99, 95 % interval
  0.92-1.07), so it is not reset between blocks.
- **Estimate and verdict.** A bound's estimate is the Hodges-Lehmann median of its per-quad log
  ratios with a 95 % Wilcoxon interval, see ``stats.py``. A bound **passes when the whole interval
  is within it** (shown at 95 %), fails when the whole interval is above it, and is **undecided**
  when the limit lies inside the interval: the run could not tell, and says so instead of letting
  noise pick the verdict. The exit status is 0 only when every bound passes.
- **Two stages.** The first stage runs ``--rounds`` rounds of every quad. The bounds it leaves
  undecided get up to ``--extra-rounds`` more rounds of the same quads, each round started only when
  it is expected to end within ``--minutes`` of the start; the verdict is taken once more at the end.
  Two looks, not a look after every round: repeated looks until the interval clears the limit would
  pass a bound that sits right at its limit far more often than 2.5 % of the time.
- **Time budget.** The defaults are 24 first-stage rounds, up to 36 second-stage rounds and 12
  minutes. A round of every bound of both families takes about 16 s here (the workers' start and the
  warm-up round about 20 s more), so the first stage takes about 7 minutes and leaves about 5 for
  the second, whose rounds are as much shorter as fewer bounds are left: a default run takes 8 to 12
  minutes, depending on how many bounds the first stage leaves undecided (on a machine a fifth
  slower, the first stage takes about 8).

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
from collections.abc import Callable
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
# The unit worker's bounds run this many quads a round, each of 1/UNIT_SPLIT of the messages: about
# the same time a round, in more and shorter quads (see "Short blocks" in the docstring).
UNIT_SPLIT = 4

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

# The worker kinds (worker.py says what each holds): one process of each per family.
UNIT, NOSDK, SDK = "unit", "nosdk", "sdk"
KINDS = (UNIT, NOSDK, SDK)


@dataclass(frozen=True)
class Bound:
    family: str
    title: str
    path: str
    baseline: str
    limit: float | None  # None: reported only
    worker: str  # the worker kind measuring both paths
    binding: bool = True  # a performance bound (decides the verdict and the exit status); else reported only

    @property
    def split(self) -> int:
        """Quads a round, each of ``1/split`` of the messages: ``UNIT_SPLIT`` for the unit worker's bounds."""
        return UNIT_SPLIT if self.worker == UNIT else 1


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
        Bound(f, "publish: constant traceparent header (floor) / raw", "floor.publish", "raw.publish", None, UNIT),
    ]
    return [b for b in out if {b.path, b.baseline} <= paths.get(b.worker, set())]


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
        self.info: dict[str, str] = ready["info"]
        self.notes: list[str] = ready.get("notes", [])

    def run(self, blocks: list[tuple[str, int]]) -> list[Sample]:
        """Per-message (wall, CPU) seconds of each block, measured back to back."""
        answer = self._send({"run": [[path, n] for path, n in blocks]})
        return [(float(w), float(c)) for w, c in answer["samples"]]


# --- rounds ---------------------------------------------------------------------------------------

# The defaults: the first stage and, within MINUTES from the start, the second (see the docstring).
ROUNDS, EXTRA_ROUNDS, MINUTES = 24, 36, 12.0

# After the warm-up round every baseline gets enough messages for a block of at least this long (a
# short block - raw publish is ~1 µs a message - is easily swamped by a burst from another process);
# both paths of a bound run the same number (per-block costs, such as the final flush, then weigh alike).
BLOCK_SECONDS = 0.05


def log_ratio(a: tuple[Sample, Sample], b: tuple[Sample, Sample], clock: int) -> float:
    """Log ratio of two paths' costs from a quad (two blocks of each)."""
    return (math.log(a[0][clock]) + math.log(a[1][clock]) - math.log(b[0][clock]) - math.log(b[1][clock])) / 2


@dataclass
class Measurements:
    """Everything a run measured."""

    blocks: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)  # (family, path) -> per block
    quads: dict[Bound, list[tuple[float, float]]] = field(default_factory=dict)  # paired: (CPU, wall) log ratios

    def add_blocks(self, family: str, path: str, samples: list[Sample]) -> None:
        self.blocks.setdefault((family, path), []).extend(samples)


class Suite:
    """The workers of every family (one of each kind) and the rounds over them."""

    def __init__(self, families: list[Family], url: str) -> None:
        self.families = families
        self.workers: dict[tuple[str, str], Worker] = {}
        self.bounds: list[Bound] = []
        self.notes: dict[str, list[str]] = {}
        self.info: dict[str, dict[str, str]] = {}
        try:
            for family in families:
                for kind in KINDS:
                    self.workers[(family.name, kind)] = Worker(family, kind, url)
                self.info[family.name] = self.workers[(family.name, SDK)].info
                paths = {k: w.paths for (f, k), w in self.workers.items() if f == family.name}
                self.bounds += bounds(family, paths)
                self.notes[family.name] = sorted(
                    {n for (f, _), w in self.workers.items() if f == family.name for n in w.notes}
                )
        except BaseException:
            self.close()
            raise
        self.family = {f.name: f for f in families}
        self.sizes: dict[tuple[str, str], int] = {}
        self.first_stage = 0.0  # seconds, the longest round of the first stage

    def close(self) -> None:
        for w in self.workers.values():
            w.close()

    def count(self, b: Bound, scale: float) -> int:
        """Messages per block of either path of ``b``: the same for both, sized by the baseline."""
        return self.sizes.get((b.family, b.baseline)) or self.base(b.family, b.baseline, scale / b.split)

    def quad(self, b: Bound, rng: random.Random, scale: float, m: Measurements | None) -> None:
        """One quad of ``b``'s two paths (ABBA or BABA) in its worker, recorded into ``m``; ``None``:
        the warm-up round, which sizes the blocks instead."""
        a_first = rng.random() < 0.5
        n = self.count(b, scale)
        blocks = [(b.path, n), (b.baseline, n)]
        a, z = (0, 1) if a_first else (1, 0)  # A B B A or B A A B
        got = self.workers[(b.family, b.worker)].run([blocks[i] for i in (a, z, z, a)])
        pa = (got[0], got[3]) if a_first else (got[1], got[2])
        pb = (got[1], got[2]) if a_first else (got[0], got[3])
        if m is None:
            self.sizes.setdefault((b.family, b.baseline), self.size(b.family, b.baseline, scale / b.split, pb[0][WALL]))
            return
        m.add_blocks(b.family, b.path, list(pa))
        m.add_blocks(b.family, b.baseline, list(pb))
        m.quads.setdefault(b, []).append((log_ratio(pa, pb, CPU), log_ratio(pa, pb, WALL)))

    def base(self, family: str, path: str, scale: float) -> int:
        return max(20, int(self.family[family].messages[path.rsplit(".", 1)[1]] * scale))

    def size(self, family: str, path: str, scale: float, wall: float) -> int:
        """Messages per block: at least the family's count (scaled), more for fast baselines (by the
        warm-up's per-message wall time), so that a baseline block lasts at least ``BLOCK_SECONDS`` (scaled)."""
        base = self.base(family, path, scale)
        return min(base * 100, max(base, int(BLOCK_SECONDS * scale / wall))) if wall > 0 else base

    def round(self, bounds: list[Bound], rng: random.Random, scale: float, m: Measurements | None) -> float:
        """``split`` quads of each of ``bounds``, in a shuffled order; its duration in seconds."""
        t0 = time.monotonic()
        order = [b for b in bounds for _ in range(b.split)]
        rng.shuffle(order)
        for b in order:
            self.quad(b, rng, scale, m)
        return time.monotonic() - t0

    def run(self, rounds: int, scale: float, shuffle: int) -> Measurements:
        """The warm-up round, then ``rounds`` rounds of every bound."""
        rng = random.Random(shuffle)
        m = Measurements()
        took = []
        for r in range(rounds + 1):
            took.append(self.round(self.bounds, rng, scale, m if r else None))
            label = "warm-up round" if r == 0 else f"round {r}/{rounds}"
            print(f"  {label} ({took[-1]:.1f} s)", file=sys.stderr, flush=True)
        self.first_stage = max(took[1:], default=took[0])  # the longest round
        return m

    def extend(self, m: Measurements, extra: int, deadline: float, shuffle: int, scale: float) -> str:
        """The second stage: up to ``extra`` more rounds of the bounds the first stage left undecided,
        each started only when it is expected to end by ``deadline`` (a ``time.monotonic()``; expected:
        as long as the longest such round so far, at first the longest first-stage round's share for
        these bounds). Returns what it did, for the report."""
        todo = rep.undecided(m, self.bounds)
        if not todo or extra <= 0:
            return "none needed" if not todo else "none (--extra-rounds 0)"
        print(f"  second stage: {len(todo)} undecided bounds, up to {extra} more rounds", file=sys.stderr, flush=True)
        rng = random.Random(shuffle + 1)
        expected = self.first_stage * len(todo) / max(1, len(self.bounds))
        done = 0
        for e in range(extra):
            if time.monotonic() + expected > deadline:
                break
            took = self.round(todo, rng, scale, m)
            expected = max(expected, took) if done else took
            done += 1
            print(f"  second-stage round {e + 1}/{extra} ({took:.1f} s)", file=sys.stderr, flush=True)
        titles = ", ".join(f"{b.family} {b.title.split(' / ')[0]}" for b in todo)
        stopped = "" if done == extra else " (stopped by --minutes)"
        return f"{done} more rounds{stopped} for {len(todo)} bounds undecided after the first stage ({titles})"


# --- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds of the first stage (default {ROUNDS})")
    parser.add_argument(
        "--extra-rounds",
        type=int,
        default=EXTRA_ROUNDS,
        help=f"second stage: rounds for the undecided bounds (default {EXTRA_ROUNDS})",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=MINUTES,
        help=f"no second-stage round starts that would end after this, from the start (default {MINUTES:g})",
    )
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
        suite = Suite(families, url)
        if args.only:
            words = args.only.split(",")
            suite.bounds = [b for b in suite.bounds if any(w in b.title for w in words)]
        measured = suite.run(rounds, scale, args.shuffle)
        extension = suite.extend(measured, extra, t0 + args.minutes * 60, args.shuffle, scale)
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
