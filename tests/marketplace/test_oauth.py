"""Installs through OAuth consent (ACC-6): authorization code + PKCE end to end over HTTP,
scope intersection (asked ∩ approved ∩ plan), tokens the gate checks and attributes to the
app, refresh, revocation, introspection, and uninstall revoking everything at once."""

import base64
import hashlib
import json
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.cache import cache as django_cache
from oauth2_provider.models import AccessToken, Grant, RefreshToken

from billing.demo_catalog import ensure_demo_catalog
from billing.models import Plan
from billing.subscriptions import subscription_subscribe
from common.errors import InvalidInput
from keys.gate import VerifyInput
from keys.models import ApiKey
from marketplace.apps_services import app_review
from marketplace.installs import install_uninstall
from marketplace.models import AppToken, Install, InstallGrant
from marketplace.oauth_clients import oauth_client_secret_reset
from portal.audit import Actor
from portal.roles import Role
from portal.services import organization_create
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory
from tests.marketplace.test_apps import APP, SYSTEM, app, image_bytes, partner  # noqa: F401
from webhooks.catalog import payload_errors
from webhooks.models import Event

pytestmark = pytest.mark.django_db
REDIRECT = "https://docsync.example.com/oauth/callback"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture
def listed(app):  # noqa: F811
    from marketplace.apps_services import app_submit

    app_submit(actor=SYSTEM, app=app)
    listed = app_review(actor=SYSTEM, app=app, decision="listed")
    listed.refresh_from_db()
    return listed


@pytest.fixture
def secret(listed):
    return oauth_client_secret_reset(actor=SYSTEM, app=listed)


@pytest.fixture
def customer(db):
    """Another org (not the partner's) with an owner and a project, on the Free plan
    (the fallback entitlements: endpoint group `read` only)."""
    organization = OrganizationFactory(slug="initech", name="Initech")
    user = UserFactory()
    MembershipFactory(organization=organization, user=user, role=Role.OWNER)
    project = ProjectFactory(organization=organization, name="Integrations")
    return organization, user, project


def authorize_query(listed_app, challenge, scope="read write", state="s-123", **extra) -> dict:
    return {
        "response_type": "code",
        "client_id": listed_app.oauth_application.client_id,
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


def consent(client, listed_app, user, project, scope="read write", allow=True):
    """GET the consent page, then POST it: returns (response, verifier)."""
    verifier, challenge = pkce_pair()
    client.force_login(user)
    query = authorize_query(listed_app, challenge, scope=scope)
    page = client.get("/o/authorize/", query)
    assert page.status_code == 200, page.content[:500]
    form = {**query, "project": str(project.pk)}
    if allow:
        form["allow"] = "Authorize"
    return client.post("/o/authorize/", form), verifier


def code_from(response) -> str:
    assert response.status_code == 302, response.content[:500]
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    params = parse_qs(location.query)
    assert params["state"] == ["s-123"]
    return params["code"][0]


def exchange(client, listed_app, secret, code, verifier):
    client.logout()
    return client.post(
        "/o/token/",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": listed_app.oauth_application.client_id,
            "client_secret": secret,
        },
    )


def installed_tokens(client, listed, secret, customer, scope="read write") -> dict:
    _organization, user, project = customer
    response, verifier = consent(client, listed, user, project, scope=scope)
    token = exchange(client, listed, secret, code_from(response), verifier)
    assert token.status_code == 200, token.content
    return token.json()


def refresh(client, listed, secret, refresh_token):
    return client.post(
        "/o/token/",
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": listed.oauth_application.client_id,
            "client_secret": secret,
        },
    )


def decide(gate, token: str):
    return gate.decide(VerifyInput(key=token, method="GET", path="/v1/documents/1"))


def test_the_consent_page_shows_exactly_the_scopes_asked(client, listed, customer):
    _organization, user, _project = customer
    _verifier, challenge = pkce_pair()
    client.force_login(user)
    page = client.get("/o/authorize/", authorize_query(listed, challenge, scope="read write"))
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-scope="read"' in html and 'data-scope="write"' in html
    assert 'data-scope="bulk"' not in html
    # Initech is on the fallback plan: `write` is shown, and shown as not granted.
    assert 'data-not-granted="write"' in html and 'data-not-granted="read"' not in html
    assert "Initech / Integrations" in html


