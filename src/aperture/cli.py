"""``aperture serve | emulate | check-config``."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from aperture import __version__
from aperture.demo import demo_settings
from aperture.settings import ConfigError, Settings, load_settings

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.run(args)
        return result
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return 2
    except Exception as exc:
        if args.debug:
            raise
        print(f"aperture: {exc} (run with --debug for details)", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aperture", description="The multimodal LLM gateway.")
    parser.add_argument("--version", action="version", version=f"aperture {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the public API")
    serve.add_argument("--config", type=Path, help="config file (default: the built-in demo)")
    serve.add_argument("--host", help="address to bind (default: server.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: server.port, 8080)")
    serve.add_argument("--log-level", default="info", help="debug, info, warning or error")
    serve.set_defaults(run=_serve)

    emulate = commands.add_parser("emulate", help="serve the provider emulators alone")
    emulate.add_argument("--host", default="127.0.0.1")
    emulate.add_argument("--port", type=int, default=8081)
    emulate.set_defaults(run=_emulate)

    check = commands.add_parser("check-config", help="validate a config file")
    check.add_argument("file", type=Path)
    check.set_defaults(run=_check_config)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    import msgspec

    env = dict(os.environ)
    config = args.config or (Path(env["APERTURE_CONFIG"]) if env.get("APERTURE_CONFIG") else None)
    if config is None:
        return demo_settings(env, host=args.host or "127.0.0.1", port=args.port or 8080)
    settings = load_settings(config, env)
    server = msgspec.structs.replace(
        settings.server,
        host=args.host or settings.server.host,
        port=args.port if args.port is not None else settings.server.port,
    )
    return msgspec.structs.replace(settings, server=server)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from aperture.app import create_app
    from aperture.logs import configure_logging

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
    configure_logging(args.log_level)
    mode = "demo (built-in emulator)" if server.emulator else "config"
    print(
        f"Aperture {__version__} on http://{server.host}:{server.port} [{mode}]: "
        f"{len(settings.models)} models from {len(settings.providers)} providers",
        file=sys.stderr,
    )
    if open_access:
        print("auth: none - the gateway is open, bound to loopback only", file=sys.stderr)
    uvicorn.run(
        create_app(settings),
        host=server.host,
        port=server.port,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )
    return 0


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
    settings = load_settings(args.file, os.environ)
    print(f"{args.file}: ok ({len(settings.providers)} providers, {len(settings.models)} models)")
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
