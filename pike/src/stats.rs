//! Numbers an operator can watch: counters and gauges of a connector and
//! of each connection.
//!
//! [`Connector::stats`](crate::Connector::stats) takes a snapshot of the
//! whole connector, [`Connector::connection_stats`](crate::Connector::connection_stats)
//! of one connection. Counting costs nothing on the hot path: each
//! connection's endpoint counts under the lock it is already driven under,
//! and a snapshot adds them up (the totals of closed connections are kept
//! apart, so a snapshot is exact: every connection is counted once).
//!
//! With the `metrics` feature, `Stats::record_metrics` hands a snapshot
//! to the [`metrics`](https://docs.rs/metrics) facade (absolute counters
//! and gauges, names prefixed `pike_`), for whatever exporter the
//! application installed; `pike listen --stats` prints one a second.
//!
//! ```
//! # fn main() -> std::io::Result<()> {
//! use pike::Connector;
//! use pike::converters::StringConverter;
//!
//! let c = Connector::builder(StringConverter::new()).listen("127.0.0.1:0").spawn()?;
//! let stats = c.stats();
//! assert_eq!(stats.connections_open, 0);
//! assert_eq!(stats.traffic.messages_in, 0);
//! # Ok(()) }
//! ```

use std::ops::AddAssign;

use crate::error::{ConverterFault, DisconnectReason, PeerFault, RejectReason, SocketFailure};

/// Messages and bytes that went through a connection (or all of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Traffic {
    /// Messages received in full.
    pub messages_in: u64,
    /// Bytes read from the transport (framing included).
    pub bytes_in: u64,
    /// Messages written in full.
    pub messages_out: u64,
    /// Bytes written to the transport.
    pub bytes_out: u64,
}

impl AddAssign for Traffic {
    fn add_assign(&mut self, other: Self) {
        self.messages_in += other.messages_in;
        self.bytes_in += other.bytes_in;
        self.messages_out += other.messages_out;
        self.bytes_out += other.bytes_out;
    }
}

/// Messages handed back to the application unsent, by why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandedBack {
    /// Sent to a connection that was closed or unknown
    /// ([`RejectReason::Closed`]).
    pub closed: u64,
    /// Sent to a connection that was disconnecting
    /// ([`RejectReason::Disconnecting`]).
    pub disconnecting: u64,
    /// Their serializer failed ([`RejectReason::Serialize`]).
    pub serialize_failed: u64,
    /// The unsent queue was at its cap ([`RejectReason::QueueFull`]).
    pub queue_full: u64,
    /// Unwritten when their connection ended (in `FinishConnect`,
    /// `FinishDisconnect` or `RemoteDisconnect`).
    pub at_close: u64,
}

impl HandedBack {
    /// Every message handed back.
    pub fn total(&self) -> u64 {
        self.closed + self.disconnecting + self.serialize_failed + self.queue_full + self.at_close
    }

    pub(crate) fn count_rejected(&mut self, reason: &RejectReason) {
        match reason {
            RejectReason::Closed => self.closed += 1,
            RejectReason::Disconnecting => self.disconnecting += 1,
            RejectReason::Serialize(_) => self.serialize_failed += 1,
            RejectReason::QueueFull => self.queue_full += 1,
        }
    }
}

