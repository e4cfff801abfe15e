"""The configuration object, built and validated once in ``instrument()``."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from opentelemetry.instrumentation.nats import names
from opentelemetry.instrumentation.nats.destinations import DEFAULT_MAX_DESTINATIONS, Templates
from opentelemetry.instrumentation.nats.names import Mode
from opentelemetry.instrumentation.nats.options import BY_NAME
from opentelemetry.instrumentation.nats.subjects import SubjectSet, pattern_error

_LOG = logging.getLogger(__name__)

Hook = Callable[..., Awaitable[None] | None]

# ``instrument()`` keywords that are not NatsConfig fields but are understood (by us or BaseInstrumentor).
_OTHER_OPTIONS = frozenset(
    {"semconv", "tracer_provider", "meter_provider", "logger_provider", "skip_dep_check", "raise_exception_on_conflict"}
)


def _label(option: str, env_var: str | None) -> str:
    """How an error names a value: the option, and the environment variable when it came from there."""
    return f"{option} (from {env_var})" if env_var else option


def _choice(option: str, value: Any, allowed: Iterable[str], env_var: str | None = None) -> str:
    allowed = tuple(allowed)
    text = str(value.value if isinstance(value, Mode) else value).strip().lower()
    if text not in allowed:
        raise ValueError(f"{_label(option, env_var)}: {value!r} is not one of {', '.join(allowed)}")
    return text


def _patterns(option: str, value: Any, env_var: str | None = None) -> tuple[str, ...]:
    """NATS subject patterns from a list or a comma-separated string; each one is validated."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, (bytes, bytearray, Mapping)) or not isinstance(value, Iterable):
        raise ValueError(
            f"{_label(option, env_var)}: expected a list of NATS subject patterns or a comma-separated string, "
            f"got {value!r}"
        )
    items: list[str] = []
    for v in value:
        if not isinstance(v, str):
            raise ValueError(f"{_label(option, env_var)}: expected strings, got {v!r}")
        v = v.strip()
        if not v:
            continue
        problem = pattern_error(v)
        if problem:
            raise ValueError(
                f"{_label(option, env_var)}: {v!r} is not a valid NATS subject pattern ({problem}); "
                "allowed: dot-separated tokens, '*' for one whole token, '>' as the last token"
            )
        items.append(v)
    return tuple(items)


def _count(option: str, value: Any, env_var: str | None = None) -> int:
    """A whole number ≥ 0, from an int or (environment variables) a string."""
    number = value
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise ValueError(f"{_label(option, env_var)}: expected a whole number ≥ 0, got {value!r}")
    return number


_TRUE = frozenset(("true", "1", "yes", "on"))
_FALSE = frozenset(("false", "0", "no", "off"))


