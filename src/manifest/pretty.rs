//! The manifest's JSON layout: a field a line, a file entry a line.

/// JSON indented like `serde_json`'s pretty output down to [`ShallowPretty::DEPTH`]
/// levels of nesting, and compact below: the manifest's fields each on a line, and each file
/// entry on one line of its own.
#[derive(Default)]
pub(super) struct ShallowPretty {
    pretty: serde_json::ser::PrettyFormatter<'static>,
    /// How many objects and arrays are open.
    depth: usize,
}

impl ShallowPretty {
    /// Containers nested this deep or less are indented.
    const DEPTH: usize = 2;

    fn indented(&self) -> bool {
        self.depth <= Self::DEPTH
    }
}

impl serde_json::ser::Formatter for ShallowPretty {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.depth += 1;
        match self.indented() {
            true => self.pretty.begin_array(w),
            false => w.write_all(b"["),
        }
    }

    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        let indented = self.indented();
        self.depth -= 1;
        match indented {
            true => self.pretty.end_array(w),
            false => w.write_all(b"]"),
        }
    }

    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        match (self.indented(), first) {
            (true, _) => self.pretty.begin_array_value(w, first),
            (false, true) => Ok(()),
            (false, false) => w.write_all(b","),
        }
    }

    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        match self.indented() {
            true => self.pretty.end_array_value(w),
            false => Ok(()),
        }
    }

    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.depth += 1;
        match self.indented() {
            true => self.pretty.begin_object(w),
            false => w.write_all(b"{"),
        }
    }

    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        let indented = self.indented();
        self.depth -= 1;
        match indented {
            true => self.pretty.end_object(w),
            false => w.write_all(b"}"),
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        match (self.indented(), first) {
            (true, _) => self.pretty.begin_object_key(w, first),
            (false, true) => Ok(()),
            (false, false) => w.write_all(b","),
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        match self.indented() {
            true => self.pretty.begin_object_value(w),
            false => w.write_all(b":"),
        }
    }

    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        match self.indented() {
            true => self.pretty.end_object_value(w),
            false => Ok(()),
        }
    }
}
