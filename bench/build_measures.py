"""Image builds: a 10-step Dockerfile on busybox, cold, fully cached, and with --no-cache.

Run through run_bench.py (`--builds yes`, the default, adds them; `--builds only` runs
nothing else), so the engines are brought up and torn down like for the other measures.
Every engine builds the same context (written once under the run's directory: a Dockerfile,
a small manifest and `--build-files` small text files) on the busybox every engine already
has from the bench's `docker import`, so nothing is pulled.

Clients: the docker CLI with `DOCKER_BUILDKIT=0` against moord and dockerd (the classic
builder: every step an image, the cache made of those images); for Podman its own CLI with
the service's storage flags, `podman … build --layers` (buildah underneath; `--layers` keeps
an image per step, which is what its cache is), plus the ulimits Podman needs on this host.

Per engine and round (engines take turns, the first rotating, as in measures.round_robin):

1. cold state, untimed: the tag removed, then every image that was not there before the
   first build (intermediate images included: they are the cache) removed too, moord's
   build cache emptied (`POST /build/prune`), and checked: `images -a` is back to what it was
   before the first build;
2. **cold build**: `build -t benchbuild:N CTX` with no cache; its output must show no step
   taken from the cache; the first built image is run once (untimed) and must print how many
   files its RUN found, so the steps really ran;
3. **cached rebuild**: the same again; every step after FROM must say `Using cache`;
4. **--no-cache**: `build --no-cache -t benchbuild:N CTX` with the cache present (the other
   cold measure: nothing is removed first, every step runs again).

Each time is the wall time of the whole CLI invocation, context upload included. Beside it,
CPU seconds of the daemon's process tree and of the client (the podman CLI builds itself).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import attrs

from bench import report
from bench.engines import Engine, EngineError, Moord
from bench.image_measures import (
    CLI_TIMEOUT,
    Client,
    Timing,
    record,
    timed,
    timing_json,
    timing_rows,
)
from bench.measures import progress, rotated

TAG = "benchbuild"
MEASURES = (
    ("cold", "cold build (cache emptied)"),
    ("cached", "rebuild, fully cached"),
    ("no_cache", "`--no-cache` build (cache present)"),
)
DOCKERFILE = """\
FROM busybox
WORKDIR /app
ARG BENCH_NOTE=classic
ENV APP_ENV=bench APP_NOTE=$BENCH_NOTE
COPY manifest.txt ./
RUN mkdir -p gen && for i in 1 2 3 4 5; do echo "$i $APP_NOTE" > gen/f$i; done && cat manifest.txt > gen/list
COPY . .
RUN find /app -type f | wc -l > /tmp/count && mv /tmp/count /app/count && du -s /app > /app/size
EXPOSE 8080
CMD ["sh", "-c", "cat /app/count"]
"""
STEPS = sum(1 for line in DOCKERFILE.splitlines() if line.strip())
CACHED = re.compile(r"Using cache")  # docker: ` ---> Using cache`; podman: `--> Using cache <id>`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """run_bench.py's options for these measures."""
    parser.add_argument("--builds", choices=("no", "yes", "only"), default="yes",
                        help="image builds: cold, cached, --no-cache (only: nothing else)")
    parser.add_argument("--build-runs", type=int, default=10,
                        help="timed cold/cached/no-cache rounds per engine")
    parser.add_argument("--build-warmup", type=int, default=1,
                        help="untimed rounds first, per engine")
    parser.add_argument("--build-files", type=int, default=36,
                        help="small files in the build context besides the Dockerfile and manifest")


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.build_runs < 1 or args.build_warmup < 0 or args.build_files < 0:
        parser.error("--build-runs must be at least 1, --build-warmup and --build-files not negative")


# --- the client and the context -------------------------------------------------------------------


@attrs.frozen
class BuildClient(Client):
    """image_measures' client, with the docker CLI held to the classic builder."""

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        return env if self.podman else {**env, "DOCKER_BUILDKIT": "0"}

    def build_args(self, tag: str, context: Path, *options: str) -> list[str]:
        # podman: --layers so each step is kept and reused; ulimits as for `run` (PODMAN_ULIMITS)
        extra = ["--layers", *self.engine.run_args] if self.podman else []
        return self.argv("build", *extra, *options, "-t", tag, str(context))

    def prune_build_cache(self) -> None:
        """moord's own build cache (step keys → images): emptied through its API."""
        if not isinstance(self.engine, Moord):
            return
        result = subprocess.run(["curl", "-sS", "-f", "--unix-socket", str(self.engine.socket_path),
                                 "-X", "POST", "http://moord/build/prune"],
                                capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False)
        if result.returncode != 0:
            raise EngineError(f"moord POST /build/prune: {result.stderr.strip()[-300:]}")


