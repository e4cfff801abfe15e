"""Calling the application's hooks (``publish_hook``, ``consume_hook``, ``request_hook``,
``response_hook``): a hook's exception is logged and swallowed, never raised into the application.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from opentelemetry.instrumentation.nats.config import Hook

_LOG = logging.getLogger(__name__)


def call_hook_sync(hook: Hook | None, *args: Any, warned: set[int] | None = None) -> None:
    """Call a user hook from a synchronous call: its exceptions are logged and swallowed; a coroutine
    it returns cannot be awaited there, so it is closed unrun (logged once per hook in ``warned``)."""
    if hook is None:
        return
    try:
        result = hook(*args)
        if inspect.iscoroutine(result):
            result.close()
            if warned is None or id(hook) not in warned:
                if warned is not None:
                    warned.add(id(hook))
                _LOG.warning(
                    "OpenTelemetry NATS hook %r is a coroutine function: it cannot run inside a synchronous "
                    "callback (nats-core's subscription callbacks), so it is not called there; use a plain function",
                    hook,
                )
    except Exception:
        _LOG.exception("OpenTelemetry NATS hook %r raised; ignored", hook)


async def call_hook(hook: Hook | None, *args: Any) -> None:
    """Call a user hook (plain or coroutine function); its exceptions are logged and swallowed."""
    if hook is None:
        return
    try:
        result = hook(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        _LOG.exception("OpenTelemetry NATS hook %r raised; ignored", hook)
