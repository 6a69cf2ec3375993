"""The sandbox mock server, mounted at /sandbox/ (DOCS-3): every method, every path."""

from django.urls import path, re_path

from devdocs import sandbox_views

app_name = "sandbox"

urlpatterns = [
    path("<slug:product>/<str:version>/<path:rest>", sandbox_views.sandbox, name="call"),
    path("<slug:product>/<str:version>/", sandbox_views.sandbox, name="root"),
    path("<slug:product>/<str:version>", sandbox_views.sandbox),
    re_path(r"^(?P<rest>.*)$", sandbox_views.sandbox_unknown, name="unknown"),
]
