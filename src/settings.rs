//! Settings: one typed value that every front end fills (the command line from its flags and
//! variables, the resource from its `source`), validated once, from which the engine is built.

use std::path::PathBuf;

use crate::engine::{CacheMode, CodeHashSpec, Engine, Keys, LookupOptions, PublishOptions};
use crate::error::Result;
use crate::layout::Layout;
use crate::store::{self, StoreConfig, Tuning};

/// Everything an operation needs besides its own inputs, already validated.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Where the bucket is and how to reach it.
    pub store: StoreConfig,
    /// The key layout (the prefix inside the bucket).
    pub layout: Layout,
    /// Transfer knobs.
    pub tuning: Tuning,
    /// The signing key and the trusted keys.
    pub keys: Keys,
    /// How the cache may be used.
    pub cache: CacheMode,
    /// Count sets without a manifest as found.
    pub accept_legacy: bool,
    /// The code-hash definition; `None` turns caching off.
    pub code_hash: Option<CodeHashSpec>,
    /// Print only warnings and errors: the front end sets the log's level from it
    /// ([`crate::log::set_quiet`]) before it builds the engine; building one sets nothing.
    pub quiet: bool,
}

impl Settings {
    /// Opens the store and builds the engine: the one place an engine is made.
    pub(crate) async fn engine(&self) -> Result<Engine> {
        let store = store::open(&self.store, &self.tuning).await?;
        Ok(Engine::new(store, self.layout.clone(), self.tuning.clone())
            .with_keys(self.keys.clone()))
    }

    /// A lookup of the checkout at `repo`, writing markers into `markers` when given.
    pub(crate) fn lookup(&self, repo: PathBuf, markers: Option<PathBuf>) -> LookupOptions {
        LookupOptions {
            repo,
            markers,
            code_hash: self.code_hash.clone(),
            cache: self.cache,
            accept_legacy: self.accept_legacy,
        }
    }

    /// A publish of `package_dir`: for `commit` (otherwise its `.commit-hash`), computing the
    /// code hash from `repo` when there is a definition and no `.code-hash`.
    pub(crate) fn publish(
        &self,
        package_dir: PathBuf,
        commit: Option<String>,
        repo: Option<PathBuf>,
    ) -> PublishOptions {
        PublishOptions {
            package_dir,
            commit,
            code_hash: None,
            compute_code_hash: repo.zip(self.code_hash.clone()),
            cache: self.cache,
            accept_legacy: self.accept_legacy,
        }
    }
}
