"""publish_hook / consume_hook / request_hook / response_hook: arguments, async hooks, raising hooks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.helpers import by_name, synced, wait_spans

HOOKS = ("publish", "consume", "request", "response")


def _hooks(style: str, calls: list[tuple[str, int, tuple[Any, ...]]]) -> dict[str, Callable[..., Any]]:
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


async def _traffic(nc: Any) -> dict[str, Any]:
    """publish → callback, request → respond, publish → next_msg; returns what the application saw."""
    events: asyncio.Queue[Any] = asyncio.Queue()
    requests: list[Any] = []

    async def on_event(msg: Any) -> None:
        await events.put(msg)

    async def on_request(msg: Any) -> None:
        requests.append(msg)
        await msg.respond(b"pong")

    await nc.subscribe("hook.events", cb=on_event)
    await nc.subscribe("hook.svc", cb=on_request)
    pull = await nc.subscribe("hook.pull")
    await synced(nc)
    await nc.publish("hook.events", b"e", headers={"A": "1"})
    event = await asyncio.wait_for(events.get(), 5)
    response = await nc.request("hook.svc", b"q", timeout=5, headers={"R": "2"})
    await nc.publish("hook.pull", b"x")
    pulled = await pull.next_msg(timeout=5)
    assert (event.data, response.data, pulled.data) == (b"e", b"pong", b"x")
    return {"event": event, "request": requests[0], "response": response, "pulled": pulled}


def _expected_calls(spans: list[Any], seen: dict[str, Any]) -> list[tuple[str, int, tuple[Any, ...]]]:
    def sid(name: str, kind: SpanKind | None = None) -> int:
        return int(by_name(spans, name, kind).context.span_id)

    req = seen["request"]
    return [
        ("publish", sid("publish hook.events"), ("hook.events", b"e", {"A": "1"})),
        ("consume", sid("process hook.events"), (seen["event"],)),
        ("request", sid("request hook.svc"), ("hook.svc", b"q", {"R": "2"})),
        ("consume", sid("process hook.svc"), (req,)),
        # Msg.respond: publish_hook with the reply subject, the data and the headers respond sends (the request's)
        ("publish", sid("publish"), (req.reply, b"pong", req.headers)),
        ("response", sid("request hook.svc"), (seen["response"],)),
        ("publish", sid("publish hook.pull"), ("hook.pull", b"x", None)),
        ("consume", sid("receive hook.pull"), (seen["pulled"],)),
    ]


def _key(call: tuple[str, int, tuple[Any, ...]]) -> tuple[str, int]:
    return call[0], call[1]


@pytest.mark.parametrize("style", ["sync", "async"])
async def test_hooks_get_the_span_and_the_message(make_telemetry: Any, server: Any, connect: Any, style: str) -> None:
    calls: list[tuple[str, int, tuple[Any, ...]]] = []
    telemetry = make_telemetry(**_hooks(style, calls))
    nc = await connect(server.url)
    seen = await _traffic(nc)
    spans = await wait_spans(telemetry, 7)
    assert len(spans) == 7
    expected = _expected_calls(spans, seen)
    assert sorted(calls, key=_key) == sorted(expected, key=_key)
    for got, want in zip(sorted(calls, key=_key), sorted(expected, key=_key), strict=True):
        for a, b in zip(got[2], want[2], strict=True):
            if hasattr(b, "subject"):  # hooks get the very message object the application gets
                assert a is b
    # what a hook sets on its span is exported: the hooks ran before their spans ended
    hooked = {s.name: sorted(k for k in s.attributes if k.startswith("app.")) for s in spans}
    assert hooked == {
        "publish hook.events": ["app.publish"],
        "process hook.events": ["app.consume"],
        "request hook.svc": ["app.request", "app.response"],
        "process hook.svc": ["app.consume"],
        "publish": ["app.publish"],
        "publish hook.pull": ["app.publish"],
        "receive hook.pull": ["app.consume"],
    }


@pytest.mark.parametrize("style", ["raising", "async-raising"])
async def test_raising_hooks_are_logged_and_swallowed(
    make_telemetry: Any, server: Any, connect: Any, caplog: pytest.LogCaptureFixture, style: str
) -> None:
    calls: list[tuple[str, int, tuple[Any, ...]]] = []
    telemetry = make_telemetry(**_hooks(style, calls))
    nc = await connect(server.url)
    with caplog.at_level(logging.ERROR, logger="opentelemetry.instrumentation.nats"):
        seen = await _traffic(nc)  # the application gets every message and the response
        spans = await wait_spans(telemetry, 7)
    assert sorted(s.name for s in spans) == [
        "process hook.events",
        "process hook.svc",
        "publish",
        "publish hook.events",
        "publish hook.pull",
        "receive hook.pull",
        "request hook.svc",
    ]
    assert sorted(calls, key=_key) == sorted(_expected_calls(spans, seen), key=_key)
    for span in spans:
        assert span.status.status_code == StatusCode.UNSET, span.name
        assert span.events == (), span.name
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 8
    assert all(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in failures)
    assert sorted(str(r.exc_info[1]) for r in failures if r.exc_info) == sorted(f"{c[0]} hook failed" for c in calls)
