"""VideoSourceCalculator: frames from a camera, a video file or URL, an image, or a folder/glob of images."""
from __future__ import annotations

import glob
import os
import re
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from pipelines import Calculator, MediaSource, Output, SourceOpenError, Stop, register_calculator
from pipelines.paths import resolve
from pipelines.types import Frame

from ._live_capture import LatestFrameReader, Pacer, ffmpeg_reason, open_camera
from .network_stream import ReconnectPolicy, open_network_stream

LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
_CAMERA = re.compile(r"^\d{1,2}$")


def is_live_source(source: str) -> bool:
    """True for a camera index ("0") or a network URL: sources that run at their own pace and drop frames."""
    source = str(source).strip()
    return bool(_CAMERA.match(source)) or ("://" in source and source.split("://", 1)[0].lower() in LIVE_SCHEMES)


@register_calculator
class VideoSourceCalculator(Calculator):
    """Emits RGB frames from a camera, a video file or URL, an image, or a sorted folder/glob of images.

    A file's yuv420p pictures in BT.601 or BT.709, limited or full range (most H.264 and HEVC video) are sent as the
    decoder's planes with their encoding (calculators/io/decoded_planes.py): RGB is made only if a node reads
    `frame.image`. Other pictures are converted to RGB here.

    Timestamps are integer microseconds, strictly increasing: a file's own presentation times (a repeat is bumped
    by 1 us, with one warning); a network stream's, counted from 0 at its first frame, each reconnection
    starting at the wall-clock time it came back; a camera's monotonic clock from open; an image folder's
    `index * 1e6 / fps`. Live sources (camera, network URL) decode on a background thread that keeps only the
    newest frame, so the graph never falls behind them. A damaged file is decoded as far as it goes, then
    reported as a problem (the run completes, the CLI exits non-zero).

    A network stream (rtsp(s)://, http(s):// MJPEG, progressive or HLS, rtmp://, udp://, through FFmpeg) that
    drops, refuses or stalls (no data for `read_timeout_s`) is reconnected with exponential backoff and jitter,
    each loss and recovery logged as one line and shown as the node's status in the stats; after
    `reconnect_max_attempts` failures in a row the graph fails with an error naming the node and the URL (what
    was written before stays complete). A stream of known length (a file over HTTP) ends at its end.

    Ports:
        (source, no inputs) -> IMAGE (Frame)

    Example node:
        # Decode the clip; --source on the command line replaces it.
        - calculator: VideoSourceCalculator
          name: source
          outputs: {IMAGE: input_video}
          options: {source: assets/media/astronaut_pan.mp4, realtime: false}

        # An IP camera that may reboot: retry every 0.5 s, doubling up to 10 s, forever.
        - calculator: VideoSourceCalculator
          name: camera
          outputs: {IMAGE: input_video}
          options: {source: "rtsp://192.168.1.20:554/stream1", reconnect_max_delay_s: 10, read_timeout_s: 5}
    """

    threads_option = "threads"  # file decoding threads: a batch of several files at once gives each its share

    @dataclass(frozen=True)
    class Options:
        # "0".."9" camera; file or rtsp://, http(s):// URL; image; folder or glob of images. Relative paths: against
        # the graph's folder, then the graph libraries (the validator resolves them).
        source: MediaSource
        realtime: bool = False  # pace files and image folders at their frame rate, as a camera would
        max_frames: int = 0  # 0: every frame
        fps: float = 0.0  # frame rate where the source has none (image folders: 30; cameras: what they say)
        width: int = 0  # camera capture size; 0: the camera's default
        height: int = 0
        threads: int = 0  # file decoding threads (frame and slice threading): 0 one per core, 1 none
        # Network streams: on a drop, a refusal or a stall, wait reconnect_delay_s, doubling up to
        # reconnect_max_delay_s, each wait scaled by 1 +- reconnect_jitter; give up after reconnect_max_attempts
        # failures in a row (0: never). reconnect: false fails the graph at the first loss.
        reconnect: bool = True
        reconnect_delay_s: float = 0.5
        reconnect_max_delay_s: float = 10.0
        reconnect_jitter: float = 0.2
        reconnect_max_attempts: int = 0
        read_timeout_s: float = 10.0  # no data for this long (connecting or streaming) counts as a loss
        stream_options: dict = field(default_factory=dict)  # FFmpeg options for the URL: {rtsp_transport: udp}

        def __post_init__(self):
            if not str(self.source).strip():
                raise ValueError("source must name a camera index, a file, a URL, a folder or a glob; got ''")
            if self.max_frames < 0:
                raise ValueError(f"max_frames must be >= 0 (0 means all), got {self.max_frames}")
            if self.fps < 0:
                raise ValueError(f"fps must be >= 0 (0 means the source's own), got {self.fps}")
            if self.width < 0 or self.height < 0:
                raise ValueError(f"width and height must be >= 0 (0 means the camera default), "
                                 f"got {self.width}x{self.height}")
            if self.threads < 0:
                raise ValueError(f"threads must be >= 0 (0 means one per core), got {self.threads}")
            if not 0 < self.reconnect_delay_s <= self.reconnect_max_delay_s:
                raise ValueError("reconnect delays must satisfy 0 < reconnect_delay_s <= reconnect_max_delay_s, "
                                 f"got {self.reconnect_delay_s} and {self.reconnect_max_delay_s}")
            if not 0 <= self.reconnect_jitter < 1:
                raise ValueError(f"reconnect_jitter must be in [0, 1), got {self.reconnect_jitter}")
            if self.reconnect_max_attempts < 0:
                raise ValueError(f"reconnect_max_attempts must be >= 0 (0 means forever), "
                                 f"got {self.reconnect_max_attempts}")
            if self.read_timeout_s <= 0:
                raise ValueError(f"read_timeout_s must be > 0, got {self.read_timeout_s}")
            bad = [k for k, v in self.stream_options.items() if not isinstance(v, (str, int, float))]
            if bad:
                raise ValueError(f"stream_options values must be strings or numbers; not {', '.join(map(str, bad))}")

    IMAGE = Output[Frame]("IMAGE")

    # ------------------------------------------------------------------ open

    def open(self, ctx):
        opts = self.options
        # Built without the validator (Python API), a relative path is resolved the same way, from here.
        self._source = src = resolve(MediaSource, str(opts.source).strip(), None)
        self._count = 0  # frames emitted
        self._last_ts = -1
        self._warned_ts = False
        self._pacer = Pacer(max_late_s=0.5) if opts.realtime else None
        self._container = self._reader = self._network = None
        self._fps, self._total, self._live = 0.0, 0, False
        self._status = ""
        if _CAMERA.match(src):
            self._open_live(*open_camera(int(src), opts.width, opts.height, opts.fps), stall_s=5.0)
        elif is_live_source(src):
            self._open_network(src, ctx)
        elif os.path.isdir(src) or (any(c in src for c in "*?[") and not os.path.exists(src)):
            self._open_images(self._list_images(src))
        elif not os.path.exists(src):
            raise SourceOpenError(f"video source '{src}': file not found (looked in {os.path.abspath(src)})")
        else:
            import cv2

            if cv2.haveImageReader(src):
                self._open_images([src])
            else:
                self._open_file(src)

    def _open_live(self, reader: LatestFrameReader, fps: float, stall_s: float) -> None:
        self._reader, self._fps, self._live, self._stall_s = reader, fps or self.options.fps, True, stall_s
        self._last_frame_at = time.monotonic() + 5.0  # grace for a camera warming up or a stream buffering
        reader.start()

    def _open_network(self, src: str, ctx) -> None:
        opts = self.options
        policy = ReconnectPolicy(opts.reconnect, opts.reconnect_delay_s, opts.reconnect_max_delay_s,
                                 opts.reconnect_jitter, opts.reconnect_max_attempts)
        options = {str(k): str(v) for k, v in opts.stream_options.items()}
        reader, self._network = open_network_stream(src, ctx.node_name, policy, opts.read_timeout_s, options,
                                                    ctx.logger)
        # No stall watchdog here: the stream's own read timeout turns a stall into a reconnect.
        self._open_live(reader, opts.fps, stall_s=float("inf"))

    def _list_images(self, src: str) -> list[str]:
        if os.path.isdir(src):
            paths = [str(p) for p in Path(src).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
            if not paths:
                raise SourceOpenError(f"image source '{src}': no image files ({', '.join(IMAGE_SUFFIXES)}) "
                                      f"in {os.path.abspath(src)}")
        else:
            paths = [p for p in glob.glob(src, recursive=True) if os.path.isfile(p)]
            if not paths:
                raise SourceOpenError(f"image source '{src}': no files match the pattern "
                                      f"(looked in {os.path.abspath(os.path.dirname(src) or '.')})")
        return sorted(paths)

    def _open_images(self, paths: list[str]) -> None:
        self._images, self._next_image = paths, 0
        self._fps = self.options.fps or 30.0
        self._total = len(paths)

    def _open_file(self, src: str) -> None:
        import av

        try:
            container = av.open(src)
        except (av.FFmpegError, OSError) as exc:
            raise SourceOpenError(f"video source '{src}': not a video or image file that can be read "
                                  f"({ffmpeg_reason(exc)}); expected a video, an image, a folder of images, a camera "
                                  "index or a URL") from exc
        if not container.streams.video:
            container.close()
            raise SourceOpenError(f"video source '{src}': the file has no video stream "
                                  f"(streams: {', '.join(s.type for s in container.streams) or 'none'})")
        self._container = container
        stream = container.streams.video[0]
        # Frame and slice threading: several frames decode at once. The decoder is flushed at the end, so the
        # frames in flight still come out, in order.
        stream.thread_type = "AUTO"
        stream.thread_count = self.options.threads
        rate = stream.average_rate or stream.guessed_rate
        self._fps = float(rate) if rate else self.options.fps
        self._total = int(stream.frames or 0)
        self._time_base = stream.time_base
        self._ts_offset: int | None = None
        self._errors: list = []  # (frame index, reason) per damaged packet
        self._decoded_after_error = False
        self._frames = self._decode(container, stream)

    def _decode(self, container, stream):
        """Yield every frame that decodes; a damaged packet is recorded and skipped, never fatal."""
        import av

        codec, packets = stream.codec_context, container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.FFmpegError as exc:  # the container itself is broken: flush what the decoder holds
                self._errors.append((self._count, ffmpeg_reason(exc)))
                packet = None
            try:
                frames = codec.decode(packet)
                if self._errors and packet is not None and packet.size:
                    self._decoded_after_error = True
            except av.FFmpegError as exc:
                self._errors.append((self._count, ffmpeg_reason(exc)))
                frames = []
            yield from frames
            if packet is None:
                return

    # ------------------------------------------------------------------ process

    @classmethod
    def may_block(cls, options) -> bool:
        """A camera or network stream waits for its next frame; a paced file or folder sleeps until it is due."""
        return bool(options.realtime) or is_live_source(options.source)

    def process(self, ctx):
        if self.options.max_frames and self._count >= self.options.max_frames:
            return Stop
        if self._reader is not None:
            return self._process_live(ctx)
        if self._container is not None:
            return self._process_file(ctx)
        return self._process_image(ctx)

    def _process_file(self, ctx):
        frame = next(self._frames, None)
        if frame is None:
            self._report_damage(ctx)
            return Stop
        if frame.pts is not None:
            ts = round(Fraction(frame.pts) * self._time_base * 1_000_000)
            if self._ts_offset is None:
                # Edit lists can start a stream before zero; graph timestamps cannot be negative.
                self._ts_offset = max(0, -ts)
            ts += self._ts_offset
        else:
            ts = self._last_ts + (round(1e6 / self._fps) if self._fps else 1)
        if self._pacer is not None and not self._pacer.wait(ts, lambda: ctx.stopping):
            return Stop
        from .decoded_planes import i420_of

        planes = i420_of(frame)  # the decoder's planes as they are: RGB only when a node reads frame.image
        if planes is None:
            return self._emit(ctx, frame.to_ndarray(format="rgb24"), ts, self._count)
        return self._emit(ctx, None, ts, self._count, planes=planes)

    def _report_damage(self, ctx) -> None:
        src, n = self._source, self._count
        if self._errors and self._decoded_after_error:
            at, why = self._errors[0]
            ctx.report_problem(f"{src}: {len(self._errors)} damaged packet(s) could not be decoded, the first at "
                               f"frame {at}: {why}; the other {n} frames were processed")
        elif self._errors:
            ctx.report_problem(f"{src}: decoding stopped at frame {n}: {self._errors[0][1]}; "
                               "the frames before it were processed")
        elif self._total and n < self._total:
            ctx.report_problem(f"{src}: decoding stopped at frame {n}: the file ends early (its index lists "
                               f"{self._total} frames); the frames before it were processed")

    def _process_image(self, ctx):
        import cv2

        while self._next_image < len(self._images):
            # Index and timestamp follow the file's place in the list, so frame N is file N even after a skip.
            index = self._next_image
            self._next_image += 1
            path = self._images[index]
            bgr = cv2.imread(path, cv2.IMREAD_COLOR)
            ts = round(index * 1e6 / self._fps)
            if bgr is None:
                ctx.report_problem(f"image source '{self._source}': '{path}' could not be decoded; skipped")
                continue
            if self._pacer is not None and not self._pacer.wait(ts, lambda: ctx.stopping):
                return Stop
            return self._emit(ctx, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), ts, index, source=path)
        return Stop

    def _process_live(self, ctx):
        reader = self._reader
        deadline = time.monotonic() + 0.5  # hand the thread back now and then; the runner calls again
        while not ctx.stopping:
            self._publish_status(ctx)
            item = reader.take(timeout=0.05)
            if item is not None:
                self._last_frame_at = time.monotonic()
                image, ts, index = item
                return self._emit(ctx, image(), ts, index)
            if reader.error is not None:
                self._publish_status(ctx)  # "failed: ...", for the stats after the run
                raise reader.error
            if reader.ended:
                self._publish_status(ctx)  # "ended" may have come since the check above
                return Stop
            idle = time.monotonic() - self._last_frame_at
            if idle > self._stall_s:
                raise SourceOpenError(f"{reader.name}: no frame for {idle:.0f} s; unplugged, stopped, or taken "
                                      "by another program?")
            if time.monotonic() > deadline:
                return None
        return Stop

    def _publish_status(self, ctx) -> None:
        if self._network is not None and self._network.status != self._status:
            self._status = self._network.status
            ctx.set_status(self._status)

    def _emit(self, ctx, image, ts: int, index: int, source: str | None = None, planes=None):
        if ts <= self._last_ts:
            if not self._warned_ts:
                self._warned_ts = True
                ctx.logger.warning("%s: timestamp %d us at frame %d does not increase (previous %d); bumping it "
                                   "to previous + 1 (warned once)", self._source, ts, index, self._last_ts)
            ts = self._last_ts + 1
        self._last_ts = ts
        self._count += 1
        fps = self._network.fps or self._fps if self._network is not None else self._fps
        i420, encoding = planes if planes is not None else (None, None)
        frame = Frame(image, index=index, source=source or self._source, live=self._live, fps=fps,
                      total_frames=self._total, i420=i420, encoding=encoding)
        ctx.send(self.IMAGE, frame, timestamp=ts)

    def close(self, ctx):
        if self._reader is not None:
            # A network reader blocked in a stalled read closes its own connection when the read times out.
            self._reader.stop(timeout=1.0 if self._network is not None else 3.0)
            self._reader = None
        if self._container is not None:
            self._frames = iter(())
            self._container.close()
            self._container = None
