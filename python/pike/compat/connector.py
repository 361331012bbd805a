"""The original ``connector`` module: events, interfaces and constants."""

from pike import (
    Connection,
    Connector,
    Converter,
    Deserializer,
    Event,
    FinishConnectEvent,
    FinishDisconnectEvent,
    MessageReceivedEvent,
    RejectedMessageEvent,
    RemoteConnectEvent,
    RemoteDisconnectEvent,
    Serializer,
    StreamDeserializer,
    StreamSerializer,
)

__all__ = [
    "Connection",
    "Connector",
    "Converter",
    "Deserializer",
    "Event",
    "FinishConnectEvent",
    "FinishDisconnectEvent",
    "MessageReceivedEvent",
    "RejectedMessageEvent",
    "RemoteConnectEvent",
    "RemoteDisconnectEvent",
    "Serializer",
    "StreamDeserializer",
    "StreamSerializer",
]
