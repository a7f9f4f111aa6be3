"""The 1min.ai model catalog, cached in storage so replicas share one copy.

The catalog is fetched per feature from ``GET /models?feature=…`` (no auth). Disabled
models are dropped. While the catalog cannot be reached, a small built-in list is used
instead, cached only briefly so that the real catalog is tried again soon. Replicas that
share memcached fetch it once per MODELS_CACHE_SECONDS between them: one takes a lock item
in storage and fetches, and the others wait for its copy.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from utils.common import OneMinClient
from utils.constants import CATALOG_FEATURES, CATALOG_PATH, FALLBACK_MODELS, MODEL_ALIASES
from utils.errors import ModelNotFoundError, OpenAIError
from utils.memcached import Storage

logger = logging.getLogger(__name__)

STORAGE_KEY = "catalog:v1"
FALLBACK_TTL_SECONDS = 60
# Each process keeps its last copy this long before asking storage again.
LOCAL_COPY_SECONDS = 15.0
REFRESH_LOCK_KEY = "catalog:v1:refreshing"
# Expires a lock whose holder died; longer than a catalog fetch normally takes.
REFRESH_LOCK_SECONDS = 30
# A replica waits this long for another one's fetch before fetching by itself.
REFRESH_WAIT_SECONDS = 10.0
REFRESH_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class CatalogModel:
    id: str
    name: str
    provider: str
    features: frozenset[str]
    input_modalities: frozenset[str] = field(default_factory=lambda: frozenset({"text"}))
    output_modalities: frozenset[str] = field(default_factory=lambda: frozenset({"text"}))
    context_tokens: int | None = None
    max_output_tokens: int | None = None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "provider": self.provider,
            "features": sorted(self.features),
            "input": sorted(self.input_modalities),
            "output": sorted(self.output_modalities),
            "context": self.context_tokens,
            "max_output": self.max_output_tokens,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "CatalogModel":
        return cls(
            id=data["id"],
            name=data["name"],
            provider=data["provider"],
            features=frozenset(data["features"]),
            input_modalities=frozenset(data["input"]),
            output_modalities=frozenset(data["output"]),
            context_tokens=data.get("context"),
            max_output_tokens=data.get("max_output"),
        )

    def supports(self, feature: str) -> bool:
        return feature in self.features

    @property
    def reads_images(self) -> bool:
        return "image" in self.input_modalities


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _merge_entry(models: dict[str, dict], entry: dict, feature: str) -> None:
    model_id = entry.get("modelId")
    if not isinstance(model_id, str) or not model_id or entry.get("status") == "DISABLED":
        return
    modality = entry.get("modality") if isinstance(entry.get("modality"), dict) else {}
    credit = entry.get("creditMetadata") if isinstance(entry.get("creditMetadata"), dict) else {}
    features = {f for f in entry.get("features") or [] if isinstance(f, str)} | {feature}
    current = models.setdefault(
        model_id,
        {
            "id": model_id,
            "name": str(entry.get("name") or model_id),
            "provider": str(entry.get("provider") or "1min.ai"),
            "features": [],
            "input": [m for m in modality.get("INPUT") or ["text"] if isinstance(m, str)],
            "output": [m for m in modality.get("OUTPUT") or ["text"] if isinstance(m, str)],
            "context": _int_or_none(credit.get("CONTEXT")),
            "max_output": _int_or_none(credit.get("MAX_OUTPUT_TOKEN")),
        },
    )
    current["features"] = sorted(set(current["features"]) | features)


def _fallback_entries() -> list[dict]:
    return [
        CatalogModel(
            id=model_id,
            name=model_id,
            provider=provider,
            features=frozenset(features),
            input_modalities=frozenset(inputs),
        ).to_dict()
        for model_id, provider, features, inputs in FALLBACK_MODELS
    ]


class ModelCatalog:
    """Lookup of the models 1min.ai offers, with the permitted-subset settings applied."""

    def __init__(
        self,
        client: OneMinClient,
        storage: Storage,
        ttl_seconds: int,
        permitted_subset: tuple[str, ...] = (),
        subset_only: bool = False,
    ) -> None:
        self._client = client
        self._storage = storage
        self._ttl = ttl_seconds
        self._permitted = frozenset(permitted_subset) if subset_only else None
        self._reported_unknown: list[str] = []
        self._local: dict[str, CatalogModel] | None = None
        self._local_expires = 0.0
        self._refresh_lock = threading.Lock()

    def _fetch_feature(self, feature: str) -> list[dict]:
        body = self._client.get_json(CATALOG_PATH, params={"feature": feature})
        entries = body.get("models") if isinstance(body, dict) else None
        return [entry for entry in entries or [] if isinstance(entry, dict)]

    def _fetch(self) -> list[dict]:
        models: dict[str, dict] = {}
        with ThreadPoolExecutor(max_workers=4) as pool:
            for feature, entries in zip(CATALOG_FEATURES, pool.map(self._fetch_feature, CATALOG_FEATURES)):
                for entry in entries:
                    _merge_entry(models, entry, feature)
        if not models:
            raise ValueError("the catalog listed no active models")
        return list(models.values())

    def _load(self) -> dict[str, CatalogModel]:
        stored = self._storage.get(STORAGE_KEY)
        if stored is None:
            with self._refresh_lock:
                stored = self._storage.get(STORAGE_KEY)
                if stored is None:
                    stored = self._refresh_once_across_replicas()
        return {entry["id"]: CatalogModel.from_dict(entry) for entry in stored}

    def _refresh_once_across_replicas(self) -> list[dict]:
        """Fetch the catalog, unless another replica holds the refresh lock; then wait for its copy."""
        if self._storage.add(REFRESH_LOCK_KEY, True, REFRESH_LOCK_SECONDS):
            try:
                return self._refresh()
            finally:
                self._storage.delete(REFRESH_LOCK_KEY)
        deadline = time.monotonic() + REFRESH_WAIT_SECONDS
        while time.monotonic() < deadline:
            time.sleep(REFRESH_POLL_SECONDS)
            stored = self._storage.get(STORAGE_KEY)
            if stored is not None:
                return stored
        logger.warning(
            "another replica held the catalog refresh lock for %.0f s without storing a catalog; fetching it here",
            REFRESH_WAIT_SECONDS,
        )
        return self._refresh()

    def _refresh(self) -> list[dict]:
        try:
            entries = self._fetch()
        except (OpenAIError, ValueError) as error:
            logger.warning("model catalog unavailable (%s); using the built-in fallback list", error)
            entries = _fallback_entries()
            self._storage.set(STORAGE_KEY, entries, FALLBACK_TTL_SECONDS)
            return entries
        logger.info("model catalog fetched: %d active models", len(entries))
        self._storage.set(STORAGE_KEY, entries, self._ttl)
        return entries

    def _all(self) -> dict[str, CatalogModel]:
        now = time.monotonic()
        if self._local is None or now >= self._local_expires:
            self._local = self._load()
            self._local_expires = now + min(LOCAL_COPY_SECONDS, self._ttl)
            self._warn_unknown_permitted(self._local)
        return self._local

    def _warn_unknown_permitted(self, models: dict[str, CatalogModel]) -> None:
        """Warn once per set of ids when the permitted subset names models the catalog lacks."""
        if self._permitted is None:
            return
        unknown = sorted(self._permitted - models.keys())
        if unknown and unknown != self._reported_unknown:
            logger.warning(
                "SUBSET_OF_ONE_MIN_PERMITTED_MODELS names models the catalog does not list: %s",
                ", ".join(unknown),
            )
        self._reported_unknown = unknown

    def _permitted_models(self) -> dict[str, CatalogModel]:
        models = self._all()
        if self._permitted is None:
            return models
        return {model_id: model for model_id, model in models.items() if model_id in self._permitted}

    def list(self, feature: str | None = None) -> list[CatalogModel]:
        """Return permitted models, optionally only those that offer ``feature``."""
        models = self._permitted_models().values()
        return [model for model in models if feature is None or model.supports(feature)]

    def get(self, model_id: str) -> CatalogModel | None:
        """Return a permitted model by id or by readable alias (see ``MODEL_ALIASES``)."""
        return self._permitted_models().get(MODEL_ALIASES.get(model_id, model_id))

    def require(self, model_id: str, feature: str | None = None, param: str = "model") -> CatalogModel:
        """Return the model, or raise a 404 ``model_not_found`` before any upstream call."""
        model = self.get(model_id)
        if model is None or (feature is not None and not model.supports(feature)):
            raise ModelNotFoundError(model_id, param=param)
        return model
