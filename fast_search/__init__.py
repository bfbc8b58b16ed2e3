"""fast_search package."""
