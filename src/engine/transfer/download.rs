//! Downloads: a set's files fetched concurrently, each verified against its manifest entry
//! before it is renamed into place.

use super::*;

impl Engine {
    /// Downloads `files` of the set at `from` into `dest` (a handle of the destination, below
    /// which every directory is opened, and created, without following a link) concurrently,
    /// each verified by
    /// [`Fetcher::download_verified`] in a task of its own, with progress lines for a long
    /// transfer. No file is renamed into place before `gate` holds `true`: one checked before
    /// then waits under its temporary name, without holding a place in the window, and is
    /// renamed once the gate opens; if `gate` is dropped while it holds `false`, the downloads
    /// fail and every file still waiting is removed. Each task and each temporary file holds
    /// a clone of `token`: once this future has returned or been dropped, the caller's
    /// [`crate::sink::Tracker`] says when all of them have settled.
    pub(in crate::engine) async fn download_files(
        &self,
        from: &SetLocation,
        files: &[FileEntry],
        dest: Dir,
        gate: tokio::sync::watch::Receiver<bool>,
        token: Token,
    ) -> Result<()> {
        let total = crate::manifest::sum_sizes(files.iter().map(|f| f.size));
        let (progress, _guard) = Progress::start("downloaded", files.len() as u64, total);
        let rt = self.store.round_trip();
        let mut window = Window::new(self.tuning.concurrency, self.store.throttled(), rt);
        let fetcher = Fetcher {
            store: self.store.clone(),
            tuning: self.tuning.clone(),
            gate,
            waiting: Arc::default(),
            token,
            dirs: Arc::new(Dirs::new(dest)),
        };
        let tls = if self.store.tls() {
            PER_TLS_CONNECTION
        } else {
            0
        };
        let jobs = files.iter().map(|f| {
            let (fetcher, progress) = (fetcher.clone(), progress.clone());
            let (key, f) = (from.key(&f.path), f.clone());
            // A small file streams to its temporary file as it arrives: it holds its
            // request's buffers (and its connection's TLS state), not its body.
            let held = match f.size <= INLINE_IO as u64 {
                true => PER_REQUEST + tls,
                false => self.memory_held(f.size),
            };
            (
                held,
                spawned(async move {
                    let t = Instant::now();
                    fetcher.download_verified(&key, &f).await?;
                    progress.file_done(&f.path, f.size, t.elapsed());
                    Ok::<_, Error>(())
                }),
            )
        });
        let reserved = files.len() as u64 * window::PER_FILE;
        window::run(self.store.as_ref(), &mut window, reserved, jobs, |()| {}).await?;
        fetcher.undamaged().await?;
        let waiting = std::mem::take(&mut *fetcher.waiting.lock().expect("not poisoned"));
        waiting.into_iter().try_for_each(Kept::rename)
    }
}

/// What a download needs of the engine, owned, so that each file's download can run as a
/// task of its own.
#[derive(Clone)]
struct Fetcher {
    store: Arc<dyn Store>,
    tuning: Tuning,
    /// Whether the set's listing has shown it undamaged: each file waits for it before its
    /// rename.
    gate: tokio::sync::watch::Receiver<bool>,
    /// Files checked before the gate opened, renamed once it has.
    waiting: Arc<std::sync::Mutex<Vec<Kept>>>,
    /// Held by each task (its clone of the fetcher) and each temporary file.
    token: Token,
    /// The destination's directories, each opened once.
    dirs: Arc<Dirs>,
}

impl Fetcher {
    /// Renames a checked file into place, or, before the set is known to be undamaged, keeps it
    /// for [`Engine::download_files`] to rename then.
    fn place(&self, kept: Kept) -> Result<()> {
        if *self.gate.borrow() {
            return kept.rename();
        }
        self.waiting.lock().expect("not poisoned").push(kept);
        Ok(())
    }

    /// Waits until the set is known to be undamaged.
    async fn undamaged(&self) -> Result<()> {
        let mut gate = self.gate.clone();
        gate.wait_for(|ok| *ok).await.map(|_| ()).map_err(|_| {
            Error::Internal("a download was stopped before its set was checked".into())
        })
    }

    /// Streams `key` to `<dest>/<f.path>` through a temporary file, renamed into place only
    /// when the size (and the SHA-256, unless `f.sha256` is empty) match.
    async fn download_verified(&self, key: &str, f: &FileEntry) -> Result<()> {
        // The SDK retries a request until its response starts; a body cut off mid-stream is
        // retried here, from the start of the file.
        retried(|| "retrying".to_string(), || self.download_once(key, f)).await
    }

