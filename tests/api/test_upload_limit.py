"""Multipart uploads are limited by the upload's own limit (a KYC document: 10 MB), not by the
2.5 MB cap meant for JSON and form bodies; a body over the multipart ceiling is still a 413."""

import io

import pytest
from django.conf import settings
from django.test import override_settings

from kyc.models import KycCase
from taskhub.workflows.models import WorkflowRun

pytestmark = pytest.mark.django_db
MB = 1024 * 1024


@pytest.fixture(autouse=True)
def media_in_tmp(tmp_path):
    with override_settings(MEDIA_ROOT=tmp_path):
        yield


def upload(client, size: int):
    file = io.BytesIO(b"\x89PNG" + b"\0" * (size - 4))
    file.name = "passport.png"
    body = {"user_id": "big-doc", "document_type": "passport", "file": file}
    return client.post("/api/kyc/documents", body, format="multipart")


def test_a_document_under_the_kyc_limit_but_over_the_body_cap_is_accepted(operator):
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE < 6 * MB < settings.KYC["MAX_DOCUMENT_BYTES"]

    response = upload(operator, 6 * MB)

    assert response.status_code == 201, response.content[:300]
    case = KycCase.objects.get(user_id="big-doc")
    assert case.document.size == 6 * MB


def test_a_document_over_the_kyc_limit_is_a_400_naming_the_limit_and_stores_nothing(operator):
    response = upload(operator, settings.KYC["MAX_DOCUMENT_BYTES"] + 1)

    assert response.status_code == 400
    assert "larger than" in response.json()["errors"]["file"][0]
    assert not KycCase.objects.exists() and not WorkflowRun.objects.exists()


def test_a_body_over_the_multipart_ceiling_is_a_413_before_it_is_read(operator):
    response = upload(operator, settings.DATA_UPLOAD_MAX_MULTIPART_SIZE + 1)

    assert response.status_code == 413
    assert not KycCase.objects.exists()


def test_a_json_body_keeps_the_smaller_cap(operator):
    big = {"user_id": "x", "document_type": "passport", "document_ref": "r" * (3 * MB)}

    response = operator.post("/api/kyc/documents", big, format="json")

    assert response.status_code == 413
