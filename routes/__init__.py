"""Blueprints of the relay's HTTP API, registered by ``create_app``."""
