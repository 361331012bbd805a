"""Converters written in Python: streaming both ways, pausing, and
exceptions, which end the message with the traceback as the reason. Also
the file converter and the primitives over the wire."""

import hashlib
import os
import queue
import threading

import pytest
from support import WAIT, raw_connect, read_exactly, read_until_closed, recv

import pike
from pike import Deserializer, StreamDeserializer

Event = pike.Event
P = pike.Primitives


class LinesConverter(pike.Converter):
    """Newline-terminated UTF-8 lines; the deserializer takes bytes as they
    come and keeps them itself."""

    def get_serializer(self, data):
        parts = [data.encode() + b"\n"]
        return _Parts(parts)

    def get_deserializer(self):
        return _LineDeserializer()


class _Parts(pike.Serializer):
    def __init__(self, parts):
        self._parts = list(parts)

    def get_bytes(self):
        return self._parts.pop(0) if self._parts else b""


class _LineDeserializer(pike.Deserializer):
    def __init__(self):
        self._line = b""

    def put_bytes(self, data):
        end = data.find(b"\n")
        if end < 0:
            self._line += data
            return b"", Deserializer.WAIT_FOR_MORE
        line = self._line + data[:end]
        return data[end + 1 :], Deserializer.DONE, line.decode()


def connected_pair(connectors, converter):
    """A listening connector and a client connector, connected; returns
    (server, server_connection, client, client_connection)."""
    server = connectors(converter)
    server.run(block=False)
    client = connectors(converter, listening=False)
    client.run(block=False)
    client_connection, ok = client.connect_waiting("127.0.0.1", server.port())
    assert ok
    event = recv(server)
    event.finish_accept()
    return server, event.connection(), client, client_connection


def test_a_python_converter_both_ways(connectors):
    server, sc, client, cc = connected_pair(connectors, LinesConverter())
    lines = [f"line {i}" for i in range(200)] + ["", "é" * 1000]
    for line in lines:
        client.send(cc, line)
    got = [recv(server).message() for _ in lines]
    assert got == lines
    server.send(sc, "back")
    assert recv(client).message() == "back"


def test_a_large_message_streams_in_chunks(connectors):
    # 3 MiB through Python on both sides, more than one turn of the
    # converter thread and more than the write buffer.
    big = "x" * (3 << 20)
    server, sc, client, cc = connected_pair(connectors, LinesConverter())
    client.send(cc, big)
    client.send(cc, "after")
    assert recv(server).message() == big
    assert recv(server).message() == "after"


class _CollectingStream(StreamDeserializer):
    """Takes `size` bytes; waits for a callback (called by another thread)
    after every chunk it takes, as a slow sink would."""

    def __init__(self, size, sink, slow):
        self._left = size
        self._sink = sink
        self._slow = slow

    def put_bytes(self, data, callback):
        if not self._left:
            return data, StreamDeserializer.DONE
        take = data[: self._left]
        self._left -= len(take)
        self._sink.append(take)
        if take:
            self._slow.put(callback)
            return data[len(take) :], StreamDeserializer.WAIT_FOR_CALLBACK
        return data, StreamDeserializer.WAIT_FOR_MORE


class SizedBlobConverter(pike.Converter):
    """bytes as an int length then a body written to a stream."""

    def __init__(self):
        self.slow = queue.Queue()

    def get_serializer(self, data):
        return _Parts([P.int_to_bytes(len(data)), data])

    def get_deserializer(self):
        return _BlobDeserializer(self.slow)


class _BlobDeserializer(Deserializer):
    def __init__(self, slow):
        self._slow = slow
        self._chunks = None

    def put_bytes(self, data):
        if self._chunks is None:
            remainder, size = P.bytes_to_int(data)
            if size is None:
                return data, Deserializer.WAIT_FOR_MORE
            self._chunks = []
            return remainder, Deserializer.WRITE_TO_STREAM, _CollectingStream(size, self._chunks, self._slow)
        return data, Deserializer.DONE, b"".join(self._chunks)


