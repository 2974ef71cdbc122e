"""Standardised training loops (imports torch: loaded only when a run starts)."""
