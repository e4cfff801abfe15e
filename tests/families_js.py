"""JetStream and key-value over both client families (the JetStream side of tests/families.py).

``js = jetstream(conn)`` gives a :class:`Js` for a family connection: streams, publish, pull consumers
and settling (ack …), stored-message gets, key-value buckets, watchers and key listings, each the
family's own way. Messages, acks, entries and errors are the family's own; what differs by design is
spelled out here once: nats-py's ``publish(stream=…)`` is nats-jetstream's ``Nats-Expected-Stream``
header, a nats-py watcher hands over "no more values" markers (skipped here), nats-key-value always
makes direct-get buckets (a bucket without direct gets is made by turning it off afterwards).
"""

from __future__ import annotations

import contextlib
from typing import Any

from tests.families import Conn

SETTLE = ("ack", "ack_sync", "nak", "term", "in_progress")  # (ack_sync: nats-core's double_ack)


class Js:
    """A connection's JetStream and key-value (see the module docstring)."""

    no_stream_error: str  # what a publish to a subject no stream takes raises
    message_not_found: str  # what a get of a missing stored message raises
    # attributes a publish to a subject no stream takes adds (nats-core's retries)
    no_stream_attrs: dict[str, Any] = {}

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

    async def pull(self, stream: str, durable: str, subject: str) -> None:
        """A durable pull consumer with explicit acks."""
        raise NotImplementedError

    async def fetch(self, stream: str, durable: str, count: int) -> list[Any]:
        """``count`` messages of the pull consumer (call it under ``suppress_instrumentation()``)."""
        raise NotImplementedError

    async def settle(self, msg: Any, how: str, *, delay: float | None = None) -> None:
        raise NotImplementedError

    def num_delivered(self, msg: Any) -> int:
        return int(msg.metadata.num_delivered)

    async def get(self, stream: str, *, seq: int | None = None, subject: str | None = None, direct: bool) -> Any:
        """A stored message by sequence, or the last one of ``subject``."""
        raise NotImplementedError

    def stored_headers(self, msg: Any) -> dict[str, str]:
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


# --- nats-py ---------------------------------------------------------------------------------------


