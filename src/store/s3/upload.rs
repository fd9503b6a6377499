//! Writes: single PUTs, streaming multipart uploads, and server-side copies (multipart
//! above the copy threshold).

use std::path::Path;

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use futures::{StreamExt, TryStreamExt};

use super::S3Store;
use crate::error::{Error, Result};
use crate::store::{bare_etag, part_size_for, Precondition, PutOptions};

impl S3Store {
    pub(super) async fn create_multipart(&self, key: &str, opts: &PutOptions) -> Result<String> {
        let resp = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .set_metadata(Some(Self::metadata(opts)))
            .set_checksum_algorithm(self.checksums.then_some(ChecksumAlgorithm::Sha256))
            .set_server_side_encryption(self.sse.clone())
            .set_ssekms_key_id(self.sse_kms_key_id.clone())
            .send()
            .await
            .map_err(|e| self.fail(&format!("starting the multipart upload of {key}"), e))?;
        resp.upload_id().map(str::to_string).ok_or_else(|| {
            Error::Store(format!("{} returned no upload id for {key}", self.endpoint))
        })
    }

    pub(super) async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        mut parts: Vec<CompletedPart>,
    ) -> Result<String> {
        parts.sort_by_key(|p| p.part_number());
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.fail(&format!("completing the multipart upload of {key}"), e))?;
        Ok(out.e_tag().map(bare_etag).unwrap_or_default())
    }

    /// Completes a multipart upload from its parts, or aborts it when the parts failed or
    /// completion fails, so no half-written object ever appears.
    pub(super) async fn finish_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Result<Vec<CompletedPart>>,
    ) -> Result<String> {
        let done = match parts {
            Ok(parts) => self.complete_multipart(key, upload_id, parts).await,
            Err(e) => Err(e),
        };
        if done.is_err() {
            self.abort_multipart(key, upload_id).await;
        }
        done
    }

    pub(super) async fn put_object(
        &self,
        key: &str,
        body: ByteStream,
        opts: &PutOptions,
    ) -> Result<String> {
        Ok(self
            .put_object_if(key, body, opts, None)
            .await?
            .unwrap_or_default())
    }

    /// A single PUT, conditional when `cond` is set: `Ok(None)` when the store refused it.
    pub(super) async fn put_object_if(
        &self,
        key: &str,
        body: ByteStream,
        opts: &PutOptions,
        cond: Option<Precondition<'_>>,
    ) -> Result<Option<String>> {
        let (if_none_match, if_match) = match cond {
            None => (None, None),
            Some(Precondition::Absent) => (Some("*".to_string()), None),
            Some(Precondition::Matches(e)) => (None, Some(format!("\"{}\"", bare_etag(e)))),
        };
        let sent = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .set_if_none_match(if_none_match)
            .set_if_match(if_match)
            .set_metadata(Some(Self::metadata(opts)))
            .set_checksum_sha256(self.checksum(opts.sha256))
            .set_server_side_encryption(self.sse.clone())
            .set_ssekms_key_id(self.sse_kms_key_id.clone())
            .body(body)
            .customize()
            // An in-memory body would otherwise be hashed once more to sign it; the S3
            // checksum (when on) already covers its content.
            .disable_payload_signing()
            .send()
            .await;
        match sent {
            Ok(out) => Ok(Some(out.e_tag().map(bare_etag).unwrap_or_default())),
            // 412 PreconditionFailed, or 409 ConditionalRequestConflict when a concurrent
            // conditional write is in progress; If-Match on a missing key is a 404 on AWS.
            Err(SdkError::ServiceError(se))
                if cond.is_some()
                    && (matches!(se.raw().status().as_u16(), 409 | 412)
                        || (matches!(cond, Some(Precondition::Matches(_)))
                            && se.raw().status().as_u16() == 404)) =>
            {
                Ok(None)
            }
            Err(e) => Err(self.fail(&format!("uploading {key}"), e)),
        }
    }

    pub(super) async fn abort_multipart(&self, key: &str, upload_id: &str) {
        // Best effort: an unfinished multipart upload is invisible to readers either way.
        let _ = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
    }

    pub(super) async fn upload_parts(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        opts: &PutOptions,
        upload_id: &str,
    ) -> Result<Vec<CompletedPart>> {
        let part_size = part_size_for(size, self.tuning.part_size);
        let count = size.div_ceil(part_size).max(1);
        // Parts the caller hashed already (with the whole file, on other cores) are sent
        // without another pass over them.
        let known = (opts.part_sha256.len() as u64 == count).then_some(&opts.part_sha256);
        let parallel = self.tuning.concurrency.clamp(1, 4);
        futures::stream::iter(0..count)
            .map(|i| {
                async move {
                    let offset = i * part_size;
                    let len = part_size.min(size - offset) as usize;
                    let p = path.to_path_buf();
                    // Hash the part through a small buffer, then stream it from the file: memory
                    // stays a few MiB whatever the part size and the parts in flight.
                    let checksums = self.checksums;
                    let known = known.map(|k| k[i as usize]);
                    let digest = tokio::task::spawn_blocking(move || {
                        if !checksums {
                            return Ok::<_, Error>([0u8; 32]);
                        }
                        if let Some(d) = known {
                            return Ok(d);
                        }
                        crate::codehash::sha256_range(&p, offset, len as u64)
                    })
                    .await
                    .map_err(|e| Error::Store(format!("reading part of {key}: {e}")))??;
                    let body = ByteStream::read_from()
                        .path(path)
                        .offset(offset)
                        .length(Length::Exact(len as u64))
                        .buffer_size(256 * 1024)
                        .build()
                        .await
                        .map_err(|e| {
                            Error::Input(format!("cannot read {}: {e}", path.display()))
                        })?;
                    let number = (i + 1) as i32;
                    let checksum = self.checksum(Some(digest));
                    let resp = self
                        .client
                        .upload_part()
                        .bucket(&self.bucket)
                        .key(key)
                        .upload_id(upload_id)
                        .part_number(number)
                        .set_checksum_sha256(checksum.clone())
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| self.fail(&format!("uploading part {number} of {key}"), e))?;
                    Ok::<_, Error>(
                        CompletedPart::builder()
                            .part_number(number)
                            .set_e_tag(resp.e_tag().map(str::to_string))
                            .set_checksum_sha256(checksum)
                            .build(),
                    )
                }
            })
            .buffer_unordered(parallel)
            .try_collect()
            .await
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
