#!/usr/bin/env python3
"""A chat room: each client first picks a free nickname on its own event
queue (separate=True), then the connection is merged into the main queue,
where every message is relayed to everybody else. Lines typed here go to
everybody; `quit` or the end of input closes the room.

The original's chat server, for this package.

    python3 chat_server.py --port 3453 --server-nickname server
"""

import argparse
import sys
import threading

import pike


class UserManager:
    """The nicknames taken, by connection."""

    def __init__(self, server_nickname):
        self._nicknames = {}
        self._lock = threading.Lock()
        self.server_nickname = server_nickname

    def add(self, nickname, connection):
        """Takes `nickname` for `connection`; False if it is taken."""
        with self._lock:
            if nickname in self._nicknames.values():
                return False
            self._nicknames[connection] = nickname
            return True

    def nickname(self, connection):
        with self._lock:
            return self._nicknames.get(connection)

    def connections(self):
        with self._lock:
            return list(self._nicknames)

    def remove(self, connection):
        with self._lock:
            return self._nicknames.pop(connection, None)


def receive_nickname(connector, users, connection):
    """Asks for nicknames on the connection's own queue until one is free."""
    while True:
        event = connector.recv_connection(connection, timeout=60)
        if event is None or event.type() != pike.Event.MESSAGE:
            # No nickname in time, or gone.
            connector.disconnect(connection, now=True)
            return
        nickname = event.message()
        if nickname == users.server_nickname:
            connector.send(connection, "nickname taken by server")
        elif users.add(nickname, connection):
            connector.send(connection, "ok")
            print(f"{nickname} joined", flush=True)
            connector.merge_connection(connection)
            return
        else:
            connector.send(connection, "nickname taken by another user")


def broadcast(connector, users, message, sender=None):
    for connection in users.connections():
        if connection != sender:
            connector.send(connection, message)


def relay(connector, users):
    while True:
        event = connector.recv()
        if event is None:
            return
        kind = event.type()
        if kind == pike.Event.ENDPOINT_CONNECT:
            event.finish_accept(separate=True)
            threading.Thread(
                target=receive_nickname, args=(connector, users, event.connection()), daemon=True
            ).start()
        elif kind == pike.Event.ENDPOINT_DISCONNECT:
            nickname = users.remove(event.connection())
            if nickname is not None:
                print(f"{nickname} left", flush=True)
        elif kind == pike.Event.MESSAGE:
            nickname = users.nickname(event.connection())
            if nickname is not None:
                line = f"{nickname} says: {event.message()}"
                print(line, flush=True)
                broadcast(connector, users, line, sender=event.connection())


def main():
    parser = argparse.ArgumentParser(description="Chat server")
    parser.add_argument("--port", type=int, default=3453, help="port to listen on")
    parser.add_argument("--unix", metavar="PATH", help="listen on this Unix socket instead")
    parser.add_argument("--server-nickname", "--server_nickname", default="server",
                        help="nickname of the server")
    args = parser.parse_args()

    if args.unix:
        connector = pike.Connector(pike.Primitives.STRING_CONVERTER, address="unix:" + args.unix)
    else:
        connector = pike.Connector(pike.Primitives.STRING_CONVERTER, args.port)
    connector.run(block=False)
    print("listening on", connector.local_address(), file=sys.stderr, flush=True)
    users = UserManager(args.server_nickname)
    relay_thread = threading.Thread(target=relay, args=(connector, users), daemon=True)
    relay_thread.start()

    for line in sys.stdin:
        line = line.rstrip("\n")
        if line.strip() == "quit":
            break
        if line.strip():
            broadcast(connector, users, f"{users.server_nickname} says: {line}")
    connector.shutdown(finish_queues=True)
    relay_thread.join()


if __name__ == "__main__":
    main()
