"""Ingest: authenticates storefronts, validates touchpoints, publishes them to Kafka."""
