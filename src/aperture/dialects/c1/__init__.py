"""The ``/c1/chat`` shortcut: one message and a top-level ``images`` array."""
