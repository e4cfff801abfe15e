"""nats-jetstream patches (``nats.jetstream``): ``JetStream.publish``, settle (``Message.ack`` …),
stored-message gets, and the JetStream API funnel.

- ``JetStream.publish``: one PRODUCER span ``publish {subject}`` over all its attempts (the client
  retries a publish that found no responders: the retries are counted by the nested request, see
  :func:`..sending.attempted`), with the PubAck's attributes.
- ``ack``, ``double_ack``, ``nak``, ``nak_with_delay``, ``term``, ``term_with_reason``,
  ``in_progress``: the shared :class:`..jetstream.Settle` spans (``double_ack``'s confirmation inbox
  makes none).
- ``get_message`` and ``get_last_message_for_subject`` of ``JetStream`` and ``Stream`` (direct gets
  included): a ``get {stream}`` span linked to the writer, or, inside a key-value read, the message
  handed to it (see :func:`..stored.get`).
- The API client's ``request_json``, which every ``$JS.API`` call goes through: no spans; the stream
  and consumer configurations it returns are kept (:func:`..jetstream.api_call`).

Fast path: ``publish(subject, payload[, headers=…])`` is taken apart without binding, and the
wrapper returns the coroutine to await (as sending.py's); a publish to a subject seen before takes
the cached path of :func:`..jetstream.publish_call`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.instrumentation.nats.jetstream import (
    Args,
    JetStreamAccess,
    Kwargs,
    Wrapper,
    api_call,
    publish_call,
)
from opentelemetry.instrumentation.nats.natscore.access import (
    ACCESS,
    api_client,
    header_view,
    jetstream_client,
    message_client,
    store,
    stored_message,
    stream_client,
    stream_name,
)
from opentelemetry.instrumentation.nats.operation import Operation, entry
from opentelemetry.instrumentation.nats.stored import get, get_operation

# where nats-jetstream and nats-key-value keep what the shared JetStream and key-value wrappers read
JS = JetStreamAccess(
    access=ACCESS, message_client=message_client, store=store, stored_message=stored_message, headers=header_view
)

api_request = api_call(api_client)
api_request.__doc__ = """``api.Client.request_json``, every JetStream API call: see :func:`..jetstream.api_call`."""

_PUBLISH_KEYWORDS = frozenset(("headers", "retry_attempts", "retry_wait", "timeout"))


def _publish_args(
    subject: Any,
    payload: bytes,
    *,
    headers: Any = None,
    retry_attempts: int = 2,
    retry_wait: float = 0.25,
    timeout: float = 5.0,
) -> tuple[Any, bytes, Any]:
    return subject, payload, headers


def publish(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``JetStream.publish``: one PRODUCER span (CLIENT when the caller's headers carry a creation
    context) with the PubAck attributes, whatever its retries."""
    rec = entry()
    if rec is None:
        return wrapped(*args, **kwargs)
    plain = len(args) == 2 and kwargs.keys() <= _PUBLISH_KEYWORDS
    if plain:
        (subject, payload), headers = args, kwargs.get("headers")
    else:
        try:
            subject, payload, headers = _publish_args(*args, **kwargs)
        except TypeError:
            return wrapped(*args, **kwargs)
    if not isinstance(subject, str):
        return wrapped(*args, **kwargs)
    client, readable = jetstream_client(instance), header_view(headers)
    return publish_call(
        rec,
        ACCESS,
        client,
        wrapped,
        args,
        kwargs,
        subject=subject,
        payload=payload,
        headers=headers,
        readable=readable,
        plain=plain,
    )


# --- stored messages -------------------------------------------------------------------------------

Described = Callable[..., tuple[Any, Any, Any, Any]]  # (instance, *args, **kwargs) → client, stream, seq, subject


def _getter(describe: Described) -> Wrapper:
    """The patch function of a stored-message get whose call ``describe`` reads."""

    async def get_message(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        def operation() -> Operation:
            return get_operation(ACCESS, *describe(instance, *args, **kwargs))

        return await get(wrapped, args, kwargs, operation, stored_message)

    return get_message


def _js_by_sequence(js: Any, stream: Any, sequence: Any) -> tuple[Any, Any, Any, Any]:
    return jetstream_client(js), stream, sequence, None


def _js_last(js: Any, stream: Any, subject: Any) -> tuple[Any, Any, Any, Any]:
    return jetstream_client(js), stream, None, subject


def _stream_by_sequence(stream: Any, sequence: Any) -> tuple[Any, Any, Any, Any]:
    return stream_client(stream), stream_name(stream), sequence, None


def _stream_last(stream: Any, subject: Any) -> tuple[Any, Any, Any, Any]:
    return stream_client(stream), stream_name(stream), None, subject


js_get_message = _getter(_js_by_sequence)
js_get_last_message = _getter(_js_last)
stream_get_message = _getter(_stream_by_sequence)
stream_get_last_message = _getter(_stream_last)
