"""Type stubs of the native module `pike._pike` (re-exported by `pike`)."""

import os
from typing import Any, Callable, Optional, Tuple, Union, final

_Address = Union[Tuple[str, int], str, None]

class ConnectorStopped(Exception):
    """The connector has stopped; the message passed to `send` is `args[0]`."""

@final
class Connection:
    """A connection to an endpoint: an opaque, hashable id. Connection
    objects of the same socket compare equal."""

    @property
    def id(self) -> int:
        """A number that identifies the connection within its connector."""
    def address(self) -> _Address:
        """`(host, port)` for TCP, the path for a Unix socket, `None` for
        an unnamed Unix peer."""
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __lt__(self, other: "Connection") -> bool: ...

class Event:
    """The base class of the six events; `type()` tells which one it is."""

    FINISH_CONNECT: int  # 0
    FINISH_DISCONNECT: int  # 1
    ENDPOINT_CONNECT: int  # 2
    ENDPOINT_DISCONNECT: int  # 3
    MESSAGE: int  # 4
    REJECTED_MESSAGE: int  # 5
    def connection(self) -> Connection:
        """The connection the event happened on."""
    def type(self) -> int:
        """One of the six constants above."""

@final
class FinishConnectEvent(Event):
    """A `connect` finished, in success or failure."""

    def success(self) -> bool:
        """Whether the connection was established."""
    def queued(self) -> Tuple[Any, ...]:
        """The messages sent while connecting that were not sent (empty on success)."""
    def reason(self) -> Optional[str]:
        """Why connecting failed, or `None`."""

@final
class FinishDisconnectEvent(Event):
    """A local `disconnect` (or `shutdown`) of the connection finished."""

    def incomplete(self) -> Any:
        """The message only partly sent (`now=True` only), or `None`."""
    def queued(self) -> Tuple[Any, ...]:
        """The messages not sent."""
    def reason(self) -> Optional[str]:
        """Why the close was cut short (the socket failed first), or `None`."""

@final
class RemoteConnectEvent(Event):
    """A remote endpoint connected to the listener."""

    def finish_accept(self, separate: bool = False) -> None:
        """Accepts the connection; with `separate=True` its events go to
        `recv_connection` until `merge_connection`."""
    def reject(self) -> None:
        """Refuses the connection (it is closed). An event dropped without
        `finish_accept` or `reject` rejects it too."""

@final
class RemoteDisconnectEvent(Event):
    """The remote endpoint closed the connection, or it broke."""

    def incomplete(self) -> Any:
        """The message only partly sent, or `None`."""
    def queued(self) -> Tuple[Any, ...]:
        """The messages not sent."""
    def reason(self) -> str:
        """Why: the peer closed it, a socket error, a protocol error (a
        converter's exception with its traceback), a timeout."""

@final
class MessageReceivedEvent(Event):
    """A message arrived."""

    def message(self) -> Any:
        """The message received."""

@final
class RejectedMessageEvent(Event):
    """A message sent could not be sent and comes back."""

    def message(self) -> Any:
        """The message handed back."""
    def reason(self) -> str:
        """Why it was not sent: the connection is disconnecting or gone, its
        queue is full, or its serializer failed before writing a byte."""

@final
class PrimitiveSerializer:
    def get_bytes(self) -> bytes:
        """The whole wire form on the first call, `b''` after."""

@final
class PrimitiveDeserializer:
    def put_bytes(self, data: bytes) -> Tuple[Any, ...]:
        """`(remainder, DONE, value)` or `(data, WAIT_FOR_MORE)`; `ValueError`
        for bytes that cannot begin a value."""

@final
class PrimitiveConverter:
    """A converter of one primitive type; its work runs in Rust."""

    def get_serializer(self, data: Any) -> PrimitiveSerializer: ...
    def get_deserializer(self) -> PrimitiveDeserializer: ...
    def with_max_message_size(self, max_message_size: int) -> "PrimitiveConverter":
        """Strings and bytes: the largest body accepted (1 MiB by default)."""

