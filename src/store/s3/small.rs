//! The body of a small file's PUT: read from disk when the request sends it, not held in
//! memory while the request waits for the store's answer.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::S3Store;
use crate::error::Result;
use crate::store::{Hold, PutOptions};

/// A retryable body that reads `path` whole when first polled (each retry reads it again).
/// `sha256`, when given, is checked against what was read: for a store that takes no
/// checksum, which would otherwise store whatever a file rewritten since it was hashed holds.
/// With a `hold`, nothing is read or sent before it is released, and a withdrawal ends the
/// body in an error, which cuts the request off short of its length: the store keeps
/// nothing of it.
pub(super) fn body(
    path: PathBuf,
    size: u64,
    sha256: Option<[u8; 32]>,
    hold: Option<Hold>,
) -> ByteStream {
    ByteStream::new(SdkBody::retryable(move || {
        SdkBody::from_body_1_x(SmallFile {
            path: path.clone(),
            size,
            sha256,
            sent: false,
            held: hold
                .as_ref()
                .map(|h| Mutex::new(Box::pin(h.decided()) as Decided)),
        })
    }))
}

/// The decision a held body waits for (`true`: send it).
type Decided = Pin<Box<dyn Future<Output = bool> + Send>>;

struct SmallFile {
    path: PathBuf,
    size: u64,
    sha256: Option<[u8; 32]>,
    sent: bool,
    /// Until released, what the body waits for (in a `Mutex`, only for `Sync`: it is
    /// reached through `&mut` alone).
    held: Option<Mutex<Decided>>,
}

impl SmallFile {
    /// The file, refused unless it is still what was listed and hashed (the same check as
    /// the other stores' [`crate::store::read_unchanged`]).
    fn read(&self) -> std::io::Result<Bytes> {
        crate::store::read_unchanged(&self.path, self.size, self.sha256)
            .map(Bytes::from)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

impl Body for SmallFile {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if this.sent {
            return Poll::Ready(None);
        }
        if let Some(held) = &mut this.held {
            let wait = held.get_mut().unwrap_or_else(|e| e.into_inner());
            match wait.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(true) => this.held = None,
                Poll::Ready(false) => {
                    this.sent = true;
                    return Poll::Ready(Some(Err(std::io::Error::other(
                        "the write was withdrawn before its body was sent",
                    ))));
                }
            }
        }
        this.sent = true;
        // At most INLINE_IO bytes, from the page cache the hashing read just filled: as
        // cheap as a trip to the blocking pool would be.
        Poll::Ready(Some(this.read().map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.sent
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(if self.sent { 0 } else { self.size })
    }
}

impl S3Store {
    /// A held small file's write: its request goes at once, its body kept back until `hold`
    /// is released. Far from the store, the connection's handshake and the request's head
    /// travel while the publish reads its set, and once released the write takes the body's
    /// way there and the answer's back. Withdrawn, the request is dropped, its body cut off
    /// short (the store keeps nothing). A request that failed while held (a store that
    /// would not wait) is sent again once released, as an unheld write is.
    pub(super) async fn put_held(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        verify: Option<[u8; 32]>,
        hold: &Hold,
        opts: &PutOptions,
    ) -> Result<Option<String>> {
        let held = body(path.to_path_buf(), size, verify, Some(hold.clone()));
        let wire = self.put_object(key, held, opts);
        tokio::pin!(wire);
        tokio::select! {
            // The decision first: a withdrawal is said as one, whatever the request did.
            biased;
            released = hold.released(key) => {
                return match released {
                    Ok(()) => wire.await,
                    // Dropping the request cuts its body off.
                    Err(withdrawn) => Err(withdrawn),
                };
            }
            sent = &mut wire => match sent {
                // Failed while held (or as it was withdrawn): as the hold says, below.
                Err(_) if hold.decision() != Some(true) => {}
                sent => return sent,
            },
        }
        hold.released(key).await?;
        let unheld = body(path.to_path_buf(), size, verify, None);
        self.put_object(key, unheld, opts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::time::Duration;

    fn digest(b: &[u8]) -> [u8; 32] {
        Sha256::digest(b).into()
    }

    #[tokio::test]
    async fn a_small_files_body_is_read_when_sent_and_again_on_a_retry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        std::fs::write(&path, b"first").unwrap();
        let stream = body(path.clone(), 5, Some(digest(b"first")), None);
        assert_eq!(
            stream.size_hint(),
            (5, Some(5)),
            "the length is known up front"
        );
        // Nothing is read before the body is polled: a retry sends what is on disk then.
        let retry = stream.into_inner();
        let again = retry.try_clone().expect("a small file's body is retryable");
        let got = ByteStream::new(retry).collect().await.unwrap().into_bytes();
        assert_eq!(&got[..], b"first");
        std::fs::write(&path, b"other").unwrap();
        let err = ByteStream::new(again).collect().await.unwrap_err();
        assert!(
            format!("{err:?}").contains("changed while it was being uploaded"),
            "rewritten since it was hashed: refused, not sent: {err:?}"
        );
    }

    /// A held body sends nothing until its hold is decided: released, the file; withdrawn
    /// (or its decider dropped), an error, which cuts its request off short.
    #[tokio::test]
    async fn a_held_body_waits_for_its_hold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        std::fs::write(&path, b"first").unwrap();
        for release in [Some(true), Some(false), None] {
            let (decide, hold) = Hold::new();
            let got = body(path.clone(), 5, None, Some(hold)).collect();
            tokio::pin!(got);
            let early = tokio::time::timeout(Duration::from_millis(100), &mut got).await;
            assert!(early.is_err(), "sent before its hold was decided");
            match release {
                Some(r) => decide.decide(r),
                None => drop(decide),
            }
            match got.await {
                Ok(b) => {
                    assert_eq!(release, Some(true));
                    assert_eq!(&b.into_bytes()[..], b"first");
                }
                Err(e) => {
                    assert_ne!(release, Some(true), "{e:?}");
                    assert!(format!("{e:?}").contains("withdrawn"), "{e:?}");
                }
            }
        }
    }

    #[tokio::test]
    async fn a_small_file_of_another_size_is_refused_with_or_without_a_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        std::fs::write(&path, b"grown since").unwrap();
        for sha in [None, Some(digest(b"grown"))] {
            let err = body(path.clone(), 5, sha, None)
                .collect()
                .await
                .unwrap_err();
            assert!(format!("{err:?}").contains("changed while it was being uploaded"));
        }
        // Without a digest (the store checks the checksum), only the size is checked.
        std::fs::write(&path, b"other").unwrap();
        let got = body(path, 5, None, None)
            .collect()
            .await
            .unwrap()
            .into_bytes();
        assert_eq!(&got[..], b"other");
    }
}
