"""The builder: runs a checked Dockerfile plan step by step against the store.

Every instruction gives the stage a new image (see commit.py), found in the build
cache when the same step was built on the same parent before. Output follows docker's
classic builder (`Step 2/7 : RUN ...`, ` ---> Using cache`, ` ---> 1a2b3c4d5e6f`).
Any failure names the Dockerfile line; the tags are only set once every step
succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from pyswarm.common.errors import PyswarmError
from pyswarm.common.signals import InvalidSignal, parse_signal
from pyswarm.images import ImageStore
from pyswarm.images.build import commit as commits
from pyswarm.images.build import copy_step
from pyswarm.images.build import instructions as ops
from pyswarm.images.build.cache import BuildCache, step_key
from pyswarm.images.build.commit import ImageState
from pyswarm.images.build.context import resolve, sources
from pyswarm.images.build.dockerfile import Instruction, parse
from pyswarm.images.build.errors import BuildError, StepFailed
from pyswarm.images.build.host import BuildHost
from pyswarm.images.build.plan import (
    Plan,
    Stage,
    arg_declaration,
    check_not_url,
    expose_ports,
    healthcheck,
    key_values,
    plan,
)
from pyswarm.images.build.run_step import run_command
from pyswarm.images.build.words import expand, expand_words
from pyswarm.images.reference import parse_tagged

Emit = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class BuildOptions:
    tags: list[str]
    dockerfile: str = "Dockerfile"
    build_args: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    network: str = "bridge"


@dataclass
class _StageRun:
    state: ImageState
    args: dict[str, str] = field(default_factory=dict)  # ARGs declared in this stage
    cmd_set: bool = False


class Builder:
    """One build: `work` is a private scratch dir; `active` collects the images it made
    or reuses, so a concurrent prune leaves them alone."""

    def __init__(
        self,
        store: ImageStore,
        host: BuildHost,
        cache: BuildCache,
        work: Path,
        emit: Emit,
        active: set[str],
    ) -> None:
        self.store = store
        self.host = host
        self.cache = cache
        self.work = work
        self.emit = emit
        self.active = active
        self._counter = itertools.count()

    async def build(self, context: Path, options: BuildOptions) -> tuple[str, list[str]]:
        """Build the image; returns (image id, tags given)."""
        if options.network not in ("bridge", "none", ""):
            raise BuildError(f"--network {options.network}: use bridge or none", field="network")
        tags = [parse_tagged(tag).tagged for tag in options.tags]
        name = options.dockerfile or "Dockerfile"
        path = resolve(context, name, "Dockerfile")
        try:
            text = await asyncio.to_thread(path.read_text, "utf-8", "replace")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BuildError(f"Cannot locate specified Dockerfile: {name}", field="file") from None
        checked = plan(parse(text, name), options.build_args)
        self.plan: Plan = checked
        self.options, self.context = options, context
        self.global_args: dict[str, str] = {}
        self.used_args: set[str] = set()
        self.step = 0
        for instruction in checked.global_args:
            await self._announce(instruction)
            arg, default = arg_declaration(instruction, checked.dockerfile.escape, {}, "")
            value = options.build_args.get(arg, default)
            if value is not None:
                self.global_args[arg] = value
            self.used_args.add(arg)
        finished: list[ImageState] = []
        for stage in checked.stages:
            finished.append(await self._stage(stage, finished))
        final = finished[-1]
        if not final.image_id:
            raise BuildError("No image was generated. Is your Dockerfile empty?")
        unused = sorted(set(options.build_args) - self.used_args)
        if unused:
            await self.emit(f"[Warning] One or more build-args {unused} were not consumed\n")
        await self.emit(f"Successfully built {final.image_id.removeprefix('sha256:')[:12]}\n")
        for tag in tags:
            await asyncio.to_thread(self.store.tag, final.image_id, tag)
            await self.emit(f"Successfully tagged {tag}\n")
        return final.image_id, tags

    async def _announce(self, instruction: Instruction) -> None:
        self.step += 1
        await self.emit(f"Step {self.step}/{self.plan.total_steps} : {instruction.text()}\n")

    async def _show(self, state: ImageState) -> None:
        await self.emit(f" ---> {state.image_id.removeprefix('sha256:')[:12]}\n")

    async def _stage(self, stage: Stage, finished: list[ImageState]) -> ImageState:
        where = self.plan.dockerfile.where(stage.from_line)
        await self._announce(stage.from_line)
        earlier = self.plan.stage_named(stage.base, len(finished))
        if earlier is not None:
            state = copy.deepcopy(finished[earlier.index])
        elif stage.base.lower() == "scratch":
            state = commits.scratch()
        else:
            try:
                state = await asyncio.to_thread(commits.load, self.store, stage.base)
            except PyswarmError as err:
                raise BuildError(err.message, where=where) from None
        if state.image_id:
            self.active.add(state.image_id)
            await self._show(state)
        run = _StageRun(state)
        for instruction in stage.steps:
            await self._announce(instruction)
            where = self.plan.dockerfile.where(instruction)
            try:
                run.state = await self._dispatch(instruction, run, finished)
            except StepFailed:
                raise
            except PyswarmError as err:
                if isinstance(err, BuildError) and err.located:
                    raise
                raise BuildError(err.message, where=where, field=err.field) from None
            await self._show(run.state)
        return run.state

    def _env(self, run: _StageRun) -> dict[str, str]:
        """What `$VAR` means in this stage: its ARGs, overridden by the image's ENV."""
        return {**run.args, **ops.env_map(run.state.config)}

    async def _dispatch(
        self, instruction: Instruction, run: _StageRun, finished: list[ImageState]
    ) -> ImageState:
        keyword, escape = instruction.keyword, self.plan.dockerfile.escape
        where = self.plan.dockerfile.where(instruction)
        env = self._env(run)
        config = copy.deepcopy(run.state.config)
        if keyword == "RUN":
            return await self._run(instruction, run)
        if keyword in ("COPY", "ADD"):
            return await self._copy(instruction, run, finished, env)
        if keyword == "ARG":
            name, default = arg_declaration(instruction, escape, env, where)
            self.used_args.add(name)
            value = self.options.build_args.get(name, default)
            if value is None:
                value = self.global_args.get(name)
            if value is not None:
                run.args[name] = value
            return await self._metadata(run, config, ops.NOP + " ARG " + instruction.args)
        if keyword == "ENV":
            created_by = ops.set_env(config, key_values(instruction, escape, env, where))
        elif keyword == "LABEL":
            created_by = ops.set_labels(config, key_values(instruction, escape, env, where))
        elif keyword == "WORKDIR":
            created_by = ops.set_workdir(config, expand(instruction.args, env, escape))
            return await self._workdir(run, config, created_by)
        elif keyword == "USER":
            created_by = ops.set_user(config, expand(instruction.args, env, escape))
        elif keyword == "EXPOSE":
            created_by = ops.add_exposed(
                config, expose_ports(expand_words(instruction.args, env, escape), where)
            )
        elif keyword == "VOLUME":
            volumes = instruction.json_args or expand_words(instruction.args, env, escape)
            created_by = ops.add_volumes(config, volumes)
        elif keyword == "STOPSIGNAL":
            signal = expand(instruction.args, env, escape)
            try:
                parse_signal(signal)
            except InvalidSignal as err:
                raise BuildError(err.message, where=where) from None
            created_by = ops.set_stop_signal(config, signal)
        elif keyword == "CMD":
            argv = ops.command_form(config, instruction.json_args, instruction.args)
            created_by = ops.set_cmd(config, argv)
            run.cmd_set = True
        elif keyword == "ENTRYPOINT":
            argv = ops.command_form(config, instruction.json_args, instruction.args)
            created_by = ops.set_entrypoint(config, argv, cmd_set_in_stage=run.cmd_set)
        elif keyword == "SHELL":
            created_by = ops.set_shell(config, instruction.json_args or [])
        elif keyword == "HEALTHCHECK":
            created_by = ops.set_healthcheck(config, healthcheck(instruction, escape, where))
        elif keyword == "MAINTAINER":
            created_by = ops.NOP + " MAINTAINER " + instruction.args
            return await self._metadata(run, config, created_by, author=instruction.args)
        else:  # the parser knows no other keyword
            raise BuildError(f"unsupported instruction {keyword}", where=where)
        return await self._metadata(run, config, created_by)

    async def _cached_or(
        self,
        run: _StageRun,
        key: str,
        make: Callable[[], Awaitable[ImageState]],
        uses: tuple[str, ...] = (),
    ) -> ImageState:
        if not self.options.no_cache:
            hit = await asyncio.to_thread(self.cache.lookup, key, self._exists)
            if hit is not None:
                await self.emit(" ---> Using cache\n")
                state = await asyncio.to_thread(commits.load, self.store, hit)
                self.active.add(state.image_id)
                return state
        state = await make()
        self.active.add(state.image_id)
        existing = [image.id for image in await asyncio.to_thread(self.store.list)]
        await asyncio.to_thread(
            self.cache.record, key, state.image_id, run.state.image_id, existing, uses
        )
        return state

    def _exists(self, image_id: str) -> bool:
        try:
            self.store.resolve(image_id)
        except PyswarmError:
            return False
        return True

    async def _metadata(
        self, run: _StageRun, config: dict[str, object], created_by: str, author: str = ""
    ) -> ImageState:
        state = ImageState(run.state.image_id, copy.deepcopy(run.state.document), run.state.layers)
        state.document["config"] = config
        if author:
            state.document["author"] = author

        async def make() -> ImageState:
            return await asyncio.to_thread(commits.commit, self.store, state, created_by, None)

        return await self._cached_or(run, step_key(run.state.image_id, created_by), make)

    def _layer_path(self) -> Path:
        return self.work / f"layer-{next(self._counter)}.tar"

    async def _workdir(
        self, run: _StageRun, config: dict[str, object], created_by: str
    ) -> ImageState:
        state = ImageState(run.state.image_id, copy.deepcopy(run.state.document), run.state.layers)
        state.document["config"] = config
        target = str(config["WorkingDir"])

        async def make() -> ImageState:
            layer = await asyncio.to_thread(self._workdir_layer, state, target)
            return await asyncio.to_thread(commits.commit, self.store, state, created_by, layer)

        return await self._cached_or(run, step_key(run.state.image_id, created_by), make)

    def _workdir_layer(self, state: ImageState, target: str) -> Path | None:
        """A layer with the WORKDIR's missing directories, or None when it exists."""
        with self.host.image_view(self._layer_dirs(state), self.work) as view:
            if copy_step.in_image(view, target).is_dir():
                return None
            out = self._layer_path()
            item = copy_step.CopyItem(view, target.strip("/"), "mkdir")
            copy_step.write_copy_layer([item], None, view, out)
            return out

    def _layer_dirs(self, state: ImageState) -> list[Path]:
        if not state.image_id:
            return []
        return self.store.layer_dirs(self.store.resolve(state.image_id))

    async def _run(self, instruction: Instruction, run: _StageRun) -> ImageState:
        where = self.plan.dockerfile.where(instruction)
        argv = ops.command_form(run.state.config, instruction.json_args, instruction.args)
        image_env = ops.env_map(run.state.config)
        args = {k: v for k, v in run.args.items() if k not in image_env}
        created_by = ops.run_created_by(argv, args)
        if not run.state.image_id:
            raise BuildError(
                "RUN needs a base image with a shell: FROM scratch has none", where=where
            )

        async def make() -> ImageState:
            out = self._layer_path()
            code = await run_command(
                self.host,
                run.state.image_id,
                argv,
                [f"{k}={v}" for k, v in args.items()],
                network=self.options.network or "bridge",
                layer_out=out,
                emit=self.emit,
            )
            if code != 0:
                raise StepFailed(
                    f"The command '{' '.join(argv)}' returned a non-zero code: {code}",
                    where=where,
                    command_code=code,
                )
            return await asyncio.to_thread(commits.commit, self.store, run.state, created_by, out)

        return await self._cached_or(run, step_key(run.state.image_id, created_by), make)

    async def _copy(
        self,
        instruction: Instruction,
        run: _StageRun,
        finished: list[ImageState],
        env: dict[str, str],
    ) -> ImageState:
        escape, where = self.plan.dockerfile.escape, self.plan.dockerfile.where(instruction)
        is_add = instruction.keyword == "ADD"
        paths = instruction.json_args or expand_words(instruction.args, env, escape)
        patterns, dest = paths[:-1], paths[-1]
        if is_add:
            for pattern in patterns:
                check_not_url(pattern, where)
        chown = expand(instruction.flags.get("chown", ""), env, escape)
        source_from = instruction.flags.get("from", "")
        uses: tuple[str, ...] = ()
        with contextlib.ExitStack() as stack:
            if source_from:
                earlier = self.plan.stage_named(source_from, len(finished))
                source_state = (
                    finished[earlier.index]
                    if earlier is not None
                    else await asyncio.to_thread(commits.load, self.store, source_from)
                )
                root = stack.enter_context(
                    self.host.image_view(self._layer_dirs(source_state), self.work)
                )
                found = copy_step.image_sources(root, patterns)
                uses = (source_state.image_id,) if source_state.image_id else ()
            else:
                found = sources(self.context, patterns, instruction.keyword)
            target_dir = copy_step.dest_for(dest, str(run.state.config.get("WorkingDir") or "/"))
            view = stack.enter_context(self.host.image_view(self._layer_dirs(run.state), self.work))
            items = copy_step.plan_copy(
                found,
                dest,
                str(run.state.config.get("WorkingDir") or "/"),
                is_add=is_add,
                dest_is_dir_in_image=copy_step.in_image(view, target_dir).is_dir(),
            )
            digest = await asyncio.to_thread(copy_step.items_digest, items)
            kind = "multi" if len(items) > 1 else items[0].kind
            created_by = f"{ops.NOP}{instruction.keyword} {kind}:{digest[7:]} in {target_dir} "
            text = f"{instruction.keyword} --chown={chown} --from={source_from} {paths}"
            owner = copy_step.owner_of(chown, view)

            async def make() -> ImageState:
                out = self._layer_path()
                await asyncio.to_thread(copy_step.write_copy_layer, items, owner, view, out)
                return await asyncio.to_thread(
                    commits.commit, self.store, run.state, created_by, out
                )

            key = step_key(run.state.image_id, text, digest)
            return await self._cached_or(run, key, make, uses)
