"""Image pull and delete: a ~50 MB multi-layer image from a registry on 127.0.0.1.

Run through run_bench.py (`--images yes`, the default, adds them; `--images only` runs
nothing else), so the engines are brought up and torn down like for the other measures.
A docker-registry 2.8 (Debian's `docker-registry`, the server the registry tests use,
`tests.support.registry.Registry`) is started without auth on 127.0.0.1, its storage under
the run's directory, and gets one image pushed straight over HTTP: `--image-layers` (6)
layers of `--image-layer-mib` (8) MiB of seeded random bytes each, gzip level 1, so about
50 MB to download, hash, decompress and write whatever the engine. Every engine pulls only
`127.0.0.1:<port>/bench/layers:v1`: nothing is pulled from anywhere else.

Clients: the docker CLI against moord and dockerd (both treat 127.0.0.0/8 as insecure, so
plain HTTP is fine); for Podman its own CLI, `podman --root … pull --tls-verify=false`,
with the same storage flags as the benchmark's `podman system service` (the docker CLI
against Podman's service would need a registries.conf entry for plain HTTP). Podman's
figures therefore include the podman binary opening the store, which is how Podman is used.

Per engine and round (engines take turns, the first rotating, as in measures.round_robin):

1. cold state: the image removed (`docker rmi`; `podman rmi` + `podman image prune -f`),
   untimed, then checked: its ID is not in `images -a`, and the engine's data root is
   back to within half a layer of its size before the first pull (the layers are gone,
   not only the name);
2. **pull, cold**: `docker pull REF` / `podman pull --tls-verify=false REF`;
3. **pull, up to date**: the same again with the image present: the manifest round trip
   and the engine's check that it holds everything;
4. **delete**: `docker rmi REF` / `podman rmi REF`, which removes the layers too (checked
   as in 1.).

Each time is the wall time of the whole CLI invocation. Beside it, CPU seconds: the
client process's (from its rusage: the podman CLI does Podman's work itself) and the
daemon's process tree's (utime + stime, reaped children included, from /proc).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import resource
import shlex
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from bench import report
from bench.engines import DOCKER_CLI, Engine, EngineError, Podman
from bench.measures import progress, rotated, summary

if TYPE_CHECKING:
    from tests.support.registry import Registry

REPO_PATH = "bench/layers"
TAG = "v1"
SEED = 20_240_613  # the same bytes in every run, so runs compare
CLI_TIMEOUT = 300.0
TICKS = os.sysconf("SC_CLK_TCK")
MEASURES = (
    ("pull", "pull, cold (image and layers absent)"),
    ("pull_present", "pull, image present (up to date)"),
    ("delete", "delete (`rmi` of the pulled image, layers included)"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """run_bench.py's options for these measures."""
    parser.add_argument("--images", choices=("no", "yes", "only"), default="yes",
                        help="image pull and delete from a registry on 127.0.0.1 (only: nothing else)")
    parser.add_argument("--image-runs", type=int, default=5,
                        help="timed pull/pull/rmi rounds per engine")
    parser.add_argument("--image-warmup", type=int, default=1,
                        help="untimed rounds first, per engine")
    parser.add_argument("--image-layers", type=int, default=6, help="layers in the pulled image")
    parser.add_argument("--image-layer-mib", type=int, default=8,
                        help="MiB of random bytes per layer (gzip does not shrink them)")


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.image_runs < 1 or args.image_warmup < 0:
        parser.error("--image-runs must be at least 1, --image-warmup not negative")
    if args.image_layers < 1 or args.image_layer_mib < 1:
        parser.error("--image-layers and --image-layer-mib must be at least 1")


# --- the clients ----------------------------------------------------------------------------------


