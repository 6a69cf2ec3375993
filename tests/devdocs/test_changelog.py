"""The public changelog (DOCS-7): publish state, privacy, filters, pages, the Atom feed, and
the operator's admin."""

import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from devdocs.changelog import changelog_entries_publish
from devdocs.models import ChangelogEntry
from keys.services import api_version_create
from portal.audit import Actor
from portal.models import AuditLogEntry
from tests.factories import UserFactory
from tests.keys.test_products import DOCUMENT

SYSTEM = Actor.system("test")
ATOM = "{http://www.w3.org/2005/Atom}"
LIST_URL = "/changelog"
FEED_URL = "/changelog.atom"


@pytest.fixture
def documents(db):
    return api_version_create(
        actor=SYSTEM, product_code="documents", version="v1", document=DOCUMENT
    )


@pytest.fixture
def secret_api(db):
    """A private product: its entries must never show in public."""
    return api_version_create(
        actor=SYSTEM, product_code="internal", version="v1", document=DOCUMENT, private=True
    )


def entry(slug, *, days_ago=1, kind="changed", published=True, **fields):
    published_at = timezone.now() - timedelta(days=days_ago) if published else None
    return ChangelogEntry.objects.create(
        slug=slug,
        title=fields.pop("title", slug.replace("-", " ").capitalize()),
        body=fields.pop("body", f"Body of **{slug}**."),
        kind=kind,
        published_at=published_at,
        **fields,
    )


def slugs_on(response) -> list[str]:
    return [e["entry"].slug for e in response.context["entries"]]


def parse_feed(response) -> ET.Element:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/atom+xml")
    return ET.fromstring(response.content)


@pytest.fixture
def operator(client, db):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


# --- Publish state and privacy -----------------------------------------------------------
def test_published_entries_are_listed_newest_first_without_sign_in(client, documents):
    entry("older", days_ago=5)
    entry("newer", days_ago=1, product=documents.product)
    response = client.get(LIST_URL)
    assert response.status_code == 200
    assert slugs_on(response) == ["newer", "older"]
    assert "Body of <strong>newer</strong>." in response.content.decode()


def test_drafts_and_future_entries_are_never_shown(client, db):
    entry("out", days_ago=1)
    entry("draft", published=False)
    entry("scheduled", days_ago=-2)  # two days from now
    assert slugs_on(client.get(LIST_URL)) == ["out"]
    assert client.get("/changelog/out").status_code == 200
    assert client.get("/changelog/draft").status_code == 404
    assert client.get("/changelog/scheduled").status_code == 404


def test_entries_of_private_products_are_hidden_everywhere(client, documents, secret_api):
    entry("public-change", product=documents.product)
    entry("private-by-product", product=secret_api.product)
    entry("private-by-version", api_version=secret_api)
    assert slugs_on(client.get(LIST_URL)) == ["public-change"]
    assert client.get("/changelog/private-by-product").status_code == 404
    assert client.get("/changelog/private-by-version").status_code == 404
    ids = [
        e.find(f"{ATOM}link").get("href")
        for e in parse_feed(client.get(FEED_URL)).iter(f"{ATOM}entry")
    ]
    assert [link.rsplit("/", 1)[1] for link in ids] == ["public-change"]


def test_a_trailing_slash_finds_the_list_with_its_filters(client, db):
    response = client.get("/changelog/", {"kind": "fixed"})
    assert response.status_code == 302 and response["Location"] == "/changelog?kind=fixed"


def test_an_entry_page_renders_its_markdown(client, documents):
    entry(
        "new-search",
        kind="added",
        product=documents.product,
        api_version=documents,
        body="Search with `GET /documents/search`.\n\n```python\nprint('hi')\n```",
    )
    page = client.get("/changelog/new-search").content.decode()
    assert "<code>GET /documents/search</code>" in page
    assert 'class="codehilite"' in page
    assert 'data-kind="added"' in page and "Documents API" in page


