"""A scripted scenario observes the same results with and without instrumentation.

Everything the application can see is recorded — subjects, payloads, headers (minus the trace
headers the instrumentation adds), replies, JetStream acks and metadata, key-value results, the
exceptions raised, the connection's message counters — and the two runs must be equal.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import nats
import nats.errors
import nats.js.errors

from tests.reliability.support import captured_logs, describe_records

TRACE_HEADERS = {"traceparent", "tracestate", "baggage"}
STREAM = "TRANSPARENCY"
BUCKET = "transparency"


def _headers(headers: Any) -> dict[str, str] | None:
    """The application's headers: the trace headers we add are left out (and an empty dict is none)."""
    if not headers:
        return None
    return {k: v for k, v in headers.items() if k.lower() not in TRACE_HEADERS} or None


def _reply(reply: str) -> str:
    return "<inbox>" if reply.startswith("_INBOX.") else reply


def _msg(msg: Any) -> tuple[Any, ...]:
    return msg.subject, msg.data, _headers(msg.headers), _reply(msg.reply)


def _js_msg(msg: Any) -> tuple[Any, ...]:
    md = msg.metadata
    return (
        *_msg(msg)[:3],
        md.stream,
        md.consumer,
        md.sequence.stream,
        md.sequence.consumer,
        md.num_delivered,
        md.num_pending,
    )


async def _raises(log: list[Any], label: str, coro: Any) -> None:
    """Record what an operation raised (type and text), or that it returned normally."""
    try:
        await coro
    except Exception as exc:
        log.append((label, type(exc).__name__, str(exc)))
    else:
        log.append((label, "ok"))


