"""Ingest's database: sources and their hashed write keys."""
