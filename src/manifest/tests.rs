//! Unit tests of the manifest module.
use super::*;
use crate::layout::Layout;

const SHA1: &str = "0123456789abcdef0123456789abcdef01234567";

fn hash(c: char) -> String {
    c.to_string().repeat(64)
}

fn entry(path: &str, size: u64) -> FileEntry {
    FileEntry {
        path: path.into(),
        size,
        sha256: Sha256Hex::parse(&hash('0')),
        etag: None,
        pieces: None,
    }
}

#[test]
fn round_trips_and_validates() {
    let layout = Layout::new("team").unwrap();
    let loc = layout.artifacts(SHA1);
    let m = Manifest::new(
        &loc,
        SHA1,
        Some(&hash('d')),
        vec![
            entry("b/x.zip", 3),
            FileEntry {
                path: "a.zip".into(),
                size: 4,
                sha256: Sha256Hex::parse(&hash('1')),
                etag: Some("abc".into()),
                pieces: None,
            },
        ],
    );
    assert_eq!(m.files[0].path, "a.zip");
    assert_eq!(m.total_bytes(), 7);
    assert_eq!(
        m.prefix.as_deref(),
        Some("team/artifacts/0123456789abcdef0123456789abcdef01234567/")
    );
    let back = Manifest::parse(&m.to_bytes(), "k").unwrap();
    assert_eq!(back, m);
    assert_eq!(back.check_place(&loc, true), Ok(()));
}

