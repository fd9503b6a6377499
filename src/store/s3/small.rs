//! The body of a small file's PUT: read from disk when the request sends it, not held in
//! memory while the request waits for the store's answer.

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// A retryable body that reads `path` whole when first polled (each retry reads it again).
/// `sha256`, when given, is checked against what was read: for a store that takes no
/// checksum, which would otherwise store whatever a file rewritten since it was hashed holds.
pub(super) fn body(path: PathBuf, size: u64, sha256: Option<[u8; 32]>) -> ByteStream {
    ByteStream::new(SdkBody::retryable(move || {
        SdkBody::from_body_1_x(SmallFile {
            path: path.clone(),
            size,
            sha256,
            sent: false,
        })
    }))
}

struct SmallFile {
    path: PathBuf,
    size: u64,
    sha256: Option<[u8; 32]>,
    sent: bool,
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
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if this.sent {
            return Poll::Ready(None);
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

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn digest(b: &[u8]) -> [u8; 32] {
        Sha256::digest(b).into()
    }

    #[tokio::test]
    async fn a_small_files_body_is_read_when_sent_and_again_on_a_retry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        std::fs::write(&path, b"first").unwrap();
        let stream = body(path.clone(), 5, Some(digest(b"first")));
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

    #[tokio::test]
    async fn a_small_file_of_another_size_is_refused_with_or_without_a_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        std::fs::write(&path, b"grown since").unwrap();
        for sha in [None, Some(digest(b"grown"))] {
            let err = body(path.clone(), 5, sha).collect().await.unwrap_err();
            assert!(format!("{err:?}").contains("changed while it was being uploaded"));
        }
        // Without a digest (the store checks the checksum), only the size is checked.
        std::fs::write(&path, b"other").unwrap();
        let got = body(path, 5, None).collect().await.unwrap().into_bytes();
        assert_eq!(&got[..], b"other");
    }
}
