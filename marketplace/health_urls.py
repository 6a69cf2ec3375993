"""The operator's marketplace health page (filled in by issue #9's work)."""

urlpatterns: list = []
