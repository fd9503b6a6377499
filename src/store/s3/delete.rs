//! Deleting objects (DeleteObjects, up to 1,000 keys a request) and finding and aborting
//! multipart uploads that were never completed.

use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::{unix_ms, S3Store};
use crate::error::{clip, Error, Result};
use crate::store::Store;
use crate::store::{PendingUpload, DELETE_BATCH};

impl S3Store {
    pub(super) async fn delete_objects(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        if keys.len() > DELETE_BATCH {
            return Err(Error::Internal(format!(
                "{} keys in one delete: at most {DELETE_BATCH}",
                keys.len()
            )));
        }
        let objects = keys
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Internal(format!("cannot name an object to delete: {e}")))?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| Error::Internal(format!("cannot build a delete request: {e}")))?;
        let out = self
            .client
            .delete_objects()
            .bucket(&self.bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| {
                self.fail(
                    &format!("deleting {} objects (from {})", keys.len(), clip(&keys[0])),
                    e,
                )
            })?;
        // A key that is already gone is not an error in S3 (nor here).
        let refused: Vec<String> = out
            .errors()
            .iter()
            .filter(|e| e.code() != Some("NoSuchKey"))
            .map(|e| {
                format!(
                    "{} ({}: {})",
                    clip(e.key().unwrap_or("?")),
                    e.code().unwrap_or("?"),
                    e.message().unwrap_or("")
                )
            })
            .collect();
        match refused.first() {
            None => Ok(()),
            Some(first) => Err(Error::Transient {
                message: format!(
                    "{} of {} objects could not be deleted from {}, e.g. {first}",
                    refused.len(),
                    keys.len(),
                    self.url()
                ),
                source: None,
            }),
        }
    }

    pub(super) async fn list_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>> {
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| {
                    self.fail(&format!("listing the unfinished uploads of {prefix}"), e)
                })?;
            out.extend(page.uploads().iter().filter_map(|u| {
                Some(PendingUpload {
                    key: u.key()?.to_string(),
                    id: u.upload_id()?.to_string(),
                    started_ms: unix_ms(u.initiated()),
                })
            }));
            if page.is_truncated() != Some(true) {
                return Ok(out);
            }
            key_marker = page.next_key_marker().map(str::to_string);
            id_marker = page.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() && id_marker.is_none() {
                return Ok(out);
            }
        }
    }

    pub(super) async fn abort(&self, key: &str, upload_id: &str) -> Result<()> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_upload()) => Ok(()),
            Err(e) => Err(self.fail(&format!("aborting the unfinished upload of {key}"), e)),
        }
    }
}
