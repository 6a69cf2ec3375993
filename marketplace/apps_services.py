"""Writes for partners' apps and their listing review (MKT-1, MKT-2).

States: draft → in_review → listed | changes_requested; listed → suspended → listed. A
partner moves its app only from draft or changes_requested to in_review (it can never list
its own app); the operator decides the rest. Editing a listed app sends it back to review.
Every change of state is audited and e-mailed to the partner's owners and admins.
"""

import re
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from billing.pricing.money import MINOR_UNITS, is_supported_currency
from common.errors import Conflict, InvalidInput, PermissionDenied
from keys.models import Endpoint
from marketplace.images import check_image
from marketplace.installs import app_access_revoke
from marketplace.models import CATEGORIES, App, Partner
from marketplace.oauth_clients import oauth_client_approve, oauth_client_create
from marketplace.paid_apps import app_price_sync
from portal.audit import Actor, audit_record
from portal.notifications import email_on_commit, member_emails
from portal.roles import Role

APP_FIELDS = (
    "name",
    "summary",
    "description",
    "categories",
    "scopes",
    "redirect_uris",
    "support_url",
    "privacy_url",
    "install_url",
    "pricing_note",
    "price",
    "currency",
)
OPTIONAL_FIELDS = {"install_url", "pricing_note", "price", "currency"}
MAX_PRICE = Decimal("999999.99")  # per billing period; a larger one is a typo
MAX_REDIRECT_URIS = 10
MAX_LOGO_BYTES = 256 * 1024
LOGO_MIN_SIDE, LOGO_MAX_SIDE = 64, 1024
State = App.State
# The operator's decisions, and the states each may be taken from.
REVIEW_DECISIONS = {
    State.LISTED: {State.IN_REVIEW, State.SUSPENDED},
    State.CHANGES_REQUESTED: {State.IN_REVIEW},
    State.SUSPENDED: {State.LISTED, State.IN_REVIEW},
}
EDITABLE = {State.DRAFT, State.CHANGES_REQUESTED, State.LISTED}
STATE_WORDS = {
    State.IN_REVIEW: "is in review",
    State.LISTED: "is listed in the marketplace",
    State.CHANGES_REQUESTED: "needs changes before it can be listed",
    State.SUSPENDED: "was suspended",
}


def known_scopes() -> set[str]:
    """What an app may ask for: the endpoint groups of the provider's API."""
    return set(Endpoint.objects.values_list("group", flat=True).distinct()) | {"read", "write"}


def _clean_list(value, field: str, allowed: set[str], what: str) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > 20:
        raise InvalidInput(f"Choose 1 to 20 {what}.", field=field)
    unknown = sorted({str(item) for item in value} - allowed)
    if unknown:
        raise InvalidInput(
            f"Unknown {what}: {', '.join(unknown)[:200]}. "
            f"Choose from {', '.join(sorted(allowed))}.",
            field=field,
            code=f"invalid_{field}",
        )
    return sorted(set(value))


def _secure_url(url: str) -> bool:
    """https, or plain http to this machine only (a partner developing locally)."""
    parts = urlsplit(url.strip())
    secure = parts.scheme == "https" or (
        parts.scheme == "http" and (parts.hostname or "") in {"localhost", "127.0.0.1", "::1"}
    )
    return secure and bool(parts.hostname) and len(url) <= 500


def _clean_install_url(value) -> str:
    """Optional: the app's own page that starts the OAuth flow (it holds the PKCE verifier),
    where the gallery's Install button sends a customer."""
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or not _secure_url(value):
        raise InvalidInput(
            "The install URL is the https page of your app that starts the install "
            "(http only for localhost).",
            field="install_url",
            code="invalid_install_url",
        )
    return value.strip()


def _clean_redirect_uris(value) -> list[str]:
    """https URLs without fragments; plain http only to this machine (development)."""
    if not isinstance(value, list) or not value or len(value) > MAX_REDIRECT_URIS:
        raise InvalidInput(f"Give 1 to {MAX_REDIRECT_URIS} redirect URIs.", field="redirect_uris")
    cleaned = []
    for uri in value:
        if not _secure_url(str(uri)) or urlsplit(str(uri).strip()).fragment:
            raise InvalidInput(
                f"'{str(uri)[:100]}' is not a redirect URI: https, no #fragment "
                "(http only for localhost).",
                field="redirect_uris",
                code="invalid_redirect_uri",
            )
        cleaned.append(str(uri).strip())
    return sorted(set(cleaned))


