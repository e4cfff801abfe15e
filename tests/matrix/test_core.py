"""Core NATS on each client family: spans, parents, links and attributes of publish, request,
process and receive; errors; suppression. Each test runs once per installed family (the ``family``
fixture, tests/families.py) against a real nats-server."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode, get_current_span

from opentelemetry.instrumentation.nats import message_context
from opentelemetry.instrumentation.nats.recorder import Recorder
from tests.families import Family
from tests.helpers import Telemetry, assert_child, assert_links, wait_spans
from tests.matrix.expect import PROCESS, PUBLISH, RECEIVE, REQUEST, span_id

# --- spans and propagation -------------------------------------------------------------------------


async def test_publish_to_callback_is_one_trace(telemetry: Telemetry, server: Any, family: Family) -> None:
    pub, sub_conn = await family.connect(server), await family.connect(server)
    got: list[Any] = []
    sub = await sub_conn.on("orders.created", got.append)
    await pub.publish("orders.created", b"hello", headers={"App": "1"})
    publish, process = await wait_spans(telemetry, 2)

    assert (publish.name, publish.kind) == ("publish orders.created", SpanKind.PRODUCER)
    assert dict(publish.attributes) == {
        **PUBLISH,
        "messaging.destination.name": "orders.created",
        "messaging.message.body.size": 5,
        **family.conn_attrs(pub),
    }
    assert (process.name, process.kind) == ("process orders.created", SpanKind.CONSUMER)
    assert dict(process.attributes) == {
        **PROCESS,
        "messaging.destination.name": "orders.created",
        "messaging.message.body.size": 5,
        **family.callback_sub_attrs(sub, 1),
        **family.conn_attrs(sub_conn),
    }
    assert_child(process, publish)
    assert_links(process, publish)
    assert (publish.parent, tuple(publish.links)) == (None, ())
    (msg,) = got
    headers = family.headers(msg)
    assert headers["App"] == "1"
    assert headers["traceparent"].split("-")[2] == span_id(publish)
    # the application's own processing span, parented by the message's context
    ctx = message_context(msg)
    assert get_current_span(ctx).get_span_context().span_id == publish.context.span_id


# Recorder.run_cached calls of a request/reply round trip whose destinations are cached: the request,
# and nats-py's Msg.respond (nats-core replies with a plain publish: sending.py's cached path)
_CACHED_ROUND_TRIP = {"nats-py": 2, "nats-core": 1}


@pytest.mark.parametrize("path", ["fast", "full"])
async def test_request_reply_is_one_trace(
    make_telemetry: Any, server: Any, family: Family, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second round trip takes the cached paths (Recorder.run_cached; without hooks or metrics)
    and makes the same spans as the first; a hook that does nothing takes both the full path."""
    hook = (lambda *args: None) if path == "full" else None
    telemetry = make_telemetry(metrics=False, request_hook=hook)
    cached_path = []
    run_cached = Recorder.run_cached
    monkeypatch.setattr(Recorder, "run_cached", lambda rec, *args: cached_path.append(1) or run_cached(rec, *args))
    client, service = await family.connect(server), await family.connect(server)
    sub = await service.on("svc.ping", lambda msg: b"pong!", queue="workers")
    for n in (1, 2):
        telemetry.clear()
        cached_before = len(cached_path)
        response = await client.request("svc.ping", b"ping")
        await service.settled()
        assert response.data == b"pong!"
        spans = await wait_spans(telemetry, 3)
        _assert_round_trip(family, client, service, sub, spans, response, n)
        first_round = n == 1 or path == "full"
        assert len(cached_path) - cached_before == (0 if first_round else _CACHED_ROUND_TRIP[family.name])


def _assert_round_trip(family: Family, client: Any, service: Any, sub: Any, spans: Any, response: Any, n: int) -> None:
    """The spans of the ``n``-th request/reply round trip on ``svc.ping``."""
    assert [s.name for s in spans] == ["request svc.ping", "process svc.ping", "publish"]
    request, process, reply = spans
    assert request.kind == SpanKind.CLIENT
    assert dict(request.attributes) == {
        **REQUEST,
        "messaging.destination.name": "svc.ping",
        "messaging.message.body.size": 4,
        "messaging.nats.response.body.size": 5,
        **family.conn_attrs(client),
    }
    inbox = process.attributes["messaging.nats.reply_to"]
    assert isinstance(inbox, str) and inbox.startswith("_INBOX.")
    assert process.kind == SpanKind.SERVER
    assert dict(process.attributes) == {
        **PROCESS,
        "messaging.destination.name": "svc.ping",
        "messaging.consumer.group.name": "workers",
        "messaging.message.body.size": 4,
        "messaging.nats.reply_to": inbox,
        **family.callback_sub_attrs(sub, n),
        **family.conn_attrs(service),
    }
    assert reply.kind == SpanKind.PRODUCER
    assert dict(reply.attributes) == {
        **PUBLISH,
        "messaging.destination.name": inbox,
        "messaging.destination.temporary": True,
        "messaging.destination.anonymous": True,
        "messaging.message.body.size": 5,
        **family.conn_attrs(service),
    }
    assert_child(process, request)
    assert_links(process, request)
    assert_child(reply, process)
    assert (tuple(request.links), tuple(reply.links)) == ((), ())
    assert family.headers(response)["traceparent"].split("-")[2] == span_id(reply)


