"""What a wrapper reads at its entry: the installed recorder, whether instrumentation is suppressed,
the :class:`Operation` record it builds, and the marker of a client's internals (:data:`ACTIVE`).

Fast paths: :func:`enabled` reads the two suppression keys from the current context directly (an
empty context suppresses nothing); :class:`Operation` has slots; the span kinds are module
constants here (an ``Enum`` member lookup costs as much as a dict lookup per use).
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

from opentelemetry.instrumentation.nats import names, otel_private
from opentelemetry.instrumentation.nats.access import NO_ACCESS, ClientAccess
from opentelemetry.instrumentation.nats.attributes import Attrs
from opentelemetry.instrumentation.nats.names import Op
from opentelemetry.instrumentation.nats.propagation import current_context
from opentelemetry.instrumentation.nats.subjects import is_wildcard

if TYPE_CHECKING:
    from opentelemetry.instrumentation.nats.recorder import Recorder

_P = ParamSpec("_P")

CLIENT, PRODUCER, CONSUMER, SERVER = SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.SERVER

# The instrumented operation whose nats-py internals are running in this task. Nested nats-py
# calls (the publish inside ``request``, ``respond`` …) see it, make no span of their own, and
# inject the operation's context instead.
ACTIVE: ContextVar[Operation | None] = ContextVar("opentelemetry_nats_active", default=None)

# Set by an operation that reads JetStream messages through a client's internals and records them
# itself (a key-value read, watcher or history: the writer's context of each stored message becomes
# a link on the operation's span). While it is set, the internals that deliver a JetStream message
# (a batch's or stream's ``__anext__``, a stored-message get) hand each message to it and record no
# span of their own.
COLLECT: ContextVar[Callable[[Any], None] | None] = ContextVar("opentelemetry_nats_collect", default=None)


class _Installed:
    recorder: Recorder | None = None


def install(recorder: Recorder | None) -> None:
    """Make ``recorder`` the one the patch functions use (``None``: pass everything through)."""
    _Installed.recorder = recorder


def installed() -> Recorder | None:
    return _Installed.recorder


def enabled() -> bool:
    """``is_instrumentation_enabled()`` (see the fast paths above; tests/test_fast_paths.py checks that they agree)."""
    ctx = current_context()
    return not ctx or not otel_private.suppressed(ctx)


def entry() -> Recorder | None:
    """The recorder to use at a wrapper's entry, or ``None`` when the call must pass through:
    not instrumented, instrumentation suppressed, or inside another instrumented operation."""
    rec = _Installed.recorder
    if rec is None or ACTIVE.get() is not None or not enabled():
        return None
    return rec


@dataclass(slots=True, kw_only=True)
class Operation:
    """One user-visible NATS operation, as a client family's patch function saw it."""

    op: Op
    kind: SpanKind
    access: ClientAccess  # the client family's accessor (what the recorder reads from ``client``)
    client: Any
    subject: str
    body_size: int | None = None
    reply_to: str | None = None
    headers: Any = None
    hook_args: tuple[Any, ...] = ()
    sid: Any = None
    template: str | None = None
    queue: str | None = None
    extra: Attrs | None = None  # operation-specific attributes (JetStream metadata, micro endpoint …)
    inject: bool = True
    name_dest: str | None = None  # destination shown in the span name instead of the subject
    # attributes read from the call's result: on_result(keys, result, client)
    on_result: Callable[[names.Keys, Any, Any], Attrs] | None = None
    # an error the call returned rather than raised (a status reply given back as a message)
    result_error: Callable[[Any], BaseException | None] | None = None
    started: int = 0  # time_ns() when the operation started (set by the recorder)
    attempts: int = 0  # requests its client internals made (a JetStream publish's: see sending.request_wrapper)
    metric_attrs: Attrs | None = None  # cached low-cardinality metric attributes (set by the recorder)
    span: Any = None  # the span its internals inject, as a child of ``parent``, when it is not current (see run)
    parent: Context | None = None


