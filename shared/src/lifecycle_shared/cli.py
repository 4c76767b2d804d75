"""Each service's command line: `serve [--role api|consumer|all]` (default) and `migrate`, plus
service-specific ones.

`--role` (default `<PREFIX>ROLE`, else `all`) chooses what the process runs: `api` the routes, `consumer`
the consumers, workers and outbox relay, `all` both (lifecycle_shared.runtime). Every role listens on
its port for `/healthz`, `/readyz` and `/metrics`.

`serve` runs one uvicorn process, or with `<PREFIX>WORKERS=N` (N > 1) uvicorn's supervisor and N
worker processes sharing one listening socket. Each worker builds its own app (its own producer,
database pool, caches) with `create_app(settings_cls())`, as the single process does; the workers
find both through `lifecycle_shared.cli:worker_app`, an import string uvicorn can load after
spawning them.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI

from lifecycle_shared.logging import configure_logging
from lifecycle_shared.migrations import upgrade_to_head
from lifecycle_shared.runtime import ROLES
from lifecycle_shared.settings import ServiceSettings
from lifecycle_shared.tracing import configure_tracing

# What a spawned worker builds (JSON: service, settings class, app factory); set by the supervisor.
WORKER_SPEC_ENV = "LIFECYCLE_SERVE_WORKER_SPEC"

# A service's own settings class (a ServiceSettings), as its create_app and commands take it.
Settings = TypeVar("Settings", bound=ServiceSettings)


def tune_gc() -> None:
    # Fewer, later collections: GC was the hidden cost in the measured baselines.
    gc.set_threshold(50_000, 20, 100)
    gc.freeze()


def _uvicorn_options(settings: ServiceSettings) -> dict[str, Any]:
    return {"host": settings.host, "port": settings.port, "log_config": None, "access_log": False,
            "timeout_graceful_shutdown": 5}


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """One process: this app, on this process's event loop."""
    tune_gc()
    exit_0_after_sigterm()
    uvicorn.run(app, **_uvicorn_options(settings))


def exit_0_after_sigterm() -> None:
    """uvicorn shuts down gracefully on SIGTERM (the lifespan drains the consumers), then raises the signal
    again for the handler it found: this one, so a clean stop ends with status 0, not killed by SIGTERM."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))


def _import_path(obj: Callable[..., object]) -> str:
    path = f"{obj.__module__}:{obj.__qualname__}"
    if "<locals>" in path:
        raise ValueError(f"{path}: workers > 1 needs a module-level settings class and create_app")
    return path


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    target = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target


def serve_workers(*, service: str, settings_cls: type[Settings],
                  create_app: Callable[[Settings], FastAPI], settings: Settings) -> None:
    """`settings.workers` processes on one port, each running `worker_app()`."""
    os.environ[WORKER_SPEC_ENV] = json.dumps({"service": service, "settings": _import_path(settings_cls),
                                              "create_app": _import_path(create_app), "role": settings.role})
    uvicorn.run("lifecycle_shared.cli:worker_app", factory=True, workers=settings.workers,
                **_uvicorn_options(settings))


def worker_app() -> FastAPI:
    """uvicorn's factory in each spawned worker: the service's app, then the same GC tuning as `serve`."""
    spec = json.loads(os.environ[WORKER_SPEC_ENV])
    settings = _load(spec["settings"])(role=spec["role"])
    configure_logging(service=spec["service"], level=settings.log_level)
    configure_tracing(service=spec["service"])
    app: FastAPI = _load(spec["create_app"])(settings)
    tune_gc()
    return app


def _serve_options(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="serve")
    parser.add_argument("--role", choices=ROLES, default=None,
                        help="api: the routes; consumer: consumers, workers and the outbox relay; all: both "
                             "(default: <PREFIX>ROLE, else all)")
    return parser.parse_args(args)


def main(*, service: str, settings_cls: type[Settings], create_app: Callable[[Settings], FastAPI],
         migrations_dir: Path, commands: dict[str, Callable[[Settings, list[str]], None]] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m lifecycle_{service.replace('-', '_')}")
    names = ["serve", "migrate", *(commands or {})]
    parser.add_argument("command", nargs="?", default="serve", choices=names)
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args()
    role = _serve_options(ns.args).role if ns.command == "serve" else None
    settings = settings_cls(**({"role": role} if role else {}))
    configure_logging(service=service, level=settings.log_level)
    if ns.command == "serve":
        configure_tracing(service=service)
    if ns.command == "migrate":
        upgrade_to_head(database_url=settings.database_url, migrations_dir=migrations_dir)
    elif ns.command == "serve" and settings.workers > 1:
        serve_workers(service=service, settings_cls=settings_cls, create_app=create_app, settings=settings)
    elif ns.command == "serve":
        serve(create_app(settings), settings)
    else:
        (commands or {})[ns.command](settings, ns.args)
