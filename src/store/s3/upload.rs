//! Writes: single PUTs and streaming multipart uploads (server-side copies: `copy.rs`).

use std::path::Path;
use std::sync::atomic::Ordering;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadError;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumType, CompletedMultipartUpload, CompletedPart};
use base64::Engine as _;
use futures::{StreamExt, TryStreamExt};

use super::sse::WithSse;
use super::S3Store;
use crate::error::{Error, Result};
use crate::log;
use crate::store::{bare_etag, transfer_part_size, PutMode, PutOptions, PARTS_IN_FLIGHT};

/// How the parts of a multipart upload are checksummed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PartChecksum {
    /// None (checksums are off for this store).
    Off,
    /// CRC64/NVME of each part, and of the whole object at completion (full-object type).
    Crc64,
    /// SHA-256 of each part (composite), for a store that refuses CRC64/NVME.
    Sha256,
}

/// Where one part of a multipart upload lies in its file, and its CRC64/NVME when the
/// caller computed it already.
#[derive(Debug, Clone, Copy)]
struct FilePart {
    number: i32,
    offset: u64,
    len: u64,
    known_crc64: Option<u64>,
}

/// An S3 checksum header's value for a CRC64/NVME.
fn crc64_header(crc: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

impl S3Store {
    pub(super) async fn create_multipart(
        &self,
        key: &str,
        opts: &PutOptions,
        algorithm: Option<ChecksumAlgorithm>,
    ) -> std::result::Result<String, SdkError<CreateMultipartUploadError, HttpResponse>> {
        let full_object = algorithm == Some(ChecksumAlgorithm::Crc64Nvme);
        let resp = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .set_metadata(Some(Self::metadata(opts)))
            .set_checksum_algorithm(algorithm)
            .set_checksum_type(full_object.then_some(ChecksumType::FullObject))
            .sse(&self.sse)
            .send()
            .await?;
        Ok(resp.upload_id().unwrap_or_default().to_string())
    }

    /// Starts the multipart upload of a file: with a full-object CRC64/NVME where the store
    /// takes one (cheap to compute, checked by the store part by part and whole), with
    /// SHA-256 parts where it refuses that (asked once per run).
    pub(super) async fn start_upload(
        &self,
        key: &str,
        opts: &PutOptions,
    ) -> Result<(String, PartChecksum)> {
        let what = format!("starting the multipart upload of {key}");
        let checksum = if !self.checksums {
            PartChecksum::Off
        } else if self.crc64_multipart.load(Ordering::Relaxed) {
            match self
                .create_multipart(key, opts, Some(ChecksumAlgorithm::Crc64Nvme))
                .await
            {
                Ok(id) => return self.upload_id(key, id, PartChecksum::Crc64),
                // A store without CRC64/NVME (or full-object checksums) says so with a 400 or
                // a 501; anything else (credentials, the bucket) fails as it is.
                Err(SdkError::ServiceError(se))
                    if matches!(se.raw().status().as_u16(), 400 | 501) =>
                {
                    // Uploads started together may all be refused; one warning says it.
                    if self.crc64_multipart.swap(false, Ordering::Relaxed) {
                        log::warn(format!(
                            "{} refused a CRC64NVME multipart upload ({} {}): sending SHA-256 part checksums instead",
                            self.endpoint,
                            se.raw().status().as_u16(),
                            se.err().code().unwrap_or("")
                        ));
                    }
                    PartChecksum::Sha256
                }
                Err(e) => return Err(self.fail(&what, e)),
            }
        } else {
            PartChecksum::Sha256
        };
        let algorithm = match checksum {
            PartChecksum::Sha256 => Some(ChecksumAlgorithm::Sha256),
            _ => None,
        };
        let id = self
            .create_multipart(key, opts, algorithm)
            .await
            .map_err(|e| self.fail(&what, e))?;
        self.upload_id(key, id, checksum)
    }

    fn upload_id(
        &self,
        key: &str,
        id: String,
        checksum: PartChecksum,
    ) -> Result<(String, PartChecksum)> {
        if id.is_empty() {
            return Err(Error::transient(
                format!("{} returned no upload id for {key}", self.endpoint),
                "an empty upload id",
            ));
        }
        Ok((id, checksum))
    }

    /// Completes a multipart upload from its parts, with the whole object's CRC64/NVME when
    /// the parts carried theirs.
    ///
    /// A completion whose answer was lost (a connection reset after the store completed it)
    /// is sent again by the SDK and answered `NoSuchUpload`: the upload is gone because it
    /// became the object. When the object at `key` carries exactly the metadata this upload
    /// was started with (this process's `publisher-id` among it), it is ours, and complete.
    pub(super) async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        mut parts: Vec<CompletedPart>,
        full_crc64: Option<u64>,
        opts: &PutOptions,
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
            .set_checksum_crc64_nvme(full_crc64.map(crc64_header))
            .set_checksum_type(full_crc64.map(|_| ChecksumType::FullObject))
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("NoSuchUpload") => {
                match self.completed_as(key, opts).await {
                    Some(etag) => return Ok(etag),
                    None => {
                        return Err(
                            self.fail(&format!("completing the multipart upload of {key}"), e)
                        )
                    }
                }
            }
            Err(e) => {
                return Err(self.fail(&format!("completing the multipart upload of {key}"), e))
            }
        };
        Ok(out.e_tag().map(bare_etag).unwrap_or_default())
    }

    /// The entity tag of the object at `key` when it carries exactly the metadata of `opts`
    /// (so this process wrote it with them); `None` otherwise, or when it cannot be read.
    async fn completed_as(&self, key: &str, opts: &PutOptions) -> Option<String> {
        let head = (self.client.head_object().bucket(&self.bucket).key(key))
            .send()
            .await
            .ok()?;
        let ours = Self::metadata(opts);
        let theirs: std::collections::HashMap<String, String> = (head.metadata()?.iter())
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        (theirs == ours && ours.contains_key(crate::layout::meta::PUBLISHER))
            .then(|| head.e_tag().map(bare_etag).unwrap_or_default())
    }

    /// Completes a multipart upload from its parts, or aborts it when the parts failed or
    /// completion fails, so no half-written object ever appears.
    pub(super) async fn finish_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Result<(Vec<CompletedPart>, Option<u64>)>,
        opts: &PutOptions,
    ) -> Result<String> {
        let done = match parts {
            Ok((parts, crc)) => {
                self.complete_multipart(key, upload_id, parts, crc, opts)
                    .await
            }
            Err(e) => Err(e),
        };
        if done.is_err() {
            self.abort_multipart(key, upload_id).await;
        }
        done
    }

    /// A single PUT, conditional as `opts.mode` says: `Ok(None)` when the store refused it.
    pub(super) async fn put_object(
        &self,
        key: &str,
        body: ByteStream,
        opts: &PutOptions,
    ) -> Result<Option<String>> {
        let (if_none_match, if_match) = match &opts.mode {
            PutMode::Overwrite => (None, None),
            PutMode::Create => (Some("*".to_string()), None),
            PutMode::Update(e) => (None, Some(format!("\"{}\"", bare_etag(e)))),
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
            .sse(&self.sse)
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
                if opts.mode.conditional()
                    && (matches!(se.raw().status().as_u16(), 409 | 412)
                        || (matches!(opts.mode, PutMode::Update(_))
                            && se.raw().status().as_u16() == 404)) =>
            {
                Ok(None)
            }
            Err(e) => Err(self.fail(&format!("uploading {key}"), e)),
        }
    }

    pub(super) async fn abort_multipart(&self, key: &str, upload_id: &str) {
        // Best effort: an unfinished multipart upload is invisible to readers either way.
        let _ = self.abort(key, upload_id).await;
    }

    /// Uploads a file's parts with `checksum`; the completed parts, and the whole object's
    /// CRC64/NVME (combined from the parts') for a CRC64/NVME upload.
    pub(super) async fn upload_parts(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        opts: &PutOptions,
        upload_id: &str,
        checksum: PartChecksum,
    ) -> Result<(Vec<CompletedPart>, Option<u64>)> {
        let part_size = transfer_part_size(size, self.tuning.part_size);
        let count = size.div_ceil(part_size).max(1);
        // Part CRCs the caller computed (with the file's SHA-256, in the same read) are sent
        // without another pass over the parts.
        let known = (opts.part_crc64.len() as u64 == count).then_some(&opts.part_crc64);
        let parallel = self.tuning.concurrency.clamp(1, PARTS_IN_FLIGHT);
        let mut parts: Vec<(CompletedPart, u64, u64)> = futures::stream::iter(0..count)
            .map(|i| {
                let offset = i * part_size;
                let part = FilePart {
                    number: (i + 1) as i32,
                    offset,
                    len: part_size.min(size - offset),
                    known_crc64: known.map(|k| k[i as usize]),
                };
                self.upload_part(key, path, upload_id, checksum, part)
            })
            .buffer_unordered(parallel)
            .try_collect()
            .await?;
        parts.sort_by_key(|(p, _, _)| p.part_number());
        let full = (checksum == PartChecksum::Crc64).then(|| full_crc64(&parts));
        Ok((parts.into_iter().map(|(p, _, _)| p).collect(), full))
    }

    /// Uploads one part, streamed from the file; the completed part, with its CRC64/NVME
    /// (0 unless `checksum` is CRC64/NVME) and length for combining the whole object's.
    async fn upload_part(
        &self,
        key: &str,
        path: &Path,
        upload_id: &str,
        checksum: PartChecksum,
        part: FilePart,
    ) -> Result<(CompletedPart, u64, u64)> {
        let (crc_value, sha) = part_checksums(key, path, checksum, part).await?;
        let body = ByteStream::read_from()
            .path(path)
            .offset(part.offset)
            .length(Length::Exact(part.len))
            .buffer_size(256 * 1024)
            .build()
            .await
            .map_err(|e| Error::Input(format!("cannot read {}: {e}", path.display())))?;
        let number = part.number;
        let sha = self.checksum(sha);
        let crc = (checksum == PartChecksum::Crc64).then(|| crc64_header(crc_value));
        let resp = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .set_checksum_sha256(sha.clone())
            .set_checksum_crc64_nvme(crc.clone())
            .body(body)
            .send()
            .await
            .map_err(|e| self.fail(&format!("uploading part {number} of {key}"), e))?;
        let completed = CompletedPart::builder()
            .part_number(number)
            .set_e_tag(resp.e_tag().map(str::to_string))
            .set_checksum_sha256(sha)
            .set_checksum_crc64_nvme(crc)
            .build();
        Ok((completed, crc_value, part.len))
    }
}

