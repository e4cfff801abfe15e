"""The configuration page (docs/configuration.md) is generated from the option table the configuration
object reads, and that table covers every option and environment variable there is."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from opentelemetry.instrumentation.nats import names
from opentelemetry.instrumentation.nats.config import _OTHER_OPTIONS, NatsConfig
from opentelemetry.instrumentation.nats.options import KINDS, OPTIONS, Option
from tests.helpers import load_script

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "configuration.md"

# What an option's environment variable is set to below: a value other than the default.
_ENV_VALUES = {"patterns": "docs.example.>", "count": "7", "flag": "true"}
_BAD_ENV_VALUES = {"choice": "no-such-choice", "patterns": "a..b", "count": "-1", "flag": "maybe"}


def test_configuration_page_is_current() -> None:
    module = load_script("gen_configuration")
    assert PAGE.read_text() == module.render(), (
        "docs/configuration.md is stale: run python scripts/gen_configuration.py"
    )


def test_every_keyword_is_documented_once() -> None:
    documented = [o.name for o in OPTIONS]
    assert len(documented) == len(set(documented))
    keywords = {f.name for f in fields(NatsConfig)} - {"mode"} | {"semconv"}
    keywords |= {"tracer_provider", "meter_provider", "logger_provider"}
    assert set(documented) == keywords
    # BaseInstrumentor's own keywords are understood but are not ours to document
    assert _OTHER_OPTIONS - set(documented) == {"skip_dep_check", "raise_exception_on_conflict"}
    assert {o.kind for o in OPTIONS} <= set(KINDS)


def test_every_environment_variable_is_on_the_page() -> None:
    text = PAGE.read_text()
    variables = {v for k, v in vars(names).items() if k.startswith("ENV_")}
    assert variables - {o.env for o in OPTIONS} == {names.ENV_STABILITY}
    for variable in variables:
        assert f"`{variable}`" in text


def _env_value(option: Option) -> str:
    if option.kind == "choice":
        return option.choices[-1]  # the default is the first
    return _ENV_VALUES[option.kind]


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.env], ids=lambda o: o.name)
def test_each_documented_variable_sets_its_option(option: Option) -> None:
    """The documented variable alone changes the documented option, and nothing else."""
    assert option.env is not None
    default = NatsConfig.from_options({}, env={})
    got = NatsConfig.from_options({}, env={option.env: _env_value(option)})
    changed = {f.name for f in fields(NatsConfig) if _held(getattr(got, f.name)) != _held(getattr(default, f.name))}
    assert changed == {"mode" if option.name == "semconv" else option.name}


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.env], ids=lambda o: o.name)
def test_a_bad_value_of_a_documented_variable_names_it(option: Option) -> None:
    assert option.env is not None
    with pytest.raises(ValueError, match=f"{option.name} \\(from {option.env}\\)"):
        NatsConfig.from_options({}, env={option.env: _BAD_ENV_VALUES[option.kind]})


def test_choices_are_the_allowed_values() -> None:
    for option in (o for o in OPTIONS if o.kind == "choice"):
        for choice in option.choices:
            NatsConfig.from_options({option.name: choice}, env={})
        with pytest.raises(ValueError, match=", ".join(option.choices)):
            NatsConfig.from_options({option.name: "no-such-choice"}, env={})


def _held(value: object) -> object:
    """What a field holds (subject sets and templates compare by identity: their patterns)."""
    return getattr(value, "patterns", value)
