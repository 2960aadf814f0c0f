"""``tokenmill models|deployments``: the model library and the fleet, against the database.

A running ``tokenmill serve`` picks up what these commands change within a second or two
(the gateway reloads the library, the fleet controller its deployments).
"""

from __future__ import annotations

import fnmatch
import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson

from tokenmill.errors import TokenmillError

if TYPE_CHECKING:
    from tokenmill.catalog.repository import ModelInfo

F = TypeVar("F", bound=Callable[..., Any])


def clear_errors(command: F) -> F:
    """A refused action (bad file, unknown model) is one line on stderr and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except TokenmillError as error:
            raise click.ClickException(error.message) from None

    return wrapper  # type: ignore[return-value]


def _table(headers: list[str], rows: list[list[Any]]) -> None:
    from tokenmill.cli.main import format_table

    click.echo(format_table(headers, [[str(c) if c is not None else "-" for c in r] for r in rows]))


def _repos() -> tuple[Any, Any, Any]:
    """The database's library (with the bundled models in it) and deployments."""
    from tokenmill.billing.pricebook import PriceBookRepository
    from tokenmill.catalog.install import install_bundled
    from tokenmill.catalog.repository import ModelRepository
    from tokenmill.cli.main import _open_db
    from tokenmill.fleet.deployments import DeploymentRepository
    from tokenmill.settings import Settings

    db, clock = _open_db()
    library = ModelRepository(db, clock)
    install_bundled(library, PriceBookRepository(db, clock), Settings().bundled_models)
    return db, library, DeploymentRepository(db, clock)


def _tenant_id(name: str | None) -> str | None:
    if name is None:
        return None
    from tokenmill.cli.admin import _tenant
    from tokenmill.cli.main import _open_db

    db, clock = _open_db()
    return _tenant(db, clock, name).id


@contextmanager
def _bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar fed with (done, total) byte counts."""
    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = click.progressbar(length=max(total, 1), label=label, width=30)
            bar.__enter__()
        bar.update(done - bar.pos)

    try:
        yield update
    finally:
        if "bar" in state:
            state["bar"].__exit__(None, None, None)


@click.group(invoke_without_command=True)
@click.pass_context
def models(ctx: click.Context) -> None:
    """The model library: list, show, add, pull, alias, publish."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_models)


@models.command("list")
def list_models() -> None:
    """Every model with its default version, owner and aliases."""
    _, library, _ = _repos()
    aliases: dict[str, list[str]] = {}
    for alias in library.aliases():
        aliases.setdefault(alias.model_id, []).append(f"{alias.name}->@{alias.version}")
    rows = [
        [
            m.id,
            m.task,
            m.default_version,
            len(m.versions),
            m.context_tokens,
            m.owner_tenant_id or "public",
            "yes" if m.published else "",
            " ".join(aliases.get(m.id, [])),
        ]
        for m in library.list()
    ]
    _table(["ID", "TASK", "DEFAULT", "VERSIONS", "CONTEXT", "OWNER", "PUBLISHED", "ALIASES"], rows)


def _show(model: ModelInfo) -> None:
    card = model.card_of(model.version())
    click.echo(orjson.dumps(card.as_json(), option=orjson.OPT_INDENT_2).decode())
    _table(
        ["VERSION", "SHA256", "SIZE", "ARTIFACT"],
        [[v.version, (v.sha256 or "")[:16], v.size_bytes, v.artifact] for v in model.versions],
    )


@models.command("show")
@click.argument("model_id")
@clear_errors
def show_model(model_id: str) -> None:
    """A model's card and versions."""
    _, library, _ = _repos()
    _show(library.require(model_id))


@models.command("add")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--id", "model_id", help="Library name (default: from the file name).")
@click.option("--version", help="Version name (default: the next number).")
@click.option("--tenant", help="Owning tenant's name: the model is private to it.")
@clear_errors
def add(path: Path, model_id: str | None, version: str | None, tenant: str | None) -> None:
    """Add a GGUF file (or a sentence-transformers directory): reads it, checks it, drafts
    its card."""
    from tokenmill.catalog.add import add_model

    _, library, _ = _repos()
    with _bar("hashing") as progress:
        info = add_model(
            library,
            path,
            model_id=model_id,
            version=version,
            owner_tenant_id=_tenant_id(tenant),
            on_progress=progress,
        )
    click.echo(f"Added {info.id} (default version {info.default_version}).")
    _show(info)


