//! [`ConnectOptions`]: how one connection is opened, for every connect.

use crate::mode::Delivery;
use crate::reconnect::Reconnect;
use crate::transport;

/// How to open a connection: where its events go, over what (the
/// connector's TLS setting, TLS with settings of its own, or plaintext),
/// and whether it tries again when connecting fails or its link breaks
/// ([`reconnect`](Self::reconnect)).
/// The second argument of every connect
/// ([`connect`](crate::Connector::connect),
/// [`connect_timeout`](crate::Connector::connect_timeout),
/// [`connect_deadline`](crate::Connector::connect_deadline),
/// [`connect_timeout_with`](crate::Connector::connect_timeout_with),
/// [`connect_async`](crate::Connector::connect_async)). A [`Delivery`]
/// converts into it, so `connect(addr, Delivery::Merged)` means "merged,
/// over the connector's TLS setting".
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use pike::converters::StringConverter;
/// use pike::{ConnectOptions, Connector, Delivery};
///
/// let server = Connector::builder(StringConverter::new()).listen("127.0.0.1:0").spawn()?;
/// let client = Connector::builder(StringConverter::new()).spawn()?;
/// let addr = server.local_addr().unwrap();
/// let merged = client.connect(addr, Delivery::Merged)?;
/// let own_queue = client.connect(addr, ConnectOptions::new().delivery(Delivery::Separate))?;
/// # let _ = (merged, own_queue);
/// # Ok(()) }
/// ```
///
/// With the `tls` feature, [`tls`](Self::tls) sets the TLS of this one
/// connection (see [`crate::tls`]), and [`plaintext`](Self::plaintext)
/// opens it in the clear from a connector whose connects use TLS by
/// default ([`ConnectorBuilder::default_client_tls`](crate::ConnectorBuilder::default_client_tls)).
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    delivery: Delivery,
    layer: Layer,
    /// `None`: the connector's default; `Some(None)`: never.
    reconnect: Option<Option<Reconnect>>,
}

/// What a connection runs over.
#[derive(Debug, Clone, Default)]
enum Layer {
    /// The connector's default.
    #[default]
    Default,
    Plain,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    Tls(transport::ClientTls),
}

impl ConnectOptions {
    /// Merged delivery, over the connector's TLS setting.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where the connection's events go (default
    /// [`Delivery::Merged`]).
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// TLS with `tls` (feature `tls`): the connection's `FinishConnect`
    /// comes once the handshake is done, or says why it failed
    /// ([`ConnectError::Tls`](crate::ConnectError::Tls)). The server's
    /// certificate must be valid for the host connected to (a name or an
    /// IP address) unless `tls` names another
    /// ([`ClientTls::with_server_name`](crate::tls::ClientTls::with_server_name)).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: &crate::tls::ClientTls) -> Self {
        self.layer = Layer::Tls(tls.clone());
        self
    }

    /// In the clear, even from a connector whose connects use TLS by
    /// default.
    pub fn plaintext(mut self) -> Self {
        self.layer = Layer::Plain;
        self
    }

    /// Tries again, as `policy` says, when an attempt to connect fails
    /// (see [`Reconnect`]).
    pub fn reconnect(mut self, policy: Reconnect) -> Self {
        self.reconnect = Some(Some(policy));
        self
    }

    /// Does not try again when connecting fails, even from a connector
    /// whose connects do by default
    /// ([`ConnectorBuilder::default_reconnect`](crate::ConnectorBuilder::default_reconnect)).
    pub fn no_reconnect(mut self) -> Self {
        self.reconnect = Some(None);
        self
    }

    /// Its reconnect policy, given the connector's default.
    pub(crate) fn reconnect_policy(&self, default: Option<Reconnect>) -> Option<Reconnect> {
        self.reconnect.unwrap_or(default)
    }

    /// Its delivery, and its TLS given the connector's default.
    pub(crate) fn resolve(
        self,
        default: Option<&transport::ClientTls>,
    ) -> (Delivery, Option<transport::ClientTls>) {
        let tls = match self.layer {
            Layer::Default => default.cloned(),
            Layer::Plain => None,
            Layer::Tls(tls) => Some(tls),
        };
        (self.delivery, tls)
    }
}

impl From<Delivery> for ConnectOptions {
    fn from(delivery: Delivery) -> Self {
        Self::new().delivery(delivery)
    }
}
