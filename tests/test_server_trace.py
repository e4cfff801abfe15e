"""Server spans from real nats-servers' message-trace events (2.11+), with the application's own spans.

Each test publishes with an instrumented client, lets instrumented consumers process the message, and
asserts the whole trace: the publish span, one ``traverse`` span per server the message passed through
(from the ``ServerTraceBridge``), and the consumers' spans.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import StatusCode

from tests import trace_topology as topo
from tests.helpers import wait_spans
from tests.natsserver import NatsServer
from tests.trace_topology import ANY_CID, envelope_size, node, routed, span_events, traceparent, tree, url

pytestmark = topo.requires_msg_trace

BODY = b"order-42"


@pytest.fixture(scope="module")
def solo() -> Iterator[NatsServer]:
    """One server (with JetStream) shared by the single-server tests."""
    (srv,) = topo.single(jetstream=True)
    yield srv
    srv.cleanup()


async def consumer(connect: Any, server: NatsServer, subject: str, user: str = "app", **opts: Any) -> Any:
    """An instrumented consumer connection named ``{user}-consumer`` subscribed to ``subject``."""
    nc = await connect(url(server, user), name=f"{user}-consumer")
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(msg: Any) -> None:
        await got.put(msg)

    await nc.subscribe(subject, cb=handler, **opts)
    nc.got = got
    return nc


def cid(nc: Any) -> int:
    return int(nc._server_info["client_id"])


def common(server: NatsServer, subject: str, size: int, **more: Any) -> dict[str, Any]:
    """The attributes of a server span whose message came from the client ``publisher`` of ``APP``."""
    info = topo.info(server)
    attrs = {
        "messaging.system.name": "nats",
        "messaging.destination.name": subject,
        "messaging.message.envelope.size": size,
        "messaging.nats.server.id": info["server_id"],
        "messaging.nats.server.name": server.name,
        "messaging.nats.server.version": info["version"],
        "messaging.nats.cluster.name": info.get("cluster"),
        "messaging.nats.account": "APP",
        "messaging.nats.server.ingress.kind": "client",
        "messaging.nats.server.ingress.name": "publisher",
        "messaging.nats.server.egress.count": 1,
    }
    attrs.update(more)
    return {k: v for k, v in attrs.items() if v is not None}


def client_egress(nc: Any, subscription: str, **more: Any) -> tuple[str, dict[str, Any]]:
    attrs = {
        "messaging.nats.server.egress.kind": "client",
        "messaging.nats.server.egress.name": nc.options["name"],
        "messaging.nats.server.egress.cid": cid(nc),
        "messaging.destination.subscription.name": subscription,
        **more,
    }
    return "nats.egress", attrs


def remote_egress(kind: str, name: str, hop: str) -> tuple[str, dict[str, Any]]:
    return "nats.egress", {
        "messaging.nats.server.egress.kind": kind,
        "messaging.nats.server.egress.name": name,
        "messaging.nats.server.egress.cid": ANY_CID,
        "messaging.nats.server.egress.hop": hop,
    }


async def test_one_server(telemetry: Any, solo: NatsServer, connect: Any, bridge: Any) -> None:
    """publish → traverse (two egresses: a subscriber and a queue group) and both consumers' spans."""
    plain = await consumer(connect, solo, "orders.*")
    workers = await consumer(connect, solo, "orders.*", user="limited", queue="workers")
    await bridge(solo)
    pub = await connect(url(solo), name="publisher")
    await pub.publish("orders.new", BODY)
    await asyncio.wait_for(plain.got.get(), 5)
    await asyncio.wait_for(workers.got.get(), 5)
    spans = await wait_spans(telemetry, 4)

    assert tree(spans) == [
        node(
            "publish orders.new PRODUCER",
            node("traverse orders.new CONSUMER @solo"),
            node("process orders.* CONSUMER"),
            node("process orders.* CONSUMER"),
        )
    ]
    publish = spans[0]
    (server,) = [s for s in spans if s.name.startswith("traverse")]
    size = envelope_size(BODY, traceparent=traceparent(publish))
    assert dict(server.attributes or {}) == common(
        solo,
        "orders.new",
        size,
        **{"messaging.nats.server.ingress.cid": cid(pub), "messaging.nats.server.egress.count": 2},
    )
    assert span_events(server) == [
        client_egress(plain, "orders.*"),
        client_egress(workers, "orders.*", **{"messaging.consumer.group.name": "workers"}),
    ]
    assert {k: v for k, v in server.resource.attributes.items() if k.startswith("service.")} == topo.server_resource(
        solo
    )
    assert server.status.status_code == StatusCode.UNSET
    assert server.parent is not None and server.parent.is_remote
    processes = [s for s in spans if s.name.startswith("process")]
    assert publish.start_time <= server.start_time <= min(p.start_time or 0 for p in processes)  # type: ignore[operator]


