//! The examples' `--tls-*` flags (with the `tls` feature; without it
//! there are none and everything is plaintext). Servers use one half,
//! clients the other.
#![allow(dead_code)]

use pike::converter::Converter;
use pike::{Address, ConnectorBuilder};

/// A server's TLS: its certificate chain and key.
#[derive(Debug, clap::Args)]
pub(crate) struct ServerFlags {
    /// Serve TLS with this certificate chain (PEM; needs --tls-key).
    #[cfg(feature = "tls")]
    #[arg(long, value_name = "CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[cfg(feature = "tls")]
    #[arg(long, value_name = "KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

impl ServerFlags {
    /// Listens on `addr`, with TLS if the flags ask for it.
    pub(crate) fn listen<C: Converter>(
        &self,
        builder: ConnectorBuilder<C>,
        addr: Address,
    ) -> std::io::Result<ConnectorBuilder<C>> {
        #[cfg(feature = "tls")]
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            let tls =
                pike::tls::ServerTls::from_pem_files(cert, key).map_err(std::io::Error::other)?;
            return Ok(builder.listen_tls(addr, tls));
        }
        Ok(builder.listen(addr))
    }
}

/// A client's TLS: the authority it trusts, and the name to check.
#[derive(Debug, clap::Args)]
pub(crate) struct ClientFlags {
    /// Connect with TLS, trusting the certificate authorities of this PEM
    /// file.
    #[cfg(feature = "tls")]
    #[arg(long, value_name = "CA")]
    tls_ca: Option<std::path::PathBuf>,
    /// Check the server's certificate against NAME, not the host.
    #[cfg(feature = "tls")]
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    tls_server_name: Option<String>,
}

impl ClientFlags {
    /// The builder, its connects over TLS if the flags ask for it.
    pub(crate) fn apply<C: Converter>(
        &self,
        builder: ConnectorBuilder<C>,
    ) -> Result<ConnectorBuilder<C>, Box<dyn std::error::Error>> {
        #[cfg(feature = "tls")]
        if let Some(ca) = &self.tls_ca {
            let mut tls = pike::tls::ClientTls::from_ca_file(ca)?;
            if let Some(name) = &self.tls_server_name {
                tls = tls.with_server_name(name)?;
            }
            return Ok(builder.default_client_tls(tls));
        }
        Ok(builder)
    }
}
