"""Guides (DOCS-2): files in docs/portal/, admin overrides, the reader's own values, admin.

Everything runs through the real pages, selectors, Markdown renderer and admin; keys are
issued with keys.services.key_create so their secrets are sealed as in production.
"""

import ast
import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache as django_cache
from django.urls import reverse

from billing.demo_catalog import ensure_demo_catalog
from billing.models import Plan
from billing.subscriptions import subscription_subscribe
from devdocs import guides
from devdocs.markdown import render_markdown, render_with_toc, substitute
from devdocs.models import Guide
from devdocs.reader import KEY_PLACEHOLDER
from keys.gate_api import process_gate
from keys.models import ApiProduct, ApiVersion
from keys.services import api_version_create, key_create, key_revoke
from portal.audit import Actor
from portal.models import AuditLogEntry, Project
from portal.roles import Role
from tests.conftest import CHROMIUM, LAUNCH_ARGS
from tests.factories import (
    ApiTokenFactory,
    MembershipFactory,
    OrganizationFactory,
    ProjectFactory,
    UserFactory,
)
from webhooks.signing import headers as signed_headers

FILE_GUIDES = ["get-started", "rate-limits", "webhooks", "usage-and-invoices"]
DOCUMENTS_API = json.loads(
    (Path(django_settings.BASE_DIR) / "docs" / "examples" / "documents_api.json").read_text()
)
CODE_FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def index_url() -> str:
    return reverse("guides:index")


def guide_url(slug: str) -> str:
    return reverse("guides:detail", kwargs={"slug": slug})


def issue_test_key(membership, name: str = "Docs key") -> str:
    """A test key of the member's organization, issued as the member would in the portal."""
    project = ProjectFactory(organization=membership.organization)
    _key, secret = key_create(
        actor=Actor(user=membership.user), project=project, name=name, environment="test"
    )
    return secret


def slugs_in_order(content: str) -> list[str]:
    return re.findall(r'href="/docs/guides/([^/"]+)/"', content)


@pytest.fixture
def operator(client, db):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


@pytest.fixture
def documents_api(db):
    """A public product with two versions: samples use the newest."""
    product = ApiProduct.objects.create(code="documents", name="Documents API")
    ApiVersion.objects.create(product=product, version="v0", openapi={})
    ApiVersion.objects.create(product=product, version="v1", openapi={})
    return product


# --- The index and the pages ---------------------------------------------------------------


def test_index_lists_the_four_file_guides_in_position_order(client, db):
    response = client.get(index_url())

    assert response.status_code == 200
    assert slugs_in_order(response.content.decode()) == FILE_GUIDES
    assert "Get a key and make your first call" in response.content.decode()


def test_guide_page_has_highlighted_code_a_copy_button_and_a_table_of_contents(client, db):
    response = client.get(guide_url("get-started"))
    content = response.content.decode()

    assert response.status_code == 200
    assert '<div class="codehilite">' in content
    assert '<span class="s2">' in content  # Pygments tokens, styled by highlight.css
    assert 'href="/static/css/highlight.css"' in content
    assert '<div class="toc">' in content
    assert '<a href="#3-call-the-sandbox">3. Call the sandbox</a>' in content
    assert 'id="3-call-the-sandbox"' in content
    buttons = re.findall(r'data-copy-target="([^"]+)"', content)
    assert buttons and len(buttons) == content.count('<div class="codehilite">')
    for target in buttons:  # each button copies its own block
        assert f'<pre id="{target}">' in content
    assert len(set(buttons)) == len(buttons)


@pytest.mark.parametrize("slug", FILE_GUIDES)
def test_every_shipped_guide_renders_with_code_and_no_leftover_placeholders(client, db, slug):
    response = client.get(guide_url(slug))
    content = response.content.decode()

    assert response.status_code == 200
    assert '<div class="codehilite">' in content
    assert "{{" not in content
    assert "tgplaceholder" not in content


def test_guide_pages_answer_only_get_and_head(client, db):
    assert client.head(guide_url("get-started")).status_code == 200
    assert client.post(guide_url("get-started")).status_code == 405
    assert client.delete(index_url()).status_code == 405


