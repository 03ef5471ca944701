"""framegraph's runtime: calculator graphs in YAML, calculators in Python."""
from .calculator import Calculator, CalculatorContext, NoOptions, calculator
from .config import GraphConfig, NodeConfig, load_graph, parse_graph
from .errors import (CalculatorError, EngineUnavailableError, GraphConfigError, GraphDeadlockError,
                     GraphValidationError, ModelError, PipelineError, RegistryError, SourceOpenError,
                     TimestampError)
from .graph import Graph, GraphHandle
from .packet import DONE, Packet, Stop
from .ports import Input, Output
from .registry import calculators, get_calculator, register_calculator

__all__ = [
    "Calculator", "CalculatorContext", "NoOptions", "calculator", "GraphConfig", "NodeConfig", "load_graph",
    "parse_graph", "CalculatorError", "EngineUnavailableError", "GraphConfigError", "GraphDeadlockError",
    "GraphValidationError", "ModelError", "PipelineError", "RegistryError", "SourceOpenError", "TimestampError",
    "Graph", "GraphHandle", "DONE", "Packet", "Stop", "Input", "Output", "calculators", "get_calculator",
    "register_calculator",
]
