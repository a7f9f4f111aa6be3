"""Per-family ``promptObject`` rules for 1min.ai's IMAGE_GENERATOR, IMAGE_VARIATOR and IMAGE_EDITOR.

Each model family reads its own fields. `prompt_objects` turns one `ImageJob` into the
``promptObject`` of every upstream call it needs. How each OpenAI field is treated
(docs/images.md has the same table for users):

* ``size`` for dall-e-2, dall-e-3 and the gpt-image models: a size outside the model's set
  is a 400 naming the value and the set, as OpenAI does. ``auto`` means the upstream default.
* ``size`` and the ``--ar`` prompt flag become the field of each other family. Flux gets
  the nearest supported aspect ratio, and Leonardo and Stable Diffusion XL the nearest size
  of their fixed sets. Midjourney gets the exact ratio, approximated when a term exceeds 100.
  Each substitution is logged at INFO. ``--ar`` on an OpenAI model picks the nearest size of
  its set. Families without a rule here get ``size`` and ``aspect_ratio`` unchanged.
* ``quality``: gpt-image always gets one (``standard`` → medium, ``hd`` → high, ``auto`` or
  none → medium). dall-e-3 gets ``standard``/``hd`` (``high`` → hd, ``low``/``medium`` →
  standard). The other families have no quality field, so it is not sent.
* ``style`` (dall-e-3), ``background`` and ``output_compression`` (gpt-image) go only to the
  family that reads them; ``output_format`` goes to gpt-image and Flux (``jpeg`` → jpg).
* ``n``: calls are repeated when ``n`` exceeds what one call returns, and surplus images
  (Midjourney always returns four) are dropped. `ImageJob.n` None means one call with
  the family's default count, which the chat flow uses to show all four Midjourney images.
* ``--no`` becomes ``negativePrompt`` for Midjourney and Leonardo; other families have no
  such field, so the words are dropped with an INFO line. ``--fast``/``--relax`` set the
  Midjourney mode (default fast).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

from utils.catalog import CatalogModel
from utils.constants import FEATURE_IMAGE_EDITOR, FEATURE_IMAGE_GENERATOR, FEATURE_IMAGE_VARIATOR, MODEL_ALIASES
from utils.errors import InvalidRequestError

logger = logging.getLogger(__name__)

DALL_E_2_SIZES = ("256x256", "512x512", "1024x1024")
DALL_E_3_SIZES = ("1024x1024", "1792x1024", "1024x1792")
# NOTE: OpenAI's gpt-image-2 also takes free sizes; whether 1min.ai passes them on is unverified.
GPT_IMAGE_SIZES = ("1024x1024", "1536x1024", "1024x1536")
LEONARDO_SIZES = ("1024x1024", "1024x768", "768x1024")
SDXL_SIZES = (
    "1024x1024", "1152x896", "1216x832", "1344x768", "1536x640",
    "640x1536", "768x1344", "832x1216", "896x1152",
)
FLUX_ASPECT_RATIOS = ("1:1", "16:9", "9:16", "3:2", "2:3", "3:4", "4:3", "4:5", "5:4")
MIDJOURNEY_MAX_ASPECT_TERM = 100
MIDJOURNEY_IMAGES_PER_CALL = 4
FLUX_OUTPUT_FORMATS = {"png": "png", "webp": "webp", "jpeg": "jpg"}
GPT_IMAGE_QUALITY = {"low": "low", "medium": "medium", "high": "high", "standard": "medium", "hd": "high"}
DALL_E_3_QUALITY = {"standard": "standard", "hd": "hd", "high": "hd", "low": "standard", "medium": "standard"}
DEFAULT_GPT_IMAGE_QUALITY = "medium"

LEONARDO_IDS = frozenset(MODEL_ALIASES.values())


@dataclass
class ImageJob:
    """One image request in the relay's terms, before it is shaped for a model family."""

    prompt: str = ""
    # None: one upstream call with the family's default count (the chat flow).
    n: int | None = None
    # "WIDTHxHEIGHT" or "auto", syntax already checked.
    size: str | None = None
    # (width, height) terms from the --ar flag or from saved chat parameters.
    aspect: tuple[int, int] | None = None
    quality: str | None = None
    style: str | None = None
    background: str | None = None
    output_format: str | None = None
    output_compression: int | None = None
    negative_prompt: str | None = None
    mode: str | None = None
    image_path: str | None = None
    mask_path: str | None = None


