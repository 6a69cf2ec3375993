"""WSGI entry point: `gunicorn config.wsgi`.

POST /api/v1/verify is answered by the gate's fast path (keys/gate_wsgi.py) ahead of
Django's middleware; everything else goes to Django.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_wsgi_application()

from keys.gate_wsgi import VerifyFastPath  # noqa: E402 - needs Django set up first

application = VerifyFastPath(django_application)
