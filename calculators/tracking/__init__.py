"""Multi-object tracking: a Kalman box filter, IoU assignment, ByteTrack and SORT, and TrackerCalculator."""
from .bytetrack import ByteTracker
from .kalman import KalmanBoxFilter, xyah_to_xyxy, xyxy_to_xyah
from .matching import iou_matrix, linear_assignment
from .sort import SortTracker
from .track import Track, TrackerBase
from .tracker import TrackerCalculator

__all__ = ["ByteTracker", "KalmanBoxFilter", "SortTracker", "Track", "TrackerBase", "TrackerCalculator",
           "iou_matrix", "linear_assignment", "xyah_to_xyxy", "xyxy_to_xyah"]
