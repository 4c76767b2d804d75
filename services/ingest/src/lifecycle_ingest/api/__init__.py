"""Ingest's HTTP API."""
