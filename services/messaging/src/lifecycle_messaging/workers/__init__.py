"""Messaging's loops that act on time: webhook delivery."""
