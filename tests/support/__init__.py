"""Helpers the tests share: data builders, clients, fixtures. Test modules import from here, never from
one another."""
