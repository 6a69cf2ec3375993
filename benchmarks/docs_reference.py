"""The API reference page and the Postman/Insomnia collections of a large document (#8, DOCS-1/4).

A legal document of --operations operations (default 1,000; about 350 KB) is uploaded into
a fresh PostgreSQL database through the same service as the admin and the API. Every
operation's request and response bodies use one schema that fans out (10 properties a
level, 5 levels), so every generated example reaches openapi_doc's 2,000-node budget: the
shape that made postman.json take 23.7 s and 60 MB before the page model and the exports
were cached per version and budgeted.

Measured in-process through Django's test client against the real views, templates,
PostgreSQL and the Redis cache (server time, no network): for the reference page, postman.json
and insomnia.json, the cold request (nothing cached for the version: the first reader
after an upload) and warm requests (median of --repeat), anonymous and signed in with a
test key (the reader's key is put into the cached page or export per request). Each round
of cold requests uses a freshly uploaded version, so no entry of an earlier round helps.

Usage: python benchmarks/docs_reference.py [--operations 1000] [--repeat 5] [--rounds 2]
Environment: BENCH_PG, BENCH_REDIS_URL (the cache; the default db 11 is not flushed).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import bench_env, manage, recreate_database, save

DATABASE = "tollgate_bench_docs"
HOST = "localhost"
# Before the fix, on this machine, for the same shape of document (the review's figures).
BEFORE = {
    "postman_cold_s": 23.7,
    "postman_bytes": 60_000_000,
    "insomnia_cold_s": 14.3,
    "page_model_at_100_operations_s": 4.5,
}


def large_document(operations: int = 1000, fan: int = 10, levels: int = 5) -> dict:
    """A document the upload accepts whose every example is as large as examples get: N0
    has `fan` properties of N1, ... down to N`levels`, a string; no cycle, no example."""
    schemas: dict = {
        f"N{level}": {
            "type": "object",
            "description": f"Level {level} of a wide model.",
            "properties": {
                f"field_{i}": {"$ref": f"#/components/schemas/N{level + 1}"} for i in range(fan)
            },
        }
        for level in range(levels)
    }
    schemas[f"N{levels}"] = {"type": "string", "minLength": 40, "description": "A leaf."}
    wide = {"application/json": {"schema": {"$ref": "#/components/schemas/N0"}}}
    paths = {}
    for index in range(operations // 2):
        tag = [f"group{index % 10}"]
        paths[f"/collection{index}/items/{{item_id}}"] = {
            "parameters": [
                {
                    "name": "item_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "format": "uuid"},
                }
            ],
            "get": {
                "operationId": f"getItem{index}",
                "summary": f"Get item {index}",
                "tags": tag,
                "responses": {"200": {"description": "The item.", "content": wide}},
            },
            "put": {
                "operationId": f"putItem{index}",
                "summary": f"Replace item {index}",
                "tags": tag,
                "requestBody": {"required": True, "content": wide},
                "responses": {"200": {"description": "The item.", "content": wide}},
            },
        }
    return {
        "openapi": "3.0.3",
        "info": {"title": "Wide API", "version": "1"},
        "tags": [{"name": f"group{i}", "description": f"Group {i}."} for i in range(10)],
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "paths": paths,
    }


def _django(env: dict) -> None:
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def _timed(client, url: str) -> tuple[float, int]:
    started = time.perf_counter()
    response = client.get(url)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, (url, response.status_code)
    return elapsed, len(response.content)


def measure(operations: int, repeat: int, rounds: int) -> dict:
    from django.test import Client
    from django.urls import reverse

    from keys.services import api_version_create, key_create
    from portal.audit import Actor
    from portal.models import User
    from portal.services import organization_create, project_create

    system = Actor.system("benchmark")
    document = large_document(operations)
    owner = User.objects.create_user(email="bench-docs@example.com", password="x" * 20)
    organization = organization_create(actor=system, name="Bench docs", owner=owner)
    project = project_create(actor=Actor(user=owner), organization=organization, name="Docs")
    _key, secret = key_create(
        actor=Actor(user=owner), project=project, name="Docs key", environment="test"
    )
    anonymous = Client(HTTP_HOST=HOST)
    member = Client(HTTP_HOST=HOST)
    member.force_login(owner)

    figures: dict = {
        "operations": operations,
        "document_bytes": len(json.dumps(document)),
        "repeat": repeat,
        "rounds": rounds,
        "before": BEFORE,
    }
    kinds = {
        "page": "reference:version",
        "postman": "reference:postman",
        "insomnia": "reference:insomnia",
    }
    cold: dict[str, list[float]] = {kind: [] for kind in kinds}
    sizes: dict[str, int] = {}
    for round_number in range(rounds):
        started = time.perf_counter()
        version = f"v{round_number + 1}"
        api_version_create(actor=system, product_code="wide", version=version, document=document)
        upload_s = time.perf_counter() - started
        figures.setdefault("upload_s", []).append(round(upload_s, 3))
        for kind, route in kinds.items():
            elapsed, size = _timed(anonymous, reverse(route, args=["wide", version]))
            cold[kind].append(elapsed)
            sizes[kind] = size
    version = f"v{rounds}"
    for kind, route in kinds.items():
        url = reverse(route, args=["wide", version])
        warm_anonymous = [_timed(anonymous, url)[0] for _ in range(repeat)]
        warm_member = []
        for _ in range(repeat):
            elapsed, _size = _timed(member, url)
            warm_member.append(elapsed)
        assert secret in member.get(url).content.decode(), "the reader's key is not in it"
        figures[kind] = {
            "cold_s": [round(value, 3) for value in cold[kind]],
            "warm_anonymous_median_s": round(statistics.median(warm_anonymous), 4),
            "warm_signed_in_median_s": round(statistics.median(warm_member), 4),
            "bytes": sizes[kind],
        }
    page = anonymous.get(reverse("reference:version", args=["wide", version])).content.decode()
    figures["page"]["operations_shown"] = page.count("data-docs-op ")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    env = bench_env(DATABASE)
    env["ALLOWED_HOSTS"] = HOST
    env["STATIC_ROOT"] = tempfile.mkdtemp(prefix="tollgate-bench-static-")
    recreate_database(DATABASE)
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "collectstatic", "--noinput", "-v", "0")  # DEBUG off: the manifest is needed
    _django(env)
    figures = measure(args.operations, args.repeat, args.rounds)
    save("docs_reference", figures)


if __name__ == "__main__":
    main()
