"""The monitoring assets on a real Prometheus server scraping a real instrumented application.

A nats-server, an app instrumented in code that serves the OpenTelemetry Prometheus exporter's
``/metrics`` and keeps up every kind of traffic (tests/apps/prometheus_app.py), and a Prometheus server
(``--web.listen-address`` on a free loopback port, scraping and evaluating every second) that loads the
shipped alert rules. Through Prometheus's HTTP API: every Grafana panel's query returns data, the rules
load and evaluate without errors, and the disconnected-client alert goes pending when the nats-server
stops. Without the ``prometheus`` program the test is skipped, except with ``CI=true``, where it fails.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tests.natsserver import NatsServer, free_ports
from tests.test_monitoring import ALERTS, EXPORTER_LABELS_RIGHT, alert_rules, dashboard_queries, prometheus_program

APP = Path(__file__).parent / "apps" / "prometheus_app.py"
JOB = "nats-app"  # no regex metacharacters: it fills the dashboard's job=~"$job" as it is
# Grafana's $__rate_interval is four scrape intervals at least; with Prometheus's default 15 s scrape
# interval that is 1m. (A `[1m]` window holds 60 samples here, at one scrape a second.)
RATE_INTERVAL = "1m"
DISCONNECTED = "NatsClientDisconnected"

T = TypeVar("T")

pytestmark = pytest.mark.skipif(
    not EXPORTER_LABELS_RIGHT,
    reason="opentelemetry-exporter-prometheus < 0.52b0 pairs labels with the wrong values (opentelemetry-python#4413): "
    "the error_type label that the error panels select is lost",
)


def wait_for(probe: Callable[[], T], what: str, timeout: float = 20.0) -> T:
    """Call ``probe`` every 0.25 s until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {value!r})")
        time.sleep(0.25)


