"""`python -m lifecycle_stage_engine [serve | migrate | republish-erasures --since TIME [--from-database-url URL]]`."""

from pathlib import Path

from lifecycle_shared import cli

from lifecycle_stage_engine.main import create_app
from lifecycle_stage_engine.republication import republish_erasures_command
from lifecycle_stage_engine.settings import StageEngineSettings

if __name__ == "__main__":
    cli.main(service="stage-engine", settings_cls=StageEngineSettings, create_app=create_app,
             migrations_dir=Path(__file__).resolve().parent / "migrations",
             commands={"republish-erasures": republish_erasures_command})
