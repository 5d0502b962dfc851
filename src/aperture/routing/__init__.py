"""Routing: the model catalog (names, aliases, capabilities), targets and dispatch."""
