#!/usr/bin/env python3
"""Receives files into a directory and prints where each was saved. `quit`
or the end of input shuts it down, letting transfers under way finish.

    python3 filecopy_server.py --port 3453 --directory received
"""

import argparse
import os
import sys
import threading

import pike


def main():
    parser = argparse.ArgumentParser(description="File copy server")
    parser.add_argument("--port", type=int, default=3453, help="port to listen on")
    parser.add_argument("--unix", metavar="PATH", help="listen on this Unix socket instead")
    parser.add_argument("--directory", default=".", help="where to save received files")
    args = parser.parse_args()

    os.makedirs(args.directory, exist_ok=True)
    converter = pike.FileConverter(args.directory)
    if args.unix:
        connector = pike.Connector(converter, address="unix:" + args.unix)
    else:
        connector = pike.Connector(converter, args.port)
    connector.run(block=False)
    print("listening on", connector.local_address(), file=sys.stderr, flush=True)

    def wait_for_quit():
        for line in sys.stdin:
            if line.strip() == "quit":
                break
        connector.shutdown(finish_queues=True)

    threading.Thread(target=wait_for_quit, daemon=True).start()
    while True:
        event = connector.recv()
        if event is None:
            break
        if event.type() == pike.Event.ENDPOINT_CONNECT:
            event.finish_accept(separate=False)
        elif event.type() == pike.Event.MESSAGE:
            print(event.message(), flush=True)
        elif event.type() == pike.Event.ENDPOINT_DISCONNECT:
            if event.reason() != "peer closed the connection":
                print(f"{event.connection()!r}: {event.reason()}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