    /// One try at downloading `key` into `<dest>/<f.path>`, through a temporary file beside
    /// it. Its directory is created (and opened) beneath the destination, refusing to pass
    /// through a link or anything else that is not a real directory: a download never writes
    /// outside its destination.
    async fn download_once(&self, key: &str, f: &FileEntry) -> Result<()> {
        crate::manifest::check_asset_path(&f.path).map_err(|why| {
            Error::Corrupt(format!(
                "refusing to download {}: unsafe path ({why})",
                crate::error::clip(&f.path)
            ))
        })?;
        let (dir, name) = f.path.rsplit_once('/').unwrap_or(("", &f.path));
        let target = Target::new(self.dirs.create(dir)?, name);
        if f.size >= self.tuning.multipart_threshold {
            self.download_ranged(key, f, target).await
        } else {
            self.download_whole(key, f, target).await
        }
    }

    /// A large object, in ranges, several at once, each a task of its own that writes its
    /// bytes where they belong as they arrive; the file is hashed in order behind them.
    async fn download_ranged(&self, key: &str, f: &FileEntry, target: Target) -> Result<()> {
        // With the SHA-256 of each piece in the manifest, each range is checked as it arrives,
        // in its own task; without (a manifest of an earlier version), the file is hashed in
        // order behind the ranges.
        let (part, pieces) = match &f.pieces {
            Some(p) => (p.size, Some(Arc::new(p.sha256.clone()))),
            None => (
                crate::store::transfer_part_size(f.size, self.tuning.part_size),
                None,
            ),
        };
        let ranges: Vec<(usize, (u64, u64))> = Pieces::ranges(f.size, part).enumerate().collect();
        let ranged = match pieces {
            Some(_) => Ranged::create_unhashed(target, self.token.clone())?,
            None => Ranged::create(target, self.token.clone())?,
        };
        let key: Arc<str> = Arc::from(key);
        let checked = f.sha256.bytes().is_some();
        let mut written = futures::stream::iter(ranges)
            .map(|(i, (start, end))| {
                let (store, key, file) = (self.store.clone(), key.clone(), ranged.writer());
                let pieces = pieces.clone();
                spawned(async move {
                    let mut body =
                        open_body(store.as_ref(), &key, Some((start, end - 1)), checked).await?;
                    let mut hasher = pieces.as_ref().map(|_| Sha256::new());
                    let mut buf = vec![0u8; WRITE_SLICE];
                    let mut at = start;
                    loop {
                        let n = body.read(&mut buf).await.map_err(|e| cut_off(&key, e))?;
                        if n == 0 {
                            break;
                        }
                        if at + n as u64 > end {
                            return Err(Error::Corrupt(format!(
                                "{key} sent more than the {} bytes asked of it: the object was changed after publishing; refusing it",
                                end - start
                            )));
                        }
                        if let Some(h) = &mut hasher {
                            h.update(&buf[..n]);
                        }
                        file.write_at(&buf[..n], at)?;
                        at += n as u64;
                    }
                    if at != end {
                        let short =
                            format!("a range ended after {} of {} bytes", at - start, end - start);
                        let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, short);
                        return Err(cut_off(&key, eof));
                    }
                    if let (Some(h), Some(pieces)) = (hasher, &pieces) {
                        let got = hex::encode(h.finalize());
                        if got != pieces[i] {
                            return Err(Error::Corrupt(format!(
                                "{key} does not match its manifest (bytes {start}-{} have SHA-256 {got}; expected {}): the object was changed after publishing, or corrupted on the way; refusing it",
                                end - 1,
                                pieces[i]
                            )));
                        }
                    }
                    Ok::<_, Error>(end)
                })
            })
            .buffered(self.tuning.concurrency.clamp(1, PARTS_IN_FLIGHT));
        // `buffered` yields the ranges in order, so each one completes the file up to its end.
        while let Some(end) = written.next().await {
            ranged.complete_to(end?);
        }
        drop(written);
        let kept = ranged
            .finish(f.size, f.sha256.bytes(), mismatch(&key, f))
            .await?;
        self.place(kept)
    }

    /// An object below the multipart threshold, in one request. One of at most
    /// [`INLINE_IO`] bytes (most of them) streams into its temporary file on this thread,
    /// [`SMALL_SLICE`] at a time; a larger one goes to the sink in chunks, each a trip to the
    /// blocking pool.
    async fn download_whole(&self, key: &str, f: &FileEntry, target: Target) -> Result<()> {
        let mut sink = Sink::new(target, self.token.clone());
        let checked = f.sha256.bytes().is_some();
        let mut body = open_body(self.store.as_ref(), key, None, checked).await?;
        if f.size <= INLINE_IO as u64 {
            return self.download_small(body, key, f, sink).await;
        }
        let chunk = f
            .size
            .saturating_add(1)
            .clamp(64 * 1024, 4 * WRITE_SLICE as u64);
        let last = loop {
            let mut buf = Vec::with_capacity(chunk as usize);
            (&mut body)
                .take(chunk)
                .read_to_end(&mut buf)
                .await
                .map_err(|e| cut_off(key, e))?;
            if (buf.len() as u64) < chunk {
                break buf;
            }
            sink = sink.write(buf).await?;
        };
        let kept = sink
            .finish(last, f.size, f.sha256.bytes(), mismatch(key, f))
            .await?;
        self.place(kept)
    }
}

