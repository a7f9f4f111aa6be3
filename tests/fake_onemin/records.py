"""The `aiRecord` envelope that chat and feature calls return."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from .behaviour import Behaviour
from .catalog import CatalogModel

_TEAM_NAMESPACE = uuid.UUID("6d1f0c4e-2f7a-4d55-9c63-1a2b3c4d5e6f")


def build_record(*, model: str, feature_type: str, prompt_object: dict[str, Any],
                 result: list[Any], behaviour: Behaviour, conversation_id: str | None,
                 metadata: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Build an `aiRecord` with `resultObject` at the place `result_location` selects."""
    detail: dict[str, Any] = {"promptObject": prompt_object}
    record: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "model": model,
        "type": feature_type,
        "status": "SUCCESS",
        "conversationId": conversation_id,
        "createdAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "aiRecordDetail": detail,
        "metadata": metadata,
        **extra,
    }
    if behaviour.result_location == "top":
        record["resultObject"] = result
    else:
        detail["resultObject"] = result
    return record


def mark_failed(record: dict[str, Any], message: str) -> dict[str, Any]:
    """Turn a record into the documented FAILED shape, with no result."""
    record["status"] = "FAILED"
    record["aiRecordDetail"]["errorMessage"] = message
    record["aiRecordDetail"].pop("resultObject", None)
    record.pop("resultObject", None)
    return record


def envelope(record: dict[str, Any], api_key: str, used_credit: int) -> dict[str, Any]:
    team_id = str(uuid.uuid5(_TEAM_NAMESPACE, api_key))
    team_user = {"teamId": team_id, "userId": team_id, "status": "ACTIVE",
                 "usedCredit": used_credit}
    return {"aiRecord": record, "teamUser": team_user}


def count_tokens(text: str) -> int:
    """Estimate tokens as one per four characters, at least one for any text."""
    return (len(text) + 3) // 4 if text else 0


def chat_metadata(model: CatalogModel, prompt: str, answer: str,
                  behaviour: Behaviour) -> dict[str, Any]:
    """Build chat metadata: token counts, the provider's finish word, and credits."""
    input_tokens = max(1, count_tokens(prompt))
    output_tokens = max(1, count_tokens(answer))
    input_credit = input_tokens * int(model.credits.get("INPUT", 1))
    output_credit = output_tokens * int(model.credits.get("OUTPUT", 1))
    if behaviour.zero_tokens:
        input_tokens = output_tokens = 0
    metadata: dict[str, Any] = {
        "inputToken": input_tokens,
        "outputToken": output_tokens,
        "totalToken": input_tokens + output_tokens,
        "credit": input_credit + output_credit,
        "inputCredit": input_credit,
        "outputCredit": output_credit,
    }
    if behaviour.finish_reason is not None:
        metadata["finishReason"] = behaviour.finish_reason
    return metadata


@dataclass(frozen=True)
class FeatureRequest:
    """A checked `/api/features` call, handed to the function for its feature type."""

    feature: str
    model: CatalogModel
    prompt_object: dict[str, Any]
    conversation_id: str | None
    api_key: str
    behaviour: Behaviour


@dataclass(frozen=True)
class FeatureOutput:
    """Output of a feature. `raw_audio` is (bytes, content type) for the older TTS response."""

    result: list[Any]
    metadata: dict[str, Any]
    temporary_url: str | None = None
    raw_audio: tuple[bytes, str] | None = None


def signed_url(asset_url: str, key: str, expires_seconds: int = 3600) -> str:
    """Build a `temporaryUrl` on the fake CDN, shaped like a signed S3 link.

    The CDN rejects a link with `expires_seconds=0` as expired.
    """
    return (f"{asset_url}/{key}?X-Amz-Expires={expires_seconds}"
            f"&X-Amz-Signature={secrets.token_hex(16)}")
