"""SimCLRv2 package."""
