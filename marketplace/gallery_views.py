"""The public marketplace (`/marketplace/`): gallery, app pages, images, reviews. Thin:
gallery_selectors reads, reviews_services writes.

Reading needs no sign-in. Writing a review or a report does; the user acts for one of their
own organizations (chosen with `?org=<slug>`, default the first they may review for), which
is resolved from their memberships here, so a form can never name another organization.
"""

from django import forms
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from common.errors import NotFound, TollgateError
from marketplace import gallery_selectors as selectors
from marketplace import reviews_services
from marketplace.models import CATEGORIES, App, AppReview, Install
from portal.audit import Actor
from portal.forms import add_service_error
from portal.models import Membership
from portal.selectors import memberships_for_user

PAGE_SIZE = 24
REVIEWS_PAGE_SIZE = 20
RATINGS = [(n, f"{n} star{'s' if n > 1 else ''}") for n in range(5, 0, -1)]


class ReviewForm(forms.Form):
    rating = forms.TypedChoiceField(choices=RATINGS, coerce=int, widget=forms.RadioSelect)
    title = forms.CharField(max_length=reviews_services.MAX_TITLE, required=False)
    body = forms.CharField(
        max_length=reviews_services.MAX_BODY,
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        label="Review",
        help_text="Public, shown with your organization's name. Plain text.",
    )


class ReportForm(forms.Form):
    reason = forms.CharField(
        max_length=reviews_services.MAX_REASON,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What breaks the rules: abuse, spam, personal data, not about this app…",
    )


