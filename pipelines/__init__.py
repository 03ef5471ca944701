"""framegraph's runtime: calculator graphs in YAML, calculators in Python."""
from .calculator import Calculator, CalculatorContext, NoOptions, calculator
from .config import GraphConfig, NodeConfig, load_graph, parse_graph
from .errors import (CalculatorError, EngineUnavailableError, GraphConfigError, GraphDeadlockError,
                     GraphValidationError, ModelError, OutputWriteError, PipelineError, PluginLoadError,
                     RegistryError, SourceOpenError, TimestampError)
from .graph import Graph, GraphHandle
from .overrides import Override, apply_overrides, flag_overrides, parse_override
from .packet import DONE, Packet, Stop
from .paths import InputFile, MediaSource, OutputFile
from .ports import Input, Output
from .registry import Registry, calculators, get_calculator, register_calculator

__all__ = [
    "Calculator", "CalculatorContext", "NoOptions", "calculator", "GraphConfig", "NodeConfig", "load_graph",
    "parse_graph", "CalculatorError", "EngineUnavailableError", "GraphConfigError", "GraphDeadlockError",
    "GraphValidationError", "ModelError", "OutputWriteError", "PipelineError", "PluginLoadError", "RegistryError",
    "SourceOpenError", "TimestampError", "Graph", "GraphHandle", "Override", "apply_overrides", "flag_overrides",
    "parse_override", "DONE", "Packet", "Stop", "InputFile", "MediaSource", "OutputFile", "Input", "Output",
    "Registry", "calculators", "get_calculator", "register_calculator",
]
