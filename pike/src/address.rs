//! Addresses: where to connect or listen ([`Address`]), and where a peer
//! is ([`PeerAddr`]).
//!
//! Two transports take them: TCP (`127.0.0.1:80`, `[::1]:80`,
//! `example.org:80`) and Unix domain sockets (`unix:/run/app.sock`, and on
//! Linux `unix:@name` for a socket in the abstract namespace, which has no
//! file).
//!
//! ```
//! use pike::Address;
//!
//! let tcp: Address = "127.0.0.1:8080".into();
//! let unix: Address = "unix:/tmp/app.sock".into();
//! assert_eq!(tcp.to_string(), "127.0.0.1:8080");
//! assert_eq!(unix.to_string(), "unix:/tmp/app.sock");
//! assert_eq!(Address::unix("/tmp/app.sock"), unix);
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

/// The prefix that marks a Unix socket address in text.
const UNIX_PREFIX: &str = "unix:";

/// Where to connect or listen: socket addresses, a `host:port` name
/// (resolved off the network thread), or a Unix socket.
///
/// Converts from `SocketAddr`, `(IpAddr, u16)`, `(&str, u16)` and text:
/// `"127.0.0.1:80"`, `"[::1]:80"`, `"example.org:80"`, `"unix:/path"`,
/// `"unix:@name"` (Linux abstract namespace). Text that starts with
/// `unix:` is always a Unix socket (a host named `unix` is
/// `("unix", 80)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address(pub(crate) Target);

/// What an [`Address`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Addrs(Vec<SocketAddr>),
    /// `host:port`, resolved by a helper thread.
    Name(String),
    Unix(UnixAddr),
}

/// A Unix domain socket's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnixAddr {
    /// A socket file.
    Path(PathBuf),
    /// A name in Linux's abstract namespace (no file; gone with the last
    /// socket that uses it). Written `unix:@name`.
    Abstract(Vec<u8>),
}

impl Address {
    /// The Unix socket at `path` (any path, UTF-8 or not).
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Address(Target::Unix(UnixAddr::Path(path.into())))
    }

    /// The Linux abstract-namespace Unix socket `name` (`unix:@name`).
    pub fn unix_abstract(name: impl Into<Vec<u8>>) -> Self {
        Address(Target::Unix(UnixAddr::Abstract(name.into())))
    }

    /// The socket address, if this is a single one (TCP, not a name).
    pub fn as_socket_addr(&self) -> Option<SocketAddr> {
        match &self.0 {
            Target::Addrs(addrs) if addrs.len() == 1 => Some(addrs[0]),
            _ => None,
        }
    }

    /// The Unix socket address, if this is one.
    pub fn as_unix(&self) -> Option<&UnixAddr> {
        match &self.0 {
            Target::Unix(addr) => Some(addr),
            _ => None,
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addrs(addrs) => {
                for (i, addr) in addrs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{addr}")?;
                }
                Ok(())
            }
            Target::Name(name) => f.write_str(name),
            Target::Unix(addr) => write!(f, "{addr}"),
        }
    }
}

impl fmt::Display for UnixAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnixAddr::Path(path) => write!(f, "{UNIX_PREFIX}{}", path.display()),
            UnixAddr::Abstract(name) => {
                write!(f, "{UNIX_PREFIX}@{}", String::from_utf8_lossy(name))
            }
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Self {
        Address(Target::Addrs(vec![addr]))
    }
}

impl From<&SocketAddr> for Address {
    fn from(addr: &SocketAddr) -> Self {
        (*addr).into()
    }
}

impl From<(IpAddr, u16)> for Address {
    fn from(addr: (IpAddr, u16)) -> Self {
        SocketAddr::from(addr).into()
    }
}

impl From<(Ipv4Addr, u16)> for Address {
    fn from(addr: (Ipv4Addr, u16)) -> Self {
        SocketAddr::from(addr).into()
    }
}

impl From<(Ipv6Addr, u16)> for Address {
    fn from(addr: (Ipv6Addr, u16)) -> Self {
        SocketAddr::from(addr).into()
    }
}

impl From<UnixAddr> for Address {
    fn from(addr: UnixAddr) -> Self {
        Address(Target::Unix(addr))
    }
}

impl From<&str> for Address {
    /// `"127.0.0.1:80"`, `"[::1]:80"`, `"example.org:80"`, `"unix:/path"`
    /// or `"unix:@name"`.
    fn from(addr: &str) -> Self {
        if let Some(rest) = addr.strip_prefix(UNIX_PREFIX) {
            return match rest.strip_prefix('@') {
                Some(name) => Address::unix_abstract(name.as_bytes()),
                None => Address::unix(rest),
            };
        }
        match addr.parse::<SocketAddr>() {
            Ok(addr) => addr.into(),
            Err(_) => Address(Target::Name(addr.to_owned())),
        }
    }
}

impl From<String> for Address {
    fn from(addr: String) -> Self {
        addr.as_str().into()
    }
}

impl From<&String> for Address {
    fn from(addr: &String) -> Self {
        addr.as_str().into()
    }
}

impl From<&Address> for Address {
    fn from(addr: &Address) -> Self {
        addr.clone()
    }
}

impl From<(&str, u16)> for Address {
    fn from((host, port): (&str, u16)) -> Self {
        match host.parse::<IpAddr>() {
            Ok(ip) => (ip, port).into(),
            Err(_) => Address(Target::Name(format!("{host}:{port}"))),
        }
    }
}

/// Where a connection's peer is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerAddr {
    /// A TCP peer.
    Inet(SocketAddr),
    /// A Unix socket peer: its address if it bound one (clients usually
    /// do not).
    Unix(Option<UnixAddr>),
}

impl PeerAddr {
    /// The socket address of a TCP peer.
    pub fn as_socket_addr(&self) -> Option<SocketAddr> {
        match self {
            PeerAddr::Inet(addr) => Some(*addr),
            PeerAddr::Unix(_) => None,
        }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Inet(addr) => write!(f, "{addr}"),
            PeerAddr::Unix(Some(addr)) => write!(f, "{addr}"),
            PeerAddr::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms() {
        let a: Address = "127.0.0.1:80".into();
        assert_eq!(a.as_socket_addr(), Some("127.0.0.1:80".parse().unwrap()));
        let a: Address = "[::1]:80".into();
        assert_eq!(a.to_string(), "[::1]:80");
        let a: Address = "example.org:80".into();
        assert_eq!(a.0, Target::Name("example.org:80".into()));
        assert_eq!(a.to_string(), "example.org:80");
        let a: Address = "unix:/run/x.sock".into();
        assert_eq!(a.as_unix(), Some(&UnixAddr::Path("/run/x.sock".into())));
        assert_eq!(a.to_string(), "unix:/run/x.sock");
        let a: Address = "unix:@pike".into();
        assert_eq!(a.as_unix(), Some(&UnixAddr::Abstract(b"pike".to_vec())));
        assert_eq!(a.to_string(), "unix:@pike");
        let a: Address = ("localhost", 7).into();
        assert_eq!(a.0, Target::Name("localhost:7".into()));
        let a: Address = ("::1", 7).into();
        assert_eq!(a.to_string(), "[::1]:7");
    }

    #[test]
    fn peer_addresses_print() {
        assert_eq!(
            PeerAddr::Inet("10.0.0.1:5".parse().unwrap()).to_string(),
            "10.0.0.1:5"
        );
        assert_eq!(PeerAddr::Unix(None).to_string(), "unix:(unnamed)");
        assert_eq!(
            PeerAddr::Unix(Some(UnixAddr::Path("/a".into()))).to_string(),
            "unix:/a"
        );
    }
}
