"""VideoWriterCalculator's encoder choices: codec, preset, crf, threads and the hardware fallback, read back from
the files written (x264 writes its settings into the stream) and with real hardware encoders failing to open."""
import logging
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from pipelines import CalculatorError, Graph, GraphValidationError, load_graph
from pipelines.testing import CalculatorRunner
from pipelines.types import Frame

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")

from calculators.io.video_encoder import HARDWARE_H264, INPUT_FORMATS, input_format  # noqa: E402
from calculators.io.video_writer import encoder_frame  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
LOGGER = "framegraph.io.video_writer"


def moving_frames(width=160, height=120, count=12, seed=0) -> list[Frame]:
    """A textured picture that moves: enough detail for presets and crf to change the size of the file."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 255, (height, width * 2, 3), dtype=np.uint8), (5, 5), 0)
    return [Frame(np.ascontiguousarray(base[:, 3 * i:3 * i + width]), index=i, fps=25.0) for i in range(count)]


def write(path: Path, frames: list[Frame], **options) -> Path:
    opts = ", ".join(f"{k}: {v}" for k, v in {"path": f"'{path}'", **options}.items())
    CalculatorRunner(f"calculator: VideoWriterCalculator\noptions: {{{opts}}}").run(
        {"IMAGE": [(i * 40_000, f) for i, f in enumerate(frames)]})
    return path


def x264_settings(path: Path) -> dict[str, str]:
    """The settings x264 wrote into the stream (its SEI: "x264 - core N - ... options: cabac=1 ref=3 ...")."""
    data = path.read_bytes()
    match = re.search(rb"x264 - core \d+.*? options: ([^\x00]*)", data)
    assert match, f"{path} has no x264 settings: not encoded by libx264"
    return dict(item.split("=", 1) for item in match.group(1).decode().split() if "=" in item)


def opens_here(encoder: str) -> bool:
    if encoder not in av.codecs_available:
        return False
    try:
        ctx = av.CodecContext.create(encoder, "w")
        ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = 64, 64, "yuv420p", Fraction(1, 25)
        ctx.open()
        return True
    except (ValueError, OSError, av.FFmpegError):
        return False


def test_defaults_reach_x264(tmp_path):
    s = x264_settings(write(tmp_path / "default.mp4", moving_frames(count=3)))
    assert s["crf"] == "23.0" and s["subme"] == "2" and s["ref"] == "1"  # veryfast: subme 2, one reference


def test_preset_crf_and_threads_reach_x264(tmp_path):
    # 320x240: x264 gives a slice thread no fewer than 4 macroblock rows, so smaller pictures get fewer threads
    frames = moving_frames(320, 240, count=3)
    s = x264_settings(write(tmp_path / "fast.mp4", frames, preset="ultrafast", crf=30, threads=3))
    assert s["crf"] == "30.0" and s["threads"] == "3"
    assert s["cabac"] == "0" and s["subme"] == "0" and s["me"] == "dia"  # what only ultrafast turns off


@pytest.mark.parametrize("thread_type, sliced", [("frame", "0"), ("slice", "1")])
def test_thread_type_reaches_x264_and_every_frame_is_written(tmp_path, thread_type, sliced):
    # Frame threads hold frames back inside x264; closing must still drain every one of them into the file.
    frames = moving_frames(320, 240, count=20)
    path = write(tmp_path / f"{thread_type}.mp4", frames, thread_type=thread_type, threads=3)
    s = x264_settings(path)
    assert s["sliced_threads"] == sliced and s["threads"] == "3"
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == len(frames)


def test_preset_and_crf_change_the_size_as_expected(tmp_path):
    frames = moving_frames(count=12)
    size = {name: write(tmp_path / f"{name}.mp4", frames, **opts).stat().st_size for name, opts in {
        "veryfast": {}, "ultrafast": {"preset": "ultrafast"}, "crf18": {"crf": 18}, "crf35": {"crf": 35}}.items()}
    assert size["ultrafast"] > size["veryfast"], size  # same crf, less compression effort: a bigger file
    assert size["crf18"] > size["veryfast"] > size["crf35"], size


@pytest.mark.parametrize("height", [120, 122])  # 4n and 4n+2 rows: PyAV wraps the second wrongly, so it is copied
def test_lossless_output_is_exactly_the_i420_of_the_input(tmp_path, height):
    frames = moving_frames(width=102, height=height, count=4)  # odd width too: padded to 102 -> even already
    out = write(tmp_path / "lossless.mp4", frames, crf=0)
    with av.open(str(out)) as container:
        decoded = [f.to_ndarray(format="yuv420p") for f in container.decode(video=0)]
    expected = [cv2.cvtColor(f.image, cv2.COLOR_RGB2YUV_I420) for f in frames]
    assert len(decoded) == 4 and all(np.array_equal(a, b) for a, b in zip(decoded, expected, strict=True))


@pytest.mark.parametrize("height", [120, 122])
def test_pictures_reach_the_encoder_unchanged_as_i420_and_as_nv12(height):
    i420 = cv2.cvtColor(moving_frames(width=102, height=height, count=1)[0].image, cv2.COLOR_RGB2YUV_I420)
    for pix_fmt in INPUT_FORMATS:
        frame = encoder_frame(i420, pix_fmt)
        assert frame.format.name == pix_fmt and (frame.width, frame.height) == (102, height)
        assert np.array_equal(frame.to_ndarray(format="yuv420p"), i420), pix_fmt  # NV12 -> I420 is a reshuffle


def test_each_encoder_gets_a_picture_format_it_takes():
    assert input_format("libx264") == "yuv420p"
    if "h264_qsv" in av.codecs_available:
        assert input_format("h264_qsv") == "nv12"  # Quick Sync takes no I420: opening with it would always fail
    if "h264_nvenc" in av.codecs_available:
        assert input_format("h264_nvenc") == "yuv420p"


@pytest.mark.parametrize("option, message", [
    ("preset: quick", "preset must be one of ultrafast, superfast, veryfast, faster, fast, medium, slow, slower, "
                      "veryslow, placebo; got 'quick'"),
    ("threads: -1", r"threads must be 0..128 \(0: the encoder picks\), got -1"),
    ("crf: 52", "crf must be 0..51"),
    ("thread_type: auto", "thread_type must be one of frame, slice; got 'auto'"),
    ("codec: ''", "codec must name an encoder"),
    ("codec: h265x", "codec 'h265x': encoder 'h265x' is not in this PyAV/FFmpeg build; use h264"),
    ("codec: aac", "encoder 'aac' is not a video encoder"),
])
def test_bad_options_are_one_line_errors_at_load_time(tmp_path, option, message):
    with pytest.raises(GraphValidationError, match=message) as info:
        Graph.from_string(f"""
