"""The converter interfaces of the original Pike, with its constants.

A converter is any object with ``get_serializer(data)`` and
``get_deserializer()``; subclassing these classes is optional. Pike calls
their methods on a converter thread of its own, one call at a time, never on
the thread that called ``send`` and never while the core holds a lock. An
exception raised in one ends that message: before any of its bytes reached
the socket the message comes back in a ``RejectedMessageEvent``; after, or
while receiving, the connection closes with the traceback as its reason.
"""


class Serializer:
    """Turns one message into bytes for sending."""

    def get_bytes(self):
        """Returns the next bytes to send, ``b''`` once the message is
        complete, or a stream (an object with ``get_bytes(callback)``, see
        ``StreamSerializer``) to take bytes from until it returns ``b''``.
        Called whenever the connection can take more bytes."""
        raise NotImplementedError


class StreamSerializer:
    """A source of bytes that may not be ready at once (a slow file)."""

    #: Returned by ``get_bytes(callback)``: no bytes yet; Pike calls again
    #: only after ``callback()`` was called (from any thread).
    WAIT_FOR_CALLBACK = 0

    def get_bytes(self, callback):
        """Returns bytes, ``b''`` when the stream is done (Pike goes back to
        the serializer), or ``WAIT_FOR_CALLBACK``."""
        raise NotImplementedError


class Deserializer:
    """Turns received bytes back into one message."""

    #: ``(remainder, WRITE_TO_STREAM, stream)``: following bytes go to
    #: ``stream.put_bytes(data, callback)`` until it returns ``DONE``.
    WRITE_TO_STREAM = 0
    #: ``(remainder, WAIT_FOR_MORE)``: call again once more bytes came; they
    #: are appended to the remainder.
    WAIT_FOR_MORE = 1
    #: ``(remainder, DONE, message)``: the message is complete; the
    #: remainder goes to a new deserializer.
    DONE = 2

    def put_bytes(self, data):
        """Takes a prefix of ``data`` and returns the unused suffix first,
        then a status (and a third item for ``DONE`` and
        ``WRITE_TO_STREAM``)."""
        raise NotImplementedError


class StreamDeserializer:
    """A sink of bytes that may not keep up (a slow file)."""

    #: ``(remainder, WAIT_FOR_CALLBACK)``: Pike calls again only after
    #: ``callback()`` was called.
    WAIT_FOR_CALLBACK = 0
    #: ``(remainder, WAIT_FOR_MORE)``: call again with more bytes.
    WAIT_FOR_MORE = 1
    #: ``(remainder, DONE)``: the stream is complete; Pike goes back to the
    #: deserializer with the remainder.
    DONE = 2

    def put_bytes(self, data, callback):
        """Takes a prefix of ``data``; returns ``(remainder, status)``."""
        raise NotImplementedError


class Converter:
    """A factory of one serializer per message sent and one deserializer per
    message received: it fixes the wire protocol of a connector."""

    def get_serializer(self, data):
        """Returns a new serializer of ``data``."""
        raise NotImplementedError

    def get_deserializer(self):
        """Returns a new deserializer for the next message received."""
        raise NotImplementedError
