"""Metrics: torch kernels and O(classes x bins) states that end in plain numbers."""
