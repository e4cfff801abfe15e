"""nats-py's patch table and zero-code auto-instrumentation of a nats-py app. (The lifecycle both client
families share is in tests/matrix.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import nats.aio.client
import nats.aio.msg
import nats.aio.subscription
import pytest

from opentelemetry.instrumentation.nats.natspy import PATCHES
from tests.helpers import instrumented_command, load_script

APP = Path(__file__).parent / "apps" / "pubsub_app.py"


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
