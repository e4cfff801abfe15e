"""Generate docs/api-coverage.md from the table in scripts/api_coverage.py, and check the table.

python scripts/gen_api_coverage.py          # rewrite docs/api-coverage.md
python scripts/gen_api_coverage.py --check  # exit 1 when the page is stale, when an installed client
                                            # library has a public member the table does not list, or
                                            # when a traced row names a patch the patch tables lack

The page comes from the table alone (it is the same whichever libraries are installed); the member
check runs for each installed distribution.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import sys
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from opentelemetry.instrumentation.nats import natscore, natspy
from opentelemetry.instrumentation.nats.patching import Wrapt

if str(Path(__file__).resolve().parent) not in sys.path:  # the table is the module next to this script
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import api_coverage as table
from _pages import write_or_check
from api_coverage import ATTRIBUTE, DELIVERY, METHOD, Row, Section

OUT = Path(__file__).resolve().parent.parent / "docs" / "api-coverage.md"
PROTOCOL = ("__aiter__", "__anext__")  # the dunder methods that deliver messages
PATCHES: dict[str, tuple[Wrapt, ...]] = {"nats-py": natspy.PATCHES, "next": natscore.PATCHES}
# Whether every traced row's patches must be in its family's patch table (False: only once the
# table patches something of that row's class, for a family still being instrumented).
STRICT = {"nats-py": True, "next": True}

# --- the installed libraries -----------------------------------------------------------------------


def installed(distribution: str) -> bool:
    try:
        version(distribution)
    except PackageNotFoundError:
        return False
    return True


def _kind(value: Any, field: bool) -> str | None:
    """A class attribute's kind: a method, an attribute, or neither (a nested class, a constant)."""
    if isinstance(value, (property, functools.cached_property)) or inspect.ismemberdescriptor(value):
        return ATTRIBUTE
    if inspect.isgetsetdescriptor(value) or field:
        return ATTRIBUTE
    if inspect.isclass(value):
        return None
    if isinstance(value, (classmethod, staticmethod)) or callable(value):
        return METHOD
    return None


def members(section: Section) -> dict[str, str]:
    """The public members of the installed class (or the module's public functions) and their kinds.

    Dunder methods other than :data:`PROTOCOL` are left out, and so is what the class inherits from
    outside the library (``object``, ``collections.abc``)."""
    owner: Any = importlib.import_module(section.module)
    if section.qualname is None:
        return {
            n: METHOD
            for n, v in vars(owner).items()
            if not n.startswith("_") and inspect.isfunction(v) and v.__module__ == section.module
        }
    for part in section.qualname.split("."):
        owner = getattr(owner, part)
    fields = {f.name for f in dataclasses.fields(owner)} if dataclasses.is_dataclass(owner) else set()
    found: dict[str, str] = {}
    for klass in reversed(owner.__mro__):  # a subclass's member wins
        if not klass.__module__.startswith("nats."):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") and name not in PROTOCOL:
                continue
            kind = _kind(value, name in fields)
            if kind is not None:
                found[name] = kind
    found.update((f, ATTRIBUTE) for f in fields if not f.startswith("_"))
    return found


def _rows(section: Section) -> dict[str, Row]:
    """A section's rows by name, with those of the sections it inherits from (its own win)."""
    by_id = {s.id: s for s in table.SECTIONS}
    rows: dict[str, Row] = {}
    for parent in section.inherits:
        rows.update((r.name, r) for r in by_id[parent].rows)
    rows.update((r.name, r) for r in section.rows)
    return rows


def unlisted(section: Section) -> list[str]:
    """The installed class's public members that the table does not list (or lists with another kind)."""
    rows = _rows(section)
    out = []
    for name, kind in sorted(members(section).items()):
        row = rows.get(name)
        where = f"{section.id}.{name}" if section.qualname else f"{section.module}.{name}"
        if row is None:
            out.append(f"{where} ({kind}) is not in the table (scripts/api_coverage.py)")
        elif row.kind != kind:
            out.append(f"{where} is a {kind}, the table says {row.kind}")
    return out


# --- the patch tables ------------------------------------------------------------------------------


def patch_ids(patches: Iterable[Wrapt]) -> set[str]:
    return {f"{p.module}:{p.attribute}" for p in patches}


def _owner(via: str) -> str:
    """``module:Class`` of a patch id ``module:Class.attr``."""
    return via.rpartition(".")[0]


def unpatched(
    family: str, sections: Iterable[Section] = table.SECTIONS, patches: Iterable[Wrapt] | None = None
) -> list[str]:
    """Rows of ``family`` that name a patch its patch table lacks, or make telemetry with none named."""
    ids = patch_ids(PATCHES[family] if patches is None else patches)
    owners = {_owner(i) for i in ids}
    out = []
    for section in (s for s in sections if s.family == family):
        for row in section.rows:
            if (row.spans or row.metrics) and not row.via:
                out.append(f"{section.id} {row.name}: traced, but no patch named")
            for via in row.via:
                checked = STRICT[family] or _owner(via) in owners
                if checked and via not in ids:
                    out.append(f"{section.id} {row.name}: {via} is not in the {family} patch table")
    return out


