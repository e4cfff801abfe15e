"""One test API over both client families, so that a behaviour is tested once and runs on each.

The ``family`` fixture (tests/conftest.py) is parametrized over :data:`NAMES`; a family that is not
installed in the environment is skipped with the reason. A test talks to the family through its
:class:`Conn` (``await family.connect(server)``):

- ``publish``/``request`` with optional headers; ``new_inbox``; ``synced`` (the server has seen
  everything sent so far, subscriptions included);
- ``on(subject, handler, queue=...)``: a callback subscription. ``handler(msg)`` is a plain
  function (nats-py gets an ``async def`` around it; nats-core's callbacks are synchronous); what it
  returns, when not ``None``, is sent back to ``msg.reply`` the family's own way (nats-py
  ``msg.respond``; nats-core ``publish`` in a task started from the callback);
- ``subscribe`` (an iterator subscription), ``next_message`` and ``iterate`` (``async for``).

JetStream and key-value are tests/families_js.py's (``jetstream(conn)``). Messages are the family's
own; :meth:`Family.headers` reads their headers (stored messages' too) as ``{name: first value}``.
What differs by design is spelled out here, once: the subscription attributes (nats-core counts no
deliveries; its callback subscriptions also queue every message), where the connection attributes
come from, what a reply sent from a callback is (nats-py ``respond``; nats-core a plain publish).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import importlib.util
from collections.abc import Callable
from typing import Any

from tests.natsserver import NatsServer

NAMES = ("nats-py", "nats-core")

Handler = Callable[[Any], Any]


def skip_reason(name: str) -> str | None:
    """Why the family ``name`` cannot be tested here (``None``: it can)."""
    dist, module = {"nats-py": ("nats-py", "nats.aio.client"), "nats-core": ("nats-core", "nats.client")}[name]
    try:
        importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return f"{dist} is not installed in this environment"
    if importlib.util.find_spec(module) is None:
        return f"{dist} is installed but {module} cannot be imported"
    return None


class Sub:
    """A subscription: the family's own object and its id as spans show it."""

    def __init__(self, native: Any, sid: str, release: asyncio.Event | None = None) -> None:
        self.native = native
        self.sid = sid
        self.release = release  # (a slow consumer's: lets its stuck callback go on)


class Conn:
    """A connection of one family (see the module docstring)."""

    family: Family

    def __init__(self, family: Family, native: Any, server: NatsServer) -> None:
        self.family = family
        self.native = native
        self.server = server
        self.slow_errors: list[Exception] = []  # slow-consumer errors the client reported
        self.events: list[str] = []  # connection events: "disconnected", "reconnected"
        self.tasks: set[asyncio.Task[Any]] = set()

    async def publish(self, subject: Any, data: bytes, *, headers: Any = None, reply: str | None = None) -> None:
        raise NotImplementedError

    async def request(self, subject: str, data: bytes, *, timeout: float = 5, headers: Any = None) -> Any:
        return await self.native.request(subject, data, timeout=timeout, headers=headers)

    async def on(self, subject: str, handler: Handler, *, queue: str | None = None) -> Sub:
        raise NotImplementedError

    async def subscribe(self, subject: str, *, queue: str | None = None, limit: int | None = None) -> Sub:
        raise NotImplementedError

    async def next_message(self, sub: Sub, timeout: float = 5) -> Any:
        raise NotImplementedError

    async def iterate(self, sub: Sub) -> Any:
        """The next message of ``async for msg in …`` (the family's iterator form)."""
        raise NotImplementedError

    async def consume_pending(self, sub: Sub) -> None:
        """Let a slow consumer (``subscribe(limit=…)``) take the messages it holds."""
        raise NotImplementedError

    def new_inbox(self) -> str:
        return str(self.native.new_inbox())

    async def synced(self) -> None:
        await self.native.flush()

    async def close(self) -> None:
        await self.native.close()

    async def settled(self) -> None:
        """Let the replies the callbacks started go out."""
        if self.tasks:
            await asyncio.gather(*list(self.tasks))