def _clean_price(value) -> Decimal | None:
    """Empty: a free app. Else a Decimal from 0 to MAX_PRICE with at most 2 decimals (a
    float is refused: 19.99 as a float is not 19.99)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool | float) or not isinstance(value, Decimal | int | str):
        raise InvalidInput(
            "The price is an amount such as 19.99.", field="price", code="invalid_price"
        )
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation:
        price = None
    if (
        price is None
        or not price.is_finite()
        or price < 0
        or price > MAX_PRICE
        or price != price.quantize(Decimal("0.01"))
    ):
        raise InvalidInput(
            f"The price is an amount from 0 to {MAX_PRICE} with at most 2 decimals.",
            field="price",
            code="invalid_price",
        )
    return price.quantize(Decimal("0.01"))


def _clean_currency(value) -> str:
    code = value.strip().upper() if isinstance(value, str) else ""
    if not re.fullmatch(r"[A-Z]{3}", code) or not is_supported_currency(code):
        raise InvalidInput(
            "The currency is an ISO 4217 code Tollgate bills in, such as USD or EUR.",
            field="currency",
            code="invalid_currency",
        )
    return code


def _check_price_digits(price: Decimal | None, currency: str) -> None:
    """A price in yen has no cents: it must be billable exactly in its currency."""
    if price is not None and price != price.quantize(Decimal(1).scaleb(-MINOR_UNITS[currency])):
        raise InvalidInput(
            f"A price in {currency} has at most {MINOR_UNITS[currency]} decimals.",
            field="price",
            code="invalid_price",
        )


def _clean(fields: dict) -> dict:
    unknown = set(fields) - set(APP_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown fields: {', '.join(sorted(unknown))}.")
    cleaned = {
        name: value.strip() if isinstance(value, str) else value for name, value in fields.items()
    }
    if "categories" in cleaned:
        cleaned["categories"] = _clean_list(
            cleaned["categories"], "categories", set(CATEGORIES), "categories"
        )
    if "scopes" in cleaned:
        cleaned["scopes"] = _clean_list(cleaned["scopes"], "scopes", known_scopes(), "scopes")
    if "redirect_uris" in cleaned:
        cleaned["redirect_uris"] = _clean_redirect_uris(cleaned["redirect_uris"])
    if "install_url" in cleaned:
        cleaned["install_url"] = _clean_install_url(cleaned["install_url"])
    if "price" in cleaned:
        cleaned["price"] = _clean_price(cleaned["price"])
    if "currency" in cleaned:
        cleaned["currency"] = _clean_currency(cleaned["currency"])
    return cleaned


def _unique_slug(name: str) -> str:
    base = slugify(name)[:80] or "app"
    slug, counter = base, 2
    while App.objects.filter(slug=slug).exists():
        slug, counter = f"{base}-{counter}", counter + 1
    return slug


def _notify(app: App, note: str = "") -> None:
    organization = app.partner.organization
    email_on_commit(
        member_emails(organization.id, [Role.OWNER, Role.ADMIN]),
        organization=organization,
        subject=f"{app.name} {STATE_WORDS.get(app.state, app.state)}",
        template="marketplace/email/app_state.txt",
        context={"app": app, "words": STATE_WORDS.get(app.state, app.state), "note": note},
    )


def _record(actor: Actor, app: App, action: str, changes: dict) -> None:
    audit_record(
        actor=actor,
        action=action,
        organization=app.partner.organization,
        target=app,
        changes=changes,
    )


def app_create(*, actor: Actor, partner: Partner, **fields) -> App:
    if partner.status != Partner.Status.APPROVED:
        raise PermissionDenied(
            "Only an approved partner creates apps.", code="partner_not_approved"
        )
    cleaned = _clean(fields)
    missing = [name for name in APP_FIELDS if name not in OPTIONAL_FIELDS and not cleaned.get(name)]
    if missing:
        raise InvalidInput(f"Required: {', '.join(missing)}.", field=missing[0])
    _check_price_digits(cleaned.get("price"), cleaned.get("currency") or "USD")
    with transaction.atomic():
        app = App(partner=partner, slug=_unique_slug(cleaned["name"]), **cleaned)
        app.full_clean(exclude=["partner", "logo"])
        app.save()
        oauth_client_create(app=app)
        _record(actor, app, "app.created", {"name": app.name, "state": app.state})
    return app


def app_update(*, actor: Actor, app: App, **fields) -> App:
    """Edits the app; a listed app goes back to review (it leaves the gallery until the
    operator lists it again), so nothing unreviewed is ever shown."""
    cleaned = _clean(fields)
    with transaction.atomic():
        locked = (
            App.objects.select_for_update().select_related("partner__organization").get(pk=app.pk)
        )
        if locked.state not in EDITABLE:
            raise Conflict(
                f"An app that is {locked.state.replace('_', ' ')} cannot be edited now.",
                code="app_not_editable",
            )
        changed = {name: value for name, value in cleaned.items() if getattr(locked, name) != value}
        if not changed:
            return locked
        _check_price_digits(
            cleaned.get("price", locked.price), changed.get("currency", locked.currency)
        )
        if "currency" in changed and locked.addon_id is not None:
            # Invoice lines and installed orgs' subscriptions hold its add-on in that currency.
            raise Conflict(
                "The currency of an app that was listed at a price cannot change.",
                field="currency",
                code="currency_locked",
            )
        for name, value in changed.items():
            setattr(locked, name, value)
        relisting = locked.state == State.LISTED
        if relisting:
            locked.state = State.IN_REVIEW
            locked.submitted_at = timezone.now()
        locked.updated_at = timezone.now()
        locked.full_clean(exclude=["partner", "logo"])
        locked.save()
        audited = {
            name: str(value) if isinstance(value, Decimal) else value
            for name, value in changed.items()
        }
        _record(actor, locked, "app.updated", {**audited, "state": locked.state})
        if relisting:
            _notify(locked)
    return locked


def app_logo_set(*, actor: Actor, app: App, data: bytes) -> App:
    """A PNG, JPEG or WebP image, square-ish, 64-1024 px a side, at most 256 KB. Checked by
    decoding it, not by its name or declared type; SVG (scriptable) is refused."""
    content_type = check_image(
        data,
        what="The logo",
        field="logo",
        code="invalid_logo",
        too_large_code="logo_too_large",
        max_bytes=MAX_LOGO_BYTES,
        min_side=LOGO_MIN_SIDE,
        max_side=LOGO_MAX_SIDE,
    )
    with transaction.atomic():
        locked = (
            App.objects.select_for_update().select_related("partner__organization").get(pk=app.pk)
        )
        if locked.state not in EDITABLE:
            raise Conflict("This app cannot be edited now.", code="app_not_editable")
        locked.logo = data
        locked.logo_content_type = content_type
        locked.updated_at = timezone.now()
        locked.save(update_fields=["logo", "logo_content_type", "updated_at"])
        _record(actor, locked, "app.logo_changed", {"bytes": len(data), "type": content_type})
    return locked


def app_submit(*, actor: Actor, app: App) -> App:
    """The partner asks for review: the only way its app moves towards the gallery."""
    with transaction.atomic():
        locked = (
            App.objects.select_for_update().select_related("partner__organization").get(pk=app.pk)
        )
        if locked.state not in {State.DRAFT, State.CHANGES_REQUESTED}:
            raise Conflict(
                f"An app that is {locked.state.replace('_', ' ')} cannot be submitted.",
                code="invalid_transition",
            )
        if locked.partner.status != Partner.Status.APPROVED:
            raise PermissionDenied(
                "Your partner account is not approved.", code="partner_not_approved"
            )
        if not locked.logo:
            raise InvalidInput(
                "Upload a logo before submitting.", field="logo", code="logo_missing"
            )
        locked.state = State.IN_REVIEW
        locked.submitted_at = timezone.now()
        locked.save(update_fields=["state", "submitted_at"])
        _record(actor, locked, "app.submitted", {"state": locked.state})
        _notify(locked)
    return locked


def app_review(
    *, actor: Actor, app: App, decision: str, note: str = "", certified: bool | None = None
) -> App:
    """The operator's decision: list, ask for changes, or suspend (and certify)."""
    if decision not in REVIEW_DECISIONS:
        raise InvalidInput("Decide listed, changes_requested or suspended.", field="decision")
    with transaction.atomic():
        locked = (
            App.objects.select_for_update().select_related("partner__organization").get(pk=app.pk)
        )
        if locked.state not in REVIEW_DECISIONS[decision]:
            raise Conflict(
                f"An app that is {locked.state.replace('_', ' ')} cannot become "
                f"{decision.replace('_', ' ')}.",
                code="invalid_transition",
            )
        if decision == State.LISTED and locked.partner.status != Partner.Status.APPROVED:
            raise Conflict("The partner is not approved.", code="partner_not_approved")
        locked.state = decision
        locked.review_note = note.strip()
        if decision == State.LISTED:
            locked.listed_at = timezone.now()
        if certified is not None:
            locked.certified = certified
        locked.save()
        if decision == State.LISTED:  # its scopes, redirect URIs and price are approved with it
            oauth_client_approve(app=locked)
            app_price_sync(actor=actor, app=locked)
        elif decision == State.SUSPENDED:  # its calls stop now, not when its tokens expire
            app_access_revoke(apps=[locked])
        _record(
            actor,
            locked,
            f"app.{decision}",
            {"state": decision, "note": locked.review_note, "certified": locked.certified},
        )
        _notify(locked, note=locked.review_note)
    return locked