@attrs.frozen
class Client:
    """How the benchmark drives one engine's images: the docker CLI, or Podman's own CLI."""

    engine: Engine

    @property
    def podman(self) -> bool:
        return isinstance(self.engine, Podman)

    @property
    def label(self) -> str:
        return "podman CLI" if self.podman else "docker CLI"

    def argv(self, *args: str) -> list[str]:
        if self.podman:
            service = self.engine.argv()
            # the service's own global flags (root, runroot, tmpdir, network config): same store
            return [*service[:service.index("system")], *args]
        return [DOCKER_CLI, *args]

    @property
    def env(self) -> dict[str, str]:
        return self.engine.daemon_env() if self.podman else self.engine.env

    def pull_args(self, ref: str) -> list[str]:
        return self.argv("pull", *(["--tls-verify=false"] if self.podman else []), ref)

    def rmi_args(self, ref: str) -> list[str]:
        return self.argv("rmi", ref)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """An untimed command; EngineError if it fails."""
        result = subprocess.run(self.argv(*args), env=self.env, capture_output=True, text=True,
                                timeout=CLI_TIMEOUT, check=False)
        if result.returncode != 0:
            raise EngineError(f"{self.label} {' '.join(args)}: exit {result.returncode}: "
                              f"{result.stderr.strip()[-300:]}")
        return result

    def image_ids(self) -> set[str]:
        """Every image the engine lists (`images -a`), as hex IDs without `sha256:`."""
        out = self.run("images", "-a", "-q", "--no-trunc").stdout
        return {line.strip().removeprefix("sha256:") for line in out.splitlines() if line.strip()}

    def remove(self, ref: str) -> None:
        """Make the image absent, whatever state a failed round left (untimed)."""
        if self.podman:
            self.run("rmi", "--ignore", ref)
            self.run("image", "prune", "-f")
        else:
            result = subprocess.run(self.argv("rmi", ref), env=self.env, capture_output=True,
                                    text=True, timeout=CLI_TIMEOUT, check=False)
            if result.returncode != 0 and "No such image" not in result.stderr:
                raise EngineError(f"docker rmi {ref}: {result.stderr.strip()[-300:]}")

    @property
    def data_root(self) -> Path:
        return self.engine.root / "data"


def data_root_bytes(path: Path) -> int:
    """Apparent size of the engine's data root (`du -sxb`: hard links once, one filesystem)."""
    out = subprocess.run(["du", "-sxb", str(path)], capture_output=True, text=True, check=False).stdout
    return int(out.split()[0]) if out.split() else 0


def daemon_cpu(engine: Engine) -> float:
    """utime + stime of the daemon's process tree, its reaped children included (s)."""
    ticks = 0
    for pid in engine.daemon_pids():
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            ticks += sum(int(f) for f in fields[11:15])
    return ticks / TICKS


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- the samples ----------------------------------------------------------------------------------


@attrs.define
class Timing:
    """One measure on one engine: wall times and CPU of the successful runs, errors of the rest."""

    ms: list[float] = attrs.field(factory=list)
    client_cpu_s: list[float] = attrs.field(factory=list)
    daemon_cpu_s: list[float] = attrs.field(factory=list)
    errors: list[str] = attrs.field(factory=list)


@attrs.define
class EngineImages:
    """One engine's rounds, and what its data root held at each step (bytes over the baseline)."""

    client: Client
    timings: dict[str, Timing] = attrs.field(factory=lambda: {key: Timing() for key, _ in MEASURES})
    baseline_bytes: int | None = None
    present_bytes: list[int] = attrs.field(factory=list)  # growth with the image pulled
    left_bytes: list[int] = attrs.field(factory=list)  # growth after the timed delete
    reclaimed_ms: list[float] = attrs.field(factory=list)  # rmi start until the space is free
    still_listed: int = 0  # deletes after which `images -a` still listed the image
    error: str | None = None


@attrs.frozen
class Sample:
    ms: float
    client_cpu_s: float
    daemon_cpu_s: float
    error: str | None
    stdout: str


def timed(client: Client, argv: list[str]) -> Sample:
    """Wall time and CPU of one CLI invocation (the environment is built before the clock)."""
    env = client.env
    cpu_before, daemon_before = _children_cpu(), daemon_cpu(client.engine)
    started = time.perf_counter()
    try:
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT,
                                check=False)
        error = (None if result.returncode == 0
                 else f"exit {result.returncode}: {result.stderr.strip()[-300:]}")
        stdout = result.stdout
    except subprocess.TimeoutExpired:
        error, stdout = f"timed out after {CLI_TIMEOUT:.0f} s", ""
    elapsed = (time.perf_counter() - started) * 1000
    return Sample(elapsed, _children_cpu() - cpu_before, daemon_cpu(client.engine) - daemon_before,
                  error, stdout)


