"""Stage engine: identity resolution and the customer's lifecycle stage."""
