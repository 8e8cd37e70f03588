"""Registered benchmark suites: end-to-end loaders (with the acceptance suite and scaling
sweeps), the augmentation alone on a resident batch, and the Keep stage.
"""
