"""Pike: a thread-safe, message-oriented socket library.

Applications hand Pike whole messages and get whole messages back as events;
Pike owns the sockets, the framing and the buffering. This package is the API
of the original Python library over the Rust core: the same calls, events
and converters, with the core's bounds (memory, queues, message sizes) and
its guarantee that every message sent is either written in full or handed
back exactly once.

    import pike

    server = pike.Connector(pike.Primitives.STRING_CONVERTER, 3453)
    server.run(block=False)
    while True:
        event = server.recv()
        if event is None:
            break                                  # shut down
        if event.type() == pike.Event.ENDPOINT_CONNECT:
            event.finish_accept(separate=False)
        elif event.type() == pike.Event.MESSAGE:
            server.send(event.connection(), event.message())   # echo

Threads: the connector runs one network thread; any number of Python threads
may call its methods at once. Blocking calls release the GIL and wake every
50 ms so that Ctrl-C interrupts them. Converters written in Python run on a
converter thread of their own, never while the core holds a lock.
"""

from pike._pike import (
    Connection,
    Connector,
    ConnectorStopped,
    Event,
    FileConverter,
    FinishConnectEvent,
    FinishDisconnectEvent,
    MessageReceivedEvent,
    Primitives,
    Reconnect,
    RejectedMessageEvent,
    RemoteConnectEvent,
    RemoteDisconnectEvent,
)
from pike._interfaces import (
    Converter,
    Deserializer,
    Serializer,
    StreamDeserializer,
    StreamSerializer,
)

__all__ = [
    "Connection",
    "Connector",
    "ConnectorStopped",
    "Converter",
    "Deserializer",
    "Event",
    "FileConverter",
    "FinishConnectEvent",
    "FinishDisconnectEvent",
    "MessageReceivedEvent",
    "Primitives",
    "Reconnect",
    "RejectedMessageEvent",
    "RemoteConnectEvent",
    "RemoteDisconnectEvent",
    "Serializer",
    "StreamDeserializer",
    "StreamSerializer",
]
