//! Code hash v1: golden vectors (also printed in docs/code-hash-v1.md), sensitivity, and agreement
//! with the independent Python implementation in tests/codehash_ref.py.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::{cli, Repo};

fn write(root: &Path, rel: &str, content: &str, mode: u32) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, content).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn hash(repo: &Path, filter: &str, salt: Option<&str>) -> String {
    let mut args = vec!["hash", "--repo", repo.to_str().unwrap(), "--filter", filter];
    if let Some(s) = salt {
        args.extend(["--salt", s]);
    }
    let r = cli(&args, repo, &BTreeMap::new());
    r.ok();
    r.stdout.trim().to_string()
}

/// The golden tree of docs/code-hash-v1.md.
fn golden_tree(root: &Path) {
    write(root, "src/main.py", "print('hello')\n", 0o644);
    write(root, "src/run.sh", "#!/bin/sh\necho hi\n", 0o755);
    write(root, "src/.env", "X=1\n", 0o644);
    write(root, "package.json", "{}\n", 0o644);
    write(root, "README.md", "readme\n", 0o644);
    symlink("main.py", root.join("src/link")).unwrap();
}

const GOLDEN: [(&str, Option<&str>, &str); 3] = [
    (
        "src package.json",
        None,
        "7f2ce37aa12810d6c7f718cc3daff40205d2bad5948f19861925ce326c243f5b",
    ),
    (
        "src package.json",
        Some("v2"),
        "60d9523f577a17b1dd9ed98b1b3dbad6c10409b33a2491a8194328afa9f23bd8",
    ),
    (
        "src/*.py",
        None,
        "adf05475becc2866999824f05cb78467123cf22a12477977ed4ee880b665b6a6",
    ),
];

#[test]
fn golden_vectors_hold_and_are_in_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    golden_tree(dir.path());
    let spec =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/code-hash-v1.md"))
            .unwrap_or_default();
    for (filter, salt, want) in GOLDEN {
        let got = hash(dir.path(), filter, salt);
        assert_eq!(
            got, want,
            "golden vector for {filter:?} salt {salt:?} changed"
        );
        assert!(
            spec.contains(want),
            "docs/code-hash-v1.md lacks golden vector {want}"
        );
    }
    let r = cli(
        &[
            "hash",
            "--list",
            "--repo",
            dir.path().to_str().unwrap(),
            "--filter",
            "src package.json",
        ],
        dir.path(),
        &BTreeMap::new(),
    );
    let records: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(records.len(), 6, "{}", r.stdout);
    assert!(records[0].starts_with("f 3 ") && records[0].ends_with(" package.json"));
    assert!(records[1].ends_with(" src/.env"), "dotfiles are included");
    assert!(records[2].starts_with("l 7 ") && records[2].ends_with(" src/link"));
    assert!(records[4].starts_with("x 18 ") && records[4].ends_with(" src/run.sh"));
}

#[test]
fn every_change_that_matters_changes_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    golden_tree(root);
    let f = "src package.json";
    let base = hash(root, f, None);
    // Pattern order, duplicates and spelling do not matter.
    assert_eq!(hash(root, "./package.json src/ src", None), base);
    // Files outside the patterns do not matter.
    write(root, "README.md", "changed\n", 0o644);
    assert_eq!(hash(root, f, None), base);
    // .git is never part of it.
    write(root, "src/.git/HEAD", "ref: x\n", 0o644);
    assert_eq!(hash(root, f, None), base);
    std::fs::remove_dir_all(root.join("src/.git")).unwrap();

    let mut seen = vec![base.clone()];
    let mut changed = |what: &str, root: &Path| {
        let h = hash(root, f, None);
        assert!(!seen.contains(&h), "{what} did not change the hash");
        seen.push(h);
    };
    write(root, "src/main.py", "print('hello!')\n", 0o644);
    changed("a content change", root);
    std::fs::rename(root.join("src/main.py"), root.join("src/app.py")).unwrap();
    changed("a rename", root);
    std::fs::set_permissions(
        root.join("src/app.py"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    changed("chmod +x", root);
    std::fs::remove_file(root.join("src/link")).unwrap();
    symlink("app.py", root.join("src/link")).unwrap();
    changed("a new symlink target", root);
    write(root, "src/new/empty.txt", "", 0o644);
    changed("a new empty file", root);
    assert_ne!(hash(root, f, Some("salt")), hash(root, f, None), "the salt");
}

#[test]
fn a_filter_that_matches_nothing_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    golden_tree(dir.path());
    let r = cli(
        &[
            "hash",
            "--repo",
            dir.path().to_str().unwrap(),
            "--filter",
            "nothing/** *.nope",
        ],
        dir.path(),
        &BTreeMap::new(),
    );
    r.fails(3, "match no file");
    assert!(r.stderr.contains("*.nope nothing/**"), "{}", r.stderr);
    assert!(
        r.stderr.contains(dir.path().to_str().unwrap()),
        "{}",
        r.stderr
    );
    let r = cli(
        &[
            "hash",
            "--repo",
            dir.path().to_str().unwrap(),
            "--filter",
            "src/[a",
        ],
        dir.path(),
        &BTreeMap::new(),
    );
    r.fails(2, "invalid code-hash pattern");
}

