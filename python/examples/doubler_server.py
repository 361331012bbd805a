#!/usr/bin/env python3
"""Doubles every number a client sends: N worker threads all call recv().

The original's doubler server, for this package: the workers start (and
block in recv()) before run(), as the original's did. `quit` or the end of
input shuts the server down, sending every answer still queued.

    python3 doubler_server.py --port 3453 --num-threads 10
"""

import argparse
import sys
import threading

import pike


def add_doublers(connector, num_threads):
    def double():
        while True:
            # Blocks until a value to double (or a new client) comes.
            event = connector.recv()
            if event is None:
                return  # shut down
            if event.type() == pike.Event.ENDPOINT_CONNECT:
                event.finish_accept(separate=False)
            elif event.type() == pike.Event.MESSAGE:
                connector.send(event.connection(), 2 * event.message())

    workers = [threading.Thread(target=double, daemon=True) for _ in range(num_threads)]
    for worker in workers:
        worker.start()
    return workers


def main():
    parser = argparse.ArgumentParser(description="Value doubler server")
    parser.add_argument("--port", type=int, default=3453, help="port to listen on")
    parser.add_argument("--unix", metavar="PATH", help="listen on this Unix socket instead")
    parser.add_argument("--num-threads", "--num_threads", type=int, default=10,
                        help="number of threads doubling values")
    args = parser.parse_args()

    if args.unix:
        connector = pike.Connector(pike.Primitives.FLOAT_CONVERTER, address="unix:" + args.unix)
    else:
        connector = pike.Connector(pike.Primitives.FLOAT_CONVERTER, args.port)
    workers = add_doublers(connector, max(1, args.num_threads))
    connector.run(block=False)
    print("listening on", connector.local_address(), file=sys.stderr, flush=True)

    for line in sys.stdin:
        if line.strip() == "quit":
            break
    connector.shutdown(finish_queues=True)
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()