# --- Filters and pagination --------------------------------------------------------------
def test_filters_by_product_and_kind(client, documents):
    other = api_version_create(
        actor=SYSTEM, product_code="billing-api", version="v1", document=DOCUMENT
    )
    entry("docs-fix", days_ago=1, kind="fixed", product=documents.product)
    entry("docs-added", days_ago=2, kind="added", api_version=documents)  # via its version
    entry("other-fix", days_ago=3, kind="fixed", product=other.product)
    entry("platform-fix", days_ago=4, kind="fixed")
    assert slugs_on(client.get(LIST_URL, {"product": "documents"})) == ["docs-fix", "docs-added"]
    assert slugs_on(client.get(LIST_URL, {"kind": "fixed"})) == [
        "docs-fix",
        "other-fix",
        "platform-fix",
    ]
    assert slugs_on(client.get(LIST_URL, {"product": "documents", "kind": "fixed"})) == ["docs-fix"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"kind": "nonsense"}, "is not a kind of change"),
        ({"kind": "<script>"}, "is not a kind of change"),
        ({"product": "nope"}, "No public API product is called"),
        ({"product": "internal"}, "No public API product is called"),  # private: not revealed
        ({"product": "x" * 5000}, "No public API product is called"),
        ({"product": "docs\x00"}, "No public API product is called"),
        ({"kind": "added\x00"}, "is not a kind of change"),
    ],
)
def test_bad_filter_values_are_ignored_with_a_message(
    client, documents, secret_api, params, message
):
    entry("one", product=documents.product)
    response = client.get(LIST_URL, params)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert "<script>" not in response.content.decode().split("<main", 1)[1]
    assert slugs_on(response) == ["one"]  # the filter was dropped, not applied


@pytest.mark.parametrize("page", ["2", "abc", "-1", "999", ""])
def test_pages_never_fail(client, db, page):
    for number in range(25):
        entry(f"entry-{number:02d}", days_ago=number + 1)
    response = client.get(LIST_URL, {"page": page})
    assert response.status_code == 200
    expected = 5 if page in ("2", "999", "-1") else 20  # out of range: the last page
    assert len(slugs_on(response)) == expected


def test_the_second_page_continues_where_the_first_ends(client, db):
    for number in range(25):
        entry(f"entry-{number:02d}", days_ago=number + 1)
    first = slugs_on(client.get(LIST_URL))
    second = slugs_on(client.get(LIST_URL, {"page": 2}))
    assert first + second == [f"entry-{number:02d}" for number in range(25)]


# --- Atom feed -----------------------------------------------------------------------------
def test_the_feed_is_valid_atom_with_only_published_entries(client, documents, secret_api):
    entry("first", days_ago=3, kind="added", product=documents.product, body="Added **bulk**.")
    entry("second", days_ago=1, kind="security")
    entry("draft", published=False)
    entry("scheduled", days_ago=-1)
    entry("private", product=secret_api.product)
    feed = parse_feed(client.get(FEED_URL))
    assert feed.tag == f"{ATOM}feed"
    # Required feed elements (RFC 4287 4.1.1): id, title, updated, and an author for entries.
    assert feed.findtext(f"{ATOM}id") == "http://testserver/changelog"
    assert feed.findtext(f"{ATOM}title") == "Tollgate changelog"
    assert feed.findtext(f"{ATOM}author/{ATOM}name") == "Tollgate"
    links = {link.get("rel"): link.get("href") for link in feed.findall(f"{ATOM}link")}
    assert links == {
        "alternate": "http://testserver/changelog",
        "self": "http://testserver/changelog.atom",
    }
    entries = feed.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == ["Second", "First"]
    second, first = entries
    for item in entries:
        for required in ("id", "title", "updated", "published", "content"):
            assert item.find(f"{ATOM}{required}") is not None, required
        assert item.find(f"{ATOM}link").get("rel") == "alternate"
        assert item.find(f"{ATOM}content").get("type") == "html"
    assert first.find(f"{ATOM}link").get("href") == "http://testserver/changelog/first"
    assert first.findtext(f"{ATOM}content") == "<p>Added <strong>bulk</strong>.</p>"
    assert [c.get("term") for c in first.findall(f"{ATOM}category")] == ["added", "documents"]
    assert feed.findtext(f"{ATOM}updated") == second.findtext(f"{ATOM}updated")


def test_feed_entry_ids_stay_the_same_when_an_entry_is_edited(client, db):
    item = entry("renamed-later")
    before = parse_feed(client.get(FEED_URL)).find(f"{ATOM}entry")
    item.title, item.slug, item.body = "A better title", "better-title", "Rewritten."
    item.updated_at = timezone.now()
    item.save()
    after = parse_feed(client.get(FEED_URL)).find(f"{ATOM}entry")
    assert before.findtext(f"{ATOM}id") == after.findtext(f"{ATOM}id") == item.id.urn
    assert after.findtext(f"{ATOM}title") == "A better title"
    assert after.findtext(f"{ATOM}updated") > before.findtext(f"{ATOM}updated")


