//! Signed asset sets against the S3 server (Garage and SeaweedFS): keys made by `ssh-keygen`,
//! the CLI and the resource publishing and reading with them, the overwrite attack from a
//! pull-request pipeline, key rotation, repair by a signing publisher, and `ssh-keygen -Y
//! verify` on a published set.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{cli, resource, Env, Key, Repo, Run, S3Server};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A bucket on the S3 server, a repository with one commit, and three keys: `main` (the trusted
/// pipeline), `next` (its successor, for rotation) and `pr` (a pull-request pipeline's).
struct Fixture {
    g: S3Server,
    bucket: String,
    _tmp: tempfile::TempDir,
    root: PathBuf,
    commit: String,
    main: Key,
    next: Key,
    pr: Key,
}

impl Fixture {
    fn new(tag: &str) -> Option<Fixture> {
        let s = common::Start::new(tag, "repo")?;
        let keys = s.root.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        Some(Fixture {
            main: Key::new(&keys, "main"),
            next: Key::new(&keys, "next"),
            pr: Key::new(&keys, "pr"),
            g: s.g,
            bucket: s.bucket,
            _tmp: s.tmp,
            root: s.root,
            commit: s.commit,
        })
    }

    /// A trusted keys file holding `keys`, with a comment and a blank line.
    fn trusted(&self, keys: &[&Key]) -> String {
        let path = self
            .root
            .join(format!("trusted-{}", common::unique_name("k")));
        let mut text = String::from("# deploys trust these publishers\n\n");
        for k in keys {
            text.push_str(&k.public_line);
            text.push('\n');
        }
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    /// The task environment, plus `extra`.
    fn env(&self, extra: &[(&str, &str)]) -> Env {
        let mut e = self.g.env(&self.bucket);
        for (k, v) in extra {
            e.insert(k.to_string(), v.to_string());
        }
        e
    }

    fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        cli(args, &self.root, &self.env(extra))
    }

    /// Builds `content` as packages/fn.zip and publishes it, signed by `key` when given.
    fn publish(&self, content: &str, key: Option<&Key>, extra: &[(&str, &str)]) -> Run {
        self.publish_commit(&self.commit, content, key, extra)
    }

    /// [`Fixture::publish`] as the build of `commit`.
    fn publish_commit(
        &self,
        commit: &str,
        content: &str,
        key: Option<&Key>,
        extra: &[(&str, &str)],
    ) -> Run {
        let pkg = self.root.join("packages");
        let _ = std::fs::remove_dir_all(&pkg);
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(pkg.join(".commit-hash"), commit).unwrap();
        std::fs::write(pkg.join("fn.zip"), content).unwrap();
        let private = key.map(|k| k.private.to_string_lossy().into_owned());
        let mut vars: Vec<(&str, &str)> = extra.to_vec();
        if let Some(p) = &private {
            vars.push(("S3AM_SIGNING_KEY", p));
        }
        let r = self.run(&["upload"], &vars);
        r.ok();
        r
    }

    /// `fetch` into a fresh directory; returns the run and the directory.
    fn fetch(&self, extra: &[(&str, &str)]) -> (Run, PathBuf) {
        let dest = self.root.join(common::unique_name("out"));
        let r = self.run(&["fetch", "--dest", dest.to_str().unwrap()], extra);
        (r, dest)
    }

    /// `check` in a fresh package directory; true when it wrote `.found`.
    fn check(&self, extra: &[(&str, &str)]) -> (Run, bool) {
        let pkg = self.root.join(common::unique_name("pkg"));
        let mut vars = extra.to_vec();
        let p = pkg.to_string_lossy().into_owned();
        vars.push(("PACKAGE_DIRECTORY", &p));
        let r = self.run(&["check"], &vars);
        r.ok();
        (r, pkg.join(".found").exists())
    }

    fn key(&self, rel: &str) -> String {
        format!("artifacts/{}/{rel}", self.commit)
    }

    /// The resource's `source` with the given extra fields.
    fn source(&self, extra: Value) -> Value {
        self.g.source(&self.bucket, extra)
    }

    /// The attack: objects and manifest replaced with matching SHA-256s, the manifest signed by
    /// `signer` (the attacker's own key) or unsigned.
    fn replace_set(&self, content: &[u8], signer: Option<&Key>) {
        let manifest_key = self.key(".manifest.json");
        let mut m: Value = serde_json::from_str(&self.g.get_string(&self.bucket, &manifest_key))
            .expect("the manifest is JSON");
        self.g.put(&self.bucket, &self.key("fn.zip"), content);
        m["files"][0]["sha256"] = json!(hex::encode(Sha256::digest(content)));
        m["files"][0]["size"] = json!(content.len());
        m["files"][0].as_object_mut().unwrap().remove("etag");
        // A manifest of its own, whose signature name no earlier forgery took.
        m["created"] = json!(common::unique_name("forged"));
        let body = serde_json::to_vec_pretty(&m).unwrap();
        if let Some(k) = signer {
            let sig = k.sign(&body);
            let digest = hex::encode(Sha256::digest(&body));
            self.g.put(
                &self.bucket,
                &self.key(&format!(".manifest.json.{digest}.sig")),
                &sig,
            );
        }
        self.g.put(&self.bucket, &manifest_key, &body);
    }
}

