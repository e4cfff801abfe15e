"""Helpers for the reliability tests: span bookkeeping, swallowed-error capture, metric reads."""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

import opentelemetry.instrumentation.nats as _package

PACKAGE_DIR = str(Path(_package.__file__).resolve().parent)
LOGGER = "opentelemetry.instrumentation.nats"


class SpanLedger(SpanProcessor):
    """Counts ``on_start``/``on_end`` per span: every span started must be ended exactly once.

    Spans are told apart by ids *and* start time: under hypothesis the SDK's random id generator is
    reseeded for every example and repeats its ids."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started: dict[tuple[int, int, int | None], str] = {}
        self.ended: dict[tuple[int, int, int | None], int] = {}

    @staticmethod
    def _key(span: ReadableSpan) -> tuple[int, int, int | None]:
        assert span.context is not None
        return span.context.trace_id, span.context.span_id, span.start_time

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        with self._lock:
            self.started[self._key(span)] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        key = self._key(span)
        with self._lock:
            self.ended[key] = self.ended.get(key, 0) + 1

    def open_spans(self) -> list[str]:
        """Names of the spans started and not (yet) ended."""
        with self._lock:
            return sorted(name for key, name in self.started.items() if key not in self.ended)

    def assert_balanced(self) -> None:
        with self._lock:
            unended = sorted(name for key, name in self.started.items() if key not in self.ended)
            twice = {self.started.get(key, str(key)): n for key, n in self.ended.items() if n != 1}
            unknown = set(self.ended) - set(self.started)
        assert unended == [], f"spans started and never ended: {unended}"
        assert twice == {}, f"spans ended more than once: {twice}"
        assert unknown == set(), f"spans ended that were never started: {unknown}"

    async def wait_balanced(self, timeout: float = 5.0) -> None:
        """Wait until every started span has ended (``publish_async`` spans end on ack futures)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.open_spans() and loop.time() < deadline:
            await asyncio.sleep(0.01)
        self.assert_balanced()

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def captured_logs(name: str = LOGGER, level: int = logging.DEBUG) -> Iterator[list[logging.LogRecord]]:
    """Every record logged under ``name`` (at ``level`` and above) while the block runs."""
    handler = _Records()
    logger = logging.getLogger(name)
    old_level, old_propagate = logger.level, logger.propagate
    logger.setLevel(level)
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


def describe_records(records: list[logging.LogRecord]) -> list[str]:
    out = []
    for r in records:
        text = f"{r.name}:{r.levelname}:{r.getMessage()}"
        if r.exc_info and r.exc_info[1] is not None:
            text += " | " + "".join(traceback.format_exception(r.exc_info[1])).strip()
        out.append(text)
    return out


@contextmanager
def loop_errors() -> Iterator[list[dict[str, Any]]]:
    """Contexts the running event loop's exception handler receives while the block runs."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    try:
        yield errors
    finally:
        loop.set_exception_handler(previous)


def raised_in_instrumentation(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it chains to) has a traceback frame in this package."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        for frame, _ in traceback.walk_tb(e.__traceback__):
            if str(Path(frame.f_code.co_filename).resolve()).startswith(PACKAGE_DIR):
                return True
        todo += [e.__cause__, e.__context__]
    return False


def metric_points(reader: Any, name: str) -> list[tuple[dict[str, Any], Any]]:
    """``(attributes, value)`` of every data point of metric ``name`` (sum/gauge value or histogram count)."""
    data = reader.get_metrics_data()
    out: list[tuple[dict[str, Any], Any]] = []
    if data is None:
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    for p in m.data.data_points:
                        out.append((dict(p.attributes), getattr(p, "value", getattr(p, "count", None))))
    return out


def all_metric_attributes(reader: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(metric name, attributes)`` of every data point the reader collects."""
    data = reader.get_metrics_data()
    out: list[tuple[str, dict[str, Any]]] = []
    if data is None:
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for p in m.data.data_points:
                    out.append((m.name, dict(p.attributes)))
    return out


async def until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Wait until ``predicate()`` is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
