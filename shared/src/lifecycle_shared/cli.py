"""Each service's command line: `serve` (default) and `migrate`, plus service-specific ones."""

from __future__ import annotations

import argparse
import gc
from collections.abc import Callable
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from lifecycle_shared.logging import configure_logging
from lifecycle_shared.migrations import upgrade_to_head
from lifecycle_shared.settings import ServiceSettings


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    # Fewer, later collections: GC was the hidden cost in the measured baselines.
    gc.set_threshold(50_000, 20, 100)
    gc.freeze()
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None,
                access_log=False, timeout_graceful_shutdown=5)


def main(*, service: str, settings_cls: type[ServiceSettings], create_app: Callable[[ServiceSettings], FastAPI],
         migrations_dir: Path, commands: dict[str, Callable[[ServiceSettings, list[str]], None]] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m lifecycle_{service.replace('-', '_')}")
    names = ["serve", "migrate", *(commands or {})]
    parser.add_argument("command", nargs="?", default="serve", choices=names)
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args()
    settings = settings_cls()
    configure_logging(service=service, level=settings.log_level)
    if ns.command == "migrate":
        upgrade_to_head(database_url=settings.database_url, migrations_dir=migrations_dir)
    elif ns.command == "serve":
        serve(create_app(settings), settings)
    else:
        (commands or {})[ns.command](settings, ns.args)
