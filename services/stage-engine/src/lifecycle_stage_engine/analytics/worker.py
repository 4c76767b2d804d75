"""Moved to `workers.analytics`; `main` still imports the loop from here."""

from lifecycle_stage_engine.workers.analytics import analytics_worker

__all__ = ["analytics_worker"]
