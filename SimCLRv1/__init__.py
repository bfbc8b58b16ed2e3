"""SimCLRv1 package."""
