"""Messaging database: the message log (also the delivery queue)."""
