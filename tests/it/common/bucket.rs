//! A test's bucket, on `file://` and on the S3 server the test script started, with the raw
//! object access a bucket writer (or an expiry rule) has.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::S3Server;

/// Where a test's bucket lives.
pub enum Place {
    File(PathBuf),
    S3(S3Server, String),
}

/// A fresh bucket, with the raw object access an attacker has.
pub struct Bucket {
    pub place: Place,
}

impl Bucket {
    /// A `file://` bucket under `root`, and one on the S3 server when the tests have one.
    pub fn all(root: &Path, tag: &str) -> Vec<Bucket> {
        let dir = root.join("bucket");
        std::fs::create_dir_all(&dir).unwrap();
        let mut all = vec![Bucket {
            place: Place::File(dir),
        }];
        let g = S3Server::get();
        let name = g.new_bucket(tag);
        all.push(Bucket {
            place: Place::S3(g, name),
        });
        all
    }

    pub fn name(&self) -> String {
        match &self.place {
            Place::File(_) => "file://".into(),
            Place::S3(g, _) => format!("{:?}", g.store),
        }
    }

    /// The task environment that reaches the bucket.
    pub fn env(&self) -> BTreeMap<String, String> {
        match &self.place {
            Place::File(dir) => BTreeMap::from([(
                "PACKAGE_ASSETS_BUCKET".to_string(),
                format!("file://{}", dir.display()),
            )]),
            Place::S3(g, b) => g.env(b),
        }
    }

    /// The resource's `source`, with `extra` on top.
    pub fn source(&self, extra: Value) -> Value {
        let mut s = match &self.place {
            Place::File(dir) => json!({ "bucket": format!("file://{}", dir.display()) }),
            Place::S3(g, b) => g.source(b, json!({})),
        };
        for (k, v) in extra.as_object().into_iter().flatten() {
            s[k] = v.clone();
        }
        s
    }

    pub fn put(&self, key: &str, body: &[u8]) {
        match &self.place {
            Place::File(dir) => {
                let p = dir.join(key);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, body).unwrap();
            }
            Place::S3(g, b) => g.put(b, key, body),
        }
    }

    /// Starts a multipart upload of `key` and leaves it unfinished: on the S3 server, its
    /// CreateMultipartUpload answer; on `file://`, which has no such thing, `None`.
    pub fn start_upload(
        &self,
        key: &str,
    ) -> Option<aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadOutput> {
        let Place::S3(g, name) = &self.place else {
            return None;
        };
        Some(super::rt().block_on(async {
            g.client()
                .create_multipart_upload()
                .bucket(name)
                .key(key)
                .send()
                .await
                .unwrap()
        }))
    }

    /// How many unfinished uploads of keys under `prefix` the store holds: multipart uploads
    /// on the S3 server, temporary files on `file://` (whose names say no key: all of them).
    pub fn pending(&self, prefix: &str) -> usize {
        match &self.place {
            Place::File(dir) => std::fs::read_dir(dir.join(".s3am/tmp"))
                .map(|d| d.count())
                .unwrap_or(0),
            Place::S3(g, name) => super::rt().block_on(async {
                let out = g
                    .client()
                    .list_multipart_uploads()
                    .bucket(name)
                    .prefix(prefix)
                    .send()
                    .await
                    .unwrap();
                out.uploads().len()
            }),
        }
    }

    /// Writes `key` as an interrupted upload of this tool leaves its objects: with the
    /// `publisher-id` every object the tool writes carries (which `put`'s, like the original
    /// tool's, lack). On `file://` the metadata goes in the store's sidecar.
    pub fn put_interrupted(&self, key: &str, body: &[u8]) {
        let meta = ("publisher-id", "interrupted-upload");
        match &self.place {
            Place::File(dir) => {
                self.put(key, body);
                let sidecar = dir.join(".s3am/meta").join(key);
                std::fs::create_dir_all(sidecar.parent().unwrap()).unwrap();
                let json = serde_json::to_vec(&json!({ meta.0: meta.1 })).unwrap();
                std::fs::write(sidecar, json).unwrap();
            }
            Place::S3(g, b) => super::rt().block_on(async {
                g.client()
                    .put_object()
                    .bucket(b)
                    .key(key)
                    .metadata(meta.0, meta.1)
                    .body(body.to_vec().into())
                    .send()
                    .await
                    .unwrap();
            }),
        }
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        match &self.place {
            Place::File(dir) => std::fs::read(dir.join(key)).ok(),
            Place::S3(g, b) => self
                .keys()
                .contains(&key.to_string())
                .then(|| g.get_bytes(b, key)),
        }
    }

    /// A server-side copy, metadata included, as `aws s3 cp` between two keys makes it.
    pub fn copy(&self, from: &str, to: &str) {
        match &self.place {
            Place::File(dir) => {
                let dst = dir.join(to);
                std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
                std::fs::copy(dir.join(from), dst).unwrap();
                let meta = |k: &str| dir.join(".s3am/meta").join(k);
                if meta(from).exists() {
                    std::fs::create_dir_all(meta(to).parent().unwrap()).unwrap();
                    std::fs::copy(meta(from), meta(to)).unwrap();
                }
            }
            Place::S3(g, b) => super::rt().block_on(async {
                g.client()
                    .copy_object()
                    .bucket(b)
                    .key(to)
                    .copy_source(format!("{b}/{from}"))
                    .send()
                    .await
                    .expect("copy object");
            }),
        }
    }

    /// Deletes an object, as an expiry rule or `aws s3 rm` does.
    pub fn delete(&self, key: &str) {
        match &self.place {
            Place::File(dir) => std::fs::remove_file(dir.join(key)).unwrap(),
            Place::S3(g, b) => super::rt().block_on(async {
                g.client()
                    .delete_object()
                    .bucket(b)
                    .key(key)
                    .send()
                    .await
                    .expect("delete object");
            }),
        }
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = match &self.place {
            Place::File(dir) => walkdir::WalkDir::new(dir)
                .into_iter()
                .filter_entry(|e| e.file_name() != ".s3am")
                .flatten()
                .filter(|e| e.file_type().is_file())
                .map(|e| {
                    let rel = e.path().strip_prefix(dir).unwrap();
                    rel.to_string_lossy().into_owned()
                })
                .collect(),
            Place::S3(g, b) => g.keys(b),
        };
        keys.sort();
        keys
    }

    /// A writer's copy of the set at `from` to `to` (key prefixes ending in `/`): the objects
    /// first, then the signatures, then the manifest.
    pub fn copy_set(&self, from: &str, to: &str) {
        let mut keys: Vec<String> = self
            .keys()
            .into_iter()
            .filter(|k| k.starts_with(from))
            .collect();
        let rank = |k: &str| match k.rsplit('/').next().unwrap() {
            ".manifest.json" => 2,
            n if n.starts_with(".manifest.json.") => 1,
            _ => 0,
        };
        keys.sort_by_key(|k| rank(k));
        for k in keys {
            self.copy(&k, &format!("{to}{}", &k[from.len()..]));
        }
    }
}
