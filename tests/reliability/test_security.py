"""Credentials, payloads and uncaptured headers never reach telemetry.

Four servers with four kinds of authentication — user/password and a token in the URL, an NKEY seed
file, and a JWT ``.creds`` file (operator mode, JWTs made and signed here with ``nkeys``) — carry
traced traffic. Every span name, attribute, event and link, every metric data point and every line
the instrumentation logs at DEBUG is searched for the secrets, for a payload marker and for the value
of a header that is not in ``captured_headers``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nkeys
import pytest
from opentelemetry.trace import SpanKind

from tests.helpers import wait_spans
from tests.natsserver import NatsServer
from tests.reliability.support import all_metric_attributes, captured_logs, describe_records

USER, PASSWORD, TOKEN = "alice-7f3a", "pw-9c1e-hunter2", "s3cr3t-tok-42"
PAYLOAD = b"PAYLOAD-MARKER-5d2b"
REPLY = b"REPLY-MARKER-0c9e"
HIDDEN = "hidden-header-value-71aa"
SHOWN = "shown-header-value"


# --- NKEY and JWT material ---------------------------------------------------------------------


def _keypair(prefix: int) -> Any:
    return nkeys.from_seed(nkeys.encode_seed(os.urandom(32), prefix))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(signer: Any, subject: str, name: str, claims: dict[str, Any]) -> str:
    """A NATS JWT (v2) for ``subject`` signed by ``signer``."""
    body: dict[str, Any] = {
        "iat": int(time.time()),
        "iss": signer.public_key.decode(),
        "name": name,
        "sub": subject,
        "nats": {**claims, "version": 2},
    }
    body["jti"] = base64.b32encode(hashlib.sha256(json.dumps(body).encode()).digest()).rstrip(b"=").decode()
    head = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    payload = _b64(json.dumps(body).encode())
    return f"{head}.{payload}.{_b64(signer.sign(f'{head}.{payload}'.encode()))}"


@dataclass
class Auth:
    """A server that needs credentials, how to connect to it, and the secrets involved."""

    server: NatsServer
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)


def _userpass(workdir: Path) -> Auth:
    srv = NatsServer(jetstream=True, extra=f'authorization {{ user: "{USER}", password: "{PASSWORD}" }}')
    return Auth(srv, f"nats://{USER}:{PASSWORD}@127.0.0.1:{srv.port}", secrets=[USER, PASSWORD])


def _token(workdir: Path) -> Auth:
    srv = NatsServer(extra=f'authorization {{ token: "{TOKEN}" }}')
    return Auth(srv, f"nats://{TOKEN}@127.0.0.1:{srv.port}", secrets=[TOKEN])


def _nkey(workdir: Path) -> Auth:
    user = _keypair(nkeys.PREFIX_BYTE_USER)
    seed_file = workdir / "user.nk"
    seed_file.write_bytes(user.seed)
    srv = NatsServer(extra=f'authorization {{ users = [ {{ nkey: "{user.public_key.decode()}" }} ] }}')
    return Auth(srv, srv.url, {"nkeys_seed": str(seed_file)}, secrets=[user.seed.decode()])


def _jwt_creds(workdir: Path) -> Auth:
    operator = _keypair(nkeys.PREFIX_BYTE_OPERATOR)
    account = _keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    user = _keypair(nkeys.PREFIX_BYTE_USER)
    unlimited = {k: -1 for k in ("subs", "data", "payload", "imports", "exports", "conn", "leaf")}
    operator_jwt = _jwt(operator, operator.public_key.decode(), "operator", {"type": "operator"})
    account_jwt = _jwt(
        operator,
        account.public_key.decode(),
        "account",
        {"type": "account", "limits": {**unlimited, "wildcards": True}},
    )
    user_jwt = _jwt(
        account,
        user.public_key.decode(),
        "user",
        {"type": "user", "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1},
    )
    creds = workdir / "user.creds"
    creds.write_text(
        f"-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{user.seed.decode()}\n------END USER NKEY SEED------\n"
    )
    srv = NatsServer(
        extra=(
            f"operator: {operator_jwt}\nresolver: MEMORY\n"
            f"resolver_preload: {{ {account.public_key.decode()}: {account_jwt} }}"
        )
    )
    # the JWT's signature part and the seed are the secrets (header and claims are public data)
    return Auth(srv, srv.url, {"user_credentials": str(creds)}, secrets=[user.seed.decode(), user_jwt.split(".")[2]])


@pytest.fixture(params=[_userpass, _token, _nkey, _jwt_creds], ids=["user-password", "token", "nkey", "jwt-creds"])
def auth(request: Any, tmp_path: Path) -> Iterator[Auth]:
    made: Auth = request.param(tmp_path)
    made.server.start()
    yield made
    made.server.cleanup()


# --- the scan ----------------------------------------------------------------------------------


def _span_texts(span: Any) -> list[str]:
    texts = [span.name, span.status.description or ""]
    for attrs in [span.attributes, *(e.attributes for e in span.events), *(link.attributes for link in span.links)]:
        for k, v in (attrs or {}).items():
            texts += [str(k), str(v)]
    texts += [e.name for e in span.events]
    return texts


def _metric_texts(reader: Any) -> list[str]:
    texts = []
    for name, attrs in all_metric_attributes(reader):
        texts.append(name)
        for k, v in attrs.items():
            texts += [str(k), str(v)]
    return texts


async def _traffic(nc: Any, jetstream: bool) -> None:
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def on_data(msg: Any) -> None:
        await got.put(msg)

    async def service(msg: Any) -> None:
        await msg.respond(REPLY)

    await nc.subscribe("sec.data", cb=on_data)
    await nc.subscribe("sec.service", cb=service)
    sub = await nc.subscribe("sec.iter")
    await nc.flush()
    headers = {"X-Visible": SHOWN, "X-Secret": HIDDEN}
    await nc.publish("sec.data", PAYLOAD, headers=headers)
    assert (await asyncio.wait_for(got.get(), 5)).data == PAYLOAD
    await nc.publish("sec.iter", PAYLOAD, headers=headers)
    assert (await sub.next_msg(timeout=5)).data == PAYLOAD
    assert (await nc.request("sec.service", PAYLOAD, timeout=5, headers=headers)).data == REPLY
    with pytest.raises(nats.errors.NoRespondersError):
        await nc.request("sec.nobody", PAYLOAD, timeout=2)
    if jetstream:
        js = nc.jetstream()
        await js.add_stream(name="SEC", subjects=["sec.js.>"])
        await js.publish("sec.js.data", PAYLOAD, headers=headers)
        psub = await js.pull_subscribe("sec.js.data", durable="sec")
        (msg,) = await psub.fetch(1, timeout=5)
        await msg.ack_sync()


async def test_no_secret_payload_or_uncaptured_header_reaches_telemetry(make_telemetry: Any, auth: Auth) -> None:
    def failing_hook(span: Any, *args: Any) -> None:
        raise RuntimeError("hook failed")  # makes the instrumentation log (with a traceback)

    telemetry = make_telemetry(semconv="dup", captured_headers=["X-Visible"], publish_hook=failing_hook)
    jetstream = auth.server.jetstream
    with captured_logs() as logs:
        nc = await nats.connect(auth.url, **auth.options)
        try:
            await _traffic(nc, jetstream)
        finally:
            await nc.close()
        spans = await wait_spans(telemetry, 11 if jetstream else 8)
    log_lines = describe_records(logs)

    # the scan is not vacuous: spans, metrics and log lines were produced
    names = [s.name for s in spans]
    assert {"publish sec.data", "process sec.data", "receive sec.iter", "request sec.service"} <= set(names)
    assert len(log_lines) == len([s for s in spans if s.kind == SpanKind.PRODUCER])  # one per publish_hook call
    assert all("hook failed" in line for line in log_lines)
    metric_texts = _metric_texts(telemetry.metric_reader)
    assert "messaging.client.sent.messages" in metric_texts

    secrets = [*auth.secrets, PAYLOAD.decode(), REPLY.decode(), HIDDEN]
    everything = [t for s in spans for t in _span_texts(s)] + metric_texts + log_lines
    leaks = sorted({secret for secret in secrets for text in everything if secret in text})
    assert leaks == []
    assert not any("@" in t for t in everything)  # no URL user-info anywhere
    # the server is named by host and port only
    for span in spans:
        assert span.attributes["server.address"] == span.attributes["net.peer.name"] == "127.0.0.1"
        assert span.attributes["server.port"] == span.attributes["net.peer.port"] == auth.server.port
    # headers reach attributes only through captured_headers
    header_keys = {k for s in spans for k in (s.attributes or {}) if k.startswith("messaging.nats.message.header.")}
    assert header_keys == {"messaging.nats.message.header.x-visible"}
    with_header = [s for s in spans if "messaging.nats.message.header.x-visible" in (s.attributes or {})]
    assert {s.name for s in with_header} >= {"publish sec.data", "process sec.data", "receive sec.iter"}
    assert all(s.attributes["messaging.nats.message.header.x-visible"] == SHOWN for s in with_header)
