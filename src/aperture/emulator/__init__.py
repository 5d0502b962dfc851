"""Offline stand-ins for provider APIs, faithful to their wire formats, for tests and demos."""

from __future__ import annotations

from aperture.emulator.app import create_emulator_app

__all__ = ["create_emulator_app"]
