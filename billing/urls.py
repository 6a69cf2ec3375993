from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("", views.usage, name="usage"),
    path("export.csv", views.usage_csv, name="usage_csv"),
]
