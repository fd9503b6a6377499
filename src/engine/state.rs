//! Reading a set's state: its manifest (validated, bound to its place, and trusted where
//! keys are set), its listing, and whether its objects still match the manifest.

use super::{retry, Engine, SetState};
use crate::error::{Error, Result};
use crate::layout::SetLocation;
use crate::log;
use crate::manifest::{FileEntry, Manifest, Refused, MANIFEST_MAX};
use crate::signing::{self, Verdict, SIGNATURE_MAX};
use crate::store::ObjectInfo;

mod damage;

pub(super) use damage::{judge_tag, PathIndex, Seen};

/// Manifests up to this size are read by many at once; a larger one, one at a time
/// ([`Engine::manifest_bytes`]). 256 KiB is a set of about 1,500 files.
const MANIFEST_SMALL: u64 = 256 << 10;

/// A manifest read and judged: the set's state, and the trusted key that signed it.
pub(super) struct ManifestRead {
    pub(super) state: SetState,
    pub(super) signer: Option<String>,
}

/// The first few of `paths`, and how many more.
fn some(paths: &[&str]) -> String {
    const SHOWN: usize = 5;
    let mut s = paths
        .iter()
        .take(SHOWN)
        .map(|p| crate::error::clip(p).trim_matches('"').to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > SHOWN {
        s.push_str(&format!(" and {} more", paths.len() - SHOWN));
    }
    s
}

impl Engine {
    /// Reads a set's manifest; a set without one is `Missing` (or `Legacy`, logged), which
    /// takes a listing after it.
    pub(crate) async fn set_state(
        &self,
        loc: &SetLocation,
        accept_legacy: bool,
    ) -> Result<SetState> {
        match self.read_manifest(loc).await? {
            Some(state) => Ok(state),
            None => {
                let objects = self.store.list(loc.root()).await?;
                Ok(self.unfinished(loc, objects, accept_legacy))
            }
        }
    }

    /// A set's state and its listing, both read at once: for a set that is probably missing,
    /// or whose objects will be checked against its manifest ([`Engine::damage_in`]). The
    /// manifest and the listing's first page go at once; a listing that goes on past that
    /// page is read on, for a complete set in slices of the keys its manifest names, all at
    /// once (one round trip more however many: [`Engine::list_known_each`]), for any other
    /// page after page from the start.
    pub(super) async fn read_state_listed(
        &self,
        loc: &SetLocation,
        accept_legacy: bool,
    ) -> Result<(SetState, Vec<ObjectInfo>)> {
        let (state, first) =
            tokio::join!(self.read_manifest(loc), self.store.list_first(loc.root()));
        let state = state?;
        let listing = async {
            let (mut all, more) = first?;
            if !more {
                return Ok(all);
            }
            match &state {
                Some(SetState::Complete(m)) => {
                    let index = PathIndex::new(&m.files);
                    self.list_known_each(loc, index.sorted_paths(), |page| all.extend(page))
                        .await?;
                    all.sort_unstable_by(|a, b| a.key.cmp(&b.key));
                    all.dedup_by(|a, b| a.key == b.key);
                    Ok(all)
                }
                _ => self.store.list(loc.root()).await,
            }
        };
        let listing = listing.await;
        Ok(match state {
            // Refused whatever its objects: a listing that failed (a hostile key the store's
            // XML cannot carry, say) changes nothing.
            Some(refused @ (SetState::Invalid { .. } | SetState::Untrusted { .. })) => {
                (refused, listing.unwrap_or_default())
            }
            Some(state) => (state, listing?),
            None => {
                let listing = listing?;
                (
                    self.unfinished(loc, listing.clone(), accept_legacy),
                    listing,
                )
            }
        })
    }

    /// The state of a set that has a manifest (complete, untrusted or invalid); `None`
    /// without one. Logs why a manifest does not count, and who signed one that does.
    pub(super) async fn read_manifest(&self, loc: &SetLocation) -> Result<Option<SetState>> {
        let Some(read) = self.inspect_manifest(loc).await? else {
            return Ok(None);
        };
        match (&read.state, &read.signer) {
            (SetState::Invalid { why }, _) => {
                log::warn(format!("{why}: {loc} is not counted as complete"))
            }
            (SetState::Untrusted { why, .. }, _) => log::warn(format!(
                "{loc} has a manifest, but {why}: not counted as complete"
            )),
            (_, Some(signer)) => log::phase(format!("{loc} is signed by trusted key {signer}")),
            _ => {}
        }
        Ok(Some(read.state))
    }

    /// [`Engine::read_manifest`] without a word in the log, and with the trusted key that
    /// signed it. Everything read here is hostile input: the manifest and its signature are
    /// read up to their size limits only ([`Engine::manifest_bytes`] bounds what manifests
    /// in flight hold), with trusted keys the signature is checked over the bytes before a
    /// byte of JSON is parsed, the manifest is validated field by field, and it must name
    /// this place (its commit or code hash, and its prefix), whoever signed it.
    pub(super) async fn inspect_manifest(&self, loc: &SetLocation) -> Result<Option<ManifestRead>> {
        let key = loc.manifest_key();
        let Some((bytes, _large)) = self.manifest_bytes(&key).await? else {
            return Ok(None);
        };
        let signer = match &self.keys.trusted {
            None => None,
            Some(trusted) => {
                // The signature of exactly these bytes: never another manifest's.
                let sig_key = signing::signature_key(loc, &bytes);
                let signature = self.small_object(&sig_key, SIGNATURE_MAX).await?;
                match trusted.verify(&bytes, signature.as_deref()) {
                    Verdict::Trusted(signer) => Some(signer),
                    Verdict::Untrusted(why) => {
                        return Ok(Some(ManifestRead {
                            state: SetState::Untrusted { why },
                            signer: None,
                        }))
                    }
                }
            }
        };
        // Writes are atomic, so an unreadable, unsafe or misplaced manifest was put there by
        // hand (or by an attacker): the set is not complete.
        let invalid = |why: String| {
            Ok(Some(ManifestRead {
                state: SetState::Invalid { why },
                signer: None,
            }))
        };
        let mut manifest = match Manifest::parse(&bytes, &key) {
            Ok(m) => Box::new(m),
            Err(Refused::Invalid(why)) => return invalid(why),
            // Not ours to judge, or to replace: stop and say so.
            Err(newer @ Refused::NewerFormat(_)) => return Err(newer.into()),
        };
        drop(bytes);
        if let Err(why) = manifest.check_place(loc, self.keys.trusted.is_some()) {
            return invalid(why);
        }
        manifest.signer = signer.clone();
        Ok(Some(ManifestRead {
            state: SetState::Complete(manifest),
            signer,
        }))
    }

    /// The bytes of the manifest at `key` (up to [`MANIFEST_MAX`] and one more), and while
    /// they are over [`MANIFEST_SMALL`], the one guard that lets a process hold such a
    /// manifest, to be kept until it is parsed. Manifests in flight (64 at once in `list` and
    /// `prune`, 32 in the resource's `check`) thus hold at most 256 KiB each and one of up to
    /// 64 MiB, however many index entries or sets name large ones: forty 64 MiB manifests
    /// once took 1.9 GB. A large manifest whose guard is taken is read again once it is free,
    /// instead of holding its connection idle meanwhile. A body cut off on the way is read
    /// again ([`Engine::body_retried`]).
    async fn manifest_bytes(
        &self,
        key: &str,
    ) -> Result<Option<(Vec<u8>, Option<tokio::sync::OwnedMutexGuard<()>>)>> {
        self.body_retried(key, || async {
            let Some(mut reader) = self.store.get(key, None).await? else {
                return Ok(Ok(None));
            };
            let mut bytes = Vec::new();
            if let Err(e) = read_up_to(&mut reader, MANIFEST_SMALL, &mut bytes).await {
                return Ok(Err(e));
            }
            if bytes.len() as u64 <= MANIFEST_SMALL {
                return Ok(Ok(Some((bytes, None))));
            }
            if let Ok(guard) = self.large_manifest.clone().try_lock_owned() {
                return Ok(read_up_to(&mut reader, MANIFEST_MAX, &mut bytes)
                    .await
                    .map(|()| Some((bytes, Some(guard)))));
            }
            drop((reader, bytes));
            let guard = self.large_manifest.clone().lock_owned().await;
            let Some(mut reader) = self.store.get(key, None).await? else {
                return Ok(Ok(None));
            };
            let mut bytes = Vec::new();
            Ok(read_up_to(&mut reader, MANIFEST_MAX, &mut bytes)
                .await
                .map(|()| Some((bytes, Some(guard)))))
        })
        .await
    }

    /// A small object's bytes (up to `limit` and one more), as
    /// [`crate::store::Store::get_bytes`] reads them, the body read again when cut off.
    pub(super) async fn small_object(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        self.body_retried(key, || async {
            let Some(mut reader) = self.store.get(key, None).await? else {
                return Ok(Ok(None));
            };
            let mut bytes = Vec::new();
            Ok(read_up_to(&mut reader, limit, &mut bytes)
                .await
                .map(|()| Some(bytes)))
        })
        .await
    }

    /// Runs `read`, a GET of `key` and the read of its body, again from the start while the
    /// body is cut off on the way (its inner error), up to [`retry::BODY_ATTEMPTS`] times, as
    /// every transfer is. A request that failed (its outer error) is not tried again: the
    /// SDK has retried it already, and an unreachable store would take four times as long.
    async fn body_retried<T, F, Fut>(&self, key: &str, mut read: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<std::io::Result<T>>>,
    {
        let mut attempt = 1;
        loop {
            let e = match read().await? {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let e = Error::transient(
                format!("reading {key} from {} failed: {e}", self.store.url()),
                e,
            );
            if attempt >= retry::BODY_ATTEMPTS {
                return Err(e);
            }
            log::warn(format!(
                "{e}; reading it again ({attempt} of {})",
                retry::BODY_ATTEMPTS
            ));
            tokio::time::sleep(retry::jitter(attempt)).await;
            attempt += 1;
        }
    }

    /// The state of a set without a manifest, from its listing: missing, or (logged) an
    /// interrupted upload or a legacy set.
    pub(super) fn unfinished(
        &self,
        loc: &SetLocation,
        mut objects: Vec<ObjectInfo>,
        accept_legacy: bool,
    ) -> SetState {
        // A signature left by an interrupted publish is not an asset, nor is a cache
        // entry's record of its last use.
        // Nor is another prefix's tree below this place (`S3AM_PREFIX=artifacts/<commit>`).
        objects.retain(|o| {
            !signing::is_signature_key(loc, &o.key)
                && o.key != loc.last_used_key()
                && !(o.key.strip_prefix(loc.root())).is_some_and(crate::layout::is_foreign_tree)
        });
        if objects.is_empty() {
            return SetState::Missing;
        }
        let n = objects.len();
        if loc.is_cache() {
            log::warn(format!(
                "{loc} has {n} objects but no manifest: an interrupted upload; not used"
            ));
            SetState::Missing
        } else if accept_legacy && self.keys.trusted.is_some() {
            log::warn(format!(
                "{loc} has {n} objects and no manifest: a legacy set, which is unsigned: not counted as found because trusted keys are set"
            ));
            SetState::Missing
        } else if accept_legacy {
            log::phase(format!(
                "{loc} has {n} objects and no manifest: a legacy set (written by the original tool, or interrupted); counted as found because accept_legacy is on"
            ));
            SetState::Legacy { objects }
        } else {
            log::warn(format!(
                "{loc} has {n} objects but no manifest: an interrupted upload, or a legacy set from the original tool; not counted as found (to count legacy sets, turn on accept_legacy: S3AM_ACCEPT_LEGACY=true, --accept-legacy or source.accept_legacy)"
            ));
            SetState::Missing
        }
    }

    /// A set's state as a reader takes it: read with its listing, and a complete set whose
    /// objects no longer match its manifest (expired, deleted, rewritten) is damaged, not
    /// found: found means fetchable.
    pub(crate) async fn fetchable_state(
        &self,
        loc: &SetLocation,
        accept_legacy: bool,
    ) -> Result<SetState> {
        let (state, listing) = self.read_state_listed(loc, accept_legacy).await?;
        Ok(match state {
            SetState::Complete(m) => match self.damage_in(loc, &m, &listing) {
                None => SetState::Complete(m),
                Some(why) => {
                    log::warn(format!("{why}: not counted as complete"));
                    SetState::Damaged { why }
                }
            },
            other => other,
        })
    }
}

/// Reads `reader` on into `bytes` until it holds `limit` bytes and one more, or the body ends.
async fn read_up_to(
    reader: &mut crate::store::Reader,
    limit: u64,
    bytes: &mut Vec<u8>,
) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt;
    let rest = (limit + 1).saturating_sub(bytes.len() as u64);
    reader.take(rest).read_to_end(bytes).await.map(drop)
}
