//! The bucket's sets at a glance, for `list`, `delete` and `prune`: every artifacts set and
//! cache entry, read from listings spread over key ranges at once (about one request per
//! 1,000 objects), and with `verify`, each manifest read and checked against its listing.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};

use super::state::ManifestRead;
use super::{Engine, SetState};
use crate::error::Result;
use crate::layout::{
    is_code_hash, is_foreign_tree, is_object_id, SetLocation, LAST_USED_NAME, MANIFEST_NAME,
};
use crate::manifest::sum_sizes;
use crate::signing;
use crate::store::ObjectInfo;

/// How many manifests a verifying listing reads at once (what they may hold in memory is
/// bounded apart from this, one large manifest at a time: `Engine::manifest_bytes`).
const MANIFESTS_IN_FLIGHT: usize = 64;

/// A listing page: a prefix whose first page is full is listed again as one listing per next
/// character, all at once.
const PAGE: usize = 1000;

/// Which sets: commits' artifacts or cache entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// `artifacts/<commit>/`.
    Artifacts,
    /// `cache/<code-hash>/`.
    Cache,
}

impl Kind {
    /// The name `list` prints and its `--kind` takes.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Artifacts => "artifacts",
            Kind::Cache => "cache",
        }
    }
}

/// A set's state as `list` shows it. Without `verify`, only what a listing tells: unverified
/// (a manifest is there, unread), incomplete or legacy. Only a verified set is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listed {
    /// A manifest that counts: read, valid for its place, trusted where keys are set, and
    /// every object it names is there (`verify` only: what `check` would call found).
    Complete,
    /// A manifest is there, not read (without `verify`): complete, damaged, untrusted or
    /// invalid, as `--verify` would tell.
    Unverified,
    /// Objects without a manifest: an upload that was interrupted or is under way.
    Incomplete,
    /// A manifest some of whose objects are missing, resized or rewritten (`verify` only).
    Damaged,
    /// An artifacts set without a manifest, counted because legacy sets are accepted.
    Legacy,
    /// A manifest no trusted key signed (trusted keys set).
    Untrusted,
    /// A manifest that is not valid here: unreadable, unsafe, or written for another place.
    Invalid,
}

impl Listed {
    /// The name `list` prints and its `--state` takes.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Listed::Complete => "complete",
            Listed::Unverified => "unverified",
            Listed::Incomplete => "incomplete",
            Listed::Damaged => "damaged",
            Listed::Legacy => "legacy",
            Listed::Untrusted => "untrusted",
            Listed::Invalid => "invalid",
        }
    }

    /// Every state, for parsing and help.
    pub(crate) const ALL: [Listed; 7] = [
        Listed::Complete,
        Listed::Unverified,
        Listed::Incomplete,
        Listed::Damaged,
        Listed::Legacy,
        Listed::Untrusted,
        Listed::Invalid,
    ];
}

/// One set as listed.
#[derive(Debug, Clone)]
pub(crate) struct SetSummary {
    /// Artifacts or cache.
    pub kind: Kind,
    /// Where it is.
    pub loc: SetLocation,
    /// Its state.
    pub state: Listed,
    /// Its assets: the manifest's when verified, otherwise the objects listed.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// When it was completed (Unix milliseconds): the manifest's `completed_ms` once read
    /// (signed where trusted keys are set), otherwise when the store says the manifest was
    /// written, which a replay of the same bytes makes newer.
    pub created_ms: Option<u64>,
    /// A cache entry's last use: its last restore or its manifest, whichever is later.
    pub last_used_ms: Option<u64>,
    /// When anything in it was last written: how old an incomplete set is.
    pub newest_ms: Option<u64>,
    /// The trusted key that signed it (verified, with trusted keys set).
    pub signer: Option<String>,
    /// Why it is damaged, untrusted or invalid.
    pub why: Option<String>,
    /// Every object under it, the manifest included, as listed.
    pub objects: Vec<ObjectInfo>,
    /// Whether one of `keys` is its manifest.
    pub has_manifest: bool,
}

impl SetSummary {
    /// The commit or code hash.
    pub(crate) fn id(&self) -> &str {
        self.loc.id()
    }

    /// The bytes of every object under it, as listed (the manifest and signatures too):
    /// what deleting it frees.
    pub(crate) fn stored_bytes(&self) -> u64 {
        sum_sizes(self.objects.iter().map(|o| o.size))
    }

