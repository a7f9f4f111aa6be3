"""Configuration, logging, storage and the 1min.ai client shared by every route."""
