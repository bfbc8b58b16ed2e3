"""SimCLR v1/v2 extractor entries (filled in by the SimCLR work; empty until then)."""

ENTRIES: dict = {}
