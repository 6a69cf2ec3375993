"""Onboarding milestones for the operator (OPS-1): read-only, with the adoption funnel."""

from django.contrib import admin

from devdocs.models import OnboardingMilestone
from devdocs.onboarding import ORDER, adoption_funnel


@admin.register(OnboardingMilestone)
class OnboardingMilestoneAdmin(admin.ModelAdmin):
    list_display = ["organization", "step", "reached_at", "recorded_at"]
    list_filter = ["step"]
    search_fields = ["organization__name", "organization__slug"]
    date_hierarchy = "reached_at"
    list_select_related = ["organization"]
    change_list_template = "admin/devdocs/onboardingmilestone/change_list.html"

    def has_add_permission(self, request) -> bool:
        return False  # found in real data only

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        funnel = adoption_funnel()
        steps = [(step.label, funnel.reached[step]) for step in ORDER]
        extra = {"funnel": funnel, "funnel_steps": steps, **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)
