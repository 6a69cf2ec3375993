"""The sample API: a single-file Django project behind tollgate.middleware."""

import os
import sys
from pathlib import Path

from django.conf import settings
from django.http import JsonResponse
from django.urls import path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository, for `tollgate`

settings.configure(
    DEBUG=False,
    SECRET_KEY="sample-api-only",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["tollgate.middleware.TollgateMiddleware"],
    TOLLGATE={
        "URL": os.environ.get("TOLLGATE_URL", "http://127.0.0.1:8000"),
        "TOKEN": os.environ.get("TOLLGATE_TOKEN", ""),
        "PRODUCT": "documents",
    },
)


def document(request, document_id: int):
    return JsonResponse(
        {
            "id": document_id,
            "title": f"Document {document_id}",
            "customer": request.tollgate["customer"],
        }
    )


def documents(request):
    return JsonResponse({"results": [], "plan": request.tollgate["plan"]})


urlpatterns = [
    path("v1/documents/<int:document_id>", document),
    path("v1/documents", documents),
]

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
