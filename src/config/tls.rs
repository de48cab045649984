//! `tls` on a listener (HTTPS termination) and `[groups.NAME.tls]` (TLS to
//! the backends): the certificate and key files are read and checked here,
//! when the configuration is loaded or reloaded, so that a missing,
//! unreadable, expired or mismatched file is refused with the file, line
//! and key, and a running limpet never meets one.
//!
//! The rustls configurations are built here too, once per load: every
//! worker shares them. Session tickets are encrypted with one process-wide
//! rotating ticketer, kept across reloads, so a ticket issued on one core
//! (or before a certificate reload) resumes on any other.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ProducesTickets, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use toml::Spanned;

use super::duration;
use super::error::ConfigError;
use super::raw;
use super::source::{KeyPath, Source};

/// How long a client may take over its handshake, unless configured.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The ALPN protocol limpet speaks on HTTPS listeners and to backends.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// HTTP/2 over TLS (RFC 9113 §3.2).
pub const ALPN_H2: &[u8] = b"h2";

/// A listener's TLS termination: the files it was built from and the
/// rustls configuration every worker hands new connections to.
#[derive(Clone)]
pub struct ListenerTls {
    /// The certificates in file order; the first is the default.
    pub certs: Vec<CertFiles>,
    pub handshake_timeout: Duration,
    pub server: Arc<rustls::ServerConfig>,
}

/// One `{ cert = "...", key = "..." }` entry, paths resolved against the
/// configuration file's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The DNS names of the certificate's subjectAltName, lowercased
    /// (`*.example.com` kept as written).
    pub names: Vec<String>,
    /// The leaf certificate, so that a reload with new files compares
    /// unequal even when the paths stayed the same.
    pub leaf: Vec<u8>,
}

impl fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerTls")
            .field("certs", &self.certs)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ListenerTls {
    fn eq(&self, other: &Self) -> bool {
        self.certs == other.certs && self.handshake_timeout == other.handshake_timeout
    }
}

/// `[groups.NAME.tls]`: limpet connects to the group's servers over TLS,
/// verifying them against `ca` under the name `sni`.
#[derive(Clone)]
pub struct BackendTls {
    pub ca: PathBuf,
    /// The name sent in SNI and verified; `None`: each server's IP address
    /// (which its certificate must then list as an IP subjectAltName).
    pub sni: Option<String>,
    pub client: Arc<rustls::ClientConfig>,
    /// The CA file's certificates, for equality across reloads.
    roots: Vec<Vec<u8>>,
}

impl fmt::Debug for BackendTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendTls")
            .field("ca", &self.ca)
            .field("sni", &self.sni)
            .finish_non_exhaustive()
    }
}

impl PartialEq for BackendTls {
    fn eq(&self, other: &Self) -> bool {
        self.ca == other.ca && self.sni == other.sni && self.roots == other.roots
    }
}

impl BackendTls {
    /// The name to send to and verify for a server at `addr`.
    pub fn server_name(&self, addr: std::net::SocketAddr) -> ServerName<'static> {
        match self
            .sni
            .as_deref()
            .and_then(|name| ServerName::try_from(name.to_owned()).ok())
        {
            Some(name) => name,
            None => ServerName::IpAddress(addr.ip().into()),
        }
    }
}

/// The crypto provider limpet uses (ring: builds with a C compiler only).
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The process's session-ticket encrypter: one for every listener, worker
/// and reload, so that any core accepts any ticket. rustls rotates its key
/// every 6 hours and accepts tickets of the previous key for as long again.
fn ticketer() -> Option<Arc<dyn ProducesTickets>> {
    static TICKETER: OnceLock<Option<Arc<dyn ProducesTickets>>> = OnceLock::new();
    TICKETER
        .get_or_init(|| match rustls::crypto::ring::Ticketer::new() {
            Ok(ticketer) => Some(ticketer),
            Err(err) => {
                log::error!("no TLS session tickets: {err}");
                None
            }
        })
        .clone()
}

