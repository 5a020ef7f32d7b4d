"""The OpenAPI schema lists the error answers every operation can give, with their shape; the
fuzz (test_openapi_fuzz.py) checks the answers against it, these check the schema itself."""

import pytest
from drf_spectacular.generators import SchemaGenerator


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method.upper(), operation


def test_every_operation_lists_bad_input_and_authentication_errors(schema):
    for path, method, operation in _operations(schema):
        assert {"400", "401", "403"} <= set(operation["responses"]), (method, path)
        if "{" in path:
            assert "404" in operation["responses"], (method, path)
        if "requestBody" in operation:
            assert {"413", "415"} <= set(operation["responses"]), (method, path)


def test_error_bodies_are_documented_with_their_shape(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and "errors" in error["properties"]
    refused = schema["paths"]["/api/tasks/{task_id}/retry"]["post"]["responses"]["409"]
    assert refused["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }


def test_only_the_kyc_upload_takes_forms(schema):
    for path, method, operation in _operations(schema):
        media = set(operation.get("requestBody", {}).get("content", {}))
        if (method, path) == ("POST", "/api/kyc/documents"):
            assert "multipart/form-data" in media
        else:
            assert media <= {"application/json"}, (method, path, media)


def test_paged_lists_are_documented_as_pages(schema):
    for path in (
        "/api/webhooks/deliveries",
        "/api/tasks/{task_id}/events",
        "/api/tasks/{task_id}/logs",
        "/api/tasks",
    ):
        body = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        ref = body["schema"]["$ref"].rsplit("/", 1)[1]
        assert {"next", "previous", "results"} <= set(
            schema["components"]["schemas"][ref]["properties"]
        )
