"""Built-in calculators, one per module, grouped by domain. The registry imports them on first use."""
