"""Run the Docker SDK for Python's own integration suite against a private moord.

The suite (`../shared/conformance/docker-py-7.2.0`, unmodified: read, never edited) is
copied to a scratch directory and run with the SDK's own pins (docker 7.2.0, pytest
7.4.2, pytest-timeout 2.1.0) from a venv of its own (`.venv-conformance`, made by
scripts/test.sh), against a moord with its own data root, socket, network prefix and
cgroup. busybox is tagged as the images the suite expects (`alpine:3.10`,
`alpine:latest`), as the shared README says to do offline.

Every test's outcome is compared with `expected_failures.toml`: a failure listed there
is expected (each entry names its reason), anything else that fails makes the run fail,
and so does a listed test that now passes (the list must stay true). A table per file
and a summary are printed either way.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import attrs

from tests.support.daemon import REPO, Moord, host_problems

SUITE_NAME = "docker-py-7.2.0"
API_VERSION = "1.45"  # the newest the SDK speaks
PER_TEST_TIMEOUT = 300
EXPECTED_FILE = Path(__file__).with_name("expected_failures.toml")
VENV = REPO / ".venv-conformance"

#: Why a test may be expected to fail: the shared README's categories, and swarm.
REASONS = {
    "docker-hub": "pulls from Docker Hub (no internet here)",
    "credential-helper": "needs a docker-credential-* helper binary (client side only)",
    "busybox-image": "needs what alpine has and busybox hasn't (a postgres user, /var/opt)",
    "shared-root": "needs / as a shared mount; it is private on these machines",
    "websocket": "the SDK cannot open a websocket over a unix socket",
    "racy-upstream": "racy on dockerd itself (the shared README names it)",
    "swarm": "swarm mode is not offered",
    "on-purpose": "moorage differs on purpose (docs/compatibility.md names the test)",
}
COMPATIBILITY_DOC = REPO / "docs" / "compatibility.md"


@attrs.frozen
class Outcome:
    test: str  # file::Class::name, as the expected list names it
    file: str
    status: str  # passed | failed | error | skipped
    message: str = ""


@attrs.frozen
class Expected:
    reason: str
    note: str = ""
    flaky: bool = False  # may pass or fail (racy on dockerd too): never "now passing"


def find_suite(explicit: str | None) -> Path:
    """The suite's directory: --suite, $MOORAGE_CONFORMANCE, or ../shared/conformance."""
    candidates = [Path(explicit)] if explicit else []
    if os.environ.get("MOORAGE_CONFORMANCE"):
        candidates.append(Path(os.environ["MOORAGE_CONFORMANCE"]) / SUITE_NAME)
    candidates += [REPO.parent / "shared" / "conformance" / SUITE_NAME,
                   Path("/work/shared/conformance") / SUITE_NAME]
    for candidate in candidates:
        if (candidate / "tests" / "integration").is_dir():
            return candidate
    raise SystemExit("conformance: the docker-py suite is not found; looked in:\n  "
                     + "\n  ".join(str(c) for c in candidates)
                     + "\n(set MOORAGE_CONFORMANCE to the folder holding " + SUITE_NAME + ")")


def load_expected(path: Path = EXPECTED_FILE) -> dict[str, Expected]:
    """The expected failures, each with a known reason (a typo in one is an error)."""
    data = tomllib.loads(path.read_text())
    documented = COMPATIBILITY_DOC.read_text()
    expected: dict[str, Expected] = {}
    for test, entry in data.get("tests", {}).items():
        reason = entry.get("reason", "")
        if reason not in REASONS:
            raise SystemExit(f"conformance: {path.name}: {test}: reason {reason!r} is not one "
                             f"of {', '.join(sorted(REASONS))}")
        if reason == "on-purpose" and test.rsplit("::", 1)[-1] not in documented:
            raise SystemExit(f"conformance: {path.name}: {test} differs on purpose, but "
                             f"{COMPATIBILITY_DOC.relative_to(REPO)} does not name it")
        expected[test] = Expected(reason, entry.get("note", ""), bool(entry.get("flaky")))
    return expected


def read_junit(path: Path) -> list[Outcome]:
    outcomes = []
    for case in ET.parse(path).getroot().iter("testcase"):
        classname = case.get("classname", "")  # tests.integration.api_container_test.Class
        parts = classname.split(".")
        module = next((i for i, p in enumerate(parts) if p.endswith("_test")), len(parts) - 1)
        file = parts[module]
        test = "::".join([file, *parts[module + 1:], case.get("name", "")])
        status, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                status = "failed" if tag == "failure" else tag
                message = (node.get("message") or "").strip().splitlines()[0:1]
                message = message[0][:160] if message else ""
                break
        outcomes.append(Outcome(test, file, status, message))
    return outcomes


@attrs.define
class Verdict:
    unexpected: list[Outcome] = attrs.field(factory=list)  # failed, not listed
    fixed: list[str] = attrs.field(factory=list)  # listed, but passed
    missing: list[str] = attrs.field(factory=list)  # listed, never ran

    @property
    def ok(self) -> bool:
        return not self.unexpected and not self.fixed


