//! TLS server configuration for SIP over TLS (SIG-05, SEC-02): reads a PEM certificate chain
//! and private key and builds a rustls [`ServerConfig`] on the `ring` provider.
//!
//! Owns: file reading and PEM decoding of the certificate and key, the protocol-version floor
//! (TLS 1.2, or 1.3 only), and the check that the key belongs to the certificate.
//! Does not own: sockets, handshakes or their timeout (the driver), or deciding *when* to
//! reload (config reload calls [`server_config`] again and swaps the result).
//!
//! Config validation calls [`server_config`], so `voxgate check-config` reports a missing,
//! unreadable or mismatched certificate before the appliance ever starts.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// The oldest TLS version voxgate accepts (`tls.min_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TlsMinVersion {
    /// TLS 1.2 and 1.3; 1.3 is preferred when the client offers it (SEC-02).
    #[default]
    V1_2,
    /// TLS 1.3 only.
    V1_3,
}

impl TlsMinVersion {
    /// The config spelling: `"1.2"` or `"1.3"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMinVersion::V1_2 => "1.2",
            TlsMinVersion::V1_3 => "1.3",
        }
    }

    /// Parses the config spelling (`"1.2"` or `"1.3"`).
    pub fn from_config(text: &str) -> Option<Self> {
        match text {
            "1.2" => Some(TlsMinVersion::V1_2),
            "1.3" => Some(TlsMinVersion::V1_3),
            _ => None,
        }
    }

    fn protocol_versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static BOTH: [&rustls::SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            TlsMinVersion::V1_2 => &BOTH,
            TlsMinVersion::V1_3 => &TLS13_ONLY,
        }
    }
}

