"""What every benchmark worker process shares (``worker.py`` for nats-py, ``natscore_worker.py`` for
nats-core): the clocks, the block runner and the JSON-lines protocol with ``run.py``. Imports no
NATS client, so both families' workers (on different Python versions) use it.

Protocol: the worker prints ``{"ready": [paths], "info": {versions}, "notes": [...]}``; then, per
line on stdin, ``{"run": [[path, n], ...]}`` measures those blocks back to back (no round trip to the
orchestrator between them) and prints ``{"samples": [[wall, cpu], ...]}`` (per-message seconds). An
empty line or EOF ends it. CPU time is the process's (``time.process_time()``: every thread, the
batch span processor's export included; the SDK workers flush their span processors before the
clocks stop).
"""

from __future__ import annotations

import asyncio
import gc
import json
import platform
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from importlib import metadata

# Per-message cost: (wall seconds, CPU seconds of this process, all threads).
Elapsed = tuple[float, float]
Path = Callable[[int], Awaitable[Elapsed]]
# Called before the clocks stop (the SDK workers: flush their span processors, so that exporting the
# block's spans is counted in the block).
BEFORE_STOP: list[Callable[[], object]] = []


def clock() -> Elapsed:
    return time.perf_counter(), time.process_time()


def since(t0: Elapsed) -> Elapsed:
    for fn in BEFORE_STOP:
        fn()
    return time.perf_counter() - t0[0], time.process_time() - t0[1]


class Counter:
    """Counts delivered messages; ``done`` is set when ``target`` have been seen."""

    def __init__(self) -> None:
        self.seen = 0
        self.target = 0
        self.done = asyncio.Event()

    def expect(self, n: int) -> None:
        self.seen = 0
        self.target = n
        self.done.clear()

    def tick(self) -> None:
        self.seen += 1
        if self.seen == self.target:
            self.done.set()


class Worker:
    """A worker's measurable paths, and what closes its clients (in order)."""

    def __init__(self) -> None:
        self.paths: dict[str, Path] = {}
        self.closers: list[Callable[[], Awaitable[object]]] = []

    async def block(self, path: str, n: int) -> Elapsed:
        # Every block starts from a clean heap, so that a collection of garbage left by an earlier
        # block (or by instrument()/uninstrument()) does not land in this block's time.
        gc.collect()
        wall, cpu = await self.paths[path](n)
        return wall / n, cpu / n

    async def close(self) -> None:
        for close in self.closers:
            await close()


def versions(dists: Iterable[str]) -> dict[str, str]:
    """This interpreter's and the given distributions' versions (for the report)."""
    out = {"Python": f"{platform.python_implementation()} {platform.python_version()}"}
    for dist in dists:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


async def serve(make: Callable[[], Awaitable[Worker]], dists: Iterable[str], notes: list[str] | None = None) -> None:
    """Answer the orchestrator until it sends an empty line (``notes``: said in the report)."""
    worker = await make()
    loop = asyncio.get_running_loop()
    ready = {
        "ready": sorted(worker.paths),
        "info": versions(dists),
        "notes": notes or [],
    }
    print(json.dumps(ready), flush=True)
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line.strip():
                break
            cmd = json.loads(line)
            samples = [await worker.block(path, n) for path, n in cmd["run"]]
            print(json.dumps({"samples": samples}), flush=True)
    finally:
        await worker.close()