def test_unknown_slug_is_a_404_page(client, db):
    response = client.get(guide_url("no-such-guide"))

    assert response.status_code == 404
    assert "Not found" in response.content.decode()


@pytest.mark.parametrize("slug", ["../../README", "Get_Started", "", "get-started.md", None])
def test_selector_refuses_slugs_that_are_not_guides(db, slug):
    with pytest.raises(guides.NotFound):
        guides.guide_get(slug=slug)


def test_pages_are_public_and_anonymous_pages_are_not_marked_private(client, db):
    response = client.get(guide_url("rate-limits"))

    assert response.status_code == 200
    assert "private" not in response.get("Cache-Control", "")
    assert "Cookie" in response["Vary"]


# --- Admin rows override files, add guides, hide guides --------------------------------------


def test_admin_guide_overrides_the_file_without_a_deploy(client, db):
    Guide.objects.create(
        slug="get-started",
        title="Your first call, revised",
        summary="Fixed by the operator.",
        body="## Revised\n\nCall `{{ sandbox_url }}/documents` now.",
        position=10,
    )

    detail = client.get(guide_url("get-started")).content.decode()
    index = client.get(index_url()).content.decode()

    assert "Your first call, revised" in detail
    assert '<h2 id="revised">Revised</h2>' in detail
    assert "Sign up and create an organization" not in detail  # the file's text is gone
    assert "Your first call, revised" in index
    assert "Get a key and make your first call" not in index
    assert slugs_in_order(index) == FILE_GUIDES  # same slug, one entry


def test_unpublished_admin_guide_hides_the_file_of_that_slug(client, db):
    Guide.objects.create(
        slug="webhooks", title="Webhooks", body="Hidden.", published=False, position=30
    )

    assert client.get(guide_url("webhooks")).status_code == 404
    index = client.get(index_url()).content.decode()
    assert "webhooks" not in slugs_in_order(index)
    assert client.get(guide_url("rate-limits")).status_code == 200


def test_admin_only_guide_is_added_in_its_position(client, db):
    Guide.objects.create(
        slug="pagination",
        title="Page through lists",
        summary="Follow next_cursor.",
        body="## Cursors\n\n```python\nprint('next')\n```\n",
        position=15,
    )

    index = client.get(index_url()).content.decode()
    detail = client.get(guide_url("pagination"))

    assert slugs_in_order(index) == [
        "get-started",
        "pagination",
        "rate-limits",
        "webhooks",
        "usage-and-invoices",
    ]
    assert detail.status_code == 200
    assert "Page through lists" in detail.content.decode()
    assert '<span class="nb">print</span>' in detail.content.decode()


def test_guides_with_the_same_position_are_ordered_by_slug(db):
    Guide.objects.create(slug="aaa-first", title="A", body="a", position=20)

    slugs = [guide.slug for guide in guides.guide_list()]

    assert slugs.index("aaa-first") == slugs.index("rate-limits") - 1


# --- The reader's own values -----------------------------------------------------------------


def test_anonymous_reader_sees_the_placeholder_and_a_sign_in_note(client, db):
    content = client.get(guide_url("get-started")).content.decode()

    assert f'Bearer {KEY_PLACEHOLDER}"' in content
    assert "to see your own test key filled in" in content
    assert 'href="/accounts/signup/?next=/docs/guides/get-started/"' in content
    assert 'href="/accounts/login/?next=/docs/guides/get-started/"' in content


def test_signed_in_developer_sees_their_own_test_key_in_the_samples(client, org):
    developer = MembershipFactory(organization=org, role=Role.DEVELOPER)
    secret = issue_test_key(developer)
    client.force_login(developer.user)

    response = client.get(guide_url("get-started"))
    content = response.content.decode()

    assert f'Bearer {secret}"' in content  # inside the highlighted curl sample
    assert f'API_KEY = "{secret}"' in html.unescape(re.sub(r"<[^>]+>", "", content))
    assert KEY_PLACEHOLDER not in content.split('<div class="prose">', 1)[1]
    assert "Samples use your test key" in content
    assert "no-store" in response["Cache-Control"]  # the page holds a secret


def test_guides_that_show_no_key_have_no_note_about_keys(client, db):
    content = client.get(guide_url("webhooks")).content.decode()

    assert "to see your own test key filled in" not in content
    assert '<details class="guide-toc-inline">' in content


