"""Per-operator translations for scripts/tflite_to_onnx.py (TFLite op -> ONNX nodes).

Each `op_<TFLITE_NAME>(ins, outs, options)` reads TFLite tensor indices and
emits ONNX nodes through the helpers of TfliteToOnnx (nchw/plain/const/finish).
4-D activations are NCHW inside the graph, so axes, constants and weights are
permuted from TFLite's NHWC here.
"""

from __future__ import annotations

import struct

import numpy as np
import tflite

NHWC_TO_NCHW = [0, 3, 1, 2]
NCHW_TO_NHWC = [0, 2, 3, 1]
OPTION_CLASSES = {
    "CONV_2D": tflite.Conv2DOptions, "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
    "ADD": tflite.AddOptions, "MUL": tflite.MulOptions, "SUB": tflite.SubOptions,
    "MAX_POOL_2D": tflite.Pool2DOptions, "AVERAGE_POOL_2D": tflite.Pool2DOptions,
    "CONCATENATION": tflite.ConcatenationOptions, "RESIZE_BILINEAR": tflite.ResizeBilinearOptions,
    "DEPTH_TO_SPACE": tflite.DepthToSpaceOptions, "FULLY_CONNECTED": tflite.FullyConnectedOptions,
    "MEAN": tflite.ReducerOptions, "STRIDED_SLICE": tflite.StridedSliceOptions,
}
INT64_MAX = np.iinfo(np.int64).max


def same_pads(in_hw, kernel, strides, dilations) -> list[int]:
    """Explicit ONNX pads [top, left, bottom, right] for TFLite SAME padding.

    TFLite puts the odd extra pixel at the bottom/right; ONNX SAME_UPPER would
    too, but explicit pads avoid relying on auto_pad support in every runtime.
    """
    begin, end = [], []
    for size, k, s, d in zip(in_hw, kernel, strides, dilations, strict=True):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return begin + end


def to_nchw_broadcast(c: np.ndarray) -> np.ndarray:
    """A constant that broadcasts against an NHWC tensor, made to broadcast against NCHW."""
    return c.reshape((1,) * (4 - c.ndim) + c.shape).transpose(NHWC_TO_NCHW)


