"""The original ``tornado_connector`` module. ``TornadoConnector(converter,
port)`` is Pike's ``Connector``; no Tornado is involved any more."""

from pike import Connector as TornadoConnector

__all__ = ["TornadoConnector"]
