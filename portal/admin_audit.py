"""Audit rows for plain edits made in Django admin (rule-bearing changes use services)."""

from portal.audit import Actor, audit_record
from portal.models import Organization

# Never copy these into an audit row, whatever the form says.
_HIDDEN_FIELDS = frozenset({"password", "key_hash", "token_hash"})


def _organization_of(obj) -> Organization | None:
    if isinstance(obj, Organization):
        return obj
    return getattr(obj, "organization", None)


def _action(obj, verb: str) -> str:
    return f"{obj._meta.model_name}.{verb}_in_admin"


class AuditedAdminMixin:
    """Records who changed what in admin, in the same transaction as the change."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        changed = [name for name in form.changed_data if name not in _HIDDEN_FIELDS]
        values = {}
        for name in changed:
            value = form.cleaned_data.get(name)
            values[name] = value if isinstance(value, str | int | bool | None) else str(value)
        audit_record(
            actor=Actor.from_request(request),
            action=_action(obj, "updated" if change else "created"),
            organization=_organization_of(obj),
            target=obj,
            changes=values,
        )

    def delete_model(self, request, obj):
        audit_record(
            actor=Actor.from_request(request),
            action=_action(obj, "deleted"),
            organization=_organization_of(obj),
            target=obj,
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)

    def save_formset(self, request, form, formset, change):
        instances = formset.save(commit=False)
        actor = Actor.from_request(request)
        for obj in formset.deleted_objects:
            audit_record(
                actor=actor,
                action=_action(obj, "deleted"),
                organization=_organization_of(obj),
                target=obj,
            )
            obj.delete()
        for obj in instances:
            adding = obj._state.adding
            obj.save()
            audit_record(
                actor=actor,
                action=_action(obj, "created" if adding else "updated"),
                organization=_organization_of(obj),
                target=obj,
                changes={"role": getattr(obj, "role", None)},
            )
        formset.save_m2m()
