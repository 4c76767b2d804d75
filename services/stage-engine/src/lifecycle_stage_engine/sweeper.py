"""Moved to `workers.sweeper`; `main` still imports the loop from here."""

from lifecycle_stage_engine.workers.sweeper import sweeper

__all__ = ["sweeper"]