def test_a_stream_deserializer_that_waits_for_callbacks(connectors):
    converter = SizedBlobConverter()
    server, sc, client, cc = connected_pair(connectors, converter)
    stop = threading.Event()

    def slow_sink():
        # Calls every callback from another thread.
        while not stop.is_set():
            try:
                converter.slow.get(timeout=0.05)()
            except queue.Empty:
                pass

    sink = threading.Thread(target=slow_sink)
    sink.start()
    try:
        blobs = [os.urandom(n) for n in (0, 1, 70_000, 300_000)]
        for blob in blobs:
            client.send(cc, blob)
        for blob in blobs:
            assert recv(server).message() == blob
    finally:
        stop.set()
        sink.join(WAIT)


class Exploding(pike.Converter):
    """Raises in get_bytes for 'bad' (before any byte, or after 'half'),
    and in put_bytes when it sees b'!'."""

    def __init__(self):
        self.paused = queue.Queue()

    def get_serializer(self, data):
        return _ExplodingSerializer(data, self.paused)

    def get_deserializer(self):
        return _ExplodingDeserializer()


class _ExplodingSerializer(pike.Serializer):
    def __init__(self, data, paused):
        self._data = data
        self._calls = 0
        self._paused = paused

    def get_bytes(self):
        self._calls += 1
        if self._data == "bad":
            raise ValueError("cannot serialize bad")
        if self._data == "half":
            # Three bytes, then a stream that waits for the test and raises.
            if self._calls == 1:
                return P.string_to_bytes("half")[:3]
            return _ExplodingStream(self._paused)
        return P.string_to_bytes(self._data) if self._calls == 1 else b""


class _ExplodingStream(pike.StreamSerializer):
    def __init__(self, paused):
        self._paused = paused
        self._calls = 0

    def get_bytes(self, callback):
        self._calls += 1
        if self._calls == 1:
            self._paused.put(callback)
            return pike.StreamSerializer.WAIT_FOR_CALLBACK
        raise ValueError("broke halfway")


class _ExplodingDeserializer(pike.Deserializer):
    def put_bytes(self, data):
        if b"!" in data:
            raise RuntimeError("cannot read '!'")
        return P.STRING_CONVERTER.get_deserializer().put_bytes(data)


def test_an_exception_before_any_byte_hands_the_message_back(connectors):
    c = connectors(Exploding())
    c.run(block=False)
    s = raw_connect(c.port())
    event = recv(c)
    event.finish_accept()
    connection = event.connection()
    c.send(connection, "bad")
    event = recv(c)
    assert event.type() == Event.REJECTED_MESSAGE
    assert event.message() == "bad"
    assert "Traceback" in event.reason()
    assert "ValueError: cannot serialize bad" in event.reason()
    # Nothing of it was written, so the connection goes on.
    c.send(connection, "good")
    assert read_exactly(s, 6) == b"4 good"
    s.close()


def test_an_exception_mid_message_closes_the_connection(connectors):
    converter = Exploding()
    c = connectors(converter)
    c.run(block=False)
    s = raw_connect(c.port())
    event = recv(c)
    event.finish_accept()
    c.send(event.connection(), "half")
    # Three bytes reach the peer; then the serializer raises.
    assert read_exactly(s, 3) == b"4 h"
    converter.paused.get(timeout=WAIT)()
    assert read_until_closed(s) == b""
    event = recv(c)
    assert event.type() == Event.ENDPOINT_DISCONNECT
    assert "ValueError: broke halfway" in event.reason()
    assert "Traceback" in event.reason()
    assert event.incomplete() == "half"


def test_an_exception_in_a_deserializer_closes_the_connection(connectors):
    c = connectors(Exploding())
    c.run(block=False)
    s = raw_connect(c.port())
    event = recv(c)
    event.finish_accept()
    s.sendall(b"2 ok")
    event = recv(c)
    assert event.type() == Event.MESSAGE and event.message() == "ok"
    s.sendall(b"1 !")
    event = recv(c)
    assert event.type() == Event.ENDPOINT_DISCONNECT
    assert "RuntimeError: cannot read '!'" in event.reason()
    assert "Traceback" in event.reason()
    assert read_until_closed(s) == b""


def test_a_bad_return_value_is_a_clear_reason(connectors):
    class Wrong(pike.Converter):
        def get_serializer(self, data):
            return _Parts([42])

        def get_deserializer(self):
            return None

    c = connectors(Wrong())
    c.run(block=False)
    s = raw_connect(c.port())
    event = recv(c)
    event.finish_accept()
    c.send(event.connection(), "x")
    event = recv(c)
    assert event.type() == Event.REJECTED_MESSAGE
    assert "must return bytes or a stream, not int" in event.reason()
    s.sendall(b"1 x")
    event = recv(c)
    assert event.type() == Event.ENDPOINT_DISCONNECT
    assert "put_bytes" in event.reason()


