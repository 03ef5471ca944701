"""Privacy: hiding regions of frames (faces) by blurring, pixelating or filling them."""
from .face_anonymizer import AnonymizeRegionsCalculator, anonymize

__all__ = ["AnonymizeRegionsCalculator", "anonymize"]