def test_member_of_another_org_never_sees_the_first_orgs_key(client, org, other_org):
    secret = issue_test_key(MembershipFactory(organization=org, role=Role.OWNER))
    outsider = MembershipFactory(organization=other_org, role=Role.OWNER)
    client.force_login(outsider.user)

    content = client.get(guide_url("get-started"), {"org": org.slug}).content.decode()

    assert secret not in content
    assert f'Bearer {KEY_PLACEHOLDER}"' in content
    assert f'href="/o/{other_org.slug}/keys/"' in content  # create one in your own org
    assert "has no test key you can use yet" in content


def test_member_of_another_org_sees_their_own_key_not_the_other(client, org, other_org):
    first_secret = issue_test_key(MembershipFactory(organization=org, role=Role.OWNER))
    outsider = MembershipFactory(organization=other_org, role=Role.DEVELOPER)
    own_secret = issue_test_key(outsider)
    client.force_login(outsider.user)

    content = client.get(guide_url("rate-limits")).content.decode()

    assert own_secret in content
    assert first_secret not in content


def test_reader_in_two_orgs_chooses_which_keys_fill_the_samples(client, org, other_org):
    member = MembershipFactory(organization=org, role=Role.DEVELOPER)
    acme_secret = issue_test_key(member)
    second = MembershipFactory(organization=other_org, user=member.user, role=Role.ADMIN)
    globex_secret = issue_test_key(second)
    client.force_login(member.user)

    chosen = client.get(guide_url("get-started"), {"org": other_org.slug}).content.decode()
    remembered = client.get(guide_url("rate-limits")).content.decode()  # no ?org= now

    assert globex_secret in chosen and acme_secret not in chosen
    assert f'href="?org={org.slug}"' in chosen  # the way back
    assert globex_secret in remembered  # the choice is kept in the session
    assert acme_secret not in remembered


def test_viewer_sees_the_placeholder_even_when_the_org_has_a_test_key(client, org):
    secret = issue_test_key(MembershipFactory(organization=org, role=Role.OWNER))
    viewer = MembershipFactory(organization=org, role=Role.VIEWER)
    client.force_login(viewer.user)

    content = client.get(guide_url("get-started")).content.decode()

    assert secret not in content
    assert f'Bearer {KEY_PLACEHOLDER}"' in content
    assert "none of your organizations lets your role use API keys" in content


def test_revoked_key_is_no_longer_filled_in(client, org):
    owner = MembershipFactory(organization=org, role=Role.OWNER)
    project = ProjectFactory(organization=org)
    key, secret = key_create(
        actor=Actor(user=owner.user), project=project, name="Old", environment="test"
    )
    key_revoke(actor=Actor(user=owner.user), key=key)
    client.force_login(owner.user)

    content = client.get(guide_url("get-started")).content.decode()

    assert secret not in content
    assert f'Bearer {KEY_PLACEHOLDER}"' in content


def test_sandbox_url_uses_the_first_public_product_and_its_newest_version(client, documents_api):
    ApiProduct.objects.create(code="zeta", name="Zeta")  # later by code: not the default
    private = ApiProduct.objects.create(code="alpha", name="Alpha", private=True)
    ApiVersion.objects.create(product=private, version="v9", openapi={})

    content = client.get(guide_url("get-started")).content.decode()

    assert "http://testserver/sandbox/documents/v1/documents" in content
    assert "/sandbox/alpha/" not in content
    assert 'href="http://testserver/docs/documents/v1/"' in content


def test_without_any_product_the_sandbox_url_is_a_placeholder(client, db):
    content = client.get(guide_url("get-started")).content.decode()

    assert "http://testserver/sandbox/PRODUCT/VERSION/documents" in content


def test_placeholder_values_cannot_inject_markup(client, db):
    product = ApiProduct.objects.create(code="documents", name="Documents API")
    ApiVersion.objects.create(product=product, version="<script>alert(1)</script>", openapi={})

    content = client.get(guide_url("get-started")).content.decode()

    assert "<script>alert(1)</script>" not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content


