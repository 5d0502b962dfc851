"""``aperture serve | emulate | check-config``."""

from __future__ import annotations

import argparse
import errno
import gc
import ipaddress
import os
import socket
import sys
import tempfile
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aperture import __version__

if TYPE_CHECKING:
    from aperture.settings import ServerSettings, Settings

__all__ = ["main"]

# The settings, and through them the whole gateway, are imported by the commands that use
# them, not here: ``serve`` pauses the garbage collector before its imports (see _serve).


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.run(args)
        return result
    except Exception as exc:
        from aperture.settings import ConfigError

        if isinstance(exc, ConfigError):
            for problem in exc.problems:
                print(f"config error: {problem}", file=sys.stderr)
            return 2
        if getattr(args, "debug", False):
            raise
        print(f"aperture: {exc} (run with --debug for details)", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aperture", description="The multimodal LLM gateway.")
    parser.add_argument("--version", action="version", version=f"aperture {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    _config_option(parser)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = _command(commands, "serve", help="serve the public API and the admin API")
    serve.add_argument("--host", help="address to bind (default: server.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="public API port (default: server.port, 8080)")
    serve.add_argument(
        "--admin-port", type=int, help="admin API port (default: server.admin_port, 8090)"
    )
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes sharing the ports (default 1)"
    )
    serve.add_argument("--log-level", default="info", help="debug, info, warning or error")
    serve.set_defaults(run=_serve)

    emulate = _command(commands, "emulate", help="serve the provider emulators alone", config=False)
    emulate.add_argument("--host", default="127.0.0.1")
    emulate.add_argument("--port", type=int, default=8081)
    emulate.set_defaults(run=_emulate)

    migrate = _command(commands, "migrate", help="bring the database schema up to date")
    migrate.set_defaults(run=_migrate)

    keys = _command(commands, "keys", help="create, list and revoke API keys")
    keys.set_defaults(run=_keys)
    key_actions = keys.add_subparsers(dest="action", required=True)
    create = _command(key_actions, "create", help="issue a key; its secret is shown once")
    create.add_argument("name")
    create.add_argument("--tenant")
    create.add_argument("--models", nargs="*", help="models the key may use (default: all)")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens per minute (image tokens included)")
    create.add_argument("--budget-usd", type=float, help="spend cap in USD per period")
    create.add_argument("--budget-tokens", type=int, help="token cap per period")
    create.add_argument(
        "--budget-period",
        choices=["daily", "weekly", "monthly", "total"],
        default="monthly",
        help="the budget's window (UTC; default monthly)",
    )
    create.add_argument("--admin", action="store_true", help="may also call the admin API")
    listing = _command(key_actions, "list", help="list keys (never their secrets)")
    listing.add_argument("--tenant")
    revoke = _command(key_actions, "revoke", help="revoke a key by its id")
    revoke.add_argument("id")

    check = _command(commands, "check-config", help="validate a config file")
    check.add_argument(
        "file", type=Path, nargs="?", help="the config file (or --config, or APERTURE_CONFIG)"
    )
    check.set_defaults(run=_check_config)
    return parser


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    help: str,
    config: bool = True,
) -> argparse.ArgumentParser:
    """A subcommand that also takes the common options, so they may be written anywhere:
    ``aperture keys create ci --config F`` is ``aperture --config F keys create ci``."""
    command = commands.add_parser(name, help=help, description=help)
    # SUPPRESS: an option not given here is not set here, so it cannot reset the value an
    # earlier position (``aperture --debug keys ...``) gave it.
    command.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    if config:
        _config_option(command)
    return command


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help="config file (default: APERTURE_CONFIG, else the built-in demo)",
    )


def _settings(args: argparse.Namespace) -> Settings:
    import msgspec

    from aperture.demo import demo_settings
    from aperture.settings import load_settings
    from aperture.settings.demo import include_demo

    env = dict(os.environ)
    host: str | None = getattr(args, "host", None)
    port: int | None = getattr(args, "port", None)
    admin_port: int | None = getattr(args, "admin_port", None)
    config = _config_file(args)
    if config is None:
        settings = demo_settings(env, host=host or "127.0.0.1", port=port or 8080)
    else:
        settings = load_settings(config, env)
    server = msgspec.structs.replace(
        settings.server,
        host=host or settings.server.host,
        port=port if port is not None else settings.server.port,
        admin_port=admin_port if admin_port is not None else settings.server.admin_port,
    )
    # After the port is final: the demo's providers are answered on it.
    return include_demo(msgspec.structs.replace(settings, server=server))


