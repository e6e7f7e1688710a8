"""pytest plugin entry point (filled in by the reports issue)."""
