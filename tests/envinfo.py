"""Print the releases a tox env tests with; check its client families.

``python -m tests.envinfo ENV_NAME``: an env whose name has the factor ``natscore`` must have the
next-generation clients and not nats-py; ``both``, both families; any other, nats-py.
"""

from __future__ import annotations

import importlib.metadata
import sys

SHOWN = (
    "nats-py",
    "nats-core",
    "nats-jetstream",
    "nats-key-value",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation",
    "opentelemetry-semantic-conventions",
    "wrapt",
    "faststream",
)


def installed(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def main(argv: list[str]) -> int:
    versions = {d: installed(d) for d in SHOWN}
    print("tested with", ", ".join(f"{d}=={v}" for d, v in versions.items() if v is not None))
    factors = set(argv[0].split("-")) if argv else set()
    wanted = {"nats-py": "natscore" not in factors, "nats-core": bool(factors & {"natscore", "both"})}
    wrong = [d for d, want in wanted.items() if (versions[d] is not None) != want]
    if wrong:
        print(f"error: this env must {'' if wanted[wrong[0]] else 'not '}have {wrong[0]} installed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
