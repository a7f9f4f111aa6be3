"""The built-in model catalog served by `GET /models?feature=...`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CHAT = "UNIFY_CHAT_WITH_AI"
CODE = "CODE_GENERATOR"
IMAGE_GENERATOR = "IMAGE_GENERATOR"
IMAGE_VARIATOR = "IMAGE_VARIATOR"
IMAGE_EDITOR = "IMAGE_EDITOR"
SPEECH_TO_TEXT = "SPEECH_TO_TEXT"
AUDIO_TRANSLATOR = "AUDIO_TRANSLATOR"
TEXT_TO_SPEECH = "TEXT_TO_SPEECH"


@dataclass(frozen=True)
class CatalogModel:
    """One catalog entry plus fake-only facts that never appear in the JSON."""

    model_id: str
    name: str
    provider: str
    features: tuple[str, ...]
    inputs: tuple[str, ...] = ("text",)
    outputs: tuple[str, ...] = ("text",)
    credits: dict[str, Any] = field(default_factory=dict)
    status: str = "ACTIVE"
    deprecation_date: str | None = None
    # Request-field family for the image and audio features (see images.py and audio.py).
    family: str = ""
    # The real catalog lists some ids that the chat endpoint rejects.
    chat_rejects: bool = False

    @property
    def active(self) -> bool:
        return self.status == "ACTIVE"

    def to_json(self) -> dict[str, Any]:
        return {
            "modelId": self.model_id,
            "name": self.name,
            "provider": self.provider,
            "status": self.status,
            "features": list(self.features),
            "modality": {"INPUT": list(self.inputs), "OUTPUT": list(self.outputs)},
            "creditMetadata": dict(self.credits),
            "deprecationDate": self.deprecation_date,
        }


def _chat(model_id: str, name: str, provider: str, *, vision: bool, context: int,
          max_output: int, code: bool = True, **extra: Any) -> CatalogModel:
    features = (CHAT, CODE) if code else (CHAT,)
    inputs = ("text", "image") if vision else ("text",)
    credits = {"INPUT": 1, "OUTPUT": 4, "CONTEXT": context, "MAX_OUTPUT_TOKEN": max_output}
    return CatalogModel(model_id, name, provider, features, inputs, ("text",), credits, **extra)


def _image(model_id: str, name: str, provider: str, family: str,
           features: tuple[str, ...] = (IMAGE_GENERATOR,), **extra: Any) -> CatalogModel:
    inputs = ("text", "image") if features != (IMAGE_GENERATOR,) else ("text",)
    return CatalogModel(model_id, name, provider, features, inputs, ("image",),
                        {"IMAGE": 5000}, family=family, **extra)


def _audio(model_id: str, name: str, provider: str, features: tuple[str, ...],
           family: str) -> CatalogModel:
    speaks = features == (TEXT_TO_SPEECH,)
    inputs, outputs = (("text",), ("audio",)) if speaks else (("audio",), ("text",))
    return CatalogModel(model_id, name, provider, features, inputs, outputs,
                        {"AUDIO": 100}, family=family)


_LEONARDO = {
    "6b645e3a-d64f-4341-a6d8-7a3690fbf042": "Leonardo Phoenix",
    "b24e16ff-06e3-43eb-8d33-4416c2d75876": "Leonardo Lightning XL",
    "e71a1c2f-4f80-4800-934f-2c68979d8cc8": "Leonardo Anime XL",
    "1e60896f-3c26-4296-8ecc-53e2afecc132": "Leonardo Diffusion XL",
    "aa77f04e-3eec-4034-9c07-d0f619684628": "Leonardo Kino XL",
    "5c232a9e-9061-4777-980a-ddc8e65647c6": "Leonardo Vision XL",
    "2067ae52-33fd-4a82-bb92-c2c55e7d2786": "Leonardo Albedo XL",
}

MODELS: tuple[CatalogModel, ...] = (
    _chat("gpt-4o-mini", "GPT-4o mini", "openai", vision=True, context=128000, max_output=16384),
    _chat("gpt-4o", "GPT-4o", "openai", vision=True, context=128000, max_output=16384),
    # Dated but ACTIVE: a deprecation date is not an end of life.
    _chat("claude-3-5-sonnet-20240620", "Claude 3.5 Sonnet", "anthropic", vision=True,
          context=200000, max_output=8192, deprecation_date="2025-10-22T00:00:00.000Z"),
    _chat("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "anthropic", vision=True,
          context=200000, max_output=64000),
    _chat("deepseek-chat", "DeepSeek V3", "deepseek", vision=False, context=64000,
          max_output=8192),
    _chat("open-mistral-nemo", "Mistral Nemo", "mistral", vision=False, context=128000,
          max_output=4096, code=False),
    _chat("gemini-1.5-pro", "Gemini 1.5 Pro", "google", vision=True, context=1000000,
          max_output=8192, status="DISABLED"),
    _chat("o1-pro", "o1 pro", "openai", vision=True, context=200000, max_output=100000,
          code=False, chat_rejects=True),
    _image("dall-e-2", "DALL·E 2", "openai", "dall-e-2", (IMAGE_GENERATOR, IMAGE_VARIATOR)),
    _image("dall-e-3", "DALL·E 3", "openai", "dall-e-3"),
    _image("gpt-image-1", "GPT Image 1", "openai", "gpt-image", (IMAGE_GENERATOR, IMAGE_EDITOR)),
    _image("gpt-image-1-mini", "GPT Image 1 mini", "openai", "gpt-image",
           (IMAGE_GENERATOR, IMAGE_EDITOR)),
    _image("black-forest-labs/flux-dev", "Flux Dev", "black-forest-labs", "flux"),
    _image("flux-1.1-pro", "Flux 1.1 Pro", "black-forest-labs", "flux"),
    _image("black-forest-labs/flux-schnell", "Flux Schnell", "black-forest-labs", "flux",
           status="DISABLED"),
    _image("midjourney", "Midjourney", "midjourney", "midjourney",
           (IMAGE_GENERATOR, IMAGE_VARIATOR)),
    _image("midjourney_6_1", "Midjourney 6.1", "midjourney", "midjourney",
           (IMAGE_GENERATOR, IMAGE_VARIATOR)),
    _image("magic-art", "Magic Art", "midjourney", "midjourney",
           (IMAGE_GENERATOR, IMAGE_VARIATOR)),
    *(_image(uuid, name, "leonardo", "leonardo") for uuid, name in _LEONARDO.items()),
    _image("stable-diffusion-xl-1024-v1-0", "Stable Diffusion XL", "stability", "sdxl"),
    _image("recraft", "Recraft V3", "recraft", "generic", (IMAGE_GENERATOR, IMAGE_VARIATOR)),
    _image("gemini-2.5-flash-image", "Gemini 2.5 Flash Image", "google", "generic"),
    _image("flux-redux-schnell", "Flux Redux Schnell", "black-forest-labs", "flux-redux",
           (IMAGE_VARIATOR,)),
    _image("flux-redux-dev", "Flux Redux Dev", "black-forest-labs", "flux-redux",
           (IMAGE_VARIATOR,)),
    _image("flux-kontext-pro", "Flux Kontext Pro", "black-forest-labs", "flux-kontext",
           (IMAGE_EDITOR,)),
    _image("qwen-image-edit-plus", "Qwen Image Edit Plus", "alibaba", "generic",
           (IMAGE_EDITOR,)),
    _audio("whisper-1", "Whisper", "openai", (SPEECH_TO_TEXT, AUDIO_TRANSLATOR), "whisper"),
    _audio("gpt-4o-transcribe", "GPT-4o Transcribe", "openai", (SPEECH_TO_TEXT,), "whisper"),
    _audio("latest_long", "Google Latest Long", "google", (SPEECH_TO_TEXT,), "google"),
    _audio("qwen3-livetranslate-flash", "Qwen3 LiveTranslate Flash", "alibaba",
           (AUDIO_TRANSLATOR,), "qwen"),
    _audio("tts-1", "TTS 1", "openai", (TEXT_TO_SPEECH,), "openai"),
    _audio("tts-1-hd", "TTS 1 HD", "openai", (TEXT_TO_SPEECH,), "openai"),
    _audio("elevenlabs-tts", "ElevenLabs TTS", "elevenlabs", (TEXT_TO_SPEECH,), "elevenlabs"),
    _audio("qwen3-tts-flash", "Qwen3 TTS Flash", "alibaba", (TEXT_TO_SPEECH,), "qwen"),
    _audio("google-tts", "Google TTS", "google", (TEXT_TO_SPEECH,), "google"),
)

_BY_ID = {model.model_id: model for model in MODELS}


def find_model(model_id: Any) -> CatalogModel | None:
    return _BY_ID.get(model_id) if isinstance(model_id, str) else None


def models_for(feature: str) -> list[CatalogModel]:
    """List the entries that offer `feature`, DISABLED ones included as the real catalog does."""
    return [model for model in MODELS if feature in model.features]


def usable_model(model_id: Any, feature: str) -> CatalogModel | None:
    """Return the entry when `model_id` is ACTIVE and offers `feature`, else None."""
    model = find_model(model_id)
    if model is None or not model.active or feature not in model.features:
        return None
    return model
