"""Landmark solutions: regions of interest, landmark decoding and projection, tracking rules, smoothing."""