/// Chooses the certificate by SNI: an exact name first, then a wildcard
/// one label deep, else the first certificate.
#[derive(Debug)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` is stored as `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    fn pick(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = name else {
            return self.default.clone();
        };
        let name = name.to_ascii_lowercase();
        if let Some(key) = self.exact.get(&name) {
            return key.clone();
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(key) = self.wildcard.get(parent) {
                return key.clone();
            }
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // The connection learns its SNI here (`net::TlsStream::sni`).
        crate::net::note_sni(hello.server_name());
        Some(self.pick(hello.server_name()))
    }
}

impl ListenerTls {
    pub(super) fn build(
        src: &Source<'_>,
        raw: &raw::ListenerTls,
        at: &KeyPath,
        http2: bool,
    ) -> Result<Self, ConfigError> {
        let at = at.key("tls");
        let handshake_timeout = duration::optional(
            src,
            raw.handshake_timeout.as_ref(),
            HANDSHAKE_TIMEOUT,
            duration::MIN_TIMEOUT,
            &at.key("handshake_timeout"),
        )?;
        if raw.certs.is_empty() {
            return Err(src.invalid(
                None,
                at.key("certs"),
                "must list at least one { cert, key }",
            ));
        }
        let provider = provider();
        let mut certs = Vec::with_capacity(raw.certs.len());
        let mut keys = Vec::with_capacity(raw.certs.len());
        for (i, pair) in raw.certs.iter().enumerate() {
            let pair_at = at.key("certs").index(i);
            let (files, key) = load_pair(src, pair, &pair_at, &provider)?;
            certs.push(files);
            keys.push(Arc::new(key));
        }
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (files, key) in certs.iter().zip(&keys) {
            for name in &files.names {
                // The first certificate naming a host wins, as in the file.
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_owned()),
                    None => exact.entry(name.clone()),
                }
                .or_insert_with(|| key.clone());
            }
        }
        let resolver = SniResolver {
            exact,
            wildcard,
            default: keys[0].clone(),
        };
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| src.invalid(None, &at, format_args!("cannot be built: {err}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        // HTTP/2 first when the listener serves it (RFC 9113 §3.2: `h2`);
        // a client offering neither gets HTTP/1.1 without ALPN.
        server.alpn_protocols = if http2 {
            vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()]
        } else {
            vec![ALPN_HTTP1.to_vec()]
        };
        if let Some(ticketer) = ticketer() {
            server.ticketer = ticketer;
        }
        Ok(ListenerTls {
            certs,
            handshake_timeout,
            server: Arc::new(server),
        })
    }
}

/// Reads, parses and checks one certificate chain and its key.
fn load_pair(
    src: &Source<'_>,
    raw: &raw::CertPair,
    at: &KeyPath,
    provider: &CryptoProvider,
) -> Result<(CertFiles, CertifiedKey), ConfigError> {
    let cert_at = at.key("cert");
    let key_at = at.key("key");
    let cert_path = src.file(&raw.cert);
    let key_path = src.file(&raw.key);
    let cert_pem = read(src, &raw.cert, &cert_at, &cert_path)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| {
            let problem = format!("{}: not PEM: {err}", cert_path.display());
            src.at(&raw.cert, &cert_at, problem)
        })?;
    let Some(leaf) = chain.first() else {
        let problem = format!("{}: no CERTIFICATE in the file", cert_path.display());
        return Err(src.at(&raw.cert, &cert_at, problem));
    };
    let names = dns_names(leaf).map_err(|err| {
        let problem = format!(
            "{}: not a usable X.509 certificate: {err}",
            cert_path.display()
        );
        src.at(&raw.cert, &cert_at, problem)
    })?;
    if let Some(not_after) = not_after(leaf) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if not_after < now {
            let mut date = Vec::new();
            crate::sticky::set_cookie::write_imf_fixdate(not_after.max(0) as u64, &mut date);
            let problem = format!(
                "{}: the certificate expired on {}",
                cert_path.display(),
                String::from_utf8_lossy(&date),
            );
            return Err(src.at(&raw.cert, &cert_at, problem));
        }
    }
    let key_pem = read(src, &raw.key, &key_at, &key_path)?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|err| {
        let problem = match err {
            rustls::pki_types::pem::Error::NoItemsFound => {
                format!("{}: no PRIVATE KEY in the file", key_path.display())
            }
            err => format!("{}: not PEM: {err}", key_path.display()),
        };
        src.at(&raw.key, &key_at, problem)
    })?;
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|err| {
            let problem = format!("{}: unusable private key: {err}", key_path.display());
            src.at(&raw.key, &key_at, problem)
        })?;
    let leaf_bytes = leaf.as_ref().to_vec();
    let key = CertifiedKey::new(chain, signing);
    match key.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            let problem = format!(
                "{} does not match the certificate in {}",
                key_path.display(),
                cert_path.display()
            );
            return Err(src.at(&raw.key, &key_at, problem));
        }
    }
    Ok((
        CertFiles {
            cert: cert_path,
            key: key_path,
            names,
            leaf: leaf_bytes,
        },
        key,
    ))
}

