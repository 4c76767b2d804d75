"""Pure lifecycle rules: no I/O, no clock."""
