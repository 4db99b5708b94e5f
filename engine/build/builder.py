"""The classic builder: a parsed Dockerfile, step by step, into images.

Every step makes an image, as Docker's classic builder does: metadata instructions
(ENV, LABEL, CMD, …) a new config over the same layers (an `empty_layer` history
entry); RUN a container from the previous image, through the same runtime path as
`docker run`, whose writable layer is committed; COPY and ADD a layer written
straight from the build context (or another stage's files). Each step's image is
recorded in the build cache under its parent, its text (variables substituted, build
args in scope) and, for COPY/ADD, the content hash of its files; a later build finds
it there (` ---> Using cache`), also after a moord restart.

Output is the classic builder's: `Step N/M : …`, ` ---> <id>`, RUN's output as it
comes, `Removing intermediate container …`, `Successfully built …`, `Successfully
tagged …`. Intermediate containers are removed whether the step worked or not, so a
failed build leaves no container or mount behind (Docker keeps a failed step's
container unless `--force-rm`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import itertools
import json
import logging
import os
import secrets
import shutil
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from engine.build import copying
from engine.build.cache import BuildCache, step_key
from engine.build.cachefrom import CacheSources, layers_in
from engine.build.rootfs import dir_stat, mounted_image, path_kind
from engine.containers.commit import commit_upper
from engine.containers.model import ContainerSpec, HostSpec
from engine.dockerfile import (
    Add,
    Arg,
    Cmd,
    Copy,
    Dockerfile,
    Env,
    Instruction,
    Maintainer,
    Run,
    Stage,
    Workdir,
    parse_instruction,
)
from engine.dockerfile.substitution import ArgScope, expand
from engine.errors import EngineError, InvalidParameter, NotFound
from engine.images import ociconfig
from engine.images.changes import DEFAULT_SHELL, apply_instruction, set_env
from engine.images.importer import parse_platform
from engine.images.model import HistoryEntry, Image, ImageConfig
from engine.images.reference import Reference, parse
from engine.images.upperdir import LayerTar
from engine.limits import Resources
from engine.logs.k8sfile import LogLine
from engine.logs.reader import LogQuery, read_logs
from engine.runtime.spec import DEFAULT_PATH_ENV
from engine.runtime.users import resolve_user

if TYPE_CHECKING:
    from engine.containers.manager import ContainerManager
    from engine.images.store import ImageStore
    from engine.registry.auth import Credentials
    from engine.registry.service import RegistryService

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], Awaitable[None]]
_NOP = "/bin/sh -c #(nop) "
#: what dockerd's build stream wraps a RUN's stderr in (ANSI bright red, then reset)
_STDERR_START, _STDERR_END = "\x1b[91m", "\x1b[0m"


class StepFailed(EngineError):
    """A step did not work (a RUN's non-zero exit, a missing file): the build stops.

    `exit_code` is a RUN's non-zero status, which dockerd puts in the stream's
    `errorDetail` as `code`."""

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@attrs.frozen
class BuildOptions:
    tags: tuple[Reference, ...] = ()
    build_args: dict[str, str] = attrs.field(factory=dict)
    labels: dict[str, str] = attrs.field(factory=dict)
    no_cache: bool = False
    pull: bool = False
    target: str = ""
    network_mode: str = "default"  # RUN containers': default, none, host, a network
    extra_hosts: tuple[str, ...] = ()  # `--add-host` entries for RUN containers
    limits: Resources = attrs.field(factory=Resources)  # `--memory`, `--cpu-shares` … for RUN
    shm_size: int = 0  # RUN containers' /dev/shm; 0: the default
    cache_from: tuple[str, ...] = ()  # images whose steps alone may be reused (if any)
    quiet: bool = False
    credentials: dict[str, Credentials] = attrs.field(factory=dict)


@attrs.define
class _Stage:
    image: Image
    config: ImageConfig
    scope: ArgScope
    cmd_set: bool = False  # a CMD in this stage: a later ENTRYPOINT keeps it


def _copy_config(config: ImageConfig) -> ImageConfig:
    return attrs.evolve(config, env=list(config.env), labels=dict(config.labels),
                        exposed_ports=list(config.exposed_ports), volumes=list(config.volumes),
                        on_build=list(config.on_build))


def _scratch() -> Image:
    return Image(id="", config=ImageConfig(), diff_ids=[],
                 created=dt.datetime.now(dt.UTC))


class Builder:
    def __init__(self, containers: ContainerManager, images: ImageStore,
                 registry: RegistryService | None, cache: BuildCache, scratch: Path) -> None:
        self.containers = containers
        self.images = images
        self.registry = registry
        self.cache = cache
        self.scratch = scratch

    async def build(self, dockerfile: Dockerfile, context: Path, options: BuildOptions,
                    emit: Emit) -> Image:
        run = _Run(self, dockerfile, context, options, emit)
        return await run.all()


@attrs.define
class _Run:
    """One build: its counters, stages and output."""

    b: Builder
    dockerfile: Dockerfile
    context: Path
    options: BuildOptions
    emit: Emit
    step: int = 0
    stages: dict[str, Image] = attrs.field(factory=dict)
    sources: CacheSources | None = None  # with `--cache-from`: what may be reused

    async def say(self, text: str) -> None:
        if not self.options.quiet:
            await self.emit({"stream": text})

    async def all(self) -> Image:
        df = self.dockerfile
        if self.options.cache_from:
            self.sources = CacheSources.resolve(self.b.images, self.options.cache_from)
        stages = list(df.stages)
        if self.options.target:
            chosen = df.stage(self.options.target)
            if chosen is None:
                raise InvalidParameter(
                    f"failed to reach build target {self.options.target} in Dockerfile")
            stages = stages[: chosen.index + 1]
        labels = sorted(self.options.labels.items())
        total = (len(df.args_before_from) + sum(1 + len(s.instructions) for s in stages)
                 + len(labels))
        scope = ArgScope(build_args=self.options.build_args)
        for arg in df.args_before_from:
            self.step += 1
            await self.say(f"Step {self.step}/{total} : {arg.original}\n")
            values = scope.meta_values()
            for name, default in arg.pairs:
                scope = scope.declare_meta(
                    name, None if default is None else expand(default, values, escape=df.escape))
        image: Image | None = None
        for stage in stages:
            # dockerd adds each `--label` to the last stage as a LABEL step of its own
            image = await self._stage(stage, scope, total,
                                      labels if stage is stages[-1] else [])
            self.stages[str(stage.index)] = image
            if stage.name:
                self.stages[stage.name] = image
        assert image is not None
        await self.emit({"aux": {"ID": image.id}})
        if self.options.quiet:
            await self.emit({"stream": f"{image.id}\n"})
        await self.say(f"Successfully built {image.short_id}\n")
        for ref in self.options.tags:
            await self.b.images.add_reference(image.id, ref)
            await self.say(f"Successfully tagged {ref.familiar()}\n")
        return image

    # stages --------------------------------------------------------------------------
    async def _stage(self, stage: Stage, meta: ArgScope, total: int,
                     labels: list[tuple[str, str]]) -> Image:
        self.step += 1
        await self.say(f"Step {self.step}/{total} : {stage.from_.original}\n")
        base = expand(stage.base, meta.meta_values(), escape=self.dockerfile.escape)
        image = await self._base(base)
        if image.id:
            await self.say(f" ---> {image.short_id}\n")
        config = _copy_config(image.config)
        if not any(e.startswith("PATH=") for e in config.env):
            config.env.append(f"PATH={DEFAULT_PATH_ENV}")  # as dockerd starts a stage
        state = _Stage(image, config, meta.enter_stage(config.env))
        if image.config.on_build:
            await self.say(f"# Executing {len(image.config.on_build)} build trigger"
                           f"{'s' if len(image.config.on_build) > 1 else ''}\n")
            for trigger in image.config.on_build:
                ins = parse_instruction(trigger, escape=self.dockerfile.escape)
                state.image = await self._instruction(state, ins)
            state.config = _copy_config(state.image.config)
            state.config.on_build = []
            state.image = await self._config_image(state.image, state.config, "ONBUILD (triggers run)")
        for ins in stage.instructions:
            self.step += 1
            await self.say(f"Step {self.step}/{total} : {ins.original}\n")
            state.image = await self._instruction(state, ins)
            await self.say(f" ---> {state.image.short_id}\n")
        for key, value in labels:  # taken as they are: no variable expansion
            self.step += 1
            await self.say(f"Step {self.step}/{total} : LABEL {key}={value}\n")
            state.config.labels[key] = value
            state.image = await self._cached_config(state, f"LABEL {key}={value}")
            await self.say(f" ---> {state.image.short_id}\n")
        if not state.image.id:
            raise StepFailed("no image was made: a stage FROM scratch needs at least one step")
        return state.image

    async def _base(self, name: str) -> Image:
        if name.lower() == "scratch":
            return _scratch()
        if name.lower() in self.stages:
            return self.stages[name.lower()]
        ref = parse(name)
        if not self.options.pull:
            try:
                return self.b.images.resolve(name)
            except NotFound:
                pass
        return await self._pull(ref)

    async def _pull(self, ref: Reference) -> Image:
        if self.b.registry is None:
            raise NotFound(f"No such image: {ref.familiar()}")
        puller = self.b.registry.puller
        plan = await puller.resolve(ref, parse_platform(""),
                                    self.options.credentials.get(ref.domain))
        await self.say(f"{plan.tag_or_digest}: Pulling from {ref.path}\n")

        def quiet(_p: object) -> None:
            pass

        image, _ = await puller.fetch(plan, quiet)
        await self.say(f"Digest: {plan.manifest_digest}\nStatus: Downloaded newer image for "
                       f"{ref.familiar()}\n")
        return image

    # one instruction -----------------------------------------------------------------
    def _expand(self, state: _Stage, text: str) -> str:
        return expand(text, state.scope.values(), escape=self.dockerfile.escape)

    async def _instruction(self, state: _Stage, ins: Instruction) -> Image:
        if isinstance(ins, Arg):
            state.scope = state.scope.apply_arg(list(ins.pairs), escape=self.dockerfile.escape)
            return await self._cached_config(state, ins.original)
        if isinstance(ins, Env):
            pairs = state.scope.env_pairs(list(ins.pairs), escape=self.dockerfile.escape)
            for name, value in pairs:
                state.scope = state.scope.set_env(name, value)
                set_env(state.config.env, name, value)
            return await self._cached_config(
                state, "ENV " + " ".join(f"{k}={v}" for k, v in pairs))
        if isinstance(ins, Run):
            return await self._run(state, ins)
        if isinstance(ins, (Copy, Add)):
            return await self._copy(state, ins)
        if isinstance(ins, Workdir):
            return await self._workdir(state, ins)
        self._apply_metadata(state, ins)
        return await self._cached_config(state, ins.original)

    def _apply_metadata(self, state: _Stage, ins: Instruction) -> None:
        if isinstance(ins, Maintainer):
            return  # recorded as the image's author below
        apply_instruction(state.config, ins, state.scope.values(), escape=self.dockerfile.escape,
                          cmd_set=state.cmd_set)
        state.cmd_set = state.cmd_set or isinstance(ins, Cmd)

    async def _cached_config(self, state: _Stage, text: str) -> Image:
        key = step_key(state.image.id, text, json.dumps(state.scope.history_args()))
        cached = await self._reuse(state, key, _NOP + " " + text)
        if cached is not None:
            await self.say(" ---> Using cache\n")
            state.config = _copy_config(cached.config)
            return cached
        image = await self._config_image(state.image, state.config, text)
        await self.b.cache.record(key, image.id)
        return image

    async def _reuse(self, state: _Stage, key: str, created_by: str) -> Image | None:
        """The image for this step an earlier build made (or a `--cache-from` image
        holds), if this build may reuse it; `created_by` is the step's history entry."""
        if self.options.no_cache:
            return None
        image_id = self.b.cache.lookup(key)
        image = self.b.images.get(image_id) if image_id else None
        if self.sources is None or (image is not None and self.sources.allows(image.id)):
            return image
        found = self.sources.continuing(state.image, created_by)
        if found is None:
            return None
        source, entries = found
        self.sources.follow(source)
        if entries == len(source.history):
            return source
        diff_ids = layers_in(source, entries)
        draft = Image(
            id="", config=_copy_config(state.config), diff_ids=diff_ids,
            created=source.history[entries - 1].created or dt.datetime.now(dt.UTC),
            architecture=source.architecture, os=source.os, variant=source.variant,
            author=state.image.author, parent=state.image.id,
            history=list(source.history[:entries]),
        )
        with self.b.images.pin_layers(diff_ids):
            return await self.b.images.add_image(ociconfig.image_to_config(draft))

    async def _config_image(self, parent: Image, config: ImageConfig, text: str) -> Image:
        now = dt.datetime.now(dt.UTC)
        draft = Image(
            id="", config=config, diff_ids=list(parent.diff_ids), created=now,
            architecture=parent.architecture, os=parent.os, variant=parent.variant,
            author=parent.author, parent=parent.id,
            history=[*parent.history, HistoryEntry(created=now, created_by=_NOP + " " + text,
                                                   empty_layer=True)],
        )
        with self.b.images.pin_layers(parent.diff_ids):
            return await self.b.images.add_image(ociconfig.image_to_config(draft))

    async def _layer_image(self, parent: Image, config: ImageConfig, layer: LayerTar,
                           tarball: Path, text: str) -> Image:
        with self.b.images.pin_layers([*parent.diff_ids, layer.digest]):
            await self.b.images.ingest_layer(tarball, blob_digest=layer.digest,
                                             expected_diff_id=layer.digest)
            now = dt.datetime.now(dt.UTC)
            draft = Image(
                id="", config=config, diff_ids=[*parent.diff_ids, layer.digest], created=now,
                architecture=parent.architecture or "amd64", os=parent.os or "linux",
                variant=parent.variant, author=parent.author, parent=parent.id,
                history=[*parent.history, HistoryEntry(created=now, created_by=text)],
            )
            return await self.b.images.add_image(ociconfig.image_to_config(draft))

    # RUN ------------------------------------------------------------------------------
    def _script(self, state: _Stage, ins: Run) -> list[str]:
        if isinstance(ins.command, tuple):
            return list(ins.command)
        text = ins.command
        if ins.heredocs:
            markers = text.strip()
            if all(markers.replace(f"<<-{h.name}", "").replace(f"<<{h.name}", "").strip() == ""
                   for h in ins.heredocs[:1]) and len(ins.heredocs) == 1:
                text = ins.heredocs[0].text  # `RUN <<EOF`: the document is the script
            else:
                text += "\n" + "".join(f"{h.content}{h.name}\n" for h in ins.heredocs)
        return [*(state.config.shell or DEFAULT_SHELL), text]

    async def _run(self, state: _Stage, ins: Run) -> Image:
        if not state.image.diff_ids:
            raise StepFailed("RUN needs a base image with a shell: the stage is FROM scratch")
        argv = self._script(state, ins)
        shown = " ".join(argv)
        args = state.scope.history_args()
        created_by = (f"|{len(args)} {' '.join(args)} " if args else "") + shown
        key = step_key(state.image.id, "RUN " + json.dumps(argv), json.dumps(args))
        cached = await self._reuse(state, key, created_by)
        if cached is not None:
            await self.say(" ---> Using cache\n")
            return cached
        env = [f"{k}={v}" for k, v in state.scope.arg_values().items()
               if k not in state.scope.env]
        spec = ContainerSpec(image=state.image.id, cmd=argv, entrypoint=[], env=env,
                             labels={}, attach_stdout=True, attach_stderr=True)
        # dockerd's classic builder gives RUN containers the build's network mode (the
        # default bridge, none, host, or a network by name or ID) and its extra hosts
        host = HostSpec(network_mode=ins.network or self.options.network_mode or "default",
                        extra_hosts=list(self.options.extra_hosts),
                        **attrs.asdict(self.options.limits, recurse=False))
        if self.options.shm_size:
            host.shm_size = self.options.shm_size
        m = self.b.containers
        c, _ = await m.create(None, spec, host, build_step=True)
        await self.say(f" ---> Running in {c.id[:12]}\n")
        try:
            code = await self._start_and_follow(c)
            if code != 0:
                raise StepFailed(f"The command '{shown}' returned a non-zero code: {code}",
                                 exit_code=code)
            image = await commit_upper(
                m, c, state.image, _copy_config(state.config),
                HistoryEntry(created=dt.datetime.now(dt.UTC), created_by=created_by))
        finally:
            with trio.CancelScope(shield=True):
                try:
                    await m.remove(c, force=True, volumes=True)
                    await self.say(f"Removing intermediate container {c.id[:12]}\n")
                except EngineError as exc:
                    log.warning("removing build container %s: %s", c.id[:12], exc.message)
        await self.b.cache.record(key, image.id)
        return image

    async def _start_and_follow(self, c: Any) -> int:
        m = self.b.containers
        path = m.paths(c).log

        async def emit(lines: list[LogLine]) -> None:
            for stream, group in itertools.groupby(lines, key=lambda ln: ln.stream):
                text = b"".join(ln.data for ln in group).decode("utf-8", "replace")
                if text and stream == "stderr":  # dockerd shows stderr in red
                    text = f"{_STDERR_START}{text}{_STDERR_END}"
                if text:
                    await self.say(text)

        async def stopped() -> None:
            await m.wait(c, "not-running")

        await m.start(c)
        await read_logs(path, LogQuery(), emit, follow=True, stopped=stopped,
                        is_running=lambda: True)
        result = await m.wait(c, "not-running")
        return result.status_code

    # WORKDIR ------------------------------------------------------------------------------
    async def _workdir(self, state: _Stage, ins: Workdir) -> Image:
        apply_instruction(state.config, ins, state.scope.values(), escape=self.dockerfile.escape)
        text = f"WORKDIR {state.config.working_dir}"
        key = step_key(state.image.id, text)
        cached = await self._reuse(state, key, _NOP + " " + text)
        if cached is not None:
            await self.say(" ---> Using cache\n")
            return cached
        missing = await self._missing_dirs(state.image, state.config.working_dir)
        if not missing:
            image = await self._config_image(state.image, state.config, text)
        else:
            tarball = self.b.images.tmp_path("workdir-")
            try:
                layer = await trio.to_thread.run_sync(_write_dirs, missing, tarball)
                image = await self._layer_image(state.image, _copy_config(state.config), layer,
                                                tarball, _NOP + " " + text)
            finally:
                await trio.to_thread.run_sync(lambda: tarball.unlink(missing_ok=True))
        await self.b.cache.record(key, image.id)
        return image

    async def _missing_dirs(self, image: Image, path: str) -> list[str]:
        parts = [p for p in path.split("/") if p]
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if not image.diff_ids:
            return prefixes
        async with mounted_image(self.b.images, image, self._scratch_dir()) as root:
            kinds = await trio.to_thread.run_sync(
                lambda: [path_kind(root, "/" + p) for p in prefixes])
        return [p for p, kind in zip(prefixes, kinds, strict=True) if kind is None]

    def _scratch_dir(self) -> Path:
        return self.b.scratch / secrets.token_hex(6)

    # COPY / ADD ---------------------------------------------------------------------------
    async def _copy(self, state: _Stage, ins: Copy | Add) -> Image:
        values = state.scope.values()
        escape = self.dockerfile.escape
        sources = [expand(s, values, escape=escape) for s in ins.sources]
        dest = expand(ins.dest, values, escape=escape)
        workdir = state.config.working_dir or "/"
        chmod = int(ins.chmod, 8) if ins.chmod else None
        from_ref = ins.from_ if isinstance(ins, Copy) else None
        source_image: Image | None = None
        if from_ref is not None:
            ref = expand(from_ref, values, escape=escape)
            source_image = self.stages.get(ref.lower()) or await self._base(ref)
        async with _maybe_mounted(self, source_image) as src_root:
            root = src_root if src_root is not None else self.context
            inline_dir: Path | None = None
            if ins.inline:
                inline_dir = self._scratch_dir()
                await trio.to_thread.run_sync(_write_inline, inline_dir, ins.inline)
                root = inline_dir
                sources = [h.name for h in ins.inline]
            try:
                def select() -> tuple[list[str], str]:
                    chosen = copying.resolve_sources(root, sources, instruction=ins.keyword)
                    return chosen, copying.content_hash(root, chosen)

                sources, digest = await trio.to_thread.run_sync(select)
                text = (f"{ins.keyword} {'--from=' + from_ref + ' ' if from_ref else ''}"
                        f"{'--chown=' + ins.chown + ' ' if ins.chown else ''}"
                        f"{'--chmod=' + ins.chmod + ' ' if ins.chmod else ''}"
                        f"{digest} in {dest}")
                key = step_key(state.image.id, text)
                cached = await self._reuse(state, key, _NOP + text)
                if cached is not None:
                    await self.say(" ---> Using cache\n")
                    return cached
                image = await self._write_copy(state, ins, root, sources, dest, workdir, chmod,
                                               text)
            finally:
                if inline_dir is not None:
                    await trio.to_thread.run_sync(_remove_tree, inline_dir)
        await self.b.cache.record(key, image.id)
        return image

    async def _write_copy(self, state: _Stage, ins: Copy | Add, root: Path, sources: list[str],
                          dest: str, workdir: str, chmod: int | None, text: str) -> Image:
        tarball = self.b.images.tmp_path("copy-")
        try:
            async with _maybe_mounted(self, state.image if state.image.diff_ids else None
                                      ) as image_root:
                owner = None
                if ins.chown:
                    chown = self._expand(state, ins.chown)
                    if image_root is None:
                        owner = _numeric_owner(chown)
                    else:
                        user = await trio.to_thread.run_sync(resolve_user, image_root, chown)
                        owner = (user.uid, user.gid)

                def existing(path: str) -> str | None:
                    return path_kind(image_root, path) if image_root is not None else None

                def image_dir(path: str) -> os.stat_result | None:
                    return dir_stat(image_root, path) if image_root is not None else None

                def write() -> LayerTar:
                    with open(tarball, "wb") as out:
                        return copying.write_copy_layer(
                            root, sources, dest, workdir, out, owner=owner, chmod=chmod,
                            extract_archives=isinstance(ins, Add), existing=existing,
                            instruction=ins.keyword, image_dir=image_dir)

                layer = await trio.to_thread.run_sync(write)
            return await self._layer_image(state.image, _copy_config(state.config), layer,
                                           tarball, _NOP + text)
        finally:
            await trio.to_thread.run_sync(lambda: tarball.unlink(missing_ok=True))


@asynccontextmanager
async def _maybe_mounted(run: _Run, image: Image | None) -> AsyncIterator[Path | None]:
    """`mounted_image` for an image, or nothing (None) for no image."""
    if image is None:
        yield None
        return
    async with mounted_image(run.b.images, image, run._scratch_dir()) as root:
        yield root


def _numeric_owner(spec: str) -> tuple[int, int]:
    user, _, group = spec.partition(":")
    try:
        uid = int(user)
        return uid, int(group) if group else uid
    except ValueError:
        raise InvalidParameter(
            f"unable to convert uid/gid chown string to host mapping: {spec}: "
            "names need an /etc/passwd, and this stage has no files") from None


def _write_inline(directory: Path, docs: Any) -> None:
    directory.mkdir(parents=True)
    for doc in docs:
        (directory / doc.name).write_text(doc.text)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _write_dirs(dirs: list[str], target: Path) -> LayerTar:
    """A layer holding just these directories (root-owned, 0755): what WORKDIR creates."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tf.addfile(info)
    data = raw.getvalue()
    target.write_bytes(data)
    return LayerTar("sha256:" + hashlib.sha256(data).hexdigest(), len(data))


__all__ = ["BuildOptions", "Builder", "StepFailed"]
