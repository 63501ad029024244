"""Exhibit modules: one per upstream fix, each calling ``register_exhibit``."""