def unlisted_patches(family: str, sections: Iterable[Section] = table.SECTIONS) -> list[str]:
    """Patch table entries of ``family`` that no row names."""
    named = {v for s in sections if s.family == family for r in s.rows for v in r.via}
    return sorted(f"{i} is patched but no row of the table names it" for i in patch_ids(PATCHES[family]) - named)


def planned(section: Section, row: Row) -> bool:
    """A traced row of the next-generation family whose patches are not all in place yet."""
    return (
        section.family == "next" and bool(row.spans or row.metrics) and not set(row.via) <= patch_ids(natscore.PATCHES)
    )


# --- the page ---------------------------------------------------------------------------------------


def _names(metrics: Iterable[Any]) -> str:
    return ", ".join(f"`{m.name}`" for m in metrics) or "—"


def _member(row: Row) -> str:
    if row.kind == DELIVERY:
        return f"*{row.name}*"
    return f"`{row.name}()`" if row.kind == METHOD else f"`{row.name}`"


def _telemetry(row: Row) -> str:
    parts = [f"`{s.name}` {s.kind}" for s in row.spans]
    if row.metrics:
        parts.append("metrics: " + ", ".join(m.label for m in row.metrics))
    if parts:
        return "; ".join(parts)
    return "attribute, not traced" if row.kind == ATTRIBUTE else "not traced"


def _notes(section: Section, row: Row) -> str:
    notes = []
    if planned(section, row):
        notes.append("*Planned.*")
    if row.since:
        notes.append(f"*New in {row.since}.*")
    if row.note:
        notes.append(row.note[0].upper() + row.note[1:])
    return " ".join(notes).replace("|", "\\|")


def _section(section: Section) -> list[str]:
    if section.qualname is None:
        out = [f"### `{section.module}` functions", ""]
    else:
        out = [f"### `{section.qualname}` (`{section.module}`)", ""]
    if section.intro:
        out += [section.intro, ""]
    out += ["| member | span / metric | notes |", "| --- | --- | --- |"]
    out += [f"| {_member(r)} | {_telemetry(r)} | {_notes(section, r)} |" for r in section.rows]
    return [*out, ""]


def render() -> str:
    v = table.VERSIONS
    out = [
        "# API coverage",
        "",
        "Generated by `scripts/gen_api_coverage.py` from the table in `scripts/api_coverage.py`. Do not edit by",
        "hand: `tests/test_api_coverage.py` fails when this file is stale, and when an installed client library",
        "has a public member the table does not list.",
        "",
        "What the instrumentation makes of every public method, attribute and message-delivering async",
        "iterator of the NATS client libraries: the spans it makes (name and kind; their attributes are in the",
        "[reference](reference.md)) and the metric groups it records (below), or why it makes none.",
        f"Described releases: nats-py {v['nats-py']} (members added after {table.OLDEST_NATS_PY}, the oldest"
        f" supported release, say when); nats-core {v['nats-core']}, nats-jetstream {v['nats-jetstream']} and"
        f" nats-key-value {v['nats-key-value']}.",
        "",
        "Attributes (properties and data fields) are never traced. Dunder methods other than `__aiter__` and",
        "`__anext__` are left out, and so is what a class inherits from outside the library.",
        "",
        "## Metric groups",
        "",
        "| group | recorded | `current` and `dup` modes | `legacy` and `dup` modes | every mode |",
        "| --- | --- | --- | --- | --- |",
    ]
    for g in table.GROUPS:
        out.append(f"| {g.label} | {g.when} | {_names(g.current)} | {_names(g.legacy)} | {_names(g.every)} |")
    out += ["", "## nats-py (`nats.aio`, `nats.js`, `nats.micro`)", ""]
    for section in table.NATS_PY:
        out += _section(section)
    out += [
        "## Next-generation clients (`nats.client`, `nats.jetstream`, `nats.key_value`)",
        "",
        "The packages nats-core, nats-jetstream and nats-key-value (Python 3.13 and newer). Rows marked",
        "*planned* describe telemetry that this release does not make yet.",
        "",
    ]
    for section in table.NEXT:
        out += _section(section)
    return "\n".join(out).rstrip("\n") + "\n"


# --- the command -------------------------------------------------------------------------------------


def problems() -> list[str]:
    """Everything ``--check`` reports besides a stale page."""
    out = []
    for section in table.SECTIONS:
        if installed(section.distribution):
            out += unlisted(section)
    for family in PATCHES:
        out += unpatched(family) + unlisted_patches(family)
    return out


def main(argv: list[str] | None = None, out: Path = OUT) -> int:
    argv = sys.argv[1:] if argv is None else argv
    found = problems() if "--check" in argv else []
    return write_or_check(out, render(), "scripts/gen_api_coverage.py", argv, found)


if __name__ == "__main__":
    raise SystemExit(main())