async def test_publish_to_an_inbox_is_a_temporary_destination(
    telemetry: Telemetry, server: Any, family: Family
) -> None:
    conn = await family.connect(server)
    inbox = conn.new_inbox()
    sub = await conn.subscribe(inbox)
    await conn.publish(inbox, b"x")
    msg = await conn.next_message(sub)
    publish, receive = await wait_spans(telemetry, 2)
    assert (publish.name, receive.name) == ("publish", "receive")
    temporary = {"messaging.destination.temporary": True, "messaging.destination.anonymous": True}
    assert dict(publish.attributes) == {
        **PUBLISH,
        "messaging.destination.name": inbox,
        **temporary,
        "messaging.message.body.size": 1,
        **family.conn_attrs(conn),
    }
    assert dict(receive.attributes) == {
        **RECEIVE,
        "messaging.destination.name": inbox,
        **temporary,
        "messaging.message.body.size": 1,
        **family.receive_sub_attrs(sub, 1, 0),
        **family.conn_attrs(conn),
    }
    assert msg.data == b"x"


async def test_next_and_async_for_make_receive_spans(telemetry: Telemetry, server: Any, family: Family) -> None:
    conn = await family.connect(server)
    sub = await conn.subscribe("jobs.>")
    await conn.publish("jobs.one", b"a")
    await conn.publish("jobs.two", b"bc")
    await conn.synced()
    await asyncio.sleep(0.05)  # both delivered before the first receive
    first = await conn.next_message(sub)
    second = await conn.iterate(sub)
    assert (first.data, second.data) == (b"a", b"bc")
    with pytest.raises(TimeoutError):
        await conn.next_message(sub, timeout=0.05)
    spans = await wait_spans(telemetry, 4)
    assert [s.name for s in spans] == ["publish jobs.one", "publish jobs.two", "receive jobs.>", "receive jobs.>"]
    pub1, pub2, recv1, recv2 = spans
    for n, (recv, pub, data) in enumerate(((recv1, pub1, b"a"), (recv2, pub2, b"bc")), 1):
        assert recv.kind == SpanKind.CLIENT
        assert recv.parent is None and recv.context.trace_id != pub.context.trace_id
        assert_links(recv, pub)
        assert dict(recv.attributes) == {
            **RECEIVE,
            "messaging.destination.name": pub.attributes["messaging.destination.name"],
            "messaging.destination.template": "jobs.>",
            "messaging.message.body.size": len(data),
            **family.receive_sub_attrs(sub, 2, 2 - n),
            **family.conn_attrs(conn),
        }


