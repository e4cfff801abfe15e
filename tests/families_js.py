"""JetStream and key-value over both client families (the JetStream side of tests/families.py).

``js = jetstream(conn)`` gives a :class:`Js` for a family connection (``js.native``: the family's own
JetStream context): streams, publish, pull consumers and their fetches (``fetch``: every message of
one fetch; ``cancelled_fetch``), messages read one at a time (``receiver`` with ``receive_next`` and
``receive_iterated``: nats-py's push subscription and its ``next_msg`` / ``async for``,
nats-jetstream's pull consumer and its ``next()`` / ``messages()``), settling (ack …), stored-message
gets, key-value buckets, watchers and key listings, each the family's own way. Messages, acks,
entries and errors are the family's own (``conn.family.headers(msg)`` reads a message's headers).

What differs by design is spelled out here once: nats-py's ``publish(stream=…)`` is nats-jetstream's
``Nats-Expected-Stream`` header; a message read one at a time is named after its subject, with its
subscription's attributes (nats-py) or after its stream (nats-jetstream); a nats-py watcher hands
over "no more values" markers (skipped here); nats-key-value always makes direct-get buckets (a
bucket without direct gets is made by turning it off afterwards).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tests.families import Conn, Sub

SETTLE = ("ack", "ack_sync", "nak", "term", "in_progress")  # (ack_sync: nats-core's double_ack)


class Js:
    """A connection's JetStream and key-value (see the module docstring)."""

    # the consumer configuration a fetch span shows, for a consumer made by the fetching connection
    fetch_consumer_config = {
        "messaging.nats.jetstream.ack_policy": "explicit",
        "messaging.nats.jetstream.replay_policy": "instant",
    }
    no_stream_error: str  # what a publish to a subject no stream takes raises
    message_not_found: str  # what a get of a missing stored message raises
    # attributes a publish to a subject no stream takes adds (nats-core's retries)
    no_stream_attrs: dict[str, Any] = {}

    native: Any  # the family's own JetStream context

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def add_stream(self, name: str, subjects: list[str], *, allow_direct: bool = False) -> None:
        raise NotImplementedError

    async def manage(self, stream: str) -> None:
        """Management calls on ``stream``: its info, a durable consumer made, read, deleted; the stream deleted."""
        raise NotImplementedError

    async def publish(
        self, subject: str, data: bytes, *, headers: Any = None, expected_stream: str | None = None
    ) -> Any:
        raise NotImplementedError

    def sequence(self, ack: Any) -> int:
        raise NotImplementedError

    async def pull_consumer(self, stream: str, durable: str, subject: str) -> Any:
        """A durable pull consumer of ``subject`` in ``stream``, with explicit acks."""
        raise NotImplementedError

    async def fetch(self, consumer: Any, count: int, timeout: float = 5) -> list[Any]:
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

    def receive_name(self, stream: str, subject: str) -> str:
        """The name of a receive span of a message ``receive_next``/``receive_iterated`` handed over."""
        raise NotImplementedError

    def receive_sub_attrs(self, receiver: Any, delivered: int, pending: int) -> dict[str, Any]:
        """Subscription attributes of that receive span."""
        raise NotImplementedError

    async def settle(self, msg: Any, how: str, *, delay: float | None = None) -> None:
        raise NotImplementedError

    def num_delivered(self, msg: Any) -> int:
        return int(msg.metadata.num_delivered)

    async def get(self, stream: str, *, seq: int | None = None, subject: str | None = None, direct: bool) -> Any:
        """A stored message by sequence, or the last one of ``subject``."""
        raise NotImplementedError

    async def kv_create(self, bucket: str, *, history: int = 10, direct: bool = True) -> Any:
        raise NotImplementedError

    async def kv_open(self, bucket: str) -> Any:
        raise NotImplementedError

    async def watch(self, kv: Any, key: str | None = None) -> Any:
        """A watcher of ``key`` (of every key when ``None``)."""
        raise NotImplementedError

    async def next_entry(self, watcher: Any, timeout: float = 5) -> Any:
        """The next entry the watcher hands over (nats-py: by ``updates()``, past its markers)."""
        raise NotImplementedError

    async def iterate_entry(self, watcher: Any) -> Any:
        """The next entry ``async for`` hands over."""
        raise NotImplementedError

    async def keys(self, kv: Any) -> list[str]:
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


