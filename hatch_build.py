"""Build hook: the ``instruments`` extra names this package itself, in the built metadata.

pyproject.toml declares ``instruments = ["opentelemetry-instrumentation-nats[nats-py]"]``: installing
the extra installs nats-py, and the auto-instrumentation loader of ``opentelemetry-instrument`` (which
requires every ``instruments`` requirement to be installed) finds this package itself, so it also loads
the instrumentor where only nats-core is installed. hatchling replaces such a self-reference by what
it refers to (``nats-py …; extra == "instruments"``) when it writes the core metadata, with no option
to keep it; this hook puts the self-reference back into the finished wheel's ``METADATA`` (and its
``RECORD`` entry) and the sdist's ``PKG-INFO``. scripts/check_dist.py checks the result.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import re
import tarfile
import zipfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

EXTRA = "instruments"
SELF_REFERENCE = "opentelemetry-instrumentation-nats[nats-py]"
_LINE = re.compile(rf"^Requires-Dist: [^\n]*; extra == ['\"]{EXTRA}['\"]\n", re.MULTILINE)


def restore(metadata: str) -> str:
    """``metadata`` (core metadata) with the ``instruments`` requirements replaced by the self-reference."""
    found = list(_LINE.finditer(metadata))
    if not found:
        raise ValueError(f"no Requires-Dist for the {EXTRA!r} extra in the core metadata")
    line = f"Requires-Dist: {SELF_REFERENCE}; extra == '{EXTRA}'\n"
    first = found[0].start()
    rest = _LINE.sub("", metadata[first:])
    return metadata[:first] + line + rest


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def rewrite_wheel(path: Path) -> None:
    with zipfile.ZipFile(path) as zf:
        entries = [(info, zf.read(info)) for info in zf.infolist()]
    metadata = next(i.filename for i, _ in entries if re.fullmatch(r"[^/]+\.dist-info/METADATA", i.filename))
    record = metadata.rsplit("/", 1)[0] + "/RECORD"
    out: list[tuple[zipfile.ZipInfo, bytes]] = []
    new_metadata = b""
    for info, data in entries:
        if info.filename == metadata:
            data = new_metadata = restore(data.decode()).encode()
        elif info.filename == record:
            lines = [
                _record_line(metadata, new_metadata) if line.split(",", 1)[0] == metadata else line
                for line in data.decode().splitlines()
            ]
            data = ("\n".join(lines) + "\n").encode()
        out.append((info, data))
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in out:
            zf.writestr(info, data)


def rewrite_sdist(path: Path) -> None:
    with tarfile.open(path) as tf:
        members = [(m, tf.extractfile(m).read() if m.isfile() else None) for m in tf.getmembers()]  # type: ignore[union-attr]
    buffer = io.BytesIO()
    mtime = max((m.mtime for m, _ in members), default=0)  # (hatchling's reproducible timestamp, when it sets one)
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=mtime) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf,
    ):
        for member, data in members:
            if data is not None and re.fullmatch(r"[^/]+/PKG-INFO", member.name):
                data = restore(data.decode()).encode()
                member.size = len(data)
            tf.addfile(member, io.BytesIO(data) if data is not None else None)
    path.write_bytes(buffer.getvalue())


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        path = Path(artifact_path)
        if path.name.endswith(".whl"):
            rewrite_wheel(path)
        elif path.name.endswith(".tar.gz"):
            rewrite_sdist(path)