@final
class Primitives:
    """The primitive converters, wire-compatible with the original, and its
    helpers: `*_to_bytes(value)` returns the wire form, `bytes_to_*(data)`
    returns `(remainder, value)`, `value` `None` while `data` holds only
    part of one."""

    BOOL_CONVERTER: PrimitiveConverter
    INT_CONVERTER: PrimitiveConverter
    FLOAT_CONVERTER: PrimitiveConverter
    STRING_CONVERTER: PrimitiveConverter
    BYTES_CONVERTER: PrimitiveConverter
    @staticmethod
    def bool_to_bytes(data: bool) -> bytes: ...
    @staticmethod
    def bytes_to_bool(data: bytes) -> Tuple[bytes, Optional[bool]]: ...
    @staticmethod
    def int_to_bytes(data: int) -> bytes:
        """`OverflowError` beyond 64 bits."""
    @staticmethod
    def bytes_to_int(data: bytes) -> Tuple[bytes, Optional[int]]: ...
    @staticmethod
    def float_to_bytes(data: float) -> bytes: ...
    @staticmethod
    def bytes_to_float(data: bytes) -> Tuple[bytes, Optional[float]]: ...
    @staticmethod
    def string_to_bytes(data: str) -> bytes: ...
    @staticmethod
    def bytes_to_string(data: bytes) -> Tuple[bytes, Optional[str]]: ...

@final
class FileConverter:
    """Sends files by path; saves received ones in `save_directory` and
    delivers the saved path."""

    def __init__(self, save_directory: Union[str, os.PathLike]) -> None: ...
    @property
    def save_directory(self) -> str: ...

@final
class Reconnect:
    """How a connect tries again when it fails: waits from `min` to `max`
    seconds (doubling, with a random part), giving up `give_up_after`
    seconds after the first attempt (`None`: never). The connection keeps
    its `Connection` and its unsent messages through the attempts."""

    def __init__(self, min: float = 0.1, max: float = 10.0, give_up_after: Optional[float] = None) -> None: ...

_ReconnectArg = Union[bool, Reconnect, None]

@final
class Connector:
    """The hub through which connections are made and messages sent and
    received; thread-safe."""

    def __init__(
        self,
        converter: Any,
        port: Optional[int] = None,
        *,
        host: str = "",
        address: Optional[str] = None,
        memory_budget: Optional[int] = None,
        connect_timeout: Optional[float] = None,
        idle_timeout: Optional[float] = None,
    ) -> None:
        """`converter`: `Primitives.*_CONVERTER`, a `FileConverter`, or any
        object with `get_serializer(data)` and `get_deserializer()`. With
        `port` it listens (on every IPv4 interface, or `host`; 0 picks a
        port); `address` listens on any Pike address (`"unix:/path"`)."""
    def run(self, block: bool = True) -> None:
        """Starts the connector; `block=True` returns once it has shut down."""
    def port(self) -> Optional[int]: ...
    def local_address(self) -> Optional[str]: ...
    def listen_address(self) -> Optional[str]:
        """Deprecated: the old name of `local_address`."""
    def is_stopped(self) -> bool: ...
    def memory_in_use(self) -> int: ...
    def connect(
        self,
        host: str,
        port: Optional[int] = None,
        separate: bool = False,
        reconnect: _ReconnectArg = None,
    ) -> Connection:
        """Starts connecting; a `FinishConnectEvent` follows. With no `port`,
        `host` is a whole address (`"unix:/path"`). `reconnect` (`True` or a
        `Reconnect`) tries again while connecting fails."""
    def connect_waiting(
        self,
        host: str,
        port: Optional[int] = None,
        separate: bool = False,
        callback: Optional[Callable[[Connection, bool], Any]] = None,
        timeout: float = 10.0,
        reconnect: _ReconnectArg = None,
    ) -> Tuple[Connection, bool]:
        """Connects and waits for the outcome; `callback(connection, success)`
        runs before any event of the connection is delivered."""
    def disconnect(
        self,
        connection: Connection,
        now: bool = False,
        finish_message: bool = False,
        finish_queue: bool = True,
    ) -> None: ...
    def send(self, connection: Connection, message: Any) -> None:
        """Enqueues; never waits. Raises `ConnectorStopped` once stopped."""
    def send_waiting_for_room(self, connection: Connection, message: Any, timeout: Optional[float] = None) -> bool:
        """Waits for room under the connection's high-water mark; `False` on timeout."""
    def send_blocking(self, connection: Connection, message: Any, timeout: Optional[float] = None) -> bool:
        """Deprecated: the old name of `send_waiting_for_room`."""
    def try_send(self, connection: Connection, message: Any) -> bool:
        """`False`, the message not taken, if the connection's queue is over its high-water mark."""
    def recv(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event; `None` once stopped (and drained) or on timeout."""
    def recv_connection(self, connection: Connection, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event of a separate connection; `None` once merged or gone, or on timeout."""
    def merge_connection(self, connection: Connection) -> None: ...
    def shutdown(self, now: bool = False, finish_messages: bool = False, finish_queues: bool = True) -> None:
        """Closes everything in the mode given and returns once done."""
