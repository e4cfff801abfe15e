"""``opentelemetry-nats-server-trace``: a :class:`~.bridge.ServerTraceBridge` as a process of its own.

    opentelemetry-nats-server-trace --servers nats://127.0.0.1:4222 --subject otel.trace \\
        [--queue otel-bridges] [--creds app.creds]

Exporters, endpoints, headers and resource attributes come from the standard ``OTEL_*`` environment
variables, applied by the OpenTelemetry distro's configurator (the machinery ``opentelemetry-instrument``
uses). Defaults that differ from the distro's: ``OTEL_SERVICE_NAME`` (the bridge's own metrics)
``opentelemetry-nats-server-trace``, ``OTEL_EXPORTER_OTLP_PROTOCOL`` ``http/protobuf`` (the
specification's default; the ``server-trace`` extra installs that exporter) and ``OTEL_LOGS_EXPORTER``
``none``. It waits for the NATS server (at start and after a disconnect); SIGINT or SIGTERM drains the
subscription, flushes the exporters and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import nats
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.nats.server_trace.bridge import ServerTraceBridge

PROG = "opentelemetry-nats-server-trace"
_DEFAULTS = {
    "OTEL_SERVICE_NAME": PROG,
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    "OTEL_LOGS_EXPORTER": "none",
}
_LOG = logging.getLogger(PROG)


def arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Turn nats-server message-trace events (ADR-41) into OpenTelemetry spans, one per "
        "server traversal, exported with the standard OTEL_* settings.",
    )
    parser.add_argument(
        "--servers",
        action="append",
        metavar="URL",
        help="NATS server URL (repeat, or separate with commas; default: $NATS_URL or nats://127.0.0.1:4222)",
    )
    parser.add_argument("--subject", required=True, help="the account's msg_trace dest subject")
    parser.add_argument("--queue", default="", help="queue group, to share the events among several bridges")
    parser.add_argument("--creds", metavar="FILE", help="NATS credentials file (a user JWT and its NKEY private key)")
    args = parser.parse_args(argv)
    urls = args.servers or [os.environ.get("NATS_URL") or "nats://127.0.0.1:4222"]
    args.servers = [u.strip() for url in urls for u in url.split(",") if u.strip()]
    return args


def configure_sdk() -> None:
    """Global tracer and meter providers from the ``OTEL_*`` environment, as ``opentelemetry-instrument``
    sets them up (without instrumenting anything)."""
    from opentelemetry.distro import OpenTelemetryConfigurator, OpenTelemetryDistro

    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
    OpenTelemetryDistro().configure()
    OpenTelemetryConfigurator().configure()  # type: ignore[no-untyped-call]


async def run(args: argparse.Namespace, stop: asyncio.Event) -> None:
    """Connect (retrying until the server is there), bridge until ``stop`` is set, drain."""

    async def on_error(exc: Exception) -> None:
        _LOG.warning("%s: %s", type(exc).__name__, exc)

    options: dict[str, Any] = {
        "servers": args.servers,
        "name": PROG,
        "max_reconnect_attempts": -1,  # a sidecar waits for its server, at start and later
        "error_cb": on_error,  # one line per failure, not nats-py's traceback
    }
    if args.creds:
        options["user_credentials"] = args.creds
    connecting = asyncio.ensure_future(nats.connect(**options))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not connecting.done():
        connecting.cancel()
        return
    stopping.cancel()
    nc = connecting.result()
    try:
        bridge = ServerTraceBridge(nc, args.subject, queue=args.queue or None)
        await bridge.start()
        url = nc.connected_url
        where = f"{url.hostname}:{url.port}" if url is not None else "?"  # never the URL's credentials
        _LOG.info("listening on %s (queue %r) at %s", args.subject, args.queue, where)
        await stop.wait()
        await bridge.stop()
    finally:
        await nc.drain()


def _shutdown_providers() -> None:
    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
        shutdown = getattr(provider, "shutdown", None)
        if shutdown is not None:
            shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(argv)
    logging.basicConfig(level=logging.INFO, format=f"{PROG}: %(message)s", stream=sys.stderr)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(args, stop)

    try:
        configure_sdk()
        asyncio.run(serve())
    except Exception as exc:  # a missing exporter, bad credentials …: one line, not a traceback
        _LOG.error("%s: %s", type(exc).__name__, exc)
        return 1
    finally:
        _shutdown_providers()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
