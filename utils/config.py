"""Relay settings: defaults, parsing and validation.

Every setting is read from an environment variable of the same name (or from the
mapping passed to ``create_app``). A value that does not parse stops start-up with
a ``ConfigError`` that names the variable, the value and what it expects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping

from limits import parse_many


class ConfigError(ValueError):
    """A setting has a value the relay cannot use."""


def _parse_int(name: str, raw: Any, minimum: int, maximum: int) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def _parse_float(name: str, raw: Any, minimum: float, maximum: float) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def _parse_bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _parse_url(name: str, raw: Any) -> str:
    text = str(raw).strip().rstrip("/")
    if not text.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must be an http:// or https:// URL, got {raw!r}")
    return text


def _parse_list(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, (list, tuple)):
        items = raw
    else:
        items = str(raw).split(",")
    return tuple(item.strip() for item in items if str(item).strip())


def _parse_rate_limit(name: str, raw: Any) -> str:
    """Accept a flask-limiter rate string such as "60 per minute"; empty or "off" disables it."""
    text = str(raw).strip()
    if text.lower() in {"", "0", "off", "none", "disabled"}:
        return ""
    try:
        parse_many(text)
    except ValueError:
        raise ConfigError(
            f"{name} must be a rate such as '60 per minute' or '10/second;1000/day', or 'off', got {raw!r}"
        ) from None
    return text


def _parse_log_level(name: str, raw: Any) -> str:
    text = str(raw).strip().upper()
    if text not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(f"{name} must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got {raw!r}")
    return text


MIB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """Validated relay settings; field names are the environment variable names in lower case."""

    host: str = "0.0.0.0"
    port: int = 5001
    waitress_threads: int = 256
    waitress_connection_limit: int = 1000
    one_min_api_url: str = "https://api.1min.ai"
    one_min_asset_url: str = "https://asset.1min.ai"
    upstream_connect_timeout: float = 10.0
    upstream_read_timeout: float = 300.0
    memcached_host: str = ""
    memcached_port: int = 11211
    rate_limit: str = "300 per minute"
    max_request_bytes: int = 50 * MIB
    log_level: str = "INFO"
    subset_of_one_min_permitted_models: tuple[str, ...] = ()
    permit_models_from_subset_only: bool = False
    models_cache_seconds: int = 600
    memory_storage_max_items: int = 10000
    cors_origins: tuple[str, ...] = ("*",)
    max_image_bytes: int = 20 * MIB
    image_fetch_timeout: float = 15.0
    image_fetch_allowed_hosts: tuple[str, ...] = ()
    upload_cache_seconds: int = 24 * 3600
    max_file_bytes: int = 512 * MIB
    files_ttl_seconds: int = 30 * 24 * 3600
    assistants_ttl_seconds: int = 30 * 24 * 3600
    max_audio_bytes: int = 25 * MIB
    image_job_timeout: float = 600.0
    image_params_ttl_seconds: int = 7 * 24 * 3600
    invalid_output_retries: int = 1
    max_n: int = 8
    responses_ttl_seconds: int = 7 * 24 * 3600
    shutdown_grace_seconds: float = 30.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Settings":
        """Build settings from a mapping of environment variable names to raw values."""
        parsed: dict[str, Any] = {}
        for field in fields(cls):
            env_name = field.name.upper()
            if env_name in values and values[env_name] is not None:
                parsed[field.name] = _PARSERS[field.name](env_name, values[env_name])
        settings = cls(**parsed)
        if settings.permit_models_from_subset_only and not settings.subset_of_one_min_permitted_models:
            raise ConfigError(
                "PERMIT_MODELS_FROM_SUBSET_ONLY is true but SUBSET_OF_ONE_MIN_PERMITTED_MODELS is empty, "
                "so no model could be used. List model ids there, or set PERMIT_MODELS_FROM_SUBSET_ONLY=false."
            )
        return settings

    @classmethod
    def from_environment(cls, overrides: Mapping[str, Any] | None = None) -> "Settings":
        """Build settings from ``os.environ``, with ``overrides`` taking precedence."""
        values: dict[str, Any] = dict(os.environ)
        values.update(overrides or {})
        return cls.from_mapping(values)


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "host": lambda name, raw: str(raw).strip() or "0.0.0.0",
    # Port 0 lets the system pick a free port, which the start-up log line shows.
    "port": lambda name, raw: _parse_int(name, raw, 0, 65535),
    "waitress_threads": lambda name, raw: _parse_int(name, raw, 1, 10000),
    "waitress_connection_limit": lambda name, raw: _parse_int(name, raw, 1, 100000),
    "one_min_api_url": _parse_url,
    "one_min_asset_url": _parse_url,
    "upstream_connect_timeout": lambda name, raw: _parse_float(name, raw, 0.1, 600),
    "upstream_read_timeout": lambda name, raw: _parse_float(name, raw, 0.1, 3600),
    "memcached_host": lambda name, raw: str(raw).strip(),
    "memcached_port": lambda name, raw: _parse_int(name, raw, 1, 65535),
    "rate_limit": _parse_rate_limit,
    "max_request_bytes": lambda name, raw: _parse_int(name, raw, 1024, 2**40),
    "log_level": _parse_log_level,
    "subset_of_one_min_permitted_models": lambda name, raw: _parse_list(raw),
    "permit_models_from_subset_only": _parse_bool,
    "models_cache_seconds": lambda name, raw: _parse_int(name, raw, 1, 7 * 24 * 3600),
    "memory_storage_max_items": lambda name, raw: _parse_int(name, raw, 10, 10_000_000),
    "cors_origins": lambda name, raw: _parse_list(raw) or ("*",),
    "max_image_bytes": lambda name, raw: _parse_int(name, raw, 1024, 2**40),
    "image_fetch_timeout": lambda name, raw: _parse_float(name, raw, 0.1, 600),
    "image_fetch_allowed_hosts": lambda name, raw: tuple(host.lower() for host in _parse_list(raw)),
    "upload_cache_seconds": lambda name, raw: _parse_int(name, raw, 1, 30 * 24 * 3600),
    "max_file_bytes": lambda name, raw: _parse_int(name, raw, 1024, 2**40),
    # memcached reads an expiry above 30 days as a Unix timestamp, so that is the maximum.
    "files_ttl_seconds": lambda name, raw: _parse_int(name, raw, 60, 30 * 24 * 3600),
    "assistants_ttl_seconds": lambda name, raw: _parse_int(name, raw, 60, 30 * 24 * 3600),
    "max_audio_bytes": lambda name, raw: _parse_int(name, raw, 1024, 2**40),
    "image_job_timeout": lambda name, raw: _parse_float(name, raw, 1, 3600),
    "image_params_ttl_seconds": lambda name, raw: _parse_int(name, raw, 1, 30 * 24 * 3600),
    "invalid_output_retries": lambda name, raw: _parse_int(name, raw, 0, 5),
    "max_n": lambda name, raw: _parse_int(name, raw, 1, 128),
    "responses_ttl_seconds": lambda name, raw: _parse_int(name, raw, 1, 30 * 24 * 3600),
    "shutdown_grace_seconds": lambda name, raw: _parse_float(name, raw, 0, 3600),
}
