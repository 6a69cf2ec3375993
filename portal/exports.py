"""The audit log as streamed CSV, shared by the API (`?format=csv`) and the portal page."""

from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from common.csv_export import stream_csv
from portal.models import AuditLogEntry

AUDIT_CSV_COLUMNS = [
    "id",
    "created_at",
    "actor_type",
    "actor",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "changes",
    "ip_address",
    "user_agent",
    "request_id",
]


def _audit_row(entry: AuditLogEntry) -> list:
    return [
        entry.id,
        entry.created_at,
        entry.actor_type,
        entry.actor_label,
        entry.action,
        entry.target_type,
        entry.target_id,
        entry.target_label,
        entry.changes,
        entry.ip_address,
        entry.user_agent,
        entry.request_id,
    ]


def audit_log_csv_response(entries: QuerySet[AuditLogEntry], filename: str):
    rows = (_audit_row(entry) for entry in entries.iterator(chunk_size=500))
    response = StreamingHttpResponse(stream_csv(rows, AUDIT_CSV_COLUMNS), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