/// A manifest is indented down to its list of files, and each file takes one line, pieces
/// and all: about 40 % smaller than fully indented JSON for a large set, as easy to read.
#[test]
fn each_file_takes_one_line() {
    let loc = Layout::new("").unwrap().artifacts(SHA1);
    let mut big = entry("big.bin", 3 << 20);
    big.pieces = Some(Pieces {
        size: 1 << 20,
        sha256: vec![hash('a'), hash('b'), hash('c')],
    });
    let m = Manifest::new(&loc, SHA1, None, vec![entry("a.zip", 1), big]);
    let text = String::from_utf8(m.to_bytes()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let line = |path: &str| {
        lines
            .iter()
            .find(|l| l.contains(path))
            .unwrap_or_else(|| panic!("no line names {path}:\n{text}"))
            .trim()
    };
    assert_eq!(
        line("a.zip"),
        format!(r#"{{"path":"a.zip","size":1,"sha256":"{}"}},"#, hash('0'))
    );
    assert!(line("big.bin").starts_with(r#"{"path":"big.bin","size":3145728,"#));
    assert!(
        line("big.bin").ends_with(&format!(r#""{}"]}}}}"#, hash('c'))),
        "{text}"
    );
    assert!(lines.contains(&r#"  "files": ["#), "{text}");
    assert!(lines.contains(&r#"  "commit": "0123456789abcdef0123456789abcdef01234567","#));
    assert_eq!(lines.last(), Some(&"}"));
    assert!(text.ends_with("}\n"));
    assert_eq!(Manifest::parse(text.as_bytes(), "k").unwrap(), m);
    let pretty = serde_json::to_vec_pretty(&m).unwrap();
    assert!(
        text.len() < pretty.len(),
        "{} >= {}",
        text.len(),
        pretty.len()
    );
}

/// A manifest is its set's only: another commit, another code hash or another prefix
/// refuses it, and one without a prefix passes only where none is required.
#[test]
fn a_manifest_names_its_place() {
    let layout = Layout::new("").unwrap();
    let other = "1123456789abcdef0123456789abcdef01234567";
    let loc = layout.artifacts(SHA1);
    let m = Manifest::new(&loc, SHA1, Some(&hash('a')), vec![entry("a", 1)]);
    let e = m.check_place(&layout.artifacts(other), false).unwrap_err();
    assert!(
        e.contains(&format!("names commit {SHA1}")) && e.contains(other),
        "{e}"
    );
    let e = m
        .check_place(&Layout::new("x").unwrap().artifacts(SHA1), false)
        .unwrap_err();
    assert!(
        e.contains("was written under \"artifacts/") && e.contains("x/artifacts/"),
        "{e}"
    );
    // A cache entry is named by its code hash, not by the commit that built it.
    let cache = layout.cache(&hash('a'));
    let c = Manifest::new(&cache, SHA1, Some(&hash('a')), vec![entry("a", 1)]);
    assert_eq!(c.check_place(&cache, true), Ok(()));
    let e = c.check_place(&layout.cache(&hash('b')), false).unwrap_err();
    assert!(e.contains("names code hash aaaa"), "{e}");
    let e = c.check_place(&layout.artifacts(SHA1), false).unwrap_err();
    assert!(e.contains("was written under \"cache/"), "{e}");
    let mut old = m.clone();
    old.prefix = None;
    assert_eq!(old.check_place(&loc, false), Ok(()));
    assert!(old
        .check_place(&loc, true)
        .unwrap_err()
        .contains("names no key prefix"));
}

/// Pieces of `size` bytes with `n` digests.
fn pieces(size: u64, n: usize) -> Pieces {
    Pieces {
        size,
        sha256: vec![hash('e'); n],
    }
}

/// A change that breaks a manifest.
type Breaker = Box<dyn Fn(&mut Manifest)>;

/// A good manifest of two files, "a" and "b".
fn good() -> Manifest {
    let loc = Layout::new("").unwrap().artifacts(SHA1);
    Manifest::new(&loc, SHA1, None, vec![entry("a", 1), entry("b", 2)])
}

/// Each case, applied to a good manifest, is refused with one line that holds its text and
/// no raw character.
fn refused(cases: Vec<(&str, Breaker)>) {
    for (want, break_it) in cases {
        let mut m = good();
        break_it(&mut m);
        let e = Manifest::parse(&m.to_bytes(), "k").unwrap_err().to_string();
        assert!(e.contains(want), "want {want:?} in {e:?}");
        assert!(!e.chars().any(is_unprintable), "raw character in {e:?}");
        assert!(e.len() < 400, "{e}");
    }
}

/// Each broken field is refused with one line that names it, and never printed raw.
#[test]
fn every_field_is_validated() {
    refused(vec![
        (
            "`files[1].path` \"a\" is listed twice",
            Box::new(|m| m.files[1].path = "a".into()),
        ),
        (
            "`files[0].size` 9223372036854775808 is over 5 TiB",
            Box::new(|m| m.files[0].size = 1 << 63),
        ),
        (
            "`files[1].size` 5497558138881 is over 5 TiB",
            Box::new(|m| m.files[1].size = (5 << 40) + 1),
        ),
        (
            "`commit` \"abc\" is not a full lowercase hex",
            Box::new(|m| m.commit = "abc".into()),
        ),
        ("`commit`", Box::new(|m| m.commit = SHA1.to_uppercase())),
        (
            "`code_hash` \"../../etc\\nINJECT\" is not 64",
            Box::new(|m| m.code_hash = Some("../../etc\nINJECT".into())),
        ),
        (
            "`files[0].path`",
            Box::new(|m| m.files[0].path = "a\u{202e}piz.exe".into()),
        ),
        (
            "`files[0].path`",
            Box::new(|m| m.files[0].path = "a\u{2028}b".into()),
        ),
        (
            "`files[0].path`",
            Box::new(|m| m.files[0].path = "a\u{2066}b".into()),
        ),
        (
            "`files[0].path`",
            Box::new(|m| m.files[0].path = "a\u{1b}[31mb".into()),
        ),
        (
            "`files[0].sha256`",
            Box::new(|m| m.files[0].sha256 = Sha256Hex::Malformed),
        ),
        (
            "`files[0].etag`",
            Box::new(|m| m.files[0].etag = Some("x\ny".into())),
        ),
        (
            "`prefix`",
            Box::new(|m| m.prefix = Some("a\u{202e}/".into())),
        ),
        ("`created`", Box::new(|m| m.created = "x".repeat(300))),
    ]);
    let huge = vec![b' '; MANIFEST_MAX as usize + 1];
    let e = Manifest::parse(&huge, "k").unwrap_err().to_string();
    assert!(e.contains("over 64 MiB"), "{e}");
}

/// Pieces that do not add up to their file, or are out of bounds, are refused by name; pieces
/// that add up are taken.
#[test]
fn pieces_are_validated() {
    refused(vec![
        (
            "`files[1].pieces.size` of \"b\" is 1024, not between",
            Box::new(|m| m.files[1].pieces = Some(pieces(1024, 3))),
        ),
        (
            "`files[1].pieces.size` of \"b\" is 5368709121",
            Box::new(|m| m.files[1].pieces = Some(pieces((5 << 30) + 1, 1))),
        ),
        (
            "`files[1].pieces.sha256` of \"b\" holds 2 digests, but 3145728 bytes in pieces of 1048576 make 3",
            Box::new(|m| {
                m.files[1].size = 3 << 20;
                m.files[1].pieces = Some(pieces(1 << 20, 2));
            }),
        ),
        (
            "make 20000 (at most 10000)",
            Box::new(|m| {
                m.files[1].size = 20_000 << 20;
                m.files[1].pieces = Some(pieces(1 << 20, 20_000));
            }),
        ),
        (
            "`files[1].pieces.sha256` of \"b\" holds 1 digests, but 0 bytes",
            Box::new(|m| {
                m.files[1].size = 0;
                m.files[1].pieces = Some(pieces(1 << 20, 1));
            }),
        ),
        (
            "`files[1].pieces.sha256[1]` of \"b\" is not 64",
            Box::new(|m| {
                m.files[1].size = 3 << 20;
                let mut p = pieces(1 << 20, 3);
                p.sha256[1] = "../x".into();
                m.files[1].pieces = Some(p);
            }),
        ),
    ]);
    let mut m = good();
    m.files[1].size = (2 << 20) + 1;
    m.files[1].pieces = Some(pieces(1 << 20, 3));
    Manifest::parse(&m.to_bytes(), "k").unwrap();
}

#[test]
fn parse_errors_are_one_short_line() {
    let long = format!("{{\"format\":\"{}\"}}", "x".repeat(850));
    let e = Manifest::parse(long.as_bytes(), "k")
        .unwrap_err()
        .to_string();
    assert!(e.len() < 300 && !e.contains('\n'), "{e}");
}

#[test]
fn rejects_unsafe_paths() {
    for bad in [
        "../x",
        "/etc/passwd",
        "a/../../b",
        "a//b",
        "./a",
        "a/.",
        ".hidden",
        "a\0b",
        "a\nb",
        "",
        "a\\b",
        "a\u{202e}b",
        "a\u{2029}b",
        "a\u{feff}b",
    ] {
        assert!(check_asset_path(bad).is_err(), "{bad:?}");
    }
    assert!(check_asset_path("dir/fn.zip").is_ok());
}

/// A file's SHA-256 is kept as 32 bytes, read from exactly 64 lowercase hex digits: anything
/// else in that field is refused, naming it, and a good one reads back as it was written.
#[test]
fn a_files_sha256_is_64_lowercase_hex_digits() {
    let loc = Layout::new("").unwrap().artifacts(SHA1);
    let good = Manifest::new(&loc, SHA1, None, vec![entry("a", 1)]);
    let text = String::from_utf8(good.to_bytes()).unwrap();
    let back = Manifest::parse(text.as_bytes(), "k").unwrap();
    assert_eq!(back.files[0].sha256.bytes(), Some([0; 32]));
    assert_eq!(back.files[0].sha256.to_string(), hash('0'));
    let quoted = format!("\"{}\"", hash('0'));
    for bad in [
        format!("\"{}\"", hash('A')),
        format!("\"{}\"", "0".repeat(63)),
        format!("\"{}\"", "0".repeat(65)),
        format!("\"{}g\"", "0".repeat(63)),
        "\"\"".to_string(),
        format!("\"{}\\n\"", "0".repeat(64)),
    ] {
        let broken = text.replace(&quoted, &bad);
        assert_ne!(broken, text);
        let e = Manifest::parse(broken.as_bytes(), "k")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`files[0].sha256` of \"a\" is not 64 lowercase hex digits"),
            "{bad}: {e}"
        );
        assert!(!e.contains(&bad[1..bad.len() - 1]) || bad.len() < 4, "{e}");
    }
    for bad in ["123", "null", "[1]"] {
        let broken = text.replace(&quoted, bad);
        assert!(Manifest::parse(broken.as_bytes(), "k").is_err(), "{bad}");
    }
}

/// The build a manifest names reaches the resource's metadata: each of its fields is bounded
/// and printable, or the manifest is refused naming the field.
#[test]
fn a_build_field_that_is_too_long_or_unprintable_is_refused() {
    let loc = Layout::new("").unwrap().artifacts(SHA1);
    for (field, value) in [
        ("url", "https://ci.example.com/\u{1b}[2J".to_string()),
        ("pipeline", "p".repeat(MAX_FIELD + 1)),
    ] {
        let mut v: serde_json::Value = serde_json::from_slice(
            &Manifest::new(&loc, SHA1, None, vec![entry("a.zip", 1)]).to_bytes(),
        )
        .unwrap();
        v["build"] = serde_json::json!({ field: value });
        let bytes = serde_json::to_vec(&v).unwrap();
        let Err(Refused::Invalid(why)) = Manifest::parse(&bytes, "k") else {
            panic!("build.{field} was taken");
        };
        assert!(why.contains(&format!("`build.{field}`")), "{why}");
    }
}
