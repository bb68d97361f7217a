"""Probes, heads, metrics, statistics and the protocol's probe choices."""