@pytest.mark.parametrize(
    "converter,values",
    [
        (P.BOOL_CONVERTER, [True, False]),
        (P.INT_CONVERTER, [-1, 0, 2**63 - 1]),
        (P.FLOAT_CONVERTER, [-1.5, 0.0, 22 / 7, float("inf")]),
        (P.STRING_CONVERTER, ["", "a", "é" * 10_000]),
        (P.BYTES_CONVERTER, [b"", b"\x00\xff" * 1000]),
    ],
)
def test_primitives_over_the_wire(connectors, converter, values):
    server, sc, client, cc = connected_pair(connectors, converter)
    for value in values:
        client.send(cc, value)
    assert [recv(server).message() for _ in values] == values


def test_an_int_beyond_64_bits_is_refused_at_send(connectors):
    server, sc, client, cc = connected_pair(connectors, P.INT_CONVERTER)
    with pytest.raises(OverflowError, match="64-bit"):
        client.send(cc, 2**64)


def test_strings_over_the_limit_close_the_connection(connectors):
    c = connectors(P.STRING_CONVERTER.with_max_message_size(100))
    c.run(block=False)
    s = raw_connect(c.port())
    event = recv(c)
    event.finish_accept()
    s.sendall(b"101 ")
    event = recv(c)
    assert event.type() == Event.ENDPOINT_DISCONNECT
    assert "exceeds the limit of 100 bytes" in event.reason()


@pytest.mark.parametrize("size", [0, 3, 256_000, 3 << 20])
def test_file_converter(connectors, tmp_path, size):
    # The original's file reader and writer cases (empty, 'abc', 256,000
    # bytes in many reads) and a file larger than any buffer, over the wire.
    source = tmp_path / "notes.txt"
    source.write_bytes(bytes(range(256)) * (size // 256) + b"abc"[: size % 256])
    received = tmp_path / "received"
    received.mkdir()
    server, sc, client, cc = connected_pair(connectors, pike.FileConverter(str(received)))
    client.send(cc, str(source))
    client.send(cc, source)  # a path-like object too
    first, second = recv(server).message(), recv(server).message()
    assert first == str(received / "notes.txt")
    assert second == str(received / "notes_(1).txt")
    digest = hashlib.sha256(source.read_bytes()).digest()
    for saved in (first, second):
        with open(saved, "rb") as f:
            assert hashlib.sha256(f.read()).digest() == digest


def test_a_converter_may_call_back_into_the_connector(connectors):
    # Python converter code runs on a converter thread that holds no lock
    # of the core: a serializer that sends (and polls recv) itself cannot
    # deadlock against the network thread or the sending thread.
    class Echoing(LinesConverter):
        def __init__(self):
            self.connector = None
            self.connection = None

        def get_serializer(self, data):
            if data.startswith("outer") and self.connector is not None:
                self.connector.send(self.connection, "inner " + data)
                self.connector.recv(timeout=0)
            return super().get_serializer(data)

    converter = Echoing()
    server, sc, client, cc = connected_pair(connectors, converter)
    converter.connector, converter.connection = client, cc
    client.send(cc, "outer 1")
    got = sorted(recv(server).message() for _ in range(2))
    assert got == ["inner outer 1", "outer 1"]


def test_memory_stays_bounded_when_nobody_receives(connectors):
    # A peer floods 16-byte strings at a connector whose application takes
    # nothing: reading pauses at the budget instead of memory growing.
    budget = 1 << 20
    c = connectors(memory_budget=budget)
    c.run(block=False)
    s = raw_connect(c.port())
    recv(c).finish_accept()
    s.setblocking(False)
    chunk = P.string_to_bytes("0123456789abcdef") * 4096
    sent = 0
    try:
        for _ in range(2000):
            sent += s.send(chunk)
    except BlockingIOError:
        pass  # the kernel's buffers are full: Pike stopped reading
    assert sent > budget
    assert c.memory_in_use() <= budget
    s.close()
