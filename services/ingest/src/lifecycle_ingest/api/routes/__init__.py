"""Ingest routes: Segment-compatible event endpoints and the key admin API."""
