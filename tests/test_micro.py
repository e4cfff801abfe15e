"""nats.micro services: one SERVER span per endpoint request, errors, no spans for $SRV verbs."""

from __future__ import annotations

import json
from typing import Any

import nats.micro
import pytest
from nats.micro.request import Request, ServiceError
from opentelemetry.trace import SpanKind, StatusCode

from tests.helpers import assert_child, assert_links, conn_attrs, synced, wait_spans


async def _service(nc: Any, **endpoint: Any) -> Any:
    svc = await nats.micro.add_service(nc, name="calc", version="1.2.3")
    await svc.add_endpoint(**endpoint)
    await synced(nc)
    return svc


def _micro_attrs(nc: Any, svc: Any, subject: str, endpoint: str, process: Any, **more: Any) -> dict[str, Any]:
    return {
        "messaging.system.name": "nats",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": subject,
        "messaging.consumer.group.name": "q",
        "messaging.message.body.size": more.pop("body_size"),
        "messaging.nats.reply_to": process.attributes["messaging.nats.reply_to"],
        "messaging.nats.subscription.id": process.attributes["messaging.nats.subscription.id"],
        "messaging.nats.delivered_messages": 1,
        "messaging.nats.pending_messages": 0,
        "messaging.nats.micro.service.name": "calc",
        "messaging.nats.micro.service.version": "1.2.3",
        "messaging.nats.micro.service.id": svc.id,
        "messaging.nats.micro.endpoint.name": endpoint,
        **more,
        **conn_attrs(nc),
    }


async def test_endpoint_request_is_one_server_span(telemetry: Any, server: Any, connect: Any) -> None:
    service_nc = await connect(server.url)
    client = await connect(server.url)

    async def add(req: Request) -> None:
        a, b = json.loads(req.data)
        await req.respond(json.dumps(a + b).encode())

    svc = await _service(service_nc, name="add", handler=add)
    response = await client.request("add", b"[1, 2]", timeout=5)
    assert response.data == b"3"
    spans = await wait_spans(telemetry, 3)
    assert [(s.name, s.kind) for s in spans] == [
        ("request add", SpanKind.CLIENT),
        ("process add", SpanKind.SERVER),
        ("publish", SpanKind.PRODUCER),
    ]
    request, process, reply = spans
    assert dict(process.attributes) == _micro_attrs(service_nc, svc, "add", "add", process, body_size=6)
    assert process.status.status_code == StatusCode.UNSET
    inbox = process.attributes["messaging.nats.reply_to"]
    assert dict(reply.attributes) == {
        "messaging.system.name": "nats",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": inbox,
        "messaging.destination.temporary": True,
        "messaging.destination.anonymous": True,
        "messaging.message.body.size": 1,
        **conn_attrs(service_nc),
    }
    assert_child(process, request)
    assert_links(process, request)  # semconv: a process span also links to the creation context
    assert_links(reply)
    assert_child(reply, process)
    assert response.headers["traceparent"].split("-")[2] == format(reply.context.span_id, "016x")


async def test_wildcard_endpoint_in_group_is_named_by_its_subject(telemetry: Any, server: Any, connect: Any) -> None:
    nc = await connect(server.url)

    async def echo(req: Request) -> None:
        await req.respond(req.data)

    svc = await nats.micro.add_service(nc, name="calc", version="1.2.3")
    await svc.add_group(name="math").add_endpoint(name="any", subject="ops.>", handler=echo)
    await nc.request("math.ops.mul", b"xy", timeout=5)
    request, process, _reply = await wait_spans(telemetry, 3)
    assert (request.name, process.name, process.kind) == ("request math.ops.mul", "process math.ops.>", SpanKind.SERVER)
    assert dict(process.attributes) == _micro_attrs(
        nc,
        svc,
        "math.ops.mul",
        "any",
        process,
        body_size=2,
        **{"messaging.destination.template": "math.ops.>"},
    )
    assert_child(process, request)


@pytest.mark.parametrize(
    ("error", "code", "description", "exception_type"),
    [
        (ValueError("boom"), "500", "ValueError('boom')", "ValueError"),
        (ServiceError("400", "bad operands"), "400", "bad operands", "nats.micro.request.ServiceError"),
    ],
)
async def test_raising_handler_marks_the_span_with_the_service_error(
    telemetry: Any, server: Any, connect: Any, error: Exception, code: str, description: str, exception_type: str
) -> None:
    nc = await connect(server.url)

    async def failing(req: Request) -> None:
        raise error

    await _service(nc, name="fail", handler=failing)
    response = await nc.request("fail", b"", timeout=5)
    assert response.headers["Nats-Service-Error-Code"] == code
    assert response.headers["Nats-Service-Error"] == description
    request, process, reply = await wait_spans(telemetry, 3)
    assert (process.name, reply.name) == ("process fail", "publish")
    assert process.status.status_code == StatusCode.ERROR
    assert process.status.description == f"{code}: {description}"
    assert {k: process.attributes[k] for k in process.attributes if "error" in k} == {
        "error.type": code,
        "messaging.nats.micro.error.code": code,
        "messaging.nats.micro.error.description": description,
    }
    (event,) = process.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == exception_type
    assert_child(reply, process)
    assert request.status.status_code == StatusCode.UNSET  # the client got an answer


async def test_respond_error_marks_the_span_without_an_exception(telemetry: Any, server: Any, connect: Any) -> None:
    nc = await connect(server.url)

    async def lookup(req: Request) -> None:
        await req.respond_error("404", "no such key", data=b"{}")

    await _service(nc, name="lookup", handler=lookup)
    response = await nc.request("lookup", b"k", timeout=5)
    assert (response.data, response.headers["Nats-Service-Error-Code"]) == (b"{}", "404")
    _request, process, reply = await wait_spans(telemetry, 3)
    assert process.status.status_code == StatusCode.ERROR
    assert process.attributes["error.type"] == "404"
    assert process.attributes["messaging.nats.micro.error.code"] == "404"
    assert process.attributes["messaging.nats.micro.error.description"] == "no such key"
    assert process.events == ()
    assert reply.attributes["messaging.message.body.size"] == 2


async def test_service_verbs_make_no_spans(telemetry: Any, server: Any, connect: Any) -> None:
    service_nc = await connect(server.url)
    client = await connect(server.url)

    async def noop(req: Request) -> None:
        await req.respond(b"")

    svc = await _service(service_nc, name="noop", handler=noop)
    subjects = ["$SRV.PING", "$SRV.INFO.calc", f"$SRV.STATS.calc.{svc.id}"]
    for subject in subjects:
        response = await client.request(subject, b"", timeout=5)
        assert json.loads(response.data)["name"] == "calc"
    spans = await wait_spans(telemetry, 3)
    # only the client's own requests: nothing from the service's verb handlers
    assert [(s.name, s.kind) for s in spans] == [(f"request {s}", SpanKind.CLIENT) for s in subjects]


async def test_consume_hook_and_link_mode_apply_to_endpoint_spans(
    make_telemetry: Any, server: Any, connect: Any
) -> None:
    seen: list[Any] = []
    telemetry = make_telemetry(consumer_parent="link", consume_hook=lambda span, msg: seen.append(msg.subject))
    nc = await connect(server.url)

    async def ok(req: Request) -> None:
        await req.respond(b"ok")

    await _service(nc, name="linked", handler=ok)
    await nc.request("linked", b"", timeout=5)
    request, process, reply = await wait_spans(telemetry, 3)
    assert process.name == "process linked"
    assert process.parent is None
    assert [link.context.span_id for link in process.links] == [request.context.span_id]
    assert_child(reply, process)
    assert seen == ["linked"]
