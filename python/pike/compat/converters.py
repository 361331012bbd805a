"""The original ``converters`` module: ``Primitives`` and ``FileConverter``."""

from pike import FileConverter, Primitives

__all__ = ["FileConverter", "Primitives"]
