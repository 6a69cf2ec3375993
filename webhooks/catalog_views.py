"""The portal's event catalog page, /o/<slug>/webhooks/catalog/: every event type with its
version, description, schema and examples, for any member of the organization."""

import json
import re

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from portal.decorators import org_member_required
from portal.roles import Permission
from webhooks.catalog import event_types


def _pretty(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _with_code(text: str) -> SafeString:
    """Descriptions mark field names and codes with backticks, as in Markdown."""
    return mark_safe(re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text)))  # noqa: S308 - escaped first


@org_member_required(Permission.ORG_VIEW)
def catalog(request: HttpRequest) -> HttpResponse:
    rows = [
        {
            "name": event_type.name,
            "version": event_type.version,
            "description": _with_code(event_type.description),
            "schema": _pretty(event_type.schema),
            "examples": [_pretty(example) for example in event_type.examples],
        }
        for event_type in event_types()
    ]
    return render(
        request, "webhooks/catalog.html", {"event_types": rows, "nav_section": "webhooks"}
    )
