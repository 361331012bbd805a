#!/usr/bin/env python3
"""Pike's Python package against pyzmq, in one run on one machine.

Each row is written the way its users write it: Pike with `send`/`recv`
and events, pyzmq with PUSH/PULL (one-way) and REQ/REP (round trips)
sockets and `send`/`recv`. Both run a receiving thread and a sending thread
in one process over TCP on 127.0.0.1, so both pay the same GIL.

    python3 python/bench/bench.py [--messages N] [--runs R]

Rows:
  one-way 16 B, 1 KiB  messages/s from the first send to the last receive
                       (Pike: the bytes converter; pyzmq: PUSH -> PULL)
  doubler              round trips/s: the client sends a float, the server
                       doubles it, the client waits for the answer (Pike:
                       the float converter and the original's doubler
                       server with one worker, then with the original's ten
                       workers all in recv(); pyzmq: REQ/REP with the float
                       as text)
Each figure is the median of R runs; the ratio is Pike / pyzmq.
"""

import argparse
import statistics
import threading
import time

import pike

WAIT = 60.0


def pike_one_way(size, count):
    server = pike.Connector(pike.Primitives.BYTES_CONVERTER, 0, host="127.0.0.1")
    server.run(block=False)
    client = pike.Connector(pike.Primitives.BYTES_CONVERTER)
    client.run(block=False)
    connection, ok = client.connect_waiting("127.0.0.1", server.port())
    assert ok
    event = server.recv(timeout=WAIT)
    event.finish_accept(separate=False)
    payload = b"x" * size
    done = threading.Event()

    def receive():
        got = 0
        while got < count:
            event = server.recv(timeout=WAIT)
            assert event is not None
            if event.type() == pike.Event.MESSAGE:
                got += 1
        done.set()

    receiver = threading.Thread(target=receive)
    receiver.start()
    start = time.perf_counter()
    for _ in range(count):
        client.send_waiting_for_room(connection, payload)
    assert done.wait(WAIT)
    elapsed = time.perf_counter() - start
    receiver.join()
    client.shutdown(now=True)
    server.shutdown(now=True)
    return count / elapsed


def zmq_one_way(size, count):
    import zmq

    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")
    payload = b"x" * size
    done = threading.Event()

    def receive():
        for _ in range(count):
            pull.recv()
        done.set()

    receiver = threading.Thread(target=receive)
    receiver.start()
    start = time.perf_counter()
    for _ in range(count):
        push.send(payload)
    assert done.wait(WAIT)
    elapsed = time.perf_counter() - start
    receiver.join()
    push.close(linger=0)
    pull.close(linger=0)
    ctx.term()
    return count / elapsed


def pike_doubler(count, threads=1):
    server = pike.Connector(pike.Primitives.FLOAT_CONVERTER, 0, host="127.0.0.1")

    def double():
        while True:
            event = server.recv()
            if event is None:
                return
            if event.type() == pike.Event.ENDPOINT_CONNECT:
                event.finish_accept(separate=False)
            elif event.type() == pike.Event.MESSAGE:
                server.send(event.connection(), 2 * event.message())

    workers = [threading.Thread(target=double) for _ in range(threads)]
    for w in workers:
        w.start()
    server.run(block=False)
    client = pike.Connector(pike.Primitives.FLOAT_CONVERTER)
    client.run(block=False)
    connection, ok = client.connect_waiting("127.0.0.1", server.port())
    assert ok
    start = time.perf_counter()
    for i in range(count):
        client.send(connection, float(i))
        event = client.recv(timeout=WAIT)
        assert event.message() == 2.0 * i
    elapsed = time.perf_counter() - start
    client.shutdown(now=True)
    server.shutdown(now=True)
    for w in workers:
        w.join()
    return count / elapsed


def zmq_doubler(count):
    import zmq

    ctx = zmq.Context()
    rep = ctx.socket(zmq.REP)
    port = rep.bind_to_random_port("tcp://127.0.0.1")

    def double():
        for _ in range(count):
            rep.send_string(repr(2 * float(rep.recv_string())))

    server = threading.Thread(target=double)
    server.start()
    req = ctx.socket(zmq.REQ)
    req.connect(f"tcp://127.0.0.1:{port}")
    start = time.perf_counter()
    for i in range(count):
        req.send_string(repr(float(i)))
        assert float(req.recv_string()) == 2.0 * i
    elapsed = time.perf_counter() - start
    server.join()
    req.close(linger=0)
    rep.close(linger=0)
    ctx.term()
    return count / elapsed


def median_of(runs, measure):
    return statistics.median(measure() for _ in range(runs))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000, help="messages per one-way run")
    parser.add_argument("--round-trips", type=int, default=20_000, help="round trips per doubler run")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (the median is shown)")
    args = parser.parse_args()

    rows = []
    for size, label in ((16, "one-way 16 B"), (1024, "one-way 1 KiB")):
        p = median_of(args.runs, lambda: pike_one_way(size, args.messages))
        z = median_of(args.runs, lambda: zmq_one_way(size, args.messages))
        rows.append((label, "msg/s", p, z))
    p = median_of(args.runs, lambda: pike_doubler(args.round_trips))
    z = median_of(args.runs, lambda: zmq_doubler(args.round_trips))
    rows.append(("doubler", "round trips/s", p, z))
    # The original's doubler server: ten worker threads all in recv().
    p = median_of(args.runs, lambda: pike_doubler(args.round_trips, threads=10))
    rows.append(("doubler, 10 thr", "round trips/s", p, z))

    print(f"{'row':<16}{'unit':<15}{'pike':>12}{'pyzmq':>12}{'pike/pyzmq':>12}")
    for label, unit, p, z in rows:
        print(f"{label:<16}{unit:<15}{p:>12,.0f}{z:>12,.0f}{p / z:>12.2f}")


if __name__ == "__main__":
    main()