impl AddAssign for HandedBack {
    fn add_assign(&mut self, other: Self) {
        self.closed += other.closed;
        self.disconnecting += other.disconnecting;
        self.serialize_failed += other.serialize_failed;
        self.queue_full += other.queue_full;
        self.at_close += other.at_close;
    }
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Ending {
    /// A local `disconnect` (or a shutdown) completed.
    Local,
    /// Connecting failed, timed out or was cancelled.
    ConnectFailed,
    /// The peer closed.
    PeerClosed,
    /// The socket failed (reset, broken pipe…).
    SocketError,
    /// The peer broke the protocol.
    ProtocolError,
    /// The idle or message timeout expired.
    Timeout,
    /// The operating system gave up on the peer (keepalive, user timeout).
    PeerUnresponsive,
    /// A converter failed or panicked.
    ConverterFailed,
    /// TLS failed (the handshake, or a record the peer sent).
    TlsFailed,
}

impl Ending {
    pub(crate) fn of(reason: &DisconnectReason) -> Self {
        match reason {
            DisconnectReason::PeerClosed => Ending::PeerClosed,
            DisconnectReason::Socket(SocketFailure::Io(_)) => Ending::SocketError,
            DisconnectReason::Peer(PeerFault::Protocol(_)) => Ending::ProtocolError,
            DisconnectReason::Peer(PeerFault::IdleTimeout(_))
            | DisconnectReason::Peer(PeerFault::MessageTimeout(_)) => Ending::Timeout,
            DisconnectReason::Socket(SocketFailure::Unresponsive(_)) => Ending::PeerUnresponsive,
            DisconnectReason::Converter(ConverterFault::Serialize(_))
            | DisconnectReason::Converter(ConverterFault::SerializerStalled)
            | DisconnectReason::Converter(ConverterFault::SerializerPanicked(_))
            | DisconnectReason::Converter(ConverterFault::DeserializerPanicked(_)) => {
                Ending::ConverterFailed
            }
            DisconnectReason::Tls(_) => Ending::TlsFailed,
        }
    }

    /// A short name, as in metrics labels: `local`, `connect_failed`,
    /// `peer_closed`, `socket_error`, `protocol_error`, `timeout`,
    /// `peer_unresponsive`, `converter_failed`, `tls_failed`.
    pub fn name(self) -> &'static str {
        match self {
            Ending::Local => "local",
            Ending::ConnectFailed => "connect_failed",
            Ending::PeerClosed => "peer_closed",
            Ending::SocketError => "socket_error",
            Ending::ProtocolError => "protocol_error",
            Ending::Timeout => "timeout",
            Ending::PeerUnresponsive => "peer_unresponsive",
            Ending::ConverterFailed => "converter_failed",
            Ending::TlsFailed => "tls_failed",
        }
    }

    const ALL: [Ending; 9] = [
        Ending::Local,
        Ending::ConnectFailed,
        Ending::PeerClosed,
        Ending::SocketError,
        Ending::ProtocolError,
        Ending::Timeout,
        Ending::PeerUnresponsive,
        Ending::ConverterFailed,
        Ending::TlsFailed,
    ];
}

/// Connections closed, by how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Closed([u64; 9]);

impl Closed {
    /// How many ended so.
    pub fn get(&self, ending: Ending) -> u64 {
        self.0[ending as usize]
    }

    /// Every connection closed.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Each ending with its count.
    pub fn iter(&self) -> impl Iterator<Item = (Ending, u64)> + '_ {
        Ending::ALL.into_iter().map(|e| (e, self.get(e)))
    }

    pub(crate) fn count(&mut self, ending: Ending) {
        self.0[ending as usize] += 1;
    }
}

/// One connection's numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// What went through it.
    pub traffic: Traffic,
    /// Its messages handed back unsent.
    pub handed_back: HandedBack,
    /// Protocol errors of its peer (0 or 1: the first ends it).
    pub protocol_errors: u64,
    /// Gauge: messages not yet written in full.
    pub queued_messages: u64,
    /// Gauge: their bytes (by `Converter::message_size`).
    pub queued_bytes: u64,
    /// How it ended, once it has.
    pub ending: Option<Ending>,
    /// Attempts to connect that failed (more than one with a
    /// [`Reconnect`](crate::Reconnect) policy).
    pub connect_failures: u64,
}