def record(timing: Timing, sample: Sample, keep: bool) -> bool:
    """Add a sample (warm-ups are dropped); whether it succeeded."""
    if keep and sample.error is None:
        timing.ms.append(sample.ms)
        timing.client_cpu_s.append(sample.client_cpu_s)
        timing.daemon_cpu_s.append(sample.daemon_cpu_s)
    elif keep:
        timing.errors.append(sample.error or "")
    return sample.error is None


# --- one round ------------------------------------------------------------------------------------


@attrs.frozen
class Pushed:
    """The image in the registry: what the engines pull and how big it is."""

    ref: str
    image_id: str  # hex of the config digest: the image ID on every engine
    layers: int
    compressed_bytes: int
    uncompressed_bytes: int


def cold(state: EngineImages, image: Pushed) -> None:
    """Remove the image; check it is neither listed nor left in the data root."""
    client = state.client
    client.remove(image.ref)
    if image.image_id in client.image_ids():
        raise EngineError(f"{client.engine.name}: image {image.image_id[:12]} still listed after rmi")
    if state.baseline_bytes is None:
        state.baseline_bytes = data_root_bytes(client.data_root)
        return
    grown = data_root_bytes(client.data_root) - state.baseline_bytes
    if grown > half_layer(image):
        raise EngineError(f"{client.engine.name}: data root still {grown / 1e6:.1f} MB over its size "
                          "before the first pull after removing the image: layers not gone")


def half_layer(image: Pushed) -> int:
    """More left than this after a delete means at least one layer was kept."""
    return image.uncompressed_bytes // image.layers // 2


def one_round(state: EngineImages, image: Pushed, keep: bool) -> None:
    """Cold state, cold pull, pull again, delete; the checks between them are untimed."""
    client = state.client
    cold(state, image)
    pull, again, delete = (state.timings[key] for key, _ in MEASURES)
    if not record(pull, timed(client, client.pull_args(image.ref)), keep):
        return
    if image.image_id not in client.image_ids():
        pull.errors.append("pull succeeded but the image is not listed")
        return
    assert state.baseline_bytes is not None
    if keep:
        state.present_bytes.append(data_root_bytes(client.data_root) - state.baseline_bytes)
    record(again, timed(client, client.pull_args(image.ref)), keep)
    started = time.perf_counter()
    if not record(delete, timed(client, client.rmi_args(image.ref)), keep):
        return
    if keep:
        state.left_bytes.append(data_root_bytes(client.data_root) - state.baseline_bytes)
        state.reclaimed_ms.append(until_reclaimed(state, image, started))
        if image.image_id in client.image_ids():
            state.still_listed += 1


def until_reclaimed(state: EngineImages, image: Pushed, started: float) -> float:
    """ms from the start of `rmi` until the data root is back within half a layer of its
    baseline: an engine that deletes files after answering (moord) pays here."""
    assert state.baseline_bytes is not None
    deadline = started + 30
    while time.perf_counter() < deadline:
        if data_root_bytes(state.client.data_root) - state.baseline_bytes <= half_layer(image):
            break
        time.sleep(0.002)
    return (time.perf_counter() - started) * 1000


def measure(states: list[EngineImages], image: Pushed, runs: int, warmup: int) -> None:
    """warmup + runs rounds; engines take turns within each. An engine that fails a check
    (image still there after a delete) is dropped from the rounds that follow."""
    for i in range(warmup + runs):
        progress(f"images: warm-up {i + 1}/{warmup}" if i < warmup
                 else f"images: round {i - warmup + 1}/{runs}")
        live = [s for s in states if s.error is None]
        by_engine = {s.client.engine.name: s for s in live}
        for engine in rotated([s.client.engine for s in live], i):
            state = by_engine[engine.name]
            try:
                one_round(state, image, keep=i >= warmup)
            except (EngineError, subprocess.TimeoutExpired) as e:
                state.error = str(e)[-400:]