def test_placeholder_values_cannot_start_markdown_either():
    values = {"api_key": "[click](javascript:alert(1)) **bold** <b>x</b>"}

    rendered = render_markdown("Key: {{ api_key }}\n\n```bash\necho {{ api_key }}\n```", values)

    assert "<a " not in rendered
    assert "<strong>" not in rendered
    assert "<b>" not in rendered
    assert rendered.count("[click](javascript:alert(1)) **bold** &lt;b&gt;x&lt;/b&gt;") == 2


def test_unknown_placeholders_are_left_as_written():
    assert "{{ unknown }}" in render_markdown("Say {{ unknown }}.", {"api_key": "k"})


def test_toc_is_empty_without_headings():
    body, toc = render_with_toc("Just text.")

    assert toc == ""
    assert "<p>Just text.</p>" in body


# --- The files themselves --------------------------------------------------------------------


@pytest.mark.parametrize("slug", FILE_GUIDES)
def test_shipped_guide_files_have_valid_front_matter(slug):
    parsed = guides.front_matter_parse(guides.guide_file_text(slug=slug))

    assert parsed.problems == []
    assert parsed.meta["title"] and parsed.meta["summary"]


def test_front_matter_problems_are_reported_not_raised():
    missing = guides.front_matter_parse("# Just a heading\n")
    bad = guides.front_matter_parse("---\ntitle: T\nposition: first\ncolour: red\n---\nBody\n")

    assert missing.problems == ["no front matter block (--- … ---)"]
    assert missing.body == "# Just a heading\n"
    assert bad.meta == {"title": "T", "position": "first"}
    assert bad.body == "Body\n"
    assert any("colour" in problem or "line 4" in problem for problem in bad.problems)
    assert any("not a whole number" in problem for problem in bad.problems)


@pytest.mark.parametrize("slug", FILE_GUIDES)
def test_python_samples_of_shipped_guides_are_valid_python(db, slug):
    text = guides.guide_from_file(slug=slug).body
    values = guides.guide_values(reader=guides.Reader(site_url="http://127.0.0.1:8000"))
    samples = [code for language, code in CODE_FENCE.findall(text) if language == "python"]

    for code in samples:
        ast.parse(substitute(code, values))


def test_webhook_guide_hand_verification_accepts_tollgate_signatures_and_refuses_forgeries():
    """The guide's stdlib `verify` checks real signatures from webhooks/signing.py."""
    text = guides.guide_from_file(slug="webhooks").body
    code = next(code for _lang, code in CODE_FENCE.findall(text) if "def verify(" in code)
    namespace: dict = {}
    exec(compile(code, "webhooks.md", "exec"), namespace)  # the guide is our own text
    verify, invalid = namespace["verify"], namespace["InvalidWebhook"]
    old = "whsec_" + base64.b64encode(b"o" * 32).decode()
    new = "whsec_" + base64.b64encode(b"n" * 32).decode()
    body = b'{"id":"msg_1","type":"ping","data":{}}'
    now = int(time.time())
    rotating = signed_headers([new, old], "msg_1", now, body)

    assert verify(old, body, rotating)["type"] == "ping"  # either secret during a rotation
    assert verify(new, body, rotating)["id"] == "msg_1"
    with pytest.raises(invalid):
        verify(new, body + b" ", rotating)  # a changed body
    with pytest.raises(invalid):
        verify(new, body, signed_headers([new], "msg_1", now - 600, body))  # replayed later
    with pytest.raises(invalid):
        verify(new, body, {"webhook-id": "msg_1"})  # headers missing


# --- Admin -----------------------------------------------------------------------------------


def test_admin_pages_load_for_a_superuser(client, operator):
    guide = Guide.objects.create(
        slug="get-started", title="T", body="## Hi\n\n```bash\ncurl {{ base_url }}\n```\n"
    )

    changelist = client.get(reverse("admin:devdocs_guide_changelist"))
    add = client.get(reverse("admin:devdocs_guide_add"))
    change = client.get(reverse("admin:devdocs_guide_change", args=[guide.pk]))

    assert changelist.status_code == add.status_code == change.status_code == 200
    changelist_html = changelist.content.decode()
    assert "?from_file=rate-limits" in changelist_html  # files not yet overridden
    assert "?from_file=get-started" not in changelist_html
    change_html = change.content.decode()
    assert '<div class="codehilite">' in change_html  # the rendered preview
    assert "Get a key and make your first call" in change_html  # the file's text
    assert "css/highlight.css" in change_html


