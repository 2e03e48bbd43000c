"""devcluster package."""