# --- the registry and the image -------------------------------------------------------------------


def push_image(registry: Registry, layers: int, layer_mib: int) -> Pushed:
    """Generate the seeded layers and push them with a docker schema2 manifest."""
    from tests.support.registry import make_image, random_layers

    blobs = random_layers(SEED, layers, layer_mib << 20)
    pushed = make_image(registry, REPO_PATH, TAG, blobs, manifest_format="docker")
    return Pushed(ref=pushed.ref, image_id=pushed.config_digest.removeprefix("sha256:"),
                  layers=layers, compressed_bytes=sum(pushed.layer_sizes),
                  uncompressed_bytes=sum(len(gzip.decompress(b)) for b in blobs))


def registry_version() -> str:
    from tests.support.registry import REGISTRY_BINARY

    result = subprocess.run([REGISTRY_BINARY, "--version"], capture_output=True, text=True, check=False)
    return " ".join(result.stdout.split()[1:]) or "unknown"


def run(engines: list[Engine], args: argparse.Namespace, result: dict[str, Any], run_root: Path) -> None:
    """Start the registry, push the image, measure every engine; figures go to result["images"]."""
    try:
        from tests.support.registry import REGISTRY_BINARY, Registry
    except ImportError as e:  # pytest, httpx or cryptography missing: the venv lacks the dev extra
        result["images"] = {"skipped": f"tests.support.registry cannot be imported: {e}"}
        return
    if not os.access(REGISTRY_BINARY, os.X_OK):
        result["images"] = {"skipped": f"{REGISTRY_BINARY} is missing (apt-get install docker-registry)"}
        return
    registry = Registry(auth="none", root=run_root / "registry")
    states = [EngineImages(Client(e)) for e in engines]
    image: Pushed | None = None
    try:
        progress("images: starting docker-registry on 127.0.0.1")
        registry.start()
        progress(f"images: pushing {args.image_layers} layers of {args.image_layer_mib} MiB")
        image = push_image(registry, args.image_layers, args.image_layer_mib)
        measure(states, image, args.image_runs, args.image_warmup)
    except (RuntimeError, OSError, subprocess.CalledProcessError, AssertionError) as e:
        result["notes"].append(f"image measures stopped: {e}")
    finally:
        if image is not None:
            for state in states:  # the next measure's engines should not carry 50 MB each
                with contextlib.suppress(EngineError, subprocess.TimeoutExpired):
                    state.client.remove(image.ref)
        registry.cleanup()
    if args.images == "only":
        result["notes"].append("--images only: the run, detached, network, supervision and log "
                               "measures were not taken.")
    result["images"] = to_json(states, image, args, registry_version())


# --- JSON and the report --------------------------------------------------------------------------


