use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::super::*;
use crate::engine::Keys;
use crate::error::Result;
use crate::layout::Layout;
use crate::manifest::Manifest;
use crate::signing;
use crate::signing::{SigningKey, TrustedKeys, Verdict};
use crate::store::{local::LocalStore, ObjectHead, ObjectInfo, Reader, Store, Tuning};
use crate::store::{Body, PendingUpload, PutMode, PutOptions};

/// A local bucket where an unsigned publisher races ours: its manifest of the same set
/// (ours, with another `created`, unsigned) lands just before our manifest write (where
/// the store enforces `If-None-Match`) or just after it (where it ignores the header, as
/// Garage does).
pub(super) struct Racing {
    pub(super) inner: LocalStore,
    enforces: bool,
    raced: Mutex<bool>,
    /// How many delete requests succeed; the ones after fail (a prune cut off).
    deletes_left: Mutex<usize>,
    /// A copy out of a set first removes that whole set, as a prune racing a restore.
    pub(super) vanish_on_copy: Mutex<bool>,
    /// Copies asked for.
    pub(super) copies: std::sync::atomic::AtomicUsize,
    /// A get of this key holds its thread for 400 ms before it answers, as a task that
    /// cannot be stopped at once (it runs on another thread); then `slow_done` is set.
    /// Other gets and listings wait until it has started.
    pub(super) slow_get: Mutex<Option<String>>,
    pub(super) slow_started: std::sync::atomic::AtomicBool,
    pub(super) slow_done: std::sync::atomic::AtomicBool,
}

impl Racing {
    /// A local bucket under `dir` that races nothing and takes `deletes` delete requests.
    pub(super) fn new(dir: &Path, deletes: usize) -> Racing {
        Racing {
            inner: LocalStore::open(dir).unwrap(),
            enforces: true,
            raced: Mutex::new(true),
            deletes_left: Mutex::new(deletes),
            vanish_on_copy: Mutex::new(false),
            copies: Default::default(),
            slow_get: Mutex::new(None),
            slow_started: Default::default(),
            slow_done: Default::default(),
        }
    }

    /// The racing publisher's manifest, once: ours, restamped and unsigned.
    /// Waits until the slow get, if one is set, has started (at most 10 s: a test whose
    /// slow get never comes fails on its assertion, not by hanging).
    async fn after_slow_start(&self) {
        if self.slow_get.lock().unwrap().is_none() {
            return;
        }
        let since = std::time::Instant::now();
        while !self.slow_started.load(std::sync::atomic::Ordering::SeqCst)
            && since.elapsed().as_secs() < 10
        {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    async fn race(&self, key: &str, ours: &[u8]) {
        let first = !std::mem::replace(&mut *self.raced.lock().unwrap(), true);
        if first && key.ends_with(crate::layout::MANIFEST_NAME) {
            let mut m = Manifest::parse(ours, key).unwrap();
            m.created = "2000-01-01T00:00:00Z".into();
            let opts = PutOptions::default();
            self.inner
                .put(key, Body::Bytes(m.to_bytes()), &opts)
                .await
                .unwrap();
        }
    }
}

#[async_trait]
impl Store for Racing {
    fn url(&self) -> String {
        self.inner.url()
    }
    fn enforces_preconditions(&self) -> Option<bool> {
        Some(self.enforces)
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.after_slow_start().await;
        self.inner.list(prefix).await
    }
    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<Vec<ObjectInfo>> {
        self.after_slow_start().await;
        self.inner.list_page(prefix, after, max).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectHead>> {
        self.inner.head(key).await
    }
    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<Option<Reader>> {
        if self.slow_get.lock().unwrap().as_deref() == Some(key) {
            self.slow_started
                .store(true, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(400));
            self.slow_done
                .store(true, std::sync::atomic::Ordering::SeqCst);
        } else if !key.rsplit('/').next().unwrap_or(key).starts_with('.') {
            // An asset, not the manifest or its signature.
            self.after_slow_start().await;
        }
        self.inner.get(key, range).await
    }
    async fn put(&self, key: &str, body: Body<'_>, opts: &PutOptions) -> Result<Option<String>> {
        let (Body::Bytes(bytes), true) = (&body, opts.mode.conditional()) else {
            return self.inner.put(key, body, opts).await;
        };
        let ours = bytes.clone();
        if self.enforces {
            self.race(key, &ours).await;
            return self.inner.put(key, body, opts).await;
        }
        let anyway = PutOptions {
            mode: PutMode::Overwrite,
            ..opts.clone()
        };
        let etag = self.inner.put(key, body, &anyway).await?;
        self.race(key, &ours).await;
        Ok(etag)
    }
    async fn copy(
        &self,
        src: &str,
        dst: &str,
        size: u64,
        opts: &PutOptions,
        if_match: Option<&str>,
    ) -> Result<String> {
        (self.copies).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if *self.vanish_on_copy.lock().unwrap() {
            // `cache/<code-hash>/`: the set the source is in.
            let root: String = src.split_inclusive('/').take(2).collect();
            let keys: Vec<String> = self
                .inner
                .list(&root)
                .await?
                .into_iter()
                .map(|o| o.key)
                .collect();
            self.inner.delete(&keys).await?;
        }
        self.inner.copy(src, dst, size, opts, if_match).await
    }
    async fn delete(&self, keys: &[String]) -> Result<()> {
        {
            let mut left = self.deletes_left.lock().unwrap();
            if *left == 0 {
                return Err(crate::error::Error::denied("deletes refused by the test"));
            }
            *left -= 1;
        }
        self.inner.delete(keys).await
    }
    async fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>> {
        self.inner.pending_uploads(prefix).await
    }
    async fn abort_upload(&self, upload: &PendingUpload) -> Result<()> {
        self.inner.abort_upload(upload).await
    }
}

/// A signing publisher racing an unsigned one never ends with the unsigned manifest in
/// place: it takes the set over, and its own signed manifest is what readers find.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_publisher_never_keeps_a_racing_unsigned_manifest() {
    for enforces in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let bucket = dir.path().join("bucket");
        std::fs::create_dir_all(&bucket).unwrap();
        let store = Arc::new(Racing {
            inner: LocalStore::open(&bucket).unwrap(),
            enforces,
            raced: Mutex::new(false),
            deletes_left: Mutex::new(usize::MAX),
            vanish_on_copy: Mutex::new(false),
            copies: Default::default(),
            slow_get: Mutex::new(None),
            slow_started: Default::default(),
            slow_done: Default::default(),
        });
        let key = SigningKey::parse(crate::signing::tests::PRIVATE.as_bytes(), "k").unwrap();
        let key = Arc::new(key);
        let engine = Engine::new(store.clone(), Layout::new("").unwrap(), Tuning::default())
            .with_keys(Keys {
                signing: Some(key.clone()),
                trusted: None,
            });
        let pkg = dir.path().join("pkg");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(pkg.join("fn.zip"), "ours").unwrap();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        super::publish_uncached(&engine, pkg, commit).await;
        assert!(*store.raced.lock().unwrap(), "the race never ran");
        let loc = engine.layout().artifacts(commit);
        let body = store
            .get_bytes(&loc.manifest_key(), 1 << 20)
            .await
            .unwrap()
            .unwrap();
        let sig = store
            .get_bytes(&signing::signature_key(&loc, &body), 1 << 20)
            .await
            .unwrap();
        let own = TrustedKeys::including(None, &key);
        assert!(
            matches!(own.verify(&body, sig.as_deref()), Verdict::Trusted(_)),
            "enforces {enforces}: the manifest in place is not ours: {}",
            String::from_utf8_lossy(&body)
        );
    }
}
