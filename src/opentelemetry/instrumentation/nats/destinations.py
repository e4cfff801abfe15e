"""Low-cardinality destinations: subject templates, the bounded set of distinct
destination names, and each connection's bounded cache of span names and attributes per subject.

Span names and metric attributes show a destination only when it has low cardinality: the pattern
of ``subject_templates`` that the subject matches (or the wildcard subscription that received the
message), else the subject itself while fewer than ``max_destinations`` distinct subjects have been
shown. Past that limit a subject not seen before is left out — the span name is the operation
alone — and one warning names ``subject_templates``. Spans always keep
``messaging.destination.name``. Inboxes and ack subjects (temporary) are never shown, and fetch,
key-value and object-store spans show their stream or bucket (low cardinality by nature).

Everything here runs on a cache miss; the recorder's hot path reads :class:`ClientDestinations`
``recent`` directly.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry.instrumentation.nats import attributes, names
from opentelemetry.instrumentation.nats.attributes import Attrs
from opentelemetry.instrumentation.nats.metrics import metric_attributes
from opentelemetry.instrumentation.nats.names import Keys, Op
from opentelemetry.instrumentation.nats.subjects import Generations, is_wildcard

if TYPE_CHECKING:
    from opentelemetry.instrumentation.nats.operation import Operation

_LOG = logging.getLogger(__name__)

# Under the SDK's default of 2 000 series per metric with room to spare: a metric stream has a
# series per destination *and* operation, error type, server and queue group (docs/high-cardinality.md).
DEFAULT_MAX_DESTINATIONS = 100
CACHE_SIZE = 1024  # entries per generation of a connection's per-subject cache
SHAPES_SIZE = 256  # entries per generation of a connection's per-shape cache

# Operations on a NATS subject: templates and the limit apply to them. (Fetch, key-value and object
# store spans are named after a stream or bucket.)
SUBJECT_OPS = frozenset(
    {
        names.PUBLISH,
        names.RESPOND,
        names.REQUEST,
        names.PROCESS,
        names.RECEIVE,
        names.ACK,
        names.NAK,
        names.TERM,
        names.IN_PROGRESS,
    }
)

# span name, span attributes, metric attributes, and whether the subject is added to the span's
# attributes per message (inboxes, ack subjects, subjects under a template or past the limit)
Entry = tuple[str, Attrs, Attrs, bool]
# span name (None: the subject's own), span and metric attributes without the subject
_Shape = tuple[str | None, Attrs, Attrs]


class Templates:
    """``subject_templates``: NATS wildcard patterns; :meth:`first` is the first one a subject matches.

    Fast path: all patterns are one regular expression, an alternative (a group) per pattern in
    their order, so one ``fullmatch`` call finds the first matching pattern however many there are."""

    __slots__ = ("_regex", "patterns")

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns: tuple[str, ...] = tuple(p for p in patterns if p)
        self._regex = re.compile("|".join(f"({_regex(p)})" for p in self.patterns)) if self.patterns else None

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def first(self, subject: str) -> str | None:
        found = self._regex.fullmatch(subject) if self._regex is not None else None
        return self.patterns[found.lastindex - 1] if found is not None and found.lastindex else None


# What nats-py (2.16) refuses in a subject before sending (BadSubjectError), the NATS protocol's separators
_BAD_SUBJECT = re.compile(r"[ \t\r\n]")


def valid_subject(subject: str) -> bool:
    """False for a subject nats-py refuses (or, with ``skip_subject_validation``, that the protocol
    splits): it never names a span or a metric series, nor takes a place among ``max_destinations``."""
    return _BAD_SUBJECT.search(subject) is None


def _regex(pattern: str) -> str:
    """A (valid) NATS pattern as a regular expression: ``*`` one token, a final ``>`` one or more."""
    return r"\.".join("[^.]+" if t == "*" else ".+" if t == ">" else re.escape(t) for t in pattern.split("."))


class ClientDestinations(Generations[tuple[Any, ...], Entry]):
    """One connection's cache: an :data:`Entry` per (operation, subject, subscription template,
    queue group, name destination), built by :meth:`Destinations.entry` from a cached *shape* (the
    same without the subject) and the connection's attributes ``conn``."""

    __slots__ = ("conn", "shapes")

    def __init__(self, conn: Attrs) -> None:
        super().__init__(CACHE_SIZE)
        self.conn = conn
        self.shapes: Generations[tuple[Any, ...], _Shape] = Generations(SHAPES_SIZE)


