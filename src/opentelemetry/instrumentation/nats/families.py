"""The client families this package instruments, and which of them are installed.

- nats-py (``nats.aio``, ``nats.js``, ``nats.micro``): :mod:`.natspy`.
- The next-generation packages nats-core, nats-jetstream and nats-key-value (``nats.client``,
  ``nats.jetstream``, ``nats.key_value``; Python 3.13 and newer): :mod:`.natscore`.

Both can be installed in one environment (they share the ``nats`` namespace); then both are traced.
A family is found by its distribution's metadata and ``importlib.util.find_spec`` of a module, never
by importing ``nats``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

from opentelemetry.instrumentation.nats import natscore, natspy
from opentelemetry.instrumentation.nats.package import _instruments_nats_core, _instruments_nats_py
from opentelemetry.instrumentation.nats.patching import Wrapt


@dataclass(frozen=True)
class Family:
    """A client family: the distribution that marks it installed, a module it must be able to
    import, and its patch table."""

    name: str
    distribution: str
    requirement: str  # as in the package's extras (package.py)
    module: str
    patches: tuple[Wrapt, ...]

    def version(self) -> str | None:
        """The installed version of the family's distribution (``None``: not installed, or its
        module cannot be found)."""
        try:
            found = version(self.distribution)
            return found if importlib.util.find_spec(self.module) is not None else None
        except (PackageNotFoundError, ImportError, ValueError):
            return None

    def installed(self) -> bool:
        return self.version() is not None

    def supported(self) -> bool:
        """Installed in a version that :attr:`requirement` allows."""
        return self.installed() and get_dependency_conflicts([self.requirement]) is None


NATS_PY = Family("nats-py", "nats-py", _instruments_nats_py, "nats.aio.client", natspy.PATCHES)
NATS_CORE = Family("nats-core", "nats-core", _instruments_nats_core, "nats.client", natscore.PATCHES)
FAMILIES = (NATS_PY, NATS_CORE)


def installed() -> tuple[Family, ...]:
    """The families installed in this environment."""
    return tuple(f for f in FAMILIES if f.installed())


def instrumented() -> tuple[Family, ...]:
    """The families ``instrument()`` patches: the installed ones in a supported version; when none
    is (only reachable with ``skip_dep_check=True``), every installed one."""
    found = installed()
    return tuple(f for f in found if f.supported()) or found
