//! TLS over any other transport, with rustls's buffered connection API
//! driven from the network loop (as rustls's own mio examples do):
//! `read_tls` → `process_new_packets` → plaintext, `write_tls` while it
//! has records to send.
//!
//! # Invariants
//!
//! * `read` returns `WouldBlock` only when the socket did, and only after
//!   every decrypted byte was handed out: a short read means the socket
//!   is drained, as the loop's readiness rule assumes.
//! * `write` takes new bytes only when every record written before has
//!   gone to the socket, at most [`CHUNK`] at a time, and counts bytes as
//!   written only once their records have gone to the socket. Bytes that
//!   are encrypted but still queued are *pending*: `write` reports them on
//!   the call after their records went out, checking (by a digest) that
//!   the caller offers the same bytes again: the stream cannot change
//!   under TLS.
//! * A failure of TLS comes out as an `io::Error` carrying a
//!   [`TlsError`], which the endpoint turns into `ConnectError::Tls` or
//!   `DisconnectReason::Tls`; the alert rustls queued for the peer is sent
//!   first if the socket takes it.
//! * Every byte from the socket goes through a [`Tap`], which follows the
//!   record framing: so the transport knows (and tells the connector's
//!   budget, [`Transport::held_bytes`], and the endpoint's timers,
//!   [`Transport::take_wire_input`]) what rustls holds that it has not
//!   decrypted, and a handshake reads at most its size limit in all and
//!   its read limit per call.

use std::fmt;
use std::io::{self, Read, Write};

use mio::{Registry, Token};
use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError, ClientConnection, Connection, ServerConnection};

use super::{Handshake, Listener, SocketOptions, Transport};
use crate::address::PeerAddr;
use crate::error::{TlsError, TlsErrorKind};
use crate::tls::{ClientTls, ServerTls};

/// The most plaintext taken into the TLS layer at a time (four records,
/// sent with one system call): with 16 KiB, 64 KiB messages went at two
/// thirds of the rate. rustls holds their records until the socket takes
/// them.
const CHUNK: usize = 64 * 1024;

/// A digest of bytes encrypted but not yet reported written: the caller
/// must offer the same bytes again (a check of an invariant, not a
/// defence: the endpoint never changes bytes it handed to the transport).
fn digest(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64 ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The TLS record framing of the bytes read from the socket: how much of
/// a record has come and not all of it (rustls holds those bytes, and can
/// decrypt nothing of them yet).
#[derive(Debug, Default, Clone, Copy)]
struct Records {
    /// The current record's header bytes seen so far (5 in all).
    header: [u8; 5],
    header_seen: usize,
    /// Body bytes of the current record still to come.
    body_left: usize,
    /// Bytes of the current record seen: header and body.
    partial: usize,
}

impl Records {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(data.len());
                self.body_left -= n;
                self.partial += n;
                data = &data[n..];
            } else {
                let n = (5 - self.header_seen).min(data.len());
                self.header[self.header_seen..self.header_seen + n].copy_from_slice(&data[..n]);
                self.header_seen += n;
                self.partial += n;
                data = &data[n..];
                if self.header_seen == 5 {
                    self.header_seen = 0;
                    self.body_left =
                        usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                }
            }
            if self.header_seen == 0 && self.body_left == 0 {
                self.partial = 0;
            }
        }
    }
}

/// What the socket gave, as rustls reads it: counted, framed, and limited.
struct Tap<'a> {
    inner: &'a mut dyn Transport,
    wire: &'a mut Wire,
}

/// What a [`Tap`] keeps between reads.
#[derive(Debug, Default)]
struct Wire {
    records: Records,
    /// Bytes read from the socket during the handshake.
    handshake_read: usize,
    handshaking: bool,
    /// The most the handshake may read in all.
    handshake_max: usize,
    /// What this call may still read (`usize::MAX`: no limit).
    allowance: usize,
    /// The allowance ran out: the socket may have more.
    limited: bool,
    /// Bytes came since the endpoint was last told.
    fresh: bool,
}

impl Read for Tap<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let wire = &mut *self.wire;
        let mut room = buf.len().min(wire.allowance);
        if wire.handshaking {
            if wire.handshake_read >= wire.handshake_max {
                return Err(TlsError::new(
                    TlsErrorKind::HandshakeTooLarge,
                    format!(
                        "the peer's handshake is larger than {} bytes",
                        wire.handshake_max
                    ),
                )
                .into_io());
            }
            room = room.min(wire.handshake_max - wire.handshake_read);
        }
        if room == 0 {
            wire.limited = true;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.inner.read(&mut buf[..room])?;
        wire.records.feed(&buf[..n]);
        if wire.allowance != usize::MAX {
            wire.allowance -= n;
        }
        if wire.handshaking {
            wire.handshake_read += n;
        }
        wire.fresh |= n > 0;
        Ok(n)
    }
}

