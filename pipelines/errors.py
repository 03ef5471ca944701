"""The error hierarchy: one root, subclasses that also inherit the builtin they resemble.

Every message says where (file:line, node, stream), what, what was expected, and a hint.
Formatting for people (colour, tracebacks) belongs to the CLI, not here.
"""
from __future__ import annotations

from dataclasses import dataclass


class PipelineError(Exception):
    """Root of every error framegraph raises on purpose."""


class GraphConfigError(PipelineError, ValueError):
    """A graph file cannot be read or parsed (missing file, bad YAML, unsafe tag)."""


@dataclass(frozen=True)
class Issue:
    """One validation finding, located as precisely as the config allows."""

    message: str
    file: str | None = None
    line: int | None = None
    node: str | None = None
    calculator: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        if self.node:
            calc = f" ({self.calculator})" if self.calculator else ""
            where += f'node "{self.node}"{calc}: '
        return where + self.message


class GraphValidationError(PipelineError, ValueError):
    """The graph was checked before running and has one or more faults."""

    def __init__(self, issues: list[Issue]):
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class CalculatorError(PipelineError, RuntimeError):
    """A calculator raised; names the node, calculator, method and timestamp. The original is __cause__."""

    def __init__(self, node: str, calculator: str, method: str, timestamp: int | None, original: BaseException):
        self.node = node
        self.calculator = calculator
        self.method = method
        self.timestamp = timestamp
        self.original = original
        at = f" at timestamp {timestamp}" if timestamp is not None else ""
        super().__init__(
            f'node "{node}" ({calculator}) failed in {method}(){at}: {type(original).__name__}: {original}'
        )


class TimestampError(PipelineError, ValueError):
    """A packet's timestamp is not strictly greater than the previous one on its stream."""


class GraphDeadlockError(PipelineError, RuntimeError):
    """Nothing can run, nothing is running, and the graph is not finished."""


class RegistryError(PipelineError, KeyError):
    """Unknown or duplicate calculator or engine name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class PluginLoadError(RegistryError, ImportError):
    """A name is known (an entry point declares it) but importing its plugin failed. Carries the entry point
    (``group``, ``entry_point``: "name = module:attr") and the original error as ``__cause__``."""

    def __init__(self, message: str, group: str = "", entry_point: str = ""):
        super().__init__(message)
        self.group = group
        self.entry_point = entry_point


class OutputWriteError(PipelineError, OSError):
    """A sink cannot write its file (full disk, permission, a vanished directory); the message names the file:
    ``cannot write detections.jsonl: no space left on device``."""


class SourceOpenError(PipelineError, OSError):
    """A capture source (file, camera, URL) cannot be opened."""


class ModelError(PipelineError, ValueError):
    """A model file is missing, unreadable, or does not fit the graph."""


class EngineUnavailableError(PipelineError, ImportError):
    """An inference engine is not installed or cannot run here."""
