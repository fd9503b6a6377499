//! Server-side copies: one CopyObject, or a large object's parts copied concurrently.

use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedPart, MetadataDirective};
use futures::{StreamExt, TryStreamExt};

use super::sse::WithSse;
use super::S3Store;
use crate::error::{Error, Result};
use crate::store::{bare_etag, part_size_for, PutOptions};

impl S3Store {
    /// Copies `src` to `dst` server-side: in one request up to the copy threshold, in parts
    /// above it; with `if_match`, only while `src` still has that entity tag.
    pub(super) async fn copy_object(
        &self,
        src: &str,
        dst: &str,
        size: u64,
        opts: &PutOptions,
        if_match: Option<&str>,
    ) -> Result<String> {
        let if_match = if_match.map(|e| format!("\"{}\"", bare_etag(e)));
        if size <= self.tuning.copy_multipart_threshold {
            let out = self
                .client
                .copy_object()
                .bucket(&self.bucket)
                .key(dst)
                .copy_source(self.copy_source(src))
                .set_copy_source_if_match(if_match)
                .metadata_directive(MetadataDirective::Replace)
                .set_metadata(Some(Self::metadata(opts)))
                .sse(&self.sse)
                .send()
                .await
                .map_err(|e| self.fail_copy(src, dst, e))?;
            return Ok(out
                .copy_object_result()
                .and_then(|r| r.e_tag())
                .map(bare_etag)
                .unwrap_or_default());
        }
        // The store checks each copied part, so a copy needs no checksum of ours.
        let algorithm = self.checksums.then_some(ChecksumAlgorithm::Sha256);
        let upload_id = self
            .create_multipart(dst, opts, algorithm)
            .await
            .map_err(|e| self.fail(&format!("starting the multipart copy to {dst}"), e))?;
        let parts = self
            .copy_parts(src, dst, size, &upload_id, if_match.as_deref())
            .await;
        let parts = parts.map(|p| (p, None));
        self.finish_multipart(dst, &upload_id, parts, opts).await
    }

    pub(super) async fn copy_parts(
        &self,
        src: &str,
        dst: &str,
        size: u64,
        upload_id: &str,
        if_match: Option<&str>,
    ) -> Result<Vec<CompletedPart>> {
        let part_size = part_size_for(size, self.tuning.copy_part_size);
        let count = size.div_ceil(part_size).max(1);
        let source = self.copy_source(src);
        futures::stream::iter(0..count)
            .map(|i| {
                let source = source.clone();
                async move {
                    let first = i * part_size;
                    let last = (first + part_size).min(size) - 1;
                    let number = (i + 1) as i32;
                    let resp = self
                        .client
                        .upload_part_copy()
                        .bucket(&self.bucket)
                        .key(dst)
                        .upload_id(upload_id)
                        .part_number(number)
                        .copy_source(source)
                        .copy_source_range(format!("bytes={first}-{last}"))
                        .set_copy_source_if_match(if_match.map(str::to_string))
                        .send()
                        .await
                        .map_err(|e| self.fail_copy(src, dst, e))?;
                    let result = resp.copy_part_result();
                    Ok::<_, Error>(
                        CompletedPart::builder()
                            .part_number(number)
                            .set_e_tag(result.and_then(|r| r.e_tag()).map(str::to_string))
                            .set_checksum_sha256(
                                result.and_then(|r| r.checksum_sha256()).map(str::to_string),
                            )
                            .build(),
                    )
                }
            })
            .buffer_unordered(self.tuning.concurrency.clamp(1, 8))
            .try_collect()
            .await
    }
}
