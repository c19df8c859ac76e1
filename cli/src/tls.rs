//! Throwaway TLS material for a `tls = true` trial: a CA made for the trial and a certificate it
//! issues for 127.0.0.1 and localhost. The server serves the certificate; the load generators
//! trust that CA alone (`--ca`), so the run checks certificates as a real client would without
//! `--insecure`. The files stay in the trial's folder; the key protects nothing after the trial.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};

pub const CA_FILE: &str = "tls-ca.pem";
pub const CERT_FILE: &str = "tls-cert.pem";
pub const KEY_FILE: &str = "tls-key.pem";

/// The PEM files of one trial's TLS.
#[derive(Debug, Clone)]
pub struct TrialTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Makes a CA and a server certificate it signs, and writes them into `dir`.
pub fn throwaway(dir: &Path) -> Result<TrialTls> {
    let made = || -> Result<(String, String, String), rcgen::Error> {
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        // Distinct names: a leaf named like its issuer looks self-signed to OpenSSL clients.
        ca.distinguished_name = DistinguishedName::new();
        ca.distinguished_name.push(DnType::CommonName, "wsbench throwaway CA");
        let ca = ca.self_signed(&ca_key)?;
        let key = KeyPair::generate()?;
        let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        leaf.distinguished_name = DistinguishedName::new();
        leaf.distinguished_name.push(DnType::CommonName, "localhost");
        let leaf = leaf.signed_by(&key, &ca, &ca_key)?;
        Ok((ca.pem(), leaf.pem(), key.serialize_pem()))
    };
    let (ca_pem, cert_pem, key_pem) = made().context("cannot make the trial's TLS certificate")?;
    let tls = TrialTls { ca: dir.join(CA_FILE), cert: dir.join(CERT_FILE), key: dir.join(KEY_FILE) };
    for (path, text) in [(&tls.ca, ca_pem), (&tls.cert, cert_pem), (&tls.key, key_pem)] {
        fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(tls)
}

/// The file of a `tokens = true` trial's secret, in the trial's folder.
pub const TOKEN_SECRET_FILE: &str = "token-secret";

/// Makes a random token secret for one trial (32 bytes from the kernel, in hex) and writes it
/// into `dir`; the server checks tokens with it and the load generators mint theirs with it.
pub fn throwaway_token_secret(dir: &Path) -> Result<PathBuf> {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for the trial's token secret")?;
    let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(TOKEN_SECRET_FILE);
    fs::write(&path, text + "\n").with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
