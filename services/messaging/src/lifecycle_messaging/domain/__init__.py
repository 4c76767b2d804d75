"""Pure messaging rules: which template a transition calls for and its rendering, what may go into a
header, and whose a message is once identities merge."""