def _flag(option: str, value: Any, env_var: str | None = None) -> bool:
    """A boolean option: ``True``/``False``, or (also from its environment variable) true/false, 1/0,
    yes/no, on/off in any case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
    raise ValueError(
        f"{_label(option, env_var)}: {value!r} is not a boolean (use true or false; 1/0, yes/no, on/off also work)"
    )


def _hook(option: str, value: Any) -> Hook | None:
    if value is not None and not callable(value):
        raise ValueError(f"{option}: expected a function or coroutine function, got {value!r}")
    return value  # type: ignore[no-any-return]


def resolve_mode(option: Any, env: Mapping[str, str]) -> Mode:
    """Mode precedence: ``semconv=`` option, then ``OTEL_PYTHON_NATS_SEMCONV``, then
    ``OTEL_SEMCONV_STABILITY_OPT_IN`` (``messaging/dup`` → dup, ``messaging`` → current), then current."""
    allowed, var = BY_NAME["semconv"].choices, BY_NAME["semconv"].env or names.ENV_SEMCONV
    if option is not None:
        return Mode(_choice("semconv", option, allowed))
    if env.get(var, "").strip():
        return Mode(_choice("semconv", env[var], allowed, var))
    opt_in = {t.strip().lower() for t in env.get(names.ENV_STABILITY, "").split(",")}
    if "messaging/dup" in opt_in:
        return Mode.DUP
    return Mode.CURRENT


@dataclass(frozen=True)
class NatsConfig:
    """Validated options. Each ``instrument()`` keyword, its environment variable and its allowed values
    are in :data:`.options.OPTIONS` (the documentation's configuration page is generated from it)."""

    mode: Mode = Mode.CURRENT
    consumer_parent: str = "parent"
    excluded_subjects: SubjectSet = field(default_factory=SubjectSet)
    captured_headers: SubjectSet = field(default_factory=SubjectSet)
    envelope_subjects: SubjectSet = field(default_factory=SubjectSet)
    subject_templates: Templates = field(default_factory=Templates)
    max_destinations: int = DEFAULT_MAX_DESTINATIONS
    publish_hook: Hook | None = None
    consume_hook: Hook | None = None
    request_hook: Hook | None = None
    response_hook: Hook | None = None
    jetstream_stream_metrics_interval: float | None = None
    empty_fetch_spans: bool = False
    exception_events: bool = False

    @property
    def link_mode(self) -> bool:
        return self.consumer_parent == "link"

    @classmethod
    def from_options(cls, options: Mapping[str, Any], env: Mapping[str, str] | None = None) -> NatsConfig:
        """Build from ``instrument(**kwargs)``; environment variables fill options not given."""
        env = os.environ if env is None else env
        unknown = sorted(k for k in options if k not in _FIELDS and k not in _OTHER_OPTIONS)
        if unknown:
            _LOG.warning("NatsInstrumentor.instrument(): unknown option(s) ignored: %s", ", ".join(unknown))

        def opt(name: str) -> tuple[Any, str | None]:
            """The option's value, else its environment variable's; and the variable when it came from there."""
            if options.get(name) is not None:
                return options[name], None
            var = BY_NAME[name].env
            if var and env.get(var, "").strip():
                return env[var], var
            return None, None

        interval = options.get("jetstream_stream_metrics_interval")
        if interval is not None:
            if (
                isinstance(interval, bool)
                or not isinstance(interval, (int, float))
                or not math.isfinite(interval)
                or interval <= 0
            ):
                raise ValueError(
                    f"jetstream_stream_metrics_interval: expected a positive number of seconds, got {interval!r}"
                )
            interval = float(interval)
        parent, parent_var = opt("consumer_parent")
        empty_fetch, empty_fetch_var = opt("empty_fetch_spans")
        limit, limit_var = opt("max_destinations")
        exc_events, exc_events_var = opt("exception_events")
        return cls(
            mode=resolve_mode(options.get("semconv"), env),
            consumer_parent=(
                _choice("consumer_parent", parent, BY_NAME["consumer_parent"].choices, parent_var)
                if parent is not None
                else "parent"
            ),
            excluded_subjects=SubjectSet(_patterns("excluded_subjects", *opt("excluded_subjects"))),
            captured_headers=SubjectSet(p.lower() for p in _patterns("captured_headers", *opt("captured_headers"))),
            envelope_subjects=SubjectSet(_patterns("envelope_subjects", *opt("envelope_subjects"))),
            subject_templates=Templates(_patterns("subject_templates", *opt("subject_templates"))),
            max_destinations=(
                _count("max_destinations", limit, limit_var) if limit is not None else DEFAULT_MAX_DESTINATIONS
            ),
            publish_hook=_hook("publish_hook", options.get("publish_hook")),
            consume_hook=_hook("consume_hook", options.get("consume_hook")),
            request_hook=_hook("request_hook", options.get("request_hook")),
            response_hook=_hook("response_hook", options.get("response_hook")),
            jetstream_stream_metrics_interval=interval,
            empty_fetch_spans=(
                _flag("empty_fetch_spans", empty_fetch, empty_fetch_var) if empty_fetch is not None else False
            ),
            exception_events=(
                _flag("exception_events", exc_events, exc_events_var) if exc_events is not None else False
            ),
        )


_FIELDS = frozenset(f.name for f in fields(NatsConfig)) - {"mode"}
