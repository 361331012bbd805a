"""The original's connector suite (tornado_connector_test.py), written afresh
for this package in Python 3, including the tests the original skipped or
left empty: the three disconnect modes with a pausing serializer,
connect_separate, connect_waiting with a callback, the three shutdown
modes. Ports are picked by the system and read back."""

import threading

from support import (
    WAIT,
    PausingConverter,
    dead_port,
    raw_connect,
    raw_listener,
    read_exactly,
    read_until_closed,
    recv,
    recv_connection,
)

from pike.compat import connector
from pike.compat.converters import Primitives

Event = connector.Event


def test_connector_not_listening(connectors):
    c = connectors(listening=False)
    c.run(block=False)
    assert c.port() is None


def test_connector_listening(connectors):
    c = connectors()
    c.run(block=False)
    s = raw_connect(c.port())
    event = recv(c)
    assert event.type() == Event.ENDPOINT_CONNECT
    assert isinstance(event, connector.RemoteConnectEvent)
    assert event.connection().address() == s.getsockname()
    event.finish_accept(separate=False)
    # Shutting down disconnects it. (The shutdown lingers until the peer
    # closes too, so it runs on a thread.)
    shutdown = threading.Thread(target=c.shutdown)
    shutdown.start()
    event = recv(c)
    assert event.type() == Event.FINISH_DISCONNECT
    assert s.recv(4096) == b""
    s.close()
    shutdown.join(WAIT)
    assert not shutdown.is_alive()
    assert c.recv(timeout=WAIT) is None


def test_connect_not_listening(connectors):
    c = connectors(listening=False)
    c.run(block=False)
    port = dead_port()
    connection = c.connect("127.0.0.1", port)
    assert connection.address() == ("127.0.0.1", port)
    event = recv(c)
    assert event.type() == Event.FINISH_CONNECT
    assert event.connection() == connection
    assert not event.success()
    assert event.queued() == ()
    assert "refused" in event.reason()


def test_connect_listening(connectors):
    c = connectors(listening=False)
    c.run(block=False)
    listener, port = raw_listener()
    connection = c.connect("127.0.0.1", port)
    s, _ = listener.accept()
    event = recv(c)
    assert event.type() == Event.FINISH_CONNECT
    assert event.success()
    assert event.connection() == connection
    c.disconnect(connection)
    event = recv(c)
    assert event.type() == Event.FINISH_DISCONNECT
    assert event.incomplete() is None
    assert not event.queued()
    s.settimeout(WAIT)
    assert s.recv(4096) == b""


def test_connect_waiting_not_listening(connectors):
    c = connectors(listening=False)
    c.run(block=False)
    connection, success = c.connect_waiting("127.0.0.1", dead_port())
    assert not success
    # No FinishConnect event for connect_waiting.
    assert c.recv(timeout=0.2) is None


def test_connect_waiting(connectors):
    c = connectors(listening=False)
    c.run(block=False)
    listener, port = raw_listener()
    connection, success = c.connect_waiting("127.0.0.1", port)
    assert success
    s, _ = listener.accept()
    c.disconnect(connection)
    event = recv(c)
    assert event.type() == Event.FINISH_DISCONNECT
    assert event.incomplete() is None
    assert not event.queued()
    s.settimeout(WAIT)
    assert s.recv(4096) == b""


def test_recv(connectors):
    c = connectors()
    c.run(block=False)
    s = raw_connect(c.port())
    recv(c).finish_accept(separate=False)
    values = ("plango", "", "hi mom!")
    for value in values:
        s.sendall(Primitives.string_to_bytes(value))
    s.close()
    for value in values:
        event = recv(c)
        assert event.type() == Event.MESSAGE
        assert event.message() == value
    event = recv(c)
    assert event.type() == Event.ENDPOINT_DISCONNECT
    assert event.reason() == "peer closed the connection"


def test_send(connectors):
    c = connectors()
    c.run(block=False)
    s = raw_connect(c.port())
    event = recv(c)
    event.finish_accept(separate=False)
    connection = event.connection()
    values = ("plango", "", "hi mom!")
    for value in values:
        c.send(connection, value)
    c.disconnect(connection)
    assert read_until_closed(s) == b"".join(Primitives.string_to_bytes(v) for v in values)
    assert recv(c).type() == Event.FINISH_DISCONNECT


