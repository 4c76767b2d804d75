"""`python -m lifecycle_loyalty [serve|migrate]`."""

from pathlib import Path

from lifecycle_shared import cli

from lifecycle_loyalty.main import create_app
from lifecycle_loyalty.settings import LoyaltySettings

if __name__ == "__main__":
    cli.main(service="loyalty", settings_cls=LoyaltySettings, create_app=create_app,
             migrations_dir=Path(__file__).resolve().parent / "migrations")
