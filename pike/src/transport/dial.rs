//! Where and how to connect, in one value: the one thing a connect carries
//! from the [`Connector`](crate::Connector) to the network loop.
//!
//! A [`Dial`] names the target (addresses, a Unix socket, or a name to
//! resolve), where the connection's events go, and the [`Layer`] its bytes
//! go through once the socket is connected. A new kind of transport is
//! one file beside this one and one arm of [`Layer`] (or of the target);
//! what a reconnect policy needs (where to connect again, and how) is
//! here already, and its settings belong here.

use std::io;

use super::{ClientTls, Peer, Transport};
use crate::address::Target;
use crate::mode::Delivery;

/// What a connection's bytes go through on top of its socket.
#[derive(Debug, Clone, Default)]
pub(crate) enum Layer {
    /// The socket itself.
    #[default]
    Plain,
    /// TLS, the server's certificate checked against `host` (a name from
    /// the target, or else the peer's IP address).
    Tls {
        config: ClientTls,
        host: Option<String>,
    },
}

impl Layer {
    /// Starts connecting to `peer`, without blocking, through this layer.
    pub(crate) fn connect(&self, peer: &Peer) -> io::Result<Box<dyn Transport>> {
        self.over(super::plain_connect(peer)?, peer)
    }

    /// Puts this layer over `transport`, connecting to `peer`.
    pub(crate) fn over(
        &self,
        transport: Box<dyn Transport>,
        peer: &Peer,
    ) -> io::Result<Box<dyn Transport>> {
        match self {
            Layer::Plain => Ok(transport),
            Layer::Tls { config, host } => super::tls_client(transport, peer, config, host),
        }
    }
}

/// Where and how to connect (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct Dial {
    pub(crate) target: Target,
    pub(crate) delivery: Delivery,
    pub(crate) layer: Layer,
    /// How a failed attempt is tried again, if it is.
    pub(crate) reconnect: Option<crate::reconnect::Reconnect>,
}

impl Dial {
    /// A connect to `target`, through TLS if `tls` is given: the server's
    /// certificate is then checked against the target's host name, if it
    /// has one.
    pub(crate) fn new(target: Target, delivery: Delivery, tls: Option<ClientTls>) -> Self {
        let layer = match tls {
            None => Layer::Plain,
            Some(config) => Layer::Tls {
                config,
                host: host_of(&target),
            },
        };
        Self {
            target,
            delivery,
            layer,
            reconnect: None,
        }
    }
}

/// The host name a target names, if it names one (`None`: addresses,
/// whose certificate is checked against the IP connected to).
fn host_of(target: &Target) -> Option<String> {
    match target {
        Target::Name(name) => name.rsplit_once(':').map(|(host, _)| {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned()
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_dial_has_no_layer_and_keeps_its_target() {
        let dial = Dial::new(
            Target::Name("example.org:80".into()),
            Delivery::Merged,
            None,
        );
        assert!(matches!(dial.layer, Layer::Plain));
        assert!(matches!(&dial.target, Target::Name(n) if n == "example.org:80"));
    }

    #[test]
    fn a_certificate_is_checked_against_the_host_the_target_names() {
        let name = |n: &str| host_of(&Target::Name(n.into()));
        assert_eq!(name("example.org:443"), Some("example.org".into()));
        assert_eq!(name("[::1]:443"), Some("::1".into()));
        let addr = "127.0.0.1:443".parse().unwrap();
        assert_eq!(host_of(&Target::Addrs(vec![addr])), None);
    }
}
