"""Messaging database: the message log (also the delivery queue), addresses, claims and merge aliases."""