class TfliteOps:
    """Mixin of op handlers; the helpers it calls are defined by TfliteToOnnx."""

    # -- convolutions and pooling ----------------------------------------------
    def op_CONV_2D(self, ins, outs, o):
        w = self.consts[ins[1]].astype(np.float32)              # O,KH,KW,I
        x_shape = self.shape(ins[0])
        k = list(w.shape[1:3])
        strides, dil = [o.StrideH(), o.StrideW()], [o.DilationHFactor(), o.DilationWFactor()]
        pads = same_pads(x_shape[1:3], k, strides, dil) if o.Padding() == tflite.Padding.SAME else [0] * 4
        inputs = [self.nchw(ins[0]), self.const(self.tensor_name(ins[1]), w.transpose(0, 3, 1, 2))]
        if len(ins) > 2:
            inputs.append(self.const(self.tensor_name(ins[2]), self.consts[ins[2]].astype(np.float32)))
        self.finish_nchw("Conv", inputs, outs[0], o.FusedActivationFunction(), kernel_shape=k,
                         strides=strides, dilations=dil, pads=pads, group=1)

    def op_DEPTHWISE_CONV_2D(self, ins, outs, o):
        w = self.consts[ins[1]].astype(np.float32)              # 1,KH,KW,C*M
        x_shape = self.shape(ins[0])
        channels = x_shape[3]
        assert w.shape[3] == channels * o.DepthMultiplier() or o.DepthMultiplier() == 0
        k = list(w.shape[1:3])
        strides, dil = [o.StrideH(), o.StrideW()], [o.DilationHFactor(), o.DilationWFactor()]
        pads = same_pads(x_shape[1:3], k, strides, dil) if o.Padding() == tflite.Padding.SAME else [0] * 4
        w_onnx = w[0].transpose(2, 0, 1)[:, None]              # C*M,1,KH,KW
        inputs = [self.nchw(ins[0]), self.const(self.tensor_name(ins[1]), w_onnx)]
        if len(ins) > 2:
            inputs.append(self.const(self.tensor_name(ins[2]), self.consts[ins[2]].astype(np.float32)))
        self.finish_nchw("Conv", inputs, outs[0], o.FusedActivationFunction(), kernel_shape=k,
                         strides=strides, dilations=dil, pads=pads, group=channels)

    def op_Convolution2DTransposeBias(self, ins, outs, custom_options: bytes):
        """MediaPipe's custom transposed convolution with bias (selfie segmentation).

        Its options are the raw C struct TfLiteTransposeConvParams
        {padding, stride_width, stride_height} (three int32); the weights are
        [O, KH, KW, I] like TRANSPOSE_CONV's.
        """
        padding, stride_w, stride_h = struct.unpack("<3i", custom_options[:12])
        w = self.consts[ins[1]].astype(np.float32)              # O,KH,KW,I
        k, strides = list(w.shape[1:3]), [stride_h, stride_w]
        if padding == 1:  # kTfLitePaddingSame: output = input * stride
            total = [max(kk - s, 0) for kk, s in zip(k, strides)]
            pads = [t // 2 for t in total] + [t - t // 2 for t in total]
        elif padding == 2:  # kTfLitePaddingValid
            pads = [0] * 4
        else:
            raise NotImplementedError(f"Convolution2DTransposeBias padding {padding}")
        bias = self.consts[ins[2]].astype(np.float32)
        if k == strides and k[0] == k[1] and not any(pads):
            # Kernel == stride: every input pixel writes its own KxK block, so this is a 1x1 convolution to
            # K*K*O channels then DepthToSpace (DCR: channel (a*K + b)*O + o goes to offset (a, b)). Same
            # sums; runtimes without ConvTranspose (TVM's Relax VM) can run it.
            out_ch, kh, kw, in_ch = w.shape
            w1 = w.transpose(1, 2, 0, 3).reshape(kh * kw * out_ch, in_ch)[:, :, None, None]
            name = self.tensor_name(outs[0])
            conv = self.node("Conv", [self.nchw(ins[0]), self.const(self.tensor_name(ins[1]), w1),
                                      self.const(self.tensor_name(ins[2]), np.tile(bias, kh * kw))],
                             self.unique(name + "/blocks"), kernel_shape=[1, 1], strides=[1, 1],
                             pads=[0] * 4, group=1)
            self.node("DepthToSpace", [conv], name, blocksize=kh, mode="DCR")
            self.acts[outs[0]] = (name, True)
            return
        inputs = [self.nchw(ins[0]), self.const(self.tensor_name(ins[1]), w.transpose(3, 0, 1, 2)),
                  self.const(self.tensor_name(ins[2]), bias)]
        self.finish_nchw("ConvTranspose", inputs, outs[0], 0, kernel_shape=k, strides=strides,
                         pads=pads, group=1)

    def _pool(self, onnx_op, ins, outs, o, **extra):
        k, strides = [o.FilterHeight(), o.FilterWidth()], [o.StrideH(), o.StrideW()]
        pads = (same_pads(self.shape(ins[0])[1:3], k, strides, [1, 1])
                if o.Padding() == tflite.Padding.SAME else [0] * 4)
        self.finish_nchw(onnx_op, [self.nchw(ins[0])], outs[0], o.FusedActivationFunction(),
                         kernel_shape=k, strides=strides, pads=pads, **extra)

    def op_MAX_POOL_2D(self, ins, outs, o):
        self._pool("MaxPool", ins, outs, o)

    def op_AVERAGE_POOL_2D(self, ins, outs, o):
        # TFLite averages over the valid (unpadded) pixels only: count_include_pad=0
        self._pool("AveragePool", ins, outs, o, count_include_pad=0)

    def op_FULLY_CONNECTED(self, ins, outs, o):
        if o.KeepNumDims() or ins[1] not in self.consts:
            raise NotImplementedError("FULLY_CONNECTED: only constant weights without keep_num_dims")
        w = self.consts[ins[1]].astype(np.float32)              # O,I
        x = self.plain(ins[0])
        out = self.tensor_name(outs[0])
        if len(self.shape(ins[0])) != 2:
            x = self.node("Reshape", [x, self.const(out + "/flat", np.array([-1, w.shape[1]], np.int64))],
                          self.unique(out + "/flat"))
        inputs = [x, self.const(self.tensor_name(ins[1]), w)]
        if len(ins) > 2:
            inputs.append(self.const(self.tensor_name(ins[2]), self.consts[ins[2]].astype(np.float32)))
        self.finish("Gemm", inputs, outs[0], o.FusedActivationFunction(), False, transB=1)

    # -- element-wise ------------------------------------------------------------
    def _binary(self, onnx_op, ins, outs, fused):
        acts = [i for i in ins if i not in self.consts]
        if not acts:
            raise NotImplementedError(f"{onnx_op} of two constants")
        use_nchw = (len(self.shape(outs[0])) == 4
                    and all(self.acts[i][1] for i in acts))
        xs = []
        for i in ins:
            if i in self.consts:
                c = self.consts[i].astype(np.float32)
                xs.append(self.const(self.tensor_name(i), to_nchw_broadcast(c) if use_nchw else c))
            elif use_nchw:
                xs.append(self.nchw(i))
            else:
                xs.append(self.plain(i))
        self.finish(onnx_op, xs, outs[0], fused, use_nchw)

    def op_ADD(self, ins, outs, o):
        self._binary("Add", ins, outs, o.FusedActivationFunction())

    def op_MUL(self, ins, outs, o):
        self._binary("Mul", ins, outs, o.FusedActivationFunction())

    def op_SUB(self, ins, outs, o):
        self._binary("Sub", ins, outs, o.FusedActivationFunction())

    def op_PRELU(self, ins, outs, o):
        # Relu(x) + slope * Min(x, 0), not ONNX PRelu: the same numbers bit for bit (one side is always exactly
        # 0), but ONNX Runtime's PRelu takes a slow broadcasting path and breaks its NCHWc layout (measured: face
        # landmarks 3.5 -> 1.4 ms a call, palm detection 12 -> 7), while these four ops fuse or run vectorized;
        # OpenVINO runs either form at the same speed.
        name, is_nchw = self.acts[ins[0]]
        alpha = self.consts[ins[1]].astype(np.float32)
        slope = self.const(self.tensor_name(ins[1]), to_nchw_broadcast(alpha) if is_nchw else alpha)
        out = self.g.Tensors(outs[0]).Name().decode()
        positive = self.node("Relu", [name], self.unique(out + "/positive"))
        negative = self.node("Min", [name, self.const(out + "/zero", np.float32(0))], self.unique(out + "/negative"))
        scaled = self.node("Mul", [negative, slope], self.unique(out + "/scaled"))
        self.finish("Add", [positive, scaled], outs[0], 0, is_nchw)

    def _unary(self, onnx_op, ins, outs, **attrs):
        name, is_nchw = self.acts[ins[0]]
        self.node(onnx_op, [name], self.tensor_name(outs[0]), **attrs)
        self.acts[outs[0]] = (self.tensor_name(outs[0]), is_nchw)

    def op_RELU(self, ins, outs, o):
        self._unary("Relu", ins, outs)

    def op_LOGISTIC(self, ins, outs, o):
        self._unary("Sigmoid", ins, outs)

    def op_TANH(self, ins, outs, o):
        self._unary("Tanh", ins, outs)

    def op_HARD_SWISH(self, ins, outs, o):
        # x * relu6(x + 3) / 6; ONNX HardSwish needs opset 14, so x * HardSigmoid(x)
        name, is_nchw = self.acts[ins[0]]
        out = self.tensor_name(outs[0])
        gate = self.node("HardSigmoid", [name], self.unique(out + "/gate"), alpha=1.0 / 6, beta=0.5)
        self.node("Mul", [name, gate], out)
        self.acts[outs[0]] = (out, is_nchw)

    # -- shape and data movement ---------------------------------------------------
    def op_MEAN(self, ins, outs, o):
        rank = len(self.shape(ins[0]))
        axes = sorted({int(a) % rank for a in self.consts[ins[1]].ravel()})
        name, is_nchw = self.acts[ins[0]]
        keep = bool(o.KeepDims())
        # Without keepdims, NCHW gives the remaining dims in TFLite's order
        # only if C is reduced or both H and W are.
        if is_nchw and (keep or 3 in axes or {1, 2} <= set(axes)):
            self.finish("ReduceMean", [name], outs[0], 0, keep,
                        axes=[NHWC_TO_NCHW.index(a) for a in axes], keepdims=int(keep))
        else:
            self.finish("ReduceMean", [self.plain(ins[0])], outs[0], 0, False,
                        axes=axes, keepdims=int(keep))

    def op_STRIDED_SLICE(self, ins, outs, o):
        if o.EllipsisMask() or o.NewAxisMask() or getattr(o, "Offset", lambda: False)():
            raise NotImplementedError("STRIDED_SLICE with ellipsis/new-axis/offset")
        begin, end, step = (self.consts[i].astype(np.int64).ravel() for i in ins[1:4])
        rank = len(self.shape(ins[0]))
        starts, ends = [], []
        for a in range(rank):
            b = (0 if step[a] > 0 else INT64_MAX) if o.BeginMask() >> a & 1 else begin[a]
            e = (INT64_MAX if step[a] > 0 else -INT64_MAX) if o.EndMask() >> a & 1 else end[a]
            if o.ShrinkAxisMask() >> a & 1:
                e = b + 1 if b != -1 else INT64_MAX
            starts.append(b)
            ends.append(e)
        out = self.tensor_name(outs[0])
        shrink = o.ShrinkAxisMask() != 0
        name, is_nchw = self.acts[ins[0]]
        if is_nchw and not shrink:
            axes = [NHWC_TO_NCHW.index(a) for a in range(rank)]
            src, out_nchw = name, True
        else:
            axes, src, out_nchw = list(range(rank)), self.plain(ins[0]), False
        sliced = self.node("Slice", [src, self.const(out + "/starts", np.array(starts, np.int64)),
                                     self.const(out + "/ends", np.array(ends, np.int64)),
                                     self.const(out + "/axes", np.array(axes, np.int64)),
                                     self.const(out + "/steps", step.astype(np.int64))],
                           self.unique(out + "/slice") if shrink else out)
        if shrink:
            target = np.array(self.shape(outs[0]), np.int64)
            self.node("Reshape", [sliced, self.const(out + "/shape", target)], out)
        self.acts[outs[0]] = (out, out_nchw)

    def op_PAD(self, ins, outs, o):
        p = self.consts[ins[1]].astype(np.int64)               # [[before, after]] per NHWC dim
        p = p[NHWC_TO_NCHW]
        pads = self.const(self.tensor_name(ins[1]), np.concatenate([p[:, 0], p[:, 1]]))
        self.finish_nchw("Pad", [self.nchw(ins[0]), pads], outs[0], mode="constant")

    def op_RESIZE_BILINEAR(self, ins, outs, o):
        n, h, w, c = self.shape(outs[0])
        if o.AlignCorners():
            mode = "align_corners"
        elif o.HalfPixelCenters():
            mode = "half_pixel"  # same sampling as TF's half_pixel_centers bilinear
        else:
            mode = "asymmetric"
        sizes = self.const(self.tensor_name(outs[0]) + "/sizes", np.array([n, c, h, w], np.int64))
        self.finish_nchw("Resize", [self.nchw(ins[0]), "", "", sizes], outs[0],
                         mode="linear", coordinate_transformation_mode=mode)

    def op_DEPTH_TO_SPACE(self, ins, outs, o):
        # TF's DepthToSpace channel order is ONNX's "DCR" mode.
        self.finish_nchw("DepthToSpace", [self.nchw(ins[0])], outs[0],
                         blocksize=o.BlockSize(), mode="DCR")

    def op_RESHAPE(self, ins, outs, o):
        # Reshape must see the data in TFLite's (NHWC) element order.
        x = self.plain(ins[0])
        target = np.array(self.shape(outs[0]), np.int64)
        out = self.tensor_name(outs[0])
        if len(target) == 4:
            y = self.node("Reshape", [x, self.const(out + "/shape", target)], self.unique(out + "/nhwc"))
            self.node("Transpose", [y], out, perm=NHWC_TO_NCHW)
            self.acts[outs[0]] = (out, True)
        else:
            self.node("Reshape", [x, self.const(out + "/shape", target)], out)
            self.acts[outs[0]] = (out, False)

    def op_CONCATENATION(self, ins, outs, o):
        rank = len(self.shape(ins[0]))
        axis = o.Axis() % rank
        if all(self.acts[i][1] for i in ins):
            axis, xs, is_nchw = NHWC_TO_NCHW.index(axis), [self.nchw(i) for i in ins], True
        else:
            xs, is_nchw = [self.plain(i) for i in ins], False
        self.finish("Concat", xs, outs[0], o.FusedActivationFunction(), is_nchw, axis=axis)
