"""clustering package."""
