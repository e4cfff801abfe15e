"""Render docs/trace.png: a waterfall of a real trace of the demo (examples/demo.py).

    pip install -e '.[test,docs]'              # nats-py, the SDK, opentelemetry-distro, matplotlib
    python scripts/trace_picture.py            # writes docs/trace.png
    python scripts/trace_picture.py --out x.png --spans spans.txt   # also keep the demo's output

It starts a throw-away JetStream-enabled nats-server on a free loopback port (the binary from
NATS_SERVER_BIN, PATH or /usr/sbin/nats-server, as scripts/demo.sh and the tests find it), runs the
demo the way scripts/demo.sh does -

    opentelemetry-instrument --traces_exporter console --metrics_exporter none --logs_exporter none \\
        python examples/demo.py

- parses the spans the console exporter printed (JSON objects), and draws the trace of the
"demo checkout" span: one bar per span from its start to its end time, indented by depth, labelled
with the span's name and kind. Spans of other traces that link to a span of this trace (the
``fetch`` of the pull consumer) are drawn hatched under the span they link to.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.py"
ROOT_SPAN = "demo checkout"
KIND_COLOURS = {
    "INTERNAL": "#9e9e9e",
    "PRODUCER": "#1f77b4",
    "CONSUMER": "#2ca02c",
    "CLIENT": "#ff7f0e",
    "SERVER": "#9467bd",
}


# --- running the demo --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _nats_server_binary() -> str:
    binary = os.environ.get("NATS_SERVER_BIN") or shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not Path(binary).exists():
        sys.exit("nats-server not found: install it (apt-get install nats-server) or set NATS_SERVER_BIN")
    return binary


def run_demo() -> str:
    """Run the demo under opentelemetry-instrument against a fresh nats-server; its stdout."""
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    if not instrument.exists():
        instrument = Path(shutil.which("opentelemetry-instrument") or "opentelemetry-instrument")
    with tempfile.TemporaryDirectory(prefix="trace-picture-") as tmp:
        port = _free_port()
        log = open(Path(tmp) / "nats-server.log", "wb")  # noqa: SIM115 - closed below
        server = subprocess.Popen(
            [_nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(Path(tmp) / "js")],
            stdout=log,
            stderr=log,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        sys.exit(f"nats-server did not start: {(Path(tmp) / 'nats-server.log').read_text()}")
                    time.sleep(0.05)
            env = {
                **os.environ,
                "NATS_URL": f"nats://127.0.0.1:{port}",
                "OTEL_SERVICE_NAME": "nats-demo",
            }
            result = subprocess.run(
                [
                    str(instrument),
                    *("--traces_exporter", "console", "--metrics_exporter", "none", "--logs_exporter", "none"),
                    sys.executable,
                    str(DEMO),
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if result.returncode != 0:
                sys.exit(f"the demo failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
            return result.stdout
        finally:
            server.terminate()
            server.wait(10)
            log.close()


# --- reading the spans -------------------------------------------------------------------------


def console_spans(text: str) -> list[dict[str, Any]]:
    """The span objects in the console exporter's output (other output is skipped)."""
    decoder = json.JSONDecoder()
    spans: list[dict[str, Any]] = []
    i = 0
    while (start := text.find("{", i)) != -1:
        try:
            obj, i = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            i = start + 1
            continue
        if isinstance(obj, dict) and "context" in obj and "name" in obj:
            spans.append(obj)
    return spans


def _micros(iso: str) -> int:
    """Microseconds since the epoch of the console exporter's ``2024-01-01T00:00:00.123456Z``."""
    dt = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


@dataclass
class Row:
    """One bar of the waterfall."""

    name: str
    kind: str  # PRODUCER, CONSUMER …
    depth: int
    start_us: int
    end_us: int
    span_id: str
    linked: bool = False  # a span of another trace, linking to its parent row
    children: list[Row] = field(default_factory=list)


