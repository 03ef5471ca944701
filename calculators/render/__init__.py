"""Rendering: detections to drawing instructions, and drawing them on frames."""
