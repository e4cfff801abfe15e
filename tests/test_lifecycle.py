"""instrument()/uninstrument() lifecycle, suppression, and zero-code auto-instrumentation."""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
from pathlib import Path
from typing import Any

import nats.aio.client
import nats.aio.msg
import nats.aio.subscription
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation

from opentelemetry.instrumentation.nats import NatsInstrumentor
from opentelemetry.instrumentation.nats.natspy import PATCHES
from tests.helpers import instrumented_command, load_script, wait_spans

APP = Path(__file__).parent / "apps" / "pubsub_app.py"


def _originals() -> dict[str, Any]:
    out = {}
    for patch in PATCHES:
        module, attribute = patch.module, patch.attribute
        owner_name, _, name = attribute.rpartition(".")
        owner: Any = importlib.import_module(module)
        for part in owner_name.split("."):
            owner = getattr(owner, part)
        out[f"{module}:{attribute}"] = owner.__dict__[name]
    return out


def test_uninstrument_restores_every_patched_attribute() -> None:
    before = _originals()
    assert not any(hasattr(v, "__wrapped__") for v in before.values())
    inst = NatsInstrumentor()
    inst.instrument()
    patched = _originals()
    assert all(patched[k] is not before[k] and patched[k].__wrapped__ is before[k] for k in before)
    inst.instrument()  # second call is a no-op: not wrapped twice
    assert all(_originals()[k] is patched[k] for k in before)
    inst.uninstrument()
    after = _originals()
    assert all(after[k] is before[k] for k in before)
    inst.uninstrument()  # idempotent too
    assert all(_originals()[k] is before[k] for k in before)


def test_patch_table_covers_the_core_api() -> None:
    attrs = {p.attribute for p in PATCHES}
    assert {
        "Client.publish",
        "Client.request",
        "Client.subscribe",
        "Subscription.next_msg",
        "_SubscriptionMessageIterator.__anext__",
        "Msg.respond",
    } <= attrs
    assert nats.aio.client and nats.aio.msg and nats.aio.subscription


async def test_client_created_before_instrument_is_traced(make_telemetry: Any, server: Any, connect: Any) -> None:
    nc = await connect(server.url)
    telemetry = make_telemetry()
    await nc.publish("early.client", b"")
    (span,) = await wait_spans(telemetry, 1)
    assert span.name == "publish early.client"


async def test_after_uninstrument_nothing_is_traced_or_injected(telemetry: Any, server: Any, connect: Any) -> None:
    nc = await connect(server.url)
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(msg: Any) -> None:
        await got.put(msg)

    await nc.subscribe("after.un", cb=handler)  # callback wrapped while instrumented
    telemetry.uninstrument()
    await nc.publish("after.un", b"")
    msg = await asyncio.wait_for(got.get(), 5)
    await asyncio.sleep(0.05)
    assert msg.headers is None
    assert telemetry.spans() == []
    telemetry.instrument()


async def test_suppress_instrumentation_is_honoured(telemetry: Any, server: Any, connect: Any) -> None:
    nc = await connect(server.url)
    sub = await nc.subscribe("quiet.>")

    async def responder(msg: Any) -> None:
        await msg.respond(b"")

    with suppress_instrumentation():
        await nc.subscribe("quiet.svc", cb=responder)
        await nc.publish("quiet.one", b"")
        msg = await sub.next_msg(timeout=5)
        await nc.request("quiet.svc", b"", timeout=5)
    assert msg.headers is None
    await asyncio.sleep(0.05)
    assert telemetry.spans() == []


def _console_spans(stdout: str) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = load_script("trace_picture").console_spans(stdout)
    return spans


def _run_app(server: Any, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "NATS_URL": server.url,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "pubsub-app",
        **env,
    }
    return subprocess.run(
        instrumented_command(APP),
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@pytest.mark.auto_instrumentation
def test_opentelemetry_instrument_traces_an_unmodified_app(server: Any) -> None:
    result = _run_app(server)
    assert "APP-DONE" in result.stdout
    spans = [s for s in _console_spans(result.stdout) if s["attributes"].get("messaging.system.name") == "nats"]
    assert sorted(s["name"] for s in spans) == sorted(
        [
            "publish app.work",
            "process app.work",
            "request app.ping",
            "process app.ping",
            "publish",
        ]
    )
    assert len({s["context"]["trace_id"] for s in spans}) == 1
    by_name = {s["name"]: s for s in spans}
    assert by_name["process app.work"]["parent_id"] == by_name["publish app.work"]["context"]["span_id"]
    assert by_name["request app.ping"]["parent_id"] == by_name["process app.work"]["context"]["span_id"]
    assert by_name["process app.ping"]["kind"] == "SpanKind.SERVER"


@pytest.mark.auto_instrumentation
def test_disabled_instrumentations_env_turns_it_off(server: Any) -> None:
    result = _run_app(server, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="nats")
    assert "APP-DONE" in result.stdout
    assert [s for s in _console_spans(result.stdout) if "messaging.system.name" in s.get("attributes", {})] == []
