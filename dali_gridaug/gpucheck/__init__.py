"""Checks of the GPU path that run without a GPU."""