    /// When it counts from for age: its manifest, or its newest object.
    pub(crate) fn age_from_ms(&self) -> Option<u64> {
        self.created_ms.or(self.newest_ms)
    }
}

/// An index entry: its key, its commit and the completion time it names.
#[derive(Debug, Clone)]
pub(crate) struct IndexEntry {
    /// The key.
    pub key: String,
    /// The commit.
    pub commit: String,
    /// The completion time (Unix milliseconds).
    pub completed_ms: u64,
}

/// What a catalog reads.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CatalogOptions {
    /// Read each manifest (and signature) and check it against the listing: damaged,
    /// untrusted and invalid sets, and signers, at one or two requests per set.
    pub verify: bool,
    /// Count artifacts sets without a manifest as legacy, not incomplete.
    pub accept_legacy: bool,
    /// List the version index too.
    pub index: bool,
}

/// Every set in the bucket (under the prefix), newest first, and the index.
#[derive(Debug, Clone, Default)]
pub(crate) struct Catalog {
    /// The sets, newest first.
    pub sets: Vec<SetSummary>,
    /// The index entries (when asked for).
    pub index: Vec<IndexEntry>,
}

impl Engine {
    /// Lists every set (and, when asked, the index).
    pub(crate) async fn catalog(&self, opts: CatalogOptions) -> Result<Catalog> {
        let (artifacts, cache, index) = tokio::join!(
            self.list_spread(self.layout.artifacts_prefix(), HEX),
            self.list_spread(self.layout.cache_prefix(), HEX),
            async {
                match opts.index {
                    true => self.list_spread(self.layout.index_prefix(), DIGITS).await,
                    false => Ok(Vec::new()),
                }
            }
        );
        let mut sets = self.group(Kind::Artifacts, artifacts?, opts);
        sets.extend(self.group(Kind::Cache, cache?, opts));
        if opts.verify {
            sets = futures::stream::iter(sets)
                .map(|s| self.verified(s))
                .buffered(MANIFESTS_IN_FLIGHT)
                .try_collect()
                .await?;
        }
        sets.sort_by(|a, b| {
            b.age_from_ms()
                .cmp(&a.age_from_ms())
                .then(a.kind.cmp(&b.kind))
                .then(a.id().cmp(b.id()))
        });
        let index = index?
            .iter()
            .filter_map(|o| {
                let (commit, completed_ms) = self.layout.index_entry(&o.key)?;
                Some(IndexEntry {
                    key: o.key.clone(),
                    commit: commit.to_string(),
                    completed_ms,
                })
            })
            .collect();
        Ok(Catalog { sets, index })
    }

    /// One set's summary from a listing of its place (for `delete`), `None` when nothing is
    /// there.
    pub(crate) async fn summary(
        &self,
        loc: &SetLocation,
        opts: CatalogOptions,
    ) -> Result<Option<SetSummary>> {
        let kind = match loc.is_cache() {
            true => Kind::Cache,
            false => Kind::Artifacts,
        };
        let objects = self.store.list(loc.root()).await?;
        let Some(s) = self.group(kind, objects, opts).into_iter().next() else {
            return Ok(None);
        };
        Ok(Some(match opts.verify {
            true => self.verified(s).await?,
            false => s,
        }))
    }

    /// Every object under `prefix`: one listing while it fits a page; otherwise one listing
    /// per next character of `alphabet`, all at once, each paging on by itself. About one
    /// request per 1,000 objects, plus one per character: a range split again would cost a
    /// first page per finer range for what paging reads anyway.
    pub(super) async fn list_spread(
        &self,
        prefix: String,
        alphabet: &'static str,
    ) -> Result<Vec<ObjectInfo>> {
        let first = self.store.list_page(&prefix, None, PAGE).await?;
        if first.len() < PAGE {
            return Ok(first);
        }
        let parts = alphabet.chars().map(|c| {
            let p = format!("{prefix}{c}");
            async move { self.store.list(&p).await }
        });
        Ok(futures::future::try_join_all(parts).await?.concat())
    }

