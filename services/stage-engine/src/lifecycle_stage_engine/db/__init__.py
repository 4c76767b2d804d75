"""Stage engine database: profiles, identities, the event log and transitions."""
