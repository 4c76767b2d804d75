"""Customer analytics: RFM, CLV, cohorts and funnel figures, computed from the stage engine's own data.

All pure functions (no I/O, no clock): `rfm` (scores and the named segments of the R x FM grid),
`cohorts` (retention by first-purchase month, optionally by acquisition channel or source), `funnel` (entries,
conversion, drop-off and median time per journey stage in a period), `clv` (the
predictive models: BG/NBD and Gamma-Gamma by maximum likelihood, CLV over a horizon, churn risk).
"""
