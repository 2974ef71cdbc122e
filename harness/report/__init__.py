"""Leaderboards and comparisons built from stored run records (pandas tables, scipy statistics)."""
