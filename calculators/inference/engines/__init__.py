"""framegraph's own inference engines, one module per runtime, each declared as an entry point of the group
``framegraph.engines`` (pyproject.toml) and imported only when a graph names it.

The engine API lives in the runtime, `pipelines.engines`; its public names are re-exported here for code written
against this package.
"""
from __future__ import annotations

from pipelines.engines import (ENGINES, ENTRY_POINT_GROUP, ConfiguredEngine, Device, Engine, EngineChoice,
                               EngineOptionError, EngineOptions, EngineRunError, NoEngineOptions, Session,
                               TensorSpec, configure_engine, engines, get_engine, installed_engines, known_engines,
                               list_engines, parse_device, parse_engine_choices, register_engine,
                               unregister_engine)

__all__ = [
    "ENGINES", "ENTRY_POINT_GROUP", "ConfiguredEngine", "Device", "Engine", "EngineChoice", "EngineOptionError",
    "EngineOptions", "EngineRunError", "NoEngineOptions", "Session", "TensorSpec", "configure_engine", "engines",
    "get_engine", "installed_engines", "known_engines", "list_engines", "parse_device", "parse_engine_choices",
    "register_engine", "unregister_engine",
]
