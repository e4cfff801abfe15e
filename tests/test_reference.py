"""The committed reference (docs/reference.md) must match the code's table of names."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import load_script

ROOT = Path(__file__).resolve().parent.parent


def test_reference_is_current() -> None:
    module = load_script("gen_reference")
    committed = (ROOT / "docs" / "reference.md").read_text()
    assert committed == module.render(), "docs/reference.md is stale: run python scripts/gen_reference.py"


def test_reference_lists_every_metric_and_span() -> None:
    from opentelemetry.instrumentation.nats import names

    text = (ROOT / "docs" / "reference.md").read_text()
    for value in vars(names).values():
        if isinstance(value, names.Metric):
            assert f"`{value.name}`" in text
    for span in names.SPANS:
        assert f"`{span.name}`" in text
