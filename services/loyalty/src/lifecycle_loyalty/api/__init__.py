"""Loyalty HTTP API: balances and ledger history."""
