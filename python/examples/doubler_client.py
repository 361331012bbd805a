#!/usr/bin/env python3
"""Sends each number typed to the doubler server and prints the answer.
`quit` or the end of input leaves.

    python3 doubler_client.py --host 127.0.0.1 --port 3453
"""

import argparse
import sys

import pike


def main():
    parser = argparse.ArgumentParser(description="Value doubler client")
    parser.add_argument("--host", default="localhost", help="server host")
    parser.add_argument("--port", type=int, default=3453, help="server port")
    parser.add_argument("--unix", metavar="PATH", help="connect to this Unix socket instead")
    args = parser.parse_args()

    connector = pike.Connector(pike.Primitives.FLOAT_CONVERTER)
    connector.run(block=False)
    if args.unix:
        connection, success = connector.connect_waiting("unix:" + args.unix)
    else:
        connection, success = connector.connect_waiting(args.host, args.port)
    if not success:
        sys.exit(f"cannot connect to {args.host}:{args.port}")

    for line in sys.stdin:
        line = line.strip()
        if line == "quit":
            break
        try:
            value = float(line)
        except ValueError:
            print(f"not a number: {line!r}", file=sys.stderr, flush=True)
            continue
        connector.send(connection, value)
        event = connector.recv(timeout=10)
        if event is None or event.type() != pike.Event.MESSAGE:
            sys.exit(f"no answer: {event!r}")
        print(repr(event.message()), flush=True)

    connector.disconnect(connection)
    connector.shutdown()


if __name__ == "__main__":
    main()