/// The most a certificate, key or CA file may hold: a chain of a few
/// certificates is a few KiB; this stops `/dev/zero` and friends.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

fn read(
    src: &Source<'_>,
    value: &Spanned<String>,
    at: &KeyPath,
    path: &Path,
) -> Result<Vec<u8>, ConfigError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path)
        .and_then(|file| file.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes));
    if let Err(err) = read {
        let problem = format!("{}: cannot be read: {err}", path.display());
        return Err(src.at(value, at, problem));
    }
    if bytes.len() as u64 > MAX_PEM_BYTES {
        let problem = format!("{}: larger than 1 MiB: not a PEM file", path.display());
        return Err(src.at(value, at, problem));
    }
    Ok(bytes)
}

/// The DNS names (lowercased) of a certificate's subjectAltName.
fn dns_names(cert: &CertificateDer<'_>) -> Result<Vec<String>, webpki::Error> {
    let parsed = webpki::EndEntityCert::try_from(cert)?;
    Ok(parsed
        .valid_dns_names()
        .map(str::to_ascii_lowercase)
        .collect())
}

impl BackendTls {
    pub(super) fn build(
        src: &Source<'_>,
        raw: &raw::BackendTls,
        at: &KeyPath,
    ) -> Result<Self, ConfigError> {
        let ca_at = at.key("ca");
        let ca = src.file(&raw.ca);
        let pem = read(src, &raw.ca, &ca_at, &ca)?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| {
                let problem = format!("{}: not PEM: {err}", ca.display());
                src.at(&raw.ca, &ca_at, problem)
            })?;
        if certs.is_empty() {
            let problem = format!("{}: no CERTIFICATE in the file", ca.display());
            return Err(src.at(&raw.ca, &ca_at, problem));
        }
        let mut store = rustls::RootCertStore::empty();
        for cert in &certs {
            store.add(cert.clone()).map_err(|err| {
                let problem = format!("{}: not a usable CA certificate: {err}", ca.display());
                src.at(&raw.ca, &ca_at, problem)
            })?;
        }
        let sni = match &raw.sni {
            Some(name) => {
                let text = name.get_ref();
                if ServerName::try_from(text.as_str()).is_err() {
                    let problem = format!("{text:?} is not a DNS name or an IP address");
                    return Err(src.at(name, at.key("sni"), problem));
                }
                Some(text.clone())
            }
            None => None,
        };
        let mut client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|err| src.invalid(None, at, format_args!("cannot be built: {err}")))?
            .with_root_certificates(store)
            .with_no_client_auth();
        client.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        Ok(BackendTls {
            ca,
            sni,
            client: Arc::new(client),
            roots: certs.iter().map(|c| c.as_ref().to_vec()).collect(),
        })
    }
}

