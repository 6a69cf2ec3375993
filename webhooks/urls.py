"""An organization's webhook pages, mounted at /o/<slug>/webhooks/."""

from django.urls import path

from webhooks import views

app_name = "webhooks"

urlpatterns = [
    path("", views.endpoint_list, name="endpoint_list"),
    path("new", views.endpoint_create, name="endpoint_create"),
    path("<uuid:endpoint_id>/", views.endpoint_detail, name="endpoint_detail"),
    path("<uuid:endpoint_id>/edit", views.endpoint_edit, name="endpoint_edit"),
    path("<uuid:endpoint_id>/disable", views.endpoint_disable, name="endpoint_disable"),
    path("<uuid:endpoint_id>/enable", views.endpoint_enable, name="endpoint_enable"),
    path("<uuid:endpoint_id>/delete", views.endpoint_delete, name="endpoint_delete"),
    path("<uuid:endpoint_id>/rotate", views.endpoint_rotate, name="endpoint_rotate"),
    path("<uuid:endpoint_id>/test", views.endpoint_test, name="endpoint_test"),
    path("<uuid:endpoint_id>/attempts", views.endpoint_attempts, name="endpoint_attempts"),
    path("<uuid:endpoint_id>/replay", views.endpoint_replay, name="endpoint_replay"),
    path(
        "<uuid:endpoint_id>/events/<str:event_id>/redeliver",
        views.event_redeliver,
        name="event_redeliver",
    ),
]
