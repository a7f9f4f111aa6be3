"""Image features on `/api/features`: IMAGE_GENERATOR, IMAGE_VARIATOR and IMAGE_EDITOR."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

from . import catalog
from .assets import asset_by_path
from .media import png_image
from .records import FeatureOutput, FeatureRequest, signed_url
from .state import IMAGE, Asset, new_uuid, storage_key
from .validation import (Validator, anything, boolean, check_object, integer, number, one_of,
                         text)

if TYPE_CHECKING:
    from .server import FakeOneMin


@dataclass(frozen=True)
class ImageFamily:
    """The promptObject fields one model family reads, and how many images it returns."""

    fields: Mapping[str, Validator]
    required: tuple[str, ...]
    count_field: str | None = None
    fixed_count: int = 1


_PROMPT = text(32000)
_SEED = integer(0, 2**32 - 1)
_ASPECT_RATIO = one_of("1:1", "16:9", "9:16", "3:2", "2:3", "3:4", "4:3", "4:5", "5:4")
_FLUX_FORMAT = one_of("webp", "png", "jpg")
_DALL_E_2_SIZE = one_of("256x256", "512x512", "1024x1024", by_provider=True)
_GPT_IMAGE = {"n": integer(1, 10), "quality": one_of("low", "medium", "high"),
              "size": one_of("auto", "1024x1024", "1536x1024", "1024x1536", by_provider=True),
              "background": one_of("transparent", "opaque", "auto"),
              "output_format": one_of("png", "jpeg", "webp"),
              "output_compression": integer(0, 100)}
_MIDJOURNEY = {"mode": one_of("fast", "relax"), "n": integer(1, 4),
               "aspect_width": integer(1, 100), "aspect_height": integer(1, 100),
               "isNiji6": boolean(), "maintainModeration": boolean()}
_SDXL_SIZES = ("1024x1024", "1152x896", "1216x832", "1344x768", "1536x640", "640x1536",
               "768x1344", "832x1216", "896x1152")

GENERATOR_FAMILIES = {
    "dall-e-2": ImageFamily({"prompt": text(1000), "n": integer(1, 10), "size": _DALL_E_2_SIZE},
                            ("prompt",), "n"),
    "dall-e-3": ImageFamily({"prompt": text(4000), "n": integer(1, 1),
                             "size": one_of("1024x1024", "1792x1024", "1024x1792",
                                            by_provider=True),
                             "quality": one_of("standard", "hd"),
                             "style": one_of("vivid", "natural")}, ("prompt",)),
    "gpt-image": ImageFamily({"prompt": _PROMPT, **_GPT_IMAGE}, ("prompt", "quality"), "n"),
    "flux": ImageFamily({"prompt": _PROMPT, "aspect_ratio": _ASPECT_RATIO,
                         "num_outputs": integer(1, 4), "output_format": _FLUX_FORMAT,
                         "seed": _SEED}, ("prompt",), "num_outputs"),
    # Midjourney returns four images whatever the value of `n`.
    "midjourney": ImageFamily({"prompt": _PROMPT, **_MIDJOURNEY, "negativePrompt": text(),
                               "image_weight": number(0, 3), "weird": integer(0, 3000)},
                              ("prompt",), fixed_count=4),
    "leonardo": ImageFamily({"prompt": text(1500), "n": integer(1, 8),
                             "size": one_of("1024x1024", "1024x768", "768x1024",
                                            by_provider=True),
                             "negativePrompt": text()}, ("prompt",), "n"),
    "sdxl": ImageFamily({"prompt": text(2000), "samples": integer(1, 10),
                         "size": one_of(*_SDXL_SIZES, by_provider=True),
                         "cfg_scale": number(0, 35), "steps": integer(10, 50), "seed": _SEED},
                        ("prompt",), "samples"),
    "generic": ImageFamily({"prompt": _PROMPT, "n": integer(1, 4), "size": text(),
                            "aspect_ratio": text()}, ("prompt",), "n"),
}

VARIATOR_FAMILIES = {
    "dall-e-2": ImageFamily({"imageUrl": anything(), "n": integer(1, 10),
                             "size": _DALL_E_2_SIZE}, ("imageUrl",), "n"),
    "midjourney": ImageFamily({"imageUrl": anything(), **_MIDJOURNEY}, ("imageUrl",),
                              fixed_count=4),
    "flux-redux": ImageFamily({"imageUrl": anything(), "aspect_ratio": _ASPECT_RATIO,
                               "num_outputs": integer(1, 4), "output_format": _FLUX_FORMAT,
                               "seed": _SEED}, ("imageUrl",), "num_outputs"),
    "generic": ImageFamily({"imageUrl": anything(), "n": integer(1, 4), "size": text()},
                           ("imageUrl",), "n"),
}

EDITOR_FAMILIES = {
    "gpt-image": ImageFamily({"imageUrl": anything(), "prompt": _PROMPT, "mask": anything(),
                              **_GPT_IMAGE}, ("imageUrl", "prompt"), "n"),
    "flux-kontext": ImageFamily({"imageUrl": anything(), "prompt": _PROMPT,
                                 "aspect_ratio": _ASPECT_RATIO, "output_format": _FLUX_FORMAT,
                                 "seed": _SEED}, ("imageUrl", "prompt")),
    "generic": ImageFamily({"imageUrl": anything(), "prompt": _PROMPT, "mask": anything(),
                            "n": integer(1, 4)}, ("imageUrl", "prompt"), "n"),
}

_FAMILIES = {catalog.IMAGE_GENERATOR: GENERATOR_FAMILIES,
             catalog.IMAGE_VARIATOR: VARIATOR_FAMILIES,
             catalog.IMAGE_EDITOR: EDITOR_FAMILIES}


def create_images(fake: FakeOneMin, request: FeatureRequest) -> FeatureOutput:
    """Generate, vary or edit images: store small PNGs and return their storage keys."""
    family = _FAMILIES[request.feature][request.model.family]
    prompt_object = check_object(request.prompt_object, family.fields, "promptObject",
                                 family.required)
    sources = [asset_by_path(fake.store, prompt_object[name], request.api_key, IMAGE,
                             f"promptObject.{name}")
               for name in ("imageUrl", "mask") if prompt_object.get(name) is not None]

    count = family.fixed_count
    if family.count_field:
        count = prompt_object.get(family.count_field) or 1
    seed = str(prompt_object.get("prompt") or "") + "".join(source.path for source in sources)
    keys = [_store_png(fake, request.api_key, f"{seed}#{index}") for index in range(count)]
    return FeatureOutput(keys, {}, temporary_url=signed_url(fake.asset_url, keys[0]))


# NOTE: results are always PNG with a .png key, even when output_format requests webp or jpg.
def _store_png(fake: FakeOneMin, api_key: str, seed: str) -> str:
    data = png_image(seed)
    asset = Asset(uuid=new_uuid(), path=storage_key("images", "image.png"), kind=IMAGE,
                  mimetype="image/png", name="image.png", data=data, owner=api_key)
    fake.store.add_asset(asset)
    return asset.path
