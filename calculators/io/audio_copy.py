"""The audio streams of a media file copied into the video writer's output, in step with its video."""
from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

from pipelines import MediaSource
from pipelines.paths import resolve

log = logging.getLogger("framegraph.io.video_writer")

#: Audio codecs copied into .mp4 as they are: what MP4 players decode. Others are re-encoded to AAC.
MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac"}
AAC_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}  # other channel counts are downmixed to stereo
#: Copied audio this far before the first video frame is kept: AAC's priming packets, without which it decodes wrong.
PRIMING_S = 0.1


class AudioCopier:
    """The audio streams of one media file, copied into an output container as its video advances."""

    def __init__(self, source: str, input_container, streams: list):
        self.source, self._input, self._in_streams = source, input_container, streams
        # The output's time 0 is this file's first video frame; audio keeps its offset from it (A/V sync).
        video = input_container.streams.video[0] if input_container.streams.video else None
        self._zero = float(video.start_time * video.time_base) if video and video.start_time is not None else 0.0
        self._packets = input_container.demux(*streams)
        self._pending = None  # the first packet not yet due
        self._out: dict[int, tuple] = {}  # input stream index -> (output stream, re-encoded?)
        self._next_pts: dict[int, int] = {}  # re-encoded streams: the next frame's first sample

    @classmethod
    def open(cls, source: str, out_path: Path) -> AudioCopier | None:
        import av

        from .video_source import is_live_source
        from .video_writer import VideoWriteError

        path = resolve(MediaSource, str(source).strip(), None)
        if is_live_source(path) or os.path.isdir(path) or any(c in path for c in "*?["):
            log.debug("%s: audio_from '%s' is a camera, stream, folder or glob; no audio copied", out_path, path)
            return None
        if not os.path.isfile(path):
            raise VideoWriteError(f"video writer '{out_path}': audio_from '{source}': file not found (looked in "
                                  f"{os.path.abspath(path)}); name a media file with audio, or leave it empty")
        try:
            container = av.open(path)
        except (OSError, av.FFmpegError) as exc:
            log.warning("%s: cannot read audio from '%s' (%s); writing video only", out_path, path, exc)
            return None
        if container.streams.audio:
            return cls(path, container, list(container.streams.audio))
        log.debug("%s: '%s' has no audio stream; writing video only", out_path, path)
        container.close()
        return None

    def add_streams(self, container, suffix: str) -> None:
        # FFmpeg's MP4 muxer also takes PCM and Vorbis, which players do not: those are re-encoded.
        accepted = MP4_AUDIO if suffix in (".mp4", ".m4v") else container.supported_codecs
        import av

        for stream in self._in_streams:
            codec = stream.codec_context.codec.canonical_name  # "mp3", not the decoder's "mp3float"
            reencode = codec not in accepted  # e.g. PCM or Vorbis into MP4: AAC plays wherever MP4 does
            try:
                if not reencode:
                    out = container.add_stream_from_template(stream)
                else:
                    out = container.add_stream("aac", rate=stream.codec_context.sample_rate)
                    # By channel count: a layout without order ("1 channels", PCM in MKV) is refused by AAC.
                    out.layout = AAC_LAYOUTS.get(stream.codec_context.layout.nb_channels, "stereo")
            except (ValueError, av.FFmpegError) as exc:  # one odd stream must not cost the video
                log.warning("%s: audio stream %d (%s) skipped: %s", self.source, stream.index, codec, exc)
                continue
            self._out[stream.index] = (out, reencode)
            log.info("%s: audio stream %d (%s) %s", self.source, stream.index, codec,
                     "re-encoded to AAC" if reencode else "copied")

    def write_until(self, mux, until_s: float, final: bool = False) -> None:
        """Mux (with `mux(packets)`) every packet that starts before `until_s` (output seconds); with `final`,
        flush the encoders."""
        import av

        while self._out:
            packet, self._pending = self._pending, None
            try:
                packet = next(self._packets, None) if packet is None else packet
            except av.FFmpegError as exc:  # damaged audio must not cost the video
                log.warning("%s: audio demuxing stopped: %s", self.source, exc)
                packet = None
            if packet is None:
                break
            if packet.pts is None or not packet.size:
                continue
            start = float(packet.pts * packet.time_base) - self._zero
            if start >= until_s:
                self._pending = packet
                break
            self._copy(mux, packet, start)
        if final:
            for out, reencode in self._out.values():
                if reencode:  # stream.encode, not codec_context.encode: only it tags packets with their stream
                    mux(out.encode(None))

    def _copy(self, mux, packet, start: float) -> None:
        out, reencode = self._out[packet.stream.index]
        if not reencode:
            end = start + float((packet.duration or 0) * packet.time_base)
            if end < -PRIMING_S:
                return  # long before the first video frame
            shift = round(self._zero / packet.time_base)
            packet.pts, packet.dts = packet.pts - shift, None if packet.dts is None else packet.dts - shift
            packet.stream = out
            return mux(packet)
        for frame in packet.decode():
            if frame.pts is None or float(frame.pts * frame.time_base) < self._zero:
                continue  # before the first video frame: nothing to play it against
            # Samples counted, not each frame's time: MKV's 1 ms time base would make frames overlap (refused).
            next_pts = self._next_pts.get(packet.stream.index)
            if next_pts is None:
                next_pts = round((float(frame.pts * frame.time_base) - self._zero) * frame.sample_rate)
            frame.pts, frame.time_base = next_pts, Fraction(1, frame.sample_rate)
            self._next_pts[packet.stream.index] = next_pts + frame.samples
            mux(out.encode(frame))

    def close(self) -> None:
        self._out.clear()
        self._input.close()