def test_admin_search_finds_guides_by_body(client, operator):
    Guide.objects.create(slug="one", title="One", body="talks about pagination")
    Guide.objects.create(slug="two", title="Two", body="talks about retries")

    content = client.get(reverse("admin:devdocs_guide_changelist"), {"q": "pagination"})

    assert "/admin/devdocs/guide/" in content.content.decode()
    assert content.context["cl"].result_count == 1


def test_admin_add_form_starts_from_the_file(client, operator):
    response = client.get(reverse("admin:devdocs_guide_add"), {"from_file": "webhooks"})

    form = response.context["adminform"].form
    assert form.initial["title"] == "Receive and verify webhooks"
    assert form.initial["position"] == 30
    assert form.initial["body"].startswith("Tollgate tells your systems")
    assert "title:" not in form.initial["body"]


def test_admin_add_from_an_unknown_file_starts_empty(client, operator):
    response = client.get(reverse("admin:devdocs_guide_add"), {"from_file": "../../etc/passwd"})

    assert response.status_code == 200
    assert "body" not in response.context["adminform"].form.initial


def test_admin_change_is_audited_and_takes_effect_at_once(client, operator):
    add = client.post(
        reverse("admin:devdocs_guide_add"),
        {
            "slug": "rate-limits",
            "title": "Limits, revised",
            "summary": "",
            "position": "20",
            "published": "on",
            "body": "Wait `Retry-After` seconds.",
        },
    )
    guide = Guide.objects.get(slug="rate-limits")
    change = client.post(
        reverse("admin:devdocs_guide_change", args=[guide.pk]),
        {"slug": "rate-limits", "title": "Limits, revised", "position": "20", "body": "New."},
    )

    assert add.status_code == change.status_code == 302
    guide.refresh_from_db()
    assert guide.updated_by == operator
    assert not guide.published  # the checkbox was left out of the second post
    actions = list(
        AuditLogEntry.objects.filter(target_id=str(guide.pk))
        .order_by("created_at")
        .values_list("action", flat=True)
    )
    assert actions == ["guide.created_in_admin", "guide.updated_in_admin"]
    last = AuditLogEntry.objects.filter(target_id=str(guide.pk)).order_by("created_at").last()
    assert last.actor_user == operator
    assert last.changes["published"] is False
    assert client.get(guide_url("rate-limits")).status_code == 404


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"slug": "Rate_Limits"}, "Use lowercase letters, digits and hyphens"),
        ({"body": "---\ntitle: Copied\n---\nText"}, "Remove the front matter block"),
        ({"body": ""}, "This field is required"),
        ({"position": "-3"}, "greater than or equal to 0"),
    ],
)
def test_admin_refuses_bad_input_with_a_form_error(client, operator, fields, message):
    data = {"slug": "new-guide", "title": "New", "position": "50", "body": "Text", **fields}

    response = client.post(reverse("admin:devdocs_guide_add"), data)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Guide.objects.exists()


def test_admin_action_loads_the_files_text_and_is_audited(client, operator):
    overridden = Guide.objects.create(slug="webhooks", title="Old", body="Old text", position=1)
    orphan = Guide.objects.create(slug="no-file-here", title="Orphan", body="Mine")

    response = client.post(
        reverse("admin:devdocs_guide_changelist"),
        {"action": "load_from_file", "_selected_action": [overridden.pk, orphan.pk]},
        follow=True,
    )

    overridden.refresh_from_db()
    orphan.refresh_from_db()
    assert response.status_code == 200
    assert overridden.title == "Receive and verify webhooks"
    assert overridden.position == 30
    assert "Standard Webhooks" in overridden.body
    assert orphan.body == "Mine"
    assert "No file for: no-file-here." in response.content.decode()
    entry = AuditLogEntry.objects.get(target_id=str(overridden.pk))
    assert entry.action == "guide.updated_in_admin"
    assert entry.changes == {"loaded_from_file": "docs/portal/webhooks.md"}


def test_copy_buttons_can_be_left_out_for_feeds():
    text = "```bash\ncurl {{ base_url }}\n```\n"

    assert "data-copy-target" in render_markdown(text)
    assert "data-copy-target" not in render_markdown(text, copy_buttons=False)
    assert '<div class="codehilite"><pre>' in render_markdown(text, copy_buttons=False)


