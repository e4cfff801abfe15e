"""Parse nats-server message-trace events (``MsgTraceEvent`` in nats-server ``server/msgtrace.go``).

A server that traces a message publishes one JSON document per traversal::

    {"server": {"name", "id", "ver", "cluster", "domain", "time", …},
     "request": {"header": {"traceparent": ["00-…-01"], "Nats-Trace-Hop": ["1"]}, "msgsize": 106},
     "hops": 1,
     "events": [{"type": "in", "ts", "kind", "cid", "name", "acc", "subj", "error"},
                {"type": "sm" | "si" | "se" | "js" | "eg", "ts", …}, …]}

:func:`parse` turns it into a :class:`TraceEvent`. It is tolerant: a document that cannot describe a
traversal (not JSON, no server id, no ingress) raises :class:`InvalidEvent`; an entry of an unknown
type or with unusable fields is left out and counted in :attr:`TraceEvent.skipped`; fields of the
wrong type are treated as absent. Nothing here starts spans.
"""

from __future__ import annotations

import calendar
import json
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TRACE_HOP_HEADER = "Nats-Trace-Hop"
TRACEPARENT_HEADER = "traceparent"
TRACESTATE_HEADER = "tracestate"
MAX_DECOMPRESSED = 4 * 1024 * 1024  # a gzip-encoded event larger than this is refused

# connection kinds (nats-server client.go: CLIENT, ROUTER, GATEWAY, SYSTEM, LEAF, JETSTREAM, ACCOUNT)
CLIENT, ROUTER, GATEWAY, LEAF = 0, 1, 2, 4
KIND_NAMES = ("client", "router", "gateway", "system", "leaf", "jetstream", "account")

# skip reasons (the error.type of the skipped-events metric)
INVALID_JSON = "invalid_json"
INVALID_EVENT = "invalid_event"
UNSUPPORTED_ENCODING = "unsupported_encoding"
UNKNOWN_TYPE = "unknown_type"
INVALID_ENTRY = "invalid_entry"


class InvalidEvent(ValueError):
    """The payload is not a trace event this bridge can use; ``reason`` is a skip reason above."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Server:
    id: str
    name: str = ""
    version: str = ""
    cluster: str = ""
    domain: str = ""
    time_ns: int | None = None  # when the server sent the event


@dataclass(frozen=True, slots=True)
class Ingress:
    ts: int  # nanoseconds since the epoch
    kind: int | None
    cid: int | None
    name: str
    account: str
    subject: str
    error: str


@dataclass(frozen=True, slots=True)
class Egress:
    ts: int
    kind: int | None
    cid: int | None
    name: str
    hop: str
    account: str  # set when it differs from the ingress account (service imports)
    subscription: str
    queue: str
    error: str


@dataclass(frozen=True, slots=True)
class SubjectMapping:
    ts: int
    to: str


@dataclass(frozen=True, slots=True)
class ServiceImport:
    ts: int
    account: str
    from_: str
    to: str


@dataclass(frozen=True, slots=True)
class StreamExport:
    ts: int
    account: str
    to: str


@dataclass(frozen=True, slots=True)
class JetStream:
    ts: int
    stream: str
    subject: str
    no_interest: bool
    error: str


Step = Egress | SubjectMapping | ServiceImport | StreamExport | JetStream


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One server's report of one traversal of a traced message."""

    server: Server
    ingress: Ingress
    steps: tuple[Step, ...] = ()
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    msg_size: int | None = None
    skipped: tuple[str, ...] = ()  # reasons of the entries left out

    def header(self, name: str) -> str | None:
        """The first value of a request header, its name matched case-insensitively."""
        lower = name.lower()
        for key, values in self.headers.items():
            if key.lower() == lower and values:
                return values[0]
        return None

    @property
    def hop(self) -> str:
        """This traversal's hop id: ``""`` on the first server, ``Nats-Trace-Hop`` on later ones (the
        server ignores that header on messages from clients, so do we)."""
        if self.ingress.kind == CLIENT:
            return ""
        return self.header(TRACE_HOP_HEADER) or ""

    @property
    def egresses(self) -> tuple[Egress, ...]:
        return tuple(s for s in self.steps if isinstance(s, Egress))


# --- parsing -----------------------------------------------------------------------------------

_TS = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):(\d\d))$")


