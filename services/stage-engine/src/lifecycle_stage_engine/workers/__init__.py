"""The stage engine's background workers, beside the touchpoint consumer: each owns its transactions and
commits what it changes through `writes.writing` (rows, outbox, a woken relay).

- `sweeper`: time-based moves (at-risk, lapsed) when their moment comes; P(alive) moves for the analytics.
- `replays`: replays and dry runs of a rule set over stored history, as jobs with progress.
- `analytics`: model fits and the scoring refresh (which may move buyers through `sweeper.flag_low_p_alive`).
"""