inputs: [video]
nodes:
  - calculator: VideoWriterCalculator
    name: video_writer
    inputs: {{IMAGE: video}}
    options: {{path: '{tmp_path / "x.mp4"}', {option}}}
""")
    assert 'node "video_writer"' in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("graph", sorted(p.name for p in (REPO / "graphs").glob("*.yaml")))
def test_set_reaches_the_writer_of_every_built_in_graph(graph):
    config = load_graph(REPO / "graphs" / graph, overrides=[
        "video_writer.enabled=true", "video_writer.preset=ultrafast", "video_writer.threads=2", "video_writer.crf=28",
        "video_writer.codec=auto"])
    options = next(n.options for n in Graph(config).plan.nodes if n.name == "video_writer")
    assert (options.preset, options.threads, options.crf, options.codec) == ("ultrafast", 2, 28, "auto")


def hardware_that_fails_here() -> list[str]:
    return [e for e in HARDWARE_H264 if e in av.codecs_available and not opens_here(e)]


@pytest.mark.parametrize("encoder", HARDWARE_H264)
def test_hardware_codec_that_cannot_open_falls_back_to_x264_with_one_warning(tmp_path, caplog, encoder):
    if opens_here(encoder):
        pytest.skip(f"{encoder} opens on this machine: nothing to fall back from")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        out = write(tmp_path / "hw.mp4", moving_frames(count=3), codec=encoder, preset="ultrafast", crf=30)
    assert x264_settings(out)["crf"] == "30.0" and x264_settings(out)["subme"] == "0"  # x264 with the same settings
    lines = [r for r in caplog.records if encoder in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING, [r.getMessage() for r in lines]
    why = "is not in this PyAV/FFmpeg build" if encoder not in av.codecs_available else "cannot open here ("
    assert why in lines[0].getMessage() and lines[0].getMessage().endswith("using libx264")


def test_auto_tries_every_hardware_encoder_then_says_why_once(tmp_path, caplog):
    if any(opens_here(e) for e in HARDWARE_H264):
        pytest.skip("a hardware H.264 encoder opens on this machine; auto uses it")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        out = write(tmp_path / "auto.mp4", moving_frames(count=3), codec="auto")
    assert x264_settings(out)["crf"] == "23.0"
    lines = [r.getMessage() for r in caplog.records if "codec auto" in r.getMessage()]
    assert len(lines) == 1 and all(e in lines[0] for e in HARDWARE_H264) and lines[0].endswith("using libx264")


def test_hardware_codec_without_fallback_is_an_error_naming_the_file(tmp_path):
    failing = [e for e in hardware_that_fails_here()]
    if not failing:
        pytest.skip("every hardware H.264 encoder of this PyAV build opens here")
    out = tmp_path / "hw.mp4"
    with pytest.raises(CalculatorError, match=rf"video writer '{re.escape(str(out))}': {failing[0]} cannot open here "
                                              r"\(.+\); use codec: h264 \(libx264\) or auto, or set allow_fallback"):
        write(out, moving_frames(count=3), codec=failing[0], allow_fallback="false")
    assert not out.exists()


def test_hardware_codec_missing_from_the_build_without_fallback_fails_validation(tmp_path):
    missing = [e for e in HARDWARE_H264 if e not in av.codecs_available]
    if not missing:
        pytest.skip("this PyAV build has every hardware H.264 encoder")
    with pytest.raises(GraphValidationError, match=f"encoder '{missing[0]}' is not in this PyAV/FFmpeg build; set "
                                                   "allow_fallback: true"):
        Graph.from_string(f"""
inputs: [video]
nodes:
  - calculator: VideoWriterCalculator
    inputs: {{IMAGE: video}}
    options: {{path: '{tmp_path / "x.mp4"}', codec: {missing[0]}, allow_fallback: false}}
""")
