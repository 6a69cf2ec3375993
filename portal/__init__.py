"""Tenancy and the portal: users, organizations, memberships, projects, tokens, audit, pages."""
