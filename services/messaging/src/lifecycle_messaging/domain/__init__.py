"""Pure messaging rules: which template a transition calls for, and its rendering."""
