"""Moved to `workers.replays`; `main` still imports the loop from here."""

from lifecycle_stage_engine.workers.replays import replay_worker

__all__ = ["replay_worker"]