def family_of(model: CatalogModel) -> str:
    """Name the request-field family of an image model from its id and provider."""
    model_id = model.id.lower()
    name = model_id.rsplit("/", 1)[-1]
    if name == "dall-e-2" or name == "dall-e-3":
        return name
    if name.startswith(("gpt-image", "chatgpt-image")):
        return "gpt-image"
    if name.startswith(("midjourney", "magic-art")):
        return "midjourney"
    if model.id in LEONARDO_IDS or model.provider.lower() == "leonardo":
        return "leonardo"
    if name.startswith("stable-diffusion-xl"):
        return "sdxl"
    if name.startswith("flux-redux"):
        return "flux-redux"
    if name.startswith("flux-kontext"):
        return "flux-kontext"
    if "flux" in name:
        return "flux"
    return "generic"


# --- sizes and aspect ratios -----------------------------------------------------------------


def _dimensions(size: str) -> tuple[int, int]:
    width, _, height = size.partition("x")
    return int(width), int(height)


def _ratio(text: str, separator: str) -> float:
    width, _, height = text.partition(separator)
    return int(width) / int(height)


def _requested_ratio(job: ImageJob) -> float | None:
    """Return the requested aspect ratio: the --ar flag first, then a WxH size."""
    if job.aspect is not None:
        return job.aspect[0] / job.aspect[1]
    if job.size and job.size != "auto":
        width, height = _dimensions(job.size)
        return width / height
    return None


def _nearest_size(sizes: tuple[str, ...], ratio: float, area: int | None) -> str:
    """Pick the size whose ratio is closest on a log scale; ties go to the closest (or largest) area."""

    def distance(size: str) -> tuple[float, float]:
        width, height = _dimensions(size)
        ratio_gap = round(abs(math.log(width / height) - math.log(ratio)), 9)
        area_gap = abs(math.log(width * height / area)) if area else -width * height
        return ratio_gap, area_gap

    return min(sizes, key=distance)


def _log_substitution(model_id: str, requested: str, sent: str) -> None:
    logger.info("%s does not offer %s; sent %s instead", model_id, requested, sent)


def _same_ratio(first: float, second: float) -> bool:
    return math.isclose(first, second, rel_tol=1e-9)


def _describe_request(job: ImageJob) -> str:
    if job.aspect is not None:
        return f"aspect ratio {job.aspect[0]}:{job.aspect[1]}"
    return f"size {job.size}"


def _openai_size(job: ImageJob, sizes: tuple[str, ...], model_id: str, allow_auto: bool = False) -> str | None:
    """Check ``size`` against an OpenAI model's set (400 outside it); map --ar to the nearest size."""
    if job.aspect is not None:
        ratio = job.aspect[0] / job.aspect[1]
        chosen = _nearest_size(sizes, ratio, None)
        if not _same_ratio(_ratio(chosen, "x"), ratio):
            _log_substitution(model_id, _describe_request(job), chosen)
        return chosen
    if job.size is None or job.size == "auto":
        return "auto" if allow_auto and job.size == "auto" else None
    if job.size not in sizes:
        allowed = ", ".join(("auto",) + sizes if allow_auto else sizes)
        raise InvalidRequestError(
            f"Invalid value for 'size': '{job.size}' is not supported by {model_id}. Supported values: {allowed}.",
            param="size",
            code="invalid_value",
        )
    return job.size


def _fixed_size(job: ImageJob, sizes: tuple[str, ...], model_id: str) -> str | None:
    """Map the requested size or ratio to the nearest size of a fixed set."""
    if job.aspect is None and job.size in sizes:
        return job.size
    ratio = _requested_ratio(job)
    if ratio is None:
        return None
    area = None
    if job.aspect is None and job.size:
        width, height = _dimensions(job.size)
        area = width * height
    chosen = _nearest_size(sizes, ratio, area)
    exact = chosen == job.size if job.aspect is None else _same_ratio(_ratio(chosen, "x"), ratio)
    if not exact:
        _log_substitution(model_id, _describe_request(job), chosen)
    return chosen


def _flux_aspect_ratio(job: ImageJob, model_id: str) -> str | None:
    ratio = _requested_ratio(job)
    if ratio is None:
        return None
    chosen = min(FLUX_ASPECT_RATIOS, key=lambda candidate: abs(math.log(_ratio(candidate, ":")) - math.log(ratio)))
    if not _same_ratio(_ratio(chosen, ":"), ratio):
        _log_substitution(model_id, _describe_request(job), f"aspect ratio {chosen}")
    return chosen


