"""Settings parsing and start-up validation."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from utils.config import ConfigError, Settings

ROOT = Path(__file__).resolve().parent.parent


def test_defaults():
    settings = Settings.from_mapping({})

    assert settings.port == 5001
    assert settings.host == "0.0.0.0"
    assert settings.one_min_api_url == "https://api.1min.ai"
    assert settings.one_min_asset_url == "https://asset.1min.ai"
    assert settings.memcached_host == ""


def test_values_parsed():
    settings = Settings.from_mapping(
        {
            "PORT": "8080",
            "WAITRESS_THREADS": "32",
            "ONE_MIN_API_URL": "http://127.0.0.1:9000/",
            "SUBSET_OF_ONE_MIN_PERMITTED_MODELS": "gpt-4o-mini, claude-x ,",
            "PERMIT_MODELS_FROM_SUBSET_ONLY": "yes",
            "RATE_LIMIT": "off",
            "UPSTREAM_READ_TIMEOUT": "2.5",
        }
    )

    assert settings.port == 8080
    assert settings.waitress_threads == 32
    assert settings.one_min_api_url == "http://127.0.0.1:9000"
    assert settings.subset_of_one_min_permitted_models == ("gpt-4o-mini", "claude-x")
    assert settings.permit_models_from_subset_only is True
    assert settings.rate_limit == ""
    assert settings.upstream_read_timeout == 2.5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("WAITRESS_THREADS", "0"),
        ("ONE_MIN_API_URL", "api.1min.ai"),
        ("RATE_LIMIT", "fast please"),
        ("PERMIT_MODELS_FROM_SUBSET_ONLY", "maybe"),
        ("LOG_LEVEL", "loud"),
        ("UPSTREAM_CONNECT_TIMEOUT", "-1"),
    ],
)
def test_bad_value_names_variable(name, value):
    with pytest.raises(ConfigError) as caught:
        Settings.from_mapping({name: value})

    assert name in str(caught.value)
    assert value in str(caught.value)


def test_bad_setting_stops_start_up():
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env={"PORT": "not-a-port", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "PORT must be an integer" in result.stderr


def test_importing_modules_has_no_side_effects():
    code = (
        "import sys, threading, logging\n"
        "before = threading.active_count()\n"
        "import app, routes.text, routes.images, routes.audio, routes.files, utils.common, utils.memcached\n"
        "assert threading.active_count() == before, 'a thread was started at import'\n"
        "assert not logging.getLogger().handlers, 'logging was configured at import'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_busy_port_stops_start_up_cleanly():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        result = subprocess.run(
            [sys.executable, "app.py"],
            cwd=ROOT,
            env={"PORT": str(port), "HOST": "127.0.0.1", "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_subset_only_without_subset_rejected():
    with pytest.raises(ConfigError) as caught:
        Settings.from_mapping({"PERMIT_MODELS_FROM_SUBSET_ONLY": "true"})

    assert "SUBSET_OF_ONE_MIN_PERMITTED_MODELS is empty" in str(caught.value)