async def test_subject_mapping(telemetry: Any, solo: NatsServer, connect: Any, bridge: Any) -> None:
    """The account maps orders.legacy → orders.new: recorded as an attribute and a span event."""
    sub = await consumer(connect, solo, "orders.new")
    await bridge(solo)
    pub = await connect(url(solo), name="publisher")
    await pub.publish("orders.legacy", BODY)
    await asyncio.wait_for(sub.got.get(), 5)
    spans = await wait_spans(telemetry, 3)

    assert tree(spans) == [
        node(
            "publish orders.legacy PRODUCER",
            node("traverse orders.legacy CONSUMER @solo"),
            node("process orders.new CONSUMER"),
        )
    ]
    server = topo.server_span(spans, "solo")
    size = envelope_size(BODY, traceparent=traceparent(spans[0]))
    assert dict(server.attributes or {}) == common(
        solo,
        "orders.legacy",
        size,
        **{"messaging.nats.server.ingress.cid": cid(pub), "messaging.nats.server.mapped_subject": "orders.new"},
    )
    assert span_events(server) == [
        ("nats.subject_mapping", {"messaging.nats.server.mapped_subject": "orders.new"}),
        client_egress(sub, "orders.new"),
    ]


async def test_service_import(telemetry: Any, solo: NatsServer, connect: Any, bridge: Any) -> None:
    """APP imports svc.> from SVC (exported with allow_trace): the message crosses into SVC's subscriber."""
    service = await consumer(connect, solo, "svc.add", user="svc")
    await bridge(solo)
    pub = await connect(url(solo), name="publisher")
    await pub.publish("svc.add", BODY)
    await asyncio.wait_for(service.got.get(), 5)
    spans = await wait_spans(telemetry, 3)

    assert tree(spans) == [
        node("publish svc.add PRODUCER", node("traverse svc.add CONSUMER @solo"), node("process svc.add CONSUMER"))
    ]
    server = topo.server_span(spans, "solo")
    size = envelope_size(BODY, traceparent=traceparent(spans[0]))
    assert dict(server.attributes or {}) == common(
        solo, "svc.add", size, **{"messaging.nats.server.ingress.cid": cid(pub)}
    )
    assert span_events(server) == [
        (
            "nats.service_import",
            {
                "messaging.nats.account": "SVC",
                "messaging.nats.server.service_import.from": "svc.add",
                "messaging.nats.server.service_import.to": "svc.add",
            },
        ),
        client_egress(service, "svc.add", **{"messaging.nats.account": "SVC"}),
    ]


async def test_stream_export(telemetry: Any, solo: NatsServer, connect: Any, bridge: Any) -> None:
    """APP exports the stream news.> to SVC (imported with allow_trace): SVC's subscriber gets it."""
    reader = await consumer(connect, solo, "news.>", user="svc")
    await bridge(solo)
    pub = await connect(url(solo), name="publisher")
    await pub.publish("news.today", BODY)
    await asyncio.wait_for(reader.got.get(), 5)
    spans = await wait_spans(telemetry, 3)

    assert tree(spans) == [
        node("publish news.today PRODUCER", node("traverse news.today CONSUMER @solo"), node("process news.> CONSUMER"))
    ]
    server = topo.server_span(spans, "solo")
    size = envelope_size(BODY, traceparent=traceparent(spans[0]))
    assert dict(server.attributes or {}) == common(
        solo, "news.today", size, **{"messaging.nats.server.ingress.cid": cid(pub)}
    )
    assert span_events(server) == [
        (
            "nats.stream_export",
            {"messaging.nats.account": "SVC", "messaging.nats.server.stream_export.to": "news.today"},
        ),
        client_egress(reader, "news.>", **{"messaging.nats.account": "SVC"}),
    ]


