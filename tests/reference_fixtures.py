"""Fixtures for the reference campaign API (filled in with the reference API)."""
