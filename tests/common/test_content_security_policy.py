"""Every page carries the Content-Security-Policy: Tollgate's own scripts only, so injected
markup cannot run script; views with a stricter policy keep theirs."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def directives(response) -> dict[str, str]:
    policy = response["Content-Security-Policy"]
    return dict([*part.strip().split(" ", 1), ""][:2] for part in policy.split(";"))


@pytest.mark.parametrize(
    "url", ["/", "/pricing", "/marketplace/", "/accounts/login/", "/api/v1/docs"]
)
def test_pages_allow_only_their_own_scripts(client, url):
    response = client.get(url)
    assert response.status_code == 200
    policy = directives(response)
    assert policy["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert "form-action" not in policy  # the OAuth consent redirects to the app's site


def test_api_errors_carry_it_too(client):
    assert "Content-Security-Policy" in client.get("/api/v1/no-such-thing")


def test_the_operator_can_turn_it_off_for_a_proxy_that_sets_its_own(settings):
    settings.CONTENT_SECURITY_POLICY = ""
    assert "Content-Security-Policy" not in Client().get("/")


def test_swagger_ui_starts_from_a_script_file_not_an_inline_script(client):
    page = client.get("/api/v1/docs").content.decode()
    assert "<script>" not in page.replace(" ", "")
    script = client.get("/api/v1/docs?script=")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


def test_the_favicon_is_found_where_browsers_look_first(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].startswith("/static/img/favicon") and ".svg" in response["Location"]
