"""VideoWriterCalculator: frames to an H.264 MP4 that plays even if the run is killed, optionally with the
audio of a media file copied in step."""
from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from pipelines import Calculator, Input, MediaSource, OutputFile, PipelineError, register_calculator
from pipelines.errors import OutputWriteError
from pipelines.types import Frame
from pipelines.yuv import BT601, rgb_to_i420

from .audio_copy import AudioCopier
from .video_encoder import MAX_THREADS, THREAD_TYPES, X264_PRESETS, choose_encoder, codec_problem

log = logging.getLogger("framegraph.io.video_writer")

#: Containers written as fragmented MP4: every fragment is complete on disk, so a killed run leaves a file that
#: plays up to the last fragment. A plain MP4 writes its index only at the end and is unplayable without it.
FRAGMENTED = {".mp4", ".m4v", ".mov"}
FRAGMENT_US = 1_000_000  # at most this much video is lost when the process dies


class VideoWriteError(PipelineError, OSError):
    """The writer cannot be set up as configured (encoder, container, frame size, audio_from). A failing write
    (full disk, permission) is an `OutputWriteError` instead."""


@register_calculator
class VideoWriterCalculator(Calculator):
    """Encodes every frame into a video file: same size, frame rate and frame count as the input stream.

    H.264 (libx264, yuv420p) in fragmented MP4, constant frame rate, one output frame per input frame. The file is
    created on the first frame (its size is known then); a run with no frames writes nothing. Odd sizes are padded
    to even with the edge pixels (yuv420p needs even sizes).

    Colours: the first frame decides the stream's colour encoding, tagged in the file (matrix, primaries, transfer,
    range) so players show the colours meant. A frame holding the decoder's planes is encoded from them as they are
    (no conversion), so the stream takes their encoding: BT.601 or BT.709, limited or full range. A frame holding
    RGB makes it BT.601 limited range. A later frame in another encoding (RGB, or planes in another encoding) is
    converted into the stream's: RGB -> BT.601 limited with OpenCV's RGB->I420, other targets with swscale.

    Encoder (defaults: codec h264 = libx264, preset veryfast, crf 23, threads 0 = x264 picks, frame threads:
    encode() returns while x264 works, a few frames behind; `thread_type: slice` keeps each frame's delay
    short instead): `--set video_writer.preset=ultrafast` trades size for speed (docs/benchmarks.md measures the
    presets). `codec: auto` or `h264_nvenc` / `h264_qsv` / `h264_vaapi` uses that hardware encoder when the
    FFmpeg build has it and it opens on this machine, else libx264 with one log line saying why
    (`allow_fallback: false`: an error instead); see video_encoder.py.

    A write that fails (full disk, permission) raises `OutputWriteError` ("cannot write out.mp4: no space left
    on device"); the file is then cut back to the last packet written in full, which in fragmented MP4 is the
    end of a fragment, so what was written plays to its end.

    With `audio_from`, every audio stream of that file is copied in (remuxed where the container takes the
    codec, else re-encoded to AAC), in step with the encoded video and up to its end: a run stopped early, or
    killed (up to the last fragment), has its audio up to that point. Audio keeps its offset from that file's
    first video frame, so it stays in sync with its own video. No audio there (or a camera, URL, folder): none.

    Ports:
        IMAGE (Frame) -> (sink, no outputs)

    Example node:
        # Keep the annotated video; --output on the command line sets the path and enables the node.
        - calculator: VideoWriterCalculator
          name: writer
          inputs: {IMAGE: output_video}
          options: {path: out/annotated.mp4, crf: 23, preset: veryfast, audio_from: clip.mp4}
    """

    @dataclass(frozen=True)
    class Options:
        path: OutputFile
        codec: str = "h264"  # h264 (libx264), hevc (libx265), auto, h264_nvenc/_qsv/_vaapi, or an FFmpeg encoder
        crf: int = 23  # quality: 0 lossless .. 51 worst; 18-28 is the useful range (hardware: cq/qp)
        preset: str = "veryfast"  # x264/x265 speed preset, ultrafast .. placebo (mapped for hardware encoders)
        threads: int = 0  # encoder threads; 0: the encoder picks
        thread_type: str = "frame"  # frame: x264 encodes several frames at once; slice: each frame split (less delay)
        allow_fallback: bool = True  # a hardware codec that cannot open here falls back to libx264 (logged)
        fps: float = 0.0  # 0: the frames' own fps (Frame.fps), or 25 when they have none
        audio_from: MediaSource = MediaSource("")  # a media file whose audio streams are copied in ("" for none)
        format: str = ""  # FFmpeg container name (mp4, matroska); "" guesses it from the path's extension

        def __post_init__(self):
            if not str(self.path).strip():
                raise ValueError("path must name the output video file, e.g. out/annotated.mp4; got ''")
            if not 0 <= self.crf <= 51:
                raise ValueError(f"crf must be 0..51 (lower is better quality), got {self.crf}")
            if self.preset not in X264_PRESETS:
                raise ValueError(f"preset must be one of {', '.join(X264_PRESETS)}; got '{self.preset}'")
            if not 0 <= self.threads <= MAX_THREADS:
                raise ValueError(f"threads must be 0..{MAX_THREADS} (0: the encoder picks), got {self.threads}")
            if self.thread_type not in THREAD_TYPES:
                raise ValueError(f"thread_type must be one of {', '.join(THREAD_TYPES)}; got '{self.thread_type}'")
            if not self.codec.strip():
                raise ValueError("codec must name an encoder: h264 (the default), hevc, auto or an FFmpeg encoder")
            if self.fps < 0:
                raise ValueError(f"fps must be >= 0 (0 means the source's), got {self.fps}")

    IMAGE = Input[Frame]("IMAGE")

    @classmethod
    def check(cls, options: Options) -> list[str]:
        """The codec against this PyAV/FFmpeg build (whether a hardware encoder opens is known only at start)."""
        problem = codec_problem(options.codec, options.allow_fallback)
        return [problem] if problem else []

    def open(self, ctx):
        self._container = self._stream = None
        self._size: tuple[int, int] | None = None  # (width, height) of the input
        self._count = 0
        self._arrived = False  # a frame came, even if the file could not be started for it
        self._written = 0  # bytes on disk after the last packet muxed in full
        self._error: OutputWriteError | None = None  # the first failed write; the file takes no more
        self._path = Path(self.options.path)
        # What decides fragmenting and the audio codecs: the extension, or the format when one is named.
        self._kind = f".{self.options.format}" if self.options.format else self._path.suffix.lower()
        problem = codec_problem(self.options.codec, self.options.allow_fallback)
        if problem:
            raise VideoWriteError(f"video writer '{self._path}': {problem}")
        import av

        if self.options.format and self.options.format not in av.formats_available:
            raise VideoWriteError(f"video writer '{self._path}': format '{self.options.format}' is not in this "
                                  "PyAV/FFmpeg build; use format: mp4, or leave it empty to follow the extension")
        self._audio = AudioCopier.open(self.options.audio_from, self._path) if self.options.audio_from else None

    def process(self, ctx):
        frame: Frame = ctx.get(self.IMAGE)
        self._arrived = True
        if self._error is not None:  # on_error: skip goes on after a failed write; the file cannot
            raise OutputWriteError(str(self._error))
        if self._container is None:
            self._start(frame)
        if (frame.width, frame.height) != self._size:
            raise VideoWriteError(f"video writer '{self._path}': frame {frame.index} is {frame.width}x"
                                  f"{frame.height}, expected {self._size[0]}x{self._size[1]} like the first frame; "
                                  "a video has one size (resize before the writer)")
        import av

        # A frame holding planes in the stream's encoding (the decoder's, or the overlay's drawn copy) is encoded
        # from them: no conversion. They are even-sized, so never padded, and only read (encoders copy their input
        # pictures).
        i420 = frame.yuv420p
        if i420 is None or frame.yuv420p_encoding != self._encoding:
            image = frame.image  # planes in another encoding: through RGB (theirs), into the stream's
            pad_h, pad_w = self._stream.height - frame.height, self._stream.width - frame.width
            if pad_h or pad_w:
                image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")  # a copy: input stays as is
            # BT.601 limited range by OpenCV's RGB->I420, like swscale's at a tenth of the cost (0.4 ms against
            # 3.5 ms at 720p): this conversion was a quarter of the writer's time. Other encodings by swscale.
            i420 = rgb_to_i420(image, self._encoding)
        out = encoder_frame(i420, self._stream.pix_fmt)
        out.pts = self._count  # constant frame rate: the time base is one frame
        self._count += 1
        self._mux_video(self._stream.encode(out))

    def _mux_video(self, packets) -> None:
        # Audio follows the video the encoder has actually released (x264 holds back a few dozen frames), so
        # the muxer's interleaving queue stays short and each fragment on disk has both. Read the times before
        # mux(), which rebases packets to the container's time base.
        ends = [float(p.pts * p.time_base) + 1 / self._fps for p in packets if p.pts is not None]
        self._mux(packets)
        if self._audio is not None and ends:
            self._audio.write_until(self._mux, max(ends))

    def _mux(self, packets) -> None:
        """Mux a packet or a list of them; a failure becomes OutputWriteError naming the file."""
        import av

        try:
            self._container.mux(packets)
        except (OSError, av.FFmpegError) as exc:
            raise self._write_failed(exc) from exc
        if packets:  # flush_packets: what the muxer took is on disk, and in fragmented MP4 ends a fragment
            try:
                self._written = os.stat(self._path).st_size
            except FileNotFoundError:
                pass  # PyAV holds the first packets back until it can write the header

    def _write_failed(self, exc: BaseException) -> OutputWriteError:
        reason = getattr(exc, "strerror", None) or str(exc)
        error = OutputWriteError(f"cannot write {self._path}: {reason[:1].lower()}{reason[1:]}")
        error.errno = exc.errno if isinstance(exc, OSError) else None
        self._error = self._error or error
        return error

    def _start(self, frame: Frame) -> None:
        import av

        opts = self.options
        fps = opts.fps or frame.fps or 25.0
        # 29.97 arrives as a float; the container wants the exact NTSC ratio 30000/1001.
        rate = Fraction(fps).limit_denominator(1001)
        width, height = frame.width + frame.width % 2, frame.height + frame.height % 2
        if (width, height) != (frame.width, frame.height):
            log.info("%s: %dx%d padded to %dx%d (yuv420p needs even sizes)", self._path, frame.width,
                     frame.height, width, height)
        encoder = choose_encoder(opts.codec, opts.allow_fallback, opts.preset, opts.crf, opts.threads,
                                 (width, height), rate, f"video writer '{self._path}'")
        # Hand every finished fragment to the OS at once; FFmpeg would otherwise hold 256 KiB in its own buffer,
        # which a killed process takes with it (a short clip would leave only the 28-byte file type box).
        container_options = {"flush_packets": "1"}
        if self._kind in FRAGMENTED:
            container_options.update(movflags="frag_keyframe+empty_moov+default_base_moof",
                                     frag_duration=str(FRAGMENT_US))
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            container = av.open(str(self._path), mode="w", format=opts.format or None, options=container_options)
        except OSError as exc:  # PyAV's errors for a missing folder or a refused file are OSErrors too
            raise self._write_failed(exc) from exc
        except (ValueError, av.FFmpegError) as exc:
            raise VideoWriteError(f"video writer '{self._path}': cannot create the file ({exc}); the extension "
                                  "must name a container (.mp4, .mkv), or set format: mp4") from exc
        try:
            stream = container.add_stream(encoder.name, rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, encoder.pix_fmt
            stream.time_base = 1 / rate
            cc = stream.codec_context
            # Tag what the pictures hold (the first frame's encoding, every other frame converted into it), or
            # players guess (BT.709 for HD, BT.601 for SD, limited range) and shift colours. Primaries and transfer
            # follow the matrix: SMPTE 170M for BT.601, BT.709 for BT.709.
            encoding = frame.yuv420p_encoding or BT601
            cc.color_range, cc.colorspace = encoding.av_color_range, encoding.av_colorspace
            cc.color_primaries = cc.color_trc = encoding.av_colorspace
            cc.thread_count = encoder.threads  # 0: the encoder picks, as in a plain PyAV loop
            # Frame threads let encode() return while x264 works on earlier frames, so the rest of the graph
            # runs beside it: 720p face_detect 17% faster here than PyAV's slice threads (docs/benchmarks.md).
            cc.thread_type = opts.thread_type.upper()
            cc.gop_size = max(1, round(2 * fps))  # a keyframe every 2 s: quick seeking, quick recovery from damage
            cc.options = dict(encoder.options)
            if self._audio is not None:
                self._audio.add_streams(container, self._kind)
        except (ValueError, av.FFmpegError) as exc:
            container.close()
            raise VideoWriteError(f"video writer '{self._path}': cannot set up encoder '{encoder.name}': "
                                  f"{exc}") from exc
        self._container, self._stream, self._size = container, stream, (frame.width, frame.height)
        self._encoding = encoding
        self._fps = float(rate)
        log.info("writing %s: %dx%d at %s fps with %s (%s%s), %s", self._path, width, height, rate, encoder.name,
                 encoder.settings, f", {encoder.threads} threads" if encoder.threads else "", encoding)

    def close(self, ctx):
        audio, self._audio = self._audio, None
        if self._container is None:
            if self._error is None and not self._arrived:
                log.info("%s: no frames arrived; no file written", self._path)
            return audio.close() if audio is not None else None
        failed = self._error is not None  # then only close what is there: the error was reported already
        try:
            if not failed:
                self._mux_video(self._stream.encode(None))  # the frames still in the encoder's lookahead
                if audio is not None:
                    audio.write_until(self._mux, self._count / self._fps, final=True)
        except BaseException:
            failed = True
            raise
        finally:
            if audio is not None:
                audio.close()
            self._finish(quiet=failed)
        if not failed:
            log.info("wrote %s: %d frames%s", self._path, self._count,
                     f", audio from {audio.source}" if audio else "")

    def _finish(self, quiet: bool) -> None:
        """Write the trailer and close the file; `quiet` after an earlier error, which must stay the one reported.
        After any failed write, cut the file back to what was written in full."""
        import av

        container, self._container = self._container, None
        try:
            container.close()
        except (OSError, av.FFmpegError) as exc:
            if not quiet:
                raise self._write_failed(exc) from exc
            log.debug("%s: closing after the error also failed: %s", self._path, exc)
        finally:
            if self._error is not None:
                self._cut_to_written()

    def _cut_to_written(self) -> None:
        try:
            st = os.stat(self._path)
            if stat.S_ISREG(st.st_mode) and st.st_size > self._written:  # not /dev/full or a pipe
                os.truncate(self._path, self._written)
                log.info("%s: cut back to %d bytes, the last packet written in full", self._path, self._written)
        except FileNotFoundError:
            pass  # never created: PyAV opens the file with the first packet
        except OSError as exc:
            log.warning("%s: cannot cut the file back to its last whole packet: %s", self._path, exc)


def encoder_frame(i420: np.ndarray, pix_fmt: str):
    """A PyAV frame of `i420` (OpenCV's I420 layout: Y rows, then U, then V) as `pix_fmt` (yuv420p or nv12)."""
    import av

    if pix_fmt == "nv12":  # Quick Sync: the same Y plane, then U and V interleaved
        height, width = i420.shape[0] * 2 // 3, i420.shape[1]
        chroma = i420[height:].reshape(2, height // 2, width // 2)
        nv12 = np.empty_like(i420)
        nv12[:height] = i420[:height]
        nv12[height:].reshape(height // 2, width // 2, 2)[:] = np.moveaxis(chroma, 0, -1)
        return av.VideoFrame.from_ndarray(nv12, format="nv12")
    # The I420 array is never written again (new, or a frame's planes, read-only), so the frame may wrap it
    # instead of copying it in (from_ndarray copies plane by plane: 0.5 ms at 1080p); the encoded bytes are the
    # same. PyAV 18 wraps
    # heights of 4n+2 as 4n (the planes then start in the wrong place): those are copied.
    frame = av.VideoFrame.from_numpy_buffer(i420, format="yuv420p")
    if frame.height != i420.shape[0] * 2 // 3:
        frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
    return frame
