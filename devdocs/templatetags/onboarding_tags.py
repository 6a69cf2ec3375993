"""The dashboard's onboarding checklist, as a tag so the portal needs no import of devdocs."""

from django import template

from devdocs.onboarding import checklist

register = template.Library()


@register.inclusion_tag("devdocs/includes/onboarding_checklist.html", takes_context=True)
def onboarding_checklist(context) -> dict:
    organization = context.get("current_org")
    if organization is None:
        return {"checklist": None}
    can = context.get("org_can") or {}
    return {
        "checklist": checklist(organization),
        "current_org": organization,
        "can_use_keys": bool(can.get("keys_manage")),
    }


@register.filter
def timedelta_short(value) -> str:
    """`42 s`, `3 min 5 s`, `2 h 10 min`, `4 days`: precise enough to read at a glance."""
    seconds = int(value.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days"
