"""`python -m lifecycle_devstack up`: broker, PostgreSQL, mail sink, migrations, four services.

Everything lives in one data folder (default `.lifecycle/data`). Point at a real Kafka or
PostgreSQL with LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS / LIFECYCLE_DEVSTACK_POSTGRES_URL instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import mailbox
import os
import secrets
import signal
import subprocess
import sys
import threading
from pathlib import Path

from lifecycle_devstack.broker import EmbeddedBroker
from lifecycle_devstack.databases import create_databases
from lifecycle_devstack.postgres import EmbeddedPostgres
from lifecycle_devstack.processes import stop_process
from lifecycle_devstack.services import BY_NAME, SERVICES, ServiceProcess, StackConfig, run_module


def start_mail_sink(maildir: Path, port: int, log_path: Path) -> subprocess.Popen:
    """A local SMTP server (aiosmtpd) that stores every email in a Maildir folder."""
    mailbox.Maildir(maildir, create=True)  # creates tmp/, new/, cur/
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "--smtputf8", "-l", f"127.0.0.1:{port}",
                             "-c", "aiosmtpd.handlers.Mailbox", str(maildir)],
                            stdout=log, stderr=log, start_new_session=True)


def demo_write_key(config: StackConfig, data_dir: Path, *, server: bool = False) -> str:
    """The demo storefront's write key (or server key, for server-side sends such as orders), created
    once and kept in the data folder (local use only)."""
    path = data_dir / ("demo-server-key" if server else "demo-write-key")
    if not path.exists():
        path.write_text(run_module(BY_NAME["ingest"], config, "create-key", "demo-storefront",
                                   *(["--server"] if server else [])).strip())
    return path.read_text().strip()


def api_tokens(data_dir: Path) -> str:
    """LIFECYCLE_API_TOKENS if set, else a token generated once and kept in the data folder."""
    return os.environ.get("LIFECYCLE_API_TOKENS", "").strip() or _kept_secret(data_dir / "api-token")


def erasure_pepper(data_dir: Path) -> str:
    """LIFECYCLE_ERASURE_PEPPER if set, else one generated once and kept in the data folder (docs/erasure.md:
    losing it ends the suppression of erased addresses)."""
    return os.environ.get("LIFECYCLE_ERASURE_PEPPER", "").strip() or _kept_secret(data_dir / "erasure-pepper")


ADMIN_TOKEN_VARIABLES = ("LIFECYCLE_INGEST_ADMIN_TOKEN", "LIFECYCLE_STAGE_ENGINE_ADMIN_TOKEN",
                         "LIFECYCLE_MESSAGING_ADMIN_TOKEN", "LIFECYCLE_LOYALTY_ADMIN_TOKEN")


def admin_tokens(data_dir: Path) -> dict[str, str]:
    """The admin APIs' tokens (ingest's keys and sources, the stage engine's rules and replays, loyalty's
    rules and rewards): each as
    set, else one token generated once and kept in the data folder."""
    generated = _kept_secret(data_dir / "admin-token")
    return {name: os.environ.get(name, "").strip() or generated for name in ADMIN_TOKEN_VARIABLES}


def _kept_secret(path: Path) -> str:
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()


def prepare_data_dir(data_dir: Path) -> Path:
    """The data folder and its `logs/` (the mail sink's and every service's log go there, whichever
    broker the stack uses); returns the logs folder."""
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs


def up(data_dir: Path, *, postgres_port: int, kafka_port: int, smtp_port: int, first_port: int) -> None:
    """Start everything, wait for Ctrl-C, stop everything. Every part is registered to be stopped the moment
    it is started (in reverse order), so any failure on the way up — PostgreSQL up but the broker not, a
    migration failing, a service never ready — stops what was started before it and leaves nothing behind."""
    logs = prepare_data_dir(data_dir)
    with contextlib.ExitStack() as started:
        started.callback(lambda: print("stopped.", flush=True))
        postgres_url = os.environ.get("LIFECYCLE_DEVSTACK_POSTGRES_URL")
        if not postgres_url:
            postgres = EmbeddedPostgres(data_dir / "postgres", postgres_port)
            started.callback(postgres.stop)  # before start(): a server that never answers is stopped too
            postgres.start()
            postgres_url = postgres.server_url
        bootstrap = os.environ.get("LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS")
        broker = None
        if not bootstrap:
            broker = EmbeddedBroker(kafka_port, logs / "broker.log")
            started.callback(broker.stop)
            broker.start()
            bootstrap = broker.bootstrap_servers
        idempotence = os.environ.get("LIFECYCLE_KAFKA_ENABLE_IDEMPOTENCE", "false" if broker else "true")
        config = StackConfig(kafka_bootstrap=bootstrap, kafka_idempotence=idempotence == "true",
                             embedded_broker=broker is not None, postgres_url=postgres_url, smtp_port=smtp_port,
                             ports={s.name: first_port + i for i, s in enumerate(SERVICES)},
                             api_tokens=api_tokens(data_dir), extra_env=admin_tokens(data_dir),
                             erasure_pepper=erasure_pepper(data_dir))
        messaging_url = f"http://127.0.0.1:{config.ports['messaging']}"
        config.extra_env["LIFECYCLE_STAGE_ENGINE_CAMPAIGNS_PAGE_URL"] = f"{messaging_url}/campaigns"
        mail = start_mail_sink(data_dir / "mail", smtp_port, logs / "mail.log")
        started.callback(stop_process, mail)
        processes = [ServiceProcess(s, config, logs / f"{s.name}.log") for s in SERVICES]
        for process in processes:
            started.callback(process.stop)
        started.callback(lambda: print("\nstopping...", flush=True))
        asyncio.run(create_databases(postgres_url, [s.database for s in SERVICES]))
        for service in SERVICES:
            run_module(service, config, "migrate")
        for process in processes:
            process.start()
        for process in processes:
            process.wait_ready()
        key = demo_write_key(config, data_dir)
        server_key = demo_write_key(config, data_dir, server=True)
        print_welcome(processes, key=key, server_key=server_key, api_token=config.api_token, data_dir=data_dir,
                      bootstrap=bootstrap, admin_token=config.extra_env["LIFECYCLE_STAGE_ENGINE_ADMIN_TOKEN"])
        wait_for_signal()


def print_welcome(processes: list[ServiceProcess], *, key: str, server_key: str, api_token: str, data_dir: Path,
                  bootstrap: str, admin_token: str) -> None:
    ingest = processes[0].url
    print("\nLifecycle is running.\n")
    for process in processes:
        print(f"  {process.service.name:<13} {process.url}   (docs: {process.url}/docs)")
    print(f"\n  Kafka bootstrap: {bootstrap}\n  Data folder: {data_dir}   (emails land in {data_dir}/mail)")
    print(f"  Demo write key: {key}")
    print(f"  Demo server key: {server_key}   (server-side only: orders, refunds, referrals)")
    print(f"  Read API token: {api_token}   (LIFECYCLE_API_TOKENS: profiles, messages and balances)")
    print(f"  Admin token: {admin_token}   (ingest's keys and sources; the stage engine's rules and replays; "
          "messaging's webhooks)\n\nTry:\n")
    # A messageId makes the call safe to retry: a repeat is recognised and applied once.
    body = ('{"event": "Product Viewed", "anonymousId": "visitor-1", "messageId": "demo-view-1", '
            '"properties": {"sku": "TEE-1"}}')
    print(f"  curl -u '{key}:' {ingest}/v1/track -H 'content-type: application/json' \\\n    -d '{body}'")
    print(f"  curl -H 'authorization: Bearer {api_token}' {processes[1].url}/v1/customers/visitor-1")
    print(f"\n  Dashboard (analytics): {processes[1].url}/dashboard#token={api_token}")
    print(f"  Campaigns (sends and lift): {processes[2].url}/campaigns#token={api_token}")
    print(f"  Loyalty finance (admin token): {processes[3].url}/finance#token={admin_token}")
    demo = "python3 dev.py demo" + ("" if ingest.endswith(f":{BY_NAME['ingest'].default_port}") else f" --url {ingest}")
    print(f"\n  {demo}   # fills the stack with a two-year demo shop (imported: nobody is messaged)\n\n"
          "Ctrl-C stops everything.", flush=True)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def wait_for_signal() -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python3 dev.py")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("up", help="run the whole system on the embedded broker and PostgreSQL")
    cmd.add_argument("--data-dir", type=Path, default=Path(".lifecycle/data"))
    cmd.add_argument("--postgres-port", type=int, default=15432)
    cmd.add_argument("--kafka-port", type=int, default=19092)
    cmd.add_argument("--smtp-port", type=int, default=1025)
    cmd.add_argument("--first-port", type=int, default=8000, help="ingest's port; the others follow")
    args = parser.parse_args()
    # A SIGTERM on the way up (a supervisor, `timeout`) unwinds like Ctrl-C: what was started is stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        _up(args)
    except KeyboardInterrupt:
        sys.exit(130)


def _up(args: argparse.Namespace) -> None:
    up(args.data_dir.resolve(), postgres_port=args.postgres_port, kafka_port=args.kafka_port,
       smtp_port=args.smtp_port, first_port=args.first_port)