/// The `notAfter` of a DER certificate, in Unix seconds; `None` if it
/// cannot be found (rustls and the clients judge the rest).
pub(super) fn not_after(cert: &[u8]) -> Option<i64> {
    let (tag, cert, _) = der(cert)?;
    (tag == 0x30).then_some(())?;
    let (tag, tbs, _) = der(cert)?;
    (tag == 0x30).then_some(())?;
    let mut rest = tbs;
    let (mut tag, _, mut after) = der(rest)?;
    if tag == 0xa0 {
        // [0] version
        rest = after;
        (tag, _, after) = der(rest)?;
    }
    // serialNumber, signature, issuer, then validity.
    (tag == 0x02).then_some(())?;
    let (_, _, after) = der(after)?;
    let (_, _, after) = der(after)?;
    let (tag, validity, _) = der(after)?;
    (tag == 0x30).then_some(())?;
    let (_, _, after) = der(validity)?;
    let (tag, time, _) = der(after)?;
    let text = std::str::from_utf8(time).ok()?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i64 = text.get(0..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        0x18 => (text.get(0..4)?.parse().ok()?, text.get(4..)?),
        _ => return None,
    };
    let field = |range: std::ops::Range<usize>| -> Option<i64> { rest.get(range)?.parse().ok() };
    let (month, day) = (field(0..2)?, field(2..4)?);
    let (hour, minute, second) = (field(4..6)?, field(6..8)?, field(8..10)?);
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// One DER element: its tag, its contents and what follows it.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(n)?;
        let len = bytes
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, rest)
    };
    let (content, after) = rest.split_at_checked(len)?;
    Some((tag, content, after))
}

