"""publish_hook / consume_hook / request_hook / response_hook on each client family: their arguments
(the very objects the application gets), async hooks, raising hooks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.families import Conn, Family
from tests.helpers import by_name, wait_spans
from tests.matrix.expect import wait_for

HOOKS = ("publish", "consume", "request", "response")
Call = tuple[str, int, tuple[Any, ...]]


def _hooks(style: str, calls: list[Call]) -> dict[str, Callable[..., Any]]:
    """One hook per option; each records (hook, span id, args) and sets ``app.<hook>`` on its span."""

    def make(name: str) -> Callable[..., Any]:
        def record(span: Any, args: tuple[Any, ...]) -> None:
            calls.append((name, span.get_span_context().span_id, args))
            span.set_attribute(f"app.{name}", True)

        if style == "sync":

            def hook(span: Any, *args: Any) -> None:
                record(span, args)

        elif style == "async":

            async def hook(span: Any, *args: Any) -> None:
                await asyncio.sleep(0.001)  # really suspends: the span must wait for it
                record(span, args)

        elif style == "raising":

            def hook(span: Any, *args: Any) -> None:
                record(span, args)
                raise RuntimeError(f"{name} hook failed")

        else:

            async def hook(span: Any, *args: Any) -> None:
                await asyncio.sleep(0.001)
                record(span, args)
                raise RuntimeError(f"{name} hook failed")

        return hook

    return {f"{name}_hook": make(name) for name in HOOKS}


async def _traffic(conn: Conn) -> dict[str, Any]:
    """publish → callback, request → reply from a callback, publish → next message; returns what the
    application saw."""
    events: list[Any] = []
    requests: list[Any] = []

    def on_request(msg: Any) -> bytes:
        requests.append(msg)
        return b"pong"

    await conn.on("hook.events", events.append)
    await conn.on("hook.svc", on_request)
    pull = await conn.subscribe("hook.pull")
    await conn.publish("hook.events", b"e", headers={"A": "1"})
    await wait_for(lambda: events)
    response = await conn.request("hook.svc", b"q", headers={"R": "2"})
    await conn.settled()
    await conn.publish("hook.pull", b"x")
    pulled = await conn.next_message(pull)
    assert (events[0].data, response.data, pulled.data) == (b"e", b"pong", b"x")
    return {"event": events[0], "request": requests[0], "response": response, "pulled": pulled}


def _expected_calls(family: Family, spans: list[Any], seen: dict[str, Any], style: str) -> list[Call]:
    def sid(name: str, kind: SpanKind | None = None) -> int:
        return int(by_name(spans, name, kind).context.span_id)

    req = seen["request"]
    # an async consume_hook is not called for a callback's process span where callbacks are synchronous
    callbacks = family.async_consume_hook_in_callbacks or style in ("sync", "raising")
    return [
        ("publish", sid("publish hook.events"), ("hook.events", b"e", {"A": "1"})),
        *([("consume", sid("process hook.events"), (seen["event"],))] if callbacks else []),
        ("request", sid("request hook.svc"), ("hook.svc", b"q", {"R": "2"})),
        *([("consume", sid("process hook.svc"), (req,))] if callbacks else []),
        # the reply: publish_hook with the reply subject, the data and the headers the reply carries
        ("publish", sid("publish"), (req.reply, b"pong", family.reply_headers(req))),
        ("response", sid("request hook.svc"), (seen["response"],)),
        ("publish", sid("publish hook.pull"), ("hook.pull", b"x", None)),
        ("consume", sid("receive hook.pull"), (seen["pulled"],)),
    ]


def _key(call: Call) -> tuple[str, int]:
    return call[0], call[1]


SPAN_NAMES = [
    "process hook.events",
    "process hook.svc",
    "publish",
    "publish hook.events",
    "publish hook.pull",
    "receive hook.pull",
    "request hook.svc",
]


@pytest.mark.parametrize("style", ["sync", "async"])
async def test_hooks_get_the_span_and_the_message(
    make_telemetry: Any, server: Any, family: Family, caplog: pytest.LogCaptureFixture, style: str
) -> None:
    calls: list[Call] = []
    telemetry = make_telemetry(**_hooks(style, calls))
    conn = await family.connect(server)
    with caplog.at_level(logging.WARNING, logger="opentelemetry.instrumentation.nats"):
        seen = await _traffic(conn)
        spans = await wait_spans(telemetry, 7)
    assert sorted(s.name for s in spans) == SPAN_NAMES
    expected = _expected_calls(family, spans, seen, style)
    assert sorted(calls, key=_key) == sorted(expected, key=_key)
    for got, want in zip(sorted(calls, key=_key), sorted(expected, key=_key), strict=True):
        for a, b in zip(got[2], want[2], strict=True):
            if hasattr(b, "subject"):  # hooks get the very message object the application gets
                assert a is b
    # what a hook sets on its span is exported: the hooks ran before their spans ended
    hooked = {s.name: sorted(k for k in s.attributes if k.startswith("app.")) for s in spans}
    process_hooked = ["app.consume"] if family.async_consume_hook_in_callbacks or style == "sync" else []
    assert hooked == {
        "publish hook.events": ["app.publish"],
        "process hook.events": process_hooked,
        "request hook.svc": ["app.request", "app.response"],
        "process hook.svc": process_hooked,
        "publish": ["app.publish"],
        "publish hook.pull": ["app.publish"],
        "receive hook.pull": ["app.consume"],
    }
    # an async consume_hook that cannot run for callbacks says so, once
    warnings = [r for r in caplog.records if "coroutine function" in r.getMessage()]
    assert len(warnings) == (0 if process_hooked else 1)


@pytest.mark.parametrize("style", ["raising", "async-raising"])
async def test_raising_hooks_are_logged_and_swallowed(
    make_telemetry: Any, server: Any, family: Family, caplog: pytest.LogCaptureFixture, style: str
) -> None:
    calls: list[Call] = []
    telemetry = make_telemetry(**_hooks(style, calls))
    conn = await family.connect(server)
    with caplog.at_level(logging.ERROR, logger="opentelemetry.instrumentation.nats"):
        seen = await _traffic(conn)  # the application gets every message and the response
        spans = await wait_spans(telemetry, 7)
    assert sorted(s.name for s in spans) == SPAN_NAMES
    assert sorted(calls, key=_key) == sorted(_expected_calls(family, spans, seen, style), key=_key)
    for span in spans:
        assert span.status.status_code == StatusCode.UNSET, span.name
        assert span.events == (), span.name
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == len(calls)
    assert all(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in failures)
    assert sorted(str(r.exc_info[1]) for r in failures if r.exc_info) == sorted(f"{c[0]} hook failed" for c in calls)


async def test_a_receive_span_ends_when_its_consume_hook_is_cancelled(
    make_telemetry: Any, server: Any, family: Family
) -> None:
    """The application cancels a task waiting in ``next`` while its (async) consume hook runs: the
    cancellation reaches the application, and the receive span is ended all the same."""
    entered = asyncio.Event()

    async def consume_hook(span: Any, msg: Any) -> None:
        entered.set()
        await asyncio.sleep(60)

    telemetry = make_telemetry(consume_hook=consume_hook)
    conn = await family.connect(server)
    sub = await conn.subscribe("hooks.cancel")
    await conn.publish("hooks.cancel", b"x")
    task = asyncio.ensure_future(conn.next_message(sub))
    await asyncio.wait_for(entered.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (publish, receive) = await wait_spans(telemetry, 2)
    assert (publish.name, receive.name, receive.kind) == (
        "publish hooks.cancel",
        "receive hooks.cancel",
        SpanKind.CLIENT,
    )
    assert receive.status.status_code == StatusCode.UNSET
