"""Customer reviews (MKT-3): one per organization and app (a second submit edits it), owners,
admins and developers only, never the partner itself; reports once per organization; the
operator hides a review in admin, which takes it out of the page and the average; audited."""

import pytest
from django.urls import reverse

from common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from marketplace.gallery_selectors import gallery_app_get
from marketplace.models import AppReview, ReviewReport
from marketplace.reviews_services import review_hide, review_report, review_save
from portal.audit import Actor
from portal.models import AuditLogEntry
from portal.roles import Role
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.marketplace.test_gallery import installed, make_app, make_partner

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")


def member(org, role=Role.DEVELOPER):
    user = UserFactory()
    MembershipFactory(organization=org, user=user, role=role)
    return user


@pytest.fixture
def app(org, other_org):
    """Listed, and installed by `org` and `other_org` (only installers review)."""
    made = make_app(make_partner(), name="Doc Sync")
    installed(made, org)
    installed(made, other_org)
    return made


def test_an_org_that_never_installed_the_app_cannot_review_it(client, app):
    stranger = OrganizationFactory()
    with pytest.raises(PermissionDenied) as raised:
        review_save(actor=SYSTEM, app=app, organization=stranger, role="owner", rating=5)
    assert raised.value.code == "not_installed"
    client.force_login(member(stranger, Role.OWNER))
    page = client.get(app_url(app))
    assert page.context["membership"] is None
    assert b"that installed this app can review it" in page.content
    posted = client.post(review_url(app), {"organization": stranger.slug, "rating": 5})
    assert posted.status_code in (400, 403) and not AppReview.objects.exists()


def test_an_org_that_uninstalled_the_app_may_still_review_it(app, org):
    from marketplace.installs import install_uninstall

    install_uninstall(actor=SYSTEM, install=app.installs.get(organization=org))
    review = review_save(actor=SYSTEM, app=app, organization=org, role="owner", rating=2)
    assert review.rating == 2


def app_url(app) -> str:
    return reverse("gallery:app", kwargs={"slug": app.slug})


def review_url(app) -> str:
    return reverse("gallery:review", kwargs={"slug": app.slug})


def report_url(app, review) -> str:
    return reverse("gallery:report", kwargs={"slug": app.slug, "review_id": review.id})


def test_one_review_per_org_and_a_second_submit_edits_it(client, app, org):
    user = member(org)
    client.force_login(user)
    first = client.post(
        review_url(app), {"organization": org.slug, "rating": 4, "title": "Good", "body": "Nice"}
    )
    assert first.status_code == 302
    second = client.post(
        review_url(app), {"organization": org.slug, "rating": 2, "title": "Meh", "body": ""}
    )
    assert second.status_code == 302

    review = AppReview.objects.get()
    assert (review.organization, review.rating, review.title, review.body) == (org, 2, "Meh", "")
    assert review.author == user
    actions = list(
        AuditLogEntry.objects.filter(target_id=str(review.id)).values_list("action", flat=True)
    )
    assert sorted(actions) == ["review.created", "review.updated"]
    page = client.get(app_url(app))
    assert page.context["own_review"] == review
    assert page.context["review_form"].initial["rating"] == 2
    assert b"Update your review" in page.content
    assert gallery_app_get(slug=app.slug).rating == 2


def test_each_organization_has_its_own_review(client, app, org, other_org):
    user = member(org)
    MembershipFactory(organization=other_org, user=user, role=Role.ADMIN)
    client.force_login(user)
    client.post(review_url(app), {"organization": org.slug, "rating": 5})
    client.post(review_url(app), {"organization": other_org.slug, "rating": 3})
    assert AppReview.objects.count() == 2
    shown = gallery_app_get(slug=app.slug)
    assert (shown.review_count, shown.rating) == (2, 4)
    page = client.get(app_url(app), {"org": other_org.slug})
    assert page.context["membership"].organization == other_org
    assert page.context["own_review"].rating == 3


