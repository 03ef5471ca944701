"""Which FFmpeg encoder a VideoWriterCalculator uses, and the settings handed to it.

`codec` names an encoder (`h264` is libx264), a hardware H.264 encoder (h264_nvenc, h264_qsv, h264_vaapi), or
`auto`: the hardware encoders in that order, then libx264. A hardware encoder is used only when the FFmpeg
build inside PyAV has it AND it opens on this machine (a driver, a device, a session free), which is tried
once, on a small test picture, before the file is created. When it cannot be used, the writer falls back to
libx264 with one log line saying why, or, with `allow_fallback: false`, stops with an error.

Pictures go in as I420 (yuv420p) or, to an encoder that takes only that (Quick Sync), NV12. An encoder that
takes frames only in GPU memory (h264_vaapi, and the others where a build has no system-memory input) cannot
be fed by PyAV, so it is reported and skipped like one that does not open.

The x264 preset and crf are translated for the hardware encoders (NVENC p1..p7 and constant quality `cq`;
Quick Sync's named presets and `global_quality`; VA-API's constant `qp`); those translations follow FFmpeg's
documented options but could not be run here (no such device on the machines this was written on).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from fractions import Fraction

log = logging.getLogger("framegraph.io.video_writer")

SOFTWARE_H264 = "libx264"
#: Short codec names to the FFmpeg encoders behind them; any other name is passed to FFmpeg as is.
ALIASES = {"h264": "libx264", "x264": "libx264", "hevc": "libx265", "h265": "libx265", "x265": "libx265"}
#: The hardware H.264 encoders, in the order `codec: auto` tries them.
HARDWARE_H264 = ("h264_nvenc", "h264_qsv", "h264_vaapi")
AUTO = "auto"
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
#: Encoders that take x264's preset and crf as they are.
X26X = ("libx264", "libx265")
#: x264 preset -> NVENC's p1 (fastest) .. p7 (best).
NVENC_PRESETS = dict(zip(X264_PRESETS, ("p1", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p7", "p7")))
#: x264 preset -> Quick Sync's presets, which stop at veryfast and veryslow.
QSV_PRESETS = {p: min(max(p, "veryfast", key=X264_PRESETS.index), "veryslow", key=X264_PRESETS.index)
               for p in X264_PRESETS}
MAX_THREADS = 128  # x264's own limit (X264_THREAD_MAX)
#: FFmpeg's threading kinds, as the writer's thread_type option names them.
THREAD_TYPES = ("frame", "slice")
#: Picture formats the writer can hand an encoder, best first: I420 as converted, or NV12 (Quick Sync takes
#: only that from system memory).
INPUT_FORMATS = ("yuv420p", "nv12")


@dataclass(frozen=True)
class EncoderChoice:
    """The encoder to open and what it is given: `options` for FFmpeg, `threads` for the codec context, pictures
    as `pix_fmt`."""

    name: str
    options: dict[str, str]
    threads: int
    settings: str  # for the log line: "crf 23, veryfast"
    pix_fmt: str = "yuv420p"


def configured_encoder(codec: str) -> str:
    """The FFmpeg encoder name a `codec` option stands for (`auto` stays `auto`)."""
    codec = codec.strip().lower()
    return ALIASES.get(codec, codec)


def codec_problem(codec: str, allow_fallback: bool) -> str | None:
    """Why `codec` cannot work with this PyAV/FFmpeg build, or None. Checked at validation, before a file opens."""
    import av

    name = configured_encoder(codec)
    if name == AUTO or name in av.codecs_available and _is_video_encoder(name):
        return None
    if name in HARDWARE_H264 and allow_fallback:
        return None  # not built in: falls back to libx264, logged when the writer starts
    h264 = [SOFTWARE_H264] + [e for e in HARDWARE_H264 if e in av.codecs_available]
    why = "is not a video encoder" if name in av.codecs_available else "is not in this PyAV/FFmpeg build"
    hint = "; set allow_fallback: true to fall back to libx264" if name in HARDWARE_H264 else ""
    return (f"codec '{codec}': encoder '{name}' {why}{hint}; use h264 (libx264), hevc (libx265) or auto (a "
            f"hardware H.264 encoder when one works, else libx264); H.264 encoders in this build: {', '.join(h264)}")


def _is_video_encoder(name: str) -> bool:
    import av

    try:
        return av.Codec(name, "w").type == "video"
    except (ValueError, av.FFmpegError):
        return False


def choose_encoder(codec: str, allow_fallback: bool, preset: str, crf: int, threads: int,
                   size: tuple[int, int], rate: Fraction, where: str) -> EncoderChoice:
    """The encoder for `codec`, a hardware one only if it opens here; raises VideoWriteError when the codec
    cannot be used and no fallback is allowed. `where` names the writer in messages."""
    from .video_writer import VideoWriteError

    name = configured_encoder(codec)
    problem = codec_problem(codec, allow_fallback)
    if problem:
        raise VideoWriteError(f"{where}: {problem}")
    candidates = HARDWARE_H264 if name == AUTO else (name,) if name in HARDWARE_H264 else ()
    failures = []
    for candidate in candidates:
        choice = encoder_settings(candidate, preset, crf, threads)
        reason = _open_failure(choice, size, rate)
        if reason is None:
            return replace(choice, pix_fmt=input_format(candidate))
        failures.append(f"{candidate} {reason}")
    if not candidates:
        choice = encoder_settings(name, preset, crf, threads)
        pix_fmt = input_format(name)
        if pix_fmt is None:
            raise VideoWriteError(f"{where}: codec '{codec}': encoder '{name}' takes none of "
                                  f"{', '.join(INPUT_FORMATS)}; use h264 (libx264)")
        return replace(choice, pix_fmt=pix_fmt)
    why = "; ".join(failures)
    if name != AUTO and not allow_fallback:
        raise VideoWriteError(f"{where}: {why}; use codec: h264 (libx264) or auto, or set allow_fallback: true")
    # auto is expected to end on libx264 on most machines; an explicit hardware name that fails is worth a warning.
    if name == AUTO:
        log.info("%s: codec auto: %s; using libx264", where, why)
    else:
        log.warning("%s: %s; using libx264", where, why)
    return encoder_settings(SOFTWARE_H264, preset, crf, threads)


def encoder_settings(name: str, preset: str, crf: int, threads: int) -> EncoderChoice:
    """x264's preset and crf in the named encoder's own terms."""
    if name in X26X:
        return EncoderChoice(name, {"crf": str(crf), "preset": preset}, threads, f"crf {crf}, {preset}")
    if name == "h264_nvenc":  # variable bitrate with no target: constant quality cq, like crf
        nv = NVENC_PRESETS[preset]
        return EncoderChoice(name, {"preset": nv, "rc": "vbr", "cq": str(crf), "b": "0"}, 0, f"cq {crf}, {nv}")
    if name == "h264_qsv":
        qsv = QSV_PRESETS[preset]
        return EncoderChoice(name, {"preset": qsv, "global_quality": str(crf)}, 0, f"global_quality {crf}, {qsv}")
    if name == "h264_vaapi":
        return EncoderChoice(name, {"rc_mode": "CQP", "qp": str(crf)}, 0, f"qp {crf}")
    return EncoderChoice(name, {}, threads, "the encoder's defaults (crf and preset are for x264/x265)")


def input_format(name: str) -> str | None:
    """The first of INPUT_FORMATS the encoder takes, or None (e.g. VA-API: only frames in GPU memory)."""
    import av

    formats = {f.name for f in av.Codec(name, "w").video_formats or ()}
    if not formats:  # the encoder does not say: I420, as for any FFmpeg video encoder of old
        return INPUT_FORMATS[0]
    return next((f for f in INPUT_FORMATS if f in formats), None)


def _open_failure(choice: EncoderChoice, size: tuple[int, int], rate: Fraction) -> str | None:
    """Why `choice` cannot encode here, or None: open it and encode one picture of the real size, in the format
    the writer would hand it (`input_format`)."""
    import av

    if choice.name not in av.codecs_available:
        return "is not in this PyAV/FFmpeg build"
    pix_fmt = input_format(choice.name)
    if pix_fmt is None:
        formats = ", ".join(f.name for f in av.Codec(choice.name, "w").video_formats)
        return f"takes only {formats} frames (in GPU memory), which PyAV cannot hand an encoder"
    try:
        ctx = av.CodecContext.create(choice.name, "w")
        ctx.width, ctx.height, ctx.pix_fmt = size[0], size[1], pix_fmt
        ctx.time_base, ctx.framerate = 1 / rate, rate
        ctx.options = dict(choice.options)
        ctx.open()
        # Some drivers open a session and fail only on the first picture (no free NVENC session, a hung device).
        picture = av.VideoFrame(size[0], size[1], pix_fmt)
        picture.pts = 0
        ctx.encode(picture)
        ctx.encode(None)
    except (ValueError, OSError, av.FFmpegError) as exc:  # PyAV's errors subclass these builtins
        return f"cannot open here ({_short(exc)})"
    return None


def _short(exc: BaseException) -> str:
    """FFmpeg's reason without PyAV's call echo: "Operation not permitted", not "[Errno 1] ...: 'avcodec_open2'"."""
    import av

    if isinstance(exc, av.FFmpegError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
