from dataclasses import dataclass

import numpy as np

from pipelines import Calculator, Output, Stop, register_calculator

_F32 = np.float32


@register_calculator
class SsdAnchorsCalculator(Calculator):
    """Computes the anchors of an SSD-style detector (MediaPipe's SsdAnchorsCalculator) and sends them once.

    A source node: it sends one (N, 4) float32 array of (x_center, y_center, w, h), relative to the model
    input, on ANCHORS at timestamp 0, then closes. TensorsToDetectionsCalculator caches it. Layers with
    the same stride share one feature map; anchors are enumerated layer group -> row -> column -> anchor,
    exactly as MediaPipe does. `generate_anchors(options)` is the same computation as a plain function.

    Ports:
        -> ANCHORS (np.ndarray, (N, 4) float32 x_center, y_center, w, h; sent once at timestamp 0)

    Example node:
        # BlazeFace short range: 896 anchors on 16x16 and 8x8 grids.
        - calculator: SsdAnchorsCalculator
          outputs: {ANCHORS: anchors}
          options:
            num_layers: 4
            min_scale: 0.1484375
            max_scale: 0.75
            input_size_width: 128
            input_size_height: 128
            strides: [8, 16, 16, 16]
            aspect_ratios: [1.0]
            fixed_anchor_size: true
    """

    @dataclass(frozen=True)
    class Options:
        input_size_width: int
        input_size_height: int
        min_scale: float
        max_scale: float
        num_layers: int
        anchor_offset_x: float = 0.5
        anchor_offset_y: float = 0.5
        strides: tuple[int, ...] = ()
        feature_map_width: tuple[int, ...] = ()  # when given, the grid sizes instead of ceil(input / stride)
        feature_map_height: tuple[int, ...] = ()
        aspect_ratios: tuple[float, ...] = ()
        reduce_boxes_in_lowest_layer: bool = False
        interpolated_scale_aspect_ratio: float = 1.0  # <= 0: no extra interpolated-scale anchor
        fixed_anchor_size: bool = False  # every anchor w = h = 1 (the regressors carry the size)

        def __post_init__(self):
            if self.input_size_width < 1 or self.input_size_height < 1:
                raise ValueError(f"input_size_width/height must be >= 1, got "
                                 f"{self.input_size_width}x{self.input_size_height}")
            if self.num_layers < 1:
                raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
            if len(self.strides) != self.num_layers:
                raise ValueError(f"strides needs num_layers ({self.num_layers}) values, got {len(self.strides)} "
                                 "(layers with equal strides share anchors, even when feature maps are given)")
            if self.feature_map_width or self.feature_map_height:
                if not (len(self.feature_map_width) == len(self.feature_map_height) == self.num_layers):
                    raise ValueError(f"feature_map_width and feature_map_height need num_layers ({self.num_layers}) "
                                     f"values each, got {len(self.feature_map_width)} and "
                                     f"{len(self.feature_map_height)}")
                if min(self.feature_map_width + self.feature_map_height) < 1:
                    raise ValueError("feature_map_width/height values must be >= 1")
            if min(self.strides) < 1:
                raise ValueError(f"strides must be >= 1, got {list(self.strides)}")
            if not self.aspect_ratios and not self.reduce_boxes_in_lowest_layer and \
                    self.interpolated_scale_aspect_ratio <= 0:
                raise ValueError("aspect_ratios is empty and interpolated_scale_aspect_ratio <= 0: no anchors per cell")
            if any(a <= 0 for a in self.aspect_ratios):
                raise ValueError(f"aspect_ratios must be > 0, got {list(self.aspect_ratios)}")

    ANCHORS = Output[np.ndarray]("ANCHORS")

    def open(self, ctx):
        self._anchors = generate_anchors(self.options)

    def process(self, ctx):
        ctx.send(self.ANCHORS, self._anchors, timestamp=0)
        return Stop


def _scale(min_scale: float, max_scale: float, index: int, count: int) -> float:
    if count == 1:
        return float(_F32((min_scale + max_scale) * 0.5))
    return float(_F32(min_scale + (max_scale - min_scale) * index / (count - 1.0)))


def generate_anchors(options: "SsdAnchorsCalculator.Options") -> np.ndarray:
    """MediaPipe's SSD anchors as an (N, 4) float32 array of x_center, y_center, w, h (relative)."""
    o = options
    use_maps = bool(o.feature_map_width)
    num_strides = len(o.strides)
    groups = []
    layer = 0
    while layer < o.num_layers:
        scales: list[float] = []
        ratios: list[float] = []
        # Consecutive layers with the same stride share one feature map; their anchors are merged per cell.
        last = layer
        while last < num_strides and o.strides[last] == o.strides[layer]:
            scale = _scale(o.min_scale, o.max_scale, last, num_strides)
            if last == 0 and o.reduce_boxes_in_lowest_layer:
                ratios += [1.0, 2.0, 0.5]
                scales += [0.1, scale, scale]
            else:
                ratios += list(o.aspect_ratios)
                scales += [scale] * len(o.aspect_ratios)
                if o.interpolated_scale_aspect_ratio > 0.0:
                    nxt = 1.0 if last == num_strides - 1 else _scale(o.min_scale, o.max_scale, last + 1, num_strides)
                    scales.append(float(np.sqrt(_F32(scale) * _F32(nxt))))
                    ratios.append(o.interpolated_scale_aspect_ratio)
            last += 1
        sqrt_ratios = np.sqrt(np.asarray(ratios, _F32))
        heights = np.asarray(scales, _F32) / sqrt_ratios
        widths = np.asarray(scales, _F32) * sqrt_ratios
        if use_maps:
            fh, fw = o.feature_map_height[layer], o.feature_map_width[layer]
        else:
            stride = o.strides[layer]
            fh = int(np.ceil(_F32(o.input_size_height) / _F32(stride)))
            fw = int(np.ceil(_F32(o.input_size_width) / _F32(stride)))
        xs = (np.arange(fw, dtype=_F32) + _F32(o.anchor_offset_x)) / _F32(fw)
        ys = (np.arange(fh, dtype=_F32) + _F32(o.anchor_offset_y)) / _F32(fh)
        n = len(scales)
        block = np.empty((fh, fw, n, 4), _F32)
        block[..., 0] = xs[None, :, None]
        block[..., 1] = ys[:, None, None]
        if o.fixed_anchor_size:
            block[..., 2:] = 1.0
        else:
            block[..., 2] = widths
            block[..., 3] = heights
        groups.append(block.reshape(-1, 4))
        layer = last
    return np.concatenate(groups) if groups else np.zeros((0, 4), _F32)
