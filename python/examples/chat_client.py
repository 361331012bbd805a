#!/usr/bin/env python3
"""Joins the chat server: asks for a nickname until the server takes one,
then sends each line typed and prints what the others say. `quit` or the
end of input leaves.

    python3 chat_client.py --host 127.0.0.1 --port 3453
"""

import argparse
import os
import sys
import threading

import pike


def main():
    parser = argparse.ArgumentParser(description="Chat client")
    parser.add_argument("--host", default="localhost", help="server host")
    parser.add_argument("--port", type=int, default=3453, help="server port")
    parser.add_argument("--unix", metavar="PATH", help="connect to this Unix socket instead")
    args = parser.parse_args()

    connector = pike.Connector(pike.Primitives.STRING_CONVERTER)
    connector.run(block=False)
    if args.unix:
        connection, success = connector.connect_waiting("unix:" + args.unix)
    else:
        connection, success = connector.connect_waiting(args.host, args.port)
    if not success:
        sys.exit(f"cannot connect to {args.host}:{args.port}")

    lines = iter(sys.stdin)
    while True:
        print("nickname: ", end="", flush=True)
        nickname = next(lines, None)
        if nickname is None:
            return
        nickname = nickname.strip()
        connector.send(connection, nickname)
        event = connector.recv(timeout=10)
        if event is None or event.type() != pike.Event.MESSAGE:
            sys.exit(f"no answer from the server: {event!r}")
        if event.message() == "ok":
            print(f"joined as {nickname}", flush=True)
            break
        print(event.message(), flush=True)

    def print_messages():
        while True:
            event = connector.recv()
            if event is None or event.type() == pike.Event.FINISH_DISCONNECT:
                return
            if event.type() == pike.Event.MESSAGE:
                print(event.message(), flush=True)
            elif event.type() == pike.Event.ENDPOINT_DISCONNECT:
                print("the server closed the chat", flush=True)
                os._exit(0)

    printer = threading.Thread(target=print_messages, daemon=True)
    printer.start()
    for line in lines:
        line = line.rstrip("\n")
        if line.strip() == "quit":
            break
        connector.send(connection, line)
    connector.disconnect(connection)
    printer.join()
    connector.shutdown(now=True)


if __name__ == "__main__":
    main()
