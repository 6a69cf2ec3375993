"""Partner pages under /o/<slug>/partner/ (filled in by the marketplace work of issue #9)."""

urlpatterns: list = []
