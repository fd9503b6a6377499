//! A set's damage: which objects its manifest names are missing, another size, or rewritten,
//! judged page by page against listings that cover the known keys in one round trip.

use super::*;

impl Engine {
    /// Why a complete set cannot be trusted, if it cannot: an object its manifest names is
    /// missing, has another size, or was rewritten after the manifest (its entity tag differs).
    /// The listing is checked page by page as it arrives, not kept: 50,000 keys would hold
    /// megabytes.
    pub(crate) async fn damage(&self, loc: &SetLocation, m: &Manifest) -> Result<Option<String>> {
        let index = PathIndex::new(&m.files);
        let mut seen = vec![Seen::Missing; m.files.len()];
        self.list_known_each(loc, index.sorted_paths(), |page| {
            index.mark(loc, &page, &mut seen, judge);
        })
        .await?;
        Ok(damage_of(loc, &m.files, &seen))
    }

    /// The objects of `loc`, at least those at the relative paths `rels`, listed in one round
    /// trip however many there are, sorted by key (see [`Engine::list_known_each`]).
    #[cfg(test)]
    pub(in crate::engine) async fn list_known<'a>(
        &self,
        loc: &SetLocation,
        rels: impl Iterator<Item = &'a str>,
    ) -> Result<Vec<ObjectInfo>> {
        let mut rels: Vec<&str> = rels.collect();
        rels.sort_unstable();
        let mut all = Vec::new();
        self.list_known_each(loc, rels.into_iter(), |page| all.extend(page))
            .await?;
        all.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        all.dedup_by(|a, b| a.key == b.key);
        Ok(all)
    }

    /// Lists the objects of `loc`, at least those at the relative paths `rels` (sorted, as
    /// `str` sorts: a listing's UTF-8 byte order), in one round trip however many there are,
    /// handing each page to `on_page` as it arrives (pages come in any order, and a key may
    /// come twice): knowing the keys, it asks for every 900 of them at once (listing a page of
    /// 1,000 after the key before each slice) instead of page after page. The other 100 of a
    /// page leave room for objects it does not know (the manifest, a signature); a slice that
    /// more of them push past one page is read on to its end.
    pub(in crate::engine) async fn list_known_each<'a>(
        &self,
        loc: &SetLocation,
        rels: impl Iterator<Item = &'a str>,
        on_page: impl FnMut(Vec<ObjectInfo>) + Send,
    ) -> Result<()> {
        const PAGE: usize = 1000;
        const SLICE: usize = 900;
        let on_page = std::sync::Mutex::new(on_page);
        let take = |page: Vec<ObjectInfo>| {
            let mut f = on_page.lock().unwrap_or_else(|p| p.into_inner());
            (*f)(page)
        };
        // The paths, not their keys: every key is the set's root and its path, so they sort
        // alike, and only a slice's last key is needed (50,000 keys would hold 5 MB).
        let mut ends: Vec<String> = Vec::new();
        let mut count = 0usize;
        let mut last: Option<&str> = None;
        for rel in rels {
            count += 1;
            if count.is_multiple_of(SLICE) {
                ends.push(loc.key(rel));
            }
            last = Some(rel);
        }
        if count <= SLICE {
            take(self.store.list(loc.root()).await?);
            return Ok(());
        }
        if !count.is_multiple_of(SLICE) {
            ends.extend(last.map(|r| loc.key(r)));
        }
        // Slice i holds the keys after `bounds[i]` up to and including `bounds[i + 1]`.
        let mut bounds: Vec<Option<&str>> = vec![None];
        bounds.extend(ends.iter().map(|k| Some(k.as_str())));
        let last = bounds.len() - 2;
        *bounds.last_mut().expect("at least two bounds") = None;
        let take = &take;
        let slices = (0..=last).map(|i| {
            let (from, to) = (bounds[i], bounds[i + 1]);
            async move {
                let mut after = from.map(str::to_string);
                loop {
                    let mut page = self
                        .store
                        .list_page(loc.root(), after.as_deref(), PAGE)
                        .await?;
                    let full = page.len() == PAGE;
                    let next = page.last().map(|o| o.key.clone());
                    // A full page that reached the slice's last key ends the slice too.
                    let reached = next.as_deref().is_some_and(|k| to.is_some_and(|t| k >= t));
                    let done = !full || reached;
                    page.retain(|o| to.is_none_or(|t| o.key.as_str() <= t));
                    take(page);
                    if done {
                        return Ok::<_, Error>(());
                    }
                    after = next;
                }
            }
        });
        futures::future::try_join_all(slices).await?;
        Ok(())
    }

    /// [`Engine::damage`] against a listing of the set already read: every object its
    /// manifest names that is missing, has another size, or was rewritten after the manifest
    /// (its entity tag differs), counted, with the first few named.
    pub(in crate::engine) fn damage_in(
        &self,
        loc: &SetLocation,
        m: &Manifest,
        listing: &[ObjectInfo],
    ) -> Option<String> {
        let index = PathIndex::new(&m.files);
        let mut seen = vec![Seen::Missing; m.files.len()];
        index.mark(loc, listing, &mut seen, judge);
        damage_of(loc, &m.files, &seen)
    }
}

