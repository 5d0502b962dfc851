"""Settings: the one reader of the config file and the environment.

The file is decoded once at start-up into frozen, typed settings that are passed down;
nothing reads configuration from anywhere else.
"""

from aperture.settings.load import ConfigError, Problem, load_settings, parse_settings
from aperture.settings.schema import (
    AuthSettings,
    Capability,
    DocumentSettings,
    ImageDecodeSettings,
    ImageSettings,
    ModelConstraints,
    ModelSettings,
    ProviderImageSettings,
    ProviderKind,
    ProviderSettings,
    ResponsesSettings,
    RouteSettings,
    RouteTarget,
    ServerSettings,
    Settings,
    UrlPolicy,
)

__all__ = [
    "AuthSettings",
    "Capability",
    "ConfigError",
    "DocumentSettings",
    "ImageDecodeSettings",
    "ImageSettings",
    "ModelConstraints",
    "ModelSettings",
    "Problem",
    "ProviderImageSettings",
    "ProviderKind",
    "ProviderSettings",
    "ResponsesSettings",
    "RouteSettings",
    "RouteTarget",
    "ServerSettings",
    "Settings",
    "UrlPolicy",
    "load_settings",
    "parse_settings",
]
