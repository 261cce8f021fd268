"""Command-line tools and the generators of the demo and benchmark datasets (not part of the method library)."""