@pytest.mark.parametrize(
    "data",
    [
        {"rating": 0},
        {"rating": 6},
        {"rating": "x"},
        {"rating": ""},
        {"rating": 4, "title": "t" * 121},
        {"rating": 4, "body": "b" * 5001},
        {"rating": 4, "body": "null\x00byte"},
        {"rating": 4, "title": "\x00"},
    ],
)
def test_bad_review_input_is_a_form_error_and_nothing_is_stored(client, app, org, data):
    client.force_login(member(org))
    response = client.post(review_url(app), {"organization": org.slug, **data})
    assert response.status_code == 400
    assert response.context["review_form"].errors
    assert b"errors" in response.content
    assert not AppReview.objects.exists()


def test_the_service_refuses_bad_input_itself(app, org):
    for rating in [0, 6, "4", 4.5, True, None]:
        with pytest.raises(InvalidInput):
            review_save(actor=SYSTEM, app=app, organization=org, role="owner", rating=rating)
    with pytest.raises(InvalidInput):
        review_save(
            actor=SYSTEM, app=app, organization=org, role="owner", rating=3, body="x" * 5001
        )
    with pytest.raises(InvalidInput):
        review_save(actor=SYSTEM, app=app, organization=org, role="owner", rating=3, body="\x00")
    assert not AppReview.objects.exists()


def test_a_body_of_exactly_5000_characters_is_accepted(app, org):
    review = review_save(
        actor=SYSTEM, app=app, organization=org, role="owner", rating=3, body="x" * 5000
    )
    assert len(review.body) == 5000


def test_partner_cannot_review_its_own_app(client, app):
    partner_org = app.partner.organization
    owner = member(partner_org, Role.OWNER)
    client.force_login(owner)
    response = client.post(review_url(app), {"organization": partner_org.slug, "rating": 5})
    assert response.status_code == 400
    assert not AppReview.objects.exists()
    assert b"Partners cannot review their own apps" in client.get(app_url(app)).content
    with pytest.raises(PermissionDenied):
        review_save(actor=SYSTEM, app=app, organization=partner_org, role="owner", rating=5)
    assert not AppReview.objects.exists()


@pytest.mark.parametrize("role", [Role.BILLING, Role.VIEWER])
def test_billing_and_viewer_roles_cannot_review(client, app, org, role):
    client.force_login(member(org, role))
    response = client.post(review_url(app), {"organization": org.slug, "rating": 5})
    assert response.status_code == 400
    assert not AppReview.objects.exists()
    with pytest.raises(PermissionDenied):
        review_save(actor=SYSTEM, app=app, organization=org, role=role, rating=5)


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.DEVELOPER])
def test_owners_admins_and_developers_review(client, app, org, role):
    client.force_login(member(org, role))
    assert client.post(review_url(app), {"organization": org.slug, "rating": 5}).status_code == 302
    assert AppReview.objects.filter(organization=org).count() == 1


def test_anonymous_cannot_review_and_is_sent_to_log_in(client, app):
    response = client.post(review_url(app), {"organization": "acme", "rating": 5})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert not AppReview.objects.exists()
    page = client.get(app_url(app))
    assert b"Log in</a> to review" in page.content
    assert b"data-review-form" not in page.content


def test_an_org_cannot_write_or_edit_another_orgs_review(client, app, org, other_org):
    theirs = review_save(
        actor=SYSTEM, app=app, organization=other_org, role="owner", rating=5, title="Great"
    )
    client.force_login(member(org))
    response = client.post(
        review_url(app), {"organization": other_org.slug, "rating": 1, "title": "Hacked"}
    )
    assert response.status_code == 400
    theirs.refresh_from_db()
    assert (theirs.rating, theirs.title) == (5, "Great")
    assert AppReview.objects.count() == 1
    # Choosing another org's view of the page does not act for it either.
    page = client.get(app_url(app), {"org": other_org.slug})
    assert page.context["membership"] is None


