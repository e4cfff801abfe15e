"""The configuration object, built and validated once in ``instrument()``."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.instrumentation.nats import names
from opentelemetry.instrumentation.nats.names import Mode
from opentelemetry.instrumentation.nats.subjects import SubjectSet

Hook = Callable[..., Awaitable[None] | None]

_CONSUMER_PARENTS = ("parent", "link")


def _choice(option: str, value: Any, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    text = str(value.value if isinstance(value, Mode) else value).strip().lower()
    if text not in allowed:
        raise ValueError(f"{option}: {value!r} is not one of {', '.join(allowed)}")
    return text


def _patterns(option: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    try:
        items = tuple(str(v).strip() for v in value)
    except TypeError:
        raise ValueError(f"{option}: expected a list of subjects or a comma-separated string") from None
    return tuple(i for i in items if i)


def _hook(option: str, value: Any) -> Hook | None:
    if value is not None and not callable(value):
        raise ValueError(f"{option}: expected a function or coroutine function, got {value!r}")
    return value  # type: ignore[no-any-return]


def resolve_mode(option: Any, env: Mapping[str, str]) -> Mode:
    """Mode precedence: ``semconv=`` option, then ``OTEL_PYTHON_NATS_SEMCONV``, then
    ``OTEL_SEMCONV_STABILITY_OPT_IN`` (``messaging/dup`` → dup, ``messaging`` → current), then current."""
    allowed = [m.value for m in Mode]
    if option is not None:
        return Mode(_choice("semconv", option, allowed))
    if env.get(names.ENV_SEMCONV, "").strip():
        return Mode(_choice(names.ENV_SEMCONV, env[names.ENV_SEMCONV], allowed))
    opt_in = {t.strip().lower() for t in env.get(names.ENV_STABILITY, "").split(",")}
    if "messaging/dup" in opt_in:
        return Mode.DUP
    return Mode.CURRENT


@dataclass(frozen=True)
class NatsConfig:
    """Validated options. See the README's options table."""

    mode: Mode = Mode.CURRENT
    consumer_parent: str = "parent"
    excluded_subjects: SubjectSet = field(default_factory=SubjectSet)
    captured_headers: SubjectSet = field(default_factory=SubjectSet)
    envelope_subjects: SubjectSet = field(default_factory=SubjectSet)
    publish_hook: Hook | None = None
    consume_hook: Hook | None = None
    request_hook: Hook | None = None
    response_hook: Hook | None = None
    jetstream_stream_metrics_interval: float | None = None

    @property
    def link_mode(self) -> bool:
        return self.consumer_parent == "link"

    @classmethod
    def from_options(cls, options: Mapping[str, Any], env: Mapping[str, str] | None = None) -> NatsConfig:
        """Build from ``instrument(**kwargs)``; environment variables fill options not given."""
        env = os.environ if env is None else env

        def opt(name: str, var: str | None = None) -> Any:
            if options.get(name) is not None:
                return options[name]
            return env.get(var) if var and env.get(var, "").strip() else None

        interval = options.get("jetstream_stream_metrics_interval")
        if interval is not None:
            if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
                raise ValueError(
                    f"jetstream_stream_metrics_interval: expected a positive number of seconds, got {interval!r}"
                )
            interval = float(interval)
        parent = opt("consumer_parent", names.ENV_CONSUMER_PARENT)
        return cls(
            mode=resolve_mode(options.get("semconv"), env),
            consumer_parent=_choice("consumer_parent", parent, _CONSUMER_PARENTS) if parent else "parent",
            excluded_subjects=SubjectSet(_patterns("excluded_subjects", opt("excluded_subjects", names.ENV_EXCLUDED))),
            captured_headers=SubjectSet(
                p.lower() for p in _patterns("captured_headers", opt("captured_headers", names.ENV_CAPTURED_HEADERS))
            ),
            envelope_subjects=SubjectSet(_patterns("envelope_subjects", opt("envelope_subjects", names.ENV_ENVELOPE))),
            publish_hook=_hook("publish_hook", options.get("publish_hook")),
            consume_hook=_hook("consume_hook", options.get("consume_hook")),
            request_hook=_hook("request_hook", options.get("request_hook")),
            response_hook=_hook("response_hook", options.get("response_hook")),
            jetstream_stream_metrics_interval=interval,
        )