def _image_response(data: bytes, content_type: str) -> HttpResponse:
    response = HttpResponse(data, content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    # Short: a suspended app's images must not stay public in caches for long.
    response["Cache-Control"] = "public, max-age=300"
    return response


@require_GET
def gallery(request: HttpRequest) -> HttpResponse:
    filters = selectors.gallery_filters_parse(request.GET)
    page = Paginator(selectors.gallery_list(filters=filters), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    for app in page:
        app.stars = selectors.rating_stars(app.rating)
        app.category_names = [CATEGORIES[code] for code in app.categories if code in CATEGORIES]
    return render(
        request,
        "marketplace/gallery/list.html",
        {
            "page": page,
            "filters": filters,
            "categories": CATEGORIES,
            "sorts": selectors.SORTS,
        },
    )


def _reviewer_memberships(request: HttpRequest, app: App) -> list[Membership]:
    """The user's organizations that may review this app: the role rule, not the partner,
    and only organizations that installed it."""
    if not request.user.is_authenticated:
        return []
    memberships = [
        membership
        for membership in memberships_for_user(user=request.user).order_by("organization__name")
        if membership.role in reviews_services.REVIEW_ROLES
        and membership.organization_id != app.partner.organization_id
    ]
    installed = set(
        Install.objects.filter(
            app=app, organization_id__in=[m.organization_id for m in memberships]
        ).values_list("organization_id", flat=True)
    )
    return [membership for membership in memberships if membership.organization_id in installed]


def _chosen(memberships: list[Membership], slug: str | None) -> Membership | None:
    for membership in memberships:
        if membership.organization.slug == slug:
            return membership
    return memberships[0] if memberships and not slug else None


def _app_or_404(slug: str) -> App:
    try:
        return selectors.gallery_app_get(slug=slug)
    except NotFound as error:
        raise Http404(error.detail) from error


def _render_app(
    request: HttpRequest,
    app: App,
    *,
    membership: Membership | None = None,
    review_form: ReviewForm | None = None,
    report_form: ReportForm | None = None,
    report_review_id=None,
    status: int = 200,
) -> HttpResponse:
    memberships = _reviewer_memberships(request, app)
    if membership is None:
        membership = _chosen(memberships, request.GET.get("org"))
    own_review = (
        selectors.review_for(app=app, organization=membership.organization) if membership else None
    )
    if membership is not None and review_form is None:
        initial = (
            {"rating": own_review.rating, "title": own_review.title, "body": own_review.body}
            if own_review
            else None
        )
        review_form = ReviewForm(initial=initial)
    reviews = Paginator(selectors.visible_reviews(app=app), REVIEWS_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    reported = (
        selectors.reported_review_ids(app=app, organization=membership.organization)
        if membership
        else set()
    )
    return render(
        request,
        "marketplace/gallery/app.html",
        {
            "app": app,
            "stars": selectors.rating_stars(app.rating),
            "description": selectors.render_untrusted_markdown(app.description),
            "category_names": {
                code: CATEGORIES[code] for code in app.categories if code in CATEGORIES
            },
            "screenshots": selectors.app_screenshots(app=app),
            "support_url": selectors.safe_link(app.support_url),
            "privacy_url": selectors.safe_link(app.privacy_url),
            "partner_website": selectors.safe_link(app.partner.website),
            "page": reviews,
            "reviews": [(review, selectors.rating_stars(review.rating)) for review in reviews],
            "memberships": memberships,
            "membership": membership,
            "own_review": own_review,
            "review_form": review_form,
            "report_form": report_form,
            "report_review_id": report_review_id,
            "reported": reported,
            "is_partner_member": request.user.is_authenticated
            and memberships_for_user(user=request.user)
            .filter(organization_id=app.partner.organization_id)
            .exists(),
        },
        status=status,
    )


@require_GET
def app_page(request: HttpRequest, slug: str) -> HttpResponse:
    return _render_app(request, _app_or_404(slug))


@require_GET
def app_logo(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        data, content_type = selectors.gallery_logo_get(slug=slug)
    except NotFound as error:
        raise Http404(error.detail) from error
    return _image_response(data, content_type)


@require_GET
def app_screenshot(request: HttpRequest, slug: str, screenshot_id) -> HttpResponse:
    try:
        data, content_type = selectors.gallery_screenshot_get(
            slug=slug, screenshot_id=screenshot_id
        )
    except NotFound as error:
        raise Http404(error.detail) from error
    return _image_response(data, content_type)


def _acting_membership(request: HttpRequest, app: App) -> Membership | None:
    """The membership named by the posted `organization` slug, among the user's own."""
    slug = request.POST.get("organization") or None
    return _chosen(_reviewer_memberships(request, app), slug) if slug else None


def _app_url(app: App, membership: Membership | None) -> str:
    url = reverse("gallery:app", kwargs={"slug": app.slug})
    return f"{url}?org={membership.organization.slug}" if membership else url


@require_POST
def review_submit(request: HttpRequest, slug: str) -> HttpResponse:
    app = _app_or_404(slug)
    if not request.user.is_authenticated:
        return redirect_to_login(reverse("gallery:app", kwargs={"slug": app.slug}))
    membership = _acting_membership(request, app)
    form = ReviewForm(request.POST)
    if membership is None:
        form.is_valid()
        form.add_error(
            None,
            "Review as one of your organizations where you are an owner, admin or developer "
            "(a partner cannot review its own app).",
        )
        return _render_app(request, app, review_form=form, status=400)
    if form.is_valid():
        try:
            reviews_services.review_save(
                actor=Actor.from_request(request),
                app=app,
                organization=membership.organization,
                role=membership.role,
                **form.cleaned_data,
            )
        except TollgateError as error:
            if not add_service_error(form, error):
                form.add_error(None, error.detail)
        else:
            messages.success(request, f"{membership.organization.name}'s review is saved.")
            return redirect(_app_url(app, membership))
    return _render_app(request, app, membership=membership, review_form=form, status=400)


@require_POST
def review_report(request: HttpRequest, slug: str, review_id) -> HttpResponse:
    app = _app_or_404(slug)
    if not request.user.is_authenticated:
        return redirect_to_login(reverse("gallery:app", kwargs={"slug": app.slug}))
    review = AppReview.objects.filter(app=app, pk=review_id, hidden=False).first()
    if review is None:
        raise Http404("No such review.")
    membership = _acting_membership(request, app)
    form = ReportForm(request.POST)
    if membership is None:
        form.is_valid()
        form.add_error(
            None, "Report as one of your organizations where you are an owner, admin or developer."
        )
    elif form.is_valid():
        try:
            reviews_services.review_report(
                actor=Actor.from_request(request),
                review=review,
                organization=membership.organization,
                role=membership.role,
                reason=form.cleaned_data["reason"],
            )
        except TollgateError as error:
            if not add_service_error(form, error):
                form.add_error(None, error.detail)
        else:
            messages.success(request, "Thank you: the operator will look at this review.")
            return redirect(_app_url(app, membership))
    return _render_app(
        request,
        app,
        membership=membership,
        report_form=form,
        report_review_id=review.id,
        status=400,
    )