class PrometheusServer:
    """A Prometheus server of the test's own, with its configuration and its storage in ``workdir``."""

    def __init__(self, binary: str, workdir: Path, port: int, target: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.workdir = workdir
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self.ready, "Prometheus to be ready")

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited ({self.proc.returncode}):\n{self.log.read_text()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of a successful ``GET /api/v1/<path>``."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as e:  # a bad query: Prometheus says why in the body
            raise AssertionError(f"GET {url}: {e}: {e.read().decode()}") from None
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The series of an instant query that have a number (not NaN: a quantile or a ratio of nothing)."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return [s for s in data["result"] if math.isfinite(float(s["value"][1]))]

    def value(self, expr: str) -> float | None:
        """The number of an instant query that returns one series, or None when it returns none."""
        result = self.query(expr)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def alerts(self, name: str) -> list[dict[str, Any]]:
        return [a for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    """A JetStream server of the test's own, to stop and start; max_payload is small for the propagation skip."""
    srv = NatsServer(jetstream=True, extra="max_payload: 4096").start()
    yield srv
    srv.cleanup()


@pytest.fixture
def app(nats_server: NatsServer, tmp_path: Path) -> Iterator[str]:
    """The instrumented app (a subprocess) on ``nats_server``; yields the address of its ``/metrics``."""
    (metrics_port,) = free_ports(1)
    with (tmp_path / "app.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(APP)],
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},  # the defaults
                "NATS_URL": nats_server.url,
                "METRICS_PORT": str(metrics_port),
            },
            stdout=subprocess.PIPE,
            stderr=log,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == b"READY\n", f"the app did not start: {line!r}\n{(tmp_path / 'app.log').read_text()}"
        yield f"127.0.0.1:{metrics_port}"
        assert proc.poll() is None, f"the app exited:\n{(tmp_path / 'app.log').read_text()}"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()  # type: ignore[union-attr]


@pytest.fixture
def prometheus_binary() -> str:
    """The ``prometheus`` program (skips or, with ``CI=true``, fails without it: see prometheus_program)."""
    return prometheus_program("prometheus")


@pytest.fixture
def prometheus(prometheus_binary: str, app: str, tmp_path: Path) -> Iterator[PrometheusServer]:
    """A Prometheus server loading the shipped rules and scraping ``app`` as job ``nats-app`` (the
    program is looked up before the app and its server start)."""
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    (port,) = free_ports(1)
    server = PrometheusServer(prometheus_binary, workdir, port, app)
    yield server
    server.stop()


def panel_queries() -> dict[str, str]:
    """``{where: expr}`` of every dashboard query (``panel 'Title' target A``, and ``variable job``), with
    Grafana's variables filled in as Grafana does for this app's job alone."""
    out = {}
    for q in dashboard_queries():
        expr = q.expr.replace("$__rate_interval", RATE_INTERVAL).replace("$job", JOB)
        assert "$" not in expr, f"{q.where}: a variable this test does not know: {expr}"
        out[q.where] = expr
    return out


def restart(srv: NatsServer, prom: PrometheusServer, reconnects: int) -> None:
    """Stop the nats-server until Prometheus has seen the app disconnected, then start it again and wait
    until Prometheus has seen the app's ``reconnects``-th reconnection."""
    connections = f'sum(messaging_nats_client_connections{{job="{JOB}"}})'
    srv.stop()
    wait_for(lambda: prom.value(connections) == 0, "Prometheus to see the app disconnected")
    srv.start()
    wait_for(
        lambda: (
            prom.value(f'sum(messaging_nats_client_reconnects_total{{job="{JOB}"}})') == reconnects
            and prom.value(connections) == 1
        ),
        f"Prometheus to see reconnection {reconnects}",
    )


def test_dashboard_and_alerts_on_a_prometheus_server(
    prometheus: PrometheusServer, nats_server: NatsServer, app: str
) -> None:
    prom = prometheus
    wait_for(
        lambda: prom.value(f'sum(messaging_nats_client_connections{{job="{JOB}",instance="{app}"}})') == 1,
        "Prometheus to scrape the app",
    )

    # Reconnects and disconnect durations: their rates need two reconnections (a counter that appears at
    # 1 has no increase yet).
    for reconnects in (1, 2):
        restart(nats_server, prom, reconnects)

    queries = panel_queries()
    assert len(queries) >= 20

    empty: list[str] = []

    def all_answer() -> bool:
        empty[:] = [f"{where}: {expr}" for where, expr in queries.items() if not prom.query(expr)]
        return not empty

    try:
        wait_for(all_answer, "every dashboard query to return data")
    except AssertionError:
        pytest.fail("dashboard queries without data:\n" + "\n".join(empty), pytrace=False)
    assert JOB in prom.api("label/job/values", **{"match[]": "messaging_nats_client_connections"})

    def shown(where: str, label: str) -> set[str]:
        return {s["metric"].get(label, "") for s in prom.query(queries[where])}

    # every way of consuming: a queue-group callback, an iterator, next_msg, a push consumer, a fetch (the stream)
    consumed = shown("panel 'Consume rate' target A", "messaging_destination_name")
    assert consumed >= {"app.events", "app.iter", "app.sync", "app.js.push", "APP"}
    assert shown("panel 'Message age' target C", "messaging_nats_jetstream_consumer") == {"pusher", "puller"}

    # The rules: every alert of the file loaded, evaluated without error.
    def evaluated() -> list[dict[str, Any]]:
        groups = prom.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return groups if rules and all(r["health"] != "unknown" for r in rules) else []

    groups = wait_for(evaluated, "the rules to be evaluated")
    assert [g["name"] for g in groups] == [g["name"] for g in yaml.safe_load(ALERTS.read_text())["groups"]]
    rules = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(rules) == set(alert_rules())
    assert all(r["type"] == "alerting" for r in rules.values())
    broken = {name: (r["health"], r.get("lastError")) for name, r in rules.items() if r["health"] != "ok"}
    assert not broken
    assert not [r["lastError"] for r in rules.values() if r.get("lastError")]

    # One request in two has no responder; one callback subscription in four raises: far past 1 %.
    wait_for(
        lambda: (
            {a["labels"].get("messaging_operation_name") for a in prom.alerts("NatsErrorRateHigh")}
            >= {"request", "process"}
        ),
        "the error-rate alert for requests and callbacks",
    )
    for a in prom.alerts("NatsErrorRateHigh"):
        assert a["state"] == "pending"  # for: 5m

    # Connected again: the disconnected alert is not active (it may have gone pending during the restarts).
    wait_for(lambda: not prom.alerts(DISCONNECTED), f"{DISCONNECTED} to be inactive while connected")
    nats_server.stop()
    (alert,) = wait_for(lambda: prom.alerts(DISCONNECTED), f"{DISCONNECTED} once the nats-server is stopped")
    assert alert["state"] in ("pending", "firing")
    assert alert["labels"] == {
        "alertname": DISCONNECTED,
        "severity": alert_rules()[DISCONNECTED]["labels"]["severity"],
        "job": JOB,
        "instance": app,
    }
    assert float(alert["value"]) == 0