def _positional(stub: Callable[_P, Operation]) -> Callable[_P, Operation]:
    """A constructor of :class:`Operation` taking the fields ``stub`` names, positionally (every
    other field gets its default): generated, as dataclasses generate ``__init__``, so it stays in
    step with the fields."""
    fields = {f.name: f for f in dataclasses.fields(Operation)}
    params = inspect.signature(stub).parameters
    unknown = [name for name in params if name not in fields]
    if unknown:
        raise TypeError(f"not fields of Operation: {unknown}")
    scope: dict[str, Any] = {"_new": object.__new__, "_Operation": Operation}
    lines = [f"def {stub.__name__}({', '.join(params)}):", "    self = _new(_Operation)"]
    for name, f in fields.items():
        if name in params:
            lines.append(f"    self.{name} = {name}")
        elif f.default is not dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            scope[f"_default_{name}"] = f.default
            lines.append(f"    self.{name} = _default_{name}")
        else:
            raise TypeError(f"Operation.{name} has no plain default")
    lines.append("    return self")
    exec("\n".join(lines), scope)  # (our own field names only)
    made: Callable[_P, Operation] = scope[stub.__name__]
    made.__doc__, made.__module__, made.__qualname__ = stub.__doc__, stub.__module__, stub.__qualname__
    return made


@_positional
def fast_operation(
    op: Op,
    kind: SpanKind,
    access: ClientAccess,
    client: Any,
    subject: str,
    body_size: int | None,
    reply_to: str | None,
    headers: Any,
    hook_args: tuple[Any, ...],
    sid: Any,
    template: str | None,
    queue: str | None,
    extra: Attrs | None,
    /,
) -> Operation:
    """``Operation(op=op, kind=kind, …)`` for the per-message wrappers (publish, callback delivery,
    and the cached paths of requests, replies and JetStream publishes), with these fields
    positionally. Why it exists: keyword construction of the slotted dataclass costs about 0.5 µs
    more per message (13 keywords: 0.75 µs against 0.22 µs, CPython 3.11)."""
    raise NotImplementedError  # (replaced by the generated constructor)


def client_operation(
    op: Op, access: ClientAccess, client: Any, destination: str, extra: Attrs, inject: bool = False, **fields: Any
) -> Operation:
    """A CLIENT operation on a stream or bucket (fetch, get, settle, key-value and object-store calls):
    ``destination`` names its span (``{op} {destination}``; the operation alone when empty), ``extra``
    holds its JetStream attributes; it injects only with ``inject``."""
    return Operation(
        op=op,
        kind=CLIENT,
        access=access,
        client=client,
        subject=destination,
        inject=inject,
        extra=extra,
        name_dest=destination or None,
        **fields,
    )


now = time.time_ns  # (an alias, not a function around it: one call less per operation)


def size(payload: Any) -> int | None:
    try:
        return len(payload)
    except TypeError:
        return None


def delivered(
    op: Op,
    kind: SpanKind,
    access: ClientAccess,
    client: Any,
    msg: Any,
    *,
    headers: Any,
    sid: Any,
    sub_subject: Any,
    queue: Any,
    extra: Attrs | None = None,
) -> Operation:
    """The consumer-side :class:`Operation` for ``msg`` (its ``subject``, ``data``, ``reply``), which a
    subscription on ``sub_subject`` (the template when it has wildcards) delivered; ``headers``: the
    message's headers as the family reads them."""
    return fast_operation(
        op,
        kind,
        access,
        client,
        msg.subject,
        size(msg.data),
        msg.reply,
        headers,
        (msg,),
        sid,
        sub_subject if isinstance(sub_subject, str) and is_wildcard(sub_subject) else None,
        queue or None,
        extra,
    )


# Marks nats-py internals that make no spans and inject nothing: the internals of an excluded
# operation, nats.micro's own setup and verb handlers …
INTERNAL = Operation(op=names.PROCESS, kind=SpanKind.INTERNAL, access=NO_ACCESS, client=None, subject="", inject=False)


async def untraced(wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Await ``wrapped`` as nats-py internals: nested nats-py calls make no spans and inject nothing
    (and subscriptions made inside keep their callbacks unwrapped)."""
    token = ACTIVE.set(INTERNAL)
    try:
        return await wrapped(*args, **kwargs)
    finally:
        ACTIVE.reset(token)
