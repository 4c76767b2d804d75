"""Lifecycle's shared package: event contracts, Kafka runner, DB plumbing, settings, logging."""
