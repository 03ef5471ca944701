"""Segmentation: model output to masks, and their smoothing over time."""