def write_context(root: Path, files: int) -> Path:
    """The build context: Dockerfile, a manifest naming the files, and the small files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(DOCKERFILE)
    names = [f"src/part{i:02d}.txt" for i in range(files)]
    (root / "src").mkdir(exist_ok=True)
    for i, name in enumerate(names):
        (root / name).write_text(f"file {i}\n" + "bench line\n" * (8 + i % 24))
    (root / "manifest.txt").write_text("".join(f"{name}\n" for name in names))
    return root


# --- the samples ----------------------------------------------------------------------------------


@attrs.define
class EngineBuilds:
    """One engine's rounds, its images before the first build, and what went wrong."""

    client: BuildClient
    timings: dict[str, Timing] = attrs.field(factory=lambda: {key: Timing() for key, _ in MEASURES})
    baseline: set[str] | None = None  # `images -a` IDs before any build
    cached_steps: list[int] = attrs.field(factory=list)  # `Using cache` lines per cached rebuild
    cleaned_images: list[int] = attrs.field(factory=list)  # images removed for each cold state
    image_checked: str | None = None  # what the first built image printed, once it matched
    error: str | None = None


def cold(state: EngineBuilds, tag: str) -> None:
    """Remove the tag and every image the builds made; empty moord's cache; check."""
    client = state.client
    if state.baseline is None:
        state.baseline = client.image_ids()
    before = client.image_ids()
    client.remove(tag)
    for _ in range(10):  # children before parents: each pass frees the next generation
        left = client.image_ids() - state.baseline
        if not left:
            break
        client.run("image", "prune", "-f")
        for image_id in sorted(left & client.image_ids()):
            subprocess.run(client.argv("rmi", image_id), env=client.env, capture_output=True,
                           timeout=CLI_TIMEOUT, check=False)
    client.prune_build_cache()
    left = client.image_ids() - state.baseline
    if left:
        raise EngineError(f"{client.engine.name}: {len(left)} built images still listed after "
                          f"removing them: {sorted(x[:12] for x in left)}")
    missing = state.baseline - client.image_ids()
    if missing:
        raise EngineError(f"{client.engine.name}: lost images of before the builds: {sorted(missing)}")
    state.cleaned_images.append(len(before - state.baseline))


def one_round(state: EngineBuilds, context: Path, tag: str, keep: bool) -> None:
    """Cold state, cold build, cached rebuild, --no-cache build; checks between them untimed."""
    client = state.client
    cold(state, tag)
    first, again, fresh = (state.timings[key] for key, _ in MEASURES)
    sample = timed(client, client.build_args(tag, context))
    if sample.error is None and CACHED.search(sample.stdout):
        sample = attrs.evolve(sample, error="the cold build used the cache")
    if not record(first, sample, keep):
        return
    if state.image_checked is None:
        state.image_checked = check_image(client, tag, context)
    sample = timed(client, client.build_args(tag, context))
    hits = len(CACHED.findall(sample.stdout))
    if sample.error is None and hits < STEPS - 1:
        sample = attrs.evolve(sample, error=f"only {hits} of {STEPS - 1} steps from the cache")
    if keep:
        state.cached_steps.append(hits)
    record(again, sample, keep)
    sample = timed(client, client.build_args(tag, context, "--no-cache"))
    if sample.error is None and CACHED.search(sample.stdout):
        sample = attrs.evolve(sample, error="the --no-cache build used the cache")
    record(fresh, sample, keep)


def expected_count(context: Path) -> int:
    """What the image's CMD prints: the files under /app when the second RUN looked (its
    count goes to /tmp first: a redirection straight into /app races `find`)."""
    return sum(1 for p in context.rglob("*") if p.is_file()) + 6  # gen/f1..f5 and gen/list


def check_image(client: BuildClient, tag: str, context: Path) -> str:
    """Run the built image once (untimed): the steps really ran and the files are there."""
    out = client.run("run", "--rm", "--network", "none", *client.engine.run_args, tag).stdout.strip()
    if out != str(expected_count(context)):
        raise EngineError(f"{client.engine.name}: the built image printed {out!r}, "
                          f"expected {expected_count(context)} files")
    return out