class Family:
    """A client family as the tests see it."""

    name: str
    no_responders: str  # the error type a request without responders raises
    legacy_reply_operation: str  # a reply's messaging.operation in legacy mode
    # a reply sent from a callback is traced even when the request was excluded (excluded_subjects):
    # nats-py's respond() knows its request, nats-core's reply is a plain publish to the inbox
    # (docs/configuration.md: "nats-py internals of excluded requests and replies to excluded requests")
    traces_replies_to_excluded_requests: bool
    # a coroutine-function consume_hook is awaited for callbacks' process spans (nats-core's callbacks
    # are synchronous: it is called only for received messages; docs/nats-core.md)
    async_consume_hook_in_callbacks: bool
    # a callback runs in the context its subscription was made in (nats-py: a task per subscription),
    # else in the context the connection was made in (nats-core: the read loop)
    callbacks_in_subscribers_context: bool

    def __init__(self) -> None:
        self.conns: list[Conn] = []

    async def connect(self, server: NatsServer, *, reconnect: bool = False, **options: Any) -> Conn:
        """A connection to ``server``; ``options`` go to the client's ``connect`` (``user=``, ``password=`` …)."""
        conn = await self._connect(server, reconnect, options)
        self.conns.append(conn)
        return conn

    async def _connect(self, server: NatsServer, reconnect: bool, options: dict[str, Any]) -> Conn:
        raise NotImplementedError

    async def close_all(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(Exception):  # (closed already, or its server is gone)
                await conn.close()

    def headers(self, msg: Any) -> dict[str, str]:
        raise NotImplementedError

    def callbacks(self, sub: Sub) -> list[Any]:
        """The callbacks the client calls for ``sub``'s messages (read from its private state)."""
        raise NotImplementedError

    def reply_headers(self, request: Any) -> Any:
        """The headers a reply to ``request`` sent from a callback (:meth:`Conn.on`) carries, as
        ``publish_hook`` gets them."""
        raise NotImplementedError

    def client_id(self, conn: Conn) -> int:
        raise NotImplementedError

    def access(self) -> Any:
        """The instrumentation's accessor of this family's clients (its per-client state is kept under it)."""
        raise NotImplementedError

    def server_info(self, conn: Conn) -> dict[str, Any]:
        """The server facts spans show: id, name, version (and cluster when there is one)."""
        raise NotImplementedError

    def conn_attrs(self, conn: Conn, mode: str = "current") -> dict[str, Any]:
        """The connection attributes every span of ``conn`` carries."""
        info = self.server_info(conn)
        attrs: dict[str, Any] = {
            "messaging.nats.server.id": info["server_id"],
            "messaging.nats.server.name": info["server_name"],
            "messaging.nats.server.version": info["version"],
        }
        if mode in ("current", "dup"):
            attrs.update(
                {
                    "server.address": "127.0.0.1",
                    "server.port": conn.server.port,
                    "messaging.client.id": str(self.client_id(conn)),
                }
            )
        if mode in ("legacy", "dup"):
            attrs.update(
                {
                    "net.peer.name": "127.0.0.1",
                    "net.peer.port": conn.server.port,
                    "messaging.nats.client.id": self.client_id(conn),
                }
            )
        return attrs

    def callback_sub_attrs(self, sub: Sub, nth: int) -> dict[str, Any]:
        """Subscription attributes of the process span of the ``nth`` message (from 1) a callback
        subscription delivered."""
        raise NotImplementedError

    def receive_sub_attrs(self, sub: Sub, delivered: int, pending: int) -> dict[str, Any]:
        """Subscription attributes of a receive span: ``delivered`` messages so far, ``pending`` left."""
        raise NotImplementedError

    def dropped(self, conn: Conn, sub: Sub) -> int:
        """The messages ``sub`` dropped as a slow consumer, as the client reports them."""
        raise NotImplementedError

    def pending(self, sub: Sub) -> int:
        """The messages waiting in ``sub``'s queue."""
        raise NotImplementedError


# --- nats-py ---------------------------------------------------------------------------------------


class _PyConn(Conn):
    async def publish(self, subject: Any, data: bytes, *, headers: Any = None, reply: str | None = None) -> None:
        await self.native.publish(subject, data, reply=reply or "", headers=headers)

    async def on(self, subject: str, handler: Handler, *, queue: str | None = None) -> Sub:
        async def cb(msg: Any) -> None:
            reply = handler(msg)
            if reply is not None:
                await msg.respond(reply)

        sub = await self.native.subscribe(subject, queue=queue or "", cb=cb)
        await self.synced()
        return Sub(sub, str(sub._id))

    async def subscribe(self, subject: str, *, queue: str | None = None, limit: int | None = None) -> Sub:
        if limit is None:
            sub = await self.native.subscribe(subject, queue=queue or "")
        else:
            release = asyncio.Event()

            async def stuck(msg: Any) -> None:  # (nats-py counts drops only for callback subscriptions)
                await release.wait()

            sub = await self.native.subscribe(subject, queue=queue or "", cb=stuck, pending_msgs_limit=limit)
            await self.synced()
            return Sub(sub, str(sub._id), release)
        await self.synced()
        return Sub(sub, str(sub._id))

    async def next_message(self, sub: Sub, timeout: float = 5) -> Any:
        return await sub.native.next_msg(timeout=timeout)

    async def iterate(self, sub: Sub) -> Any:
        async for msg in sub.native.messages:
            return msg
        raise AssertionError("the subscription ended")

    async def consume_pending(self, sub: Sub) -> None:
        assert sub.release is not None
        sub.release.set()
        while sub.native.pending_msgs:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.02)

    async def synced(self) -> None:
        # nats-py may still hold a SUB in its pending buffer when flush()'s PING goes out
        await self.native._flush_pending(force_flush=True)
        await self.native.flush()