def test_the_full_flow_with_pkce_issues_tokens_the_gate_accepts(
    client, listed, secret, customer, gate
):
    organization, _user, project = customer
    tokens = installed_tokens(client, listed, secret, customer)
    # Asked read+write, approved read+write, the plan allows read: read only.
    assert tokens["scope"] == "read"
    assert tokens["access_token"].startswith("tg_live_") and tokens["refresh_token"]
    install = Install.objects.get(app=listed, organization=organization)
    assert install.scopes == ["read"] and install.project == project
    twin = ApiKey.objects.get(app_token__install=install)
    assert twin.app_id == listed.id and twin.organization_id == organization.id
    assert twin.scopes == ["read"] and twin.environment == "live"
    # No token is stored in clear (RFC 9700): only its checksum.
    assert AccessToken.objects.get(marketplace_token__install=install).token == ""

    allowed = gate.decide(
        VerifyInput(key=tokens["access_token"], method="GET", path="/v1/documents/1")
    )
    assert allowed.allowed and allowed.key.organization_id == str(organization.id)
    assert allowed.key.app_id == str(listed.id)
    refused = gate.decide(
        VerifyInput(key=tokens["access_token"], method="POST", path="/v1/documents")
    )
    assert refused.code == "scope_missing"


def test_calls_with_an_app_token_are_metered_to_the_org_and_attributed_to_the_app(
    client, listed, secret, customer, gate
):
    from billing.models import UsageEvent
    from keys.tasks import drain_gate_usage

    organization, _user, project = customer
    tokens = installed_tokens(client, listed, secret, customer)
    for _ in range(3):
        assert gate.decide(
            VerifyInput(key=tokens["access_token"], method="GET", path="/v1/documents/1")
        ).allowed
    drain_gate_usage()
    rows = UsageEvent.objects.filter(organization=organization, meter__code="requests")
    assert rows.count() == 3
    assert {row.properties.get("app") for row in rows} == {str(listed.id)}
    assert {row.project_id for row in rows} == {project.id}


def test_a_wrong_verifier_is_refused_and_the_code_stays_unusable_by_others(
    client, listed, secret, customer
):
    _organization, user, project = customer
    response, _verifier = consent(client, listed, user, project)
    code = code_from(response)
    wrong, _ = pkce_pair()
    refused = exchange(client, listed, secret, code, wrong)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert (
        not AppToken.objects.exists() and not ApiKey.objects.filter(app_id__isnull=False).exists()
    )


def test_a_missing_pkce_challenge_is_refused(client, listed, customer):
    _organization, user, _project = customer
    client.force_login(user)
    query = authorize_query(listed, "x")
    del query["code_challenge"], query["code_challenge_method"]
    response = client.get("/o/authorize/", query)
    # An error the client can read at its redirect URI, never a code.
    assert response.status_code == 302
    assert "error=invalid_request" in response["Location"] and "code=" not in response["Location"]


def test_the_plain_pkce_method_is_refused(client, listed, customer):
    _organization, user, project = customer
    verifier, _ = pkce_pair()
    client.force_login(user)
    query = authorize_query(listed, verifier, code_challenge_method="plain")
    client.get("/o/authorize/", query)
    response = client.post("/o/authorize/", {**query, "project": str(project.pk), "allow": "1"})
    assert "code=" not in response.get("Location", "")
    assert not Grant.objects.exists() and not Install.objects.exists()


