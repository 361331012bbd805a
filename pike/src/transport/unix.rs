//! Unix domain sockets: a socket file, or (Linux) a name in the abstract
//! namespace.
//!
//! A listener's socket file is its own: `bind` replaces a stale file left
//! by a process that died (a socket file nothing listens on), never a
//! live one nor a file of another kind, and the listener removes its file
//! when it is dropped (at shutdown), unless it was replaced meanwhile.

use std::io;
use std::net::Shutdown;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net as std_unix;
use std::path::{Path, PathBuf};

use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use super::{Listener, Transport};
use crate::address::{Address, PeerAddr, UnixAddr};

impl Transport for UnixStream {
    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(self, token, Interest::READABLE | Interest::WRITABLE)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        registry.deregister(self)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    fn take_error(&self) -> io::Result<Option<io::Error>> {
        UnixStream::take_error(self)
    }

    fn is_connected(&self) -> io::Result<bool> {
        match self.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The standard library's form of `addr`.
fn std_addr(addr: &UnixAddr) -> io::Result<std_unix::SocketAddr> {
    match addr {
        UnixAddr::Path(path) => std_unix::SocketAddr::from_pathname(path),
        #[cfg(any(target_os = "linux", target_os = "android"))]
        UnixAddr::Abstract(name) => {
            #[cfg(target_os = "android")]
            use std::os::android::net::SocketAddrExt;
            #[cfg(target_os = "linux")]
            use std::os::linux::net::SocketAddrExt;
            std_unix::SocketAddr::from_abstract_name(name)
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        UnixAddr::Abstract(_) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "abstract Unix socket names need Linux",
        )),
    }
}

/// Ours again: what `std` says a peer's address is.
fn peer_addr(addr: &std_unix::SocketAddr) -> Option<UnixAddr> {
    if let Some(path) = addr.as_pathname() {
        return Some(UnixAddr::Path(path.to_owned()));
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        #[cfg(target_os = "android")]
        use std::os::android::net::SocketAddrExt;
        #[cfg(target_os = "linux")]
        use std::os::linux::net::SocketAddrExt;
        if let Some(name) = addr.as_abstract_name() {
            return Some(UnixAddr::Abstract(name.to_owned()));
        }
    }
    None
}

/// Starts connecting to `addr`, without blocking.
pub(crate) fn connect(addr: &UnixAddr) -> io::Result<Box<dyn Transport>> {
    Ok(Box::new(UnixStream::connect_addr(&std_addr(addr)?)?))
}

#[derive(Debug)]
struct Unix {
    listener: UnixListener,
    /// The socket file, and its identity (device, inode) when bound.
    file: Option<(PathBuf, (u64, u64))>,
}

impl Listener for Unix {
    fn accept(&mut self) -> io::Result<(Box<dyn Transport>, PeerAddr)> {
        let (stream, peer) = self.listener.accept()?;
        Ok((Box::new(stream), PeerAddr::Unix(peer_addr(&peer))))
    }

    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut self.listener, token, Interest::READABLE)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        registry.deregister(&mut self.listener)
    }
}

impl Drop for Unix {
    fn drop(&mut self) {
        // Removed only if it is still the file we bound: another process
        // may have replaced it since.
        if let Some((path, id)) = &self.file
            && identity(path).is_some_and(|now| now == *id)
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A file's device and inode.
fn identity(path: &Path) -> Option<(u64, u64)> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some((meta.dev(), meta.ino()))
}

/// Listens on `addr`, replacing a stale socket file.
pub(crate) fn bind(addr: &UnixAddr) -> io::Result<(Box<dyn Listener>, Address)> {
    let std_address = std_addr(addr)?;
    let listener = match std_unix::UnixListener::bind_addr(&std_address) {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => match addr {
            UnixAddr::Path(path) if is_stale(path)? => {
                tracing::info!("{}: replacing a stale socket file", path.display());
                std::fs::remove_file(path)?;
                std_unix::UnixListener::bind_addr(&std_address)?
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{addr} is in use: something listens on it"),
                ));
            }
        },
        other => other?,
    };
    listener.set_nonblocking(true)?;
    let file = match addr {
        UnixAddr::Path(path) => identity(path).map(|id| (path.clone(), id)),
        UnixAddr::Abstract(_) => None,
    };
    let listener = Unix {
        listener: UnixListener::from_std(listener),
        file,
    };
    Ok((Box::new(listener), addr.clone().into()))
}

/// Whether `path` is a socket file nothing listens on. A file of another
/// kind is an error: it is not ours to remove.
fn is_stale(path: &Path) -> io::Result<bool> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    match std_unix::UnixStream::connect(path) {
        Ok(_) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(true),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("pike-unix-{tag}-{}.sock", std::process::id()))
    }

    #[test]
    fn a_stale_file_is_replaced_and_removed_after() {
        let path = temp_path("stale");
        let _ = std::fs::remove_file(&path);
        // A listener that "dies": its file stays.
        drop(std_unix::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let (listener, local) = bind(&UnixAddr::Path(path.clone())).unwrap();
        assert_eq!(local, Address::unix(&path));
        assert!(std_unix::UnixStream::connect(&path).is_ok());
        drop(listener);
        assert!(!path.exists(), "removed when the listener goes");
    }

    #[test]
    fn a_live_socket_and_other_files_are_left_alone() {
        let path = temp_path("live");
        let _ = std::fs::remove_file(&path);
        let live = std_unix::UnixListener::bind(&path).unwrap();
        let err = bind(&UnixAddr::Path(path.clone())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(path.exists());
        drop(live);
        std::fs::remove_file(&path).unwrap();

        std::fs::write(&path, b"not a socket").unwrap();
        let err = bind(&UnixAddr::Path(path.clone())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_replaced_file_is_not_removed() {
        let path = temp_path("replaced");
        let _ = std::fs::remove_file(&path);
        let (listener, _) = bind(&UnixAddr::Path(path.clone())).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"someone else's").unwrap();
        drop(listener);
        assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
        std::fs::remove_file(&path).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn abstract_names_connect() {
        let name = format!("pike-test-{}", std::process::id());
        let addr = UnixAddr::Abstract(name.clone().into_bytes());
        let (_listener, local) = bind(&addr).unwrap();
        assert_eq!(local.to_string(), format!("unix:@{name}"));
        let err = bind(&addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(connect(&addr).is_ok());
    }
}