@models.command("pull")
@click.argument("repo")
@click.option("--hub", envvar="TOKENMILL_HUB_URL", default="https://huggingface.co")
@click.option("--revision", default="main")
@click.option("--include", "patterns", multiple=True, help="Glob of files to fetch (repeat).")
@click.option("--token", envvar="HF_TOKEN", help="Hub access token.")
@click.option("--id", "model_id", help="Library name (default: from the file name).")
@click.option("--tenant", help="Owning tenant's name: the model is private to it.")
@clear_errors
def pull(
    repo: str,
    hub: str,
    revision: str,
    patterns: tuple[str, ...],
    token: str | None,
    model_id: str | None,
    tenant: str | None,
) -> None:
    """Download a model repository from a Hugging Face-style hub (resuming, hash-checked),
    then add its GGUF file to the library."""
    from tokenmill.catalog.add import add_model
    from tokenmill.catalog.hub import HubClient
    from tokenmill.settings import Settings

    include = list(patterns) or ["*.gguf"]
    dest = Settings().ensure_data_dir() / "models" / repo.replace("/", "--")
    client = HubClient(hub, token)
    bars: dict[str, Any] = {}

    def progress(name: str, done: int, total: int) -> None:
        bar = bars.get(name)
        if bar is None:
            bar = bars[name] = click.progressbar(length=max(total, 1), label=name, width=30)
            bar.__enter__()
        bar.update(done - bar.pos)
        if done >= total:
            bar.__exit__(None, None, None)

    paths = client.download(
        repo,
        dest,
        revision=revision,
        include=lambda name: any(fnmatch.fnmatch(name, p) for p in include),
        on_progress=progress,
    )
    ggufs = [p for p in paths if p.suffix == ".gguf"]
    if not ggufs:
        raise click.ClickException(f"{repo} has no file matching {include} ending in .gguf.")
    _, library, _ = _repos()
    for path in ggufs:
        info = add_model(library, path, model_id=model_id, owner_tenant_id=_tenant_id(tenant))
        click.echo(f"Added {info.id} from {path.name}.")


@models.command("alias")
@click.argument("name")
@click.argument("target")
@clear_errors
def alias(name: str, target: str) -> None:
    """Point NAME at TARGET (``model`` for its default version, or ``model@version``)."""
    _, library, _ = _repos()
    model_id, _, version = target.partition("@")
    model = library.require(model_id)
    info = library.set_alias(name, model.id, version or model.default_version or "1")
    click.echo(f"{info.name} -> {info.model_id}@{info.version}")


@models.command("publish")
@click.argument("model_id")
@click.option("--undo", is_flag=True, help="Make the model private to its owner again.")
@clear_errors
def publish(model_id: str, undo: bool) -> None:
    """Make a tenant's model visible to every tenant."""
    _, library, _ = _repos()
    info = library.update(model_id, published=not undo)
    click.echo(f"{info.id} is {'published' if info.published else 'private'}.")


