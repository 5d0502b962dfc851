"""The Anthropic Messages dialect, for clients that speak it."""
