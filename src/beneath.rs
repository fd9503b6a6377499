//! Paths resolved beneath a directory opened once, never through a symbolic link.
//!
//! A `file://` bucket and a download's destination are directories other processes may
//! write to. A path joined onto them and handed to `open` follows any link planted (or
//! swapped in) along the way, out of the tree. Here the tree's root is opened once (the
//! root itself may be a link: the user named it), and every directory below it is opened
//! relative to its parent's handle with `O_NOFOLLOW | O_DIRECTORY`; files are opened,
//! created, renamed and removed relative to their directory's handle. A link where a
//! directory or file of the tree should be is refused with one line naming it, and a
//! directory swapped for a link after it was opened does not redirect anything: the handle
//! still names the directory that was opened.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// What a tree of directories is, for the line that refuses a link found inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tree {
    /// A `file://` bucket's directory.
    Bucket,
    /// The directory a download writes into.
    Destination,
}

impl Tree {
    /// The error for a symbolic link at `path`, inside this tree.
    fn link(self, path: &Path) -> Error {
        let p = path.display();
        match self {
            Tree::Bucket => Error::rejected(format!(
                "{p} is a symbolic link inside the bucket directory: refusing to read, write or delete through it; remove the link"
            )),
            Tree::Destination => Error::Input(format!(
                "{p} is a symbolic link inside the download destination: refusing to write through it; remove the link, and let no other process write into the destination during a download"
            )),
        }
    }

    /// The error for something other than a directory at `path`, where one must be.
    fn not_dir(self, path: &Path) -> Error {
        let p = path.display();
        match self {
            Tree::Bucket => Error::rejected(format!(
                "{p} exists and is not a directory, but a key needs it to be one: remove it from the bucket directory"
            )),
            Tree::Destination => Error::Input(format!(
                "{p} exists and is not a directory (a file or a symlink): refusing to download into it; remove it or download into an empty destination"
            )),
        }
    }
}

/// What `fstatat` says of an entry, without following a link.
#[derive(Clone, Copy)]
pub(crate) struct Stat(libc::stat);

impl Stat {
    /// Whether the entry is a regular file.
    pub(crate) fn is_file(&self) -> bool {
        self.0.st_mode & libc::S_IFMT == libc::S_IFREG
    }

    /// Whether the entry is a symbolic link.
    pub(crate) fn is_link(&self) -> bool {
        self.0.st_mode & libc::S_IFMT == libc::S_IFLNK
    }

    /// The size in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.0.st_size as u64
    }

    /// The inode number.
    #[allow(clippy::unnecessary_cast)] // `stat`'s field types differ between platforms.
    pub(crate) fn ino(&self) -> u64 {
        self.0.st_ino as u64
    }

    /// The last modification: seconds and nanoseconds since the epoch.
    #[allow(clippy::unnecessary_cast)]
    pub(crate) fn mtime(&self) -> (i64, i64) {
        (self.0.st_mtime as i64, self.0.st_mtime_nsec as i64)
    }
}

/// A directory of a tree, opened beneath its root, with the path it was reached by (for
/// messages only: nothing is ever opened by that path). Clones share one handle.
#[derive(Clone, Debug)]
pub(crate) struct Dir {
    fd: Arc<OwnedFd>,
    path: PathBuf,
    tree: Tree,
}

/// `name` as a C string; a name with a NUL or a `/` is never a single entry.
fn c_name(name: &str) -> io::Result<CString> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a single path component",
        ));
    }
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a name"))
}

/// `r` as an `io::Result`, with `errno` when it is -1.
fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    match r {
        -1 => Err(io::Error::last_os_error()),
        r => Ok(r),
    }
}

