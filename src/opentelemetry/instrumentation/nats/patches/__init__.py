"""Patch tables: ``(module, "Class.attribute", wrapper)`` applied by ``NatsInstrumentor``."""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation.nats.patches import connection, core, jetstream, micro

PATCHES: tuple[tuple[str, str, Any], ...] = core.PATCHES + connection.PATCHES + jetstream.PATCHES + micro.PATCHES
