"""The thin HTTP surface: parse, run the pipeline, dispatch, render. No business logic."""
