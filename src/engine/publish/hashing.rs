//! The assets hashed before they upload: each file's SHA-256 (and a large one's parts'
//! checksums), on the blocking pool.

use super::*;

/// One asset's size and SHA-256 (none for a small file, hashed as it uploads), and the
/// CRC64/NVME of each of its parts when it will upload in parts.
pub(super) struct Hashed {
    pub(super) size: u64,
    pub(super) sha256: Option<[u8; 32]>,
    pub(super) parts: Vec<u64>,
    pub(super) pieces: Option<Pieces>,
}

/// Hashes the assets larger than [`IN_MEMORY`] on the blocking pool, in parallel: size and
/// SHA-256, and where `parts[i]` gives a part size, the CRC64/NVME of each part, from the same
/// read (a CRC costs a small fraction of a SHA-256), so the upload that follows reads each
/// part once, to send it. Where `pieces[i]` gives a piece size, the SHA-256 of each piece too,
/// on other threads beside that read: the store has nothing to do before the upload starts,
/// so on a machine it shares, they take the cores it leaves idle.
pub(super) async fn hash_assets(
    files: &[Asset],
    parts: Vec<Option<u64>>,
    pieces: Vec<Option<u64>>,
) -> Result<Vec<Hashed>> {
    let work: Vec<(PathBuf, u64, Option<u64>, Option<u64>)> = files
        .iter()
        .zip(parts)
        .zip(pieces)
        .map(|((a, p), q)| (a.path.clone(), a.size, p, q))
        .collect();
    tokio::task::spawn_blocking(move || {
        use rayon::prelude::*;
        work.par_iter()
            .map(|(path, size, part, piece)| {
                if *size <= IN_MEMORY {
                    return Ok(Hashed {
                        size: *size,
                        sha256: None,
                        parts: Vec::new(),
                        pieces: None,
                    });
                }
                let whole = || match part.filter(|p| *p > 0) {
                    None => codehash::sha256_file(path).map(|(n, sha)| (n, sha, Vec::new())),
                    Some(part) => codehash::sha256_and_part_crc64(path, part),
                };
                let each_piece = |piece: u64| {
                    let ranges: Vec<(u64, u64)> = Pieces::ranges(*size, piece).collect();
                    ranges
                        .par_iter()
                        .map(|(a, b)| codehash::sha256_range(path, *a, b - a).map(hex::encode))
                        .collect::<Result<Vec<String>>>()
                        .map(|sha256| Pieces {
                            size: piece,
                            sha256,
                        })
                };
                let (whole, pieces) = match piece {
                    Some(piece) => rayon::join(whole, || each_piece(*piece).map(Some)),
                    None => (whole(), Ok(None)),
                };
                let (got, sha256, parts) = whole?;
                // A file that changed size since it was listed gets its parts checked by the
                // store, and no pieces (the upload then refuses it).
                let (parts, pieces) = if got == *size {
                    (parts, pieces?)
                } else {
                    (Vec::new(), None)
                };
                Ok(Hashed {
                    size: got,
                    sha256: Some(sha256),
                    parts,
                    pieces,
                })
            })
            .collect::<Result<Vec<_>>>()
    })
    .await
    .map_err(|e| Error::task("hashing the assets", e))?
}