def test_the_feed_takes_the_filters_and_ignores_bad_ones(client, documents):
    entry("a-fix", days_ago=1, kind="fixed", product=documents.product)
    entry("an-addition", days_ago=2, kind="added")
    fixed = parse_feed(client.get(FEED_URL, {"kind": "fixed"}))
    assert [e.findtext(f"{ATOM}title") for e in fixed.findall(f"{ATOM}entry")] == ["A fix"]
    assert fixed.findtext(f"{ATOM}id") == "http://testserver/changelog?kind=fixed"
    unfiltered = parse_feed(client.get(FEED_URL, {"kind": "bogus", "product": "<x>"}))
    assert len(unfiltered.findall(f"{ATOM}entry")) == 2


def test_feed_content_has_absolute_links_and_no_page_buttons(client, db):
    entry("linked", body="See [the timeline](/changelog/deprecations).\n\n```bash\nls\n```")
    content = parse_feed(client.get(FEED_URL)).findtext(f"{ATOM}entry/{ATOM}content")
    assert 'href="http://testserver/changelog/deprecations"' in content
    assert 'class="codehilite"' in content and "<button" not in content


def test_an_empty_feed_is_still_valid(client, db):
    feed = parse_feed(client.get(FEED_URL))
    assert feed.findtext(f"{ATOM}updated") and feed.findall(f"{ATOM}entry") == []


# --- Admin ----------------------------------------------------------------------------------
def test_admin_pages_open_and_the_slug_follows_the_title(client, operator, documents):
    item = entry("existing")
    assert client.get(reverse("admin:devdocs_changelogentry_changelist")).status_code == 200
    add = client.get(reverse("admin:devdocs_changelogentry_add"))
    assert add.status_code == 200
    assert (
        "data-prepopulated-fields" in add.content.decode() and "#id_title" in add.content.decode()
    )
    assert (
        client.get(reverse("admin:devdocs_changelogentry_change", args=[item.pk])).status_code
        == 200
    )


def test_admin_creates_an_audited_draft(client, operator, documents):
    response = client.post(
        reverse("admin:devdocs_changelogentry_add"),
        {
            "title": "Bulk create",
            "slug": "bulk-create",
            "kind": "added",
            "product": "",
            "api_version": str(documents.pk),
            "body": "New `POST /documents/bulk`.",
            "published_at_0": "",
            "published_at_1": "",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    created = ChangelogEntry.objects.get(slug="bulk-create")
    assert created.published_at is None and created.product == documents.product
    assert AuditLogEntry.objects.filter(
        action="changelogentry.created_in_admin", target_id=str(created.pk)
    ).exists()
    assert client.get("/changelog/bulk-create").status_code == 404  # still a draft


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"slug": "deprecations"}, "slug", "address of another page"),
        ({"product": "other"}, "api_version", "is a version of documents"),
    ],
)
def test_admin_refuses_bad_entries_with_form_errors(
    client, operator, documents, changes, field, message
):
    other = api_version_create(actor=SYSTEM, product_code="other", version="v1", document=DOCUMENT)
    data = {
        "title": "Something",
        "slug": "something",
        "kind": "changed",
        "product": "",
        "api_version": str(documents.pk),
        "body": "",
        "published_at_0": "",
        "published_at_1": "",
    }
    if changes.get("product") == "other":
        changes = {"product": str(other.product.pk)}
    data.update(changes)
    response = client.post(reverse("admin:devdocs_changelogentry_add"), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field])
    assert not ChangelogEntry.objects.exists()


def test_publish_now_publishes_drafts_and_is_audited(client, operator, db):
    draft = entry("draft", published=False)
    scheduled = entry("scheduled", days_ago=-3)
    out = entry("already-out", days_ago=10)
    before = out.published_at
    response = client.post(
        reverse("admin:devdocs_changelogentry_changelist"),
        {"action": "publish_now", "_selected_action": [draft.pk, scheduled.pk, out.pk]},
    )
    assert response.status_code == 302
    for item in (draft, scheduled, out):
        item.refresh_from_db()
    assert draft.published_at <= timezone.now() and scheduled.published_at <= timezone.now()
    assert out.published_at == before  # an entry already out keeps its date
    assert AuditLogEntry.objects.filter(action="changelogentry.published").count() == 2
    assert set(slugs_on(client.get(LIST_URL))) == {"draft", "scheduled", "already-out"}


def test_publishing_twice_changes_nothing_the_second_time(db):
    draft = entry("draft", published=False)
    assert changelog_entries_publish(actor=SYSTEM, entries=[draft]) == 1
    assert changelog_entries_publish(actor=SYSTEM, entries=[draft]) == 0
