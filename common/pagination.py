"""Cursor pagination for every list endpoint: stable under inserts, opaque to clients."""

from rest_framework.pagination import CursorPagination


class CreatedCursorPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
    cursor_query_param = "cursor"