/// A connector's numbers: every connection's, open and closed, added up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Gauge: connections open now (connecting, accepted or not yet,
    /// disconnecting).
    pub connections_open: u64,
    /// Connections accepted from the listener.
    pub accepted: u64,
    /// Connections made by `connect` that connected (each link of one that
    /// reconnects counts).
    pub connected: u64,
    /// Attempts to connect made again after a failure (connections with a
    /// [`Reconnect`](crate::Reconnect) policy).
    pub connect_retries: u64,
    /// Connections closed, by how they ended.
    pub closed: Closed,
    /// What went through every connection.
    pub traffic: Traffic,
    /// Messages handed back unsent, by why.
    pub handed_back: HandedBack,
    /// Protocol errors of peers.
    pub protocol_errors: u64,
    /// Gauge: messages not yet written, over all connections.
    pub queued_messages: u64,
    /// Gauge: their bytes.
    pub queued_bytes: u64,
    /// Gauge: events queued for the application and not yet taken (main
    /// queue and separate queues).
    pub undelivered_events: u64,
    /// Gauge: bytes counted against the memory budget.
    pub memory_in_use: u64,
    /// The memory budget.
    pub memory_budget: u64,
}

impl Stats {
    /// Adds one connection's counters (and, if open, its gauges).
    pub(crate) fn add_connection(&mut self, c: &ConnectionStats) {
        self.traffic += c.traffic;
        self.handed_back += c.handed_back;
        self.protocol_errors += c.protocol_errors;
        self.queued_messages += c.queued_messages;
        self.queued_bytes += c.queued_bytes;
    }

    /// Hands this snapshot to the `metrics` facade: counters as absolute
    /// values (`pike_messages_in_total`, `pike_bytes_out_total`,
    /// `pike_handed_back_total{reason}`, `pike_closed_total{ending}`, …)
    /// and gauges (`pike_connections_open`, `pike_queued_bytes`,
    /// `pike_memory_in_use_bytes`, …), each with the `connector` label
    /// given.
    #[cfg(feature = "metrics")]
    pub fn record_metrics(&self, connector: &str) {
        let label = connector.to_owned();
        let counter = |name: &'static str, value: u64| {
            metrics::counter!(name, "connector" => label.clone()).absolute(value);
        };
        counter("pike_accepted_total", self.accepted);
        counter("pike_connected_total", self.connected);
        counter("pike_connect_retries_total", self.connect_retries);
        counter("pike_messages_in_total", self.traffic.messages_in);
        counter("pike_bytes_in_total", self.traffic.bytes_in);
        counter("pike_messages_out_total", self.traffic.messages_out);
        counter("pike_bytes_out_total", self.traffic.bytes_out);
        counter("pike_protocol_errors_total", self.protocol_errors);
        let h = &self.handed_back;
        for (reason, value) in [
            ("closed", h.closed),
            ("disconnecting", h.disconnecting),
            ("serialize_failed", h.serialize_failed),
            ("queue_full", h.queue_full),
            ("at_close", h.at_close),
        ] {
            metrics::counter!("pike_handed_back_total", "connector" => label.clone(), "reason" => reason)
                .absolute(value);
        }
        for (ending, value) in self.closed.iter() {
            metrics::counter!("pike_closed_total", "connector" => label.clone(), "ending" => ending.name())
                .absolute(value);
        }
        let gauge = |name: &'static str, value: u64| {
            metrics::gauge!(name, "connector" => label.clone()).set(value as f64);
        };
        gauge("pike_connections_open", self.connections_open);
        gauge("pike_queued_messages", self.queued_messages);
        gauge("pike_queued_bytes", self.queued_bytes);
        gauge("pike_undelivered_events", self.undelivered_events);
        gauge("pike_memory_in_use_bytes", self.memory_in_use);
        gauge("pike_memory_budget_bytes", self.memory_budget);
    }
}

impl std::fmt::Display for Stats {
    /// One line, as `pike listen --stats` prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "open {} accepted {} closed {} | in {} msgs {} B | out {} msgs {} B | queued {} msgs {} B | undelivered {} | handed back {} | protocol errors {} | memory {}/{} B",
            self.connections_open,
            self.accepted,
            self.closed.total(),
            self.traffic.messages_in,
            self.traffic.bytes_in,
            self.traffic.messages_out,
            self.traffic.bytes_out,
            self.queued_messages,
            self.queued_bytes,
            self.undelivered_events,
            self.handed_back.total(),
            self.protocol_errors,
            self.memory_in_use,
            self.memory_budget,
        )
    }
}
