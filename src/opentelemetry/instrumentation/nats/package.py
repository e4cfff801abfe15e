"""Versions of the instrumented libraries this package supports (mirrors pyproject.toml's extras).

Either client family satisfies the instrumentor. The distribution's ``instruments`` extra names
this package itself with its ``nats-py`` extra (``pip install …[instruments]`` installs nats-py; the
auto-instrumentation loader, which requires every ``instruments`` requirement, finds this package
installed), and ``instruments-any`` lists both families (newer loaders require any one of them).
``NatsInstrumentor.instrumentation_dependencies()`` returns the requirements of the installed
families (nats-py's when neither is).
"""

_instruments_nats_py = "nats-py >= 2.9.0, < 3"
_instruments_nats_core = "nats-core >= 0.2.0, < 1"

_instruments = (_instruments_nats_py,)
_instruments_any = (_instruments_nats_py, _instruments_nats_core)

_supports_metrics = True
