//! The comparison as plain aligned tables: the default output of `wsbench compare`.

use std::io;

use super::{comparison_document, Exporter};
use crate::compare::Comparison;
use crate::doc;

pub struct Terminal;

impl Exporter<Comparison> for Terminal {
    fn export(&self, c: &Comparison, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(doc::terminal(&comparison_document(c)).trim_end().as_bytes())?;
        out.write_all(b"\n")
    }
}
