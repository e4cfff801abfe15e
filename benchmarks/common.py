"""What both families' SDK paths share (``sdk_paths.py`` for nats-py, ``natscore_paths.py`` for
nats-core): the discarding exporter, the hand-written code's helpers, and the shapes of spans and
metric streams that the equivalence checks compare. Imports no NATS client.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import Histogram, InMemoryMetricReader, Sum
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, get_current_span

BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]


class DiscardExporter(SpanExporter):
    """Accepts every batch and keeps nothing."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def creation_links(ctx: Any) -> list[Link] | None:
    """The link a process span has to the message's creation context (semconv), when there is one."""
    span_ctx = get_current_span(ctx).get_span_context()
    return [Link(span_ctx)] if span_ctx.is_valid else None


def operation(type_: str, name: str, subject: str | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "messaging.system.name": "nats",
        "messaging.operation.type": type_,
        "messaging.operation.name": name,
    }
    if subject is not None:
        attrs["messaging.destination.name"] = subject
    return attrs


# Attributes whose values differ per message or per subscription: compared by key only.
VOLATILE = frozenset(
    {
        "messaging.nats.reply_to",
        "messaging.nats.delivered_messages",
        "messaging.nats.pending_messages",
        "messaging.nats.subscription.id",
        "messaging.nats.jetstream.sequence",
    }
)


def _block(value: Any) -> Any:
    """Blocks publish to subjects of their own (``bench.callback.17``): compare them as one."""
    return re.sub(r"^((?:\w+ )?bench\.[\w.]+?)\.\d+$", r"\1.<block>", value) if isinstance(value, str) else value


def shapes(spans: Sequence[ReadableSpan]) -> set[str]:
    """The kinds of span made: ``name kind parent-name links attributes`` (volatile values masked).

    A set: how many of each depends on the readiness probes (see ``worker.until_delivered``), and
    failed probes are left out."""
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    out = []
    for s in spans:
        if not s.status.is_ok:  # a readiness probe that found no responder yet
            continue
        attrs = {}
        for k, v in (s.attributes or {}).items():
            volatile = k in VOLATILE or (k == "messaging.destination.name" and str(v).startswith("_INBOX."))
            attrs[k] = "<var>" if volatile else _block(v)
        parent = by_id.get(s.parent.span_id) if s.parent is not None else None
        parent_name = _block(parent.name) if parent else None
        linked = [by_id.get(link.context.span_id) for link in s.links]
        links = [_block(target.name) if target else "?" for target in linked]
        out.append(f"{_block(s.name)} {s.kind.name} parent={parent_name} links={links} {sorted(attrs.items())}")
    return set(out)


def metric_points(reader: InMemoryMetricReader) -> list[str]:
    """The per-operation metric streams (histograms, counters; not the observable gauges and
    up-down counters, which are read from connection state on collection)."""
    data = reader.get_metrics_data()
    out = []
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if not isinstance(m.data, Histogram) and not (isinstance(m.data, Sum) and m.data.is_monotonic):
                    continue
                for p in m.data.data_points:
                    out.append(f"{m.name} {m.unit} {sorted((p.attributes or {}).items())}")
    return sorted(out)
