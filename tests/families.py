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
- ``subscribe`` (an iterator subscription), ``next_message`` and ``iterate`` (``async for``);
- JetStream consumers: ``add_stream``, ``js_publish``, ``pull_consumer`` and ``fetch`` (every message
  of one fetch) or ``cancelled_fetch``; ``receiver`` with ``receive_next`` and ``receive_iterated``
  (one message at a time: nats-py's push subscription and its ``next_msg`` / ``async for``,
  nats-jetstream's pull consumer and its ``next()`` / ``messages()``).

Messages are the family's own; :meth:`Family.headers` reads their headers as ``{name: first value}``.
What differs by design is spelled out here, once: the subscription attributes (nats-core counts no
deliveries; its callback subscriptions also queue every message), where the connection attributes
come from, and how a JetStream message read one at a time is named (nats-py: after its subject, with
its subscription's attributes; nats-jetstream: after its stream).
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

    # --- JetStream consumers

    async def add_stream(self, name: str, subjects: list[str]) -> None:
        raise NotImplementedError

    async def js_publish(self, subject: str, data: bytes, *, headers: dict[str, str] | None = None) -> None:
        raise NotImplementedError

    async def pull_consumer(self, stream: str, durable: str, subject: str) -> Any:
        """A durable pull consumer of ``subject`` in ``stream``, with explicit acks."""
        raise NotImplementedError

    async def fetch(self, consumer: Any, count: int, timeout: float) -> list[Any]:
        """Every message of one fetch of up to ``count`` (``[]`` when none came before ``timeout``)."""
        raise NotImplementedError

    async def cancelled_fetch(self, consumer: Any, wait: float) -> None:
        """A fetch whose wait for a message (that does not come) is cancelled after ``wait`` seconds;
        the consumer's pending pull request has expired when it returns."""
        raise NotImplementedError

    async def receiver(self, stream: str, durable: str, subject: str, *, holding: int = 0) -> Any:
        """A durable consumer of ``subject`` whose messages are read one at a time (a push
        subscription: once it holds the ``holding`` messages the stream has for it)."""
        raise NotImplementedError

    async def receive_next(self, receiver: Any, timeout: float = 5) -> Any:
        raise NotImplementedError

    async def receive_iterated(self, receiver: Any) -> Any:
        """The next message of the receiver's iterator form."""
        raise NotImplementedError


class Family:
    """A client family as the tests see it."""

    name: str
    no_responders: str  # the error type a request without responders raises
    legacy_reply_operation: str  # a reply's messaging.operation in legacy mode
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

    def client_id(self, conn: Conn) -> int:
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

    # the consumer configuration a fetch span shows, for a consumer made by the fetching connection
    fetch_consumer_config: dict[str, Any]

    def js_receive_name(self, stream: str, subject: str) -> str:
        """The name of a receive span of a JetStream message that ``receive_next``/``receive_iterated``
        handed over."""
        raise NotImplementedError

    def js_receive_sub_attrs(self, receiver: Any, delivered: int, pending: int) -> dict[str, Any]:
        """Subscription attributes of that receive span."""
        raise NotImplementedError


async def _cancelled(waiting: Any, wait: float) -> None:
    """Cancel ``waiting`` (a wait for a message that does not come) after ``wait`` seconds, and wait
    until its pull request (``wait`` + 0.3 s) has expired."""
    task = asyncio.ensure_future(waiting)
    await asyncio.sleep(wait)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.4)


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

    async def add_stream(self, name: str, subjects: list[str]) -> None:
        await self.native.jetstream().add_stream(name=name, subjects=subjects)

    async def js_publish(self, subject: str, data: bytes, *, headers: dict[str, str] | None = None) -> None:
        await self.native.jetstream().publish(subject, data, headers=headers)

    async def pull_consumer(self, stream: str, durable: str, subject: str) -> Any:
        return await self.native.jetstream().pull_subscribe(subject, durable=durable, stream=stream)

    async def fetch(self, consumer: Any, count: int, timeout: float) -> list[Any]:
        import nats.errors

        try:
            return list(await consumer.fetch(count, timeout=timeout))
        except nats.errors.TimeoutError:
            return []

    async def cancelled_fetch(self, consumer: Any, wait: float) -> None:
        await _cancelled(consumer.fetch(1, timeout=wait + 0.3), wait)

    async def receiver(self, stream: str, durable: str, subject: str, *, holding: int = 0) -> Any:
        sub = await self.native.jetstream().subscribe(subject, durable=durable, stream=stream)
        for _ in range(500):
            if sub.pending_msgs >= holding:
                return sub
            await asyncio.sleep(0.01)
        raise AssertionError(f"{sub.pending_msgs} of {holding} messages delivered")

    async def receive_next(self, receiver: Any, timeout: float = 5) -> Any:
        return await receiver.next_msg(timeout=timeout)

    async def receive_iterated(self, receiver: Any) -> Any:
        async for msg in receiver.messages:
            return msg
        raise AssertionError("the subscription ended")


class NatsPy(Family):
    name = "nats-py"
    no_responders = "NoRespondersError"
    legacy_reply_operation = "reply"
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

    def client_id(self, conn: Conn) -> int:
        return int(conn.native._server_info["client_id"])

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

    fetch_consumer_config = {  # (pull_subscribe asked the server for the consumer)
        "messaging.nats.jetstream.ack_policy": "explicit",
        "messaging.nats.jetstream.replay_policy": "instant",
    }

    def js_receive_name(self, stream: str, subject: str) -> str:
        return f"receive {subject}"

    def js_receive_sub_attrs(self, receiver: Any, delivered: int, pending: int) -> dict[str, Any]:
        return self.receive_sub_attrs(Sub(receiver, str(receiver._id)), delivered, pending)


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

    def jetstream(self) -> Any:
        import nats.jetstream

        return nats.jetstream.new(self.native)

    async def add_stream(self, name: str, subjects: list[str]) -> None:
        await self.jetstream().create_stream(name=name, subjects=subjects)

    async def js_publish(self, subject: str, data: bytes, *, headers: dict[str, str] | None = None) -> None:
        await self.jetstream().publish(subject, data, headers=headers)

    async def pull_consumer(self, stream: str, durable: str, subject: str) -> Any:
        return await self.jetstream().create_consumer(
            stream, durable, durable_name=durable, ack_policy="explicit", filter_subject=subject
        )

    async def fetch(self, consumer: Any, count: int, timeout: float) -> list[Any]:
        return [msg async for msg in await consumer.fetch(max_messages=count, max_wait=timeout)]

    async def cancelled_fetch(self, consumer: Any, wait: float) -> None:
        batch = await consumer.fetch(max_messages=1, max_wait=wait + 0.3)
        await _cancelled(batch.__anext__(), wait)  # (the wait for its first message)

    async def receiver(self, stream: str, durable: str, subject: str, *, holding: int = 0) -> Any:
        return await self.pull_consumer(stream, durable, subject)  # (a pull consumer holds nothing)

    async def receive_next(self, receiver: Any, timeout: float = 5) -> Any:
        return await receiver.next(max_wait=timeout)

    async def receive_iterated(self, receiver: Any) -> Any:
        stream = await receiver.messages(max_messages=1)  # (one pull at a time: none left in its inbox)
        try:
            async for msg in stream:
                return msg
        finally:
            await stream.stop()
        raise AssertionError("the stream ended")


class NatsCore(Family):
    name = "nats-core"
    no_responders = "NoRespondersError"
    legacy_reply_operation = "publish"  # (no respond(): a reply is a publish)
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

    def client_id(self, conn: Conn) -> int:
        return int(conn.native.server_info.client_id)

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

    fetch_consumer_config = {  # (create_consumer: the server's answer through the JetStream API client)
        "messaging.nats.jetstream.ack_policy": "explicit",
        "messaging.nats.jetstream.replay_policy": "instant",
    }

    def js_receive_name(self, stream: str, subject: str) -> str:
        return f"receive {stream}"

    def js_receive_sub_attrs(self, receiver: Any, delivered: int, pending: int) -> dict[str, Any]:
        return {}  # (a pull consumer's subscriptions are its own inboxes)


FAMILIES: dict[str, type[Family]] = {"nats-py": NatsPy, "nats-core": NatsCore}