async def test_no_interest(telemetry: Any, solo: NatsServer, connect: Any, bridge: Any) -> None:
    """Nobody subscribes: the server span has no egress (not an error)."""
    await bridge(solo)
    pub = await connect(url(solo), name="publisher")
    await pub.publish("orders.nobody", BODY)
    spans = await wait_spans(telemetry, 2)

    assert tree(spans) == [node("publish orders.nobody PRODUCER", node("traverse orders.nobody CONSUMER @solo"))]
    server = topo.server_span(spans, "solo")
    size = envelope_size(BODY, traceparent=traceparent(spans[0]))
    assert dict(server.attributes or {}) == common(
        solo,
        "orders.nobody",
        size,
        **{"messaging.nats.server.ingress.cid": cid(pub), "messaging.nats.server.egress.count": 0},
    )
    assert span_events(server) == []
    assert server.status.status_code == StatusCode.UNSET


async def test_publish_permission_error(telemetry: Any, solo: NatsServer, connect: Any, bridge: Any) -> None:
    """``limited`` may not publish on secret.x: the server span is an ERROR, nothing is delivered."""
    await bridge(solo)
    errors: list[Exception] = []

    async def on_error(e: Exception) -> None:
        errors.append(e)

    pub = await connect(url(solo, "limited"), name="publisher", error_cb=on_error)
    await pub.publish("secret.x", BODY)
    spans = await wait_spans(telemetry, 2)

    assert tree(spans) == [node("publish secret.x PRODUCER", node("traverse secret.x CONSUMER @solo"))]
    server = topo.server_span(spans, "solo")
    text = 'Permissions Violation for Publish to "secret.x"'
    size = envelope_size(BODY, traceparent=traceparent(spans[0]))
    assert dict(server.attributes or {}) == common(
        solo,
        "secret.x",
        size,
        **{
            "messaging.nats.server.ingress.cid": cid(pub),
            "messaging.nats.server.egress.count": 0,
            "error.type": "publish_permission_violation",
            "messaging.nats.server.error": text,
        },
    )
    assert (server.status.status_code, server.status.description) == (StatusCode.ERROR, text)
    assert span_events(server) == []
    assert [str(e) for e in errors] == ['nats: permissions violation for publish to "secret.x"']


async def test_subscription_permission_error(telemetry: Any, solo: NatsServer, connect: Any, bridge: Any) -> None:
    """``limited`` subscribes to orders.* but may not receive orders.secret: an egress with an error."""
    denied = await consumer(connect, solo, "orders.*", user="limited")
    await bridge(solo)
    pub = await connect(url(solo), name="publisher")
    await pub.publish("orders.secret", BODY)
    spans = await wait_spans(telemetry, 2)

    assert tree(spans) == [node("publish orders.secret PRODUCER", node("traverse orders.secret CONSUMER @solo"))]
    server = topo.server_span(spans, "solo")
    text = "Not delivered because subscription denies this subject"
    size = envelope_size(BODY, traceparent=traceparent(spans[0]))
    assert dict(server.attributes or {}) == common(
        solo,
        "orders.secret",
        size,
        **{
            "messaging.nats.server.ingress.cid": cid(pub),
            "error.type": "subscription_denied",
            "messaging.nats.server.error": text,
        },
    )
    assert (server.status.status_code, server.status.description) == (StatusCode.ERROR, text)
    assert span_events(server) == [
        client_egress(denied, "orders.*", **{"error.type": "subscription_denied", "messaging.nats.server.error": text})
    ]
    assert denied.got.empty()


