//! Signed asset sets: publishers hold an OpenSSH Ed25519 private key, readers hold public keys.
//!
//! A manifest's signature is an SSH signature (SSHSIG, namespace [`NAMESPACE`]) over the exact
//! manifest bytes, so `ssh-keygen -Y verify` checks a set without this tool. It is stored beside
//! the manifest in an object named by the manifest's SHA-256 ([`signature_key`]): a reader
//! fetches the signature of the bytes it read, so it never pairs a manifest with another
//! manifest's signature, whatever racing publishers do.

use std::path::Path;

use sha2::{Digest, Sha256};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

use crate::error::{Error, Result};
use crate::layout::SetLocation;

/// The SSHSIG namespace of every manifest signature.
pub(crate) const NAMESPACE: &str = "s3-asset-manager";

/// The largest signature object a reader takes (an Ed25519 SSHSIG is about 300 bytes): a
/// larger one is refused without reading past this.
pub(crate) const SIGNATURE_MAX: u64 = 16 << 10;

/// The key of the signature of `manifest` (the exact bytes) in the set at `loc`:
/// `<set>/.manifest.json.<sha256-hex>.sig`.
pub(crate) fn signature_key(loc: &SetLocation, manifest: &[u8]) -> String {
    format!(
        "{}.{}.sig",
        loc.manifest_key(),
        hex::encode(Sha256::digest(manifest))
    )
}

/// Whether `key` is a signature object of the set at `loc`.
pub(crate) fn is_signature_key(loc: &SetLocation, key: &str) -> bool {
    key.strip_prefix(&loc.manifest_key())
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_suffix(".sig"))
        .is_some_and(|digest| digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether a setting's value is a key's text rather than a path to a file holding it: a PEM
/// block (`-----BEGIN ...`), a public key line (`ssh-ed25519 AAAA...`), or anything on more
/// than one line. Concourse passes secrets as values (`S3AM_SIGNING_KEY: ((signing_key))`).
pub(crate) fn is_key_text(value: &str) -> bool {
    let t = value.trim_start();
    t.starts_with("-----BEGIN")
        || t.starts_with("ssh-")
        || t.starts_with("ecdsa-")
        || t.starts_with("sk-")
        || value.trim().contains('\n')
}

/// Why a file could not be read, without the path (the OS error's text alone).
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// What a key-generation hint says, for every malformed-key message.
const MAKE_ONE: &str = "make one with: ssh-keygen -t ed25519 -N '' -f KEYFILE";

/// A publisher's private key. Its text never appears in any output: not in `Debug`, not in
/// errors.
pub(crate) struct SigningKey {
    key: PrivateKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.fingerprint())
    }
}

impl SigningKey {
    /// Reads an unencrypted OpenSSH Ed25519 private key file (as `ssh-keygen -t ed25519 -N ''`
    /// writes it); errors name the file as `what` does (the setting that gave the path: a
    /// path given where a key was meant may be the key, and is never printed).
    pub(crate) fn from_file(path: &Path, what: &str) -> Result<Self> {
        let text = std::fs::read(path).map_err(|e| {
            Error::Config(format!(
                "cannot read the file {what} names ({}): give the path of an OpenSSH Ed25519 private key, or the key's text ({MAKE_ONE})",
                io_reason(&e)
            ))
        })?;
        Self::parse(&text, &format!("the file {what} names"))
    }

    /// Parses the key's text; `what` names where it came from in errors (e.g.
    /// `source.signing_key`).
    pub(crate) fn parse(text: &[u8], what: &str) -> Result<Self> {
        let text = String::from_utf8_lossy(text);
        let trimmed = text.trim();
        if trimmed.starts_with("ssh-") || trimmed.starts_with("ecdsa-") {
            return Err(Error::Config(format!(
                "{what} holds a public key: it needs the private key (the file without .pub)"
            )));
        }
        // The parser's own message says only which part of the format failed, never the key.
        let key = PrivateKey::from_openssh(trimmed.as_bytes()).map_err(|e| {
            Error::Config(format!(
                "{what} is not an OpenSSH private key ({e}): {MAKE_ONE}"
            ))
        })?;
        if key.is_encrypted() {
            return Err(Error::Config(format!(
                "{what} is encrypted with a passphrase, which a pipeline cannot type: use a key without one ({MAKE_ONE})"
            )));
        }
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(Error::Config(format!(
                "{what} is a {} key: only Ed25519 keys are supported ({MAKE_ONE})",
                key.algorithm()
            )));
        }
        Ok(SigningKey { key })
    }

    /// The public key.
    pub(crate) fn public_key(&self) -> PublicKey {
        self.key.public_key().clone()
    }

    /// The public key's SHA-256 fingerprint, as `ssh-keygen -l` prints it.
    pub(crate) fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }

    /// The armored SSH signature (`-----BEGIN SSH SIGNATURE-----`) over `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let sig = self
            .key
            .sign(NAMESPACE, HashAlg::Sha512, message)
            .map_err(|e| Error::Config(format!("cannot sign with the signing key: {e}")))?;
        let pem = sig
            .to_pem(LineEnding::LF)
            .map_err(|e| Error::Config(format!("cannot encode a signature: {e}")))?;
        Ok(pem.into_bytes())
    }
}