async def _scenario(url: str) -> list[Any]:
    log: list[Any] = []
    nc = await nats.connect(url)
    js = nc.jetstream()
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_stream(STREAM)
    with contextlib.suppress(nats.js.errors.NotFoundError, nats.js.errors.BucketNotFoundError):
        await js.delete_key_value(BUCKET)
    try:
        # --- publish/subscribe: wildcard callback subscription, application headers ------------
        got: list[Any] = []

        async def on_msg(msg: Any) -> None:
            got.append(_msg(msg))

        await nc.subscribe("transp.events.*", cb=on_msg)
        await nc.publish("transp.events.a", b"one")
        await nc.publish("transp.events.b", b"", headers={"X-App": "2"})
        await nc.publish("transp.events.c", b"three", headers={"X-App": "3", "Nats-Msg-Id": "id-3"})
        await nc.publish("transp.events.d", b"four", headers={"traceparent": "app-owned", "X-App": "4"})
        await nc.publish("transp.events.e", b"five", headers={})
        await nc.publish("transp.events.f", b"six", reply="transp.replies")
        # --- queue group: every message once to the group, once to the plain subscriber ---------
        group: list[bytes] = []
        plain: list[bytes] = []

        async def member(msg: Any) -> None:
            group.append(msg.data)

        async def watcher(msg: Any) -> None:
            plain.append(msg.data)

        for _ in range(3):
            await nc.subscribe("transp.work", queue="workers", cb=member)
        await nc.subscribe("transp.work", cb=watcher)
        for i in range(10):
            await nc.publish("transp.work", str(i).encode())
        # --- iterator subscription -------------------------------------------------------------
        sub = await nc.subscribe("transp.iter")
        await nc.publish("transp.iter", b"i1", headers={"K": "v"})
        await nc.publish("transp.iter", b"i2")
        log.append(("next_msg", _msg(await sub.next_msg(timeout=5))))
        async for msg in sub.messages:
            log.append(("async for", _msg(msg)))
            break
        await sub.unsubscribe()
        # --- request/reply ---------------------------------------------------------------------

        async def echo(msg: Any) -> None:
            await msg.respond(b"echo:" + msg.data)

        async def silent(msg: Any) -> None:
            pass

        await nc.subscribe("transp.echo", cb=echo)
        await nc.subscribe("transp.silent", cb=silent)
        await nc.flush()
        for headers in (None, {"X-Req": "1"}, {"Traceparent": "app-owned", "X-Req": "2"}):
            reply = await nc.request("transp.echo", b"ping", timeout=5, headers=headers)
            log.append(("request", reply.data, _headers(reply.headers), reply.subject.startswith("_INBOX.")))
        await _raises(log, "no responders", nc.request("transp.nobody", b"?", timeout=2))
        await _raises(log, "request timeout", nc.request("transp.silent", b"?", timeout=0.2))
        await _raises(log, "bad subject", nc.publish("transp bad", b""))
        await _raises(log, "bad header", nc.publish("transp.x", b"", headers={"bad key": "v"}))

        def sync_cb(msg: Any) -> None:
            pass

        await _raises(log, "sync callback", nc.subscribe("transp.sync", cb=sync_cb))  # type: ignore[arg-type]

        # --- JetStream: publish, duplicates, fetch, nak/redelivery, ack -------------------------
        await js.add_stream(name=STREAM, subjects=["transp.js.>"])
        for i, msg_id in enumerate(["m1", "m2", "m2", None]):
            ack = await js.publish(
                f"transp.js.{i}", f"js{i}".encode(), headers={"Nats-Msg-Id": msg_id} if msg_id else None
            )
            log.append(("js publish", ack.stream, ack.seq, ack.duplicate, ack.domain))
        futures = [await js.publish_async("transp.js.async", b"async", headers={"X-A": "1"}) for _ in range(2)]
        for f in futures:
            ack = await f
            log.append(("js publish_async", ack.stream, ack.seq, ack.duplicate))
        await _raises(log, "js no stream", js.publish("transp.nostream", b"x"))
        psub = await js.pull_subscribe("transp.js.>", durable="transp-puller")
        batch = await psub.fetch(3, timeout=5)
        log.append(("fetch", [_js_msg(m) for m in batch]))
        await batch[0].ack()
        await batch[1].ack_sync()
        naked = batch[2]
        empty = await js.pull_subscribe("transp.js.none", durable="transp-empty")
        await _raises(log, "empty fetch", empty.fetch(1, timeout=0.2))
        info = await js.stream_info(STREAM)
        log.append(("stream", info.state.messages, info.state.first_seq, info.state.last_seq))
        ci = await js.consumer_info(STREAM, "transp-puller")
        log.append(("consumer", ci.num_pending, ci.num_ack_pending, ci.delivered.stream_seq))
        # --- key-value -------------------------------------------------------------------------
        kv = await js.create_key_value(bucket=BUCKET)
        log.append(("kv put", await kv.put("k", b"v1")))
        log.append(("kv update", await kv.update("k", b"v2", last=1)))
        entry = await kv.get("k")
        log.append(("kv get", entry.key, entry.value, entry.revision))
        await _raises(log, "kv create existing", kv.create("k", b"x"))
        await kv.delete("k")
        await _raises(log, "kv get deleted", kv.get("k"))

        await nc.flush()
        await asyncio.sleep(0.05)
        log.append(("callback messages", got))
        log.append(("queue group", sorted(group, key=int), len(group)))
        log.append(("plain subscriber", plain))
        # (in_bytes is left out: JetStream API answers carry timestamps, and stored sizes include headers)
        log.append(("stats", {k: v for k, v in nc.stats.items() if k != "in_bytes"}))

        # --- last (its traffic depends on timing): a nak and the redelivery ---------------------
        # The server handles a nak asynchronously, so which fetch returns the redelivered message,
        # and so the consumer sequences, vary from run to run; what arrives, and how often it was
        # delivered, does not.
        await naked.nak()
        again: list[Any] = []
        for _ in range(50):
            with contextlib.suppress(asyncio.TimeoutError):
                for m in await psub.fetch(10, timeout=0.2):
                    again.append((*_msg(m)[:3], m.metadata.sequence.stream, m.metadata.num_delivered))
                    await m.ack_sync()
            if len(again) >= 3:
                break
        log.append(("fetch again", sorted(again, key=lambda m: m[3])))
        await _raises(log, "fetch drained", psub.fetch(1, timeout=0.2))
    finally:
        with contextlib.suppress(Exception):
            await js.delete_stream(STREAM)
            await js.delete_key_value(BUCKET)
        await nc.close()
    return log


async def test_instrumentation_is_transparent(telemetry: Any, js_server: Any) -> None:
    telemetry.uninstrument()
    plain = await _scenario(js_server.url)
    assert telemetry.spans() == []
    telemetry.instrument()
    with captured_logs() as logs:
        traced = await _scenario(js_server.url)
    assert len(telemetry.spans()) > 50  # the second run was traced …
    assert describe_records(logs) == []
    # … and the application saw exactly the same things
    for a, b in zip(plain, traced, strict=True):
        assert b == a
    # a few sanity checks that the scenario exercised what it claims to
    labels = {entry[0]: entry for entry in plain}
    assert labels["no responders"][1] == "NoRespondersError"
    assert labels["request timeout"][1] == "TimeoutError"
    assert labels["js no stream"][1] == "NoStreamResponseError"
    assert [m[3:] for m in labels["fetch again"][1]] == [(3, 2), (4, 1), (5, 1)]  # the nak'ed message came again
    assert labels["fetch drained"][1] == "TimeoutError"
    assert labels["queue group"][2] == 10 and labels["plain subscriber"][1] == [str(i).encode() for i in range(10)]
