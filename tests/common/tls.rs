//! Certificates made at test time with rcgen (a CA and the leaves it
//! signs, written to a temporary directory), rustls clients to limpet over
//! the common [`Conn`], TLS backends, and HTTPS listener configs.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::{config_with, ok, Client, Conn, Socket};

/// A test CA and the leaf certificates it signs, written under a
/// temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

/// A leaf certificate's files and DER.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: CertificateDer<'static>,
}

impl Pki {
    /// A new CA, written as `ca.pem`.
    pub fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "limpet test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca, ca_key }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A leaf for `names` (DNS names or IP addresses), valid until 2060,
    /// written as `<file>.pem` and `<file>.key`.
    pub fn leaf(&self, file: &str, names: &[&str]) -> Leaf {
        self.leaf_until(file, names, 2060)
    }

    /// A leaf valid until January 1st of `year`.
    pub fn leaf_until(&self, file: &str, names: &[&str], year: i32) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(year, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let leaf = Leaf {
            cert: self.path(&format!("{file}.pem")),
            key: self.path(&format!("{file}.key")),
            der: cert.der().clone(),
        };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }

    /// Writes `limpet.toml` beside the certificates: [`https_config`] for
    /// `leaf`, its files named relative to the config file's directory
    /// (so a reload reads whatever leaf was written again under the name).
    pub fn write_config(&self, backends: &[SocketAddr], leaf: &Leaf) -> PathBuf {
        let relative = |path: &PathBuf| format!("{:?}", path.file_name().unwrap());
        let text = https_config(backends, &[leaf], "", "")
            .replace(&format!("{:?}", leaf.cert), &relative(&leaf.cert))
            .replace(&format!("{:?}", leaf.key), &relative(&leaf.key));
        let path = self.path("limpet.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A client trusting this CA, for `versions`, with its own session
    /// cache (tickets).
    pub fn client(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

pub const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
pub const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
pub const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The client side of a TLS connection.
pub type ClientTls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// The server side of a TLS connection.
pub type ServerTls = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

impl Socket for ClientTls {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

impl Socket for ServerTls {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

/// An HTTPS client connection to limpet.
pub type Tls = Client<ClientTls>;

impl Client<ClientTls> {
    /// Connects and completes the handshake, sending `sni` (None: an IP
    /// address, so no SNI).
    pub fn open(addr: SocketAddr, sni: Option<&str>, config: Arc<rustls::ClientConfig>) -> Tls {
        Self::try_open(addr, sni, config).expect("TLS handshake with limpet")
    }

    pub fn try_open(
        addr: SocketAddr,
        sni: Option<&str>,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<Tls, std::io::Error> {
        let name = match sni {
            Some(name) => ServerName::try_from(name.to_owned()).unwrap(),
            None => ServerName::IpAddress(addr.ip().into()),
        };
        let conn = rustls::ClientConnection::new(config, name).unwrap();
        let tcp = TcpStream::connect(addr)?;
        let mut conn = Conn::new(rustls::StreamOwned::new(conn, tcp));
        let stream = &mut conn.stream;
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(Client { conn })
    }

    pub fn tls(&self) -> &rustls::ClientConnection {
        &self.conn.stream.conn
    }

    pub fn version(&self) -> rustls::ProtocolVersion {
        self.tls().protocol_version().unwrap()
    }

    pub fn resumed(&self) -> bool {
        self.tls().handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    pub fn peer_cert(&self) -> CertificateDer<'static> {
        self.tls().peer_certificates().unwrap()[0]
            .clone()
            .into_owned()
    }
}

/// A verifier that accepts any server certificate (to see which one the
/// server chose without SNI).
#[derive(Debug)]
pub struct AcceptAnything(pub Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `[[listeners]]` TLS keys for these leaves, first one the default.
pub fn tls_keys(leaves: &[&Leaf], extra: &str) -> String {
    let certs: Vec<String> = leaves
        .iter()
        .map(|l| format!("{{ cert = {:?}, key = {:?} }}", l.cert, l.key))
        .collect();
    format!("tls = {{ certs = [{}]{extra} }}\n", certs.join(", "))
}

/// A one-group config whose listener serves HTTPS with `leaves`.
pub fn https_config(
    backends: &[SocketAddr],
    leaves: &[&Leaf],
    group_keys: &str,
    extra: &str,
) -> String {
    config_with(backends, group_keys, extra).replacen(
        "default_group = \"web\"\n",
        &format!("default_group = \"web\"\n{}", tls_keys(leaves, "")),
        1,
    )
}

/// A TLS backend on its own thread, with a leaf for `names`: answers each
/// request `200 tls <target>` and records the server name the client sent.
pub fn tls_backend(pki: &Pki, names: &[&str]) -> (SocketAddr, Arc<Mutex<Vec<Option<String>>>>) {
    let leaf = pki.leaf("backend", names);
    let chain = vec![leaf.der.clone()];
    let key = PrivateKeyDer::from_pem_file(&leaf.key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let names = Arc::new(Mutex::new(Vec::new()));
    let seen = names.clone();
    thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let (config, seen) = (config.clone(), seen.clone());
            thread::spawn(move || {
                let tls = rustls::ServerConnection::new(config).unwrap();
                let mut conn = Conn::new(rustls::StreamOwned::new(tls, tcp));
                while let Some(head) = conn.read_head() {
                    seen.lock()
                        .unwrap()
                        .push(conn.stream.conn.server_name().map(str::to_owned));
                    let head = String::from_utf8_lossy(&head).to_string();
                    let target = head.split(' ').nth(1).unwrap_or("?").to_owned();
                    if conn
                        .stream
                        .write_all(&ok(&format!("tls {target}")))
                        .is_err()
                    {
                        return;
                    }
                    let _ = conn.stream.flush();
                }
            });
        }
    });
    (addr, names)
}
