"""Governance: who may call, with which keys, on which models, and what is recorded."""