class Destinations:
    """The recorder's destination policy: templates, the limit of distinct destination names shown
    (``shown``: at most ``max_destinations``; the first refusal logs the one warning), and how cache
    entries are built."""

    def __init__(self, keys: Keys, templates: Templates, max_destinations: int, metric_keys: frozenset[str]) -> None:
        self.keys = keys
        self.templates = templates
        self.max_destinations = max_destinations
        self.shown: set[str] = set()
        self.warned = False
        self.metric_keys = metric_keys

    def admit(self, subject: str) -> bool:
        """True when ``subject`` may be shown: shown before, or still under the limit (and valid: see
        :func:`valid_subject`)."""
        shown = self.shown
        if subject in shown:
            return True
        if len(shown) < self.max_destinations:
            if not valid_subject(subject):
                return False
            shown.add(subject)
            return True
        if not self.warned:
            self.warned = True
            _LOG.warning(
                "NATS instrumentation: %d distinct destination names reached (max_destinations). Subjects not "
                "seen before, such as %r, are left out of span names and metric attributes from now on (spans "
                "keep messaging.destination.name). Name high-cardinality subjects with subject_templates "
                "(%s, for example 'orders.*.created'), or raise max_destinations (%s).",
                self.max_destinations,
                subject,
                names.ENV_SUBJECT_TEMPLATES,
                names.ENV_MAX_DESTINATIONS,
            )
        return False

    def entry(self, state: ClientDestinations, key: tuple[Any, ...], op: Operation, temporary: bool) -> Entry:
        """Build (and remember under ``key``) the entry of ``op``; its subject is left out when ``temporary``."""
        kind, subject, template = op.op, op.subject, op.template
        configured = None  # the subject_templates pattern
        if temporary or not subject or template is not None:
            named = False  # (a wildcard subscription's subject is the template)
        elif kind not in SUBJECT_OPS:
            named = True  # a stream or bucket
        else:
            if self.templates:
                configured = self.templates.first(subject)
            # (fast path: a subject shown before needs no call)
            named = configured is None and (subject in self.shown or self.admit(subject))
        shape_key = (kind, template, configured, op.queue, op.name_dest, temporary, named)
        shapes = state.shapes
        shape = shapes.get(shape_key)
        if shape is None:
            shape = self._shape(state.conn, kind, template, configured, op.queue, op.name_dest, temporary, named)
            shapes.remember(shape_key, shape)
        name, attrs, metric_attrs = shape
        if named:
            attrs = dict(attrs)
            metric_attrs = dict(metric_attrs)
            for k in self.keys.subject:
                attrs[k] = metric_attrs[k] = subject
        # (any other subject shares the shape's attributes: its name is added to the span's per message)
        entry = (name or f"{kind.name} {subject}", attrs, metric_attrs, not named)
        if named or temporary or template is not None or configured is not None:
            state.remember(key, entry)
        # else a subject past max_destinations: its entry is its shape's, and remembering it per subject
        # would only turn the cache over (on high-cardinality subjects, every entry would be garbage
        # that lived long enough to reach the collector's oldest generation)
        return entry

    def unnamed(self, state: ClientDestinations, kind: Op, subject: str) -> Entry | None:
        """The entry of ``kind`` on ``subject`` when it is a subject past ``max_destinations`` (no
        ``subject_templates`` configured, the limit reached, ``subject`` not shown) whose shape is
        built: what :meth:`entry` returns for it, without remembering it; ``None`` otherwise.

        Why: such subjects are not remembered one by one (see :meth:`entry`), so without this every
        message to one took the full path: with a hot subject seen first, 100 000 distinct subjects
        cost 1.51 x as much per unsampled publish and 1.19 x per sampled one (in-process, 12 rounds)."""
        if not self.warned or self.templates or subject in self.shown or kind not in SUBJECT_OPS:
            return None
        shape = state.shapes.get((kind, None, None, None, None, False, False))
        if shape is None:
            return None
        name, attrs, metric_attrs = shape
        return name or f"{kind.name} {subject}", attrs, metric_attrs, True

    def _shape(
        self,
        conn: Attrs,
        kind: Op,
        template: str | None,
        configured: str | None,
        queue: str | None,
        name_dest: str | None,
        temporary: bool,
        named: bool,
    ) -> _Shape:
        attrs = attributes.destination_attributes(self.keys, kind, "", template, queue, temporary, configured)
        attrs.update(conn)
        shown = name_dest or template or configured
        name = attributes.span_name(kind, shown) if shown or not named else None
        return name, attrs, metric_attributes(self.metric_keys, attrs)

    def subscription_keys(self, subject: str) -> tuple[tuple[str, ...], str]:
        """Metric attribute keys and value naming a subscription's subject (``()`` when left out)."""
        if is_wildcard(subject):
            return self.keys.template, subject
        configured = self.templates.first(subject)
        if configured is not None:
            return self.keys.subject_template, configured
        return (self.keys.subject if self.admit(subject) else ()), subject
