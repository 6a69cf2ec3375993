from tests.factories import ApiKeyFactory, ProjectFactory


def test_key_lifecycle_through_api(api, org):
    project = ProjectFactory(organization=org)
    response = api.post(
        "/api/v1/keys",
        {
            "project": str(project.id),
            "name": "ci",
            "environment": "test",
            "scopes": ["read", "write"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["key"].startswith("tg_test_")
    key_id = response.json()["id"]
    assert api.get(f"/api/v1/keys/{key_id}/").status_code == 200
    rotated = api.post(f"/api/v1/keys/{key_id}/rotate", {"grace_period_seconds": 60}, format="json")
    assert rotated.status_code == 201, rotated.content
    assert api.get(f"/api/v1/keys/{key_id}").json()["status"] == "rotating"
    assert api.post(f"/api/v1/keys/{key_id}/revoke").json()["status"] == "revoked"
    listing = api.get("/api/v1/keys")
    assert len(listing.json()["results"]) == 2
    assert ApiKeyFactory(project=project).raw_key