fn fetched(dest: &Path) -> Option<String> {
    std::fs::read_to_string(dest.join("fn.zip")).ok()
}

#[test]
fn a_set_is_trusted_only_by_readers_of_its_signing_key_and_rotation_works() {
    let Some(f) = Fixture::new("sig-keys") else {
        return;
    };
    let up = f.publish("good", Some(&f.main), &[]);
    assert!(
        up.stderr
            .contains(&format!("signed by {}", f.main.fingerprint())),
        "{}",
        up.stderr
    );
    let main_only = f.trusted(&[&f.main]);
    let next_only = f.trusted(&[&f.next]);
    let rotation = f.trusted(&[&f.next, &f.main]);

    let (r, found) = f.check(&[("S3AM_TRUSTED_KEYS", &main_only)]);
    assert!(found, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "is signed by trusted key {} (main)",
            f.main.fingerprint()
        )),
        "the log names the signer: {}",
        r.stderr
    );

    // Read with the other key: not complete, so the build runs, and the log names the signer.
    let (r, found) = f.check(&[("S3AM_TRUSTED_KEYS", &next_only)]);
    assert!(!found, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "signed by {}, which is not trusted",
            f.main.fingerprint()
        )),
        "{}",
        r.stderr
    );
    let (r, dest) = f.fetch(&[("S3AM_TRUSTED_KEYS", &next_only)]);
    r.fails(1, "refusing");
    assert_eq!(fetched(&dest), None, "nothing downloaded");

    // Rotation: a file with both keys trusts the set.
    let (r, dest) = f.fetch(&[("S3AM_TRUSTED_KEYS", &rotation)]);
    r.ok();
    assert_eq!(fetched(&dest).as_deref(), Some("good"));

    // Without trusted keys nothing changes: signatures are written but not demanded.
    let (r, dest) = f.fetch(&[]);
    r.ok();
    assert_eq!(fetched(&dest).as_deref(), Some("good"));
}

#[test]
fn the_overwrite_attack_is_refused_and_a_signing_publisher_repairs_it() {
    let Some(f) = Fixture::new("sig-attack") else {
        return;
    };
    f.publish("good", Some(&f.main), &[]);
    let trusted = f.trusted(&[&f.main]);
    let t = [("S3AM_TRUSTED_KEYS", trusted.as_str())];

    for (what, signer) in [("signed by the PR's key", Some(&f.pr)), ("unsigned", None)] {
        f.replace_set(b"evil", signer);
        let why = match signer {
            Some(k) => format!("signed by {}, which is not trusted", k.fingerprint()),
            None => "it is unsigned".to_string(),
        };
        // Without trusted keys, the replaced set verifies: this is the attack.
        let (r, dest) = f.fetch(&[]);
        r.ok();
        assert_eq!(fetched(&dest).as_deref(), Some("evil"), "{what}");

        let (r, dest) = f.fetch(&t);
        r.fails(1, &why);
        assert_eq!(fetched(&dest), None, "{what}: fetch refuses it");

        let (r, found) = f.check(&t);
        assert!(!found, "{what}: check builds: {}", r.stderr);
        assert!(r.stderr.contains(&why), "{what}: {}", r.stderr);

        let src = f.source(json!({"trusted_keys": [f.main.public_line]}));
        let version = json!({"commit": f.commit});
        let dir = f.root.join(common::unique_name("in"));
        let r = resource("in", &dir, &json!({"source": src, "version": version}));
        r.ok();
        assert!(!dir.join(".found").exists(), "{what}: in refuses it");
        assert_eq!(fetched(&dir), None, "{what}");
        let dir = f.root.join(common::unique_name("in"));
        let r = resource(
            "in",
            &dir,
            &json!({"source": src, "version": version, "params": {"require": true}}),
        );
        assert_eq!(r.code, 1, "{what}: in with require fails: {}", r.stderr);
        assert!(r.stderr.contains(&why), "{what}: {}", r.stderr);
        let r = resource("check", &f.root, &json!({"source": src}));
        r.ok();
        assert_eq!(
            r.stdout.trim(),
            "[]",
            "{what}: check lists no untrusted set"
        );
    }

    // A publisher without a signing key cannot repair it, and says so.
    let r = f.publish("good", None, &t);
    assert!(r.stderr.contains("holds no signing key"), "{}", r.stderr);
    let (r, _) = f.fetch(&t);
    r.fails(1, "unsigned");

    // The trusted pipeline republishes: the one case where a complete set is overwritten.
    let r = f.publish("good", Some(&f.main), &t);
    assert!(
        r.stderr
            .contains("is complete, but it is unsigned: replacing it"),
        "the log names the old signer: {}",
        r.stderr
    );
    let (r, dest) = f.fetch(&t);
    r.ok();
    assert_eq!(fetched(&dest).as_deref(), Some("good"));
    let src = f.source(json!({"trusted_keys": [f.main.public_line]}));
    let r = resource("check", &f.root, &json!({"source": src}));
    r.ok();
    let versions: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(versions, json!([{"commit": f.commit}]), "listed again");
}

