"""Loyalty: the points ledger (earn on orders, reverse on refunds, stage bonus)."""
