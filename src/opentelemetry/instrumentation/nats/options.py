"""The ``instrument()`` keywords: one table that :class:`~.config.NatsConfig` reads (which environment
variable fills an option, which values a choice allows) and that the documentation's configuration page
is generated from (``scripts/gen_configuration.py``), so the two cannot drift apart.

``doc`` is Markdown for that page; links in it are relative to the documentation's pages.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.instrumentation.nats import names
from opentelemetry.instrumentation.nats.destinations import DEFAULT_MAX_DESTINATIONS


@dataclass(frozen=True)
class Option:
    """One keyword of ``NatsInstrumentor().instrument()``."""

    name: str
    kind: str  # provider, choice, patterns, count, seconds, flag, hook: how the value is written
    default: str  # as documented
    doc: str
    env: str | None = None  # the environment variable used when the keyword is not given
    choices: tuple[str, ...] = ()  # kind "choice": the allowed values, the default first


KINDS = ("provider", "choice", "patterns", "count", "seconds", "flag", "hook")

_HOOK_NOTE = "Called only for recording (sampled) spans; may be a coroutine function."

OPTIONS: tuple[Option, ...] = (
    Option("tracer_provider", "provider", "the global provider", "Where spans go."),
    Option("meter_provider", "provider", "the global provider", "Where metrics go."),
    Option(
        "logger_provider",
        "provider",
        "the global provider",
        "Where exception events go (only with `exception_events`).",
    ),
    Option(
        "semconv",
        "choice",
        "`current`",
        "Attribute keys and metric names: `current` (the OpenTelemetry messaging semantic conventions"
        " 1.45), `legacy` (the original NATS attribute and metric names), `dup` (both, for moving"
        f" dashboards). When neither the option nor `{names.ENV_SEMCONV}` is set, `{names.ENV_STABILITY}`"
        " decides: `messaging/dup` gives `dup`, `messaging` gives `current`. Span names and kinds are the"
        " same in every mode. See [semantic-convention modes](span-model.md#semantic-convention-modes).",
        env=names.ENV_SEMCONV,
        choices=tuple(m.value for m in names.Mode),
    ),
    Option(
        "consumer_parent",
        "choice",
        "`parent`",
        "Process spans (callbacks, JetStream push callbacks, micro endpoints). `parent`: children of the"
        " message's creation context (the producer's context in the headers), with a link to it. `link`:"
        " root spans with only the link (for fan-out and replays). Receive, fetch and settle spans are the"
        " same in both modes (see [parents and links](span-model.md#parents-and-links)).",
        env=names.ENV_CONSUMER_PARENT,
        choices=("parent", "link"),
    ),
    Option(
        "excluded_subjects",
        "patterns",
        "none",
        "NATS subject patterns (`*` = one token, `>` = the rest). An operation on a matching subject gets"
        " no span, no header injection and no metrics; nats-py internals of excluded requests and replies"
        " to excluded requests are untraced too.",
        env=names.ENV_EXCLUDED,
    ),
    Option(
        "captured_headers",
        "patterns",
        "none",
        "Header names (case-insensitive; `*` and `>` as whole dot-separated tokens: `*` matches every name"
        " without a dot, `>` every name, and a prefix pattern such as `x-*` is rejected) recorded as"
        f" `{names.NATS_HEADER_PREFIX}<lower-case name>` on publish, request and consumer spans and on"
        " `nats.micro` replies sent with headers. Payloads are never recorded.",
        env=names.ENV_CAPTURED_HEADERS,
    ),
    Option(
        "envelope_subjects",
        "patterns",
        "none",
        "Subject patterns on which consumer spans also take the producer's context from a JSON envelope"
        ' `{"traceparent", "tracestate", "data"}` in the payload when the headers carry none (for services'
        " that still carry the context that way). The payload is never changed. See"
        " [migrating](migrating.md#old-and-new-services-in-one-trace).",
        env=names.ENV_ENVELOPE,
    ),
    Option(
        "subject_templates",
        "patterns",
        "none",
        "NATS subject patterns for subjects with ids in them (`orders.*.created`, `users.>`). An operation"
        " on a matching subject is named by the first matching pattern (`publish orders.*.created`), gets"
        f" `{names.DESTINATION_TEMPLATE}` = the pattern, and its metrics carry the pattern instead of the"
        " subject. See [high-cardinality subjects](high-cardinality.md).",
        env=names.ENV_SUBJECT_TEMPLATES,
    ),
    Option(
        "max_destinations",
        "count",
        f"`{DEFAULT_MAX_DESTINATIONS}`",
        "Distinct subjects (not covered by a template) shown in span names and metric attributes. Past it a"
        " new subject is left out of both (the span name is the operation alone) and one warning is logged;"
        f" spans keep `{names.DESTINATION_NAME}`. See [high-cardinality subjects](high-cardinality.md).",
        env=names.ENV_MAX_DESTINATIONS,
    ),
    Option(
        "publish_hook",
        "hook",
        "none",
        "`publish_hook(span, subject, payload, headers)`: called before each traced `publish` (core and"
        " JetStream), `Msg.respond` and micro `Request.respond` (subject = the reply subject). `headers` are"
        f" the caller's headers, before injection. {_HOOK_NOTE}",
    ),
    Option(
        "consume_hook",
        "hook",
        "none",
        "`consume_hook(span, msg)`: called on each process span (before your callback runs), receive span"
        f" and micro endpoint span. {_HOOK_NOTE}",
    ),
    Option(
        "request_hook",
        "hook",
        "none",
        f"`request_hook(span, subject, payload, headers)`: called before each traced `request`. {_HOOK_NOTE}",
    ),
    Option(
        "response_hook",
        "hook",
        "none",
        f"`response_hook(span, msg)`: called after a `request` that got a response. {_HOOK_NOTE}",
    ),
    Option(
        "jetstream_stream_metrics_interval",
        "seconds",
        "off",
        "Seconds between polls of JetStream stream info for the stream message and byte gauges"
        f" (`{names.M_JS_STREAM_MESSAGES.name}`, `{names.M_JS_STREAM_BYTES.name}`).",
    ),
    Option(
        "empty_fetch_spans",
        "flag",
        "off",
        "Record a `fetch {stream}` span (never an error, `messaging.batch.message_count` = 0) for a `fetch`"
        " that returned no messages or was cancelled while it waited. Off: those make no span (an empty"
        f" fetch is still measured in `{names.M_OPERATION_DURATION.name}`).",
        env=names.ENV_EMPTY_FETCH_SPANS,
    ),
    Option(
        "exception_events",
        "flag",
        "off",
        "A failed operation also emits the semantic conventions' exception event through the OpenTelemetry"
        " Logs API, in its span's context (same trace and span id): "
        + ", ".join(f"`{e.name}` ({e.severity_text})" for e in names.EXCEPTION_EVENTS.values())
        + ". The span records the exception as before. See"
        " [exception events](reference.md#exception-events-exception_events).",
        env=names.ENV_EXCEPTION_EVENTS,
    ),
)

BY_NAME = {o.name: o for o in OPTIONS}
