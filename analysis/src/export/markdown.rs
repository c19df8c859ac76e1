//! The comparison as GitHub Markdown: append it to `$GITHUB_STEP_SUMMARY` or post it as a PR
//! comment. The tables are padded, so the raw Markdown reads in a log too.

use std::io;

use super::{comparison_document, Exporter};
use crate::compare::Comparison;
use crate::doc;

pub struct Markdown;

impl Exporter<Comparison> for Markdown {
    fn export(&self, c: &Comparison, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(doc::markdown(&comparison_document(c)).as_bytes())
    }
}
