"""Cursor pagination: following `next` visits every row once, `previous` goes back."""

import pytest

from tests.factories import ApiKeyFactory, ProjectFactory


@pytest.fixture
def five_keys(org):
    project = ProjectFactory(organization=org)
    return [ApiKeyFactory(project=project) for _ in range(5)]


def _follow(api, url: str, link: str) -> list[dict]:
    pages = []
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.content
        pages.append(response.json())
        url = pages[-1][link]
    return pages


def test_following_next_visits_every_key_exactly_once(api, five_keys):
    pages = _follow(api, "/api/v1/keys?limit=2", "next")
    assert [len(page["results"]) for page in pages] == [2, 2, 1]
    seen = [row["id"] for page in pages for row in page["results"]]
    assert len(seen) == len(set(seen)) == 5
    assert set(seen) == {str(key.id) for key in five_keys}
    # Newest first.
    assert seen == [str(key.id) for key in reversed(five_keys)]
    assert pages[0]["previous"] is None


def test_following_previous_from_the_last_page_returns_to_the_first(api, five_keys):
    last = _follow(api, "/api/v1/keys?limit=2", "next")[-1]
    back = _follow(api, last["previous"], "previous")
    seen = [row["id"] for page in back for row in page["results"]]
    assert len(seen) == len(set(seen)) == 4


def test_rows_added_while_paging_are_not_repeated(api, org, five_keys):
    first = api.get("/api/v1/keys?limit=2").json()
    ApiKeyFactory(project=five_keys[0].project)
    rest = _follow(api, first["next"], "next")
    seen = [row["id"] for page in [first, *rest] for row in page["results"]]
    assert len(seen) == len(set(seen)) == 5


def test_page_size_is_capped(api, org):
    project = ProjectFactory(organization=org)
    ApiKeyFactory.create_batch(3, project=project)
    response = api.get("/api/v1/keys?limit=100000")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 3


def test_results_next_and_previous_are_the_only_envelope_fields(api, five_keys):
    assert set(api.get("/api/v1/keys").json()) == {"results", "next", "previous"}


def test_invalid_cursor_is_a_problem_not_a_crash(api, five_keys):
    response = api.get("/api/v1/keys?cursor=garbage")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"