class _PyJs(Js):
    no_stream_error = "NoStreamResponseError"
    message_not_found = "NotFoundError"

    def __init__(self, conn: Conn) -> None:
        super().__init__(conn)
        self.native = conn.native.jetstream()

    async def add_stream(self, name: str, subjects: list[str], *, allow_direct: bool = False) -> None:
        await self.native.add_stream(name=name, subjects=subjects, allow_direct=allow_direct)

    async def manage(self, stream: str) -> None:
        await self.native.stream_info(stream)
        await self.native.add_consumer(stream, durable_name="d1")
        await self.native.consumer_info(stream, "d1")
        await self.native.delete_consumer(stream, "d1")
        await self.native.delete_stream(stream)

    async def publish(
        self, subject: str, data: bytes, *, headers: Any = None, expected_stream: str | None = None
    ) -> Any:
        return await self.native.publish(subject, data, stream=expected_stream, headers=headers)

    def sequence(self, ack: Any) -> int:
        return int(ack.seq)

    async def pull_consumer(self, stream: str, durable: str, subject: str) -> Any:
        return await self.native.pull_subscribe(subject, durable=durable, stream=stream)

    async def fetch(self, consumer: Any, count: int, timeout: float = 5) -> list[Any]:
        import nats.errors

        try:
            return list(await consumer.fetch(count, timeout=timeout))
        except nats.errors.TimeoutError:
            return []

    async def cancelled_fetch(self, consumer: Any, wait: float) -> None:
        await _cancelled(consumer.fetch(1, timeout=wait + 0.3), wait)

    async def receiver(self, stream: str, durable: str, subject: str, *, holding: int = 0) -> Any:
        sub = await self.native.subscribe(subject, durable=durable, stream=stream)
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

    def receive_name(self, stream: str, subject: str) -> str:
        return f"receive {subject}"

    def receive_sub_attrs(self, receiver: Any, delivered: int, pending: int) -> dict[str, Any]:
        return self.conn.family.receive_sub_attrs(Sub(receiver, str(receiver._id)), delivered, pending)

    async def settle(self, msg: Any, how: str, *, delay: float | None = None) -> None:
        if how == "nak":
            await msg.nak(delay=delay)
        else:
            await getattr(msg, how)()

    async def get(self, stream: str, *, seq: int | None = None, subject: str | None = None, direct: bool) -> Any:
        if subject is not None:
            return await self.native.get_last_msg(stream, subject, direct=direct)
        return await self.native.get_msg(stream, seq=seq, direct=direct)

    async def kv_create(self, bucket: str, *, history: int = 10, direct: bool = True) -> Any:
        return await self.native.create_key_value(bucket=bucket, history=history, direct=direct)

    async def kv_open(self, bucket: str) -> Any:
        return await self.native.key_value(bucket)

    async def watch(self, kv: Any, key: str | None = None) -> Any:
        return await (kv.watchall() if key is None else kv.watch(key))

    async def next_entry(self, watcher: Any, timeout: float = 5) -> Any:
        # nats-py's watcher can signal "no more values" before values still in flight
        # (https://github.com/nats-io/nats.py/issues/842): markers are skipped wherever they come
        while (update := await watcher.updates(timeout=timeout)) is None:
            pass
        return update

    async def iterate_entry(self, watcher: Any) -> Any:
        while True:  # (nats-py 2.9 ends the loop at a marker)
            async for update in watcher:
                if update is not None:
                    return update

    async def keys(self, kv: Any) -> list[str]:
        import nats.js.errors

        for _ in range(10):  # (its watcher's early "no more values" marker, above)
            with contextlib.suppress(nats.js.errors.NoKeysError):
                return list(await kv.keys())
        raise AssertionError("NoKeysError ten times")


# --- nats-core (nats-jetstream, nats-key-value) ---------------------------------------------------


