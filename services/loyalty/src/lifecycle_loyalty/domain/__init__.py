"""Pure earn rules: no I/O, no clock."""