def test_a_code_is_used_once(client, listed, secret, customer):
    _organization, user, project = customer
    response, verifier = consent(client, listed, user, project)
    code = code_from(response)
    assert exchange(client, listed, secret, code, verifier).status_code == 200
    again = exchange(client, listed, secret, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_a_wrong_client_secret_is_refused(client, listed, secret, customer):
    _organization, user, project = customer
    response, verifier = consent(client, listed, user, project)
    refused = exchange(client, listed, "not-the-secret", code_from(response), verifier)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("plan_code", "asked", "granted"),
    [
        ("free", "read write", "read"),  # the plan allows read only
        ("pro", "read write", "read write"),
        ("pro", "read", "read"),  # never more than asked
        ("pro", "read bulk", "read"),  # bulk is in Pro, but the operator did not approve it
    ],
)
def test_token_scopes_are_asked_and_approved_and_allowed_by_the_plan(
    client, listed, secret, customer, gate, plan_code, asked, granted
):
    organization, _user, _project = customer
    ensure_demo_catalog(actor=SYSTEM)
    if plan_code != "free":
        subscription_subscribe(
            actor=SYSTEM, organization=organization, plan=Plan.objects.get(code=plan_code)
        )
    django_cache.clear()
    tokens = installed_tokens(client, listed, secret, customer, scope=asked)
    assert tokens["scope"] == granted
    twin = ApiKey.objects.get(app_id=listed.id, revoked_at__isnull=True)
    assert " ".join(sorted(twin.scopes)) == " ".join(sorted(granted.split()))


def test_nothing_grantable_is_refused_on_the_consent_page(client, listed, customer):
    _organization, user, project = customer
    response, _ = consent(client, listed, user, project, scope="write")  # not in Free
    assert response.status_code == 200
    assert "None of the scopes" in response.content.decode()
    assert not Install.objects.exists() and not Grant.objects.exists()


def test_an_unknown_scope_is_refused(client, listed, customer):
    _organization, user, _project = customer
    _v, challenge = pkce_pair()
    client.force_login(user)
    response = client.get("/o/authorize/", authorize_query(listed, challenge, scope="read root"))
    assert response.status_code == 302 and "error=invalid_scope" in response["Location"]


def test_denying_consent_installs_nothing(client, listed, customer):
    _organization, user, project = customer
    response, _ = consent(client, listed, user, project, allow=False)
    assert response.status_code == 302 and "error=access_denied" in response["Location"]
    assert not Install.objects.exists()


def test_approval_prompt_auto_still_shows_the_consent_page(client, listed, secret, customer):
    """The toolkit would skip consent for a user with a live token; Tollgate never does."""
    _organization, user, _project = customer
    installed_tokens(client, listed, secret, customer, scope="read")
    client.force_login(user)
    _verifier, challenge = pkce_pair()
    page = client.get(
        "/o/authorize/", authorize_query(listed, challenge, scope="read", approval_prompt="auto")
    )
    assert page.status_code == 200 and b"data-consent-form" in page.content


def tampered_consent(client, listed, customer, **changes):
    _organization, user, project = customer
    client.force_login(user)
    _verifier, challenge = pkce_pair()
    form = {**authorize_query(listed, challenge), "project": str(project.pk), "allow": "1"}
    form.update(changes)
    return client.post("/o/authorize/", {k: v for k, v in form.items() if v is not None})


def test_a_tampered_consent_form_installs_nothing_and_redirects_nowhere_unapproved(
    client, listed, customer
):
    unknown = tampered_consent(client, listed, customer, client_id="no-such-client")
    assert unknown.status_code == 400 and b"data-oauth-error" in unknown.content
    elsewhere = tampered_consent(client, listed, customer, redirect_uri="https://evil.example/")
    assert elsewhere.status_code == 400
    cancelled = tampered_consent(
        client, listed, customer, redirect_uri="https://evil.example/", allow=None
    )
    assert cancelled.status_code == 400
    # No PKCE: oauthlib answers with an error redirect to the app, and the install that
    # consent made is rolled back with it (no audit, no event, no charge).
    no_pkce = tampered_consent(
        client, listed, customer, code_challenge=None, code_challenge_method=None
    )
    assert no_pkce.status_code == 302 and "error=invalid_request" in no_pkce["Location"]
    assert no_pkce["Location"].startswith(REDIRECT)
    assert not Install.objects.exists() and not Grant.objects.exists()
    assert not Event.objects.filter(type="app.installed").exists()


def test_only_owners_and_admins_may_install(client, listed, customer):
    organization, _owner, project = customer
    developer = UserFactory()
    MembershipFactory(organization=organization, user=developer, role=Role.DEVELOPER)
    _verifier, challenge = pkce_pair()
    client.force_login(developer)
    query = authorize_query(listed, challenge)
    page = client.get("/o/authorize/", query)
    assert "data-no-projects" in page.content.decode()
    posted = client.post("/o/authorize/", {**query, "project": str(project.pk), "allow": "1"})
    assert posted.status_code == 200 and not Install.objects.exists()


