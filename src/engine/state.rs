//! Reading a set's state: its manifest (validated, bound to its place, and trusted where
//! keys are set), its listing, and whether its objects still match the manifest.

use std::collections::HashMap;

use super::{Engine, SetState};
use crate::error::{Error, Result};
use crate::layout::SetLocation;
use crate::log;
use crate::manifest::{Manifest, Refused, MANIFEST_MAX};
use crate::signing::{self, Verdict, SIGNATURE_MAX};
use crate::store::ObjectInfo;

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
    pub async fn set_state(&self, loc: &SetLocation, accept_legacy: bool) -> Result<SetState> {
        match self.read_manifest(loc).await? {
            Some(state) => Ok(state),
            None => {
                let objects = self.store.list(loc.root()).await?;
                Ok(self.unfinished(loc, objects, accept_legacy))
            }
        }
    }

    /// A set's state and its listing, both read at once: for a set that is probably missing,
    /// or whose objects will be checked against its manifest ([`Engine::damage_in`]).
    pub(super) async fn read_state_listed(
        &self,
        loc: &SetLocation,
        accept_legacy: bool,
    ) -> Result<(SetState, Vec<ObjectInfo>)> {
        let (state, listing) = tokio::join!(self.read_manifest(loc), self.store.list(loc.root()));
        Ok(match state? {
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
    /// read up to their size limits only, the manifest is validated field by field, and it
    /// must name this place (its commit or code hash, and its prefix), whoever signed it.
    pub(super) async fn inspect_manifest(&self, loc: &SetLocation) -> Result<Option<ManifestRead>> {
        let key = loc.manifest_key();
        let Some(bytes) = self.store.get_bytes(&key, MANIFEST_MAX).await? else {
            return Ok(None);
        };
        // Writes are atomic, so an unreadable, unsafe or misplaced manifest was put there by
        // hand (or by an attacker): the set is not complete.
        let invalid = |why: String| {
            Ok(Some(ManifestRead {
                state: SetState::Invalid { why },
                signer: None,
            }))
        };
        let manifest = match Manifest::parse(&bytes, &key) {
            Ok(m) => Box::new(m),
            Err(Refused::Invalid(why)) => return invalid(why),
            // Not ours to judge, or to replace: stop and say so.
            Err(newer @ Refused::NewerFormat(_)) => return Err(newer.into()),
        };
        if let Err(why) = manifest.check_place(loc, self.keys.trusted.is_some()) {
            return invalid(why);
        }
        let Some(trusted) = &self.keys.trusted else {
            return Ok(Some(ManifestRead {
                state: SetState::Complete(manifest),
                signer: None,
            }));
        };
        // The signature of exactly these bytes: never another manifest's.
        let signature = self
            .store
            .get_bytes(&signing::signature_key(loc, &bytes), SIGNATURE_MAX)
            .await?;
        Ok(Some(match trusted.verify(&bytes, signature.as_deref()) {
            Verdict::Trusted(signer) => ManifestRead {
                state: SetState::Complete(manifest),
                signer: Some(signer),
            },
            Verdict::Untrusted(why) => ManifestRead {
                state: SetState::Untrusted { manifest, why },
                signer: None,
            },
        }))
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
        objects.retain(|o| !signing::is_signature_key(loc, &o.key) && o.key != loc.last_used_key());
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

    /// Why a complete set cannot be trusted, if it cannot: an object its manifest names is
    /// missing, has another size, or was rewritten after the manifest (its entity tag differs).
    pub async fn damage(&self, loc: &SetLocation, m: &Manifest) -> Result<Option<String>> {
        let listing = self
            .list_known(loc, m.files.iter().map(|f| f.path.as_str()))
            .await?;
        Ok(self.damage_in(loc, m, &listing))
    }

    /// The objects of `loc`, at least those at the relative paths `rels`, listed in one round
    /// trip however many there are: knowing the keys, it asks for every 900 of them at once
    /// (listing a page of 1,000 after the key before each slice) instead of page after page.
    /// The other 100 of a page leave room for objects it does not know (the manifest, a
    /// signature); a slice that more of them push past one page is read on to its end.
    pub(super) async fn list_known<'a>(
        &self,
        loc: &SetLocation,
        rels: impl Iterator<Item = &'a str>,
    ) -> Result<Vec<ObjectInfo>> {
        const PAGE: usize = 1000;
        const SLICE: usize = 900;
        // The paths, not their keys: every key is the set's root and its path, so they sort
        // alike, and only a slice's last key is needed (50,000 keys would hold 5 MB).
        let mut rels: Vec<&str> = rels.collect();
        if rels.len() <= SLICE {
            return self.store.list(loc.root()).await;
        }
        // Listings are in UTF-8 byte order, which is `str`'s.
        rels.sort_unstable();
        let ends: Vec<String> = rels
            .chunks(SLICE)
            .filter_map(|c| c.last().map(|r| loc.key(r)))
            .collect();
        drop(rels);
        // Slice i holds the keys after `bounds[i]` up to and including `bounds[i + 1]`.
        let mut bounds: Vec<Option<&str>> = vec![None];
        bounds.extend(ends.iter().map(|k| Some(k.as_str())));
        let last = bounds.len() - 2;
        *bounds.last_mut().expect("at least two bounds") = None;
        let slices = (0..=last).map(|i| {
            let (from, to) = (bounds[i], bounds[i + 1]);
            async move {
                let mut out: Vec<ObjectInfo> = Vec::new();
                let mut after = from.map(str::to_string);
                loop {
                    let page = self
                        .store
                        .list_page(loc.root(), after.as_deref(), PAGE)
                        .await?;
                    let full = page.len() == PAGE;
                    let next = page.last().map(|o| o.key.clone());
                    let past_end = |k: &str| to.is_some_and(|t| k > t);
                    // A full page that reached the slice's last key ends the slice too.
                    let reached = next.as_deref().is_some_and(|k| to.is_some_and(|t| k >= t));
                    let done = !full || reached;
                    out.extend(page.into_iter().filter(|o| !past_end(&o.key)));
                    if done {
                        return Ok::<_, Error>(out);
                    }
                    after = next;
                }
            }
        });
        let mut all: Vec<ObjectInfo> = futures::future::try_join_all(slices)
            .await?
            .into_iter()
            .flatten()
            .collect();
        all.dedup_by(|a, b| a.key == b.key);
        Ok(all)
    }

    /// [`Engine::damage`] against a listing of the set already read: every object its
    /// manifest names that is missing, has another size, or was rewritten after the manifest
    /// (its entity tag differs), counted, with the first few named.
    pub(super) fn damage_in(
        &self,
        loc: &SetLocation,
        m: &Manifest,
        listing: &[ObjectInfo],
    ) -> Option<String> {
        let present: HashMap<&str, (u64, Option<&String>)> = listing
            .iter()
            .map(|o| (o.key.as_str(), (o.size, o.etag.as_ref())))
            .collect();
        let (mut missing, mut resized, mut rewritten) = (Vec::new(), Vec::new(), Vec::new());
        for f in &m.files {
            match present.get(loc.key(&f.path).as_str()) {
                None => missing.push(f.path.as_str()),
                Some((size, _)) if *size != f.size => resized.push(f.path.as_str()),
                Some((_, Some(etag))) if f.etag.as_ref().is_some_and(|e| e != *etag) => {
                    rewritten.push(f.path.as_str())
                }
                Some(_) => {}
            }
        }
        let n = m.files.len();
        let parts: Vec<String> = [
            (missing, "missing"),
            (resized, "of another size than the manifest says"),
            (rewritten, "rewritten after the manifest was written"),
        ]
        .into_iter()
        .filter(|(paths, _)| !paths.is_empty())
        .map(|(paths, why)| format!("{} of {n} objects {why}: {}", paths.len(), some(&paths)))
        .collect();
        (!parts.is_empty()).then(|| format!("{loc} is damaged: {}", parts.join("; ")))
    }

    /// A set's state as a reader takes it: read with its listing, and a complete set whose
    /// objects no longer match its manifest (expired, deleted, rewritten) is damaged, not
    /// found: found means fetchable.
    pub async fn fetchable_state(
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
                    SetState::Damaged { manifest: m, why }
                }
            },
            other => other,
        })
    }
}
