"""Stage-engine HTTP API: profiles and transition history."""
