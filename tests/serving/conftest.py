"""The serving tests' fixtures: one small exported model, its version folder, and a server over it."""

from helpers.serving import exported_model, model_base, sample, server

__all__ = ["exported_model", "model_base", "sample", "server"]
