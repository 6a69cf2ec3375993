"""Django admin for tenancy. Changes with business rules go through portal.services."""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from portal import services
from portal.admin_audit import AuditedAdminMixin
from portal.audit import Actor
from portal.models import (
    ApiToken,
    AuditLogEntry,
    Invitation,
    Membership,
    Organization,
    Project,
    User,
)


@admin.register(User)
class UserAdmin(AuditedAdminMixin, DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "is_staff", "is_active", "date_joined"]
    list_filter = ["is_staff", "is_superuser", "is_active"]
    search_fields = ["email", "first_name", "last_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    readonly_fields = ["created_at"]


@admin.register(Organization)
class OrganizationAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "slug", "member_count", "project_count", "created_at"]
    search_fields = ["name", "slug", "memberships__user__email"]
    readonly_fields = ["id", "created_at"]
    date_hierarchy = "created_at"
    inlines = [MembershipInline]

    @admin.display(description="members")
    def member_count(self, obj: Organization) -> int:
        return obj.memberships.count()

    @admin.display(description="projects")
    def project_count(self, obj: Organization) -> int:
        return obj.projects.count()


@admin.register(Membership)
class MembershipAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "organization__slug", "organization__name"]
    autocomplete_fields = ["user", "organization"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "organization", "role", "status", "created_at", "expires_at"]
    list_filter = ["status", "role"]
    search_fields = ["email", "organization__slug"]
    readonly_fields = [field.name for field in Invitation._meta.fields]
    actions = ["revoke_invitations"]

    def has_add_permission(self, request) -> bool:
        return False  # invitations are sent from the portal, which e-mails the secret link

    @admin.action(description="Revoke selected invitations")
    def revoke_invitations(self, request, queryset):
        actor = Actor.from_request(request)
        for invitation in queryset:
            services.invitation_revoke(actor=actor, invitation=invitation)
        self.message_user(request, "Invitations revoked.", messages.SUCCESS)


@admin.register(Project)
class ProjectAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "organization", "created_at"]
    search_fields = ["name", "organization__slug", "organization__name"]
    list_filter = ["created_at"]
    autocomplete_fields = ["organization"]
    readonly_fields = ["id", "created_at"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created by the portal or `manage.py create_token`, which show the secret."""

    list_display = [
        "name",
        "kind",
        "organization",
        "prefix",
        "scopes",
        "is_active",
        "last_used_at",
        "created_at",
    ]
    list_filter = ["kind", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "organization__slug"]
    readonly_fields = [field.name for field in ApiToken._meta.fields]
    actions = ["revoke_tokens"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(boolean=True)
    def is_active(self, obj: ApiToken) -> bool:
        return obj.is_active

    @admin.action(description="Revoke selected tokens")
    def revoke_tokens(self, request, queryset):
        actor = Actor.from_request(request)
        for token in queryset:
            services.token_revoke(actor=actor, token=token)
        self.message_user(request, "Tokens revoked.", messages.SUCCESS)


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only for everyone, operators included."""

    list_display = [
        "created_at",
        "organization",
        "actor_label",
        "action",
        "target_label",
        "ip_address",
        "request_id",
    ]
    list_filter = ["actor_type", "action", "created_at"]
    search_fields = [
        "action",
        "actor_label",
        "target_label",
        "target_id",
        "request_id",
        "organization__slug",
    ]
    date_hierarchy = "created_at"
    list_select_related = ["organization"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