impl Dir {
    /// Opens `path` as the root of a tree. The root itself may be a link (it is the user's).
    pub(crate) fn open_root(path: &Path, tree: Tree) -> io::Result<Dir> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(path)?;
        Ok(Dir {
            fd: Arc::new(OwnedFd::from(f)),
            path: path.to_path_buf(),
            tree,
        })
    }

    /// The path this directory was reached by, for messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Opens the entry `name` with `flags`, never following a link there (`O_NOFOLLOW` and
    /// `O_CLOEXEC` are always added); `O_CREAT` creates it with mode 0666 less the umask.
    pub(crate) fn open_at(&self, name: &str, flags: libc::c_int) -> io::Result<File> {
        let c = c_name(name)?;
        let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let fd =
            check(unsafe { libc::openat(self.raw(), c.as_ptr(), flags, 0o666 as libc::c_uint) })?;
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Creates the file `name`, which must not exist (a link there is not followed), for
    /// writing, and for reading too with `read`.
    pub(crate) fn create_new(&self, name: &str, read: bool) -> io::Result<File> {
        let mode = if read { libc::O_RDWR } else { libc::O_WRONLY };
        self.open_at(name, mode | libc::O_CREAT | libc::O_EXCL)
    }

    /// What the entry `name` is, without following a link.
    pub(crate) fn stat_at(&self, name: &str) -> io::Result<Stat> {
        let c = c_name(name)?;
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        check(unsafe {
            libc::fstatat(
                self.raw(),
                c.as_ptr(),
                st.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })?;
        Ok(Stat(unsafe { st.assume_init() }))
    }

    /// Removes the file (or link) `name` itself.
    pub(crate) fn unlink_at(&self, name: &str) -> io::Result<()> {
        let c = c_name(name)?;
        check(unsafe { libc::unlinkat(self.raw(), c.as_ptr(), 0) }).map(drop)
    }

    /// Removes the empty directory `name`; a link there is not followed (and not removed).
    pub(crate) fn rmdir_at(&self, name: &str) -> io::Result<()> {
        let c = c_name(name)?;
        check(unsafe { libc::unlinkat(self.raw(), c.as_ptr(), libc::AT_REMOVEDIR) }).map(drop)
    }

    /// Renames `from` in this directory to `to` in `dir`, replacing what is there (a link
    /// there is replaced, not followed).
    pub(crate) fn rename_at(&self, from: &str, dir: &Dir, to: &str) -> io::Result<()> {
        let (f, t) = (c_name(from)?, c_name(to)?);
        check(unsafe { libc::renameat(self.raw(), f.as_ptr(), dir.raw(), t.as_ptr()) }).map(drop)
    }

    /// The names in this directory (without `.` and `..`) that are regular files, with what
    /// they are.
    pub(crate) fn files(&self) -> io::Result<Vec<(String, Stat)>> {
        // A handle of its own (not a duplicate, which would share its read offset).
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
        let fd = check(unsafe { libc::openat(self.raw(), c".".as_ptr(), flags) })?;
        let dir = unsafe { libc::fdopendir(fd) };
        if dir.is_null() {
            let e = io::Error::last_os_error();
            unsafe { libc::close(fd) };
            return Err(e);
        }
        let mut names = Vec::new();
        loop {
            let entry = unsafe { libc::readdir(dir) };
            if entry.is_null() {
                break;
            }
            let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
            if let Ok(name) = name.to_str() {
                if name != "." && name != ".." {
                    names.push(name.to_string());
                }
            }
        }
        unsafe { libc::closedir(dir) };
        Ok(names
            .into_iter()
            .filter_map(|n| {
                let st = self.stat_at(&n).ok()?;
                st.is_file().then_some((n, st))
            })
            .collect())
    }

    /// The error for `e`, which an operation (`what`) on the entry `name` met: the refusal of
    /// a link when a link is there, otherwise `e` with the entry's path.
    pub(crate) fn error(&self, what: &'static str, name: &str, e: io::Error) -> Error {
        if self.stat_at(name).is_ok_and(|s| s.is_link()) {
            return self.tree.link(&self.path.join(name));
        }
        Error::io(what, self.path.join(name), e)
    }

    /// Refuses a link at `name`: [`Dir::error`]'s line when one is there.
    pub(crate) fn refuse_link(&self, name: &str) -> Result<()> {
        match self.stat_at(name) {
            Ok(s) if s.is_link() => Err(self.tree.link(&self.path.join(name))),
            _ => Ok(()),
        }
    }

    /// The subdirectory `name`, or `None` when there is none (nothing there, or something
    /// that is not a directory). A link there is refused.
    pub(crate) fn open_dir(&self, name: &str) -> Result<Option<Dir>> {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY;
        match self.open_at(name, flags) {
            Ok(f) => Ok(Some(self.child(name, f))),
            Err(e) => match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(None),
                Some(libc::ENOTDIR | libc::ELOOP) => {
                    self.refuse_link(name)?;
                    Ok(None)
                }
                _ => Err(self.error("cannot open", name, e)),
            },
        }
    }

    /// The subdirectory `name`, created when missing. A link there is refused, and so is
    /// anything else that is not a directory.
    pub(crate) fn create_dir(&self, name: &str) -> Result<Dir> {
        // A directory removed between its creation and its opening (a bucket's delete removes
        // the directories it empties) is created again.
        for _ in 0..4 {
            let c =
                c_name(name).map_err(|e| Error::io("cannot create", self.path.join(name), e))?;
            let made = check(unsafe { libc::mkdirat(self.raw(), c.as_ptr(), 0o777) });
            match made {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(self.error("cannot create", name, e)),
            }
            if let Some(dir) = self.open_dir(name)? {
                return Ok(dir);
            }
            if self.stat_at(name).is_ok() {
                return Err(self.tree.not_dir(&self.path.join(name)));
            }
        }
        Err(Error::io(
            "cannot create",
            self.path.join(name),
            io::Error::from(io::ErrorKind::NotFound),
        ))
    }

    /// The directory at `rel` ('/'-separated components, or empty for this one) beneath this
    /// one, each component created when `create` is set; `None` when one is missing (or not
    /// a directory) and `create` is not set. A link at any component is refused.
    pub(crate) fn walk(&self, rel: &str, create: bool) -> Result<Option<Dir>> {
        let mut dir = self.clone();
        for name in rel.split('/').filter(|s| !s.is_empty()) {
            dir = match create {
                true => dir.create_dir(name)?,
                false => match dir.open_dir(name)? {
                    Some(d) => d,
                    None => return Ok(None),
                },
            };
        }
        Ok(Some(dir))
    }

    fn child(&self, name: &str, f: File) -> Dir {
        Dir {
            fd: Arc::new(OwnedFd::from(f)),
            path: self.path.join(name),
            tree: self.tree,
        }
    }
}