/// A part's CRC64/NVME (0 unless `checksum` is CRC64/NVME) and SHA-256 (for SHA-256 parts),
/// read through a small buffer off the async threads, so memory stays a few MiB whatever the
/// part size and the parts in flight.
async fn part_checksums(
    key: &str,
    path: &Path,
    checksum: PartChecksum,
    part: FilePart,
) -> Result<(u64, Option<[u8; 32]>)> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let range = (part.offset, part.len);
        Ok::<_, Error>(match checksum {
            PartChecksum::Off => (0, None),
            PartChecksum::Crc64 => match part.known_crc64 {
                Some(crc) => (crc, None),
                None => (crate::codehash::crc64_range(&p, range.0, range.1)?, None),
            },
            PartChecksum::Sha256 => (
                0,
                Some(crate::codehash::sha256_range(&p, range.0, range.1)?),
            ),
        })
    })
    .await
    .map_err(|e| Error::task(&format!("reading a part of {key}"), e))?
}

/// The whole object's CRC64/NVME, combined from its parts' (in order) and their lengths.
fn full_crc64(parts: &[(CompletedPart, u64, u64)]) -> u64 {
    parts
        .iter()
        .map(|(_, crc, len)| (*crc, *len))
        .reduce(|(a, _), (b, len)| {
            (
                crc_fast::checksum_combine(crc_fast::CrcAlgorithm::Crc64Nvme, a, b, len),
                len,
            )
        })
        .map(|(crc, _)| crc)
        .unwrap_or(0)
}