def layout(spans: list[dict[str, Any]], root_name: str = ROOT_SPAN) -> tuple[str, list[Row]]:
    """The trace of the span named ``root_name`` as waterfall rows (depth-first, siblings by start
    time), plus the root spans of other traces that link into it, each under the span it links to.
    Returns the trace id and the rows."""
    roots = [s for s in spans if s["name"] == root_name and s["parent_id"] is None]
    if len(roots) != 1:
        raise ValueError(f"expected one root span {root_name!r}, found {len(roots)}")
    trace_id = roots[0]["context"]["trace_id"]
    rows: dict[str, Row] = {}
    for s in spans:
        row = Row(
            name=s["name"],
            kind=s["kind"].removeprefix("SpanKind."),
            depth=0,
            start_us=_micros(s["start_time"]),
            end_us=_micros(s["end_time"]),
            span_id=s["context"]["span_id"],
            linked=s["context"]["trace_id"] != trace_id,
        )
        rows[row.span_id] = row
    for s in spans:
        row = rows[s["context"]["span_id"]]
        if not row.linked and s["parent_id"] in rows:
            rows[s["parent_id"]].children.append(row)
        elif row.linked and s["parent_id"] is None:
            targets = [link["context"]["span_id"] for link in s.get("links", [])]
            target = next((t for t in targets if t in rows and not rows[t].linked), None)
            if target is not None:
                rows[target].children.append(row)

    ordered: list[Row] = []

    def walk(row: Row, depth: int) -> None:
        row.depth = depth
        ordered.append(row)
        for child in sorted(row.children, key=lambda r: r.start_us):
            walk(child, depth + 1)

    walk(rows[roots[0]["context"]["span_id"]], 0)
    return trace_id, ordered


# --- drawing -----------------------------------------------------------------------------------


def render(trace_id: str, rows: list[Row], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    t0 = min(r.start_us for r in rows)
    total_ms = (max(r.end_us for r in rows) - t0) / 1000
    fig, ax = plt.subplots(figsize=(12, 0.42 * len(rows) + 1.6))
    labels = []
    for y, row in enumerate(rows):
        start_ms = (row.start_us - t0) / 1000
        width_ms = max((row.end_us - row.start_us) / 1000, total_ms * 0.003)  # keep tiny spans visible
        ax.barh(
            y,
            width_ms,
            left=start_ms,
            height=0.6,
            color=KIND_COLOURS.get(row.kind, "#7f7f7f"),
            hatch="///" if row.linked else None,
            alpha=0.55 if row.linked else 0.95,
            edgecolor="black" if row.linked else "none",
            linewidth=0.5,
        )
        duration = (row.end_us - row.start_us) / 1000
        ax.text(start_ms + width_ms + total_ms * 0.006, y, f"{duration:.2f} ms", va="center", fontsize=8)
        label = "  " * row.depth + f"{row.name}  [{row.kind}]"
        if row.linked:
            label += "  (own trace, link)"
        labels.append(label)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontfamily="monospace", fontsize=9, ha="left")
    ax.tick_params(axis="y", length=0, pad=max(len(s) for s in labels) * 5.6)
    ax.invert_yaxis()
    ax.set_xlim(0, total_ms * 1.12)
    ax.set_xlabel("milliseconds since the trace started")
    ax.grid(axis="x", linestyle=":", linewidth=0.6)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    kinds = [k for k in KIND_COLOURS if any(r.kind == k for r in rows)]
    handles = [Patch(color=KIND_COLOURS[k], label=k) for k in kinds]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="///", label="linked span, other trace"))
    ax.legend(handles=handles, loc="upper right", fontsize=8, frameon=False)
    ax.set_title(
        f"examples/demo.py under opentelemetry-instrument: trace {trace_id.removeprefix('0x')}",
        fontsize=10,
        loc="left",
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "trace.png", help="the PNG to write")
    parser.add_argument("--spans", type=Path, help="also save the demo's console output here")
    parser.add_argument("--from-output", type=Path, help="render a saved console output instead of running the demo")
    args = parser.parse_args(argv)
    text = args.from_output.read_text() if args.from_output else run_demo()
    if args.spans:
        args.spans.write_text(text)
    trace_id, rows = layout(console_spans(text))
    render(trace_id, rows, args.out)
    print(f"wrote {args.out} ({len(rows)} spans of trace {trace_id})")


if __name__ == "__main__":
    main()
