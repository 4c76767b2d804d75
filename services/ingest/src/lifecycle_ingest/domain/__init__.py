"""Pure ingest rules: validating and normalising Segment-shaped touchpoints."""