/// What a listing showed of one object a manifest names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::engine) enum Seen {
    /// Not listed.
    Missing,
    /// Listed, with the manifest's size and entity tag (or no tag to compare).
    Whole,
    /// Listed with another size.
    Resized,
    /// Listed with another entity tag: rewritten after the manifest was written.
    Rewritten,
}

/// How a listed object compares with its manifest entry.
pub(in crate::engine) fn judge(f: &FileEntry, o: &ObjectInfo) -> Seen {
    if o.size != f.size {
        Seen::Resized
    } else {
        judge_tag(f, o)
    }
}

/// How a listed object's entity tag compares with its entry's (no tag to compare: whole).
pub(in crate::engine) fn judge_tag(f: &FileEntry, o: &ObjectInfo) -> Seen {
    if o.etag.is_some() && f.etag.is_some() && o.etag != f.etag {
        Seen::Rewritten
    } else {
        Seen::Whole
    }
}

/// The line that says how a set is damaged, from what its listing showed of each entry.
fn damage_of(loc: &SetLocation, files: &[FileEntry], seen: &[Seen]) -> Option<String> {
    let of = |want: Seen| -> Vec<&str> {
        files
            .iter()
            .zip(seen)
            .filter(|(_, s)| **s == want)
            .map(|(f, _)| f.path.as_str())
            .collect()
    };
    let n = files.len();
    let parts: Vec<String> = [
        (Seen::Missing, "missing"),
        (Seen::Resized, "of another size than the manifest says"),
        (Seen::Rewritten, "rewritten after the manifest was written"),
    ]
    .into_iter()
    .map(|(want, why)| (of(want), why))
    .filter(|(paths, _)| !paths.is_empty())
    .map(|(paths, why)| format!("{} of {n} objects {why}: {}", paths.len(), some(&paths)))
    .collect();
    (!parts.is_empty()).then(|| format!("{loc} is damaged: {}", parts.join("; ")))
}

/// A set's entries by path, to match listed keys to them without a map of strings: their
/// positions, sorted by path.
pub(in crate::engine) struct PathIndex<'a> {
    files: &'a [FileEntry],
    order: Vec<u32>,
}

impl<'a> PathIndex<'a> {
    pub(in crate::engine) fn new(files: &'a [FileEntry]) -> Self {
        let mut order: Vec<u32> = (0..files.len() as u32).collect();
        if !files.windows(2).all(|w| w[0].path < w[1].path) {
            order.sort_unstable_by(|a, b| files[*a as usize].path.cmp(&files[*b as usize].path));
        }
        PathIndex { files, order }
    }

    /// The entries' paths, sorted.
    pub(in crate::engine) fn sorted_paths(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.order
            .iter()
            .map(|i| self.files[*i as usize].path.as_str())
    }

    /// The position of the entry at `rel`, if one is there.
    pub(in crate::engine) fn find(&self, rel: &str) -> Option<usize> {
        self.order
            .binary_search_by(|i| self.files[*i as usize].path.as_str().cmp(rel))
            .ok()
            .map(|k| self.order[k] as usize)
    }

    /// Records in `seen`, for each listed object under `loc` that is an entry's, what
    /// `judge` makes of it.
    pub(in crate::engine) fn mark(
        &self,
        loc: &SetLocation,
        listing: &[ObjectInfo],
        seen: &mut [Seen],
        judge: impl Fn(&FileEntry, &ObjectInfo) -> Seen,
    ) {
        for o in listing {
            if let Some(i) = o.key.strip_prefix(loc.root()).and_then(|r| self.find(r)) {
                seen[i] = judge(&self.files[i], o);
            }
        }
    }
}
