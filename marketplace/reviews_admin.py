"""The operator's side of reviews: see reports, hide a review (or show it again), dismiss
unfounded reports. Customers' words are read-only here; every decision goes through
reviews_services, which audits it."""

from django.contrib import admin, messages
from django.db.models import Count, Q

from marketplace.models import AppReview, ReviewReport
from marketplace.reviews_services import review_hide, review_reports_dismiss
from portal.admin_audit import AuditedAdminMixin
from portal.audit import Actor


def _each_review(modeladmin, request, reviews, service, label: str) -> None:
    actor = Actor.from_request(request)
    for review in reviews:
        service(actor=actor, review=review)
    modeladmin.message_user(request, f"{len(reviews)} review(s) {label}.", messages.SUCCESS)


@admin.action(description="Hide the review (not shown, not counted; resolves its reports)")
def hide_reviews(modeladmin, request, queryset):
    _each_review(modeladmin, request, list(queryset), review_hide, "hidden")


@admin.action(description="Show the review again")
def show_reviews(modeladmin, request, queryset):
    def show(*, actor, review):
        return review_hide(actor=actor, review=review, hidden=False)

    _each_review(modeladmin, request, list(queryset), show, "shown")


@admin.action(description="Dismiss the reports (the review stays)")
def dismiss_reports(modeladmin, request, queryset):
    _each_review(modeladmin, request, list(queryset), review_reports_dismiss, "cleared of reports")


class ReportInline(admin.TabularInline):
    model = ReviewReport
    extra = 0
    can_delete = False
    fields = ["organization", "reason", "created_at", "resolved_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AppReview)
class AppReviewAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = [
        "app",
        "organization",
        "rating",
        "title",
        "hidden",
        "open_reports",
        "updated_at",
    ]
    list_filter = ["hidden", "rating"]
    search_fields = ["app__name", "organization__name", "title", "body"]
    list_select_related = ["app", "organization"]
    actions = [hide_reviews, show_reviews, dismiss_reports]
    inlines = [ReportInline]
    fields = ["app", "organization", "author", "rating", "title", "body", "hidden", "updated_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(open_report_count=Count("reports", filter=Q(reports__resolved_at=None)))
        )

    @admin.display(description="Open reports", ordering="open_report_count")
    def open_reports(self, review: AppReview) -> int:
        return review.open_report_count

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # hidden, never deleted: the record of what was said stays


@admin.action(description="Hide the reported reviews (resolves their reports)")
def hide_reported_reviews(modeladmin, request, queryset):
    reviews = list(AppReview.objects.filter(reports__in=queryset).distinct())
    _each_review(modeladmin, request, reviews, review_hide, "hidden")


@admin.action(description="Dismiss the reports (the reviews stay)")
def dismiss_selected_reports(modeladmin, request, queryset):
    reviews = list(AppReview.objects.filter(reports__in=queryset).distinct())
    _each_review(modeladmin, request, reviews, review_reports_dismiss, "cleared of reports")


@admin.register(ReviewReport)
class ReviewReportAdmin(admin.ModelAdmin):
    list_display = ["review", "review_text", "organization", "reason", "created_at", "resolved_at"]
    list_filter = [("resolved_at", admin.EmptyFieldListFilter)]
    list_select_related = ["review__app", "organization"]
    actions = [hide_reported_reviews, dismiss_selected_reports]
    readonly_fields = ["review", "organization", "reason", "created_at", "resolved_at"]

    @admin.display(description="Review")
    def review_text(self, report: ReviewReport) -> str:
        text = f"{report.review.title} {report.review.body}".strip()
        return text[:120] + ("…" if len(text) > 120 else "")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None  # the list and its actions; a report itself is not edited

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
