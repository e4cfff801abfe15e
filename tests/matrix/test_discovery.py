"""Which families the instrumentor finds, and zero-code auto-instrumentation of a nats-core app.

The ``natscore`` tox envs run these where only the next-generation clients are installed (no nats-py),
on the oldest and the newest opentelemetry-instrumentation: the loader of ``opentelemetry-instrument``
requires every ``instruments`` requirement of this distribution (and, in newer releases, one of its
``instruments-any`` requirements) to be installed.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

from opentelemetry.instrumentation.nats import NatsInstrumentor, families
from tests.families import skip_reason
from tests.helpers import instrumented_command, load_script

APP = Path(__file__).parent.parent / "apps" / "natscore_app.py"
DIST = "opentelemetry-instrumentation-nats"


def test_instrumentation_dependencies_are_the_installed_families() -> None:
    expected = tuple(f.requirement for f in families.FAMILIES if skip_reason(f.name) is None)
    assert expected, "no client family installed"
    assert tuple(NatsInstrumentor().instrumentation_dependencies()) == expected


def test_the_auto_instrumentation_loader_finds_no_conflict() -> None:
    """What ``opentelemetry-instrument`` checks before it loads the instrumentor."""
    assert get_dist_dependency_conflicts(importlib.metadata.distribution(DIST)) is None


def test_instruments_extras() -> None:
    """``instruments`` installs nats-py (through this package's own ``nats-py`` extra); newer loaders
    take any one of ``instruments-any``."""
    requires = importlib.metadata.distribution(DIST).requires or []

    def extra(name: str) -> list[str]:
        marker = re.compile(rf"extra == ['\"]{re.escape(name)}['\"]")
        return sorted(r.split(";")[0].replace(" ", "") for r in requires if marker.search(r))

    assert extra("instruments") == [f"{DIST}[nats-py]"]
    assert extra("nats-py") == ["nats-py<3,>=2.9.0"]
    assert extra("instruments-any") == ["nats-core<1,>=0.2.0", "nats-py<3,>=2.9.0"]
    assert extra("nats-core") == ["nats-core[nkeys]<1,>=0.2.0", "nats-jetstream<1,>=0.3.0", "nats-key-value<1,>=0.1.0"]


def _app_python() -> Path:
    return Path(os.environ.get("NATS_APP_PYTHON") or sys.executable)


def _has_nats_core(python: Path) -> bool:
    probe = (
        "import importlib.metadata as m, importlib.util as u; m.version('nats-core'); assert u.find_spec('nats.client')"
    )
    return subprocess.run([str(python), "-c", probe], capture_output=True, check=False).returncode == 0


@pytest.mark.auto_instrumentation
@pytest.mark.nats_core
def test_opentelemetry_instrument_traces_a_nats_core_app(server: Any) -> None:
    python = _app_python()
    if not _has_nats_core(python):
        pytest.skip(f"nats-core is not installed for {python}")
    env = {
        **os.environ,
        "NATS_URL": server.url,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "natscore-app",
    }
    result = subprocess.run(instrumented_command(APP), env=env, capture_output=True, text=True, timeout=60, check=True)
    assert "APP-DONE" in result.stdout
    found = load_script("trace_picture").console_spans(result.stdout)
    spans = {s["name"]: s for s in found if s["attributes"].get("messaging.system.name") == "nats"}
    assert sorted(spans) == ["process app.ping", "process app.work", "publish", "publish app.work", "request app.ping"]
    assert len({s["context"]["trace_id"] for s in spans.values()}) == 1
    parents = {name: s["parent_id"] for name, s in spans.items()}
    ids = {name: s["context"]["span_id"] for name, s in spans.items()}
    assert parents == {
        "publish app.work": None,
        "process app.work": ids["publish app.work"],
        "request app.ping": ids["process app.work"],
        "process app.ping": ids["request app.ping"],
        "publish": ids["process app.ping"],
    }
    assert spans["process app.ping"]["kind"] == "SpanKind.SERVER"
