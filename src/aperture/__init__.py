"""Aperture: a self-hosted LLM gateway for multimodal traffic."""

__version__ = "0.1.0"
