"""Stream and consumer configuration "when known": what JetStream API responses told this process.

nats-py asks the server for a stream's or consumer's configuration when the application creates,
updates or looks one up — ``js.add_stream``, ``js.subscribe`` (which creates or looks up its
consumer), ``js.pull_subscribe``, ``js.consumer_info`` … Every such response passes through
``JetStreamManager._api_request``; :meth:`Configs.seen` keeps, per connection, each stream's
``duplicate_window`` and each consumer's ``deliver_subject``, ``ack_policy`` and ``replay_policy``
(the server's effective configuration, not the request's). Spans read them by stream and consumer
name: JetStream publish (``duplicate_window`` of the acknowledging stream), push-consumer process
spans, settle spans and ``fetch`` (the consumer's three). A stream or consumer this process never
asked about has none of them. No request is ever made for them; per message it costs a lookup.

Bounded: at most :data:`CACHE_SIZE` streams and as many consumers per connection (two generations,
see :class:`~.subjects.Generations`), forgotten with the connection.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import suppress
from functools import partial
from typing import Any
from weakref import ref

from opentelemetry.trace import SpanKind

from opentelemetry.instrumentation.nats import attributes, names
from opentelemetry.instrumentation.nats.attributes import Attrs
from opentelemetry.instrumentation.nats.names import Keys
from opentelemetry.instrumentation.nats.subjects import Generations

_LOG = logging.getLogger(__name__)

CACHE_SIZE = 256

_CONSUMER_FIELDS = (
    ("deliver_subject", names.JS_DELIVER_SUBJECT),
    ("ack_policy", names.JS_ACK_POLICY),
    ("replay_policy", names.JS_REPLAY_POLICY),
)


def go_duration(nanoseconds: int) -> str:
    """A duration as Go's ``time.Duration`` prints it (how NATS tools show ``duplicate_window``):
    ``2m0s``, ``1h30m0s``, ``1.5s``, ``500ms``."""
    if nanoseconds == 0:
        return "0s"
    sign, ns = ("-", -nanoseconds) if nanoseconds < 0 else ("", nanoseconds)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size or unit == "ns":
                return f"{sign}{_decimal(ns, size)}{unit}"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = f"{_decimal(rest, 1_000_000_000)}s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    return f"{sign}{minutes}m{seconds}" if minutes else f"{sign}{seconds}"


def _decimal(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{frac:0{digits}d}".rstrip("0")


class _ClientConfigs:
    __slots__ = ("consumers", "streams")

    def __init__(self) -> None:
        self.streams: Generations[str, Attrs] = Generations(CACHE_SIZE)
        self.consumers: Generations[tuple[str, str], Attrs] = Generations(CACHE_SIZE)


class Configs:
    """Per connection: span attributes of the streams and consumers seen in API responses."""

    def __init__(self) -> None:
        # id(client) -> (weak reference to it, its configurations): a lookup makes no weak reference
        # (a WeakKeyDictionary's does), as in clients.py
        self._clients: dict[int, tuple[ref[Any], _ClientConfigs]] = {}

    def seen(self, client: Any, response: Any) -> None:
        """Keep what a JetStream API response says about a stream or a consumer (anything else is ignored)."""
        try:
            config = response.get("config") if isinstance(response, Mapping) else None
            if not isinstance(config, Mapping):
                return
            stream, consumer = response.get("stream_name"), response.get("name")
            if isinstance(stream, str) and isinstance(consumer, str):  # a consumer create/info response
                attrs = {key: value for field, key in _CONSUMER_FIELDS if isinstance(value := config.get(field), str)}
                self._of(client).consumers.remember((stream, consumer), attrs)
            elif isinstance(config.get("name"), str) and "state" in response:  # a stream create/update/info response
                window = config.get("duplicate_window")
                attrs = {names.JS_DUPLICATE_WINDOW: go_duration(window)} if type(window) is int else {}
                self._of(client).streams.remember(config["name"], attrs)
        except Exception:  # an odd response (or client): nothing is kept
            _LOG.debug("could not read a JetStream API response", exc_info=True)

    def clear(self) -> None:
        self._clients.clear()

    def _of(self, client: Any) -> _ClientConfigs:
        found = self._known(client)
        if found is None:
            found, key = _ClientConfigs(), id(client)
            with suppress(TypeError):  # (not weak-referenceable: not kept)
                self._clients[key] = (ref(client, partial(self._forget, key)), found)
        return found

    def _forget(self, key: int, gone: ref[Any]) -> None:
        """A client was garbage-collected: drop its configurations (unless the id is in use again)."""
        found = self._clients.get(key)
        if found is not None and found[0] is gone:
            del self._clients[key]

    def consumer(self, client: Any, stream: Any, consumer: Any) -> Attrs | None:
        """The known ``deliver_subject``/``ack_policy``/``replay_policy`` attributes of a consumer."""
        found = self._known(client)
        return found.consumers.get((stream, consumer)) if found is not None else None

    def stream(self, client: Any, stream: Any) -> Attrs | None:
        """The known ``duplicate_window`` attribute of a stream."""
        found = self._known(client)
        return found.streams.get(stream) if found is not None else None

    def _known(self, client: Any) -> _ClientConfigs | None:
        found = self._clients.get(id(client))
        return found[1] if found is not None and found[0]() is client else None


CONFIGS = Configs()


def with_consumer(client: Any, attrs: Attrs) -> Attrs:
    """``attrs`` (a message's or a fetch's, naming its stream and consumer) with the consumer's known configuration."""
    known = CONFIGS.consumer(client, attrs.get(names.JS_STREAM), attrs.get(names.JS_CONSUMER))
    if known:
        attrs.update(known)
    return attrs


def process_kind(reply: Any, client: Any) -> tuple[SpanKind, Attrs | None]:
    """The kind of a delivered message's process span (SERVER when it has a reply to answer, else
    CONSUMER) and, for a JetStream message (its reply is an ack subject), its metadata attributes."""
    if reply and reply.startswith(names.JS_ACK_PREFIX):
        return SpanKind.CONSUMER, with_consumer(client, attributes.ack_subject_attributes(reply))
    return (SpanKind.SERVER if reply else SpanKind.CONSUMER), None


def puback_result(keys: Keys, ack: Any, client: Any) -> Attrs:
    """The ``on_result`` of a JetStream publish: the PubAck's attributes and the acknowledging
    stream's known ``duplicate_window``."""
    attrs = attributes.puback_attributes(keys, ack)
    known = CONFIGS.stream(client, attrs.get(names.JS_STREAM))
    if known:
        attrs.update(known)
    return attrs