    /// The sets of one kind from the listing of its prefix: objects grouped by the commit or
    /// code hash their key names (anything else is not a set, and not shown). Keys of another
    /// prefix's tree below a set's place ([`is_foreign_tree`]) are not that set's.
    fn group(&self, kind: Kind, objects: Vec<ObjectInfo>, opts: CatalogOptions) -> Vec<SetSummary> {
        let (top, valid): (String, fn(&str) -> bool) = match kind {
            Kind::Artifacts => (self.layout.artifacts_prefix(), is_object_id),
            Kind::Cache => (self.layout.cache_prefix(), is_code_hash),
        };
        let mut by_id: BTreeMap<String, Vec<ObjectInfo>> = BTreeMap::new();
        for o in objects {
            let Some((id, rel)) = o.key.strip_prefix(&top).and_then(|r| r.split_once('/')) else {
                continue;
            };
            if valid(id) && !is_foreign_tree(rel) {
                by_id.entry(id.to_string()).or_default().push(o);
            }
        }
        by_id
            .into_iter()
            .map(|(id, objects)| {
                let loc = match kind {
                    Kind::Artifacts => self.layout.artifacts(&id),
                    Kind::Cache => self.layout.cache(&id),
                };
                self.summarize(kind, loc, objects, opts)
            })
            .collect()
    }

    fn summarize(
        &self,
        kind: Kind,
        loc: SetLocation,
        objects: Vec<ObjectInfo>,
        opts: CatalogOptions,
    ) -> SetSummary {
        let (manifest, last_used) = (loc.key(MANIFEST_NAME), loc.key(LAST_USED_NAME));
        let modified = |key: &str| {
            objects
                .iter()
                .find(|o| o.key == key)
                .and_then(|o| o.modified_ms)
        };
        let created_ms = modified(&manifest);
        let has_manifest = objects.iter().any(|o| o.key == manifest);
        let assets: Vec<&ObjectInfo> = objects
            .iter()
            .filter(|o| {
                o.key != manifest && o.key != last_used && !signing::is_signature_key(&loc, &o.key)
            })
            .collect();
        let (files, bytes) = (
            assets.len() as u64,
            sum_sizes(assets.iter().map(|o| o.size)),
        );
        let empty = assets.is_empty();
        let state = match (has_manifest, kind) {
            (true, _) => Listed::Unverified,
            // Shown (and pruned) as legacy even where trusted keys make readers refuse it:
            // the original tool's sets are not incomplete uploads.
            (false, Kind::Artifacts) if opts.accept_legacy && !empty => Listed::Legacy,
            (false, _) => Listed::Incomplete,
        };
        let last_used_ms = match kind {
            Kind::Cache => created_ms.max(modified(&last_used)),
            Kind::Artifacts => None,
        };
        SetSummary {
            kind,
            state,
            files,
            bytes,
            created_ms,
            last_used_ms,
            newest_ms: objects.iter().filter_map(|o| o.modified_ms).max(),
            objects,
            signer: None,
            why: None,
            has_manifest,
            loc,
        }
    }

    /// `s` with its manifest read and checked against its listing.
    async fn verified(&self, mut s: SetSummary) -> Result<SetSummary> {
        if !s.has_manifest {
            return Ok(s);
        }
        let Some(ManifestRead { state, signer }) = self.inspect_manifest(&s.loc).await? else {
            // Deleted since the listing.
            s.state = Listed::Incomplete;
            s.has_manifest = false;
            return Ok(s);
        };
        s.signer = signer;
        match state {
            SetState::Complete(m) => {
                s.files = m.files.len() as u64;
                s.bytes = m.total_bytes();
                if let Some(ms) = m.completed_ms {
                    s.created_ms = Some(ms);
                    if s.kind == Kind::Cache {
                        let used = s.objects.iter().find(|o| o.key == s.loc.last_used_key());
                        s.last_used_ms = Some(ms).max(used.and_then(|o| o.modified_ms));
                    }
                }
                s.why = self.damage_in(&s.loc, &m, &s.objects);
                s.state = match s.why {
                    Some(_) => Listed::Damaged,
                    None => Listed::Complete,
                };
            }
            SetState::Untrusted { why, .. } => {
                s.state = Listed::Untrusted;
                s.why = Some(why);
            }
            SetState::Invalid { why } => {
                s.state = Listed::Invalid;
                s.why = Some(why);
            }
            _ => {}
        }
        Ok(s)
    }
}

/// The characters a commit or code hash starts with.
const HEX: &str = "0123456789abcdef";

/// The characters an index entry starts with.
pub(super) const DIGITS: &str = "0123456789";
