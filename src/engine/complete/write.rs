//! The manifest's write: its signature first, then its bytes (from a temporary file for a
//! large set), under the condition the round asks.

use sha2::{Digest, Sha256};

use super::Engine;
use crate::error::Result;
use crate::layout::SetLocation;
use crate::log;
use crate::manifest::Manifest;
use crate::signing;
use crate::store::{Body, PutMode, PutOptions};

/// Sets of this many files or more write their manifest to a temporary file and send it from
/// there (about 180 bytes a file: 8 MB for 50,000), instead of holding its bytes beside the
/// entries they were made from while the request goes out. The end of a 50,000-file upload
/// then added nothing to its RssAnon (52 MB at most, against 58 MB with the bytes held).
const SPILL_FILES: usize = 4096;

/// A manifest written to a file of its own in the temporary directory, readable by this user
/// only, and removed when dropped.
pub(super) struct Spilled {
    pub(super) path: std::path::PathBuf,
    pub(super) sha256: [u8; 32],
}

impl Spilled {
    pub(super) fn write(m: &Manifest) -> std::io::Result<Spilled> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            ".s3am-manifest-{}-{n}-{}",
            std::process::id(),
            crate::engine::now_ms()
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        // From here on, a failure removes the file.
        let mut spilled = Spilled {
            path,
            sha256: [0; 32],
        };
        struct Hashing<W> {
            out: W,
            hasher: Sha256,
        }
        impl<W: Write> Write for Hashing<W> {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let n = self.out.write(buf)?;
                self.hasher.update(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                self.out.flush()
            }
        }
        let mut out = Hashing {
            out: std::io::BufWriter::with_capacity(64 << 10, file),
            hasher: Sha256::new(),
        };
        m.write_json(&mut out)?;
        out.flush()?;
        spilled.sha256 = out.hasher.finalize().into();
        Ok(spilled)
    }
}

impl Drop for Spilled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Engine {
    /// Writes the manifest as `mode` says; the SHA-256 of its bytes and its entity
    /// tag, or `None` when the store refused the conditional write. A large set's manifest
    /// ([`SPILL_FILES`] files or more, unsigned) goes through a temporary file; a smaller one
    /// goes to the store as its bytes are, not copied.
    pub(super) async fn write_manifest(
        &self,
        loc: &SetLocation,
        m: &Manifest,
        mode: PutMode,
    ) -> Result<Option<([u8; 32], String)>> {
        let key = loc.manifest_key();
        let opts = |sha256| PutOptions {
            sha256: Some(sha256),
            mode: mode.clone(),
            ..PutOptions::default()
        };
        // Where no temporary file can be made, the bytes are held instead: memory, not the
        // outcome, is what that costs.
        let spilled = match &self.keys.signing {
            None if m.files.len() >= SPILL_FILES => Spilled::write(m).ok(),
            _ => None,
        };
        let (digest, written, signed) = match spilled {
            Some(file) => {
                let written = self
                    .store
                    .put(&key, Body::Stream(&file.path), &opts(file.sha256))
                    .await?;
                (file.sha256, written, String::new())
            }
            None => {
                let body = m.to_bytes();
                // The signature goes first, under a name bound to these exact bytes: once the
                // manifest is visible, so is its signature, and no other manifest can claim it.
                let signed = match &self.keys.signing {
                    Some(key) => {
                        let sig = key.sign(&body)?;
                        self.store
                            .put(
                                &signing::signature_key(loc, &body),
                                Body::Bytes(sig),
                                &PutOptions::default(),
                            )
                            .await?;
                        format!(", signed by {}", key.fingerprint())
                    }
                    None => String::new(),
                };
                let digest: [u8; 32] = Sha256::digest(&body).into();
                let written = self
                    .store
                    .put(&key, Body::Bytes(body), &opts(digest))
                    .await?;
                (digest, written, signed)
            }
        };
        let Some(etag) = written else {
            return Ok(None);
        };
        log::phase(format!("wrote manifest {key}: {loc} is complete{signed}"));
        Ok(Some((digest, etag)))
    }
}
