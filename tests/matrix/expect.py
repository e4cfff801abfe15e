"""What the family matrix tests expect of every span, and small waiting helpers."""

from __future__ import annotations

import asyncio
from typing import Any

BASE = {"messaging.system.name": "nats"}
PUBLISH = {**BASE, "messaging.operation.type": "send", "messaging.operation.name": "publish"}
REQUEST = {**BASE, "messaging.operation.type": "send", "messaging.operation.name": "request"}
PROCESS = {**BASE, "messaging.operation.type": "process", "messaging.operation.name": "process"}
RECEIVE = {**BASE, "messaging.operation.type": "receive", "messaging.operation.name": "receive"}


def span_id(span: Any) -> str:
    return format(span.context.span_id, "016x")


async def wait_for(check: Any, timeout: float = 5.0) -> None:
    """Wait until ``check()`` is true."""
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")
