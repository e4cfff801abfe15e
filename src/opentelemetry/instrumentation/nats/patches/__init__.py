"""Patch tables: ``(module, "Class.attribute", wrapper)`` applied by ``NatsInstrumentor``."""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation.nats.patches import core, jetstream, micro

PATCHES: tuple[tuple[str, str, Any], ...] = core.PATCHES + jetstream.PATCHES + micro.PATCHES