def test_reviews_of_unlisted_apps_are_refused(client, org):
    partner = make_partner()
    draft = make_app(partner, state="draft", name="Draft")
    client.force_login(member(org))
    assert (
        client.post(review_url(draft), {"organization": org.slug, "rating": 5}).status_code == 404
    )
    with pytest.raises(NotFound):
        review_save(actor=SYSTEM, app=draft, organization=org, role="owner", rating=5)
    assert not AppReview.objects.exists()


def test_a_review_is_reported_once_per_org(client, app, org, other_org):
    theirs = review_save(actor=SYSTEM, app=app, organization=other_org, role="owner", rating=1)
    client.force_login(member(org))
    response = client.post(report_url(app, theirs), {"organization": org.slug, "reason": "Spam"})
    assert response.status_code == 302
    again = client.post(report_url(app, theirs), {"organization": org.slug, "reason": "Again"})
    assert again.status_code == 400
    assert b"already reported" in again.content
    report = ReviewReport.objects.get()
    assert (report.organization, report.reason) == (org, "Spam")
    assert AuditLogEntry.objects.filter(action="review.reported", organization=org).count() == 1
    page = client.get(app_url(app))
    assert b"Reported by your organization." in page.content


@pytest.mark.parametrize("reason", ["", "   ", "r" * 501, "bad\x00"])
def test_a_report_needs_a_reason(client, app, org, other_org, reason):
    theirs = review_save(actor=SYSTEM, app=app, organization=other_org, role="owner", rating=1)
    client.force_login(member(org))
    response = client.post(report_url(app, theirs), {"organization": org.slug, "reason": reason})
    assert response.status_code == 400
    assert response.context["report_form"].errors
    assert not ReviewReport.objects.exists()


def test_an_org_does_not_report_its_own_review(app, org):
    own = review_save(actor=SYSTEM, app=app, organization=org, role="owner", rating=1)
    with pytest.raises(Conflict):
        review_report(actor=SYSTEM, review=own, organization=org, role="owner", reason="x")
    assert not ReviewReport.objects.exists()