/// Days from 1970-01-01 to a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 11, 21), 20_778);
    }

    #[test]
    fn not_after_is_read_from_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["a.test".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 5, 17);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.clone().self_signed(&key).unwrap();
        let expected = days_from_civil(2031, 5, 17) * 86_400;
        assert_eq!(not_after(cert.der()), Some(expected));
        params.not_after = rcgen::date_time_ymd(2060, 1, 2);
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            not_after(cert.der()),
            Some(days_from_civil(2060, 1, 2) * 86_400)
        );
        assert_eq!(not_after(b"\x30\x03\x02\x01"), None, "truncated DER");
    }

    #[test]
    fn the_resolver_prefers_exact_names_then_wildcards_then_the_first() {
        let key = |name: &str| {
            let pair = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec![name.into()])
                .unwrap()
                .self_signed(&pair)
                .unwrap();
            let der = PrivateKeyDer::try_from(pair.serialize_der()).unwrap();
            let signing = provider().key_provider.load_private_key(der).unwrap();
            Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing))
        };
        let (a, b, c) = (key("a.test"), key("*.b.test"), key("c.test"));
        let resolver = SniResolver {
            exact: [
                ("a.test".to_owned(), a.clone()),
                ("c.test".to_owned(), c.clone()),
            ]
            .into(),
            wildcard: [("b.test".to_owned(), b.clone())].into(),
            default: a.clone(),
        };
        assert!(Arc::ptr_eq(&resolver.pick(Some("C.Test")), &c));
        assert!(Arc::ptr_eq(&resolver.pick(Some("x.b.test")), &b));
        assert!(
            Arc::ptr_eq(&resolver.pick(Some("x.y.b.test")), &a),
            "one label deep"
        );
        assert!(Arc::ptr_eq(&resolver.pick(Some("b.test")), &a));
        assert!(Arc::ptr_eq(&resolver.pick(None), &a));
    }

    /// A self-signed certificate and key for `names`, written to `dir`.
    fn write_pair(dir: &Path, file: &str, names: &[&str]) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    }

    const GROUP: &str = "[[groups.g.servers]]\nname = \"s\"\naddress = \"127.0.0.1:9\"\n";

    #[test]
    fn the_table_form_and_relative_paths_from_the_config_directory() {
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path(), "a", &["a.test", "*.A.test"]);
        write_pair(dir.path(), "b", &["b.test"]);
        let text = format!(
            "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"g\"\n\
             [listeners.tls]\nhandshake_timeout = \"2s\"\n\
             [[listeners.tls.certs]]\ncert = \"a.pem\"\nkey = \"a.key\"\n\
             [[listeners.tls.certs]]\ncert = \"b.pem\"\nkey = \"b.key\"\n{GROUP}"
        );
        let config = crate::config::parse_in(&text, "t.toml", dir.path()).unwrap();
        let tls = config.listeners[0].tls.as_ref().unwrap();
        assert_eq!(tls.handshake_timeout, Duration::from_secs(2));
        assert_eq!(tls.certs.len(), 2);
        assert_eq!(tls.certs[0].cert, dir.path().join("a.pem"));
        assert_eq!(tls.certs[0].names, ["a.test", "*.a.test"]);
        assert_eq!(tls.certs[1].names, ["b.test"]);
        assert_eq!(
            tls.server.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        // The same text from elsewhere: the relative path is named as resolved.
        let err = crate::config::parse_in(&text, "t.toml", Path::new("/nonexistent"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "t.toml:8: listeners[0].tls.certs[0].cert /nonexistent/a.pem: cannot be read"
            ),
            "{err}"
        );
        let bad = text.replace("\"2s\"", "\"soon\"");
        let err = crate::config::parse_in(&bad, "t.toml", dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "t.toml:6: listeners[0].tls.handshake_timeout \"soon\" is not a duration"
            ),
            "{err}"
        );
        let err =
            crate::config::parse_in(&text.replace("key = \"b.key\"\n", ""), "t.toml", dir.path())
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("listeners[1]") || err.contains("missing field `key`"),
            "{err}"
        );
    }

    #[test]
    fn endless_files_are_refused() {
        let text = "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"g\"\ntls = { certs = [{ cert = \"/dev/zero\", key = \"/dev/zero\" }] }\n";
        let err = crate::config::parse(&format!("{text}{GROUP}"), "t.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "t.toml:5: listeners[0].tls.certs[0].cert /dev/zero: larger than 1 MiB: not a PEM file"
        );
    }

    #[test]
    fn a_group_table_turns_backend_tls_on() {
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path(), "ca", &["ca.test"]);
        let listener =
            "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"g\"\n";
        let text =
            format!("{listener}{GROUP}[groups.g.tls]\nca = \"ca.pem\"\nsni = \"api.internal\"\n");
        let config = crate::config::parse_in(&text, "t.toml", dir.path()).unwrap();
        let tls = config.groups[0].tls.as_ref().unwrap();
        assert_eq!(tls.sni.as_deref(), Some("api.internal"));
        let addr = "10.0.0.1:443".parse().unwrap();
        assert_eq!(
            tls.server_name(addr),
            ServerName::try_from("api.internal").unwrap()
        );
        let text = format!("{listener}{GROUP}[groups.g.tls]\nca = \"ca.pem\"\n");
        let config = crate::config::parse_in(&text, "t.toml", dir.path()).unwrap();
        let tls = config.groups[0].tls.as_ref().unwrap();
        assert_eq!(
            tls.server_name(addr),
            ServerName::IpAddress(addr.ip().into())
        );
        let text =
            format!("{listener}{GROUP}[groups.g.tls]\nca = \"ca.pem\"\nsni = \"not a name\"\n");
        let err = crate::config::parse_in(&text, "t.toml", dir.path())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "t.toml:10: groups.g.tls.sni \"not a name\" is not a DNS name or an IP address"
        );
        let text = format!("{listener}[groups.g]\ntls = true\n{GROUP}");
        let err = crate::config::parse_in(&text, "t.toml", dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("t.toml:6: groups.g.tls: invalid type: boolean `true`"),
            "{err}"
        );
    }
}
