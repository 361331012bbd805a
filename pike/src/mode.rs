//! How a connection's events are delivered, and how connections and the
//! connector are closed.

/// Which queue a connection's events go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Delivery {
    /// The connector's main queue, read with `recv`.
    #[default]
    Merged,
    /// The connection's own queue, read with `recv_connection`, until
    /// `merge_connection`.
    Separate,
}

/// How [`disconnect`](crate::Connector::disconnect) treats messages
/// not yet written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DisconnectMode {
    /// Close at once: the partly written message comes back as
    /// `incomplete`, every other one as `queued`.
    Now,
    /// Finish writing the partly written message, then close; the others
    /// come back as `queued`.
    FinishMessage,
    /// Write every enqueued message, then close; nothing comes back.
    #[default]
    FinishQueue,
}

/// How a connector's shutdown treats each established connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ShutdownMode {
    /// Disconnect every connection with [`DisconnectMode::Now`].
    Now,
    /// Disconnect every connection with [`DisconnectMode::FinishMessage`].
    FinishMessage,
    /// Disconnect every connection with [`DisconnectMode::FinishQueue`].
    #[default]
    FinishQueue,
}

impl ShutdownMode {
    /// The old name of [`ShutdownMode::FinishMessage`].
    #[deprecated(
        since = "0.2.0",
        note = "renamed `FinishMessage`, as in `DisconnectMode`"
    )]
    #[allow(non_upper_case_globals)]
    pub const FinishMessages: Self = Self::FinishMessage;
    /// The old name of [`ShutdownMode::FinishQueue`].
    #[deprecated(
        since = "0.2.0",
        note = "renamed `FinishQueue`, as in `DisconnectMode`"
    )]
    #[allow(non_upper_case_globals)]
    pub const FinishQueues: Self = Self::FinishQueue;
}

impl From<ShutdownMode> for DisconnectMode {
    fn from(mode: ShutdownMode) -> Self {
        match mode {
            ShutdownMode::Now => DisconnectMode::Now,
            ShutdownMode::FinishMessage => DisconnectMode::FinishMessage,
            ShutdownMode::FinishQueue => DisconnectMode::FinishQueue,
        }
    }
}
