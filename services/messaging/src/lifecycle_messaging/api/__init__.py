"""Messaging HTTP API: the message log."""