class _PyJs(Js):
    no_stream_error = "NoStreamResponseError"
    message_not_found = "NotFoundError"

    def __init__(self, conn: Conn) -> None:
        super().__init__(conn)
        self.js = conn.native.jetstream()
        self.psubs: dict[tuple[str, str], Any] = {}

    async def add_stream(self, name: str, subjects: list[str], *, allow_direct: bool = False) -> None:
        await self.js.add_stream(name=name, subjects=subjects, allow_direct=allow_direct)

    async def manage(self, stream: str) -> None:
        await self.js.stream_info(stream)
        await self.js.add_consumer(stream, durable_name="d1")
        await self.js.consumer_info(stream, "d1")
        await self.js.delete_consumer(stream, "d1")
        await self.js.delete_stream(stream)

    async def publish(
        self, subject: str, data: bytes, *, headers: Any = None, expected_stream: str | None = None
    ) -> Any:
        return await self.js.publish(subject, data, stream=expected_stream, headers=headers)

    def sequence(self, ack: Any) -> int:
        return int(ack.seq)

    async def pull(self, stream: str, durable: str, subject: str) -> None:
        self.psubs[stream, durable] = await self.js.pull_subscribe(subject, durable=durable, stream=stream)

    async def fetch(self, stream: str, durable: str, count: int) -> list[Any]:
        return list(await self.psubs[stream, durable].fetch(count, timeout=5))

    async def settle(self, msg: Any, how: str, *, delay: float | None = None) -> None:
        if how == "nak":
            await msg.nak(delay=delay)
        else:
            await getattr(msg, how)()

    async def get(self, stream: str, *, seq: int | None = None, subject: str | None = None, direct: bool) -> Any:
        if subject is not None:
            return await self.js.get_last_msg(stream, subject, direct=direct)
        return await self.js.get_msg(stream, seq=seq, direct=direct)

    def stored_headers(self, msg: Any) -> dict[str, str]:
        return dict(msg.headers or {})

    async def kv_create(self, bucket: str, *, history: int = 10, direct: bool = True) -> Any:
        return await self.js.create_key_value(bucket=bucket, history=history, direct=direct)

    async def kv_open(self, bucket: str) -> Any:
        return await self.js.key_value(bucket)

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
        self.js = nats.jetstream.new(conn.native)
        self.consumers: dict[tuple[str, str], Any] = {}

    async def add_stream(self, name: str, subjects: list[str], *, allow_direct: bool = False) -> None:
        await self.js.create_stream(name=name, subjects=subjects, allow_direct=allow_direct)

    async def manage(self, stream: str) -> None:
        await self.js.get_stream_info(stream)
        found = await self.js.get_stream(stream)
        await found.create_consumer(name="d1", durable_name="d1")
        await found.get_consumer_info("d1")
        await found.delete_consumer("d1")
        await self.js.delete_stream(stream)

    async def publish(
        self, subject: str, data: bytes, *, headers: Any = None, expected_stream: str | None = None
    ) -> Any:
        if expected_stream is not None:
            headers = {**(headers or {}), "Nats-Expected-Stream": expected_stream}
        return await self.js.publish(subject, data, headers=headers, retry_wait=0.05)

    def sequence(self, ack: Any) -> int:
        return int(ack.sequence)

    async def pull(self, stream: str, durable: str, subject: str) -> None:
        found = await self.js.get_stream(stream)
        self.consumers[stream, durable] = await found.create_consumer(
            name=durable, durable_name=durable, ack_policy="explicit", filter_subject=subject
        )

    async def fetch(self, stream: str, durable: str, count: int) -> list[Any]:
        batch = await self.consumers[stream, durable].fetch(max_messages=count, max_wait=5)
        msgs = []
        async for msg in batch:
            msgs.append(msg)
            if len(msgs) == count:
                break
        return msgs

    async def settle(self, msg: Any, how: str, *, delay: float | None = None) -> None:
        if how == "ack_sync":
            await msg.double_ack(timeout=5)
        elif how == "nak" and delay is not None:
            await msg.nak_with_delay(delay)
        else:
            await getattr(msg, how)()

    async def get(self, stream: str, *, seq: int | None = None, subject: str | None = None, direct: bool) -> Any:
        if direct:  # (a Stream of a stream with allow_direct gets directly)
            found = await self.js.get_stream(stream)
            if subject is not None:
                return await found.get_last_message_for_subject(subject)
            return await found.get_message(seq)
        if subject is not None:  # (JetStream's gets are API requests)
            return await self.js.get_last_message_for_subject(stream, subject)
        return await self.js.get_message(stream, seq)

    def stored_headers(self, msg: Any) -> dict[str, str]:
        return {k: v[0] for k, v in msg.headers.items()} if msg.headers is not None else {}

    async def kv_create(self, bucket: str, *, history: int = 10, direct: bool = True) -> Any:
        import nats.key_value

        kv = await nats.key_value.create_key_value(
            self.js, nats.key_value.KeyValueConfig(bucket=bucket, history=history)
        )
        if not direct:  # (its buckets always allow direct gets: turned off for readers opened from now on)
            info = await self.js.get_stream_info(f"KV_{bucket}")
            await self.js.update_stream(**{**info.config.to_request(), "allow_direct": False})
        return kv

    async def kv_open(self, bucket: str) -> Any:
        import nats.key_value

        return await nats.key_value.key_value(self.js, bucket)

    async def watch(self, kv: Any, key: str | None = None) -> Any:
        return await (kv.watch_all() if key is None else kv.watch(key))

    async def next_entry(self, watcher: Any, timeout: float = 5) -> Any:
        import asyncio

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