class NatsPy(Family):
    name = "nats-py"
    no_responders = "NoRespondersError"
    legacy_reply_operation = "reply"
    traces_replies_to_excluded_requests = False
    async_consume_hook_in_callbacks = True
    callbacks_in_subscribers_context = True

    async def _connect(self, server: NatsServer, reconnect: bool, options: dict[str, Any]) -> Conn:
        import nats
        import nats.errors

        conn: Conn

        async def error_cb(exc: Exception) -> None:
            if isinstance(exc, nats.errors.SlowConsumerError):
                conn.slow_errors.append(exc)

        async def disconnected_cb() -> None:
            conn.events.append("disconnected")

        async def reconnected_cb() -> None:
            conn.events.append("reconnected")

        options = dict(options)
        if reconnect:
            options.update(reconnect_time_wait=0.1, max_reconnect_attempts=100)
        native = await nats.connect(
            server.url,
            error_cb=error_cb,
            disconnected_cb=disconnected_cb,
            reconnected_cb=reconnected_cb,
            **options,
        )
        conn = _PyConn(self, native, server)
        return conn

    def headers(self, msg: Any) -> dict[str, str]:
        return dict(msg.headers or {})

    def callbacks(self, sub: Sub) -> list[Any]:
        return [sub.native._cb]

    def reply_headers(self, request: Any) -> Any:
        return request.headers  # (Msg.respond resends the request's headers)

    def client_id(self, conn: Conn) -> int:
        return int(conn.native._server_info["client_id"])

    def access(self) -> Any:
        from opentelemetry.instrumentation.nats.natspy.access import ACCESS

        return ACCESS

    def server_info(self, conn: Conn) -> dict[str, Any]:
        info = conn.native._server_info
        return {k: info[k] for k in ("server_id", "server_name", "version") if k in info}

    def callback_sub_attrs(self, sub: Sub, nth: int) -> dict[str, Any]:
        return {
            "messaging.nats.subscription.id": sub.sid,
            "messaging.nats.delivered_messages": nth,
            "messaging.nats.pending_messages": 0,
        }

    def receive_sub_attrs(self, sub: Sub, delivered: int, pending: int) -> dict[str, Any]:
        return {
            "messaging.nats.subscription.id": sub.sid,
            "messaging.nats.delivered_messages": delivered,
            "messaging.nats.pending_messages": pending,
        }

    def dropped(self, conn: Conn, sub: Sub) -> int:
        return len(conn.slow_errors)  # (one error per dropped message)

    def pending(self, sub: Sub) -> int:
        return int(sub.native.pending_msgs)


