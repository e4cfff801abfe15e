#!/usr/bin/env python3
"""Build the sdist and the wheel as a release does (``python -m build``) and check what would be uploaded.

1. ``twine check --strict``; the PyPI description (README.md through the fancy-pypi-readme hook in
   pyproject.toml) rendered as PyPI renders it: every link and image absolute, every in-page link
   pointing at a heading that is there.
2. The wheel holds exactly the package files of src/ (no tests, benchmarks, scripts or namespace
   ``__init__.py`` of ``opentelemetry``), ``py.typed``, the license, the entry points and the metadata
   (version from version.py, PEP 639 license fields, keywords, valid classifiers whose Python versions
   are the ones tox.ini tests). The sdist holds, for each part it includes, the same files as the
   working tree (tracked or untracked, not ignored by git), and nothing from caches, virtualenvs or CI.
   The extras: ``instruments`` names this package with its ``nats-py`` extra (hatch_build.py keeps that
   self-reference in the built metadata), ``instruments-any`` names both client families.
3. The wheel with its ``instruments`` extra and opentelemetry-distro, installed into a fresh virtualenv,
   installs nats-py and traces apps run by ``opentelemetry-instrument``: the tests marked
   ``auto_instrumentation`` (but not ``nats_core``) run from the unpacked sdist (which checks its test
   suite collects) against a real nats-server, with ``NATS_APP_PYTHON`` pointing at that virtualenv.
   Then the wheel with its ``nats-core`` extra alone (no nats-py) in a Python 3.13 virtualenv runs the
   tests marked ``nats_core`` the same way; without a Python 3.13 (``$PYTHON313``, else python3.13 on
   PATH) that part is skipped with a message.

Run by ``tox -e dist`` (scripts/test.sh, CI) and by the release workflow:

    python scripts/check_dist.py                              # build into a temporary directory
    python scripts/check_dist.py --outdir dist --tag v0.1.0   # keep the files; check a release tag

``--tag`` also checks that the tag is ``v`` + the package version, that the version is a release (no
``.dev``/local part), and that CHANGELOG.md has a dated section for it right under an empty
``## [Unreleased]`` one.
"""

from __future__ import annotations

import argparse
import configparser
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
import zipfile
from email.message import Message
from email.parser import Parser
from html.parser import HTMLParser
from pathlib import Path

import trove_classifiers  # the dist env of tox.ini has these
from readme_renderer.markdown import render

ROOT = Path(__file__).resolve().parent.parent
NAME = "opentelemetry-instrumentation-nats"
STEM = NAME.replace("-", "_")  # file names of the distributions
ENTRY_POINT = ("opentelemetry_instrumentor", "nats", "opentelemetry.instrumentation.nats:NatsInstrumentor")
# Namespace packages shared with every OpenTelemetry distribution: shipping their __init__.py breaks the others.
NAMESPACE_INITS = {"opentelemetry/__init__.py", "opentelemetry/instrumentation/__init__.py"}
# what the extras that pick a client family must require (the built metadata, after hatch_build.py)
EXTRAS = {
    "instruments": [f"{NAME}[nats-py]"],
    "instruments-any": ["nats-core<1,>=0.2.0", "nats-py<3,>=2.9.0"],
    "nats-py": ["nats-py<3,>=2.9.0"],
}
NEVER_IN_SDIST = {".git", ".github", ".ci", ".venv", ".tox", "__pycache__", "dist", "build", "benchmarks"}


class Problems(list[str]):
    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.append(message)


