"""The API reference, mounted at /docs/ (DOCS-1) with its collections (DOCS-4)."""

from django.urls import path, register_converter

from devdocs import reference_views


class VersionConverter:
    """A version label as stored (ApiVersion.version): anything but a slash, 32 at most."""

    regex = r"[^/]{1,32}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(VersionConverter, "apiversion")

app_name = "reference"

urlpatterns = [
    path("", reference_views.docs_index, name="index"),
    path("<slug:product>/", reference_views.product_latest, name="product"),
    path("<slug:product>/<apiversion:version>/", reference_views.version_reference, name="version"),
    path(
        "<slug:product>/<apiversion:version>/postman.json",
        reference_views.postman,
        name="postman",
    ),
    path(
        "<slug:product>/<apiversion:version>/insomnia.json",
        reference_views.insomnia,
        name="insomnia",
    ),
]
