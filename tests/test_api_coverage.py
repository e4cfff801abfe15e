"""docs/api-coverage.md: generated from scripts/api_coverage.py, which must list every public member of
the installed client libraries and name only real patches for what it says is traced."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from opentelemetry.instrumentation.nats import names
from opentelemetry.instrumentation.nats.patching import Wrapt
from tests.helpers import load_script

ROOT = Path(__file__).resolve().parent.parent
gen: Any = load_script("gen_api_coverage")
table: Any = gen.table


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3])


def _section(section_id: str) -> Any:
    return next(s for s in table.SECTIONS if s.id == section_id)


def _installed_client() -> Any:
    """The ``Client`` section of an installed family (every test environment has one)."""
    for section in table.SECTIONS:
        if section.qualname == "Client" and gen.installed(section.distribution):
            return section
    pytest.fail("neither nats-py nor nats-core is installed")


def test_page_is_current() -> None:
    committed = (ROOT / "docs" / "api-coverage.md").read_text()
    assert committed == gen.render(), "docs/api-coverage.md is stale: run python scripts/gen_api_coverage.py"


@pytest.mark.parametrize("section", table.SECTIONS, ids=lambda s: s.id)
def test_every_public_member_is_listed(section: Any) -> None:
    if not gen.installed(section.distribution):
        pytest.skip(f"{section.distribution} is not installed")
    assert gen.unlisted(section) == []


def test_an_unlisted_member_is_found() -> None:
    section = _installed_client()
    without = section._replace(rows=tuple(r for r in section.rows if r.name != "publish"))
    assert gen.unlisted(without) == [f"{section.id}.publish (method) is not in the table (scripts/api_coverage.py)"]
    other_kind = section._replace(
        rows=tuple(r._replace(kind=table.ATTRIBUTE) if r.name == "publish" else r for r in section.rows)
    )
    assert gen.unlisted(other_kind) == [f"{section.id}.publish is a method, the table says attribute"]


def test_inherited_members_are_listed_under_the_base_class() -> None:
    if not gen.installed("nats-py"):
        pytest.skip("nats-py is not installed")
    context = _section("nats.js.client:JetStreamContext")
    alone = gen.unlisted(context._replace(inherits=()))
    assert "nats.js.client:JetStreamContext.add_stream (method) is not in the table (scripts/api_coverage.py)" in alone
    assert "nats.js.client:JetStreamContext.publish (method) is not in the table (scripts/api_coverage.py)" not in alone


@pytest.mark.parametrize("family", ["nats-py", "next"])
def test_traced_rows_name_real_patches(family: str) -> None:
    assert gen.unpatched(family) == []


@pytest.mark.parametrize("family", ["nats-py", "next"])
def test_every_patch_is_on_the_page(family: str) -> None:
    assert gen.unlisted_patches(family) == []


def test_a_missing_patch_is_found() -> None:
    client = _section("nats.aio.client:Client")
    wrong = client._replace(rows=tuple(r._replace(via=("nats.aio.client:Client.nothing",)) for r in client.rows[:1]))
    assert gen.unpatched("nats-py", [wrong]) == [
        "nats.aio.client:Client publish: nats.aio.client:Client.nothing is not in the nats-py patch table"
    ]
    no_patch = client._replace(rows=tuple(r._replace(via=()) for r in client.rows[:1]))
    assert gen.unpatched("nats-py", [no_patch]) == ["nats.aio.client:Client publish: traced, but no patch named"]


def test_the_next_family_is_strict() -> None:
    """Every family is instrumented: every traced row's patches must be in its patch table."""
    assert gen.STRICT == {"nats-py": True, "next": True}
    client = _section("nats.client:Client")
    publish = tuple(r for r in client.rows if r.name == "publish")
    wrong = client._replace(rows=tuple(r._replace(via=("nats.client:Client.nothing",)) for r in publish))
    assert gen.unpatched("next", [wrong], patches=()) == [
        "nats.client:Client publish: nats.client:Client.nothing is not in the next patch table"
    ]