#[test]
fn resource_source_keys_sign_and_verify() {
    let Some(f) = Fixture::new("sig-resource") else {
        return;
    };
    // The put's inputs: the repository and the package directory.
    let put = f.root.join("put");
    std::fs::create_dir_all(&put).unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(f.root.join("repo"))
        .arg(put.join("repo"))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::create_dir_all(put.join("packages")).unwrap();
    std::fs::write(put.join("packages/fn.zip"), "from the resource").unwrap();

    let signing = f.source(json!({"signing_key": f.main.private_text()}));
    let r = resource(
        "out",
        &put,
        &json!({"source": signing, "params": {"repo": "repo", "path": "packages"}}),
    );
    r.ok();
    assert!(
        !r.stderr.contains("PRIVATE KEY") && !r.stdout.contains("PRIVATE KEY"),
        "{}",
        r.stderr
    );

    let trusting = f.source(json!({"trusted_keys": [
        "# rotation: the next key first",
        f.next.public_line,
        f.main.public_line,
    ]}));
    let r = resource("check", &f.root, &json!({"source": trusting}));
    r.ok();
    let versions: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(versions, json!([{"commit": f.commit}]));
    let dir = f.root.join("in");
    let r = resource(
        "in",
        &dir,
        &json!({"source": trusting, "version": {"commit": f.commit}, "params": {"require": true}}),
    );
    r.ok();
    assert!(dir.join(".found").exists());
    assert_eq!(fetched(&dir).as_deref(), Some("from the resource"));
    // The get's metadata names the trusted key that signed the set.
    let signer = common::meta(&common::response(&r), "signer");
    assert!(
        signer.starts_with(&f.main.fingerprint()),
        "{signer:?}: {}",
        r.stdout
    );

    let other = f.source(json!({"trusted_keys": [f.pr.public_line]}));
    let r = resource("check", &f.root, &json!({"source": other}));
    r.ok();
    assert_eq!(r.stdout.trim(), "[]", "{}", r.stderr);

    // A malformed key names its field and says what is wrong, without echoing the key.
    let bad = f.source(json!({"signing_key": f.main.public_line}));
    let r = resource("check", &f.root, &json!({"source": bad}));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("source.signing_key holds a public key: it needs the private key"),
        "{}",
        r.stderr
    );
    let bad =
        f.source(json!({"trusted_keys": [f.main.public_line, "ssh-ed25519 AAAAnot-a-key x"]}));
    let r = resource("check", &f.root, &json!({"source": bad}));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("source.trusted_keys[1] is not an OpenSSH public key line"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_restore_takes_only_a_trusted_cache_entry() {
    let Some(f) = Fixture::new("sig-cache") else {
        return;
    };
    let trusted = f.trusted(&[&f.main]);
    let filter = [("CODE_HASH_FIND_FILTER", "src")];
    // An unsigned publisher fills the cache entry of this code.
    f.run(&["check"], &filter).ok();
    std::fs::write(f.root.join("packages/fn.zip"), "cached").unwrap();
    let r = f.run(&["upload"], &filter);
    r.ok();
    assert!(r.stderr.contains("cached 1 file,"), "{}", r.stderr);

    // A docs-only commit has the same code hash.
    let repo = Repo {
        dir: f.root.join("repo"),
    };
    repo.write("README.md", "docs\n");
    repo.commit("docs");
    let with_trust = [filter[0], ("S3AM_TRUSTED_KEYS", trusted.as_str())];
    let (r, found) = f.check(&with_trust);
    assert!(
        !found,
        "the unsigned cache entry is not restored: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("not restoring the untrusted cache/"),
        "{}",
        r.stderr
    );
    // Without trusted keys the same entry restores, as before.
    let (r, found) = f.check(&filter);
    assert!(found, "{}", r.stderr);
}

/// `list` with trusted keys reads every manifest and its signature without `--verify`: a set
/// signed by a trusted key is complete and names its signer, an unsigned one is untrusted and
/// says why, and `--state` takes a comma-separated list. Without keys, the listing alone shows
/// both as complete.
#[test]
fn list_with_trusted_keys_names_signers_and_untrusted_sets() {
    let Some(f) = Fixture::new("sig-list") else {
        return;
    };
    let repo = Repo {
        dir: f.root.join("repo"),
    };
    repo.write("src/handler.py", "def handler(): return 1\n");
    let unsigned = repo.commit("second");
    f.publish("signed", Some(&f.main), &[]);
    f.publish_commit(&unsigned, "unsigned", None, &[]);
    let trusted = f.trusted(&[&f.main]);
    let t = [("S3AM_TRUSTED_KEYS", trusted.as_str())];
    let list = |args: &[&str], extra: &[(&str, &str)]| {
        let mut all = vec!["list", "--kind", "artifacts", "--json"];
        all.extend(args);
        let r = f.run(&all, extra);
        r.ok();
        let sets: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
        let by_id = |id: &str| sets.iter().find(|s| s["id"] == json!(id)).cloned();
        (sets.len(), by_id(&f.commit), by_id(&unsigned))
    };
    let signer = format!("{} (main)", f.main.fingerprint());

    let (n, signed, plain) = list(&[], &t);
    assert_eq!(n, 2);
    let (signed, plain) = (signed.unwrap(), plain.unwrap());
    assert_eq!(signed["state"], json!("complete"), "{signed}");
    assert_eq!(signed["signer"], json!(signer), "{signed}");
    assert_eq!(signed["why"], Value::Null, "{signed}");
    assert_eq!(plain["state"], json!("untrusted"), "{plain}");
    assert_eq!(plain["signer"], Value::Null, "{plain}");
    assert_eq!(plain["why"], json!("it is unsigned"), "{plain}");

    let (n, signed, plain) = list(&["--state", "untrusted,complete"], &t);
    assert_eq!(n, 2);
    assert!(signed.is_some() && plain.is_some());
    let (n, signed, plain) = list(&["--state", "untrusted"], &t);
    assert_eq!(n, 1);
    assert!(signed.is_none() && plain.is_some());

    // The table names the signer in its own column.
    let r = f.run(&["list", "--kind", "artifacts"], &t);
    r.ok();
    let header = r.stdout.lines().next().unwrap_or_default();
    assert!(header.trim_end().ends_with("SIGNER"), "{}", r.stdout);
    let row = r.stdout.lines().find(|l| l.contains(&f.commit)).unwrap();
    assert!(row.starts_with("artifacts  complete"), "{}", r.stdout);
    assert!(row.trim_end().ends_with(&signer), "{}", r.stdout);

    // Without keys the listing alone reads no manifest: both are unverified, no signer named;
    // with --verify (and no keys to demand a signature) both are complete.
    let (n, signed, plain) = list(&[], &[]);
    assert_eq!(n, 2);
    for s in [signed.unwrap(), plain.unwrap()] {
        assert_eq!(s["state"], json!("unverified"), "{s}");
        assert_eq!(s["signer"], Value::Null, "{s}");
    }
    let (n, signed, plain) = list(&["--verify"], &[]);
    assert_eq!(n, 2);
    for s in [signed.unwrap(), plain.unwrap()] {
        assert_eq!(s["state"], json!("complete"), "{s}");
    }
}

#[test]
fn ssh_keygen_verifies_a_published_set_as_the_readme_shows() {
    let Some(f) = Fixture::new("sig-sshkeygen") else {
        return;
    };
    f.publish("good", Some(&f.main), &[]);
    // docs/security.md: download the manifest and the signature named by its SHA-256, then verify.
    let manifest = f.g.get_bytes(&f.bucket, &f.key(".manifest.json"));
    assert!(!manifest.is_empty());
    let digest = hex::encode(Sha256::digest(&manifest));
    let sig =
        f.g.get_bytes(&f.bucket, &f.key(&format!(".manifest.json.{digest}.sig")));
    let dir = f.root.join("verify");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("manifest.json"), &manifest).unwrap();
    std::fs::write(dir.join("manifest.json.sig"), &sig).unwrap();
    std::fs::write(
        dir.join("allowed_signers"),
        format!("main {}\n", f.main.public_line),
    )
    .unwrap();
    let verify = |signers: &str| {
        Command::new("ssh-keygen")
            .args(["-Y", "verify", "-f", signers, "-I", "main"])
            .args(["-n", "s3-asset-manager", "-s", "manifest.json.sig"])
            .current_dir(&dir)
            .stdin(std::fs::File::open(dir.join("manifest.json")).unwrap())
            .output()
            .unwrap()
    };
    let out = verify("allowed_signers");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("Good \"s3-asset-manager\" signature for main"));
    // The same check fails for another key.
    std::fs::write(
        dir.join("other_signers"),
        format!("main {}\n", f.pr.public_line),
    )
    .unwrap();
    assert!(!verify("other_signers").status.success());
}
