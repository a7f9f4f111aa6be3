"""Helpers behind the route modules: request parsing, payload building, response shaping."""