def run(*command: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    """Run a command; its output, or exit with it when the command fails."""
    result = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {' '.join(map(str, command))}\n{result.stdout}\n{result.stderr}")
    return result.stdout


def package_version() -> str:
    text = (ROOT / "src/opentelemetry/instrumentation/nats/version.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    assert match, "no __version__ in version.py"
    return match[1]


def tested_pythons() -> set[str]:
    """The Python versions of tox.ini's env_list (``py310``, ``py{310,311}-…`` → ``3.10``, ``3.11``)."""
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    env_list = tox["tox"]["env_list"]
    found = {m[1] for m in re.finditer(r"\bpy(3\d+)\b", env_list)}
    for group in re.findall(r"\bpy\{([\d,\s]+)\}", env_list):
        found.update(v.strip() for v in group.split(","))
    return {f"3.{v[1:]}" for v in found}


def project_files(top: str) -> set[str]:
    """The files under ``top`` that a build from this tree takes: tracked or untracked, not ignored by git."""
    out = run("git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", top)
    return {f for f in out.split("\0") if f and (ROOT / f).is_file()}


def diff(problems: Problems, what: str, got: set[str], expected: set[str]) -> None:
    problems.check(not got - expected, f"{what}: unexpected {sorted(got - expected)}")
    problems.check(not expected - got, f"{what}: missing {sorted(expected - got)}")


def check_wheel(wheel: Path, version: str, problems: Problems) -> Message:
    """Check the wheel's files, entry points and metadata; its METADATA."""
    info = f"{STEM}-{version}.dist-info"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        read = {n: zf.read(n) for n in names if n.startswith(f"{info}/") and not n.endswith("/RECORD")}
    package = {f.removeprefix("src/") for f in project_files("src")}
    meta_files = {f"{info}/{n}" for n in ("METADATA", "WHEEL", "RECORD", "entry_points.txt", "licenses/LICENSE")}
    diff(problems, "wheel", names, package | meta_files)
    problems.check("opentelemetry/instrumentation/nats/py.typed" in names, "wheel: no py.typed")
    shared = sorted(names & NAMESPACE_INITS)
    problems.check(not shared, f"wheel: {shared} belong to the namespace every OpenTelemetry distribution shares")
    problems.check(
        read.get(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes(), "wheel: LICENSE differs or missing"
    )

    entry_points = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    entry_points.read_string(read.get(f"{info}/entry_points.txt", b"").decode())
    group, name, target = ENTRY_POINT
    problems.check(
        entry_points.has_option(group, name) and entry_points.get(group, name) == target,
        f"wheel: entry point {group}: {name} = {target} missing",
    )

    meta = Parser().parsestr(read.get(f"{info}/METADATA", b"").decode())
    tested = tested_pythons()
    classifiers = meta.get_all("Classifier") or []
    claimed = {
        c.rsplit(" :: ", 1)[1] for c in classifiers if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    for field, expected in {
        "Name": NAME,
        "Version": version,
        "License-Expression": "Apache-2.0",
        "License-File": "LICENSE",
        "Requires-Python": f">={min(tested, key=lambda v: int(v[2:]))}",
        "Description-Content-Type": "text/markdown",
    }.items():
        problems.check(meta.get(field) == expected, f"METADATA {field}: {meta.get(field)!r}, expected {expected!r}")
    mv = meta.get("Metadata-Version", "0")
    problems.check(tuple(map(int, mv.split("."))) >= (2, 4), f"METADATA Metadata-Version {mv}: PEP 639 needs 2.4")
    for field in ("Summary", "Keywords"):
        problems.check(bool(meta.get(field)), f"METADATA: no {field}")
    extras = set(meta.get_all("Provides-Extra") or [])
    missing = {"instruments", "instruments-any", "nats-py", "nats-core"} - extras
    problems.check(not missing, f"METADATA: no {sorted(missing)} extra")
    for extra, expected in EXTRAS.items():
        marker = re.compile(r";.*\bextra == ['\"]" + re.escape(extra) + r"['\"]")
        found = sorted(r.split(";")[0].strip() for r in meta.get_all("Requires-Dist") or [] if marker.search(r))
        problems.check(found == expected, f"METADATA Requires-Dist of extra {extra!r}: {found}, expected {expected}")
    problems.check(claimed == tested, f"classifiers claim Python {sorted(claimed)}, tox.ini tests {sorted(tested)}")
    for c in classifiers:
        problems.check(c in trove_classifiers.classifiers, f"classifier {c!r} is not a trove classifier")
        problems.check(not c.startswith("License ::"), f"classifier {c!r}: the license is License-Expression")
    for url in meta.get_all("Project-URL") or []:
        problems.check(bool(re.search(r", https://", url)), f"Project-URL {url!r} is not an https URL")
    return meta


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.targets: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key == "id" and value:
                self.ids.add(value)
            elif key in ("href", "src"):
                self.targets.append((f"{tag} {key}", value or ""))


def check_description(meta: Message, problems: Problems) -> None:
    """Render the long description as PyPI does; every link absolute or to a heading on the page."""
    html = render(str(meta.get_payload()))
    if not html:
        problems.append("the PyPI description does not render")
        return
    links = _Links()
    links.feed(html)
    for where, target in links.targets:
        if target.startswith("#"):
            problems.check(target[1:] in links.ids, f"PyPI description: {where}={target!r} points at no heading")
        else:
            problems.check(bool(re.match(r"https?://", target)), f"PyPI description: {where}={target!r} is relative")


def check_sdist(sdist: Path, version: str, into: Path, problems: Problems) -> Path:
    """Check the sdist's files and unpack it; the unpacked directory."""
    top = f"{STEM}-{version}"
    with tarfile.open(sdist) as tf:
        files = {m.name.removeprefix(f"{top}/") for m in tf.getmembers() if m.isfile()}
        if hasattr(tarfile, "data_filter"):  # Python 3.10.12+, 3.11.4+
            tf.extractall(into, filter="data")
        else:
            tf.extractall(into)  # our own sdist, just built
    parts = {f.split("/", 1)[0] for f in files} - {"PKG-INFO"}
    for part in parts:
        diff(problems, f"sdist {part}", {f for f in files if f.split("/", 1)[0] == part}, project_files(part))
    required = {"PKG-INFO", "pyproject.toml", "README.md", "CHANGELOG.md", "LICENSE", "tests/conftest.py"}
    problems.check(required <= files, f"sdist: missing {sorted(required - files)}")
    bad = {f for f in files if NEVER_IN_SDIST & set(Path(f).parts) or f.endswith(".pyc")}
    problems.check(not bad, f"sdist: {sorted(bad)}")
    pkg_info = Parser().parsestr((into / top / "PKG-INFO").read_text())
    problems.check(pkg_info["Version"] == version, f"sdist PKG-INFO Version {pkg_info['Version']}")
    return into / top


def check_tag(tag: str, version: str, problems: Problems) -> None:
    problems.check(tag == f"v{version}", f"tag {tag!r} does not name the package version {version} (v{version})")
    problems.check(not re.search(r"dev|\+", version), f"version {version} is a development or local version")
    changelog = (ROOT / "CHANGELOG.md").read_text()
    # "## [Unreleased]", nothing in it, then "## [X.Y.Z] - YYYY-MM-DD"
    layout = rf"^## \[Unreleased\]\s*^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$"
    problems.check(
        re.search(layout, changelog, re.MULTILINE) is not None,
        f"CHANGELOG.md: no '## [{version}] - YYYY-MM-DD' section right under an empty '## [Unreleased]'",
    )


def fresh_venv(wheel: Path, extra: str, venv: Path, python: str = sys.executable) -> Path:
    """A fresh virtualenv made by ``python`` with the wheel, its ``extra`` and opentelemetry-distro; its python."""
    run(python, "-m", "venv", venv)
    venv_python = venv / "bin" / "python"
    run(venv_python, "-m", "pip", "install", "--quiet", f"{NAME}[{extra}] @ {wheel.as_uri()}", "opentelemetry-distro")
    run(venv_python, "-m", "pip", "check")
    probe = (
        "import importlib.metadata as md, opentelemetry.instrumentation.nats as m\n"
        "print(m.__file__)\n"
        f"print(*(e.name for e in md.distribution({NAME!r}).entry_points if e.group == 'console_scripts'))\n"
        "print(*(d for d in ('nats-py', 'nats-core') if any(True for _ in md.distributions(name=d))))"
    )
    where, scripts, families = run(venv_python, "-c", probe).splitlines()
    if not Path(where).is_relative_to(venv):
        sys.exit(f"the fresh virtualenv imports the package from {where}, not from the wheel")
    missing = [name for name in scripts.split() if not (venv / "bin" / name).is_file()]
    if missing:
        sys.exit(f"console scripts not installed from the wheel: {missing}")
    expected = {"instruments": "nats-py", "nats-core": "nats-core"}[extra]
    if families.split() != [expected]:
        sys.exit(f"the wheel's {extra} extra installed the client families {families.split()}, not [{expected!r}]")
    return venv_python


def run_auto_instrumentation(sources: Path, python: Path, markers: str) -> int:
    """Run the tests selected by ``markers`` from the unpacked sdist with ``NATS_APP_PYTHON=python``; their count."""
    report = python.parent.parent.parent / f"{python.parent.parent.name}.xml"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"NATS_APP_PYTHON": str(python)}
    args = ("-m", markers, "-p", "no:cacheprovider", "-q", f"--junitxml={report}", "tests")
    print(run(sys.executable, "-m", "pytest", *args, cwd=sources, env=env).rstrip().rsplit("\n", 1)[-1])
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    tests, skipped = int(suite.get("tests", "0")), int(suite.get("skipped", "0"))
    if tests == 0 or skipped:
        sys.exit(
            f"auto-instrumentation tests ({markers}) against the wheel: {tests} run, {skipped} skipped (none may be)"
        )
    return tests


def python313() -> str | None:
    """A Python 3.13 for the nats-core family: ``$PYTHON313``, else python3.13 on PATH (``None``: none works)."""
    for candidate in (os.environ.get("PYTHON313"), shutil.which("python3.13")):
        if candidate:
            check = [candidate, "-c", "import sys; sys.exit(sys.version_info[:2] != (3, 13))"]
            if subprocess.run(check, capture_output=True, check=False).returncode == 0:
                return candidate
    return None


def check_installed(wheel: Path, sources: Path, work: Path) -> tuple[int, int | None]:
    """The auto-instrumentation tests against the installed wheel: nats-py through ``instruments``, then
    nats-core alone through its extra on Python 3.13 (``None`` when there is no Python 3.13)."""
    tests = run_auto_instrumentation(
        sources, fresh_venv(wheel, "instruments", work / "venv"), "auto_instrumentation and not nats_core"
    )
    python = python313()
    if python is None:
        print("SKIPPED the nats-core auto-instrumentation check: no Python 3.13 ($PYTHON313 or python3.13 on PATH)")
        return tests, None
    venv_python = fresh_venv(wheel, "nats-core", work / "venv-natscore", python)
    return tests, run_auto_instrumentation(sources, venv_python, "auto_instrumentation and nats_core")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outdir", type=Path, help="where to build the distributions (default: a temporary directory)")
    parser.add_argument("--tag", help="the release tag to check against the version and CHANGELOG.md (vX.Y.Z)")
    args = parser.parse_args()
    started = time.monotonic()
    version = package_version()
    with tempfile.TemporaryDirectory(prefix="nats-dist-") as tmp:
        work = Path(tmp)
        outdir = (args.outdir or work / "dist").resolve()
        outdir.mkdir(parents=True, exist_ok=True)
        for old in [*outdir.glob(f"{STEM}-*.whl"), *outdir.glob(f"{STEM}-*.tar.gz")]:
            old.unlink()
        run(sys.executable, "-m", "build", "--outdir", outdir, ROOT)  # the sdist, then the wheel from it
        sdist, wheel = outdir / f"{STEM}-{version}.tar.gz", outdir / f"{STEM}-{version}-py3-none-any.whl"
        if not (sdist.is_file() and wheel.is_file()):
            sys.exit(f"python -m build made {sorted(p.name for p in outdir.iterdir())}, not {sdist.name}, {wheel.name}")
        run(sys.executable, "-m", "twine", "check", "--strict", sdist, wheel)

        problems = Problems()
        check_description(check_wheel(wheel, version, problems), problems)
        sources = check_sdist(sdist, version, work / "sdist", problems)
        if args.tag is not None:
            check_tag(args.tag, version, problems)
        if problems:
            print("\n".join(["distribution check failed:", *problems]), file=sys.stderr)
            return 1
        tests, core_tests = check_installed(wheel, sources, work)
    core = (
        f", {core_tests} with its nats-core extra alone on Python 3.13"
        if core_tests is not None
        else " (nats-core on Python 3.13: SKIPPED, no Python 3.13)"
    )
    print(
        f"dist OK: {sdist.name} and {wheel.name} (twine check --strict, contents, metadata, PyPI description); "
        f"{tests} auto-instrumentation tests passed against the wheel with its instruments extra in a fresh "
        f"virtualenv{core} ({time.monotonic() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