impl Fetcher {
    /// [`Fetcher::download_whole`] of a small object: each [`SMALL_SLICE`] that arrives is
    /// hashed and written on this thread, so a thousand of them in flight, all receiving at
    /// once from a distant store, hold a slice each rather than their whole bodies. One
    /// that sends more than its manifest's size is refused once it has.
    async fn download_small(
        &self,
        mut body: crate::store::Reader,
        key: &str,
        f: &FileEntry,
        mut sink: Sink,
    ) -> Result<()> {
        let mut buf = vec![0u8; SMALL_SLICE];
        let mut got = 0u64;
        loop {
            let n = fill(&mut body, &mut buf)
                .await
                .map_err(|e| cut_off(key, e))?;
            if n == 0 {
                break;
            }
            got += n as u64;
            if got > f.size {
                return Err(Error::Corrupt(format!(
                    "{key} sent more than the {} bytes its manifest gives: the object was changed after publishing; refusing it",
                    f.size
                )));
            }
            sink.write_inline(&buf[..n])?;
            if n < buf.len() {
                break;
            }
        }
        let kept = sink
            .finish(Vec::new(), f.size, f.sha256.bytes(), mismatch(key, f))
            .await?;
        self.place(kept)
    }
}

/// What a small download reads and writes at a time: its connection's read buffer
/// ([`crate::store`]'s small downloads read through 16 KiB), so each write takes what one read
/// of the socket brought in.
const SMALL_SLICE: usize = 16 << 10;

/// Reads into `buf` until it is full or the body ends; how many bytes it read.
async fn fill(body: &mut crate::store::Reader, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match body.read(&mut buf[n..]).await? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The body of `key` (or of a range of it) that a manifest names: with `checked` (the manifest
/// gives its SHA-256, which the download checks) without the store's own check
/// ([`Store::get_checked`]); a legacy entry has only its size, and keeps it.
async fn open_body(
    store: &dyn Store,
    key: &str,
    range: Option<(u64, u64)>,
    checked: bool,
) -> Result<crate::store::Reader> {
    let body = match checked {
        true => store.get_checked(key, range).await?,
        false => store.get(key, range).await?,
    };
    body.ok_or_else(|| not_in_store(store, key))
}

/// An object the manifest names that the store does not have: the set is damaged.
fn not_in_store(store: &dyn Store, key: &str) -> Error {
    let message = format!(
        "{key} is listed in the manifest but missing from {}: the set is damaged; publish it again",
        store.url()
    );
    Error::refused(crate::error::RefusedKind::Damaged, message)
}

/// A body cut off on the way: tried again.
fn cut_off(key: &str, e: std::io::Error) -> Error {
    Error::transient(format!("downloading {key} failed: {e}"), e)
}

/// The error for a download whose size or SHA-256 is not its manifest's.
fn mismatch(key: &str, f: &FileEntry) -> impl Fn(u64, &str) -> Error + Send + 'static {
    let (key, expected, want_size) = (key.to_string(), f.sha256, f.size);
    move |size, got: &str| {
        Error::Corrupt(format!(
            "{key} does not match its manifest (got {size} bytes, SHA-256 {got}; expected {want_size} bytes, {expected}): the object was changed after publishing, or corrupted on the way; refusing it"
        ))
    }
}