/// A deterministic pseudo-random tree with everything the spec mentions.
fn generated_tree(root: &Path) {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let dirs = [
        "src",
        "src/deep/er",
        "lib",
        "docs/api",
        "tools",
        "conf",
        "a",
        "b",
        "c",
        "x y",
        "ünï",
        "src/.hidden",
        "node_modules/pkg",
        "deep/1/2/deep/3",
    ];
    let names = [
        "main.py",
        "x1",
        "xy",
        "run.sh",
        "config.yml",
        "b.yml",
        "d.yml",
        "tool",
        "test",
        ".env",
        "data.json",
        "notes.txt",
        "Ä.txt",
        "sp ace.txt",
        "[x].txt",
    ];
    for i in 0..400 {
        let d = dirs[(next() % dirs.len() as u64) as usize];
        let n = names[(next() % names.len() as u64) as usize];
        let len = (next() % 3000) as usize;
        let content: String = (0..len)
            .map(|j| (b'a' + ((j as u64 + next()) % 26) as u8) as char)
            .collect();
        let mode = if next() % 4 == 0 { 0o755 } else { 0o644 };
        write(root, &format!("{d}/{i}-{n}"), &content, mode);
        write(root, &format!("{d}/{n}"), &content, mode);
    }
    write(root, "package.json", "{}", 0o644);
    write(root, ".git/config", "[core]", 0o644);
    write(root, "src/.git", "gitdir: ../x", 0o644);
    symlink("../lib", root.join("src/linkdir")).unwrap();
    symlink("main.py", root.join("src/linkfile")).unwrap();
    symlink("/nonexistent/target", root.join("src/dangling")).unwrap();
    symlink("src", root.join("top-link")).unwrap();
}

#[test]
fn agrees_with_the_independent_python_implementation() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    Repo::init(&root);
    generated_tree(&root);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/codehash_ref.py");
    let cases: [(&str, Option<&str>); 9] = [
        ("src/** *.json", None),
        ("lib/*.py docs **/*.sh", Some("salt")),
        ("{a,b}/x? conf/[a-c]*.yml tools/[!t]*", None),
        (".", None),
        ("src src/** ./src/", None),
        ("src/linkdir src/linkfile src/dangling top-link", None),
        ("**/deep/**/*.txt", None),
        ("x?y/** ünï/*.txt **/\\[x\\].txt", Some("é")),
        ("**/.env c", None),
    ];
    for (filter, salt) in cases {
        let mut args = vec![
            "hash",
            "--list",
            "--repo",
            root.to_str().unwrap(),
            "--filter",
            filter,
        ];
        let mut py = Command::new("python3");
        py.arg(script).arg("--list");
        if let Some(s) = salt {
            args.extend(["--salt", s]);
            py.args(["--salt", s]);
        }
        let ours = cli(&args, &root, &BTreeMap::new());
        ours.ok();
        py.arg(&root).args(filter.split_whitespace());
        let theirs = py.output().expect("python3");
        assert!(
            theirs.status.success(),
            "{}",
            String::from_utf8_lossy(&theirs.stderr)
        );
        let theirs = String::from_utf8(theirs.stdout).unwrap();
        assert!(ours.stdout.lines().count() > 1, "{filter}: matched nothing");
        assert_eq!(ours.stdout, theirs, "filter {filter:?} salt {salt:?}");
        if filter.contains("linkdir") {
            // The four links are hashed as links (type `l`, the target's length), each once,
            // never followed: not `lib/`'s files, nor a dangling target's error.
            for (link, target) in [
                ("src/linkdir", "../lib"),
                ("src/linkfile", "main.py"),
                ("src/dangling", "/nonexistent/target"),
                ("top-link", "src"),
            ] {
                let records: Vec<&str> = (ours.stdout.lines())
                    .filter(|l| l.ends_with(&format!(" {link}")))
                    .collect();
                let want = format!("l {} ", target.len());
                assert!(
                    records.len() == 1 && records[0].starts_with(&want),
                    "{link}: {records:?}"
                );
            }
            assert!(
                !ours.stdout.lines().any(|l| l.contains("linkdir/")),
                "a linked directory was entered: {}",
                ours.stdout
            );
        }
    }
}