def _config_file(args: argparse.Namespace) -> Path | None:
    config: Path | None = getattr(args, "config", None)
    if config is None and os.environ.get("APERTURE_CONFIG"):
        config = Path(os.environ["APERTURE_CONFIG"])
    return config


def _serve(args: argparse.Namespace) -> int:
    # The start builds ~90,000 long-lived objects and almost no garbage (~2,000 objects):
    # the collections it would trigger cost ~10% of the cold start for nothing. The server
    # turns the collector back on once it has started (``aperture.runtime.freeze_heap``).
    gc.disable()
    from aperture.logs import configure_logging
    from aperture.serving import serve_process

    settings = _settings(args)
    server = settings.server
    open_access = settings.auth is None or settings.auth.master_key is None
    if open_access and not _is_loopback(server.host):
        print(
            f"aperture: refusing to bind {server.host} without auth: set auth.master_key "
            "in the config, or bind 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    if args.workers < 1:
        print("aperture: --workers must be 1 or more", file=sys.stderr)
        return 2
    configure_logging(args.log_level)
    try:
        listeners = _listen(server, args.workers)
    except _PortTakenError as exc:
        print(f"aperture: {exc}", file=sys.stderr)
        return 1
    mode = "demo (built-in emulator)" if server.emulator else "config"
    workers = f"; {args.workers} workers" if args.workers > 1 else ""
    print(
        f"Aperture {__version__} on http://{server.host}:{server.port} [{mode}]: "
        f"{len(settings.models)} models from {len(settings.providers)} providers; "
        f"admin API on port {server.admin_port}; storage {_where(settings.storage.database)}"
        f"{workers}",
        file=sys.stderr,
    )
    if open_access:
        print("auth: none - the gateway is open, bound to loopback only", file=sys.stderr)
    if args.workers == 1:
        if serve_process(settings, (listeners[0][0], listeners[0][1])):
            return 0
        print("aperture: the gateway did not start (the reason is above)", file=sys.stderr)
        return 1
    if settings.storage.redis is None:
        print(
            "storage.redis: none - each worker keeps its own rate limits, budget counters "
            "and circuit breakers (set storage.redis to share them)",
            file=sys.stderr,
        )
    gc.enable()  # the supervisor runs on; each worker pauses it for its own start
    from aperture.serving import stop_budget_s
    from aperture.workers import run_workers

    def serve(index: int, sockets: list[socket.socket]) -> int:
        return _serve_worker(settings, index, sockets, debug=args.debug)

    # Each worker counts into files here, and /metrics sums them all (aperture.metrics).
    # Fresh for each run, since no worker outlives it, and set before the fork, so that the
    # workers import prometheus_client with it; the parent itself never imports it.
    with tempfile.TemporaryDirectory(prefix="aperture-metrics-") as shared:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared
        # A worker is given the time its drain needs before it is killed.
        return run_workers(listeners, serve, stop_timeout_s=stop_budget_s(server))


class _PortTakenError(Exception):
    """A port cannot be listened on; the message names it, its setting and its option."""


_PORTS = (
    ("port", "the public API", "--port"),
    ("admin_port", "the admin API", "--admin-port"),
)


def _listen(server: ServerSettings, workers: int) -> list[list[socket.socket]]:
    """Each worker's listening sockets (public, admin), bound before anything is announced,
    so that a port in use is reported as such, with the setting and the option that move
    it, rather than by uvicorn after the banner."""
    bound: list[list[socket.socket]] = [[] for _ in range(workers)]
    try:
        for field, what, option in _PORTS:
            port: int = getattr(server, field)
            try:
                # One process binds plainly: SO_REUSEPORT would let a second gateway share
                # the port unnoticed. Several share it on purpose (aperture.workers).
                socks = (
                    [[_bind(server.host, port)]] if workers == 1 else _shared(server, port, workers)
                )
            except OSError as exc:
                cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
                held = "Stop what holds it, or c" if cause.errno == errno.EADDRINUSE else "C"
                raise _PortTakenError(
                    f"cannot listen on {server.host}:{port} for {what} (server.{field}): "
                    f"{cause.strerror or cause}. {held}hoose another port with {option} N "
                    f"or server.{field} in the config."
                ) from exc
            for own, (sock,) in zip(bound, socks, strict=True):
                own.append(sock)
    except BaseException:
        for own in bound:
            for sock in own:
                sock.close()
        raise
    return bound


def _shared(server: ServerSettings, port: int, workers: int) -> list[list[socket.socket]]:
    # Here, not at the top: one process needs neither the supervisor nor multiprocessing.
    from aperture.workers import bind_listeners

    return bind_listeners(server.host, (port,), workers)


def _bind(host: str, port: int) -> socket.socket:
    family, _, _, _, address = socket.getaddrinfo(
        host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # What uvicorn itself does: a restart may bind while old connections linger.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address[0], port, *address[2:]))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


def _serve_worker(
    settings: Settings, index: int, sockets: list[socket.socket], *, debug: bool
) -> int:
    """One worker of several, after the fork: its own audit spool, then the usual serving."""
    gc.disable()  # for its start, as with one process (see _serve)
    import msgspec

    from aperture.serving import serve_process

    # A spool directory belongs to one process; a worker's index is stable across restarts,
    # so what one worker spooled is replayed when that worker starts again.
    spool = str(Path(settings.storage.spool_dir) / f"worker-{index}")
    storage = msgspec.structs.replace(settings.storage, spool_dir=spool)
    settings = msgspec.structs.replace(settings, storage=storage)
    try:
        started = serve_process(settings, (sockets[0], sockets[1]), parent=os.getppid())
    except Exception as exc:
        if debug:
            raise
        print(f"aperture: worker {index}: {exc} (run with --debug for details)", file=sys.stderr)
        return 1
    if started:
        return 0
    print(f"aperture: worker {index} did not start (the reason is above)", file=sys.stderr)
    return 1


def _run(main: Coroutine[Any, Any, None]) -> None:
    from aperture.serving import run

    run(main)


def _where(database: str) -> str:
    # The scheme and path or host only: a database URL may carry a password.
    scheme, _, rest = database.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


def _migrate(args: argparse.Namespace) -> int:
    from aperture.storage import migrate

    settings = _settings(args)
    _run(migrate(settings.storage.database))
    print(f"migrated {_where(settings.storage.database)}")
    return 0


def _keys(args: argparse.Namespace) -> int:
    _run(_keys_command(args, _settings(args)))
    return 0


async def _keys_command(args: argparse.Namespace, settings: Settings) -> None:
    from aperture.governance.keys import KeyRing
    from aperture.storage import open_storage

    auth = settings.auth
    master = auth.master_key if auth else None
    pepper = (auth.key_pepper if auth else None) or master
    if pepper is None:
        from aperture.settings import ConfigError, Problem

        raise ConfigError([Problem("auth.master_key", "API keys need auth.master_key set")])
    async with await open_storage(
        settings.storage.database,
        migrate=True,
        database_timeout_s=settings.storage.database_timeout_s,
    ) as storage:
        ring = KeyRing(storage.keys, pepper.encode(), master)
        if args.action == "create":
            issued = await ring.issue(
                args.name,
                tenant=args.tenant,
                models=args.models or None,
                rpm=args.rpm,
                tpm=args.tpm,
                budget_usd=args.budget_usd,
                budget_tokens=args.budget_tokens,
                budget_period=(
                    args.budget_period
                    if args.budget_usd is not None or args.budget_tokens is not None
                    else None
                ),
                admin=args.admin,
            )
            print(f"id:  {issued.record.id}\nkey: {issued.secret}\n(shown once: store it now)")
        elif args.action == "revoke":
            if await ring.revoke(args.id) is None:
                raise ValueError(f"there is no API key {args.id!r}")
            print(f"revoked {args.id}")
        else:
            rows = [("ID", "STATE", "TENANT", "MODELS", "NAME")]
            for key in await ring.list(args.tenant):
                state = "revoked" if key.revoked_at else "active"
                models = ",".join(key.models) if key.models is not None else "*"
                rows.append((key.id, state, key.tenant or "-", models, key.name))
            widths = [max(len(row[i]) for row in rows) for i in range(4)]
            for row in rows:
                print("  ".join([*(row[i].ljust(widths[i]) for i in range(4)), row[4]]))


def _emulate(args: argparse.Namespace) -> int:
    import uvicorn

    from aperture.emulator import create_emulator_app

    print(f"Aperture emulators on http://{args.host}:{args.port}/openai/v1", file=sys.stderr)
    uvicorn.run(
        create_emulator_app(),
        host=args.host,
        port=args.port,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
    return 0


def _check_config(args: argparse.Namespace) -> int:
    file: Path | None = args.file or _config_file(args)
    if file is None:
        print(
            "aperture check-config: name the config file (or set APERTURE_CONFIG)", file=sys.stderr
        )
        return 2
    from aperture.settings import load_settings
    from aperture.settings.demo import include_demo

    settings = include_demo(load_settings(file, os.environ))
    print(f"{file}: ok ({len(settings.providers)} providers, {len(settings.models)} models)")
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