def pausing_connection(connectors):
    """A connector with a PausingConverter connected to a raw socket, with
    'ONE' paused after its first bytes (read off the socket) and 'TWO'
    queued behind it."""
    converter = PausingConverter()
    c = connectors(converter, listening=False)
    c.run(block=False)
    listener, port = raw_listener()
    connection, success = c.connect_waiting("127.0.0.1", port)
    assert success
    s, _ = listener.accept()
    s.settimeout(WAIT)
    c.send(connection, "ONE")
    callback = converter.wait_for_callback()
    # The first bytes reached the socket: 'ONE' is partly sent.
    assert read_exactly(s, 3) == b"abc"
    c.send(connection, "TWO")
    return c, converter, connection, s, callback


def test_disconnect_now(connectors):
    c, converter, connection, s, callback = pausing_connection(connectors)
    c.disconnect(connection, now=True)
    callback()
    event = recv(c)
    assert event.type() == Event.FINISH_DISCONNECT
    assert event.incomplete() == "ONE"
    assert event.queued() == ("TWO",)
    assert read_until_closed(s) == b""


def test_disconnect_finish_message(connectors):
    c, converter, connection, s, callback = pausing_connection(connectors)
    c.disconnect(connection, finish_message=True)
    callback()
    event = recv(c)
    assert event.type() == Event.FINISH_DISCONNECT
    assert event.incomplete() is None
    assert event.queued() == ("TWO",)
    assert read_until_closed(s) == b"ONE123"


def test_disconnect_finish_queue(connectors):
    c, converter, connection, s, callback = pausing_connection(connectors)
    c.disconnect(connection)
    callback()
    converter.wait_for_callback()()
    event = recv(c)
    assert event.type() == Event.FINISH_DISCONNECT
    assert event.incomplete() is None
    assert event.queued() == ()
    assert read_until_closed(s) == b"ONE123abcTWO123"


def test_recv_connection(connectors):
    c = connectors()
    c.run(block=False)
    s = raw_connect(c.port())
    event = recv(c)
    connection = event.connection()
    event.finish_accept(separate=True)
    for value in ("foo", "bar"):
        s.sendall(Primitives.string_to_bytes(value))
    s.close()
    for value in ("foo", "bar"):
        event = recv_connection(c, connection)
        assert event.type() == Event.MESSAGE
        assert event.message() == value
    event = recv_connection(c, connection)
    assert event.type() == Event.ENDPOINT_DISCONNECT
    # Nothing went to the main queue.
    assert c.recv(timeout=0.1) is None


def test_merge_connection(connectors):
    c = connectors()
    c.run(block=False)
    s = raw_connect(c.port())
    event = recv(c)
    connection = event.connection()
    event.finish_accept(separate=True)
    for value in ("foo", "bar"):
        s.sendall(Primitives.string_to_bytes(value))
    s.close()
    event = recv_connection(c, connection)
    assert event.message() == "foo"
    c.merge_connection(connection)
    # The rest moved to the main queue, in order; the connection's own
    # queue is closed.
    assert c.recv_connection(connection, timeout=WAIT) is None
    event = recv(c)
    assert event.type() == Event.MESSAGE
    assert event.message() == "bar"
    assert recv(c).type() == Event.ENDPOINT_DISCONNECT


def test_merge_wakes_a_thread_in_recv_connection(connectors):
    c = connectors()
    c.run(block=False)
    s = raw_connect(c.port())
    event = recv(c)
    connection = event.connection()
    event.finish_accept(separate=True)
    got = []
    waiter = threading.Thread(target=lambda: got.append(c.recv_connection(connection, timeout=3 * WAIT)))
    waiter.start()
    c.merge_connection(connection)
    waiter.join(WAIT)
    assert not waiter.is_alive()
    assert got == [None]
    s.close()


def test_connect_separate(connectors):
    server = connectors()
    server.run(block=False)
    client = connectors(listening=False)
    client.run(block=False)
    connection = client.connect("127.0.0.1", server.port(), separate=True)
    event = recv(server)
    event.finish_accept()
    server.send(event.connection(), "hello")
    # Both its events come on its own queue, none on the main queue.
    event = recv_connection(client, connection)
    assert event.type() == Event.FINISH_CONNECT and event.success()
    event = recv_connection(client, connection)
    assert event.type() == Event.MESSAGE and event.message() == "hello"
    assert client.recv(timeout=0.1) is None


