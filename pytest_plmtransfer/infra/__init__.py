"""Errors, locks, temp files and atomic writes, disk space, hashing, identity, provenance, threads."""