# --- In a browser ----------------------------------------------------------------------------


# Run in its own process: Playwright's sync API allows one instance per thread, and other
# modules hold a session-wide one; a child process never collides with them.
COPY_IN_CHROMIUM = """
import json, sys
from playwright.sync_api import sync_playwright

chromium, url, cookie_name, cookie, path = sys.argv[1:6]
with sync_playwright() as playwright:
    browser = playwright.chromium.launch(
        executable_path=chromium, headless=True, args=sys.argv[6:]
    )
    context = browser.new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    context.add_cookies([{"name": cookie_name, "value": cookie, "url": url}])
    page = context.new_page()
    page.goto(url + path)
    button = page.locator(".code-copy").first
    button.click()
    copied = page.evaluate("navigator.clipboard.readText()")
    print(json.dumps({"copied": copied, "label": button.text_content()}))
    browser.close()
"""


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Chromium not found at {CHROMIUM}")
def test_copy_button_copies_the_curl_sample_with_the_readers_own_key(
    client, live_server, transactional_db
):
    """Headless Chromium, signed in: press Copy on the quickstart's first sample."""
    developer = MembershipFactory(role=Role.DEVELOPER)
    secret = issue_test_key(developer)
    client.force_login(developer.user)
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME].value

    result = subprocess.run(
        [
            sys.executable,
            "-c",
            COPY_IN_CHROMIUM,
            str(CHROMIUM),
            live_server.url,
            django_settings.SESSION_COOKIE_NAME,
            cookie,
            guide_url("get-started"),
            *LAUNCH_ARGS,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["copied"] == (
        f"curl {live_server.url}/sandbox/PRODUCT/VERSION/documents "
        f'-H "Authorization: Bearer {secret}"'
    )
    assert outcome["label"] == "Copied"


# --- The samples work as pasted: run against a live server, through the real sandbox ---------


@pytest.fixture
def live_sandbox(live_server, transactional_db, meters, settings):
    """A live server with the Documents API as documents v1, an org on Pro (read, write and
    bulk in its plan), a developer's test key and an org token: what a reader would have."""
    settings.GATE_DRAIN_INLINE = False
    django_cache.clear()
    system = Actor.system("test")
    ensure_demo_catalog(actor=system)
    api_version_create(actor=system, product_code="documents", version="v1", document=DOCUMENTS_API)
    gate = process_gate()
    gate.catalog._refresh_seconds = 0
    gate.entitlements._seconds = 0
    organization = OrganizationFactory(slug="samples")
    subscription_subscribe(
        actor=system, organization=organization, plan=Plan.objects.get(code="pro")
    )
    developer = MembershipFactory(organization=organization, role=Role.DEVELOPER)
    _key, secret = key_create(
        actor=Actor(user=developer.user),
        project=ProjectFactory(organization=organization),
        name="Samples",
        environment="test",
        scopes=["read", "write"],
    )
    reader = guides.Reader(site_url=live_server.url, organization=organization, secret=secret)
    token = ApiTokenFactory(organization=organization)
    return {
        "organization": organization,
        "values": guides.guide_values(reader=reader),
        "token": token.raw_token,
    }


def samples(slug: str, values: dict[str, str]) -> list[tuple[str, str]]:
    """The guide's code blocks as a signed-in reader copies them."""
    text = guides.guide_from_file(slug=slug).body
    return [(language, substitute(code, values)) for language, code in CODE_FENCE.findall(text)]


def run_sample(language: str, code: str, *, token: str = "", cwd=None):
    commands = {
        "bash": ["bash", "-e", "-c", code],
        "python": [sys.executable, "-c", code],
        "javascript": ["node", "--input-type=module", "-e", code],
    }
    environment = {
        **os.environ,
        "TOLLGATE_ORG_TOKEN": token,
        "NO_PROXY": "*",
        "no_proxy": "*",
    }
    # Our own samples, against our own live server.
    return subprocess.run(
        commands[language],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        cwd=cwd,
        check=False,
    )


@pytest.mark.skipif(not shutil.which("node") or not shutil.which("curl"), reason="needs node, curl")
def test_get_started_samples_call_the_sandbox_as_pasted(live_sandbox):
    outputs = []
    for language, code in samples("get-started", live_sandbox["values"]):
        if language == "json":
            continue
        result = run_sample(language, code)
        assert result.returncode == 0, (code, result.stdout, result.stderr)
        outputs.append((language, result.stdout))

    assert [language for language, _output in outputs] == [
        "bash",
        "bash",
        "python",
        "javascript",
        "bash",
    ]
    for _language, output in outputs[:4]:  # GET /documents: a documented page (200)
        assert '"next_cursor"' in output.replace("'", '"') or "next_cursor:" in output
    assert '"status":"draft"' in outputs[4][1].replace(" ", "")  # POST: the created example


@pytest.mark.skipif(not shutil.which("node"), reason="needs node")
def test_rate_limit_samples_wait_out_a_429_and_then_succeed(live_sandbox):
    # A second organization on the Free plan (5 calls a second): easy to run out of.
    free_developer = MembershipFactory(role=Role.DEVELOPER)
    _key, key = key_create(
        actor=Actor(user=free_developer.user),
        project=ProjectFactory(organization=free_developer.organization),
        name="Free",
        environment="test",
    )
    values = {**live_sandbox["values"], "api_key": key}
    code = {
        language: code
        for language, code in samples("rate-limits", values)
        if "def call(" in code or "function call(" in code
    }
    url = f"{values['sandbox_url']}/documents"
    exhaust_python = f"""
saw_429 = False
for _ in range(50):  # keep calling until the gate refuses one
    saw_429 = requests.get("{url}", headers={{"Authorization": "Bearer {key}"}}).status_code == 429
    if saw_429:
        break
again = call("GET", "/documents")
print("SAW429", saw_429, "STATUS", again.status_code)
"""
    exhaust_javascript = f"""
let saw429 = false;
for (let i = 0; i < 50 && !saw429; i++) {{
  const refused = await fetch("{url}", {{ headers: {{ Authorization: "Bearer {key}" }} }});
  saw429 = refused.status === 429;
}}
const again = await call("GET", "/documents");
console.log("SAW429", saw429, "STATUS", again.status);
"""

    python = run_sample("python", code["python"] + exhaust_python)
    javascript = run_sample("javascript", code["javascript"] + exhaust_javascript)

    assert python.returncode == 0, python.stderr
    assert "SAW429 True STATUS 200" in python.stdout
    assert javascript.returncode == 0, javascript.stderr
    assert "SAW429 true STATUS 200" in javascript.stdout


def test_idempotency_sample_creates_one_project_however_often_it_is_sent(live_sandbox):
    code = next(
        code
        for language, code in samples("rate-limits", live_sandbox["values"])
        if language == "bash" and "Idempotency-Key" in code
    )

    first = run_sample("bash", code, token=live_sandbox["token"])
    second = run_sample("bash", code, token=live_sandbox["token"])

    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout  # replayed byte for byte
    assert json.loads(first.stdout)["name"] == "Mobile app"
    assert (
        Project.objects.filter(organization=live_sandbox["organization"], name="Mobile app").count()
        == 1
    )


def test_usage_and_invoice_samples_answer_with_the_org_token(live_sandbox, tmp_path):
    ran = []
    for language, code in samples("usage-and-invoices", live_sandbox["values"]):
        if language not in {"bash", "python"} or "tg_org_..." in code:
            continue
        result = run_sample(language, code, token=live_sandbox["token"], cwd=tmp_path)
        assert result.returncode == 0, (code, result.stdout, result.stderr)
        ran.append((code, result.stdout))

    assert len(ran) == 6
    outputs = {code.split("\n", 1)[0]: output for code, output in ran}
    usage = next(out for first, out in outputs.items() if "usage?meter=requests" in first)
    assert '"meter":"requests"' in usage.replace(" ", "")
    preview = next(out for first, out in outputs.items() if "preview" in first)
    assert '"to_date"' in preview and '"forecast"' in preview
    invoices = next(out for first, out in outputs.items() if "invoices?status=open" in first)
    assert '"results"' in invoices
    assert (tmp_path / "usage.csv").read_text().count("\n") >= 1  # the CSV header at least
