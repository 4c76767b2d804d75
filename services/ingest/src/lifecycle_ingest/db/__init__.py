"""Ingest's database: sources (with their allowed origins) and their hashed API keys."""