class _CoreJs(Js):
    no_stream_error = "NoRespondersError"
    message_not_found = "MessageNotFoundError"
    no_stream_attrs = {"messaging.nats.jetstream.publish.retries": 2}  # (its default retry_attempts)

    def __init__(self, conn: Conn) -> None:
        import nats.jetstream

        super().__init__(conn)
        self.native = nats.jetstream.new(conn.native)

    async def add_stream(self, name: str, subjects: list[str], *, allow_direct: bool = False) -> None:
        await self.native.create_stream(name=name, subjects=subjects, allow_direct=allow_direct)

    async def manage(self, stream: str) -> None:
        await self.native.get_stream_info(stream)
        found = await self.native.get_stream(stream)
        await found.create_consumer(name="d1", durable_name="d1")
        await found.get_consumer_info("d1")
        await found.delete_consumer("d1")
        await self.native.delete_stream(stream)

    async def publish(
        self, subject: str, data: bytes, *, headers: Any = None, expected_stream: str | None = None
    ) -> Any:
        if expected_stream is not None:
            headers = {**(headers or {}), "Nats-Expected-Stream": expected_stream}
        return await self.native.publish(subject, data, headers=headers, retry_wait=0.05)

    def sequence(self, ack: Any) -> int:
        return int(ack.sequence)

    async def pull_consumer(self, stream: str, durable: str, subject: str) -> Any:
        return await self.native.create_consumer(
            stream, durable, durable_name=durable, ack_policy="explicit", filter_subject=subject
        )

    async def fetch(self, consumer: Any, count: int, timeout: float = 5) -> list[Any]:
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

    def receive_name(self, stream: str, subject: str) -> str:
        return f"receive {stream}"

    def receive_sub_attrs(self, receiver: Any, delivered: int, pending: int) -> dict[str, Any]:
        return {}  # (a pull consumer's subscriptions are its own inboxes)

    async def settle(self, msg: Any, how: str, *, delay: float | None = None) -> None:
        if how == "ack_sync":
            await msg.double_ack(timeout=5)
        elif how == "nak" and delay is not None:
            await msg.nak_with_delay(delay)
        else:
            await getattr(msg, how)()

    async def get(self, stream: str, *, seq: int | None = None, subject: str | None = None, direct: bool) -> Any:
        if direct:  # (a Stream of a stream with allow_direct gets directly)
            found = await self.native.get_stream(stream)
            if subject is not None:
                return await found.get_last_message_for_subject(subject)
            return await found.get_message(seq)
        if subject is not None:  # (JetStream's gets are API requests)
            return await self.native.get_last_message_for_subject(stream, subject)
        return await self.native.get_message(stream, seq)

    async def kv_create(self, bucket: str, *, history: int = 10, direct: bool = True) -> Any:
        import nats.key_value

        kv = await nats.key_value.create_key_value(
            self.native, nats.key_value.KeyValueConfig(bucket=bucket, history=history)
        )
        if not direct:  # (its buckets always allow direct gets: turned off for readers opened from now on)
            info = await self.native.get_stream_info(f"KV_{bucket}")
            await self.native.update_stream(**{**info.config.to_request(), "allow_direct": False})
        return kv

    async def kv_open(self, bucket: str) -> Any:
        import nats.key_value

        return await nats.key_value.key_value(self.native, bucket)

    async def watch(self, kv: Any, key: str | None = None) -> Any:
        return await (kv.watch_all() if key is None else kv.watch(key))

    async def next_entry(self, watcher: Any, timeout: float = 5) -> Any:
        return await asyncio.wait_for(watcher.__anext__(), timeout)

    async def iterate_entry(self, watcher: Any) -> Any:
        async for entry in watcher:
            return entry
        raise AssertionError("the watcher ended")

    async def keys(self, kv: Any) -> list[str]:
        return [key async for key in await kv.keys()]


def jetstream(conn: Conn) -> Js:
    """The JetStream and key-value of ``conn``, its family's way."""
    return {"nats-py": _PyJs, "nats-core": _CoreJs}[conn.family.name](conn)
