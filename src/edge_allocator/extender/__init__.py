"""extender package."""
