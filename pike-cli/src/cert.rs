//! `pike tls-cert`: a development CA and certificates it signs, as PEM
//! files that `--tls-cert`, `--tls-key`, `--tls-ca` and `--tls-client-ca`
//! (and `pike::tls`) take as they are.
//!
//! Why not one self-signed certificate: rustls (through webpki) refuses a
//! certificate that is its own authority as a server's (`openssl req
//! -x509` marks it a CA: `CaUsedAsEndEntity`), so a client needs a CA to
//! trust and the server a certificate that CA signed. This writes both.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};

/// What to make.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Request {
    /// Directory to write into (created if missing).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// A DNS name or IP address the server certificate is valid for
    /// (repeat it; default: localhost, 127.0.0.1 and ::1).
    #[arg(long = "name", value_name = "NAME")]
    names: Vec<String>,
    /// Also write a client certificate with this name, signed by the same
    /// CA, for servers that require one (`--tls-client-ca ca.pem`).
    #[arg(long, value_name = "NAME")]
    client: Option<String>,
    /// Years the certificates are valid for, from the start of this year
    /// (they are valid from the start of the last one, for clocks that
    /// lag).
    #[arg(long, default_value_t = 2)]
    years: u16,
    /// Replace files that are there already.
    #[arg(long)]
    force: bool,
}

/// Writes the files and says how to use them.
pub(crate) fn run(request: &Request) -> Result<(), String> {
    let names = if request.names.is_empty() {
        vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ]
    } else {
        request.names.clone()
    };
    let mut files = vec!["ca.pem", "ca.key", "server.pem", "server.key"];
    if request.client.is_some() {
        files.extend(["client.pem", "client.key"]);
    }
    std::fs::create_dir_all(&request.dir).map_err(|e| format!("{}: {e}", request.dir.display()))?;
    if !request.force
        && let Some(there) = files.iter().find(|f| request.dir.join(f).exists())
    {
        return Err(format!(
            "{} exists (--force replaces it)",
            request.dir.join(there).display()
        ));
    }
    let this_year = this_year();
    let end = i32::from(this_year) + i32::from(request.years.max(1));
    let validity = |params: &mut CertificateParams| {
        params.not_before = date_time_ymd(i32::from(this_year) - 1, 1, 1);
        params.not_after = date_time_ymd(end, 1, 1);
    };
    let fail = |e: rcgen::Error| e.to_string();

    let ca_key = KeyPair::generate().map_err(fail)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "pike development CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut ca);
    let ca_cert = ca.self_signed(&ca_key).map_err(fail)?;

    let leaf = |names: Vec<String>, purpose: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().map_err(fail)?;
        let mut params = CertificateParams::new(names.clone()).map_err(fail)?;
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].as_str());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![purpose];
        validity(&mut params);
        let cert = params.signed_by(&key, &ca_cert, &ca_key).map_err(fail)?;
        Ok::<_, String>((cert.pem(), key.serialize_pem()))
    };
    let dir = &request.dir;
    write(dir, "ca.pem", &ca_cert.pem(), false)?;
    write(dir, "ca.key", &ca_key.serialize_pem(), true)?;
    let (cert, key) = leaf(names.clone(), ExtendedKeyUsagePurpose::ServerAuth)?;
    write(dir, "server.pem", &cert, false)?;
    write(dir, "server.key", &key, true)?;
    if let Some(client) = &request.client {
        let (cert, key) = leaf(vec![client.clone()], ExtendedKeyUsagePurpose::ClientAuth)?;
        write(dir, "client.pem", &cert, false)?;
        write(dir, "client.key", &key, true)?;
    }

    let at = |f: &str| dir.join(f).display().to_string();
    println!(
        "wrote {} (valid for {}; until {end}-01-01)",
        files.iter().map(|f| at(f)).collect::<Vec<_>>().join(", "),
        names.join(", ")
    );
    println!(
        "  server: pike listen ADDR --tls-cert {} --tls-key {}",
        at("server.pem"),
        at("server.key")
    );
    match &request.client {
        None => println!("  client: pike connect ADDR --tls-ca {}", at("ca.pem")),
        Some(_) => {
            println!(
                "          (to require client certificates: --tls-client-ca {})",
                at("ca.pem")
            );
            println!(
                "  client: pike connect ADDR --tls-ca {} --tls-cert {} --tls-key {}",
                at("ca.pem"),
                at("client.pem"),
                at("client.key")
            );
        }
    }
    println!("keep ca.key private: whoever has it can make certificates your clients trust");
    Ok(())
}

/// Writes `text` to `dir/name`; a key readable by its owner only.
fn write(dir: &Path, name: &str, text: &str, secret: bool) -> Result<(), String> {
    let path = dir.join(name);
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(&path).map_err(fail)?;
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(fail)
}

/// The current year by the system clock, give or take a day at New Year
/// (the average Gregorian year: certificates start a year before).
fn this_year() -> u16 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u16::try_from(1970 + secs / 31_556_952).unwrap_or(u16::MAX)
}
