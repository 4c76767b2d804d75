"""The embedded stack: a Kafka-compatible broker and a real PostgreSQL, both from PyPI,
plus the four services, for one machine and for the tests."""