@pytest.mark.parametrize("path", ["fast", "full"])
async def test_receive_spans_are_the_same_on_the_fast_and_the_full_path(
    make_telemetry: Any, server: Any, family: Family, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # receiving.py's fast path applies without metrics; a captured header that no message has
    # changes no span, but takes every receive the full path
    telemetry = make_telemetry(metrics=False, captured_headers=["x-absent"] if path == "full" else [])
    full_path = []
    received = Recorder.received
    monkeypatch.setattr(Recorder, "received", lambda rec, *args: full_path.append(1) or received(rec, *args))
    conn = await family.connect(server)
    sub = await conn.subscribe("fast.jobs", queue="q")
    await conn.publish("fast.jobs", b"a")
    await conn.publish("fast.jobs", b"bc", headers={"App": "1"}, reply="fast.replies")
    await conn.publish("fast.jobs", b"def", headers={"Nats-Msg-Id": "m-3"})
    await conn.synced()
    await asyncio.sleep(0.05)  # all three delivered before the first receive
    assert [(await conn.next_message(sub)).data, (await conn.iterate(sub)).data] == [b"a", b"bc"]
    assert (await conn.next_message(sub)).data == b"def"
    spans = await wait_spans(telemetry, 6)
    pubs, recvs = spans[:3], spans[3:]
    assert [s.name for s in recvs] == ["receive fast.jobs"] * 3
    per_message: list[dict[str, Any]] = [
        {},
        {"messaging.nats.reply_to": "fast.replies"},
        {"messaging.message.id": "m-3"},  # (a Nats-Msg-Id takes the full path either way)
    ]
    for n, (recv, pub, data, extra) in enumerate(zip(recvs, pubs, (b"a", b"bc", b"def"), per_message, strict=True), 1):
        assert (recv.kind, recv.parent) == (SpanKind.CLIENT, None)
        assert_links(recv, pub)
        assert dict(recv.attributes) == {
            **RECEIVE,
            "messaging.destination.name": "fast.jobs",
            "messaging.consumer.group.name": "q",
            "messaging.message.body.size": len(data),
            **extra,
            **family.receive_sub_attrs(sub, 3, 3 - n),
            **family.conn_attrs(conn),
        }
    assert len(full_path) == (3 if path == "full" else 1)


@pytest.mark.parametrize("path", ["fast", "full"])
async def test_publish_spans_are_the_same_on_the_fast_and_the_full_path(
    make_telemetry: Any, server: Any, family: Family, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sending.py's fast path applies without hooks or metrics, from a subject's second publish on
    # (its span name and attributes cached); a hook that does nothing takes every publish the full path
    hook = (lambda *args: None) if path == "full" else None
    telemetry = make_telemetry(metrics=False, publish_hook=hook, subject_templates=["tmpl.*"])
    full_path = []
    run = Recorder.run
    monkeypatch.setattr(Recorder, "run", lambda rec, *args, **kw: full_path.append(1) or run(rec, *args, **kw))
    conn = await family.connect(server)
    sent = [("fast.pub", b"a", None), ("fast.pub", b"bc", "fast.replies"), ("tmpl.x", b"d", None)]
    sent.append(("tmpl.x", b"ef", None))  # (cached with the template's name: the subject added per message)
    # replies to inboxes share one cached entry (temporary destinations), their name added per message
    sent += [("_INBOX.fast.1", b"gh", None), ("_INBOX.fast.2", b"ijk", None)]
    for subject, data, reply in sent:
        await conn.publish(subject, data, reply=reply)
    await conn.close()
    with pytest.raises(Exception) as raised:
        await conn.publish("fast.pub", b"g")
    spans = await wait_spans(telemetry, 7)
    names = ["publish fast.pub"] * 2 + ["publish tmpl.*"] * 2 + ["publish"] * 2 + ["publish fast.pub"]
    assert [s.name for s in spans] == names
    temporary = {"messaging.destination.temporary": True, "messaging.destination.anonymous": True}
    for span, (subject, data, reply) in zip(spans, [*sent, ("fast.pub", b"g", None)], strict=True):
        assert (span.kind, span.parent, tuple(span.links)) == (SpanKind.PRODUCER, None, ())
        assert dict(span.attributes) == {
            **PUBLISH,
            "messaging.destination.name": subject,
            **({"messaging.destination.template": "tmpl.*"} if subject.startswith("tmpl.") else {}),
            **(temporary if subject.startswith("_INBOX.") else {}),
            "messaging.message.body.size": len(data),
            **({"messaging.nats.reply_to": reply} if reply else {}),
            **({"error.type": type(raised.value).__qualname__} if data == b"g" else {}),
            **family.conn_attrs(conn),
        }
    assert spans[-1].status.status_code == StatusCode.ERROR
    assert len(full_path) == (7 if path == "full" else 3)  # (else the first publish of each entry)


@pytest.mark.parametrize("consumer_parent", ["parent", "link"])
async def test_receive_span_is_a_child_of_the_callers_span(
    make_telemetry: Any, server: Any, family: Family, consumer_parent: str
) -> None:
    telemetry = make_telemetry(consumer_parent=consumer_parent)
    conn = await family.connect(server)
    sub = await conn.subscribe("poll.jobs")
    await conn.publish("poll.jobs", b"1")
    await conn.publish("poll.jobs", b"2")
    with telemetry.tracer_provider.get_tracer("app").start_as_current_span("poll"):
        await conn.next_message(sub)
        await conn.iterate(sub)
    pub1, pub2, poll, recv1, recv2 = await wait_spans(telemetry, 5)
    assert [s.name for s in (pub1, pub2, poll, recv1, recv2)] == [
        "publish poll.jobs",
        "publish poll.jobs",
        "poll",
        "receive poll.jobs",
        "receive poll.jobs",
    ]
    for recv, pub in ((recv1, pub1), (recv2, pub2)):
        assert recv.kind == SpanKind.CLIENT
        assert_child(recv, poll)
        assert_links(recv, pub)
    assert poll.parent is None and poll.context.trace_id not in (pub1.context.trace_id, pub2.context.trace_id)


async def test_link_mode_makes_process_spans_roots_linked_to_the_producer(
    make_telemetry: Any, server: Any, family: Family
) -> None:
    telemetry = make_telemetry(consumer_parent="link")
    conn = await family.connect(server)
    await conn.on("linked.work", lambda msg: None)
    await conn.publish("linked.work", b"")
    publish, process = await wait_spans(telemetry, 2)
    assert process.parent is None and process.context.trace_id != publish.context.trace_id
    assert_links(process, publish)


async def test_no_responders_is_recorded_and_raised(telemetry: Telemetry, server: Any, family: Family) -> None:
    conn = await family.connect(server)
    with pytest.raises(Exception) as raised:
        await conn.request("nobody.home", b"?")
    assert type(raised.value).__name__ == family.no_responders
    (span,) = await wait_spans(telemetry, 1)
    assert span.name == "request nobody.home"
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == family.no_responders
    assert [e.name for e in span.events] == ["exception"]


async def test_request_timeout_is_recorded(telemetry: Telemetry, server: Any, family: Family) -> None:
    conn = await family.connect(server)
    await conn.subscribe("slow.svc")  # (a responder that never answers)
    with pytest.raises(Exception) as raised:
        await conn.request("slow.svc", b"", timeout=0.05)
    assert type(raised.value).__name__ == "TimeoutError"
    (span,) = await wait_spans(telemetry, 1)
    assert (span.name, span.attributes["error.type"]) == ("request slow.svc", "TimeoutError")
    assert span.status.status_code == StatusCode.ERROR


async def test_caller_headers_with_a_context_are_sent_unchanged(
    telemetry: Telemetry, server: Any, family: Family
) -> None:
    conn = await family.connect(server)
    sub = await conn.subscribe("own.ctx")
    own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await conn.publish("own.ctx", b"", headers={"traceparent": own})
    msg = await conn.next_message(sub)
    publish, _ = await wait_spans(telemetry, 2)
    assert family.headers(msg)["traceparent"] == own
    assert publish.kind == SpanKind.CLIENT
    assert [format(link.context.span_id, "016x") for link in publish.links] == ["b7ad6b7169203331"]


async def test_callback_errors_are_recorded_and_reach_the_client(
    telemetry: Telemetry, server: Any, family: Family, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await family.connect(server)
    calls: list[bytes] = []

    def boom(msg: Any) -> None:
        calls.append(msg.data)
        raise ValueError("boom")

    await conn.on("errors.cb", boom)
    with caplog.at_level(logging.ERROR):
        await conn.publish("errors.cb", b"x")
        _, process = await wait_spans(telemetry, 2)
    assert calls == [b"x"]
    assert (process.status.status_code, process.attributes["error.type"]) == (StatusCode.ERROR, "ValueError")
    assert [e.name for e in process.events] == ["exception"]


async def test_suppressed_instrumentation_makes_no_spans(telemetry: Telemetry, server: Any, family: Family) -> None:
    conn = await family.connect(server)
    sub = await conn.subscribe("quiet.>")
    with suppress_instrumentation():
        await conn.on("quiet.svc", lambda msg: b"")  # (its callback is not traced)
        await conn.publish("quiet.one", b"")
        msg = await conn.next_message(sub)
        await conn.request("quiet.svc", b"")
        await conn.settled()
    assert family.headers(msg) == {}
    await asyncio.sleep(0.05)
    # the reply the callback sends is suppressed only where the callback runs in the suppressed context
    assert [s.name for s in telemetry.spans()] == ([] if family.callbacks_in_subscribers_context else ["publish"])


async def test_client_connected_before_instrument_is_traced(make_telemetry: Any, server: Any, family: Family) -> None:
    conn = await family.connect(server)
    telemetry = make_telemetry()
    await conn.on("early.client", lambda msg: None)
    await conn.publish("early.client", b"")
    publish, process = await wait_spans(telemetry, 2)
    assert (publish.name, process.name) == ("publish early.client", "process early.client")
    assert dict(process.attributes)["messaging.nats.server.id"] == family.server_info(conn)["server_id"]
