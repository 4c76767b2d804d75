"""The loops that act on time: expiry."""
