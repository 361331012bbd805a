"""Helpers of the Python test suite. Every wait has a timeout, so that a bug
fails a test instead of hanging it; sockets go to 127.0.0.1 only, on ports
the system picks."""

import queue
import socket
import subprocess
import threading

import pike

#: The longest any single wait of a test may take before the test fails.
WAIT = 10.0


def recv(connector, timeout=WAIT):
    """The next event of the main queue; fails the test if none comes."""
    event = connector.recv(timeout=timeout)
    assert event is not None, "no event in time"
    return event


def recv_connection(connector, connection, timeout=WAIT):
    event = connector.recv_connection(connection, timeout=timeout)
    assert event is not None, "no event in time"
    return event


def dead_port():
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_listener():
    """A plain socket listening on 127.0.0.1, with its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(WAIT)
    return listener, listener.getsockname()[1]


def raw_connect(port):
    s = socket.create_connection(("127.0.0.1", port), WAIT)
    s.settimeout(WAIT)
    return s


def read_exactly(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


def read_until_closed(s):
    """Every byte until the peer closes (each read within WAIT)."""
    chunks = []
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


class Proc:
    """A program run as a process: lines typed to it, lines read from it."""

    def __init__(self, args, **kwargs):
        self.args = args
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            **kwargs,
        )
        self.stdout = queue.Queue()
        self.stderr = queue.Queue()
        for stream, lines in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr)):
            threading.Thread(target=self._pump, args=(stream, lines), daemon=True).start()

    @staticmethod
    def _pump(stream, lines):
        for line in stream:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    def _line(self, lines, what):
        try:
            line = lines.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"{self.args[:2]}: no {what} line in time") from None
        assert line is not None, f"{self.args[:2]}: {what} closed"
        return line

    def stdout_line(self):
        return self._line(self.stdout, "stdout")

    def stderr_line_with(self, needle):
        while True:
            line = self._line(self.stderr, "stderr")
            if needle in line:
                return line

    def listening_port(self):
        line = self.stderr_line_with("listening on")
        return int(line.rsplit(":", 1)[1])

    def type_line(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close_stdin(self):
        self.proc.stdin.close()

    def wait(self):
        try:
            return self.proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"{self.args[:2]} did not exit in time") from None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT)




class PausingStream(pike.StreamSerializer):
    """Waits for a callback on its first call, then returns its value."""

    def __init__(self, value, paused):
        self._value = value
        self._paused = paused
        self._step = 0

    def get_bytes(self, callback):
        self._step += 1
        if self._step == 1:
            self._paused.put(callback)
            return pike.StreamSerializer.WAIT_FOR_CALLBACK
        if self._step == 2:
            return self._value.encode()
        return b""


class PausingSerializer(pike.Serializer):
    """Writes b'abc', then the message from a PausingStream, then b'123'."""

    def __init__(self, value, paused):
        self._parts = [b"abc", PausingStream(value, paused), b"123"]

    def get_bytes(self):
        return self._parts.pop(0) if self._parts else b""


class PausingConverter(pike.Converter):
    """Strings whose serializers pause mid-message until the test calls the
    callback it takes from `paused`."""

    def __init__(self):
        self.paused = queue.Queue()

    def get_serializer(self, data):
        return PausingSerializer(data, self.paused)

    def get_deserializer(self):
        return pike.Primitives.STRING_CONVERTER.get_deserializer()

    def wait_for_callback(self):
        """The callback of the next serializer to pause."""
        try:
            return self.paused.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError("no serializer paused in time") from None
