"""Many Python threads at once: blocked in recv while another shuts down,
each event to exactly one of them, recv before run, and Ctrl-C during a
blocking call (a subprocess sent SIGINT)."""

import signal
import subprocess
import sys
import textwrap
import threading

from support import WAIT, raw_connect, recv

import pike

Event = pike.Event
P = pike.Primitives


def test_threads_blocked_in_recv_return_none_on_shutdown(connectors):
    c = connectors()
    c.run(block=False)
    results = []
    lock = threading.Lock()

    def wait():
        # Far longer than the test waits: they must return because of the
        # shutdown, not their timeout.
        event = c.recv(timeout=6 * WAIT)
        with lock:
            results.append(event)

    threads = [threading.Thread(target=wait) for _ in range(8)]
    for t in threads:
        t.start()
    c.shutdown()
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive()
    assert results == [None] * 8


def test_each_event_goes_to_exactly_one_thread(connectors):
    c = connectors(P.INT_CONVERTER)
    c.run(block=False)
    s = raw_connect(c.port())
    recv(c).finish_accept()
    count = 5000
    got = [[] for _ in range(4)]
    peer_gone = threading.Event()

    def take(mine):
        # Until the connector has stopped and every event was taken.
        while (event := c.recv(timeout=3 * WAIT)) is not None:
            if event.type() == Event.MESSAGE:
                mine.append(event.message())
            elif event.type() == Event.ENDPOINT_DISCONNECT:
                peer_gone.set()

    threads = [threading.Thread(target=take, args=(g,)) for g in got]
    for t in threads:
        t.start()
    s.sendall(b"".join(P.int_to_bytes(i) for i in range(count)))
    s.close()
    # Every message comes before the peer's disconnect; events produced
    # before the end of a shutdown are still delivered.
    assert peer_gone.wait(WAIT)
    c.shutdown()
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive()
    everything = sorted(m for g in got for m in g)
    assert everything == list(range(count))


def test_recv_before_run_waits_for_events(connectors):
    # The original's doubler server starts its workers, which call recv(),
    # before it calls run().
    c = connectors()
    got = []
    worker = threading.Thread(target=lambda: got.append(c.recv(timeout=3 * WAIT)))
    worker.start()
    c.run(block=False)
    s = raw_connect(c.port())
    worker.join(WAIT)
    assert not worker.is_alive()
    assert got[0].type() == Event.ENDPOINT_CONNECT
    s.close()


def test_run_blocking_returns_after_shutdown(connectors):
    c = connectors()
    runner = threading.Thread(target=c.run)
    runner.start()
    s = raw_connect(c.port())
    recv(c).finish_accept()
    s.close()
    c.shutdown(now=True)
    runner.join(WAIT)
    assert not runner.is_alive()


def run_and_interrupt(body):
    """Runs `body` (Python source) in a subprocess, waits for it to print
    'ready', sends SIGINT and returns what it printed and its status."""
    source = textwrap.dedent(
        """
        import pike
        c = pike.Connector(pike.Primitives.STRING_CONVERTER, 0, host="127.0.0.1")
        try:
        """
    ) + textwrap.indent(textwrap.dedent(body), "    ") + textwrap.dedent(
        """
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            c.shutdown(now=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", source], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=WAIT)
    finally:
        proc.kill()
    return out, err, proc.returncode


def test_ctrl_c_interrupts_recv():
    out, err, status = run_and_interrupt(
        """
        c.run(block=False)
        print("ready", flush=True)
        c.recv()
        print("recv returned", flush=True)
        """
    )
    assert out.strip() == "interrupted", err
    assert status == 0


def test_ctrl_c_interrupts_a_blocking_run():
    out, err, status = run_and_interrupt(
        """
        print("ready", flush=True)
        c.run()
        print("run returned", flush=True)
        """
    )
    assert out.strip() == "interrupted", err
    assert status == 0


def test_ctrl_c_interrupts_recv_before_run():
    out, err, status = run_and_interrupt(
        """
        print("ready", flush=True)
        c.recv()
        """
    )
    assert out.strip() == "interrupted", err
    assert status == 0


def test_ctrl_c_interrupts_a_lingering_shutdown():
    # A peer that never closes keeps a finish-queues shutdown lingering.
    out, err, status = run_and_interrupt(
        """
        import socket
        c.run(block=False)
        peer = socket.create_connection(("127.0.0.1", c.port()))
        c.recv(timeout=10).finish_accept()
        print("ready", flush=True)
        c.shutdown()
        print("shutdown returned", flush=True)
        """
    )
    assert out.strip() == "interrupted", err
    assert status == 0
