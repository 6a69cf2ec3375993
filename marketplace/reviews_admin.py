"""Admin for app reviews and their reports (filled in by its owner)."""
