"""Benchmarks of the relay's overhead against the fake 1min.ai. Run them with ``python -m bench.run``."""