def measure(states: list[EngineBuilds], context: Path, runs: int, warmup: int) -> None:
    """warmup + runs rounds; engines take turns within each. An engine whose cold state
    cannot be reached is dropped from the rounds that follow."""
    for i in range(warmup + runs):
        progress(f"builds: warm-up {i + 1}/{warmup}" if i < warmup
                 else f"builds: round {i - warmup + 1}/{runs}")
        live = [s for s in states if s.error is None]
        by_engine = {s.client.engine.name: s for s in live}
        for engine in rotated([s.client.engine for s in live], i):
            state = by_engine[engine.name]
            try:
                one_round(state, context, f"{TAG}:{i + 1}", keep=i >= warmup)
            except (EngineError, subprocess.TimeoutExpired) as e:
                state.error = str(e)[-400:]


def run(engines: list[Engine], args: argparse.Namespace, result: dict[str, Any], run_root: Path) -> None:
    """Write the context, measure every engine; figures go to result["builds"]."""
    context = write_context(run_root / "build-context", args.build_files)
    states = [EngineBuilds(BuildClient(e)) for e in engines]
    try:
        measure(states, context, args.build_runs, args.build_warmup)
    finally:
        for state in states:  # leave no built images to the measures that follow
            with contextlib.suppress(EngineError, subprocess.TimeoutExpired):
                if state.baseline is not None:
                    cold(state, f"{TAG}:0")
    if args.builds == "only":
        result["notes"].append("--builds only: the run, detached, network, supervision, log and "
                               "image measures were not taken.")
    result["builds"] = to_json(states, context, args)


# --- JSON and the report --------------------------------------------------------------------------


def to_json(states: list[EngineBuilds], context: Path, args: argparse.Namespace) -> dict[str, Any]:
    engines: dict[str, Any] = {}
    for s in states:
        engines[s.client.engine.name] = {
            "client": s.client.label,
            "build_command": shlex.join(s.client.build_args(f"{TAG}:N", Path("CTX"))),
            "env": {"DOCKER_BUILDKIT": "0"} if not s.client.podman else {},
            "measures": {key: timing_json(s.timings[key]) for key, _ in MEASURES},
            "cached_steps": s.cached_steps,
            "images_removed_per_cold_state": s.cleaned_images,
            "image_check": s.image_checked,
            "error": s.error,
        }
    ratios: dict[str, dict[str, float | None]] = {}
    moord = engines.get("moord")
    for key, _ in MEASURES:
        mine = moord["measures"][key].get("median_ms") if moord else None
        ratios[key] = {f"moord/{name}": report.ratio(mine, e["measures"][key].get("median_ms"))
                       for name, e in engines.items() if name != "moord"}
    files = sorted(p for p in context.rglob("*") if p.is_file())
    return {
        "dockerfile": DOCKERFILE,
        "steps": STEPS,
        "context_files": len(files),
        "context_bytes": sum(p.stat().st_size for p in files),
        "runs": args.build_runs,
        "warmup": args.build_warmup,
        "engines": engines,
        "ratios": ratios,
        "target": "cached rebuild: moord under half of dockerd's time (moord/dockerd < 0.5)",
    }


def markdown(result: dict[str, Any]) -> str:
    """The build section of the report (empty if it did not run)."""
    builds = result.get("builds")
    if not builds:
        return ""
    lines = [
        "### Image builds",
        "",
        f"A {builds['steps']}-step Dockerfile on busybox (WORKDIR, ARG, ENV, COPY of a manifest, RUN, "
        f"COPY . ., RUN, EXPOSE, CMD), context of {builds['context_files']} files, "
        f"{builds['context_bytes'] / 1000:.1f} kB. {builds['runs']} rounds per engine after "
        f"{builds['warmup']} untimed, engines taking turns; each round: built images and cache "
        "removed and checked gone (untimed), cold build, the same build again (every step from the "
        "cache, checked), `--no-cache` build. docker CLI with `DOCKER_BUILDKIT=0` (moord, dockerd); "
        "`podman build --layers` (Podman). Wall time of the whole CLI invocation; CPU s median: the "
        "engine's daemon tree / the client process (the podman CLI builds itself).",
        "",
        "| measure | engine (client) | n | median ms | min-max ms | CPU s daemon / client | moord/engine |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += timing_rows(builds, MEASURES)
    target = builds["ratios"]["cached"].get("moord/dockerd")
    if target is not None:
        verdict = "met" if target < 0.5 else "not met"
        lines += ["", f"Target, cached rebuild under half of dockerd's time: "
                      f"{report.fmt_ratio(target)}, {verdict}."]
    lines.append("")
    for name, e in builds["engines"].items():
        if e.get("error"):
            lines.append(f"- {name}: stopped: {e['error']}")
        for key, title in MEASURES:
            errors = e["measures"][key].get("errors")
            if errors:
                lines.append(f"- {name}, {title}: {len(errors)} failed; first: {errors[0]}")
    return "\n".join([*lines, ""]) + "\n"

