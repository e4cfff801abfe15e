"""High-cardinality subjects: how ``subject_templates`` and ``max_destinations`` are read and validated,
template matching, the bounded caches' structures, nats-py's push consumers (what the options do to
every operation, on each client family: tests/matrix/test_destinations.py)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opentelemetry.instrumentation.nats.config import NatsConfig
from opentelemetry.instrumentation.nats.destinations import Templates
from opentelemetry.instrumentation.nats.subjects import Generations, SubjectSet, matches
from tests.helpers import by_name, wait_spans

DEST = "messaging.destination.name"
TEMPLATE = "messaging.destination.template"


# --- configuration ------------------------------------------------------------------------------


def test_defaults_and_environment_variables() -> None:
    cfg = NatsConfig.from_options({}, env={})
    assert (cfg.subject_templates.patterns, cfg.max_destinations) == ((), 100)
    env = {
        "OTEL_PYTHON_NATS_SUBJECT_TEMPLATES": " orders.*.created, users.> ,,",
        "OTEL_PYTHON_NATS_MAX_DESTINATIONS": " 7 ",
    }
    cfg = NatsConfig.from_options({}, env=env)
    assert (cfg.subject_templates.patterns, cfg.max_destinations) == (("orders.*.created", "users.>"), 7)
    # options beat the environment variables (an empty list too); 0 is allowed
    cfg = NatsConfig.from_options({"subject_templates": [], "max_destinations": 0}, env=env)
    assert (cfg.subject_templates.patterns, cfg.max_destinations) == ((), 0)
    cfg = NatsConfig.from_options({"subject_templates": "a.*", "max_destinations": "12"}, env={})
    assert (cfg.subject_templates.patterns, cfg.max_destinations) == (("a.*",), 12)


@pytest.mark.parametrize(
    ("options", "env", "message"),
    [
        ({"subject_templates": ["orders..created"]}, {}, "subject_templates: 'orders..created' is not a valid"),
        ({"subject_templates": ["orders.>.created"]}, {}, "'>' is allowed only as the last token"),
        ({"subject_templates": ["orders.id*"]}, {}, "wildcards '*' and '>' must be whole tokens"),
        ({"subject_templates": [3]}, {}, "subject_templates: expected strings, got 3"),
        ({"subject_templates": 3}, {}, "subject_templates: expected a list of NATS subject patterns"),
        (
            {},
            {"OTEL_PYTHON_NATS_SUBJECT_TEMPLATES": "ok.*,bad one"},
            "subject_templates (from OTEL_PYTHON_NATS_SUBJECT_TEMPLATES): 'bad one' is not a valid",
        ),
        ({"max_destinations": -1}, {}, "max_destinations: expected a whole number ≥ 0, got -1"),
        ({"max_destinations": 1.5}, {}, "max_destinations: expected a whole number ≥ 0, got 1.5"),
        ({"max_destinations": True}, {}, "max_destinations: expected a whole number ≥ 0, got True"),
        ({"max_destinations": "many"}, {}, "max_destinations: expected a whole number ≥ 0, got 'many'"),
        (
            {},
            {"OTEL_PYTHON_NATS_MAX_DESTINATIONS": "ten"},
            "max_destinations (from OTEL_PYTHON_NATS_MAX_DESTINATIONS): expected a whole number ≥ 0, got 'ten'",
        ),
    ],
)
def test_bad_values_name_the_option(options: dict[str, Any], env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        NatsConfig.from_options(options, env=env)
    assert message in str(excinfo.value)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("orders.1.created", "orders.*.created"),  # the first of two matching patterns
        ("orders.1.deleted", "orders.>"),
        ("orders.1.items.2", "orders.>"),
        ("orders", ">"),  # 'orders.>' needs a token after 'orders'
        ("users.9", "*.9"),
        ("users.9.x", ">"),
        ("x", ">"),
    ],
)
def test_first_matching_template_wins(subject: str, expected: str | None) -> None:
    templates = Templates(["orders.*.created", "orders.>", "*.9", ">"])
    assert templates.first(subject) == expected
    assert Templates(["a.b"]).first(subject) is None
    assert Templates(["orders.>"]).first("orders") is None
    assert Templates(["orders.*"]).first("orders.1.created") is None


_TOKENS = st.sampled_from(["a", "b", "orders", "1", "x-y", "$JS", "_INBOX"])
_SUBJECTS = st.lists(_TOKENS, min_size=1, max_size=5).map(".".join)
_PATTERNS = st.lists(st.sampled_from(["a", "b", "1", "*"]), min_size=0, max_size=4).flatmap(
    lambda head: st.sampled_from([".".join(head), ".".join([*head, ">"])]).filter(bool)
)


@given(st.lists(_PATTERNS, min_size=1, max_size=4), _SUBJECTS)
def test_templates_agree_with_nats_wildcard_matching(patterns: list[str], subject: str) -> None:
    expected = next((p for p in patterns if matches(p, subject)), None)
    assert Templates(patterns).first(subject) == expected


# --- nats-py's push consumers (the templates on every operation, on each client family:
# tests/matrix/test_destinations.py) ---------------------------------------------------------------


async def test_templates_name_a_jetstream_push_consumers_process_spans(
    make_telemetry: Any, js_server: Any, connect: Any
) -> None:
    tel = make_telemetry(subject_templates=["tplj.*.created"])
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = f"TPL_{uuid.uuid4().hex[:8]}"
    await js.add_stream(name=stream, subjects=["tplj.>"])
    done = asyncio.Event()

    async def handler(msg: Any) -> None:
        done.set()

    await js.subscribe("tplj.>", cb=handler, stream=stream)  # push: a non-wildcard deliver subject
    tel.clear()
    await js.publish("tplj.3.created", b"js")
    await asyncio.wait_for(done.wait(), 5)
    spans = await wait_spans(tel, 3)
    assert sorted(s.name for s in spans) == [f"ack {stream}", "process tplj.*.created", "publish tplj.*.created"]
    process = by_name(spans, "process tplj.*.created")
    assert (process.attributes[DEST], process.attributes[TEMPLATE]) == ("tplj.3.created", "tplj.*.created")


# --- bounded caches -----------------------------------------------------------------------------


def test_generations_turn_over_without_clearing() -> None:
    cache: Generations[str, int] = Generations(3)
    for i, k in enumerate("abc"):
        cache.remember(k, i)
    cache.remember("d", 3)  # full: a, b, c become the older generation
    assert (cache.recent, cache.older) == ({"d": 3}, {"a": 0, "b": 1, "c": 2})
    assert cache.recall("b") == 1  # found in the older generation: moved back
    assert cache.recall("zz") is None
    assert (cache.recent, cache.older) == ({"d": 3, "b": 1}, {"a": 0, "c": 2})
    for k in "efg":
        cache.remember(k, 0)
    assert (cache.recent, cache.older) == ({"f": 0, "g": 0}, {"d": 3, "b": 1, "e": 0})
    assert cache.size() == 5


def test_subject_set_cache_is_bounded_and_answers_stay_right() -> None:
    excluded = SubjectSet(["health.>"])
    for i in range(3 * SubjectSet._MAX_CACHE):
        assert (f"health.{i}" in excluded, f"orders.{i}" in excluded) == (True, False)
        assert "health.check" in excluded
        assert excluded.size() <= 2 * SubjectSet._MAX_CACHE
    assert excluded.recent.get("health.check") is True  # in use: survived every turnover
