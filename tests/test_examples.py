"""The examples run as their docstrings say, against a real nats-server, and make exactly the traces they describe.

Each example runs in a subprocess with NATS_URL pointing at a JetStream-enabled server of its own.
In-code examples print one line per span (``<name> <KIND> trace=… span=… parent=… [extra]``);
the ``opentelemetry-instrument`` ones print the console exporter's JSON objects.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import assert_child, instrumented_command, load_script
from tests.natsserver import NatsServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

_LINE = re.compile(
    r"^(?P<name>\S.*?)\s+(?P<kind>INTERNAL|PRODUCER|CONSUMER|CLIENT|SERVER)\s+"
    r"trace=(?P<trace>[0-9a-f]{32}) span=(?P<span>[0-9a-f]{16}) parent=(?P<parent>[0-9a-f]{16}|-)"
    r"(?P<extra>(?: \S+=\S+)*)$"
)


@dataclass
class Span:
    name: str
    kind: str
    trace: str
    span: str
    parent: str | None
    extra: dict[str, str]


@pytest.fixture(scope="module")
def example_server() -> Iterator[NatsServer]:
    srv = NatsServer(jetstream=True).start()
    yield srv
    srv.cleanup()


def run(server: NatsServer, *command: str) -> str:
    env = {
        **os.environ,
        "NATS_URL": server.url,
        "OTEL_SERVICE_NAME": "nats-example",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def run_example(server: NatsServer, name: str) -> tuple[list[Span], list[str]]:
    """Run an in-code example; its spans (from the span lines) and its other output lines."""
    spans, other = [], []
    for line in run(server, sys.executable, str(EXAMPLES / name)).splitlines():
        m = _LINE.match(line)
        if m is None:
            other.append(line)
            continue
        extra = dict(item.split("=", 1) for item in m["extra"].split())
        parent = None if m["parent"] == "-" else m["parent"]
        spans.append(Span(m["name"], m["kind"], m["trace"], m["span"], parent, extra))
    return spans, other


def run_instrumented(server: NatsServer, name: str) -> tuple[list[Span], str]:
    """Run an example under ``opentelemetry-instrument --traces_exporter console``."""
    out = run(server, *instrumented_command(EXAMPLES / name))
    spans = [
        Span(
            s["name"],
            s["kind"].removeprefix("SpanKind."),
            s["context"]["trace_id"].removeprefix("0x"),
            s["context"]["span_id"].removeprefix("0x"),
            s["parent_id"].removeprefix("0x") if s["parent_id"] else None,
            {"links": ",".join(link["context"]["span_id"].removeprefix("0x") for link in s["links"])},
        )
        for s in trace_picture().console_spans(out)
    ]
    return spans, out


def trace_picture() -> Any:
    return load_script("trace_picture")


def one(spans: list[Span], name: str) -> Span:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"{len(found)} spans named {name!r}: {[s.name for s in spans]}"
    return found[0]


def test_pubsub(example_server: NatsServer) -> None:
    spans, output = run_example(example_server, "pubsub.py")
    assert sorted((s.name, s.kind) for s in spans) == [
        ("process greetings.hello", "CONSUMER"),
        ("publish greetings.hello", "PRODUCER"),
    ]
    publish, process = one(spans, "publish greetings.hello"), one(spans, "process greetings.hello")
    assert publish.parent is None
    assert_child(process, publish)
    assert "subscriber got 'hello, world' on greetings.hello" in output


def test_queue_workers(example_server: NatsServer) -> None:
    spans, output = run_example(example_server, "queue_workers.py")
    publishes = [s for s in spans if s.name == "publish images.resize"]
    processes = [s for s in spans if s.name == "process images.resize"]
    assert len(publishes) == len(processes) == 6 and len(spans) == 12
    assert {s.kind for s in publishes} == {"PRODUCER"} and {s.kind for s in processes} == {"CONSUMER"}
    # every job is its own trace: publish (root) -> process (its child)
    assert all(p.parent is None for p in publishes)
    assert len({p.trace for p in publishes}) == 6
    by_span = {p.span: p for p in publishes}
    assert sorted(s.parent or "" for s in processes) == sorted(by_span)
    for process in processes:
        assert_child(process, by_span[process.parent or ""])
    # consume_hook tagged each process span with the worker that ran the callback
    span_workers = Counter(s.extra.get("worker.id") for s in processes)
    printed = Counter(m[1] for line in output if (m := re.match(r"worker (\d) resized image-\d\.png$", line)))
    assert span_workers == printed
    assert set(span_workers) <= {"1", "2", "3"}
    assert sum(printed.values()) == 6


@pytest.mark.auto_instrumentation
def test_request_reply_under_opentelemetry_instrument(example_server: NatsServer) -> None:
    spans, out = run_instrumented(example_server, "request_reply.py")
    assert sorted((s.name, s.kind) for s in spans) == [
        ("process quotes.price", "SERVER"),
        ("publish", "PRODUCER"),
        ("request quotes.price", "CLIENT"),
    ]
    request, process = one(spans, "request quotes.price"), one(spans, "process quotes.price")
    assert request.parent is None
    assert_child(process, request)
    assert_child(one(spans, "publish"), process)
    assert "quote: {'sku': 'tea-pot', 'price': 24.5}" in out


def test_jetstream_pull(example_server: NatsServer) -> None:
    spans, output = run_example(example_server, "jetstream_pull.py")
    assert Counter((s.name, s.kind) for s in spans) == {
        ("publish orders.placed", "PRODUCER"): 2,
        ("fetch ORDERS", "CLIENT"): 1,
        ("process orders.placed", "CONSUMER"): 2,
        ("ack ORDERS", "CLIENT"): 2,
    }
    publishes = {s.span: s for s in spans if s.name == "publish orders.placed"}
    assert all(p.parent is None for p in publishes.values())
    # fetch: a root of its own trace, linked to the publish span of each message it returned
    fetch = one(spans, "fetch ORDERS")
    assert fetch.parent is None and fetch.trace not in {p.trace for p in publishes.values()}
    assert sorted(fetch.extra["links"].split(",")) == sorted(publishes)
    # publish -> process (under message_context) -> ack, one trace per order
    processes = {s.span: s for s in spans if s.name == "process orders.placed"}
    assert sorted(s.parent or "" for s in processes.values()) == sorted(publishes)
    for process in processes.values():
        assert_child(process, publishes[process.parent or ""])
    acks = [s for s in spans if s.name == "ack ORDERS"]
    assert sorted(s.parent or "" for s in acks) == sorted(processes)
    for ack in acks:
        assert_child(ack, processes[ack.parent or ""])
        assert ack.extra == {"links": processes[ack.parent or ""].parent}  # a link to the message's publish
    assert "billed order 1: 10" in output and "billed order 2: 20" in output


def test_envelope_migration(example_server: NatsServer) -> None:
    spans, output = run_example(example_server, "envelope_migration.py")
    assert sorted((s.name, s.kind) for s in spans) == [
        ("nats.publish", "PRODUCER"),
        ("nats.receive", "CONSUMER"),
        ("process billing.invoice", "CONSUMER"),
        ("publish billing.receipt", "PRODUCER"),
    ]
    legacy_publish, process = one(spans, "nats.publish"), one(spans, "process billing.invoice")
    assert legacy_publish.parent is None
    assert_child(process, legacy_publish)  # parent taken from the envelope (envelope_subjects)
    assert_child(one(spans, "publish billing.receipt"), process)
    assert_child(one(spans, "nats.receive"), process)  # the envelope made by wrap_envelope() in the callback
    assert "legacy consumer got receipt {'invoice': 7, 'paid': True}" in output


@pytest.fixture(scope="module")
def demo_output(example_server: NatsServer) -> str:
    return run_instrumented(example_server, "demo.py")[1]


@pytest.mark.auto_instrumentation
def test_demo_under_opentelemetry_instrument(example_server: NatsServer, demo_output: str) -> None:
    spans = [
        Span(
            s["name"],
            s["kind"].removeprefix("SpanKind."),
            s["context"]["trace_id"],
            s["context"]["span_id"],
            s["parent_id"],
            {"links": ",".join(link["context"]["span_id"] for link in s["links"])},
        )
        for s in trace_picture().console_spans(demo_output)
    ]
    assert sorted((s.name, s.kind) for s in spans) == [
        ("ack SHIPMENTS", "CLIENT"),
        ("demo checkout", "INTERNAL"),
        ("fetch SHIPMENTS", "CLIENT"),
        ("process inventory.check", "SERVER"),
        ("process orders.created", "CONSUMER"),
        ("process shipments.requested", "CONSUMER"),
        ("publish", "PRODUCER"),
        ("publish orders.created", "PRODUCER"),
        ("publish shipments.requested", "PRODUCER"),
        ("request inventory.check", "CLIENT"),
    ]
    root = one(spans, "demo checkout")
    assert root.parent is None
    for child, parent in [
        ("publish orders.created", "demo checkout"),
        ("process orders.created", "publish orders.created"),
        ("request inventory.check", "process orders.created"),
        ("process inventory.check", "request inventory.check"),
        ("publish", "process inventory.check"),
        ("publish shipments.requested", "process orders.created"),
        ("process shipments.requested", "publish shipments.requested"),
        ("ack SHIPMENTS", "process shipments.requested"),
    ]:
        assert_child(one(spans, child), one(spans, parent))
    fetch = one(spans, "fetch SHIPMENTS")
    assert fetch.parent is None and fetch.trace != root.trace
    # links: fetch, the process spans and the ack to the creation context of their message
    linked = {s.name: s.extra["links"] for s in spans if s.extra["links"]}
    assert linked == {
        "fetch SHIPMENTS": one(spans, "publish shipments.requested").span,
        "process orders.created": one(spans, "publish orders.created").span,
        "process inventory.check": one(spans, "request inventory.check").span,
        "ack SHIPMENTS": one(spans, "publish shipments.requested").span,
    }
    assert "order 42: tea-pot in stock: True" in demo_output
    assert "shipping order 42" in demo_output


def test_trace_picture_lays_out_the_demo_trace(demo_output: str, tmp_path: Path) -> None:
    picture = trace_picture()
    trace_id, rows = picture.layout(picture.console_spans(demo_output))
    assert [("  " * r.depth + r.name, r.kind, r.linked) for r in rows] == [
        ("demo checkout", "INTERNAL", False),
        ("  publish orders.created", "PRODUCER", False),
        ("    process orders.created", "CONSUMER", False),
        ("      request inventory.check", "CLIENT", False),
        ("        process inventory.check", "SERVER", False),
        ("          publish", "PRODUCER", False),
        ("      publish shipments.requested", "PRODUCER", False),
        ("        fetch SHIPMENTS", "CLIENT", True),
        ("        process shipments.requested", "CONSUMER", False),
        ("          ack SHIPMENTS", "CLIENT", False),
    ]
    assert all(r.start_us <= r.end_us for r in rows)
    pytest.importorskip("matplotlib")
    out = tmp_path / "trace.png"
    picture.render(trace_id, rows, out)
    assert out.read_bytes().startswith(b"\x89PNG")
