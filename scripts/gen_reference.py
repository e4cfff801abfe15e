"""Generate docs/reference.md from the instrumentation's single table of names (names.py).

python scripts/gen_reference.py          # rewrite docs/reference.md
python scripts/gen_reference.py --check  # exit 1 when the committed file is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

from opentelemetry.instrumentation.nats import names
from opentelemetry.instrumentation.nats.names import KEYS, Metric, Mode
from opentelemetry.instrumentation.nats.otel_private import EVENT_NAME_ATTRIBUTE

if str(Path(__file__).resolve().parent) not in sys.path:  # _pages.py is the module next to this script
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _pages import write_or_check

OUT = Path(__file__).resolve().parent.parent / "docs" / "reference.md"

_MEANINGS = {
    "system": "messaging system (`nats`)",
    "subject": "subject (destination)",
    "template": "subscription subject with wildcards",
    "subject_template": "`subject_templates` pattern the subject matches",
    "server_address": "server host (never credentials)",
    "server_port": "server port",
    "client_id": "client id (server-assigned)",
    "consumer_group": "queue group / deliver group",
    "response_size": "response body size (request span)",
}


def _keys(values: tuple[str, ...]) -> str:
    return ", ".join(f"`{v}`" for v in values)


def _every_mode_attributes() -> list[str]:
    prefixes = ("messaging.", "error.")
    mode_keys = {k for keys in KEYS.values() for field in keys if isinstance(field, tuple) for k in field}
    mode_keys |= {names.OPERATION_TYPE, names.OPERATION_NAME, names.LEGACY_OPERATION}
    values = {
        v
        for k, v in vars(names).items()
        if k.isupper() and isinstance(v, str) and v.startswith(prefixes) and not k.startswith(("M_", "ENV_", "ST_"))
    }
    return sorted(v for v in values - mode_keys if not v.endswith("."))


def _metrics(prefix: str) -> list[Metric]:
    return [v for k, v in vars(names).items() if k.startswith(prefix) and isinstance(v, Metric)]


def _server_trace() -> list[str]:
    """The server trace bridge's section: the ``ST_`` names plus the shared keys its spans carry."""
    attrs = [
        names.MESSAGING_SYSTEM_NAME,
        names.DESTINATION_NAME,
        names.DESTINATION_TEMPORARY,
        names.NATS_SERVER_ID,
        names.NATS_SERVER_NAME,
        names.NATS_SERVER_VERSION,
        names.NATS_CLUSTER,
        names.JS_DOMAIN,
        names.JS_STREAM,
        names.JS_SUBJECT,
        names.ERROR_TYPE,
    ]
    st = {k: v for k, v in vars(names).items() if k.startswith("ST_") and isinstance(v, str)}
    event_only = ("ST_EGRESS_KIND", "ST_EGRESS_NAME", "ST_EGRESS_CID", "ST_EGRESS_HOP", "ST_SUBSCRIPTION", "ST_QUEUE")
    event_only += ("ST_IMPORT_FROM", "ST_IMPORT_TO", "ST_EXPORT_TO", "ST_JS_NO_INTEREST")
    attrs += [v for k, v in st.items() if v.startswith("messaging.") and k not in event_only]
    out = [
        "## Server trace spans (`opentelemetry.instrumentation.nats.server_trace`)",
        "",
        f"One span per server traversal of a traced message: name `{names.ST_SPAN_VERB} {{ingress subject}}`"
        f" (`{names.ST_SPAN_VERB}` for an inbox subject), kind {names.ST_SPAN_KIND}, resource"
        f" `service.name` = `{names.ST_SERVICE_NAME}`, `service.instance.id` = server id,"
        " `service.version` = server version.",
        "",
        "Span attributes:",
        "",
    ]
    out += [f"- `{a}`" for a in dict.fromkeys(attrs)]
    out += ["", "Span events, one per step of the server's trace event, at the step's timestamp:", ""]
    out += [f"- `{v}`" for k, v in st.items() if k.startswith("ST_EVENT_")]
    out += [
        "",
        "Their attributes: the span attributes of the step (account, mapped subject, JetStream stream and"
        " subject, error) and:",
        "",
    ]
    out += [f"- `{st[k]}`" for k in event_only]
    out += ["", "| metric | unit | description |", "| --- | --- | --- |"]
    out += [f"| `{m.name}` | `{m.unit}` | {m.description} |" for m in _metrics("ST_M_")]
    return out


