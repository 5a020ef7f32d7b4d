"""Settings namespaces (taskhub.conf.AppSettings): defaults, re-reading, and the system check."""

from __future__ import annotations

from django.test import override_settings

from taskhub.conf import _NAMESPACES, AppSettings, check_namespaces, taskhub_settings
from webhooks.conf import webhooks_settings


def _ids(messages) -> list[str]:
    return sorted(m.id for m in messages)


def test_a_default_applies_until_the_project_sets_the_key():
    assert taskhub_settings.PRUNE_BATCH == 5000
    with override_settings(TASKHUB={"PRUNE_BATCH": 7}):
        assert taskhub_settings.PRUNE_BATCH == 7
    assert taskhub_settings.PRUNE_BATCH == 5000


def test_an_in_place_edit_of_the_project_dict_shows(settings):
    settings.WEBHOOKS = {"TIMEOUT": 3.0}
    assert webhooks_settings.TIMEOUT == 3.0
    settings.WEBHOOKS["TIMEOUT"] = 4.0
    assert webhooks_settings.TIMEOUT == 4.0


def test_an_unknown_attribute_is_an_error():
    try:
        taskhub_settings.NO_SUCH_SETTING  # noqa: B018
    except AttributeError as exc:
        assert "NO_SUCH_SETTING" in str(exc)
    else:
        raise AssertionError("an unknown setting must not read as a value")


def test_the_project_settings_pass_the_check():
    assert check_namespaces() == []


def test_a_misspelt_key_is_reported_with_the_closest_known_one():
    with override_settings(TASKHUB={"LIFELINE_TIMOUT": 10}):
        messages = check_namespaces()
    assert _ids(messages) == ["taskhub.W001"]
    assert "LIFELINE_TIMOUT" in messages[0].msg
    assert "LIFELINE_TIMEOUT" in messages[0].hint


def test_a_value_of_the_wrong_type_is_an_error_in_its_namespace():
    with override_settings(
        WEBHOOKS={"TIMEOUT": "10"},
        KYC={"MAX_DOCUMENT_BYTES": True},
        TASKHUB={"DEFAULT_TIMEOUT": 30},
    ):
        messages = check_namespaces()
    # An int where a float is the default is fine; a string or a bool for a number is not.
    assert _ids(messages) == ["kyc.E001", "webhooks.E001"]


def test_a_namespace_that_is_not_a_dict_is_an_error():
    with override_settings(NOTIFICATIONS=["in_app"]):
        assert _ids(check_namespaces()) == ["notifications.E001"]


def test_explicit_types_cover_defaults_of_none():
    ns = AppSettings(
        "TEST_NS_ONLY", {"LIMIT": None, "NAME": "x"}, types={"LIMIT": (int, type(None))}
    )
    try:
        with override_settings(TEST_NS_ONLY={"LIMIT": "3", "NAME": "y"}):
            assert _ids(ns.check()) == ["test_ns_only.E001"]
        with override_settings(TEST_NS_ONLY={"LIMIT": None}):
            assert ns.check() == []
    finally:
        del _NAMESPACES["TEST_NS_ONLY"]