impl fmt::Display for TlsMinVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a certificate or key could not be turned into a TLS server configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not valid PEM: {source}", path.display())]
    Pem {
        path: PathBuf,
        #[source]
        source: pem::Error,
    },
    #[error("{} holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")", path.display())]
    NoCertificate { path: PathBuf },
    #[error(
        "{} holds no PEM private key (PKCS#8 \"PRIVATE KEY\", RSA \"RSA PRIVATE KEY\" or \
         SEC1 \"EC PRIVATE KEY\")",
        path.display()
    )]
    NoPrivateKey { path: PathBuf },
    #[error("the private key in {} does not belong to the certificate in {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("certificate {} with key {} is not usable: {source}", cert.display(), key.display())]
    Rejected {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// Builds the SIP-over-TLS server configuration from a PEM certificate chain (leaf first)
/// and a PEM private key (PKCS#8, RSA/PKCS#1 or SEC1).
///
/// TLS 1.2 is the floor unless `min_version` asks for 1.3 only; no client certificates; no
/// ALPN (SIP over TLS does not negotiate one).
pub fn server_config(
    cert: &Path,
    key: &Path,
    min_version: TlsMinVersion,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = read_certificates(cert)?;
    let private_key = read_private_key(key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let rejected = |source| TlsError::Rejected {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    };
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(min_version.protocol_versions())
        .map_err(rejected)?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|source| match source {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                TlsError::KeyMismatch {
                    cert: cert.to_owned(),
                    key: key.to_owned(),
                }
            }
            other => rejected(other),
        })?;
    Ok(Arc::new(config))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsError::NoPrivateKey {
            path: path.to_owned(),
        }),
        Err(source) => Err(TlsError::Pem {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Test helpers shared with the config tests: a fresh self-signed certificate on disk, and
/// an in-memory handshake against a server configuration.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};

    /// Writes a self-signed certificate for `name` and its PKCS#8 key into `dir`; returns
    /// (cert path, key path).
    pub(crate) fn write_self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let certified = rcgen::generate_simple_self_signed(vec![name.to_owned()])
            .expect("rcgen generates a certificate for a valid DNS name");
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, certified.cert.pem()).expect("tempdir is writable");
        std::fs::write(&key, certified.signing_key.serialize_pem()).expect("tempdir is writable");
        (cert, key)
    }

    /// Runs a TLS handshake in memory between `server` and a client that trusts `cert` and
    /// offers only `versions`; returns the negotiated version or the first error.
    pub(crate) fn handshake(
        server: Arc<rustls::ServerConfig>,
        cert: &Path,
        name: &str,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Result<rustls::ProtocolVersion, rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(cert).expect("test certificate is PEM"))
            .expect("test certificate is a valid trust anchor");
        let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let server_name = ServerName::try_from(name.to_owned()).expect("valid DNS name");
        let mut client = rustls::ClientConnection::new(Arc::new(client_config), server_name)?;
        let mut server = rustls::ServerConnection::new(server)?;
        // Each round moves every pending byte both ways; a handshake needs a few rounds.
        for _ in 0..10 {
            let mut to_server = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut to_server).expect("write to a Vec");
            }
            let mut slice = &to_server[..];
            while !slice.is_empty() {
                server.read_tls(&mut slice).expect("read from a slice");
            }
            server.process_new_packets()?;
            let mut to_client = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut to_client).expect("write to a Vec");
            }
            let mut slice = &to_client[..];
            while !slice.is_empty() {
                client.read_tls(&mut slice).expect("read from a slice");
            }
            client.process_new_packets()?;
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(server
                    .protocol_version()
                    .expect("a finished handshake has a version"));
            }
        }
        panic!("handshake did not finish in 10 rounds")
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{handshake, write_self_signed};
    use super::*;

    #[test]
    fn tls_builds_from_generated_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = write_self_signed(dir.path(), "sbc.example.test");
        let config = server_config(&cert, &key, TlsMinVersion::V1_2).expect("valid pair");
        assert!(config.alpn_protocols.is_empty());
        // 1.3 is chosen when offered; a 1.2-only client is served too.
        let both = [&rustls::version::TLS13, &rustls::version::TLS12];
        let v = handshake(config.clone(), &cert, "sbc.example.test", &both).expect("handshake");
        assert_eq!(v, rustls::ProtocolVersion::TLSv1_3);
        let v = handshake(
            config,
            &cert,
            "sbc.example.test",
            &[&rustls::version::TLS12],
        )
        .expect("handshake");
        assert_eq!(v, rustls::ProtocolVersion::TLSv1_2);
    }

    #[test]
    fn tls_min_version_1_3_excludes_1_2() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = write_self_signed(dir.path(), "sbc.example.test");
        let config = server_config(&cert, &key, TlsMinVersion::V1_3).expect("valid pair");
        let v = handshake(
            config.clone(),
            &cert,
            "sbc.example.test",
            &[&rustls::version::TLS13],
        )
        .expect("handshake");
        assert_eq!(v, rustls::ProtocolVersion::TLSv1_3);
        let err = handshake(
            config,
            &cert,
            "sbc.example.test",
            &[&rustls::version::TLS12],
        )
        .expect_err("a 1.2-only client is refused");
        assert!(
            matches!(
                err,
                rustls::Error::PeerIncompatible(_) | rustls::Error::AlertReceived(_)
            ),
            "{err:?}"
        );
    }

    /// Splits one DER TLV off the front of `input`: (tag, contents, rest).
    fn der_tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = input[0];
        let (len, header) = match input[1] {
            short if short < 0x80 => (usize::from(short), 2),
            long => {
                let n = usize::from(long & 0x7f);
                let len = input[2..2 + n]
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
                (len, 2 + n)
            }
        };
        (tag, &input[header..header + len], &input[header + len..])
    }

    fn base64(data: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn tls_accepts_sec1_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = write_self_signed(dir.path(), "sbc.example.test");
        let pkcs8 = match PrivateKeyDer::from_pem_file(&key).expect("PKCS#8 PEM") {
            PrivateKeyDer::Pkcs8(der) => der.secret_pkcs8_der().to_vec(),
            other => panic!("rcgen writes PKCS#8, got {other:?}"),
        };
        // PrivateKeyInfo ::= SEQUENCE { version, algorithm, privateKey OCTET STRING }; the
        // OCTET STRING of an EC key holds the SEC1 ECPrivateKey.
        let (_, info, _) = der_tlv(&pkcs8);
        let (_, _, rest) = der_tlv(info);
        let (_, _, rest) = der_tlv(rest);
        let (tag, sec1, _) = der_tlv(rest);
        assert_eq!(tag, 0x04, "privateKey is an OCTET STRING");
        let sec1_path = dir.path().join("sec1.key");
        let mut pem = String::from("-----BEGIN EC PRIVATE KEY-----\n");
        for line in base64(sec1).as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END EC PRIVATE KEY-----\n");
        std::fs::write(&sec1_path, pem).expect("write");
        assert!(matches!(
            PrivateKeyDer::from_pem_file(&sec1_path),
            Ok(PrivateKeyDer::Sec1(_))
        ));
        server_config(&cert, &sec1_path, TlsMinVersion::V1_2).expect("SEC1 key accepted");
    }

    #[test]
    fn tls_missing_file_names_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, _) = write_self_signed(dir.path(), "sbc.example.test");
        let missing = dir.path().join("nope.key");
        let err = server_config(&cert, &missing, TlsMinVersion::V1_2).unwrap_err();
        assert!(
            matches!(&err, TlsError::Read { path, .. } if path == &missing),
            "{err}"
        );
        assert!(err.to_string().contains("nope.key"), "{err}");
    }

    #[test]
    fn tls_rejects_garbage_and_swapped_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = write_self_signed(dir.path(), "sbc.example.test");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello, not a certificate\n").expect("write");

        let err = server_config(&junk, &key, TlsMinVersion::V1_2).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        let err = server_config(&cert, &junk, TlsMinVersion::V1_2).unwrap_err();
        assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");
        // The key file holds no certificate and the cert file no key.
        let err = server_config(&key, &cert, TlsMinVersion::V1_2).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");

        let broken = dir.path().join("broken.crt");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!!!not base64!!!!\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let err = server_config(&broken, &key, TlsMinVersion::V1_2).unwrap_err();
        assert!(matches!(err, TlsError::Pem { .. }), "{err}");
    }

    #[test]
    fn tls_rejects_key_of_another_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, _) = write_self_signed(dir.path(), "one.example.test");
        let (_, other_key) = write_self_signed(dir.path(), "two.example.test");
        let err = server_config(&cert, &other_key, TlsMinVersion::V1_2).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    }

    #[test]
    fn tls_rejects_certificate_that_is_not_der() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, key) = write_self_signed(dir.path(), "sbc.example.test");
        let bogus = dir.path().join("bogus.crt");
        // Valid PEM framing and base64, but the payload is not an X.509 certificate.
        std::fs::write(
            &bogus,
            "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let err = server_config(&bogus, &key, TlsMinVersion::V1_2).unwrap_err();
        assert!(matches!(err, TlsError::Rejected { .. }), "{err}");
    }
}
