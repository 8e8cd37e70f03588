"""Registered benchmark suites: end-to-end loaders (with the acceptance suite and scaling
sweeps), the CPU cost of each pipeline stage, the augmentation alone on a resident batch,
and the Keep stage.
"""
