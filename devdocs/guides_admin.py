"""Admin for guides: edit a guide without a deploy, starting from its file's text.

A Guide row overrides docs/portal/<slug>.md (or adds a guide); unpublishing it hides the
slug. The operator can start from the file (`?from_file=<slug>` on the add form, linked
from the list; or the "Load text from file" action on existing rows), sees the file's text
beside the form, and a rendered preview of the saved body. Every change is audited
(AuditedAdminMixin; the action writes its own rows).
"""

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from devdocs import guides
from devdocs.markdown import render_markdown
from devdocs.models import Guide
from devdocs.reader import Reader, site_url
from portal.admin_audit import AuditedAdminMixin
from portal.audit import Actor, audit_record


class GuideForm(forms.ModelForm):
    class Meta:
        model = Guide
        fields = ["slug", "title", "summary", "position", "published", "body"]
        widgets = {"body": forms.Textarea(attrs={"rows": 30, "cols": 100})}

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        if not guides.SLUG.match(slug):
            raise forms.ValidationError(
                "Use lowercase letters, digits and hyphens, starting with a letter or digit "
                "(the file name without .md, e.g. get-started)."
            )
        return slug

    def clean_body(self) -> str:
        body = self.cleaned_data["body"]
        if guides.FRONT_MATTER.match(body):
            raise forms.ValidationError(
                "Remove the front matter block (--- … ---) from the top: title, summary and "
                "position are the fields above."
            )
        return body


@admin.register(Guide)
class GuideAdmin(AuditedAdminMixin, admin.ModelAdmin):
    form = GuideForm
    change_list_template = "devdocs/guides/admin_change_list.html"
    list_display = ["title", "slug", "position", "published", "overrides_file", "updated_at"]
    list_display_links = ["title", "slug"]
    list_filter = ["published"]
    search_fields = ["slug", "title", "summary", "body"]
    ordering = ["position", "slug"]
    actions = ["load_from_file"]
    readonly_fields = ["updated_at", "updated_by", "public_link", "preview", "file_text"]
    fieldsets = [
        (None, {"fields": ["slug", "title", "summary", "position", "published"]}),
        (
            "Text",
            {
                "fields": ["body"],
                "description": "Markdown. {{ api_key }}, {{ base_url }}, {{ sandbox_url }}, "
                "{{ product }} and {{ version }} become the reader's own values.",
            },
        ),
        ("Preview of the saved text", {"fields": ["public_link", "preview"]}),
        ("The file in docs/portal/", {"fields": ["file_text"], "classes": ["collapse"]}),
        ("History", {"fields": ["updated_at", "updated_by"]}),
    ]

    class Media:
        css = {"all": ["css/highlight.css", "css/guides.css"]}
        js = ["js/portal.js"]  # the preview's Copy buttons

    @admin.display(boolean=True, description="Overrides a file")
    def overrides_file(self, obj: Guide) -> bool:
        return obj.slug in guides.guide_file_slugs()

    @admin.display(description="Public page")
    def public_link(self, obj: Guide):
        if obj.pk is None:
            return "—"
        if not obj.published:
            return "Not published: the page answers 404."
        url = reverse("guides:detail", kwargs={"slug": obj.slug})
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, url)

    @admin.display(description="Preview")
    def preview(self, obj: Guide):
        """The saved body as an anonymous reader sees it (placeholders, not anyone's key)."""
        if obj.pk is None or not obj.body:
            return "Save to see the preview."
        values = guides.guide_values(reader=Reader(site_url=site_url(None)))
        return format_html(
            '<div class="prose guide-preview">{}</div>', render_markdown(obj.body, values)
        )

    @admin.display(description="File text")
    def file_text(self, obj: Guide):
        text = guides.guide_file_text(slug=obj.slug) if obj.pk else None
        if text is None:
            return "No file of this slug: this guide exists only here."
        return format_html('<pre class="guide-file-text">{}</pre>', text)

    def get_changeform_initial_data(self, request):
        """`?from_file=<slug>` starts a new row from the file's title, summary, position and
        text, so overriding a guide begins with what readers see today."""
        initial = super().get_changeform_initial_data(request)
        slug = request.GET.get("from_file", "")
        page = guides.guide_from_file(slug=slug) if guides.SLUG.match(slug) else None
        if page is not None:
            initial.update(
                slug=page.slug,
                title=page.title,
                summary=page.summary,
                position=page.position,
                body=page.body,
            )
        initial.pop("from_file", None)
        return initial

    def changelist_view(self, request, extra_context=None):
        overridden = set(Guide.objects.values_list("slug", flat=True))
        files = [slug for slug in guides.guide_file_slugs() if slug not in overridden]
        add_url = reverse("admin:devdocs_guide_add")
        links = format_html_join(
            ", ",
            '<a href="{}?from_file={}">{}</a>',
            ((add_url, slug, slug) for slug in files),
        )
        extra_context = {**(extra_context or {}), "file_links": links, "has_files": bool(files)}
        return super().changelist_view(request, extra_context=extra_context)

    def save_model(self, request, obj, form, change):
        obj.updated_at = timezone.now()
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)

    @admin.action(description="Load text from file (replaces title, summary, position, text)")
    def load_from_file(self, request, queryset):
        actor = Actor.from_request(request)
        loaded, missing = 0, []
        for guide in queryset:
            page = guides.guide_from_file(slug=guide.slug)
            if page is None:
                missing.append(guide.slug)
                continue
            with transaction.atomic():
                guide.title, guide.summary = page.title, page.summary
                guide.position, guide.body = page.position, page.body
                guide.updated_at, guide.updated_by = timezone.now(), request.user
                guide.save()
                audit_record(
                    actor=actor,
                    action="guide.updated_in_admin",
                    organization=None,
                    target=guide,
                    changes={"loaded_from_file": f"docs/portal/{guide.slug}.md"},
                )
            loaded += 1
        if loaded:
            self.message_user(request, f"Loaded {loaded} guide(s) from their files.")
        if missing:
            self.message_user(
                request, f"No file for: {', '.join(missing)}.", level=messages.WARNING
            )