def test_a_project_of_another_org_cannot_be_chosen(client, listed, customer, other_org):
    _organization, user, _project = customer
    foreign = ProjectFactory(organization=other_org)
    _v, challenge = pkce_pair()
    client.force_login(user)
    query = authorize_query(listed, challenge)
    posted = client.post("/o/authorize/", {**query, "project": str(foreign.pk), "allow": "1"})
    assert posted.status_code == 200 and not Install.objects.exists()


def test_an_app_that_is_not_listed_cannot_be_authorized(client, app, customer):  # noqa: F811
    _organization, user, _project = customer
    _v, challenge = pkce_pair()
    client.force_login(user)
    response = client.get("/o/authorize/", authorize_query(app, challenge))
    assert response.status_code == 400
    assert "data-oauth-error" in response.content.decode()


def test_the_consent_page_asks_anonymous_visitors_to_log_in(client, listed):
    _v, challenge = pkce_pair()
    response = client.get("/o/authorize/", authorize_query(listed, challenge))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_refreshing_rotates_and_revokes_the_previous_token(client, listed, secret, customer, gate):
    tokens = installed_tokens(client, listed, secret, customer)
    refreshed = refresh(client, listed, secret, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.content
    new = refreshed.json()
    assert new["access_token"] != tokens["access_token"] and new["scope"] == "read"
    old = gate.decide(VerifyInput(key=tokens["access_token"], method="GET", path="/v1/documents/1"))
    assert old.code == "key_revoked"
    assert gate.decide(
        VerifyInput(key=new["access_token"], method="GET", path="/v1/documents/1")
    ).allowed
    assert AppToken.objects.count() == 2


def test_a_replayed_refresh_token_revokes_the_whole_family(
    client, listed, secret, customer, gate, django_capture_on_commit_callbacks
):
    """RFC 9700 §4.14.2: the old refresh token used again means it leaked; the token the
    rotation issued (and its twin key) stop working too."""
    tokens = installed_tokens(client, listed, secret, customer)
    rotated = refresh(client, listed, secret, tokens["refresh_token"])
    assert rotated.status_code == 200
    new = rotated.json()
    assert decide(gate, new["access_token"]).allowed

    with django_capture_on_commit_callbacks(execute=True):  # the gate hears of revocations
        replayed = refresh(client, listed, secret, tokens["refresh_token"])
    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_grant"
    assert decide(gate, new["access_token"]).code == "key_revoked"
    assert refresh(client, listed, secret, new["refresh_token"]).status_code == 400
    assert ApiKey.objects.filter(app_id=listed.id, revoked_at__isnull=True).count() == 0


def test_an_access_token_deleted_by_hand_revokes_its_twin_key(
    client, listed, secret, customer, gate, django_capture_on_commit_callbacks
):
    """However the provider's token goes (admin, cleartokens, revocation), the key goes."""
    tokens = installed_tokens(client, listed, secret, customer)
    assert decide(gate, tokens["access_token"]).allowed
    with django_capture_on_commit_callbacks(execute=True):
        AccessToken.objects.get().delete()
    assert decide(gate, tokens["access_token"]).code == "key_revoked"


def test_suspending_the_app_stops_its_tokens_at_once(
    client, listed, secret, customer, gate, django_capture_on_commit_callbacks
):
    organization, _user, _project = customer
    tokens = installed_tokens(client, listed, secret, customer)
    assert decide(gate, tokens["access_token"]).allowed
    with django_capture_on_commit_callbacks(execute=True):
        app_review(actor=SYSTEM, app=listed, decision="suspended", note="Abuse report")
    assert decide(gate, tokens["access_token"]).code == "key_revoked"
    assert refresh(client, listed, secret, tokens["refresh_token"]).status_code == 400
    # The install stays, the customer's choice; relisted, the app asks for consent again.
    assert Install.objects.get(organization=organization).active
    app_review(actor=SYSTEM, app=listed, decision="listed")
    again = installed_tokens(client, listed, secret, customer)
    assert decide(gate, again["access_token"]).allowed


def test_suspending_the_partner_stops_its_apps_tokens(
    client, listed, secret, customer, gate, django_capture_on_commit_callbacks
):
    from marketplace.services import partner_decide

    tokens = installed_tokens(client, listed, secret, customer)
    assert decide(gate, tokens["access_token"]).allowed
    with django_capture_on_commit_callbacks(execute=True):
        partner_decide(actor=SYSTEM, partner=listed.partner, status="suspended")
    assert decide(gate, tokens["access_token"]).code == "key_revoked"
    assert refresh(client, listed, secret, tokens["refresh_token"]).status_code == 400


def test_uninstall_revokes_every_token_at_once(
    client, listed, secret, customer, gate, django_capture_on_commit_callbacks
):
    organization, user, _project = customer
    tokens = installed_tokens(client, listed, secret, customer)
    assert gate.decide(
        VerifyInput(key=tokens["access_token"], method="GET", path="/v1/documents/1")
    ).allowed
    install = Install.objects.get(app=listed, organization=organization)
    with django_capture_on_commit_callbacks(execute=True):
        install_uninstall(actor=Actor(user=user), install=install)
    denied = gate.decide(
        VerifyInput(key=tokens["access_token"], method="GET", path="/v1/documents/1")
    )
    assert denied.code == "key_revoked"
    assert not AccessToken.objects.exists()
    assert RefreshToken.objects.filter(revoked__isnull=True).count() == 0
    refreshed = refresh(client, listed, secret, tokens["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


def test_a_code_granted_before_uninstall_cannot_be_exchanged_after(
    client, listed, secret, customer
):
    organization, user, project = customer
    response, verifier = consent(client, listed, user, project)
    code = code_from(response)
    install_uninstall(actor=SYSTEM, install=Install.objects.get(organization=organization))
    refused = exchange(client, listed, secret, code, verifier)
    assert refused.status_code == 400 and not AppToken.objects.exists()
    assert not InstallGrant.objects.exists()


def test_the_revocation_endpoint_revokes_the_twin_key(client, listed, secret, customer, gate):
    tokens = installed_tokens(client, listed, secret, customer)
    response = client.post(
        "/o/revoke_token/",
        {
            "token": tokens["access_token"],
            "client_id": listed.oauth_application.client_id,
            "client_secret": secret,
        },
    )
    assert response.status_code == 200
    denied = gate.decide(
        VerifyInput(key=tokens["access_token"], method="GET", path="/v1/documents/1")
    )
    assert denied.code == "key_revoked"


def test_introspection_answers_only_about_the_clients_own_tokens(
    client,
    listed,
    secret,
    customer,
    partner,  # noqa: F811
):
    organization, _user, _project = customer
    tokens = installed_tokens(client, listed, secret, customer)
    own = client.post(
        "/o/introspect/",
        {"token": tokens["access_token"]},
        HTTP_AUTHORIZATION="Basic "
        + base64.b64encode(f"{listed.oauth_application.client_id}:{secret}".encode()).decode(),
    )
    body = own.json()
    assert own.status_code == 200 and body["active"] is True and body["scope"] == "read"
    assert body["tollgate_organization"] == str(organization.id)

    from marketplace.apps_services import app_create, app_logo_set, app_submit

    other = app_create(actor=SYSTEM, partner=partner, **{**APP, "name": "Other app"})
    app_logo_set(actor=SYSTEM, app=other, data=image_bytes())
    app_submit(actor=SYSTEM, app=other)
    other = app_review(actor=SYSTEM, app=other, decision="listed")
    other_secret = oauth_client_secret_reset(actor=SYSTEM, app=other)
    foreign = client.post(
        "/o/introspect/",
        {"token": tokens["access_token"]},
        HTTP_AUTHORIZATION="Basic "
        + base64.b64encode(f"{other.oauth_application.client_id}:{other_secret}".encode()).decode(),
    )
    assert foreign.status_code == 200 and foreign.json() == {"active": False}
    anonymous = client.post("/o/introspect/", {"token": tokens["access_token"]})
    assert anonymous.status_code == 401
    # A token never travels in a URL (RFC 7662 §2.1, RFC 9700 §4.3.2).
    in_url = client.get("/o/introspect/", {"token": tokens["access_token"]})
    assert in_url.status_code == 405 and in_url.json()["error"] == "invalid_request"


def test_install_and_uninstall_emit_events_to_the_org_and_the_partner(
    client, listed, secret, customer
):
    organization, _user, _project = customer
    installed_tokens(client, listed, secret, customer)
    install_uninstall(actor=SYSTEM, install=Install.objects.get(organization=organization))
    events = Event.objects.filter(type__startswith="app.").order_by("created_at")
    by_org = {(event.organization_id, event.type) for event in events}
    partner_org = listed.partner.organization_id
    assert by_org == {
        (organization.id, "app.installed"),
        (organization.id, "app.uninstalled"),
        (partner_org, "app.installed"),
        (partner_org, "app.uninstalled"),
    }
    for event in events:
        assert payload_errors(json.loads(json.dumps(event.payload))) == []


def test_installing_again_renews_the_install_but_cannot_move_it(client, listed, secret, customer):
    organization, user, project = customer
    installed_tokens(client, listed, secret, customer)
    again, _ = consent(client, listed, user, project)
    assert again.status_code == 302
    assert Install.objects.filter(organization=organization).count() == 1
    other_project = ProjectFactory(organization=organization)
    moved, _ = consent(client, listed, user, other_project)
    assert moved.status_code == 200 and "already installed" in moved.content.decode()


def test_consent_renewed_with_fewer_scopes_stops_the_wider_tokens(
    client, listed, secret, customer, gate, django_capture_on_commit_callbacks
):
    organization, _user, _project = customer
    ensure_demo_catalog(actor=SYSTEM)
    subscription_subscribe(
        actor=SYSTEM, organization=organization, plan=Plan.objects.get(code="pro")
    )
    django_cache.clear()
    wide = installed_tokens(client, listed, secret, customer, scope="read write")
    assert wide["scope"] == "read write" and decide(gate, wide["access_token"]).allowed
    with django_capture_on_commit_callbacks(execute=True):
        narrow = installed_tokens(client, listed, secret, customer, scope="read")
    assert decide(gate, wide["access_token"]).code == "key_revoked"
    assert refresh(client, listed, secret, wide["refresh_token"]).status_code == 400
    assert decide(gate, narrow["access_token"]).allowed
    assert Install.objects.get(organization=organization).scopes == ["read"]


def test_consent_renewed_with_the_same_scopes_keeps_the_tokens(
    client, listed, secret, customer, gate
):
    first = installed_tokens(client, listed, secret, customer)
    installed_tokens(client, listed, secret, customer)
    assert decide(gate, first["access_token"]).allowed


def test_oauth_endpoint_names_cannot_be_organization_slugs(db):
    user = UserFactory()
    for slug in ("authorize", "token", "introspect"):
        with pytest.raises(InvalidInput):
            organization_create(actor=SYSTEM, name="x", owner=user, slug=slug)


def test_the_partner_sees_its_client_id_and_gets_a_new_secret_once(client, listed, customer, org):
    from django.urls import reverse

    owner = UserFactory()
    MembershipFactory(organization=org, user=owner, role=Role.OWNER)
    client.force_login(owner)
    url = reverse("marketplace:app_credentials", kwargs={"slug": org.slug, "app_id": listed.id})
    page = client.get(url)
    assert page.status_code == 200
    assert listed.oauth_application.client_id in page.content.decode()
    assert page.context["secret"] is None
    reset = client.post(url)
    secret = reset.context["secret"]
    assert secret and reset["Cache-Control"] == "no-store"
    listed.oauth_application.refresh_from_db()
    assert secret not in listed.oauth_application.client_secret  # stored hashed
    # Another organization's owner cannot reach it.
    _organization, stranger, _project = customer
    client.force_login(stranger)
    foreign = reverse(
        "marketplace:app_credentials", kwargs={"slug": "initech", "app_id": listed.id}
    )
    assert client.get(foreign).status_code == 404
    assert client.post(url).status_code == 404