async def test_jetstream_store(telemetry: Any, solo: NatsServer, connect: Any, bridge: Any) -> None:
    """A JetStream publish: the server span records the stream store; the push consumer continues the trace."""
    pub = await connect(url(solo), name="publisher")
    js = pub.jetstream()
    with suppress_instrumentation():
        await js.add_stream(name="SHIP", subjects=["ship.>"])
    sub_nc = await connect(url(solo), name="app-consumer")
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(msg: Any) -> None:
        await got.put(msg)

    await sub_nc.jetstream().subscribe("ship.new", cb=handler, manual_ack=True)
    await bridge(solo)
    telemetry.clear()
    await js.publish("ship.new", BODY)
    delivered = await asyncio.wait_for(got.get(), 5)
    spans = await wait_spans(telemetry, 3)

    # The stored copy's trace is disabled: before 2.12.12 by renaming traceparent to Xraceparent, which
    # the consumer reads; later servers keep traceparent and add Nats-Trace-Dest. The same tree either way.
    publish = spans[0]
    assert delivered.headers == topo.disabled_headers(traceparent(publish))
    assert tree(spans) == [
        node(
            "publish ship.new PRODUCER",
            node("traverse ship.new CONSUMER @solo"),
            node("process ship.new CONSUMER"),
        )
    ]
    server = topo.server_span(spans, "solo")
    size = envelope_size(BODY, traceparent=traceparent(spans[0]))
    assert dict(server.attributes or {}) == common(
        solo,
        "ship.new",
        size,
        **{
            "messaging.nats.server.ingress.cid": cid(pub),
            "messaging.nats.server.egress.count": 0,
            "messaging.nats.jetstream.stream": "SHIP",
            "messaging.nats.jetstream.subject": "ship.new",
        },
    )
    assert span_events(server) == [
        ("nats.jetstream", {"messaging.nats.jetstream.stream": "SHIP", "messaging.nats.jetstream.subject": "ship.new"})
    ]


def hop_attrs(server: NatsServer, subject: str, publish: Any, hop: str, via: str, kind: str) -> dict[str, Any]:
    """The attributes of a later server's span: the message came over a route, gateway or leaf
    connection from ``via`` with the ``Nats-Trace-Hop`` header ``hop``."""
    size = envelope_size(BODY, traceparent=traceparent(publish), **{"Nats-Trace-Hop": hop})
    return common(
        server,
        subject,
        size,
        **{
            "messaging.nats.server.ingress.kind": kind,
            "messaging.nats.server.ingress.name": via,
            "messaging.nats.server.ingress.cid": ANY_CID,
            "messaging.nats.server.hop": hop,
        },
    )


@pytest.fixture(scope="module")
def blue() -> Iterator[list[NatsServer]]:
    servers = topo.cluster(3)
    yield servers
    for s in servers:
        s.cleanup()


async def test_cluster_route_hops(telemetry: Any, blue: list[NatsServer], connect: Any, bridge: Any) -> None:
    """Published on blue-1, consumed on blue-2 and blue-3: blue-1's span has a child per route hop."""
    b1, b2, b3 = blue
    c2 = await consumer(connect, b2, "orders.new")
    c3 = await consumer(connect, b3, "orders.new")
    await bridge(b2, b1, b3)
    await routed(b1, c2)
    await routed(b1, c3)
    pub = await connect(url(b1), name="publisher")
    await pub.publish("orders.new", BODY)
    await asyncio.wait_for(c2.got.get(), 5)
    await asyncio.wait_for(c3.got.get(), 5)
    spans = await wait_spans(telemetry, 6)

    assert tree(spans) == [
        node(
            "publish orders.new PRODUCER",
            node(
                "traverse orders.new CONSUMER @blue-1",
                node("traverse orders.new CONSUMER @blue-2"),
                node("traverse orders.new CONSUMER @blue-3"),
            ),
            node("process orders.new CONSUMER"),
            node("process orders.new CONSUMER"),
        )
    ]
    publish = spans[0]
    first, second, third = (topo.server_span(spans, s.name) for s in blue)
    hop2, hop3 = topo.attr(second, "messaging.nats.server.hop"), topo.attr(third, "messaging.nats.server.hop")
    assert sorted([hop2, hop3]) == ["1", "2"]  # numbered in the order blue-1 forwarded the message
    size = envelope_size(BODY, traceparent=traceparent(publish))
    assert dict(first.attributes or {}) == common(
        b1,
        "orders.new",
        size,
        **{"messaging.nats.server.ingress.cid": cid(pub), "messaging.nats.server.egress.count": 2},
    )
    assert sorted(span_events(first), key=lambda e: str(e[1]["messaging.nats.server.egress.hop"])) == sorted(
        [remote_egress("router", "blue-2", str(hop2)), remote_egress("router", "blue-3", str(hop3))],
        key=lambda e: str(e[1]["messaging.nats.server.egress.hop"]),
    )
    for span, srv, hop, sub in ((second, b2, hop2, c2), (third, b3, hop3, c3)):
        assert dict(span.attributes or {}) == hop_attrs(srv, "orders.new", publish, str(hop), "blue-1", "router")
        assert span_events(span) == [client_egress(sub, "orders.new")]
        assert {k: v for k, v in span.resource.attributes.items() if k.startswith("service.")} == (
            topo.server_resource(srv)
        )