/// A TLS connection over `inner`.
pub(crate) struct Tls {
    inner: Box<dyn Transport>,
    tls: Connection,
    wire: Wire,
    /// Decrypted bytes rustls holds that `read` has not handed out.
    plaintext: usize,
    /// Bytes encrypted whose records have not all gone to the socket yet,
    /// and a digest of them (see the module's invariants).
    pending: usize,
    pending_digest: u64,
    /// `close_notify` is queued: shut the socket's write side once it
    /// has gone out.
    closing: bool,
    /// A read failure that came after bytes the read returned: the next
    /// read reports it.
    deferred: Option<io::Error>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("inner", &self.inner)
            .field("handshaking", &self.tls.is_handshaking())
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

/// The client side of TLS over `inner`, checking the server's certificate
/// against `name` (the settings' own name first).
pub(crate) fn client(
    inner: Box<dyn Transport>,
    settings: &ClientTls,
    name: Option<ServerName<'static>>,
) -> io::Result<Box<dyn Transport>> {
    let name = settings.server_name().cloned().or(name).ok_or_else(|| {
        TlsError::new(
            TlsErrorKind::Other,
            "no server name to verify the certificate against (set ClientTls::with_server_name)",
        )
        .into_io()
    })?;
    let tls = ClientConnection::new(settings.config().clone(), name).map_err(to_io)?;
    Ok(Box::new(Tls::new(
        inner,
        tls.into(),
        settings.max_handshake_size(),
    )))
}

/// The server side of TLS over `inner`.
pub(crate) fn server(
    inner: Box<dyn Transport>,
    settings: &ServerTls,
) -> io::Result<Box<dyn Transport>> {
    let tls = ServerConnection::new(settings.config().clone()).map_err(to_io)?;
    Ok(Box::new(Tls::new(
        inner,
        tls.into(),
        settings.max_handshake_size(),
    )))
}

/// A listener whose connections speak TLS.
#[derive(Debug)]
pub(crate) struct TlsListener {
    pub(crate) inner: Box<dyn Listener>,
    pub(crate) settings: ServerTls,
}

impl Listener for TlsListener {
    fn accept(&mut self) -> io::Result<(Box<dyn Transport>, PeerAddr)> {
        let (transport, peer) = self.inner.accept()?;
        Ok((server(transport, &self.settings)?, peer))
    }

    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        self.inner.register(registry, token)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.inner.deregister(registry)
    }
}

impl Tls {
    fn new(inner: Box<dyn Transport>, tls: Connection, handshake_max: usize) -> Self {
        Self {
            inner,
            tls,
            wire: Wire {
                handshaking: true,
                handshake_max,
                allowance: usize::MAX,
                ..Wire::default()
            },
            plaintext: 0,
            pending: 0,
            pending_digest: 0,
            closing: false,
            deferred: None,
        }
    }

