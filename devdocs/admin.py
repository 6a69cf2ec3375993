"""Admin registrations live beside their part of the docs portal."""

from devdocs import changelog_admin, guides_admin, onboarding_admin, status_admin  # noqa: F401
