"""Image preprocessing calculators: frames to model input tensors."""