/// One trusted public key and its comment.
#[derive(Debug, Clone)]
struct Trusted {
    key: PublicKey,
    name: String,
}

/// The public keys whose signatures make a set trusted.
#[derive(Debug, Clone)]
pub(crate) struct TrustedKeys {
    keys: Vec<Trusted>,
}

/// Whether a manifest's signature makes its set trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Signed by a trusted key, named by its fingerprint and comment.
    Trusted(String),
    /// Not trusted; says why, naming the signer when there is a signature.
    Untrusted(String),
}

impl TrustedKeys {
    /// Reads a file of public key lines (`ssh-ed25519 AAAA... comment`; `#` comments and blank
    /// lines allowed); errors name the file and line.
    pub(crate) fn from_file(path: &Path, what: &str) -> Result<Self> {
        let what = format!("the file {what} names");
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "cannot read {what} ({}): give the path of a file of ssh-ed25519 public key lines, or the lines themselves",
                io_reason(&e)
            ))
        })?;
        let lines: Vec<(String, &str)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (format!("{what}, line {}", i + 1), l))
            .collect();
        Self::parse(&lines, &what)
    }

    /// Parses public key lines, each with the name errors give it (e.g.
    /// `source.trusted_keys[1]`); `what` names them all.
    pub(crate) fn parse(lines: &[(String, &str)], what: &str) -> Result<Self> {
        let mut keys = Vec::new();
        for (name, line) in lines {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = PublicKey::from_openssh(line).map_err(|e| {
                Error::Config(format!(
                    "{name} is not an OpenSSH public key line ({e}): use the line from KEYFILE.pub, e.g. \"ssh-ed25519 AAAA... main-pipeline\""
                ))
            })?;
            if key.algorithm() != Algorithm::Ed25519 {
                return Err(Error::Config(format!(
                    "{name} is a {} key: only ssh-ed25519 keys are supported",
                    key.algorithm()
                )));
            }
            let fingerprint = key.fingerprint(HashAlg::Sha256);
            let name = match key.comment() {
                "" => fingerprint.to_string(),
                c => format!("{fingerprint} ({c})"),
            };
            keys.push(Trusted { key, name });
        }
        if keys.is_empty() {
            return Err(Error::Config(format!(
                "{what} holds no public key: add the publisher's ssh-ed25519 line, or unset it to trust every complete set"
            )));
        }
        Ok(TrustedKeys { keys })
    }

    /// The keys a publisher holding `own` trusts: these and its own public key, so that it
    /// restores, keeps and counts as complete only sets signed by a trusted key or by itself.
    pub(crate) fn including(trusted: Option<&TrustedKeys>, own: &SigningKey) -> TrustedKeys {
        let mut keys = trusted.map(|t| t.keys.clone()).unwrap_or_default();
        let public = own.public_key();
        if !keys.iter().any(|t| t.key.key_data() == public.key_data()) {
            keys.push(Trusted {
                name: format!("{} (this publisher's signing key)", own.fingerprint()),
                key: public,
            });
        }
        TrustedKeys { keys }
    }

    /// Checks `signature` (armored SSHSIG, or `None` when there is none) over `manifest`.
    pub(crate) fn verify(&self, manifest: &[u8], signature: Option<&[u8]>) -> Verdict {
        let Some(signature) = signature else {
            return Verdict::Untrusted("it is unsigned".into());
        };
        if signature.len() as u64 > SIGNATURE_MAX {
            return Verdict::Untrusted(format!(
                "its signature is over {} KiB, the most a signature may hold",
                SIGNATURE_MAX >> 10
            ));
        }
        let sig = match SshSig::from_pem(signature) {
            Ok(s) => s,
            Err(e) => return Verdict::Untrusted(format!("its signature is unreadable ({e})")),
        };
        let signer = PublicKey::from(sig.public_key().clone()).fingerprint(HashAlg::Sha256);
        let Some(trusted) = self
            .keys
            .iter()
            .find(|t| t.key.key_data() == sig.public_key())
        else {
            return Verdict::Untrusted(format!("it is signed by {signer}, which is not trusted"));
        };
        match trusted.key.verify(NAMESPACE, manifest, &sig) {
            Ok(()) => Verdict::Trusted(trusted.name.clone()),
            Err(e) => Verdict::Untrusted(format!(
                "its signature by {} does not verify ({e})",
                trusted.name
            )),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    // Made with `ssh-keygen -t ed25519 -N '' -C test`, for the tests only (the integration
    // tests read the same files).
    pub(crate) const PRIVATE: &str =
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/test-key"));
    const PUBLIC: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/test-key.pub"
    ));
    const OTHER: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIESu8BmZX+g+qze+cy1MrPVDR35uEAiFbZkzOhkQGJ9V other";

    fn trusted(lines: &[&str]) -> TrustedKeys {
        let named: Vec<(String, &str)> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("line {i}"), *l))
            .collect();
        TrustedKeys::parse(&named, "keys").unwrap()
    }

    #[test]
    fn a_signature_verifies_over_the_exact_bytes_only() {
        let key = SigningKey::parse(PRIVATE.as_bytes(), "key").unwrap();
        let sig = key.sign(b"manifest").unwrap();
        let keys = trusted(&["# main", "", PUBLIC]);
        assert!(
            matches!(keys.verify(b"manifest", Some(&sig)), Verdict::Trusted(n) if n.ends_with("(test)"))
        );
        assert!(
            matches!(keys.verify(b"manifest!", Some(&sig)), Verdict::Untrusted(w) if w.contains("does not verify"))
        );
        assert_eq!(
            keys.verify(b"manifest", None),
            Verdict::Untrusted("it is unsigned".into())
        );
        let others = trusted(&[OTHER]);
        assert!(
            matches!(others.verify(b"manifest", Some(&sig)), Verdict::Untrusted(w) if w.contains(&key.fingerprint()))
        );
        // A publisher trusts its own key beside the others, and only once.
        let own = TrustedKeys::including(Some(&others), &key);
        assert!(
            matches!(own.verify(b"manifest", Some(&sig)), Verdict::Trusted(n) if n.contains("this publisher's"))
        );
        assert_eq!(TrustedKeys::including(Some(&keys), &key).keys.len(), 1);
        assert_eq!(TrustedKeys::including(None, &key).keys.len(), 1);
        let big = vec![b'x'; SIGNATURE_MAX as usize + 1];
        assert!(
            matches!(keys.verify(b"manifest", Some(&big)), Verdict::Untrusted(w) if w.contains("over 16 KiB"))
        );
        // Rotation: either of two trusted keys verifies.
        assert!(matches!(
            trusted(&[OTHER, PUBLIC]).verify(b"manifest", Some(&sig)),
            Verdict::Trusted(_)
        ));
    }

    #[test]
    fn malformed_keys_are_named_without_their_text() {
        let e = SigningKey::parse(PUBLIC.as_bytes(), "source.signing_key").unwrap_err();
        assert!(e.to_string().contains("holds a public key"), "{e}");
        let garbage = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot base64 at all SECRETSECRET\n-----END OPENSSH PRIVATE KEY-----\n";
        let e = SigningKey::parse(garbage.as_bytes(), "source.signing_key").unwrap_err();
        assert!(
            e.to_string().starts_with("source.signing_key is not"),
            "{e}"
        );
        assert!(!e.to_string().contains("SECRET"), "{e}");
        let e = TrustedKeys::parse(&[("f, line 2".into(), "ssh-ed25519 nope")], "f").unwrap_err();
        assert!(e.to_string().starts_with("f, line 2 is not"), "{e}");
        let e = TrustedKeys::parse(&[("f, line 1".into(), "# only")], "f").unwrap_err();
        assert!(e.to_string().contains("holds no public key"), "{e}");
    }
}