def test_connect_waiting_with_callback(connectors):
    server = connectors()
    server.run(block=False)
    client = connectors(listening=False)
    client.run(block=False)
    order = []

    def accept_and_greet():
        event = recv(server)
        event.finish_accept()
        server.send(event.connection(), "first")

    greeter = threading.Thread(target=accept_and_greet)
    greeter.start()

    def callback(connection, success):
        # The server's message may well have arrived: it is held back
        # until this returns.
        greeter.join(WAIT)
        order.append(("callback", connection, success))

    connection, success = client.connect_waiting(
        "127.0.0.1", server.port(), callback=callback
    )
    assert success
    event = recv(client)
    order.append(("message", event.message()))
    assert order == [("callback", connection, True), ("message", "first")]


def test_connect_waiting_callback_on_failure(connectors):
    client = connectors(listening=False)
    client.run(block=False)
    calls = []
    connection, success = client.connect_waiting(
        "127.0.0.1", dead_port(), callback=lambda conn, ok: calls.append((conn, ok))
    )
    assert not success
    assert calls == [(connection, False)]


def pausing_shutdown(connectors, **mode):
    """Shuts down (on a thread: it blocks until done) a connector whose
    'ONE' is paused mid-message with 'TWO' queued behind it."""
    c, converter, connection, s, callback = pausing_connection(connectors)
    shutdown = threading.Thread(target=c.shutdown, kwargs=mode)
    shutdown.start()
    return c, converter, s, callback, shutdown


def test_shutdown_now(connectors):
    c, converter, s, callback, shutdown = pausing_shutdown(connectors, now=True)
    shutdown.join(WAIT)
    assert not shutdown.is_alive()
    callback()
    event = recv(c)
    assert event.type() == Event.FINISH_DISCONNECT
    assert event.incomplete() == "ONE"
    assert event.queued() == ("TWO",)
    assert read_until_closed(s) == b""
    assert c.recv(timeout=WAIT) is None


def test_shutdown_finish_messages(connectors):
    c, converter, s, callback, shutdown = pausing_shutdown(connectors, finish_messages=True)
    callback()
    assert read_until_closed(s) == b"ONE123"
    s.close()
    shutdown.join(WAIT)
    assert not shutdown.is_alive()
    event = recv(c)
    assert event.type() == Event.FINISH_DISCONNECT
    assert event.incomplete() is None
    assert event.queued() == ("TWO",)
    assert c.recv(timeout=WAIT) is None


def test_shutdown_finish_queues(connectors):
    c, converter, s, callback, shutdown = pausing_shutdown(connectors)
    callback()
    converter.wait_for_callback()()
    assert read_until_closed(s) == b"ONE123abcTWO123"
    s.close()
    shutdown.join(WAIT)
    assert not shutdown.is_alive()
    event = recv(c)
    assert event.type() == Event.FINISH_DISCONNECT
    assert event.incomplete() is None
    assert event.queued() == ()
    assert c.recv(timeout=WAIT) is None


def test_send_after_shutdown_raises_with_the_message(connectors):
    import pike

    c = connectors()
    c.run(block=False)
    s = raw_connect(c.port())
    event = recv(c)
    event.finish_accept()
    s.close()
    c.shutdown()
    try:
        c.send(event.connection(), "late")
    except pike.ConnectorStopped as stopped:
        assert stopped.args == ("late",)
    else:
        raise AssertionError("send after shutdown did not raise")


def test_send_to_a_closed_connection_is_rejected(connectors):
    c = connectors()
    c.run(block=False)
    s = raw_connect(c.port())
    event = recv(c)
    event.finish_accept()
    connection = event.connection()
    c.disconnect(connection)
    assert recv(c).type() == Event.FINISH_DISCONNECT
    c.send(connection, "too late")
    event = recv(c)
    assert event.type() == Event.REJECTED_MESSAGE
    assert event.message() == "too late"
    assert event.connection() == connection
    s.close()


def test_connections_are_hashable_and_compare_by_identity(connectors):
    c = connectors()
    c.run(block=False)
    sockets = [raw_connect(c.port()), raw_connect(c.port())]
    first, second = recv(c), recv(c)
    first.finish_accept()
    second.finish_accept()
    a, b = first.connection(), second.connection()
    assert a != b
    assert a == first.connection()
    assert len({a, b, first.connection()}) == 2
    assert {a: 1}[first.connection()] == 1
    for s in sockets:
        s.close()


def test_a_whole_address_and_unix_sockets(connectors, tmp_path):
    path = str(tmp_path / "pike.sock")
    server = connectors(listening=False, address="unix:" + path)
    server.run(block=False)
    assert server.local_address() == "unix:" + path
    client = connectors(listening=False)
    client.run(block=False)
    connection, ok = client.connect_waiting("unix:" + path)
    assert ok
    assert connection.address() == path
    recv(server).finish_accept()
    client.send(connection, "over a unix socket")
    assert recv(server).message() == "over a unix socket"
    tcp = connectors()
    tcp.run(block=False)
    connection, ok = client.connect_waiting(f"127.0.0.1:{tcp.port()}")
    assert ok
    assert connection.address() == ("127.0.0.1", tcp.port())