def judge(outcomes: Sequence[Outcome], expected: Mapping[str, Expected],
          ran_files: Iterable[str]) -> Verdict:
    verdict = Verdict()
    seen = {o.test: o for o in outcomes}
    for o in outcomes:
        failed = o.status in ("failed", "error")
        if failed and o.test not in expected:
            verdict.unexpected.append(o)
        elif o.status == "passed" and o.test in expected and not expected[o.test].flaky:
            verdict.fixed.append(o.test)
    files = set(ran_files)
    verdict.missing = sorted(t for t in expected if t not in seen and t.split("::")[0] in files)
    return verdict


def table(outcomes: Sequence[Outcome], expected: Mapping[str, Expected]) -> str:
    rows: dict[str, Counter[str]] = {}
    for o in outcomes:
        counts = rows.setdefault(o.file, Counter())
        failed = o.status in ("failed", "error")
        counts["tests"] += 1
        counts["passed"] += o.status == "passed"
        counts["skipped"] += o.status == "skipped"
        counts["expected"] += failed and o.test in expected
        counts["unexpected"] += failed and o.test not in expected
    header = f"{'file':<28} {'tests':>6} {'passed':>7} {'skipped':>8} {'expected':>9} {'unexpected':>11}"
    lines = [header, "-" * len(header)]
    total: Counter[str] = Counter()
    for file in sorted(rows):
        c = rows[file]
        total.update(c)
        lines.append(f"{file:<28} {c['tests']:>6} {c['passed']:>7} {c['skipped']:>8} "
                     f"{c['expected']:>9} {c['unexpected']:>11}")
    lines.append("-" * len(header))
    lines.append(f"{'total':<28} {total['tests']:>6} {total['passed']:>7} {total['skipped']:>8} "
                 f"{total['expected']:>9} {total['unexpected']:>11}")
    reasons = Counter(expected[o.test].reason for o in outcomes
                      if o.status in ("failed", "error") and o.test in expected)
    if reasons:
        lines.append("")
        lines.append("expected failures by reason: " + ", ".join(
            f"{REASONS[r]}: {n}" for r, n in sorted(reasons.items())))
    return "\n".join(lines)


def _sdk_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"conformance: {VENV} is missing: scripts/test.sh makes it "
                         "(docker==7.2.0 pytest==7.4.2 pytest-timeout==2.1.0)")
    return python


def run_suite(suite: Path, daemon: Moord, files: Sequence[str], scratch: Path,
              extra: Sequence[str] = ()) -> Path:
    """The suite from a copy in `scratch` (it writes caches beside itself); its junit XML."""
    copy = scratch / SUITE_NAME
    shutil.copytree(suite, copy)
    junit = scratch / "junit.xml"
    targets = [f"tests/integration/{f}.py" for f in files] or ["tests/integration"]
    env = dict(daemon.env)
    env.update(DOCKER_TEST_API_VERSION=API_VERSION, PYTHONDONTWRITEBYTECODE="1")
    subprocess.run([str(_sdk_python()), "-m", "pytest", "-p", "no:cacheprovider", "-q",
                    f"--timeout={PER_TEST_TIMEOUT}", f"--junitxml={junit}", *extra, *targets],
                   cwd=copy, env=env, check=False)
    return junit


def prepare(daemon: Moord) -> None:
    daemon.start()
    daemon.import_busybox()
    for name in ("alpine:3.10", "alpine:latest"):
        daemon.docker("tag", "busybox:latest", name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.conformance", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", help="suite files to run (e.g. api_exec_test); all by default")
    parser.add_argument("--suite", help=f"the {SUITE_NAME} folder (default: ../shared/conformance)")
    parser.add_argument("--keep", action="store_true", help="keep the daemon's root for a look")
    parser.epilog = "arguments after -- go to the suite's pytest (e.g. -- -k exec)"
    # split at "--" ourselves: argparse hands "-k" to `files` when they come first
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    extra = argv[cut + 1:]
    problems = host_problems()
    if problems:
        print("conformance: this host cannot run moord:\n  " + "\n  ".join(problems))
        return 2
    suite = find_suite(args.suite)
    expected = load_expected()
    files = [f.removesuffix(".py") for f in args.files]
    daemon = Moord(Path(tempfile.mkdtemp(prefix="moordc-", dir="/tmp")))
    scratch = Path(tempfile.mkdtemp(prefix="docker-py-"))
    try:
        prepare(daemon)
        junit = run_suite(suite, daemon, files, scratch, extra)
        if not junit.exists():
            print("conformance: the suite produced no report; moord's log ends:\n"
                  + daemon.log_tail())
            return 1
        outcomes = read_junit(junit)
    finally:
        if not args.keep:
            daemon.cleanup()
        shutil.rmtree(scratch, ignore_errors=True)
    ran = {o.file for o in outcomes} | set(files)
    verdict = judge(outcomes, expected, ran)
    print()
    print(f"docker-py {SUITE_NAME.rsplit('-', 1)[-1]} integration suite against moord (API {API_VERSION})")
    print(table(outcomes, expected))
    for o in verdict.unexpected:
        print(f"UNEXPECTED {o.status}: {o.test}: {o.message}")
    for test in verdict.fixed:
        print(f"NOW PASSING (remove from {EXPECTED_FILE.name}): {test}")
    for test in verdict.missing:
        print(f"listed but not run: {test}")
    if not outcomes:
        print("conformance: no test ran")
        return 1
    return 0 if verdict.ok else 1


__all__ = ["judge", "load_expected", "main", "read_junit", "table"]
