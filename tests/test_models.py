"""The model list: catalog translation, caching, the permitted subset, and the fallback list."""

from __future__ import annotations

import logging

import openai
import pytest
import requests

from tests.openapi_check import assert_matches_schema


def test_list_models_matches_spec(any_relay):
    response = requests.get(any_relay.url("/v1/models"), timeout=10)

    assert response.status_code == 200
    body = response.json()
    assert_matches_schema("ListModelsResponse", body)
    ids = {model["id"] for model in body["data"]}
    assert {"gpt-4o-mini", "dall-e-3", "whisper-1", "tts-1"} <= ids


def test_disabled_models_dropped(relay):
    ids = {model.id for model in openai.OpenAI(base_url=relay.base_url + "/v1", api_key="test-key-1").models.list()}

    assert "black-forest-labs/flux-schnell" not in ids


def test_model_owned_by_provider(relay):
    models = {model["id"]: model for model in requests.get(relay.url("/v1/models"), timeout=10).json()["data"]}

    assert models["gpt-4o-mini"]["owned_by"] == "openai"
    assert isinstance(models["gpt-4o-mini"]["created"], int)
    assert models["gpt-4o-mini"]["object"] == "model"


def test_retrieve_model_with_slash_in_id(relay):
    response = requests.get(relay.url("/v1/models/black-forest-labs/flux-dev"), timeout=10)

    assert response.status_code == 200
    assert_matches_schema("Model", response.json())
    assert response.json()["id"] == "black-forest-labs/flux-dev"


def test_retrieve_unknown_model_is_404(relay):
    response = requests.get(relay.url("/v1/models/nope-1"), timeout=10)

    assert response.status_code == 404
    assert_matches_schema("ErrorResponse", response.json())
    assert response.json()["error"]["code"] == "model_not_found"


def test_catalog_cached_between_requests(relay, fake_onemin):
    requests.get(relay.url("/v1/models"), timeout=10)
    fetched = fake_onemin.catalog_requests

    for _ in range(3):
        requests.get(relay.url("/v1/models"), timeout=10)

    assert fetched > 0
    assert fake_onemin.catalog_requests == fetched


def test_catalog_shared_through_memcached(relay_factory, memcached_server, fake_onemin):
    host, port = memcached_server
    first = relay_factory(MEMCACHED_HOST=host, MEMCACHED_PORT=str(port), MODELS_CACHE_SECONDS="60")
    second = relay_factory(MEMCACHED_HOST=host, MEMCACHED_PORT=str(port), MODELS_CACHE_SECONDS="60")
    requests.get(first.url("/v1/models"), timeout=10)
    fetched = fake_onemin.catalog_requests

    response = requests.get(second.url("/v1/models"), timeout=10)

    assert response.status_code == 200
    assert fake_onemin.catalog_requests == fetched


def test_subset_only_restricts_list_and_chat(relay_factory, fake_onemin):
    relay = relay_factory(
        SUBSET_OF_ONE_MIN_PERMITTED_MODELS="gpt-4o-mini, dall-e-3",
        PERMIT_MODELS_FROM_SUBSET_ONLY="true",
    )

    ids = [model["id"] for model in requests.get(relay.url("/v1/models"), timeout=10).json()["data"]]
    refused = requests.post(
        relay.url("/v1/chat/completions"),
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": "Bearer test-key-1"},
        timeout=10,
    )

    assert sorted(ids) == ["dall-e-3", "gpt-4o-mini"]
    assert refused.status_code == 404
    assert fake_onemin.requests_to("/api/chat-with-ai") == []


def test_subset_ignored_without_subset_only(relay_factory):
    relay = relay_factory(SUBSET_OF_ONE_MIN_PERMITTED_MODELS="gpt-4o-mini", PERMIT_MODELS_FROM_SUBSET_ONLY="false")

    ids = {model["id"] for model in requests.get(relay.url("/v1/models"), timeout=10).json()["data"]}

    assert "gpt-4o" in ids


def test_fallback_list_when_catalog_fails(relay_factory, fake_onemin):
    fake_onemin.set(fail_status=500, fail_catalog=True)
    relay = relay_factory()

    response = requests.get(relay.url("/v1/models"), timeout=10)

    assert response.status_code == 200
    assert_matches_schema("ListModelsResponse", response.json())
    ids = {model["id"] for model in response.json()["data"]}
    assert "gpt-4o-mini" in ids


@pytest.mark.parametrize("path", ["/v1/models", "/v1/models/gpt-4o-mini"])
def test_models_need_no_key(relay, path):
    assert requests.get(relay.url(path), timeout=10).status_code == 200


def test_subset_names_unknown_model_warns(relay_factory, caplog):
    caplog.set_level(logging.WARNING, logger="utils.catalog")
    relay = relay_factory(SUBSET_OF_ONE_MIN_PERMITTED_MODELS="gpt-4o-mini, gpt4o-typo", PERMIT_MODELS_FROM_SUBSET_ONLY="true")

    ids = [model["id"] for model in requests.get(relay.url("/v1/models"), timeout=10).json()["data"]]

    assert ids == ["gpt-4o-mini"]
    warnings = [record.getMessage() for record in caplog.records if "does not list" in record.getMessage()]
    assert len(warnings) == 1
    assert "gpt4o-typo" in warnings[0]
