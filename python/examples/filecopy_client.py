#!/usr/bin/env python3
"""Sends one file to the filecopy server and waits until it is written.

    python3 filecopy_client.py --host 127.0.0.1 --port 3453 --filename notes.txt
"""

import argparse
import sys

import pike


def main():
    parser = argparse.ArgumentParser(description="File copy client")
    parser.add_argument("--host", default="localhost", help="server host")
    parser.add_argument("--port", type=int, default=3453, help="server port")
    parser.add_argument("--unix", metavar="PATH", help="connect to this Unix socket instead")
    parser.add_argument("--filename", required=True, help="the file to send")
    args = parser.parse_args()

    connector = pike.Connector(pike.FileConverter("."))
    connector.run(block=False)
    if args.unix:
        connection, success = connector.connect_waiting("unix:" + args.unix)
    else:
        connection, success = connector.connect_waiting(args.host, args.port)
    if not success:
        sys.exit(f"cannot connect to {args.host}:{args.port}")
    connector.send(connection, args.filename)
    # Closes once the whole file is sent.
    connector.disconnect(connection, finish_queue=True)

    error = None
    while True:
        event = connector.recv()
        if event is None:
            error = "connector stopped"
            break
        kind = event.type()
        if kind == pike.Event.REJECTED_MESSAGE:
            error = f"cannot send: {event.reason()}"
            break
        if kind == pike.Event.FINISH_DISCONNECT:
            if event.reason() is not None:
                error = f"cut short: {event.reason()}"
            break
        if kind == pike.Event.ENDPOINT_DISCONNECT:
            error = f"server disconnected: {event.reason()}"
            break
    connector.shutdown(now=True)
    if error:
        sys.exit(error)
    print(f"sent {args.filename}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
