"""Option values checked and converted against a calculator's Options dataclass before anything runs."""
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from pipelines import InputFile, OutputFile
from pipelines.options import build_options, coerce


@dataclass(frozen=True)
class Opts:
    size: int
    ratio: float = 1.0
    names: tuple[str, ...] = ()
    mode: Literal["fast", "exact"] = "fast"
    limit: int | None = None
    flag: bool = False

    def __post_init__(self):
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")


def test_lossless_conversions_only():
    assert coerce(3, float) == 3.0 and isinstance(coerce(3, float), float)
    assert coerce("a", tuple[str, ...]) == ("a",)  # a single value where a list is expected
    assert coerce([1, 2], tuple[int, int]) == (1, 2)
    for value, hint in ((1.5, int), (True, int), ("1", int), (1, bool), ([1], tuple[int, int]), ("slow", Literal["fast"])):
        with pytest.raises(TypeError):
            coerce(value, hint)


def test_every_bad_key_is_reported_with_a_suggestion_and_the_valid_keys():
    options, errors = build_options(Opts, {"sise": 2, "ratio": "x", "mode": "slow"})
    assert options is None
    messages = [str(e) for e in errors]
    assert "unknown option 'sise'. Did you mean 'size'? Valid: size, ratio, names, mode, limit, flag" in messages
    assert "option 'ratio': expected a number, got 'x'" in messages
    assert "option 'mode': expected one of 'fast', 'exact', got 'slow'" in messages
    assert "missing required option 'size' (int)" in messages


def test_post_init_checks_and_optional_values():
    options, errors = build_options(Opts, {"size": 2, "limit": None, "names": ["a", "b"]})
    assert errors == [] and options.names == ("a", "b") and options.limit is None
    _, errors = build_options(Opts, {"size": 0})
    assert [str(e) for e in errors] == ["invalid options: size must be >= 1, got 0"]


def test_path_options_resolve_with_the_base_folder_of_each_key(tmp_path):
    @dataclass(frozen=True)
    class Files:
        model: InputFile
        out: OutputFile = OutputFile("out.jsonl")

    (tmp_path / "m.onnx").write_bytes(b"x")
    options, errors = build_options(Files, {"model": "m.onnx", "out": "o/x.jsonl"}, lambda key: tmp_path)
    assert errors == []
    assert options.model == str(tmp_path / "m.onnx") and isinstance(options.model, InputFile)
    assert options.out == str(Path.cwd() / "o" / "x.jsonl")
    _, errors = build_options(Files, {"model": 3}, lambda key: tmp_path)
    assert [str(e) for e in errors] == ["option 'model': expected a path, got 3"]
