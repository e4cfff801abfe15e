"""What a wrapper reads at its entry: the installed recorder, whether instrumentation is suppressed,
the :class:`Operation` record it builds, and the marker of a client's internals (:data:`ACTIVE`).

Fast paths: :func:`enabled` reads the two suppression keys from the current context directly (an
empty context suppresses nothing); :class:`Operation` has slots; the span kinds are module
constants here (an ``Enum`` member lookup costs as much as a dict lookup per use).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
    return Operation(
        op=op,
        kind=kind,
        access=access,
        client=client,
        subject=msg.subject,
        template=sub_subject if isinstance(sub_subject, str) and is_wildcard(sub_subject) else None,
        queue=queue or None,
        body_size=size(msg.data),
        reply_to=msg.reply,
        headers=headers,
        sid=sid,
        hook_args=(msg,),
        extra=extra,
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
