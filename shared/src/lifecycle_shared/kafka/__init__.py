"""Kafka plumbing: client factories, the consumer runner and the outbox relay."""