def test_a_family_being_instrumented_is_checked_class_by_class(monkeypatch: pytest.MonkeyPatch) -> None:
    """For a family still being instrumented, a row's patches are checked only for the classes its
    patch table patches."""
    monkeypatch.setitem(gen.STRICT, "next", False)
    client = _section("nats.client:Client")
    publish = tuple(r for r in client.rows if r.name == "publish")
    wrong = client._replace(rows=tuple(r._replace(via=("nats.client:Client.nothing",)) for r in publish))
    assert gen.unpatched("next", [wrong], patches=()) == []
    patched = (Wrapt("nats.client", "Client.publish", lambda *a: None),)
    assert gen.unpatched("next", [wrong], patches=patched) == [
        "nats.client:Client publish: nats.client:Client.nothing is not in the next patch table"
    ]
    assert gen.unpatched("next", [client._replace(rows=publish)], patches=patched) == []
    assert "nats.client:Client request: nats.client:Client.request is not in the next patch table" in gen.unpatched(
        "next", [client], patches=patched
    )


def test_planned_rows_are_marked() -> None:
    """Rows of the next family whose patches are missing say so; nats-py rows never do."""
    text = gen.render()
    nats_py, _, nxt = text.partition("## Next-generation clients")
    assert "*Planned.*" not in nats_py
    for section in table.NEXT:
        for row in section.rows:
            assert gen.planned(section, row) == (
                bool(row.spans or row.metrics) and not set(row.via) <= gen.patch_ids(gen.PATCHES["next"])
            )
    assert ("*Planned.*" in nxt) == any(gen.planned(s, r) for s in table.NEXT for r in s.rows)


def test_every_metric_and_span_operation_is_covered() -> None:
    grouped = {m for g in table.GROUPS for m in (*g.current, *g.legacy, *g.every)}
    metrics = {v for k, v in vars(names).items() if isinstance(v, names.Metric) and not k.startswith("ST_")}
    assert metrics - grouped == set()
    used = {m for s in table.SECTIONS for r in s.rows for m in r.metrics}
    assert set(table.GROUPS) - used == set()
    ops = {span.op for s in table.NATS_PY for r in s.rows for span in r.spans}
    assert {spec.op for spec in names.SPANS} - ops == set()


def test_rows_are_unique() -> None:
    ids = [s.id for s in table.SECTIONS]
    assert len(ids) == len(set(ids))
    for section in table.SECTIONS:
        rows = [r.name for r in section.rows]
        assert len(rows) == len(set(rows)), section.id


def test_since_matches_the_installed_nats_py() -> None:
    """A member new since a release is there exactly when the installed nats-py is that release or newer."""
    if not gen.installed("nats-py"):
        pytest.skip("nats-py is not installed")
    installed = _version(version("nats-py"))
    checked = 0
    for section in table.NATS_PY:
        present = gen.members(section)
        for row in section.rows:
            if row.since:
                assert _version(table.OLDEST_NATS_PY) < _version(row.since) <= _version(table.VERSIONS["nats-py"])
                assert (row.name in present) == (installed >= _version(row.since)), f"{section.id}.{row.name}"
                checked += 1
    assert checked == 9


def test_check_command(tmp_path: Path) -> None:
    page = tmp_path / "api-coverage.md"
    assert gen.main(["--check"], page) == 1  # missing
    assert gen.main([], page) == 0
    assert page.read_text() == gen.render()
    assert gen.main(["--check"], page) == 0
    page.write_text(page.read_text() + "edited\n")
    assert gen.main(["--check"], page) == 1


def test_page_explains_itself() -> None:
    text = gen.render()
    for word in ("SPEC", "seed", "issue", "§"):
        assert word not in text
    assert "[reference](reference.md)" in text
    for section in table.SECTIONS:
        assert f"`{section.qualname or section.module}`" in text
