"""Public marketplace gallery routes (filled in by their owner)."""

urlpatterns: list = []
