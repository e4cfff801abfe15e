"""Patch tables: ``(module, "Class.attribute", wrapper)``, applied and removed by ``NatsInstrumentor``.

Fast path: the per-message methods (``DIRECT``: publish, request, respond, JetStream publish) are
replaced by a plain function that calls the wrapper, not by a ``wrapt.FunctionWrapper``: the latter
makes a bound wrapper object on every attribute access and binds in C on every call (about 0.4 µs
per call, as much as raw nats-py's whole ``publish``), a plain function binds like any method. It
has the original's name, docstring and ``__wrapped__``, and is marked as a coroutine function where
Python has a marker (asyncio's; ``inspect.markcoroutinefunction`` from Python 3.12). Wrappers are
called as wrapt calls them: ``wrapper(wrapped, instance, args, kwargs)``.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
from types import MethodType
from typing import Any

import wrapt
from opentelemetry.instrumentation.utils import unwrap

from opentelemetry.instrumentation.nats.patches import connection, core, jetstream, micro

PATCHES: tuple[tuple[str, str, Any], ...] = core.PATCHES + connection.PATCHES + jetstream.PATCHES + micro.PATCHES
DIRECT = frozenset((core.publish, core.request, core.respond, jetstream.publish, jetstream.publish_async))


def _owner(module: str, attribute: str) -> tuple[Any, str]:
    owner_name, _, name = attribute.rpartition(".")
    owner: Any = importlib.import_module(module)
    for part in owner_name.split("."):
        owner = getattr(owner, part)
    return owner, name


def _direct(original: Any, wrapper: Any) -> Any:
    def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        return wrapper(MethodType(original, self), self, args, kwargs)

    functools.update_wrapper(patched, original)
    patched._opentelemetry_nats = True  # type: ignore[attr-defined]
    marker = getattr(asyncio.coroutines, "_is_coroutine", None)
    if marker is not None:
        patched._is_coroutine = marker  # type: ignore[attr-defined]
    mark = getattr(inspect, "markcoroutinefunction", None)
    return mark(patched) if mark is not None else patched


def apply(module: str, attribute: str, wrapper: Any) -> None:
    """Patch ``module.attribute`` with ``wrapper`` (``AttributeError``/``ImportError`` when it is missing)."""
    owner, name = _owner(module, attribute)
    original = owner.__dict__.get(name)
    if wrapper in DIRECT and inspect.iscoroutinefunction(original):
        setattr(owner, name, _direct(original, wrapper))
    else:
        wrapt.wrap_function_wrapper(module, attribute, wrapper)


def remove(module: str, attribute: str) -> None:
    """Undo :func:`apply` (nothing when ``module.attribute`` is not patched)."""
    try:
        owner, name = _owner(module, attribute)
    except (AttributeError, ImportError):
        return
    current = owner.__dict__.get(name)
    if getattr(current, "_opentelemetry_nats", False):
        setattr(owner, name, current.__wrapped__)
    else:
        unwrap(owner, name)
