"""API keys that customers issue for their projects (and, later, API products and endpoints)."""