# --- nats-core -------------------------------------------------------------------------------------


class _CoreConn(Conn):
    async def publish(self, subject: Any, data: bytes, *, headers: Any = None, reply: str | None = None) -> None:
        await self.native.publish(subject, data, reply=reply, headers=headers)

    async def on(self, subject: str, handler: Handler, *, queue: str | None = None) -> Sub:
        sub = await self.native.subscribe(subject, queue=queue or "")
        loop = asyncio.get_running_loop()

        def cb(msg: Any) -> None:
            reply = handler(msg)
            if reply is not None:
                task = loop.create_task(self.native.publish(msg.reply, reply))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

        sub.add_callback(cb)
        await self.synced()
        return Sub(sub, sub._sid)

    async def subscribe(self, subject: str, *, queue: str | None = None, limit: int | None = None) -> Sub:
        sub = await self.native.subscribe(subject, queue=queue or "", max_pending_messages=limit or 65536)
        await self.synced()
        return Sub(sub, sub._sid)

    async def next_message(self, sub: Sub, timeout: float = 5) -> Any:
        return await sub.native.next(timeout=timeout)

    async def iterate(self, sub: Sub) -> Any:
        async for msg in sub.native:
            return msg
        raise AssertionError("the subscription ended")

    async def consume_pending(self, sub: Sub) -> None:
        while sub.native.pending[0]:
            await sub.native.next(timeout=5)


class NatsCore(Family):
    name = "nats-core"
    no_responders = "NoRespondersError"
    legacy_reply_operation = "publish"  # (no respond(): a reply is a publish)
    traces_replies_to_excluded_requests = True
    async_consume_hook_in_callbacks = False
    callbacks_in_subscribers_context = False

    async def _connect(self, server: NatsServer, reconnect: bool, options: dict[str, Any]) -> Conn:
        import nats.client

        options = dict(options)
        if reconnect:
            options.update(reconnect_time_wait=0.1, reconnect_max_attempts=100, reconnect_jitter=0.0)
        native = await nats.client.connect(server.url, **options)
        conn = _CoreConn(self, native, server)

        def error_cb(error: Any) -> None:
            if type(error).__name__ == "SlowConsumerError":
                conn.slow_errors.append(error)

        native.add_error_callback(error_cb)
        native.add_disconnected_callback(lambda: conn.events.append("disconnected"))
        native.add_reconnected_callback(lambda: conn.events.append("reconnected"))
        return conn

    def headers(self, msg: Any) -> dict[str, str]:
        return {k: v[0] for k, v in msg.headers.items()} if msg.headers is not None else {}

    def callbacks(self, sub: Sub) -> list[Any]:
        return list(sub.native._callbacks)

    def reply_headers(self, request: Any) -> Any:
        return None  # (the reply is a publish of the data alone)

    def client_id(self, conn: Conn) -> int:
        return int(conn.native.server_info.client_id)

    def access(self) -> Any:
        from opentelemetry.instrumentation.nats.natscore.access import ACCESS

        return ACCESS

    def server_info(self, conn: Conn) -> dict[str, Any]:
        info = conn.native.server_info
        # (its ServerInfo has no server_name: the server's configured name)
        return {"server_id": info.server_id, "server_name": conn.server.name, "version": info.version}

    def callback_sub_attrs(self, sub: Sub, nth: int) -> dict[str, Any]:
        # a callback runs before the message is queued, and nothing takes it from the queue
        return {"messaging.nats.subscription.id": sub.sid, "messaging.nats.pending_messages": nth - 1}

    def receive_sub_attrs(self, sub: Sub, delivered: int, pending: int) -> dict[str, Any]:
        return {"messaging.nats.subscription.id": sub.sid, "messaging.nats.pending_messages": pending}

    def dropped(self, conn: Conn, sub: Sub) -> int:
        return int(sub.native.dropped[0])

    def pending(self, sub: Sub) -> int:
        return int(sub.native.pending[0])


FAMILIES: dict[str, type[Family]] = {"nats-py": NatsPy, "nats-core": NatsCore}
