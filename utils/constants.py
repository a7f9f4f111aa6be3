"""Fixed facts about the 1min.ai API and the OpenAI API that the relay translates between.

Upstream paths, feature names and model ids change from time to time; they live here
so that such a change is a one-line edit.
"""

from __future__ import annotations

SERVICE_NAME = "1min-relay"
VERSION = "1.0.0"
USER_AGENT = f"{SERVICE_NAME}/{VERSION} (+OpenAI-compatible relay)"

# Upstream paths, relative to ONE_MIN_API_URL.
CHAT_PATH = "/api/chat-with-ai"
FEATURES_PATH = "/api/features"
ASSETS_PATH = "/api/assets"
CONVERSATIONS_PATH = "/api/conversations"
CATALOG_PATH = "/models"

# Feature names used both in request bodies and in the catalog's ?feature= filter.
FEATURE_CHAT = "UNIFY_CHAT_WITH_AI"
FEATURE_CODE = "CODE_GENERATOR"
FEATURE_IMAGE_GENERATOR = "IMAGE_GENERATOR"
FEATURE_IMAGE_VARIATOR = "IMAGE_VARIATOR"
FEATURE_IMAGE_EDITOR = "IMAGE_EDITOR"
FEATURE_SPEECH_TO_TEXT = "SPEECH_TO_TEXT"
FEATURE_AUDIO_TRANSLATOR = "AUDIO_TRANSLATOR"
FEATURE_TEXT_TO_SPEECH = "TEXT_TO_SPEECH"

CATALOG_FEATURES = (
    FEATURE_CHAT,
    FEATURE_CODE,
    FEATURE_IMAGE_GENERATOR,
    FEATURE_IMAGE_VARIATOR,
    FEATURE_IMAGE_EDITOR,
    FEATURE_SPEECH_TO_TEXT,
    FEATURE_AUDIO_TRANSLATOR,
    FEATURE_TEXT_TO_SPEECH,
)

# Each provider reports its own finish word in aiRecord.metadata.finishReason.
FINISH_REASONS = {
    "stop": "stop",
    "end_turn": "stop",
    "complete": "stop",
    "completed": "stop",
    "stop_sequence": "stop",
    "eos": "stop",
    "finished": "stop",
    "length": "length",
    "max_tokens": "length",
    "max_output_tokens": "length",
    "model_length": "length",
    "content_filter": "content_filter",
    "safety": "content_filter",
    "recitation": "content_filter",
    "blocked": "content_filter",
    "refusal": "content_filter",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",
}

# Used only while the catalog cannot be reached: (model id, provider, features, input modalities).
FALLBACK_MODELS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("gpt-4o-mini", "openai", (FEATURE_CHAT,), ("text", "image")),
    ("gpt-4o", "openai", (FEATURE_CHAT,), ("text", "image")),
    ("gpt-4.1-mini", "openai", (FEATURE_CHAT,), ("text", "image")),
    ("claude-3-5-haiku-20241022", "anthropic", (FEATURE_CHAT,), ("text",)),
    ("gemini-2.0-flash", "google", (FEATURE_CHAT,), ("text", "image")),
    ("deepseek-chat", "deepseek", (FEATURE_CHAT,), ("text",)),
    ("open-mistral-nemo", "mistral", (FEATURE_CHAT,), ("text",)),
    ("dall-e-3", "openai", (FEATURE_IMAGE_GENERATOR,), ("text",)),
    ("whisper-1", "openai", (FEATURE_SPEECH_TO_TEXT, FEATURE_AUDIO_TRANSLATOR), ("audio",)),
    ("tts-1", "openai", (FEATURE_TEXT_TO_SPEECH,), ("text",)),
)

CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

# Speech-to-text models that take `language` as a BCP-47 locale (en-US), not ISO-639-1 (en).
GOOGLE_SPEECH_MODELS = frozenset(
    {
        "latest_long",
        "latest_short",
        "phone_call",
        "telephony",
        "telephony_short",
        "medical_dictation",
        "medical_conversation",
    }
)
# Speech-to-text models known to return segment timestamps when asked for verbose_json.
TIMESTAMPED_TRANSCRIPTION_MODELS = frozenset({"whisper-1"})

# Text-to-speech output: OpenAI's response_format -> Content-Type of the audio.
SPEECH_CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}

# Models for image requests that name none. dall-e-2 is OpenAI's default for generations and
# variations. OpenAI's default for edits is gpt-image-1.5, which the 1min.ai catalog did not list.
DEFAULT_IMAGE_GENERATION_MODEL = "dall-e-2"
DEFAULT_IMAGE_VARIATION_MODEL = "dall-e-2"
DEFAULT_IMAGE_EDIT_MODEL = "gpt-image-1"

# 1min.ai addresses Leonardo models by UUID, and clients may use these readable names instead.
MODEL_ALIASES = {
    "leonardo-phoenix": "6b645e3a-d64f-4341-a6d8-7a3690fbf042",
    "leonardo-lightning-xl": "b24e16ff-06e3-43eb-8d33-4416c2d75876",
    "leonardo-anime-xl": "e71a1c2f-4f80-4800-934f-2c68979d8cc8",
    "leonardo-diffusion-xl": "1e60896f-3c26-4296-8ecc-53e2afecc132",
    "leonardo-kino-xl": "aa77f04e-3eec-4034-9c07-d0f619684628",
    "leonardo-vision-xl": "5c232a9e-9061-4777-980a-ddc8e65647c6",
    "leonardo-albedo-xl": "2067ae52-33fd-4a82-bb92-c2c55e7d2786",
}