def test_anonymous_cannot_report(client, app, other_org):
    theirs = review_save(actor=SYSTEM, app=app, organization=other_org, role="owner", rating=1)
    response = client.post(report_url(app, theirs), {"organization": "acme", "reason": "Spam"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert not ReviewReport.objects.exists()


def test_hiding_removes_the_review_from_page_and_average(client, app, org, other_org):
    review_save(actor=SYSTEM, app=app, organization=org, role="owner", rating=5, title="Love it")
    bad = review_save(
        actor=SYSTEM, app=app, organization=other_org, role="owner", rating=1, title="Rude words"
    )
    assert gallery_app_get(slug=app.slug).rating == 3

    review_hide(actor=SYSTEM, review=bad)

    shown = gallery_app_get(slug=app.slug)
    assert (shown.review_count, shown.rating) == (1, 5)
    html = client.get(app_url(app)).content.decode()
    assert "Love it" in html and "Rude words" not in html
    assert AuditLogEntry.objects.filter(action="review.hidden", target_id=str(bad.id)).exists()
    # Editing a hidden review keeps it hidden: the operator's decision stands.
    edited = review_save(actor=SYSTEM, app=app, organization=other_org, role="owner", rating=2)
    assert edited.hidden is True
    # A hidden review cannot be reported any more.
    with pytest.raises(NotFound):
        review_report(actor=SYSTEM, review=bad, organization=org, role="owner", reason="x")


def test_the_operator_sees_reports_and_hides_in_admin(admin_client, app, org, other_org):
    bad = review_save(
        actor=SYSTEM, app=app, organization=other_org, role="owner", rating=1, title="Rude"
    )
    review_report(actor=SYSTEM, review=bad, organization=org, role="owner", reason="Abusive")

    reports = admin_client.get(reverse("admin:marketplace_reviewreport_changelist"))
    assert reports.status_code == 200 and b"Abusive" in reports.content
    assert admin_client.get(reverse("admin:marketplace_appreview_changelist")).status_code == 200
    detail = admin_client.get(reverse("admin:marketplace_appreview_change", args=[bad.pk]))
    assert detail.status_code == 200 and b"Abusive" in detail.content

    admin_client.post(
        reverse("admin:marketplace_reviewreport_changelist"),
        {
            "action": "hide_reported_reviews",
            "_selected_action": [ReviewReport.objects.get().pk],
        },
    )

    bad.refresh_from_db()
    assert bad.hidden is True
    assert ReviewReport.objects.get().resolved_at is not None
    entry = AuditLogEntry.objects.get(action="review.hidden")
    assert entry.actor_type == "user" and entry.organization == other_org

    admin_client.post(
        reverse("admin:marketplace_appreview_changelist"),
        {"action": "show_reviews", "_selected_action": [bad.pk]},
    )
    bad.refresh_from_db()
    assert bad.hidden is False
    assert AuditLogEntry.objects.filter(action="review.shown").exists()


def test_review_text_is_escaped(client, app, org):
    review_save(
        actor=SYSTEM,
        app=app,
        organization=org,
        role="owner",
        rating=4,
        title="<b>bold</b>",
        body="<script>alert(1)</script>",
    )
    html = client.get(app_url(app)).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html


def test_a_second_org_cannot_report_through_a_hidden_org_field(client, app, other_org):
    """A user with no reviewing role anywhere cannot report for an org they name."""
    theirs = review_save(actor=SYSTEM, app=app, organization=other_org, role="owner", rating=1)
    outsider_org = OrganizationFactory()
    client.force_login(member(outsider_org, Role.VIEWER))
    response = client.post(
        report_url(app, theirs), {"organization": other_org.slug, "reason": "Spam"}
    )
    assert response.status_code == 400
    assert not ReviewReport.objects.exists()


def test_a_customer_finds_an_app_and_reviews_it_in_a_browser(page, live_server, artifacts):
    from django.test import Client
    from playwright.sync_api import expect

    from marketplace.models import PartnerTier

    # Transactional tests flush the tiers the migration seeds.
    PartnerTier.objects.get_or_create(
        code="registered", defaults={"name": "Registered", "revenue_share_percent": 70}
    )
    partner = make_partner("Northwind Labs", featured=True)
    app = make_app(
        partner,
        name="Doc Sync",
        description="## Why\n\nSyncs **everything**. <script>window.hacked = 1</script>",
    )
    make_app(make_partner("Contoso"), name="Ledger Bridge", categories=["finance"])
    customer = OrganizationFactory(name="Initech", slug="initech")
    installed(app, customer)
    client = Client()
    client.force_login(member(customer, Role.ADMIN))
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )

    page.goto("/marketplace/")
    expect(page.get_by_role("heading", name="Marketplace")).to_be_visible()
    page.screenshot(path=artifacts / "marketplace-gallery.png", full_page=True)
    page.get_by_role("searchbox", name="Search").fill("northwind")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("[data-app]")).to_have_count(1)
    page.get_by_role("link", name="Doc Sync").click()

    expect(page.get_by_role("heading", name="Doc Sync", level=1)).to_be_visible()
    expect(page.locator("[data-description]")).to_contain_text("<script>window.hacked = 1</script>")
    assert page.evaluate("window.hacked") is None
    expect(page.locator("[data-scopes] li")).to_have_count(2)
    page.get_by_label("4 stars").check()
    page.get_by_label("Title").fill("Saves us hours")
    page.get_by_role("button", name="Post your review").click()
    expect(page.get_by_text("Initech's review is saved.")).to_be_visible()
    expect(page.locator("[data-rating]")).to_contain_text("4.0 out of 5")
    page.screenshot(path=artifacts / "marketplace-app.png", full_page=True)

    page.set_viewport_size({"width": 375, "height": 812})
    page.goto(f"/marketplace/{app.slug}/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.screenshot(path=artifacts / "marketplace-app-mobile.png", full_page=True)
    assert AppReview.objects.get().organization == customer
