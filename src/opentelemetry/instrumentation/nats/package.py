"""Versions of the instrumented library this package supports."""

_instruments = ("nats-py >= 2.9.0, < 3",)

_supports_metrics = True