/// Directories opened (and created) beneath one root for one download, each opened once:
/// the 2,000 files of one directory cost one `openat` between them, not one each. At most
/// [`Dirs::KEPT`] handles are kept; past that the cache starts again (a file being written
/// keeps its own directory's handle).
#[derive(Debug)]
pub(crate) struct Dirs {
    root: Dir,
    opened: Mutex<HashMap<String, Dir>>,
}

impl Dirs {
    /// Directory handles kept at most, well under any limit on open files.
    pub(crate) const KEPT: usize = 256;

    /// A cache of the directories beneath `root`.
    pub(crate) fn new(root: Dir) -> Self {
        Dirs {
            root,
            opened: Mutex::default(),
        }
    }

    /// The directory `rel` ('/'-separated, or empty for the root), created when missing,
    /// from the nearest directory above it that is already open.
    pub(crate) fn create(&self, rel: &str) -> Result<Dir> {
        if rel.is_empty() {
            return Ok(self.root.clone());
        }
        let mut opened = self.opened.lock().expect("not poisoned");
        if let Some(d) = opened.get(rel) {
            return Ok(d.clone());
        }
        if opened.len() >= Self::KEPT {
            opened.clear();
        }
        // The nearest open ancestor, then each component below it, each kept.
        let mut start = 0;
        let mut dir = self.root.clone();
        for (i, _) in rel.match_indices('/').collect::<Vec<_>>().into_iter().rev() {
            if let Some(d) = opened.get(&rel[..i]) {
                (start, dir) = (i + 1, d.clone());
                break;
            }
        }
        let mut end = start;
        for name in rel[start..].split('/') {
            end += name.len();
            dir = dir.create_dir(name)?;
            opened.insert(rel[..end].to_string(), dir.clone());
            end += 1;
        }
        Ok(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, PathBuf, Dir) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("precious"), "x").unwrap();
        let dir = Dir::open_root(&root, Tree::Bucket).unwrap();
        (tmp, outside, dir)
    }

    /// A link at any component of a walk is refused with the line naming it, whether the
    /// walk creates or only opens; a missing directory is `None`.
    #[test]
    fn a_walk_refuses_a_link_at_any_component() {
        let (_tmp, outside, root) = tree();
        symlink(&outside, root.path().join("link")).unwrap();
        for create in [false, true] {
            let e = root.walk("link/sub", create).unwrap_err().to_string();
            assert!(e.contains("root/link is a symbolic link inside"), "{e}");
        }
        root.walk("a", true).unwrap();
        symlink(&outside, root.path().join("a/link")).unwrap();
        let e = root.walk("a/link/b", true).unwrap_err().to_string();
        assert!(e.contains("a/link is a symbolic link"), "{e}");
        assert!(root.walk("missing/x", false).unwrap().is_none());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    }

    /// A directory opened before it is swapped for a link keeps naming the directory: a file
    /// created through its handle never lands where the link points.
    #[test]
    fn a_handle_outlives_a_swap_for_a_link() {
        let (tmp, outside, root) = tree();
        let sub = root.walk("sub", true).unwrap().unwrap();
        std::fs::rename(root.path().join("sub"), tmp.path().join("moved")).unwrap();
        symlink(&outside, root.path().join("sub")).unwrap();
        sub.create_new("f", false).unwrap();
        sub.rename_at("f", &sub, "g").unwrap();
        assert!(tmp.path().join("moved/g").exists());
        assert!(!outside.join("g").exists() && !outside.join("f").exists());
        // A file at a link's name is neither opened nor created through it.
        let e = root.open_at("sub", libc::O_RDONLY).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        assert!(root.create_new("sub", false).is_err());
        let e = root.error("cannot open", "sub", e).to_string();
        assert!(e.contains("is a symbolic link"), "{e}");
    }

    /// The root may be a link (the user named it); `files` lists only regular files.
    #[test]
    fn the_root_may_be_a_link_and_files_are_listed() {
        let (tmp, _outside, root) = tree();
        let via = tmp.path().join("via");
        symlink(root.path(), &via).unwrap();
        let dir = Dir::open_root(&via, Tree::Bucket).unwrap();
        dir.create_new("a", false).unwrap();
        symlink("a", root.path().join("b")).unwrap();
        dir.create_dir("c").unwrap();
        let names: Vec<String> = dir.files().unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["a".to_string()]);
        assert!(dir.rmdir_at("b").is_err(), "a link is not a directory");
        dir.rmdir_at("c").unwrap();
    }

    /// A download's directories are opened once each, and a link among them is refused.
    #[test]
    fn dirs_open_each_directory_once_and_refuse_links() {
        let (_tmp, outside, root) = tree();
        let dirs = Dirs::new(Dir::open_root(root.path(), Tree::Destination).unwrap());
        let a = dirs.create("x/y/z").unwrap();
        let b = dirs.create("x/y/z").unwrap();
        assert!(Arc::ptr_eq(&a.fd, &b.fd));
        assert!(Arc::ptr_eq(
            &dirs.create("x/y").unwrap().fd,
            &dirs.create("x/y").unwrap().fd
        ));
        symlink(&outside, root.path().join("x/l")).unwrap();
        let e = dirs.create("x/l/q").unwrap_err().to_string();
        assert!(
            e.contains("x/l is a symbolic link inside the download destination"),
            "{e}"
        );
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    }
}
