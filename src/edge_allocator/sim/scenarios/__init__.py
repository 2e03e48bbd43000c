"""Built-in scenario families (YAML)."""