def midjourney_aspect(job: ImageJob, model_id: str) -> tuple[int, int]:
    """Return (aspect_width, aspect_height): the exact ratio in lowest terms, approximated above 100."""
    if job.aspect is not None:
        width, height = job.aspect
    elif job.size and job.size != "auto":
        width, height = _dimensions(job.size)
    else:
        return 1, 1
    exact = Fraction(width, height)
    limit = MIDJOURNEY_MAX_ASPECT_TERM
    clamped = min(max(exact, Fraction(1, limit)), Fraction(limit))
    # Bounding the denominator of the value below 1 bounds both terms.
    if clamped >= 1:
        approximate = 1 / (1 / clamped).limit_denominator(limit)
    else:
        approximate = clamped.limit_denominator(limit)
    if approximate != exact:
        _log_substitution(
            model_id,
            f"aspect ratio {exact.numerator}:{exact.denominator}",
            f"{approximate.numerator}:{approximate.denominator}",
        )
    return approximate.numerator, approximate.denominator


# --- payloads per family ---------------------------------------------------------------------


def _negative_prompt(job: ImageJob, model_id: str, supported: bool) -> dict:
    if not job.negative_prompt:
        return {}
    if supported:
        return {"negativePrompt": job.negative_prompt}
    logger.info("%s has no negative prompt field; the --no words were not sent", model_id)
    return {}


def _gpt_image_fields(job: ImageJob, model_id: str) -> dict:
    quality = GPT_IMAGE_QUALITY.get(job.quality or "", DEFAULT_GPT_IMAGE_QUALITY)
    return {
        "quality": quality,
        "size": _openai_size(job, GPT_IMAGE_SIZES, model_id, allow_auto=True),
        "background": job.background,
        "output_format": job.output_format,
        "output_compression": job.output_compression,
    }


def _midjourney_fields(job: ImageJob, model_id: str) -> dict:
    width, height = midjourney_aspect(job, model_id)
    return {
        "mode": job.mode or "fast",
        "n": MIDJOURNEY_IMAGES_PER_CALL,
        "aspect_width": width,
        "aspect_height": height,
        "isNiji6": False,
        "maintainModeration": True,
    }


def _generate_dall_e_2(job: ImageJob, model_id: str) -> dict:
    _negative_prompt(job, model_id, supported=False)
    return {"prompt": job.prompt, "size": _openai_size(job, DALL_E_2_SIZES, model_id)}


def _generate_dall_e_3(job: ImageJob, model_id: str) -> dict:
    _negative_prompt(job, model_id, supported=False)
    return {
        "prompt": job.prompt,
        "size": _openai_size(job, DALL_E_3_SIZES, model_id),
        "quality": DALL_E_3_QUALITY.get(job.quality or ""),
        "style": job.style,
    }


def _generate_gpt_image(job: ImageJob, model_id: str) -> dict:
    _negative_prompt(job, model_id, supported=False)
    return {"prompt": job.prompt, **_gpt_image_fields(job, model_id)}


def _generate_flux(job: ImageJob, model_id: str) -> dict:
    _negative_prompt(job, model_id, supported=False)
    return {
        "prompt": job.prompt,
        "aspect_ratio": _flux_aspect_ratio(job, model_id),
        "output_format": FLUX_OUTPUT_FORMATS.get(job.output_format or ""),
    }


def _generate_midjourney(job: ImageJob, model_id: str) -> dict:
    return {"prompt": job.prompt, **_midjourney_fields(job, model_id), **_negative_prompt(job, model_id, True)}


def _generate_leonardo(job: ImageJob, model_id: str) -> dict:
    return {
        "prompt": job.prompt,
        "size": _fixed_size(job, LEONARDO_SIZES, model_id),
        **_negative_prompt(job, model_id, supported=True),
    }


def _generate_sdxl(job: ImageJob, model_id: str) -> dict:
    _negative_prompt(job, model_id, supported=False)
    return {"prompt": job.prompt, "size": _fixed_size(job, SDXL_SIZES, model_id)}


def _generate_generic(job: ImageJob, model_id: str) -> dict:
    _negative_prompt(job, model_id, supported=False)
    aspect_ratio = f"{job.aspect[0]}:{job.aspect[1]}" if job.aspect else None
    size = job.size if job.size != "auto" else None
    return {"prompt": job.prompt, "size": size, "aspect_ratio": aspect_ratio}


def _vary_dall_e_2(job: ImageJob, model_id: str) -> dict:
    return {"imageUrl": job.image_path, "size": _openai_size(job, DALL_E_2_SIZES, model_id)}


def _vary_midjourney(job: ImageJob, model_id: str) -> dict:
    return {"imageUrl": job.image_path, **_midjourney_fields(job, model_id)}


def _vary_flux_redux(job: ImageJob, model_id: str) -> dict:
    return {
        "imageUrl": job.image_path,
        "aspect_ratio": _flux_aspect_ratio(job, model_id),
        "output_format": FLUX_OUTPUT_FORMATS.get(job.output_format or ""),
    }