@pytest.fixture(scope="module")
def east_west() -> Iterator[list[NatsServer]]:
    servers = topo.east_and_west()
    yield servers
    for s in servers:
        s.cleanup()


async def test_gateway_between_clusters(telemetry: Any, east_west: list[NatsServer], connect: Any, bridge: Any) -> None:
    """east-1 → gateway → west-1 → route → west-2: three server spans, each the child of the previous."""
    east, west1, west2 = east_west
    sub = await consumer(connect, west2, "orders.new")
    await bridge(east, west1, west2)
    await routed(east, sub)
    pub = await connect(url(east), name="publisher")
    await pub.publish("orders.new", BODY)
    delivered = await asyncio.wait_for(sub.got.get(), 5)
    assert delivered.headers["Nats-Trace-Hop"] == "1.1"  # consumers see the hop header
    spans = await wait_spans(telemetry, 5)

    assert tree(spans) == [
        node(
            "publish orders.new PRODUCER",
            node(
                "traverse orders.new CONSUMER @east-1",
                node("traverse orders.new CONSUMER @west-1", node("traverse orders.new CONSUMER @west-2")),
            ),
            node("process orders.new CONSUMER"),
        )
    ]
    publish = spans[0]
    e1, w1, w2 = (topo.server_span(spans, s.name) for s in east_west)
    size = envelope_size(BODY, traceparent=traceparent(publish))
    assert dict(e1.attributes or {}) == common(
        east, "orders.new", size, **{"messaging.nats.server.ingress.cid": cid(pub)}
    )
    assert span_events(e1) == [remote_egress("gateway", "west-1", "1")]
    assert dict(w1.attributes or {}) == hop_attrs(west1, "orders.new", publish, "1", "east-1", "gateway")
    assert span_events(w1) == [remote_egress("router", "west-2", "1.1")]
    assert dict(w2.attributes or {}) == hop_attrs(west2, "orders.new", publish, "1.1", "west-1", "router")
    assert span_events(w2) == [client_egress(sub, "orders.new")]


@pytest.fixture(scope="module")
def hub_leaf() -> Iterator[list[NatsServer]]:
    servers = topo.hub_and_leaf()
    yield servers
    for s in servers:
        s.cleanup()


async def test_leaf_node(telemetry: Any, hub_leaf: list[NatsServer], connect: Any, bridge: Any) -> None:
    """Published on the hub, consumed on the hub and on its leaf node."""
    hub, leaf = hub_leaf
    at_hub = await consumer(connect, hub, "orders.new")
    at_leaf = await consumer(connect, leaf, "orders.new")
    await bridge(hub, leaf)
    await routed(hub, at_leaf)
    pub = await connect(url(hub), name="publisher")
    await pub.publish("orders.new", BODY)
    assert "Nats-Trace-Hop" not in (await asyncio.wait_for(at_hub.got.get(), 5)).headers
    assert (await asyncio.wait_for(at_leaf.got.get(), 5)).headers["Nats-Trace-Hop"] == "1"
    spans = await wait_spans(telemetry, 5)

    assert tree(spans) == [
        node(
            "publish orders.new PRODUCER",
            node("traverse orders.new CONSUMER @hub", node("traverse orders.new CONSUMER @leaf")),
            node("process orders.new CONSUMER"),
            node("process orders.new CONSUMER"),
        )
    ]
    publish = spans[0]
    first, second = topo.server_span(spans, "hub"), topo.server_span(spans, "leaf")
    size = envelope_size(BODY, traceparent=traceparent(publish))
    assert dict(first.attributes or {}) == common(
        hub,
        "orders.new",
        size,
        **{"messaging.nats.server.ingress.cid": cid(pub), "messaging.nats.server.egress.count": 2},
    )
    assert span_events(first) == [client_egress(at_hub, "orders.new"), remote_egress("leaf", "leaf", "1")]
    assert dict(second.attributes or {}) == hop_attrs(leaf, "orders.new", publish, "1", "hub", "leaf")
    assert span_events(second) == [client_egress(at_leaf, "orders.new")]
