"""Messaging: turns stage transitions into per-stage messages and delivers them by email."""
