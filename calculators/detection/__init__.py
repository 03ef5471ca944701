"""Detection post-processing: SSD anchors, decoding raw detector tensors, non-max suppression, letterbox removal."""
