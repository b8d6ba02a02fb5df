//! A certificate chain made for this run with `rcgen`: a CA, and a leaf signed by it for the
//! names a loopback server answers to; rustls configurations for a server presenting the
//! leaf and a client trusting only the CA.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// A CA and a leaf signed by it.
#[derive(Debug)]
pub struct Pki {
    /// The CA certificate, PEM (what a client is told to trust, e.g. in a file).
    pub ca_pem: String,
    /// The CA certificate, DER.
    pub ca: CertificateDer<'static>,
    /// The leaf certificate, DER.
    pub leaf: CertificateDer<'static>,
    /// The leaf's private key.
    pub leaf_key: PrivatePkcs8KeyDer<'static>,
}

impl Pki {
    /// A CA with the common name `ca_name`, and a leaf for `names` (DNS names or IP
    /// addresses, e.g. `["127.0.0.1", "localhost"]`) signed by it.
    ///
    /// ```
    /// let pki = kestrel_testkit::certs::Pki::new("doc CA", &["localhost"]);
    /// assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    /// let _server = pki.server_config();
    /// let _client = pki.client_config();
    /// ```
    pub fn new(ca_name: &str, names: &[&str]) -> Pki {
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, ca_name);
        let ca_cert = ca.self_signed(&ca_key).expect("a self-signed CA");
        let leaf_key = KeyPair::generate().expect("a leaf key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let leaf = CertificateParams::new(names)
            .expect("leaf parameters")
            .signed_by(&leaf_key, &ca_cert, &ca_key)
            .expect("a leaf signed by the CA");
        Pki {
            ca_pem: ca_cert.pem(),
            ca: ca_cert.der().clone(),
            leaf: leaf.der().clone(),
            leaf_key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
        }
    }

    /// A server configuration presenting the leaf (no client authentication), on the
    /// feed's crypto provider.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let config = ServerConfig::builder_with_provider(kestrel_feed::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![self.leaf.clone()],
                PrivateKeyDer::Pkcs8(self.leaf_key.clone_key()),
            )
            .expect("the leaf and its key");
        Arc::new(config)
    }

    /// A client configuration that trusts only the CA.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).expect("the CA as a root");
        let config = ClientConfig::builder_with_provider(kestrel_feed::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}