def _cpu(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def timing_json(t: Timing) -> dict[str, Any]:
    return {**summary(t.ms), "samples_ms": [round(x, 1) for x in t.ms],
            "client_cpu_s_median": _cpu(t.client_cpu_s), "daemon_cpu_s_median": _cpu(t.daemon_cpu_s),
            "errors": t.errors}


def to_json(states: list[EngineImages], image: Pushed | None, args: argparse.Namespace,
            registry: str) -> dict[str, Any]:
    engines: dict[str, Any] = {}
    for s in states:
        engines[s.client.engine.name] = {
            "client": s.client.label,
            "pull_command": shlex.join(s.client.pull_args("REF")),
            "measures": {key: timing_json(s.timings[key]) for key, _ in MEASURES},
            "baseline_bytes": s.baseline_bytes,
            "present_bytes": s.present_bytes,
            "left_after_delete_bytes": s.left_bytes,
            "reclaimed_ms": s.reclaimed_ms,
            "still_listed_after_delete": s.still_listed,
            "error": s.error,
        }
    ratios: dict[str, dict[str, float | None]] = {}
    moord = engines.get("moord")
    for key, _ in MEASURES:
        mine = moord["measures"][key].get("median_ms") if moord else None
        ratios[key] = {f"moord/{name}": report.ratio(mine, e["measures"][key].get("median_ms"))
                       for name, e in engines.items() if name != "moord"}
    return {
        "registry": f"docker-registry {registry} on 127.0.0.1, no auth",
        "image": attrs.asdict(image) if image else None,
        "seed": SEED,
        "runs": args.image_runs,
        "warmup": args.image_warmup,
        "engines": engines,
        "ratios": ratios,
    }


def markdown(result: dict[str, Any]) -> str:
    """The image section of the report (empty if it did not run)."""
    images = result.get("images")
    if not images:
        return ""
    lines = ["### Image pull and delete", ""]
    if images.get("skipped"):
        return "\n".join([*lines, f"Skipped: {images['skipped']}.", ""]) + "\n"
    image = images.get("image")
    if not image:
        return "\n".join([*lines, "The image could not be pushed (see the notes).", ""]) + "\n"
    lines += [
        f"`{image['ref']}` from {images['registry']}: {image['layers']} layers of random bytes, "
        f"{image['compressed_bytes'] / 1e6:.1f} MB gzip, {image['uncompressed_bytes'] / 1e6:.1f} MB "
        f"unpacked. {images['runs']} rounds per engine after {images['warmup']} untimed, engines "
        "taking turns; each round: image and layers removed and checked gone (untimed), cold pull, "
        "pull again (up to date), `rmi`. Wall time of the whole CLI invocation; CPU s median: the "
        "engine's daemon tree / the client process (the podman CLI does Podman's work itself).",
        "",
        "| measure | engine (client) | n | median ms | min-max ms | CPU s daemon / client | moord/engine |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += timing_rows(images, MEASURES)
    lines += ["", "| engine | data root growth with the image, MB | left right after `rmi`, MB (max) | "
              "`rmi` start until the space is free, median ms (includes one `du`) | "
              "image listed after `rmi` |", "|---|---|---|---|---|"]
    for name, e in images["engines"].items():
        present, left = e["present_bytes"], e["left_after_delete_bytes"]
        reclaimed = e.get("reclaimed_ms") or []
        grown = f"{statistics.median(present) / 1e6:.1f}" if present else "—"
        kept = f"{max(left) / 1e6:.2f}" if left else "—"
        freed = report.fmt_ms(statistics.median(reclaimed)) if reclaimed else "—"
        lines.append(f"| {name} | {grown} | {kept} | {freed} | "
                     f"{e['still_listed_after_delete'] or 'never'} |")
    lines.append("")
    for name, e in images["engines"].items():
        if e.get("error"):
            lines.append(f"- {name}: stopped: {e['error']}")
        for key, title in MEASURES:
            errors = e["measures"][key].get("errors")
            if errors:
                lines.append(f"- {name}, {title}: {len(errors)} failed; first: {errors[0]}")
    return "\n".join([*lines, ""]) + "\n"


def timing_rows(section: dict[str, Any], measures: Sequence[tuple[str, str]]) -> list[str]:
    """The table rows of a section whose engines carry `timing_json` measures (images,
    builds): per measure, one row per engine with its client, n, median, spread, CPU
    seconds of daemon and client, and moord's ratio."""
    rows = []
    for key, title in measures:
        first = True
        for name, e in section["engines"].items():
            m = e["measures"][key]
            rel = "—" if name == "moord" else report.fmt_ratio(section["ratios"][key].get(f"moord/{name}"))
            failed = f", {len(m['errors'])} failed" if m.get("errors") else ""
            spread = f"{report.fmt_ms(m.get('min_ms'))}{report.DASH}{report.fmt_ms(m.get('max_ms'))}"
            cpu = f"{_fmt_s(m.get('daemon_cpu_s_median'))} / {_fmt_s(m.get('client_cpu_s_median'))}"
            rows.append(f"| {title if first else ''} | {name} ({e['client']}) | {m.get('n', 0)}{failed} | "
                        f"{report.fmt_ms(m.get('median_ms'))} | {spread} | {cpu} | {rel} |")
            first = False
    return rows


def _fmt_s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"
