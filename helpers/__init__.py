"""Shared helpers: repository paths, robust image loading, JSON I/O."""
