"""Loyalty database: the append-only points ledger."""