@click.group(invoke_without_command=True)
@click.pass_context
def deployments(ctx: click.Context) -> None:
    """The fleet's deployments: list, create, scale, stop."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_deployments)


def _replica_states(db: Any, deployment_id: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from tokenmill.store.tables import ReplicaRun

    with db.session() as session:
        query = (
            select(ReplicaRun.state, func.count())
            .where(ReplicaRun.deployment_id == deployment_id, ReplicaRun.stopped_at.is_(None))
            .group_by(ReplicaRun.state)
        )
        return {state: int(count) for state, count in session.execute(query)}


@deployments.command("list")
def list_deployments() -> None:
    db, _, repo = _repos()
    rows = []
    for d in repo.list():
        states = _replica_states(db, d.id)
        live = " ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none"
        health = f"failing: {d.failing_reason}" if d.failing_reason else "ok"
        rows.append(
            [d.id, d.served_name, d.mode, d.tenant_id, f"{d.min_replicas}-{d.max_replicas}",
             d.idle_seconds, d.status, live, health]
        )  # fmt: skip
    _table(
        ["ID", "MODEL", "MODE", "TENANT", "REPLICAS", "IDLE S", "STATUS", "RUNNING", "HEALTH"],
        rows,
    )


@deployments.command("create")
@click.argument("target")
@click.option("--dedicated-to", "tenant", help="Tenant name: a dedicated deployment.")
@click.option("--min", "min_replicas", type=int, default=0, show_default=True)
@click.option("--max", "max_replicas", type=int, default=1, show_default=True)
@click.option("--idle-seconds", type=int, default=300, show_default=True)
@click.option("--engine", help="tokenmill, tokenmill-embed, vllm, sglang or llama-server.")
@click.option("--setting", "settings", multiple=True, help="Engine setting NAME=INT (repeat).")
@click.option("--accelerator", help="Accelerator kind the replicas need (e.g. H100-80GB).")
@click.option("--region", help="Region the replicas must run in.")
@click.option("--wait", "wait_seconds", type=float, default=0, help="Wait for min replicas.")
@clear_errors
def create_deployment(
    target: str,
    tenant: str | None,
    min_replicas: int,
    max_replicas: int,
    idle_seconds: int,
    engine: str | None,
    settings: tuple[str, ...],
    accelerator: str | None,
    region: str | None,
    wait_seconds: float,
) -> None:
    """Deploy TARGET (``model`` or ``model@version``)."""
    db, library, repo = _repos()
    model_id, _, version = target.partition("@")
    model = library.require(model_id)
    values: dict[str, int] = {}
    for item in settings:
        name, _, value = item.partition("=")
        if not value.isdigit():
            raise click.BadParameter(f"{item!r} is not NAME=INTEGER.", param_hint="--setting")
        values[name] = int(value)
    constraints = {
        k: v for k, v in {"accelerator_kind": accelerator, "region": region}.items() if v
    }
    info = repo.create(
        model.id,
        version or model.default_version or "1",
        mode="dedicated" if tenant else "serverless",
        tenant_id=_tenant_id(tenant),
        engine=engine or model.engine,
        settings=values,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        idle_seconds=idle_seconds,
        constraints=constraints,
    )
    click.echo(f"Created {info.id} for {info.served_name}.")
    if wait_seconds and min_replicas:
        _wait_ready(db, info.id, min_replicas, wait_seconds)


def _wait_ready(db: Any, deployment_id: str, count: int, timeout_seconds: float) -> None:
    """A progress bar of replicas becoming ready (the running platform's fleet starts them)."""
    deadline = time.monotonic() + timeout_seconds
    with click.progressbar(length=count, label="replicas ready", width=30) as bar:
        while (ready := _replica_states(db, deployment_id).get("ready", 0)) < count:
            bar.update(ready - bar.pos)
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"{ready} of {count} replicas ready after {timeout_seconds:g} s; "
                    "is `tokenmill serve` running?"
                )
            time.sleep(0.5)
        bar.update(count - bar.pos)


@deployments.command("scale")
@click.argument("deployment_id")
@click.option("--min", "min_replicas", type=int)
@click.option("--max", "max_replicas", type=int)
@click.option("--idle-seconds", type=int)
@clear_errors
def scale(
    deployment_id: str, min_replicas: int | None, max_replicas: int | None, idle_seconds: int | None
) -> None:
    """Change a deployment's replica bounds or idle time."""
    _, _, repo = _repos()
    info = repo.update(
        deployment_id,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        idle_seconds=idle_seconds,
        status="active",
    )
    click.echo(f"{info.id}: {info.min_replicas}-{info.max_replicas} replicas.")


@deployments.command("stop")
@click.argument("deployment_id")
@clear_errors
def stop(deployment_id: str) -> None:
    """Drain and stop every replica of a deployment."""
    _, _, repo = _repos()
    info = repo.update(deployment_id, status="stopped")
    click.echo(f"{info.id} is stopping; in-flight requests finish first.")