def _exception_events() -> list[str]:
    """The exception events' section (``exception_events`` option)."""
    out = [
        "## Exception events (`exception_events`)",
        "",
        "Log records emitted through the OpenTelemetry Logs API when an operation fails, in the context of",
        "its span (same trace id and span id). Off by default. Key-value and object-store operations emit none.",
        "",
        "| operation type | event name | severity |",
        "| --- | --- | --- |",
    ]
    for op_type, event in names.EXCEPTION_EVENTS.items():
        out.append(f"| {op_type} | `{event.name}` | {event.severity_text} ({event.severity_number}) |")
    out += [
        "",
        f"Attributes: `{names.EXCEPTION_TYPE}` (fully qualified class name), `{names.EXCEPTION_MESSAGE}`,",
        f"`{names.EXCEPTION_STACKTRACE}`, `{names.ERROR_TYPE}` (as on the span) and the operation's metric",
        "attributes (system, operation, destination or template, server address and port, consumer group).",
        f"With opentelemetry-api older than 1.35 the event name is the `{EVENT_NAME_ATTRIBUTE}` attribute.",
        "",
    ]
    return out


def _span_table(title: str, spans: tuple[names.SpanSpec, ...]) -> list[str]:
    rows = [
        f"| {title} | span name | kind | `messaging.operation.type` | `messaging.operation.name` "
        "| legacy `messaging.operation` |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in spans:
        rows.append(f"| `{s.call}` | `{s.name}` | {s.kind} | {s.op.type or '—'} | `{s.op.name}` | `{s.op.legacy}` |")
    return rows


def render() -> str:
    out = [
        "# Reference: spans, attributes and metrics",
        "",
        "Generated by `scripts/gen_reference.py` from `src/opentelemetry/instrumentation/nats/names.py`.",
        "Do not edit by hand: `tests/test_reference.py` fails when this file is stale.",
        "",
        "## Spans",
        "",
        *_span_table("nats-py call", names.SPANS),
        "",
        "The next-generation clients: nats-core (`nats.client`, Python 3.13 and newer). A reply is a",
        "`Client.publish` to the message's reply subject.",
        "",
        *_span_table("nats-core call", names.CORE_SPANS),
    ]
    out += [
        "",
        "`{dest}` is the subscription subject when a wildcard subscription received the message, else the",
        "subject; it is left out for temporary (inbox) subjects. `{subject}` and `{dest}` are replaced by the",
        "`subject_templates` pattern the subject matches, and left out for a subject neither seen before nor",
        "templated once `max_destinations` distinct subjects have been named.",
        "",
        "A nats-jetstream `fetch` returns a batch that receives its messages while the application reads",
        "it: its `fetch {stream}` span starts at the call, in the caller's context, and ends at the message",
        "that completes the batch, at the last message handed over when the batch ends or is dropped",
        "unfinished (recorded when it is garbage-collected), or at the error it ends with.",
        "",
        "## Attributes that depend on the mode",
        "",
        "| meaning | " + " | ".join(f"`{m.value}`" for m in Mode) + " |",
        "| --- | --- | --- | --- |",
    ]
    for field, meaning in _MEANINGS.items():
        out.append(f"| {meaning} | " + " | ".join(_keys(getattr(KEYS[m], field)) for m in Mode) + " |")
    ops = {
        m: _keys(
            ((names.OPERATION_TYPE, names.OPERATION_NAME) if KEYS[m].current_operation else ())
            + ((names.LEGACY_OPERATION,) if KEYS[m].legacy_operation else ())
        )
        for m in Mode
    }
    out.append("| operation | " + " | ".join(ops[m] for m in Mode) + " |")
    out += ["", "## Attributes in every mode", ""]
    out += [f"- `{a}`" for a in _every_mode_attributes()]
    out += [f"- `{names.NATS_HEADER_PREFIX}<lower-case header name>` (only headers listed in `captured_headers`)"]
    out += ["", *_server_trace()]
    out += ["", "## Metrics", ""]
    sections = (
        ("`current` and `dup` modes", "M_", lambda n: not n.startswith("M_LEGACY_")),
        ("`legacy` and `dup` modes (the original NATS metric names)", "M_LEGACY_", lambda n: True),
    )
    for title, prefix, keep in sections:
        out += [f"### {title}", "", "| metric | unit | description |", "| --- | --- | --- |"]
        for k, v in vars(names).items():
            if k.startswith(prefix) and isinstance(v, Metric) and keep(k):
                out.append(f"| `{v.name}` | `{v.unit}` | {v.description} |")
        out.append("")
    out += [
        "Histogram bucket advice (seconds): " + ", ".join(f"{b:g}" for b in names.DURATION_BUCKETS_S) + ".",
        "Millisecond histograms use the same boundaries times 1000.",
        "",
        f"Bucket advice of `{names.M_JS_MESSAGE_AGE.name}` (seconds, in every mode): "
        + ", ".join(f"{b:g}" for b in names.MESSAGE_AGE_BUCKETS_S)
        + ".",
        "",
        *_exception_events(),
        "## Environment variables",
        "",
    ]
    out += [f"- `{v}`" for k, v in vars(names).items() if k.startswith("ENV_")]
    return "\n".join(out) + "\n"


def main() -> int:
    return write_or_check(OUT, render(), "scripts/gen_reference.py", sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