    /// Sends the records rustls has queued; `WouldBlock` if the socket
    /// did not take them all. Shuts the write side down once
    /// `close_notify` went out.
    fn send_records(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.inner) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.closing {
            self.closing = false;
            self.inner.shutdown_write()?;
        }
        Ok(())
    }

    /// Decrypts what `read_tls` took in; on a failure, sends the alert
    /// rustls queued (if the socket takes it) and reports the failure.
    fn process(&mut self) -> io::Result<()> {
        match self.tls.process_new_packets() {
            Ok(state) => {
                self.plaintext = state.plaintext_bytes_to_read();
                if self.wire.handshaking && !self.tls.is_handshaking() {
                    self.wire.handshaking = false;
                }
                Ok(())
            }
            Err(e) => {
                let _ = self.send_records();
                Err(to_io(e))
            }
        }
    }

    /// Takes in what the socket has: `Ok(false)` at its end of stream.
    fn take_in(&mut self) -> io::Result<bool> {
        loop {
            let mut tap = Tap {
                inner: &mut *self.inner,
                wire: &mut self.wire,
            };
            match self.tls.read_tls(&mut tap) {
                Ok(0) => return Ok(false),
                Ok(_) => {
                    self.process()?;
                    // Handshake replies, key updates: out now if they fit.
                    match self.send_records() {
                        Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                        _ => return Ok(true),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Read for Tls {
    /// Fills `buf` with what is decrypted and what the socket has, until
    /// `buf` is full or the socket says `WouldBlock` (then a short count,
    /// or `WouldBlock` if nothing came).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        let mut filled = 0;
        let mut eof = false;
        // A failure after some bytes came: those first, the failure next.
        let fail = |this: &mut Self, filled: usize, e: io::Error| {
            if filled > 0 {
                this.deferred = Some(e);
                Ok(filled)
            } else {
                Err(e)
            }
        };
        loop {
            match self.tls.reader().read(&mut buf[filled..]) {
                // `close_notify` came: the end, after what is here.
                Ok(0) => return Ok(filled),
                Ok(n) => {
                    self.plaintext = self.plaintext.saturating_sub(n);
                    filled += n;
                    if filled == buf.len() {
                        return Ok(filled);
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed the socket without `close_notify`: the
                // end of its stream all the same (a message cut short is
                // still caught by the framing).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(filled),
                Err(e) => return fail(self, filled, e),
            }
            if eof {
                return Ok(filled);
            }
            match self.take_in() {
                Ok(true) => {}
                Ok(false) => {
                    // End of the socket's stream during a handshake: a
                    // peer that is not a TLS peer, or that refused us.
                    if self.tls.is_handshaking() {
                        return fail(self, filled, closed_in_handshake());
                    }
                    // Otherwise the reader now says how the stream ended.
                    eof = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && filled > 0 => return Ok(filled),
                Err(e) => return fail(self, filled, e),
            }
        }
    }
}

impl Write for Tls {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Records written before go first.
        self.send_records()?;
        let mut done = 0;
        if self.pending > 0 {
            // Their records are out now: they count as written, if the
            // caller still offers the same bytes.
            if buf.get(..self.pending).map(digest) != Some(self.pending_digest) {
                return Err(io::Error::other(
                    "bytes already encrypted were changed before they were written",
                ));
            }
            done = std::mem::take(&mut self.pending);
        }
        while done < buf.len() {
            let chunk = &buf[done..buf.len().min(done + CHUNK)];
            let taken = self.tls.writer().write(chunk)?;
            if taken == 0 {
                break;
            }
            match self.send_records() {
                Ok(()) => done += taken,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.pending = taken;
                    self.pending_digest = digest(&chunk[..taken]);
                    return if done > 0 { Ok(done) } else { Err(e) };
                }
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_records()
    }
}

impl Transport for Tls {
    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        self.inner.register(registry, token)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.inner.deregister(registry)
    }

    /// Queues `close_notify` after everything written; the socket's write
    /// side is shut once it has gone out (now, or by a later `flush`).
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.tls.send_close_notify();
        self.closing = true;
        self.send_records()
    }

    fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    fn is_connected(&self) -> io::Result<bool> {
        self.inner.is_connected()
    }

    fn configure(&self, options: &SocketOptions) {
        self.inner.configure(options);
    }

    fn handshake(&mut self, read_limit: usize) -> io::Result<Handshake> {
        self.wire.allowance = read_limit;
        self.wire.limited = false;
        let outcome = loop {
            match self.send_records() {
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => break Err(e),
                _ => {}
            }
            if !self.tls.is_handshaking() {
                self.wire.handshaking = false;
                break Ok(Handshake::Done);
            }
            match self.take_in() {
                Ok(true) => {}
                Ok(false) => break Err(closed_in_handshake()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && self.wire.limited => {
                    break Ok(Handshake::Paused);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(Handshake::Waiting),
                Err(e) => break Err(e),
            }
        };
        self.wire.allowance = usize::MAX;
        outcome
    }

    fn ready_for_data(&self) -> bool {
        !self.tls.is_handshaking()
    }

    fn has_pending_output(&self) -> bool {
        self.tls.wants_write() || self.closing
    }

    /// During the handshake, what it has read (rustls joins handshake
    /// messages of up to 64 KiB; the size limit bounds it); then the part
    /// of a record not yet decrypted, the decrypted bytes not yet handed
    /// out, and the records of written bytes not yet sent.
    fn held_bytes(&self) -> usize {
        if self.wire.handshaking {
            return self.wire.handshake_read;
        }
        self.wire.records.partial + self.plaintext + self.pending
    }

    fn take_wire_input(&mut self) -> Option<bool> {
        std::mem::take(&mut self.wire.fresh).then_some(self.wire.records.partial > 0)
    }
}

fn closed_in_handshake() -> io::Error {
    TlsError::new(
        TlsErrorKind::ProtocolMismatch,
        "the peer closed the connection during the handshake (not a TLS peer, or it refused us)",
    )
    .into_io()
}

/// A rustls error as the transport reports it.
fn to_io(error: rustls::Error) -> io::Error {
    use TlsErrorKind as K;
    use rustls::Error as E;
    if let E::InvalidCertificate(CertificateError::Other(other)) = &error
        && other.0.downcast_ref::<webpki::Error>() == Some(&webpki::Error::CaUsedAsEndEntity)
    {
        // The usual first try (`openssl req -x509` marks the certificate
        // a CA): say what to do instead.
        let what = format!(
            "{error}: the peer's certificate is a CA certificate, as `openssl req -x509` \
             makes; give it a certificate signed by a CA this side trusts \
             (`pike tls-cert` writes both; the README's TLS section has the openssl commands)"
        );
        return TlsError::new(K::UntrustedCertificate, what).into_io();
    }
    let kind = match &error {
        E::InvalidCertificate(rustls::CertificateError::Other(other))
            if other.0.is::<crate::tls::ChainTooLong>() =>
        {
            K::ChainTooLong
        }
        E::InvalidCertificate(c) => match c {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                K::NameMismatch
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => K::CertificateExpired,
            _ => K::UntrustedCertificate,
        },
        E::NoCertificatesPresented => K::NoClientCertificate,
        E::AlertReceived(AlertDescription::CertificateRequired) => K::NoClientCertificate,
        E::AlertReceived(_) => K::RefusedByPeer,
        E::InvalidMessage(_) | E::InappropriateMessage { .. } | E::PeerIncompatible(_) => {
            K::ProtocolMismatch
        }
        _ => K::Other,
    };
    TlsError::new(kind, error.to_string()).into_io()
}
