"""Typed ports, declared as class constants on a calculator: ``IMAGE = Input[Frame]("IMAGE")``."""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Port(Generic[T]):
    tag: str
    payload_type: Any = Any
    is_optional: bool = False
    is_multiple: bool = False
    doc: str = ""
    #: An input that reads only when a packet came (its timestamp), never what it holds (FlowLimiter's FINISHED).
    timing_only: bool = False

    def optional(self):
        return dataclasses.replace(self, is_optional=True)

    def multiple(self):
        return dataclasses.replace(self, is_multiple=True)

    def timing(self):
        """This input uses only the packets' timestamps: a producer whose output goes nowhere else may skip the
        work on its content (``CalculatorContext.wanted``); the overlay, for one, then sends frames undrawn."""
        return dataclasses.replace(self, timing_only=True)

    @property
    def type_name(self) -> str:
        return type_name(self.payload_type)


def _typed_factory(cls, item):
    # Input[int]("IN") reads like a generic instantiation; it builds Input("IN", payload_type=int).
    def make(tag: str, doc: str = ""):
        return cls(tag, item, doc=doc)

    return make


class Input(Port[T]):
    """An input port. Required unless ``.optional()``; ``.multiple()`` accepts a list of streams."""

    __class_getitem__ = classmethod(_typed_factory)


class Output(Port[T]):
    """An output port. Outputs may be left unconnected."""

    __class_getitem__ = classmethod(_typed_factory)


def type_name(tp: Any) -> str:
    if tp is Any:
        return "Any"
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return repr(tp).replace("typing.", "")


def types_compatible(produced: Any, consumed: Any) -> bool:
    """Can a packet of type `produced` feed a port expecting `consumed`? Any matches anything."""
    if produced is Any or consumed is Any or consumed is object:
        return True
    if produced == consumed:
        return True
    p_origin, c_origin = typing.get_origin(produced), typing.get_origin(consumed)
    if c_origin is typing.Union:
        return any(types_compatible(produced, arg) for arg in typing.get_args(consumed))
    if p_origin is typing.Union:
        return all(types_compatible(arg, consumed) for arg in typing.get_args(produced))
    if p_origin is not None or c_origin is not None:
        if (p_origin or produced) != (c_origin or consumed):
            return False
        p_args, c_args = typing.get_args(produced), typing.get_args(consumed)
        if not p_args or not c_args:
            return True
        return len(p_args) == len(c_args) and all(map(types_compatible, p_args, c_args))
    if isinstance(produced, type) and isinstance(consumed, type):
        return issubclass(produced, consumed)
    return False
