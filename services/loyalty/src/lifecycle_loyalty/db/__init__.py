"""Loyalty database: the append-only points ledger, and which customer a merged id belongs to."""
