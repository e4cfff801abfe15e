"""instrument() options and their environment variables: how they are read, validated and resolved
(what each option does to spans, on each client family: tests/matrix/test_options.py and its
neighbours)."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest

from opentelemetry.instrumentation.nats import NatsInstrumentor
from opentelemetry.instrumentation.nats.config import NatsConfig, resolve_mode
from opentelemetry.instrumentation.nats.names import Mode
from opentelemetry.instrumentation.nats.operation import installed

# --- NatsConfig: defaults, environment variables, validation ----------------------------------


def test_defaults() -> None:
    cfg = NatsConfig.from_options({}, env={})
    assert cfg.mode is Mode.CURRENT
    assert cfg.consumer_parent == "parent"
    assert not cfg.link_mode
    assert cfg.excluded_subjects.patterns == ()
    assert cfg.captured_headers.patterns == ()
    assert cfg.envelope_subjects.patterns == ()
    assert (cfg.publish_hook, cfg.consume_hook, cfg.request_hook, cfg.response_hook) == (None, None, None, None)
    assert cfg.jetstream_stream_metrics_interval is None
    assert cfg.empty_fetch_spans is False
    assert cfg.exception_events is False


def test_options_are_read() -> None:
    def hook(*args: Any) -> None:
        return None

    cfg = NatsConfig.from_options(
        {
            "semconv": "LEGACY",
            "consumer_parent": " Link ",
            "excluded_subjects": ["health.>", " _INBOX.* ", ""],
            "captured_headers": ("X-Request-Id", "Tenant"),
            "envelope_subjects": "legacy.>,envelope.*.events",
            "publish_hook": hook,
            "consume_hook": hook,
            "request_hook": hook,
            "response_hook": hook,
            "jetstream_stream_metrics_interval": 30,
            "empty_fetch_spans": True,
        },
        env={},
    )
    assert cfg.mode is Mode.LEGACY
    assert cfg.link_mode
    assert cfg.excluded_subjects.patterns == ("health.>", "_INBOX.*")
    assert cfg.captured_headers.patterns == ("x-request-id", "tenant")
    assert cfg.envelope_subjects.patterns == ("legacy.>", "envelope.*.events")
    assert (cfg.publish_hook, cfg.consume_hook, cfg.request_hook, cfg.response_hook) == (hook, hook, hook, hook)
    assert cfg.jetstream_stream_metrics_interval == 30.0
    assert cfg.empty_fetch_spans is True


def test_environment_variables_fill_options_not_given() -> None:
    env = {
        "OTEL_PYTHON_NATS_SEMCONV": "dup",
        "OTEL_PYTHON_NATS_CONSUMER_PARENT": "LINK",
        "OTEL_PYTHON_NATS_EXCLUDED_SUBJECTS": "health.>, metrics.*",
        "OTEL_PYTHON_NATS_CAPTURED_HEADERS": "X-Request-Id,Tenant",
        "OTEL_PYTHON_NATS_ENVELOPE_SUBJECTS": "envelope.>",
        "OTEL_PYTHON_NATS_EMPTY_FETCH_SPANS": "TRUE",
    }
    cfg = NatsConfig.from_options({}, env=env)
    assert cfg.mode is Mode.DUP
    assert cfg.consumer_parent == "link"
    assert cfg.excluded_subjects.patterns == ("health.>", "metrics.*")
    assert cfg.captured_headers.patterns == ("x-request-id", "tenant")
    assert cfg.envelope_subjects.patterns == ("envelope.>",)
    assert cfg.empty_fetch_spans is True
    # an option beats its environment variable, even an empty list or False
    cfg = NatsConfig.from_options(
        {
            "semconv": "current",
            "consumer_parent": "parent",
            "excluded_subjects": [],
            "captured_headers": ["a"],
            "empty_fetch_spans": False,
        },
        env=env,
    )
    assert (cfg.mode, cfg.consumer_parent, cfg.empty_fetch_spans) == (Mode.CURRENT, "parent", False)
    assert cfg.excluded_subjects.patterns == ()
    assert cfg.captured_headers.patterns == ("a",)


def test_blank_environment_variables_are_ignored() -> None:
    env = {
        "OTEL_PYTHON_NATS_SEMCONV": " ",
        "OTEL_PYTHON_NATS_CONSUMER_PARENT": "",
        "OTEL_PYTHON_NATS_EXCLUDED_SUBJECTS": " ",
        "OTEL_PYTHON_NATS_EMPTY_FETCH_SPANS": "  ",
    }
    cfg = NatsConfig.from_options({}, env=env)
    assert (cfg.mode, cfg.consumer_parent, cfg.excluded_subjects.patterns) == (Mode.CURRENT, "parent", ())
    assert cfg.empty_fetch_spans is False


@pytest.mark.parametrize(
    ("options", "env", "message"),
    [
        ({"semconv": "stable"}, {}, "semconv: 'stable' is not one of current, legacy, dup"),
        ({"semconv": ""}, {}, "semconv: '' is not one of current, legacy, dup"),
        (
            {},
            {"OTEL_PYTHON_NATS_SEMCONV": "new"},
            "semconv (from OTEL_PYTHON_NATS_SEMCONV): 'new' is not one of current, legacy, dup",
        ),
        ({"consumer_parent": "child"}, {}, "consumer_parent: 'child' is not one of parent, link"),
        ({"consumer_parent": ""}, {}, "consumer_parent: '' is not one of parent, link"),
        (
            {},
            {"OTEL_PYTHON_NATS_CONSUMER_PARENT": "links"},
            "consumer_parent (from OTEL_PYTHON_NATS_CONSUMER_PARENT): 'links' is not one of parent, link",
        ),
        ({"excluded_subjects": 5}, {}, "excluded_subjects: expected a list of NATS subject patterns"),
        ({"excluded_subjects": b"a.b"}, {}, "excluded_subjects: expected a list of NATS subject patterns"),
        ({"excluded_subjects": [1]}, {}, "excluded_subjects: expected strings, got 1"),
        ({"excluded_subjects": ["a..b"]}, {}, "excluded_subjects: 'a..b' is not a valid NATS subject pattern"),
        ({"excluded_subjects": ["a.>.b"]}, {}, "'>' is allowed only as the last token"),
        ({"excluded_subjects": ["orders*"]}, {}, "wildcards '*' and '>' must be whole tokens"),
        ({"envelope_subjects": ["a b"]}, {}, "envelope_subjects: 'a b' is not a valid NATS subject pattern"),
        ({"captured_headers": ["x-*y"]}, {}, "captured_headers: 'x-*y' is not a valid NATS subject pattern"),
        (
            {},
            {"OTEL_PYTHON_NATS_EXCLUDED_SUBJECTS": "ok.*,bad..one"},
            "excluded_subjects (from OTEL_PYTHON_NATS_EXCLUDED_SUBJECTS): 'bad..one' is not a valid",
        ),
        ({"publish_hook": "print"}, {}, "publish_hook: expected a function or coroutine function"),
        ({"consume_hook": 1}, {}, "consume_hook: expected a function or coroutine function"),
        ({"request_hook": object()}, {}, "request_hook: expected a function or coroutine function"),
        ({"response_hook": [print]}, {}, "response_hook: expected a function or coroutine function"),
        ({"jetstream_stream_metrics_interval": 0}, {}, "jetstream_stream_metrics_interval: expected a positive"),
        ({"jetstream_stream_metrics_interval": -5}, {}, "jetstream_stream_metrics_interval: expected a positive"),
        ({"jetstream_stream_metrics_interval": "10"}, {}, "jetstream_stream_metrics_interval: expected a positive"),
        ({"jetstream_stream_metrics_interval": True}, {}, "jetstream_stream_metrics_interval: expected a positive"),
        ({"jetstream_stream_metrics_interval": math.nan}, {}, "jetstream_stream_metrics_interval: expected a positive"),
        (
            {"empty_fetch_spans": "maybe"},
            {},
            "empty_fetch_spans: 'maybe' is not a boolean (use true or false; 1/0, yes/no, on/off also work)",
        ),
        ({"empty_fetch_spans": 1}, {}, "empty_fetch_spans: 1 is not a boolean"),
        ({"empty_fetch_spans": ""}, {}, "empty_fetch_spans: '' is not a boolean"),
        (
            {},
            {"OTEL_PYTHON_NATS_EMPTY_FETCH_SPANS": "enabled"},
            "empty_fetch_spans (from OTEL_PYTHON_NATS_EMPTY_FETCH_SPANS): 'enabled' is not a boolean",
        ),
        ({"exception_events": "logs"}, {}, "exception_events: 'logs' is not a boolean"),
        (
            {},
            {"OTEL_PYTHON_NATS_EXCEPTION_EVENTS": "logs/dup"},
            "exception_events (from OTEL_PYTHON_NATS_EXCEPTION_EVENTS): 'logs/dup' is not a boolean",
        ),
    ],
)
def test_invalid_values_name_the_option_and_allowed_values(
    options: dict[str, Any], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError) as excinfo:
        NatsConfig.from_options(options, env=env)
    assert message in str(excinfo.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False)]
    + [(v, True) for v in ("true", "True", " 1 ", "yes", "ON")]
    + [(v, False) for v in ("false", "FALSE", "0", "no", " off ")],
)
def test_empty_fetch_spans_values(value: Any, expected: bool) -> None:
    assert NatsConfig.from_options({"empty_fetch_spans": value}, env={}).empty_fetch_spans is expected
    if isinstance(value, str):
        env = {"OTEL_PYTHON_NATS_EMPTY_FETCH_SPANS": value}
        assert NatsConfig.from_options({}, env=env).empty_fetch_spans is expected


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), (False, False), ("yes", True), (" OFF ", False), ("1", True)]
)
def test_exception_events_values(value: Any, expected: bool) -> None:
    assert NatsConfig.from_options({"exception_events": value}, env={}).exception_events is expected
    if isinstance(value, str):
        env = {"OTEL_PYTHON_NATS_EXCEPTION_EVENTS": value}
        assert NatsConfig.from_options({}, env=env).exception_events is expected
        # the keyword beats the variable
        assert NatsConfig.from_options({"exception_events": not expected}, env=env).exception_events is not expected


def test_unknown_option_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="opentelemetry.instrumentation.nats"):
        NatsConfig.from_options(
            {"excluded_subject": ["a"], "tracer_provider": None, "logger_provider": None, "skip_dep_check": True},
            env={},
        )
    assert [r.getMessage() for r in caplog.records] == [
        "NatsInstrumentor.instrument(): unknown option(s) ignored: excluded_subject"
    ]


@pytest.mark.parametrize(
    ("option", "env", "expected"),
    [
        (None, {}, Mode.CURRENT),
        ("legacy", {}, Mode.LEGACY),
        (Mode.DUP, {}, Mode.DUP),
        (None, {"OTEL_PYTHON_NATS_SEMCONV": "Legacy"}, Mode.LEGACY),
        (None, {"OTEL_SEMCONV_STABILITY_OPT_IN": "messaging"}, Mode.CURRENT),
        (None, {"OTEL_SEMCONV_STABILITY_OPT_IN": "http, messaging/dup"}, Mode.DUP),
        (None, {"OTEL_SEMCONV_STABILITY_OPT_IN": "messaging,messaging/dup"}, Mode.DUP),
        (None, {"OTEL_SEMCONV_STABILITY_OPT_IN": "http/dup,database"}, Mode.CURRENT),
        # OTEL_PYTHON_NATS_SEMCONV beats OTEL_SEMCONV_STABILITY_OPT_IN …
        (None, {"OTEL_PYTHON_NATS_SEMCONV": "legacy", "OTEL_SEMCONV_STABILITY_OPT_IN": "messaging/dup"}, Mode.LEGACY),
        (None, {"OTEL_PYTHON_NATS_SEMCONV": "current", "OTEL_SEMCONV_STABILITY_OPT_IN": "messaging/dup"}, Mode.CURRENT),
        # … and the option beats both
        (
            "current",
            {"OTEL_PYTHON_NATS_SEMCONV": "legacy", "OTEL_SEMCONV_STABILITY_OPT_IN": "messaging/dup"},
            Mode.CURRENT,
        ),
        ("legacy", {"OTEL_SEMCONV_STABILITY_OPT_IN": "messaging"}, Mode.LEGACY),
    ],
)
def test_semconv_mode_precedence(option: Any, env: dict[str, str], expected: Mode) -> None:
    assert resolve_mode(option, env) is expected


# --- through instrument() -----------------------------------------------------------------------


def test_invalid_environment_variable_fails_instrument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PYTHON_NATS_EXCLUDED_SUBJECTS", "a.>.b")
    with pytest.raises(ValueError, match=r"excluded_subjects \(from OTEL_PYTHON_NATS_EXCLUDED_SUBJECTS\)"):
        NatsInstrumentor().instrument()
    assert installed() is None
    monkeypatch.delenv("OTEL_PYTHON_NATS_EXCLUDED_SUBJECTS")
    monkeypatch.setenv("OTEL_PYTHON_NATS_EMPTY_FETCH_SPANS", "sometimes")
    with pytest.raises(ValueError, match=r"empty_fetch_spans \(from OTEL_PYTHON_NATS_EMPTY_FETCH_SPANS\)"):
        NatsInstrumentor().instrument()
    assert installed() is None