def parse_timestamp(value: object) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 timestamp as Go writes it (nanosecond fraction,
    ``Z`` or a ``±hh:mm`` offset); ``None`` when it is not one."""
    if not isinstance(value, str):
        return None
    m = _TS.match(value)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        return None
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if m.group(9):  # an offset: local time = UTC + offset
        offset = int(m.group(10)) * 3600 + int(m.group(11)) * 60
        seconds -= offset if m.group(9) == "+" else -offset
    fraction = (m.group(7) or "").ljust(9, "0")
    return seconds * 1_000_000_000 + int(fraction)


def decode(data: bytes, content_encoding: str | None) -> bytes:
    """The JSON bytes of an event payload: servers gzip or snappy-compress it when the traced message
    asked for it (``Accept-Encoding``); gzip is undone, snappy is refused."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return data
    if encoding == "gzip":
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out = inflater.decompress(data, MAX_DECOMPRESSED)
        except zlib.error as exc:
            raise InvalidEvent(INVALID_JSON, f"bad gzip data: {exc}") from None
        if inflater.unconsumed_tail:
            raise InvalidEvent(INVALID_JSON, f"gzip data inflates past {MAX_DECOMPRESSED} bytes")
        return out
    raise InvalidEvent(UNSUPPORTED_ENCODING, f"Content-Encoding {encoding!r}")


def parse(data: bytes, content_encoding: str | None = None) -> TraceEvent:
    """A :class:`TraceEvent` from a trace message's payload; :class:`InvalidEvent` when unusable."""
    text = decode(data, content_encoding)
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidEvent(INVALID_JSON, str(exc)) from None
    if not isinstance(doc, dict):
        raise InvalidEvent(INVALID_JSON, f"a JSON {type(doc).__name__}, not an object")
    server = _server(doc.get("server"))
    entries = doc.get("events")
    if not isinstance(entries, list) or not entries:
        raise InvalidEvent(INVALID_EVENT, "no events")
    ingress = _ingress(entries[0])
    steps: list[Step] = []
    skipped: list[str] = []
    for entry in entries[1:]:
        step = _step(entry)
        if isinstance(step, str):
            skipped.append(step)
        else:
            steps.append(step)
    request = doc.get("request")
    request = request if isinstance(request, dict) else {}
    return TraceEvent(
        server=server,
        ingress=ingress,
        steps=tuple(steps),
        headers=_headers(request.get("header")),
        msg_size=_int(request.get("msgsize")),
        skipped=tuple(skipped),
    )


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _server(value: Any) -> Server:
    if not isinstance(value, dict) or not _str(value.get("id")):
        raise InvalidEvent(INVALID_EVENT, "no server id")
    return Server(
        id=value["id"],
        name=_str(value.get("name")),
        version=_str(value.get("ver")),
        cluster=_str(value.get("cluster")),
        domain=_str(value.get("domain")),
        time_ns=parse_timestamp(value.get("time")),
    )


def _ingress(entry: Any) -> Ingress:
    if not isinstance(entry, dict) or entry.get("type") != "in":
        raise InvalidEvent(INVALID_EVENT, "the first event is not an ingress")
    ts = parse_timestamp(entry.get("ts"))
    if ts is None:
        raise InvalidEvent(INVALID_EVENT, "the ingress has no valid timestamp")
    return Ingress(
        ts=ts,
        kind=_int(entry.get("kind")),
        cid=_int(entry.get("cid")),
        name=_str(entry.get("name")),
        account=_str(entry.get("acc")),
        subject=_str(entry.get("subj")),
        error=_str(entry.get("error")),
    )


def _step(entry: Any) -> Step | str:
    """The step an entry describes, or the reason it is skipped."""
    if not isinstance(entry, dict):
        return INVALID_ENTRY
    kind = entry.get("type")
    ts = parse_timestamp(entry.get("ts"))
    if kind not in ("eg", "sm", "si", "se", "js"):
        return UNKNOWN_TYPE
    if ts is None:
        return INVALID_ENTRY
    get = entry.get
    if kind == "eg":
        return Egress(
            ts,
            _int(get("kind")),
            _int(get("cid")),
            _str(get("name")),
            _str(get("hop")),
            _str(get("acc")),
            _str(get("sub")),
            _str(get("queue")),
            _str(get("error")),
        )
    if kind == "sm":
        return SubjectMapping(ts, _str(get("to")))
    if kind == "si":
        return ServiceImport(ts, _str(get("acc")), _str(get("from")), _str(get("to")))
    if kind == "se":
        return StreamExport(ts, _str(get("acc")), _str(get("to")))
    return JetStream(ts, _str(get("stream")), _str(get("subject")), get("nointerest") is True, _str(get("error")))


def _headers(value: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for key, values in value.items():
        if isinstance(values, str):
            values = [values]
        if isinstance(key, str) and isinstance(values, list):
            out[key] = tuple(v for v in values if isinstance(v, str))
    return out
