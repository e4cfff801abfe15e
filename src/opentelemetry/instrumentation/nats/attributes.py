"""Pure functions that read nats-py objects ("getters") and build span attributes per mode.

Nothing here starts spans or records metrics; :mod:`.recorder` does that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.instrumentation.nats import names
from opentelemetry.instrumentation.nats.names import Keys, Op
from opentelemetry.instrumentation.nats.subjects import SubjectSet

Attrs = dict[str, Any]

DEFAULT_PORT = 4222
MSG_ID_HEADER = "Nats-Msg-Id"


# --- getters -----------------------------------------------------------------------------------


def server_info(client: Any) -> Mapping[str, Any]:
    """The INFO of the server the client is connected to (follows reconnects)."""
    info = getattr(client, "_server_info", None)
    return info if isinstance(info, Mapping) else {}


def server_endpoint(client: Any) -> tuple[str | None, int | None]:
    """Host and port of the current server, from its URL. Credentials in the URL are never read."""
    srv = getattr(client, "_current_server", None)
    uri = getattr(srv, "uri", None)
    if uri is None:
        return None, None
    try:
        return uri.hostname, uri.port or DEFAULT_PORT
    except ValueError:  # malformed port
        return uri.hostname, None


def inbox_prefix(client: Any) -> str:
    """The client's inbox prefix with its trailing dot (``_INBOX.`` by default)."""
    prefix = getattr(client, "_inbox_prefix", None)
    if isinstance(prefix, (bytes, bytearray)):
        return prefix.decode() + "."
    return names.INBOX_PREFIX


def max_payload(client: Any) -> int:
    value = getattr(client, "_max_payload", None)
    return value if isinstance(value, int) else 1024 * 1024


# --- builders ----------------------------------------------------------------------------------


def _put(attrs: Attrs, keys: tuple[str, ...], value: Any) -> None:
    if value is not None and value != "":
        for k in keys:
            attrs[k] = value


def connection_attributes(keys: Keys, client: Any) -> Attrs:
    """Attributes of the connection: server endpoint, client id and the server's INFO facts."""
    info = server_info(client)
    host, port = server_endpoint(client)
    attrs: Attrs = {}
    _put(attrs, keys.server_address, host)
    _put(attrs, keys.server_port, port)
    cid = info.get("client_id")
    if cid is not None:
        for k in keys.client_id:
            attrs[k] = str(cid) if k == "messaging.client.id" else cid
    _put(attrs, (names.NATS_SERVER_ID,), info.get("server_id"))
    _put(attrs, (names.NATS_SERVER_NAME,), info.get("server_name"))
    _put(attrs, (names.NATS_SERVER_VERSION,), info.get("version"))
    _put(attrs, (names.NATS_CLUSTER,), info.get("cluster"))
    return attrs


def operation_attributes(keys: Keys, op: Op) -> Attrs:
    attrs: Attrs = {names.MESSAGING_SYSTEM: names.SYSTEM}
    if keys.current_operation:
        if op.type is not None:
            attrs[names.OPERATION_TYPE] = op.type
        attrs[names.OPERATION_NAME] = op.name
    if keys.legacy_operation:
        attrs[names.LEGACY_OPERATION] = op.legacy
    return attrs


def destination_attributes(
    keys: Keys, op: Op, subject: str, template: str | None, queue: str | None, temporary: bool
) -> Attrs:
    """Attributes fixed for an operation on one subject (cached by the recorder)."""
    attrs = operation_attributes(keys, op)
    _put(attrs, keys.subject, subject)
    if temporary:
        attrs[names.DESTINATION_TEMPORARY] = True
        attrs[names.DESTINATION_ANONYMOUS] = True
    _put(attrs, keys.template, template)
    _put(attrs, keys.consumer_group, queue)
    return attrs


def span_name(op: Op, subject: str, template: str | None, temporary: bool) -> str:
    """``{operation} {destination}``; the destination is left out for temporary subjects."""
    if template:
        return f"{op.name} {template}"
    if temporary or not subject:
        return op.name
    return f"{op.name} {subject}"


def header_attributes(headers: Any, captured: SubjectSet) -> Attrs:
    """``messaging.message.id`` from ``Nats-Msg-Id``, and the opted-in captured headers."""
    attrs: Attrs = {}
    if not headers or not isinstance(headers, Mapping):
        return attrs
    msg_id = headers.get(MSG_ID_HEADER)
    if isinstance(msg_id, str) and msg_id:
        attrs[names.MESSAGE_ID] = msg_id
    if captured:
        for k, v in headers.items():
            if isinstance(k, str) and isinstance(v, str) and k.lower() in captured:
                attrs[names.NATS_HEADER_PREFIX + k.lower()] = v
    return attrs


def subscription_attributes(client: Any, sid: Any) -> Attrs:
    """Subscription id and its delivered/pending counters, when the subscription is known."""
    if sid is None:
        return {}
    attrs: Attrs = {names.NATS_SUBSCRIPTION_ID: str(sid)}
    sub = getattr(client, "_subs", {}).get(sid)
    if sub is not None:
        attrs[names.NATS_DELIVERED] = sub._received
        attrs[names.NATS_PENDING] = sub._pending_queue.qsize()
    return attrs