def test_settings_reach_the_core(connectors):
    # The idle timeout closes a peer that sends nothing (the core's timers
    # are tested on a fake clock; this checks the setting gets there).
    c = connectors(idle_timeout=0.2)
    c.run(block=False)
    s = raw_connect(c.port())
    recv(c).finish_accept()
    event = recv(c)
    assert event.type() == Event.ENDPOINT_DISCONNECT
    assert "idle timeout" in event.reason()
    assert read_until_closed(s) == b""
    import pytest

    with pytest.raises(ValueError):
        connectors(connect_timeout=-1.0)


def test_the_renamed_methods_and_their_old_names(connectors):
    import warnings

    server = connectors()
    server.run(block=False)
    client = connectors(listening=False)
    client.run(block=False)
    assert server.local_address() == "127.0.0.1:%d" % server.port()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert server.listen_address() == server.local_address()
    assert [w.category for w in caught] == [DeprecationWarning]
    assert "local_address" in str(caught[0].message)
    connection, ok = client.connect_waiting("127.0.0.1", server.port())
    assert ok
    assert client.send_waiting_for_room(connection, "new name", timeout=WAIT)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert client.send_blocking(connection, "old name", timeout=WAIT)
    assert [w.category for w in caught] == [DeprecationWarning]
    recv(server).finish_accept()
    assert recv(server).message() == "new name"
    assert recv(server).message() == "old name"


def test_a_failed_connect_waiting_still_hands_back_a_closed_connection(connectors):
    c = connectors(listening=False)
    c.run(block=False)
    called = []
    port = dead_port()
    connection, ok = c.connect_waiting(
        "127.0.0.1", port, callback=lambda conn, success: called.append((conn, success))
    )
    assert not ok
    assert called == [(connection, False)]
    assert connection.address() == ("127.0.0.1", port)
    # Sending to it hands the message back as a RejectedMessageEvent.
    c.send(connection, "to nobody")
    event = recv(c)
    assert event.type() == Event.REJECTED_MESSAGE
    assert event.message() == "to nobody"


def test_connect_with_reconnect_waits_for_a_server_started_later(connectors):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = connectors(listening=False)
    c.run(block=False)
    import pike

    connection = c.connect("127.0.0.1", port, reconnect=pike.Reconnect(min=0.005, max=0.05))
    c.send(connection, "sent before the server was up")
    server = pike.Connector(pike.Primitives.STRING_CONVERTER, port, host="127.0.0.1")
    server.run(block=False)
    try:
        event = recv(c)
        assert event.type() == Event.FINISH_CONNECT
        assert event.success()
        assert event.connection() == connection
        recv(server).finish_accept()
        assert recv(server).message() == "sent before the server was up"
    finally:
        server.shutdown(now=True)


def test_connect_waiting_with_reconnect_gives_up_after_its_limit(connectors):
    import pike

    c = connectors(listening=False)
    c.run(block=False)
    policy = pike.Reconnect(min=0.005, max=0.02, give_up_after=0.1)
    connection, ok = c.connect_waiting("127.0.0.1", dead_port(), reconnect=policy)
    assert not ok
    try:
        c.connect("127.0.0.1", dead_port(), reconnect="yes")
    except TypeError as e:
        assert "reconnect" in str(e)
    else:
        raise AssertionError("a bad reconnect argument is refused")


def test_a_reconnecting_connection_rides_out_a_server_restart(connectors):
    import pike

    first = connectors()
    first.run(block=False)
    port = first.port()
    c = connectors(listening=False)
    c.run(block=False)
    connection, ok = c.connect_waiting(
        "127.0.0.1", port, reconnect=pike.Reconnect(min=0.005, max=0.05)
    )
    assert ok
    first.shutdown(now=True)
    # Sent while the link is down: it waits, and the link's going and
    # coming back are not events of the original API.
    c.send(connection, "to the restarted server")
    second = pike.Connector(pike.Primitives.STRING_CONVERTER, port, host="127.0.0.1")
    second.run(block=False)
    try:
        recv(second).finish_accept()
        assert recv(second).message() == "to the restarted server"
        assert c.recv(timeout=0.1) is None
    finally:
        second.shutdown(now=True)
