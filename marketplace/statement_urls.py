"""The partner's statements, under /o/<slug>/partner/ (namespace `marketplace`)."""

from django.urls import path

from marketplace import statement_views

urlpatterns = [
    path("statements/", statement_views.statements, name="statement_list"),
    path(
        "statements/<uuid:statement_id>/",
        statement_views.statement_detail,
        name="statement_detail",
    ),
    path(
        "statements/<uuid:statement_id>.csv",
        statement_views.statement_csv,
        name="statement_csv",
    ),
]
