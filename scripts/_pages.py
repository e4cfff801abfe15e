"""Writing a generated documentation page, or (``--check``) telling whether the committed one is current.

Shared by scripts/gen_reference.py, scripts/gen_configuration.py and scripts/gen_api_coverage.py.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path


def write_or_check(out: Path, text: str, script: str, argv: Sequence[str], problems: Sequence[str] = ()) -> int:
    """With ``--check`` in ``argv``: 1 (and the reasons on stderr) when ``out`` is not ``text`` or
    there are ``problems``; else write ``text`` to ``out``. ``script``: the command that regenerates it."""
    if "--check" in argv:
        found = list(problems)
        if not out.exists() or out.read_text() != text:
            found.append(f"{out} is stale: run python {script}")
        for problem in found:
            print(problem, file=sys.stderr)
        return 1 if found else 0
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")
    return 0
