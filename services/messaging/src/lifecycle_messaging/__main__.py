"""`python -m lifecycle_messaging [serve|migrate]`."""

from pathlib import Path

from lifecycle_shared import cli

from lifecycle_messaging.main import create_app
from lifecycle_messaging.settings import MessagingSettings

if __name__ == "__main__":
    cli.main(service="messaging", settings_cls=MessagingSettings, create_app=create_app,
             migrations_dir=Path(__file__).resolve().parent / "migrations")
