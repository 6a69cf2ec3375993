"""The public changelog (DOCS-7): /changelog, its Atom feed, the deprecation timeline and
one entry per page. No sign-in; mounted at the site root by config/urls.py."""

from django.urls import path
from django.views.generic import RedirectView

from devdocs import changelog_views

app_name = "changelog"

urlpatterns = [
    path("changelog", changelog_views.changelog_list, name="list"),
    # A typed trailing slash finds the list too (filters kept).
    path("changelog/", RedirectView.as_view(pattern_name="changelog:list", query_string=True)),
    path("changelog.atom", changelog_views.ChangelogFeed(), name="feed"),
    # Before <slug>: "deprecations" is a reserved slug (devdocs.changelog.RESERVED_SLUGS).
    path("changelog/deprecations", changelog_views.deprecations, name="deprecations"),
    path("changelog/<slug:slug>", changelog_views.changelog_entry, name="entry"),
]
