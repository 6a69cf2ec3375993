"""Portal routes. Everything about one organization lives under /o/<slug>/.

URL names start with the section they belong to (project_, key_, member_, token_, audit_):
the navigation highlights the current section from that prefix.
"""

from django.urls import include, path

from portal import views

app_name = "portal"

organization_urls = [
    path("", views.dashboard, name="dashboard"),
    path("projects/", views.project_list, name="project_list"),
    path("projects/new", views.project_create, name="project_create"),
    path("projects/<uuid:project_id>/", views.project_detail, name="project_detail"),
    path(
        "projects/<uuid:project_id>/keys/new", views.project_key_create, name="project_key_create"
    ),
    path("keys/", views.key_list, name="key_list"),
    path("keys/<uuid:key_id>/rotate", views.key_rotate, name="key_rotate"),
    path("keys/<uuid:key_id>/revoke", views.key_revoke, name="key_revoke"),
    path("keys/<uuid:key_id>/block", views.key_block, name="key_block"),
    path("blocks/<uuid:block_id>/lift", views.block_lift, name="block_lift"),
    path("members/", views.member_list, name="member_list"),
    path("members/invite", views.member_invite, name="member_invite"),
    path("members/<uuid:membership_id>/role", views.member_change_role, name="member_role"),
    path("members/<uuid:membership_id>/remove", views.member_remove, name="member_remove"),
    path(
        "invitations/<uuid:invitation_id>/revoke",
        views.member_invitation_revoke,
        name="member_invitation_revoke",
    ),
    path("settings/tokens/", views.token_list, name="token_list"),
    path("settings/tokens/<uuid:token_id>/revoke", views.token_revoke, name="token_revoke"),
    path("audit/", views.audit_log, name="audit_log"),
    path("audit.csv", views.audit_log_csv, name="audit_csv"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("orgs/new", views.organization_create, name="organization_create"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("o/<slug:slug>/", include(organization_urls)),
]
