"""The pitfalls of server-side tracing that docs/server-trace.md describes, checked on the server under test.

- A publisher that may not publish on the account's trace destination: since nats-server 2.14.3 (and
  2.12.12 on the 2.12 line) a message of its with a sampled ``traceparent`` is dropped with a
  permissions violation; older servers deliver and trace it.
- The account's ``sampling`` is decided by the first server only: later servers trace whatever it
  traced, and consumers see the marker that stopped the rest (``Nats-Trace-Dest: trace disabled``
  from 2.12.12, ``traceparent`` renamed to ``Xraceparent`` before).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind

from tests import trace_topology as topo
from tests.helpers import wait_spans
from tests.natsserver import NatsServer, nats_server_version
from tests.trace_topology import node, routed, tree, url

pytestmark = topo.requires_msg_trace


def drops_untraceable_publishers() -> bool:
    """``allowedToPublishOnMsgTraceDest`` applies to the account's destination (traceparent tracing)."""
    version = nats_server_version()
    return version >= (2, 14, 3) or (2, 12, 12) <= version < (2, 13, 0)


@pytest.fixture(scope="module")
def solo() -> Iterator[NatsServer]:
    (srv,) = topo.single()
    yield srv
    srv.cleanup()


async def test_publisher_without_permission_on_the_trace_destination(
    telemetry: Any, solo: NatsServer, connect: Any, bridge: Any
) -> None:
    """``untraced`` may publish on orders.> but not on otel.trace."""
    await bridge(solo)
    sub = await connect(url(solo), name="app-consumer")
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(msg: Any) -> None:
        await got.put(msg)

    await sub.subscribe("orders.new", cb=handler)
    errors: list[str] = []

    async def on_error(e: Exception) -> None:
        errors.append(str(e))

    pub = await connect(url(solo, "untraced"), name="publisher", error_cb=on_error)
    await topo.routed(solo, sub)
    with suppress_instrumentation():  # a message the application did not sample goes through
        await pub.publish("orders.new", b"unsampled", headers={"traceparent": f"00-{1:032x}-{2:016x}-00"})
        assert (await asyncio.wait_for(got.get(), 5)).data == b"unsampled"
    await pub.publish("orders.new", b"x")
    await pub.flush()

    if drops_untraceable_publishers():
        spans = await wait_spans(telemetry, 1)
        await asyncio.sleep(0.2)
        assert tree(telemetry.spans()) == [node("publish orders.new PRODUCER")]
        assert got.empty()
        assert errors == ['nats: permissions violation for publish to "otel.trace"']
    else:
        await asyncio.wait_for(got.get(), 5)
        spans = await wait_spans(telemetry, 3)
        assert tree(spans) == [
            node(
                "publish orders.new PRODUCER",
                node("traverse orders.new CONSUMER @solo"),
                node("process orders.new CONSUMER"),
            )
        ]
        assert errors == []


@pytest.fixture(scope="module")
def sampled_cluster() -> Iterator[list[NatsServer]]:
    """Two servers whose account samples 100 % (samp-1) and 1 % (samp-2) of the sampled traces."""
    servers = topo.cluster(2, name="samp", sampling=[100, 1])
    yield servers
    for s in servers:
        s.cleanup()


async def _publish_through(
    connect: Any, source: NatsServer, target: NatsServer, count: int
) -> tuple[list[str], list[dict[str, str]]]:
    """``count`` messages with sampled traceparents, published on ``source`` and consumed on ``target``
    (uninstrumented: the traceparents are the test's own). Returns them and the headers consumers saw."""
    parents = [f"00-{i + 1:032x}-{0xABC + i:016x}-01" for i in range(count)]
    seen: list[dict[str, str]] = []
    done = asyncio.Event()

    async def handler(msg: Any) -> None:
        seen.append(dict(msg.headers or {}))
        if len(seen) == count:
            done.set()

    with suppress_instrumentation():
        sub = await connect(url(target))
        await sub.subscribe("orders.new", cb=handler)
        await routed(source, sub)
        pub = await connect(url(source))
        for tp in parents:
            await pub.publish("orders.new", b"x", headers={"traceparent": tp})
        await asyncio.wait_for(done.wait(), 5)
    return parents, seen


def _parent_of_publisher(tp: str) -> int:
    return int(tp.split("-")[2], 16)


async def test_sampling_is_decided_on_the_first_server(
    telemetry: Any, sampled_cluster: list[NatsServer], connect: Any, bridge: Any
) -> None:
    first, second = sampled_cluster
    await bridge(first, second)

    # from the 100 % server: the 1 % server traces every message too (it does not sample again)
    parents, seen = await _publish_through(connect, first, second, 20)
    spans = await wait_spans(telemetry, 40)
    assert len(spans) == 40
    first_spans = [s for s in spans if topo.attr(s, "messaging.nats.server.name") == "samp-1"]
    second_spans = [s for s in spans if topo.attr(s, "messaging.nats.server.name") == "samp-2"]
    assert sorted(s.context.trace_id for s in first_spans) == [int(tp.split("-")[1], 16) for tp in parents]
    assert sorted(s.context.trace_id for s in second_spans) == [int(tp.split("-")[1], 16) for tp in parents]
    parent_of = {s.context.trace_id: s.context.span_id for s in first_spans}
    for s in second_spans:
        assert s.kind == SpanKind.CONSUMER
        assert s.parent is not None and s.parent.span_id == parent_of[s.context.trace_id]
    for s in first_spans:
        assert s.parent is not None and s.parent.span_id == _parent_of_publisher(parents[s.context.trace_id - 1])
    assert all(h.get("Nats-Trace-Hop") == "1" for h in seen)  # consumers see the hop header

    # from the 1 % server: what it did not sample, the 100 % server does not trace either
    telemetry.clear()
    parents, seen = await _publish_through(connect, second, first, 20)
    await asyncio.sleep(0.3)
    spans = telemetry.spans()
    traced = {s.context.trace_id for s in spans if topo.attr(s, "messaging.nats.server.name") == "samp-2"}
    assert {s.context.trace_id for s in spans if topo.attr(s, "messaging.nats.server.name") == "samp-1"} == traced
    assert len(traced) < 20
    untraced = [h for h in seen if "Nats-Trace-Hop" not in h]
    assert len(untraced) == 20 - len(traced)
    for headers in untraced:  # the marker that kept samp-1 from tracing
        if topo.renames_traceparent():
            assert set(headers) == {"Xraceparent"}
        else:
            assert headers.get("Nats-Trace-Dest") == "trace disabled"
            assert set(headers) == {"Nats-Trace-Dest", "traceparent"}
