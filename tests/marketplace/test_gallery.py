"""The public gallery (MKT-3): only listed apps of approved partners show, with their logo
and screenshots; search, categories and sorting, bad values never an error page; app pages
show the scopes asked and a partner's Markdown without its HTML."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from marketplace.apps_services import app_create, app_logo_set, app_review, app_submit
from marketplace.models import App, AppReview, AppScreenshot, Install, Partner
from marketplace.services import partner_apply, partner_decide
from portal.audit import Actor
from tests.factories import OrganizationFactory, ProjectFactory
from tests.marketplace.test_apps import APP, image_bytes
from tests.marketplace.test_partners import APPLICATION

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")
GALLERY = "/marketplace/"


def make_partner(name="Acme Integrations", featured=False, org=None) -> Partner:
    organization = org or OrganizationFactory()
    applied = partner_apply(
        actor=SYSTEM, organization=organization, **{**APPLICATION, "display_name": name}
    )
    partner = partner_decide(actor=SYSTEM, partner=applied, status="approved")
    if featured:
        Partner.objects.filter(pk=partner.pk).update(featured=True)
        partner.refresh_from_db()
    return partner


def make_app(partner, state="listed", **fields) -> App:
    """An app moved through the real services to `state`."""
    app = app_create(actor=SYSTEM, partner=partner, **{**APP, **fields})
    app = app_logo_set(actor=SYSTEM, app=app, data=image_bytes())
    if state == "draft":
        return app
    app = app_submit(actor=SYSTEM, app=app)
    if state == "in_review":
        return app
    if state == "changes_requested":
        return app_review(actor=SYSTEM, app=app, decision="changes_requested")
    app = app_review(actor=SYSTEM, app=app, decision="listed")
    if state == "suspended":
        return app_review(actor=SYSTEM, app=app, decision="suspended")
    return app


def installed(app, organization) -> Install:
    """The org installed the app (only installers review it); the OAuth flow is tested in
    test_oauth.py, here only the fact matters."""
    return Install.objects.create(
        app=app, organization=organization, project=ProjectFactory(organization=organization)
    )


def add_review(app, rating, hidden=False) -> AppReview:
    return AppReview.objects.create(
        app=app, organization=OrganizationFactory(), rating=rating, hidden=hidden
    )


def slugs(response) -> list[str]:
    return [app.slug for app in response.context["page"]]


@pytest.fixture
def partner():
    return make_partner()


def test_only_listed_apps_of_approved_partners_are_public(client, partner):
    listed = make_app(partner, name="Listed One")
    hidden = [
        make_app(partner, state=state, name=f"App {state}")
        for state in ["draft", "in_review", "changes_requested", "suspended"]
    ]
    other = make_partner("Suspended Partner")
    of_suspended = make_app(other, name="Of Suspended")
    partner_decide(actor=SYSTEM, partner=other, status="suspended")

    response = client.get(GALLERY)

    assert response.status_code == 200
    assert slugs(response) == [listed.slug]
    for app in [*hidden, of_suspended]:
        assert client.get(reverse("gallery:app", kwargs={"slug": app.slug})).status_code == 404
        assert client.get(reverse("gallery:logo", kwargs={"slug": app.slug})).status_code == 404
    assert client.get(reverse("gallery:app", kwargs={"slug": listed.slug})).status_code == 200


def test_search_covers_name_summary_and_partner_name(client):
    make_app(make_partner("Northwind"), name="Ledger Bridge", summary="Moves invoices.")
    make_app(make_partner("Contoso"), name="Mailer", summary="Sends PDF receipts by e-mail.")
    assert len(slugs(client.get(GALLERY, {"q": "ledger"}))) == 1
    assert slugs(client.get(GALLERY, {"q": "receipts"})) == ["mailer"]
    assert slugs(client.get(GALLERY, {"q": "northwind"})) == ["ledger-bridge"]
    assert slugs(client.get(GALLERY, {"q": "nothing-like-it"})) == []
    # LIKE wildcards are searched as text, not as patterns.
    assert slugs(client.get(GALLERY, {"q": "%"})) == []


def test_category_filter(client, partner):
    make_app(partner, name="Sheets", categories=["analytics"])
    make_app(partner, name="Vault", categories=["security", "automation"])
    assert slugs(client.get(GALLERY, {"category": "security"})) == ["vault"]
    assert slugs(client.get(GALLERY, {"category": "analytics"})) == ["sheets"]
    assert sorted(slugs(client.get(GALLERY))) == ["sheets", "vault"]


def test_sorting_popular_newest_rating_and_featured_first(client, partner):
    alpha = make_app(partner, name="Alpha")
    beta = make_app(partner, name="Beta")
    gamma = make_app(make_partner("Featured Co", featured=True), name="Gamma")
    App.objects.filter(pk=alpha.pk).update(listed_at=timezone.now() - timedelta(days=3))
    App.objects.filter(pk=beta.pk).update(listed_at=timezone.now() - timedelta(days=2))
    App.objects.filter(pk=gamma.pk).update(listed_at=timezone.now() - timedelta(days=1))
    for rating in [2, 2, 3]:
        add_review(alpha, rating)
    add_review(beta, 5)
    add_review(beta, 1, hidden=True)  # hidden: neither counted nor averaged
    for rating in [1, 1, 1, 1]:
        add_review(gamma, rating, hidden=True)

    assert slugs(client.get(GALLERY)) == ["gamma", "alpha", "beta"]  # featured, then popular
    assert slugs(client.get(GALLERY, {"sort": "popular"})) == ["alpha", "beta", "gamma"]
    assert slugs(client.get(GALLERY, {"sort": "newest"})) == ["gamma", "beta", "alpha"]
    assert slugs(client.get(GALLERY, {"sort": "rating"})) == ["beta", "alpha", "gamma"]
    page = client.get(GALLERY, {"sort": "rating"})
    ratings = {app.slug: (app.review_count, app.rating) for app in page.context["page"]}
    assert ratings["beta"][0] == 1 and ratings["beta"][1] == 5
    assert ratings["gamma"] == (0, None)


def test_popular_means_the_most_active_installs_and_installs_do_not_skew_ratings(client, partner):
    from marketplace.installs import install_uninstall

    alpha = make_app(partner, name="Alpha")
    beta = make_app(partner, name="Beta")
    add_review(alpha, 5)
    add_review(alpha, 4)
    for _ in range(3):
        installed(beta, OrganizationFactory())
    installed(alpha, OrganizationFactory())
    gone = installed(alpha, OrganizationFactory())
    install_uninstall(actor=SYSTEM, install=gone)  # uninstalled: not counted
    assert slugs(client.get(GALLERY, {"sort": "popular"})) == ["beta", "alpha"]
    shown = {app.slug: app for app in client.get(GALLERY).context["page"]}
    assert (shown["alpha"].install_count, shown["beta"].install_count) == (1, 3)
    assert (shown["alpha"].review_count, shown["alpha"].rating) == (2, 4.5)


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "cheapest"},
        {"sort": "'; drop table app"},
        {"category": "games"},
        {"page": "x"},
        {"page": "-1"},
        {"page": "99999"},
        {"q": "a" * 5000},
        {"q": "nul\x00byte"},
        {"q": "\x00"},
        {"category": "\x00", "sort": "\x00"},
    ],
)
def test_bad_query_values_never_break_the_page(client, partner, params):
    make_app(partner, name="Alpha")
    response = client.get(GALLERY, params)
    assert response.status_code == 200
    assert "page" in response.context


def test_bad_values_are_ignored_with_a_message(client, partner):
    make_app(partner, name="Alpha", categories=["analytics"])
    response = client.get(GALLERY, {"sort": "cheapest", "category": "games"})
    assert slugs(response) == ["alpha"]
    problems = response.context["filters"].problems
    assert len(problems) == 2
    assert b"data-filter-problem" in response.content
    long = client.get(GALLERY, {"q": "alpha" + "x" * 200})
    assert "shortened" in long.context["filters"].problems[0]


def test_pagination(client, partner):
    for number in range(26):
        make_app(partner, name=f"App {number:02d}")
    first = client.get(GALLERY)
    second = client.get(GALLERY, {"page": 2})
    assert len(slugs(first)) == 24
    assert len(slugs(second)) == 2
    assert not set(slugs(first)) & set(slugs(second))


def test_app_page_shows_listing_details_scopes_and_safe_markdown(client, partner):
    app = make_app(
        partner,
        name="Doc Sync",
        scopes=["read"],
        description=(
            "# Features\n\n**Bold** words. <script>alert('x')</script>\n\n"
            "<img src=x onerror=alert(1)> [click](javascript:alert(1)) "
            "[docs](https://docsync.example.com/docs)"
        ),
    )
    App.objects.filter(pk=app.pk).update(certified=True)
    add_review(app, 4)
    add_review(app, 5)

    response = client.get(reverse("gallery:app", kwargs={"slug": app.slug}))
    html = response.content.decode()

    assert response.status_code == 200
    assert "Doc Sync" in html and "Acme Integrations" in html
    assert "data-certified" in html
    assert response.context["app"].scopes == ["read"]
    assert "<li><code>read</code></li>" in html
    assert "<code>write</code>" not in html
    assert "<strong>Bold</strong>" in html
    assert "<h3>Features</h3>" in html  # headings stay below the page's own
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html or (
        "&lt;script&gt;alert('x')&lt;/script&gt;" in html
    )
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "javascript:" not in html
    assert 'href="https://docsync.example.com/docs"' in html
    assert "Free up to 100 documents." in html
    assert 'href="https://docsync.example.com/support"' in html
    assert 'href="https://docsync.example.com/privacy"' in html
    assert "4.5 out of 5" in html
    assert reverse("gallery:logo", kwargs={"slug": app.slug}) in html


def test_logo_is_served_only_while_listed(client, partner):
    app = make_app(partner, name="Doc Sync")
    url = reverse("gallery:logo", kwargs={"slug": app.slug})
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.content == image_bytes()

    app_review(actor=SYSTEM, app=app, decision="suspended")
    assert client.get(url).status_code == 404
    assert client.get(reverse("gallery:logo", kwargs={"slug": "no-such-app"})).status_code == 404


def test_screenshots_are_public_only_while_listed(client, partner):
    app = make_app(partner, name="Doc Sync")
    shot = AppScreenshot.objects.create(
        app=app, image=image_bytes(), content_type="image/png", caption="The sync screen"
    )
    url = reverse("gallery:screenshot", kwargs={"slug": app.slug, "screenshot_id": shot.id})
    page = client.get(reverse("gallery:app", kwargs={"slug": app.slug})).content.decode()
    assert url in page and "The sync screen" in page
    response = client.get(url)
    assert response.status_code == 200
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.content == image_bytes()

    other = make_app(partner, name="Other")
    wrong_app = reverse("gallery:screenshot", kwargs={"slug": other.slug, "screenshot_id": shot.id})
    assert client.get(wrong_app).status_code == 404
    app_review(actor=SYSTEM, app=app, decision="suspended")
    assert client.get(url).status_code == 404


def test_gallery_needs_no_sign_in_and_links_the_apps(client, partner):
    app = make_app(partner, name="Doc Sync")
    html = client.get(GALLERY).content.decode()
    assert reverse("gallery:app", kwargs={"slug": app.slug}) in html
    assert "marketplace.css" in html