def _vary_generic(job: ImageJob, model_id: str) -> dict:
    return {"imageUrl": job.image_path, "size": job.size if job.size != "auto" else None}


def _edit_gpt_image(job: ImageJob, model_id: str) -> dict:
    return {"imageUrl": job.image_path, "prompt": job.prompt, "mask": job.mask_path, **_gpt_image_fields(job, model_id)}


def _edit_flux_kontext(job: ImageJob, model_id: str) -> dict:
    if job.mask_path:
        raise InvalidRequestError(
            f"{model_id} edits the whole image and takes no mask. Send the request without 'mask', "
            "or use a model that takes one, such as a gpt-image model.",
            param="mask",
        )
    return {
        "imageUrl": job.image_path,
        "prompt": job.prompt,
        "aspect_ratio": _flux_aspect_ratio(job, model_id),
        "output_format": FLUX_OUTPUT_FORMATS.get(job.output_format or ""),
    }


def _edit_generic(job: ImageJob, model_id: str) -> dict:
    return {"imageUrl": job.image_path, "prompt": job.prompt, "mask": job.mask_path}


@dataclass(frozen=True)
class FamilyRule:
    """A family's promptObject builder and the number of images one call returns."""

    build: Callable[[ImageJob, str], dict]
    # promptObject field for the image count, or None when each call returns a fixed number.
    count_field: str | None
    # NOTE: the per-call maxima are the limits seen in 1min.ai's documentation, not verified live.
    max_per_call: int


RULES: dict[tuple[str, str], FamilyRule] = {
    (FEATURE_IMAGE_GENERATOR, "dall-e-2"): FamilyRule(_generate_dall_e_2, "n", 10),
    (FEATURE_IMAGE_GENERATOR, "dall-e-3"): FamilyRule(_generate_dall_e_3, "n", 1),
    (FEATURE_IMAGE_GENERATOR, "gpt-image"): FamilyRule(_generate_gpt_image, "n", 10),
    (FEATURE_IMAGE_GENERATOR, "flux"): FamilyRule(_generate_flux, "num_outputs", 4),
    (FEATURE_IMAGE_GENERATOR, "midjourney"): FamilyRule(_generate_midjourney, None, MIDJOURNEY_IMAGES_PER_CALL),
    (FEATURE_IMAGE_GENERATOR, "leonardo"): FamilyRule(_generate_leonardo, "n", 8),
    (FEATURE_IMAGE_GENERATOR, "sdxl"): FamilyRule(_generate_sdxl, "samples", 10),
    (FEATURE_IMAGE_GENERATOR, "generic"): FamilyRule(_generate_generic, "n", 4),
    (FEATURE_IMAGE_VARIATOR, "dall-e-2"): FamilyRule(_vary_dall_e_2, "n", 10),
    (FEATURE_IMAGE_VARIATOR, "midjourney"): FamilyRule(_vary_midjourney, None, MIDJOURNEY_IMAGES_PER_CALL),
    (FEATURE_IMAGE_VARIATOR, "flux-redux"): FamilyRule(_vary_flux_redux, "num_outputs", 4),
    (FEATURE_IMAGE_VARIATOR, "generic"): FamilyRule(_vary_generic, "n", 4),
    (FEATURE_IMAGE_EDITOR, "gpt-image"): FamilyRule(_edit_gpt_image, "n", 10),
    (FEATURE_IMAGE_EDITOR, "flux-kontext"): FamilyRule(_edit_flux_kontext, None, 1),
    (FEATURE_IMAGE_EDITOR, "generic"): FamilyRule(_edit_generic, "n", 4),
}


def rule_for(feature: str, model: CatalogModel) -> FamilyRule:
    """Return the model's rule for ``feature``; a family without one uses the generic rule."""
    return RULES.get((feature, family_of(model))) or RULES[(feature, "generic")]


def prompt_objects(feature: str, model: CatalogModel, job: ImageJob) -> list[dict]:
    """Build the promptObject of each upstream call needed for ``job.n`` images.

    Fields left as None are not sent, so the upstream default applies.
    """
    rule = rule_for(feature, model)
    base = {name: value for name, value in rule.build(job, model.id).items() if value is not None}
    if rule.count_field is None:
        calls = 1 if job.n is None else math.ceil(job.n / rule.max_per_call)
        return [dict(base) for _ in range(calls)]
    if job.n is None:
        return [{**base, rule.count_field: 1}]
    counts = [rule.max_per_call] * (job.n // rule.max_per_call)
    if job.n % rule.max_per_call:
        counts.append(job.n % rule.max_per_call)
    return [{**base, rule.count_field: count} for count in counts]
