"""The solution test clips (scripts/make_solution_media.py) are what tests/media.py says, and the MediaPipe
solution references cover each medium's every frame at its size and time."""
import pytest

import media
import solution_metrics as sm

CLIPS = {"cup_hands": media.cup_hands_clip, "grace_hopper_pan": media.grace_hopper_pan_clip}


@pytest.mark.parametrize("name", list(CLIPS))
def test_clip_matches_media_info_and_has_no_audio(name):
    av = pytest.importorskip("av", reason="needs PyAV (pip install 'framegraph[video]')")
    path = media.require(CLIPS[name])
    info = media.MEDIA_INFO[name]
    with av.open(str(path)) as container:
        assert not container.streams.audio
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (info["width"], info["height"])
        assert float(stream.average_rate) == pytest.approx(info["fps"])
        assert sum(1 for p in container.demux(stream) if p.size) == info["frames"]
    assert path.stat().st_size < 300_000  # kept small


def test_grace_hopper_still_is_found_without_importing_matplotlib():
    path = media.require(media.grace_hopper_image)
    assert path.name == "grace_hopper.jpg" and path.stat().st_size > 10_000


@pytest.mark.parametrize("name", [n for n in media.MEDIA_INFO if media.solution_reference(n, "hands")])
def test_references_cover_every_frame_at_source_size_and_time(name):
    info = media.MEDIA_INFO[name]
    for solution in ("face_mesh", "hands", "pose"):
        rows = sm.read_jsonl(media.solution_reference(name, solution))
        assert len(rows) == info["frames"]
        assert {(r["width"], r["height"]) for r in rows} == {(info["width"], info["height"])}
        fps = info.get("fps")
        assert [r["timestamp_us"] for r in rows] == [round(i * 1e6 / fps) if fps else 0 for i in range(len(rows))]
    for solution in ("selfie_general", "selfie_landscape", "pose_segmentation"):
        masks = sm.read_masks(media.solution_masks(name, solution))["masks"]
        assert masks.shape == (info["frames"], info["height"], info["width"])


@pytest.mark.slow  # decodes ~770 frames
def test_pyav_decodes_the_clips_to_the_pixels_mediapipe_saw():
    """The references were made from OpenCV-decoded frames; a graph decodes with PyAV. Equal pixels mean
    the fidelity tests compare models, not decoders (another FFmpeg build may break this: then the
    self-consistency figures in the README bound what a one-grey-level difference costs)."""
    import hashlib
    import json

    av = pytest.importorskip("av", reason="needs PyAV (pip install 'framegraph[video]')")
    path = media.SOLUTIONS_REFERENCE_DIR / "decoded_rgb_md5.json"
    if not path.is_file():
        pytest.skip("no decoded_rgb_md5.json (scripts/make_mediapipe_solution_reference.py)")
    locators = {"cup_hands": media.cup_hands_clip, "grace_hopper_pan": media.grace_hopper_pan_clip,
                "astronaut_pan": media.astronaut_pan_clip, "carphone": media.carphone_clip, "bikes": media.bikes_clip}
    expected = json.loads(path.read_text())
    checked = 0
    for name, locate in locators.items():
        clip = locate()
        if clip is None or name not in expected:
            continue
        with av.open(str(clip)) as container:
            got = [hashlib.md5(f.to_ndarray(format="rgb24").tobytes()).hexdigest() for f in container.decode(video=0)]
        differing = [i for i, (a, b) in enumerate(zip(got, expected[name])) if a != b]
        assert len(got) == len(expected[name]) and not differing, f"{name}: frames {differing[:5]} differ"
        checked += 1
    assert checked, "none of the clips is available"
