//! A small document model, rendered as Markdown, self-contained HTML or terminal text.
//!
//! `report.md` and `report.html` say the same things, and so do `compare`'s Markdown and terminal
//! tables: each is built once as a [`Document`] of headings, paragraphs, lists, tables, figures and
//! code, and each renderer only decides how a block looks. Escaping lives here too, in one place
//! per format: user text (configuration names, warning messages, the scenario) cannot break a
//! Markdown table or inject HTML. Rendering is pure; a figure's SVG is handed in by the caller.

use std::fmt::Write as _;

use crate::plot::FigureFiles;

/// A piece of inline text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    Text(String),
    Strong(String),
    Code(String),
}

/// A line of inline text.
pub type Inline = Vec<Span>;

/// Plain text as a line.
pub fn plain(s: impl Into<String>) -> Inline {
    vec![Span::Text(s.into())]
}

/// Plain text as a span.
pub fn t(s: impl Into<String>) -> Span {
    Span::Text(s.into())
}

/// Strong text as a span.
pub fn strong(s: impl Into<String>) -> Span {
    Span::Strong(s.into())
}

/// Code as a span.
pub fn code(s: impl Into<String>) -> Span {
    Span::Code(s.into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table; every row has as many cells as there are headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub headers: Vec<String>,
    pub align: Vec<Align>,
    pub rows: Vec<Vec<Inline>>,
}

impl Table {
    /// A table whose first column is left-aligned and the rest right-aligned (names, then numbers).
    pub fn numeric(headers: &[&str], rows: Vec<Vec<Inline>>) -> Self {
        let align = (0..headers.len()).map(|i| if i == 0 { Align::Left } else { Align::Right }).collect();
        Self { headers: headers.iter().map(|h| h.to_string()).collect(), align, rows }
    }
}

/// A list item with an optional nested list of lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub line: Inline,
    pub children: Vec<Inline>,
}

impl From<Inline> for Item {
    fn from(line: Inline) -> Self {
        Self { line, children: Vec::new() }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// Level 1 to 4.
    Heading(u8, String),
    Paragraph(Inline),
    List(Vec<Item>),
    Table(Table),
    Figure(FigureFiles),
    /// Preformatted text, e.g. the scenario file; `language` hints Markdown's highlighter.
    Code { language: &'static str, text: String },
}

/// A titled sequence of blocks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Document {
    /// The HTML page title; Markdown shows only the blocks.
    pub title: String,
    pub blocks: Vec<Block>,
}

impl Document {
    pub fn new(title: impl Into<String>) -> Self {
        Self { title: title.into(), blocks: Vec::new() }
    }

    pub fn push(&mut self, b: Block) -> &mut Self {
        self.blocks.push(b);
        self
    }

    pub fn heading(&mut self, level: u8, s: impl Into<String>) -> &mut Self {
        self.push(Block::Heading(level, s.into()))
    }

    pub fn paragraph(&mut self, line: Inline) -> &mut Self {
        self.push(Block::Paragraph(line))
    }
}

// ---------------------------------------------------------------- Markdown

/// Keeps user-supplied text from breaking a Markdown table or a line.
pub fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn md_inline(line: &[Span]) -> String {
    line.iter()
        .map(|s| match s {
            Span::Text(x) => md_escape(x),
            Span::Strong(x) => format!("**{}**", md_escape(x)),
            // A backtick would end the code span early.
            Span::Code(x) => format!("`{}`", x.replace('`', "'").replace('\n', " ")),
        })
        .collect()
}

/// Markdown (GitHub flavoured); every block is followed by a blank line. Figures link their
/// PNG by file name, so the Markdown sits beside the figures it shows.
pub fn markdown(doc: &Document) -> String {
    let mut out = String::new();
    for b in &doc.blocks {
        match b {
            Block::Heading(level, s) => {
                let _ = write!(out, "{} {}\n\n", "#".repeat(usize::from(*level).clamp(1, 6)), md_escape(s));
            }
            Block::Paragraph(line) => {
                let _ = write!(out, "{}\n\n", md_inline(line));
            }
            Block::List(items) => {
                for item in items {
                    let _ = writeln!(out, "- {}", md_inline(&item.line));
                    for child in &item.children {
                        let _ = writeln!(out, "  - {}", md_inline(child));
                    }
                }
                out.push('\n');
            }
            Block::Table(table) => {
                let rows: Vec<Vec<String>> = table.rows.iter().map(|r| r.iter().map(|c| md_inline(c)).collect()).collect();
                out += &padded_table(&table.headers, &table.align, &rows, true);
                out.push('\n');
            }
            Block::Figure(f) => {
                let _ = write!(out, "### {}\n\n![{}]({})\n\n{} ([SVG]({}))\n\n", f.title, f.title, file_name(&f.png), f.how_to_read, file_name(&f.svg));
            }
            Block::Code { language, text } => {
                // A fence longer than any backtick run inside keeps the text verbatim.
                let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
                let fence = "`".repeat(longest.max(2) + 1);
                let _ = write!(out, "{fence}{language}\n{}\n{fence}\n\n", text.trim_end());
            }
        }
    }
    out
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// A table padded to aligned columns, as Markdown (`markdown`) or as plain columns. Padding
/// makes the Markdown read in a terminal as well as on GitHub.
fn padded_table(headers: &[String], align: &[Align], rows: &[Vec<String>], markdown: bool) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h).max(if markdown { 3 } else { 0 })).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(c));
        }
    }
    let align = |i: usize| align.get(i).copied().unwrap_or(Align::Left);
    let pad = |s: &str, w: usize, a: Align| {
        let fill = " ".repeat(w.saturating_sub(width(s)));
        if a == Align::Right {
            format!("{fill}{s}")
        } else {
            format!("{s}{fill}")
        }
    };
    let line = |cells: Vec<String>| {
        if markdown {
            format!("| {} |\n", cells.join(" | "))
        } else {
            format!("{}\n", cells.join("  ").trim_end())
        }
    };
    let cells = |row: &[String]| row.iter().enumerate().map(|(i, c)| pad(c, widths[i], align(i))).collect::<Vec<_>>();
    let mut out = line(cells(headers));
    out += &line(
        widths
            .iter()
            .enumerate()
            .map(|(i, &w)| match (markdown, align(i)) {
                (true, Align::Right) => format!("{}:", "-".repeat(w - 1)),
                (true, Align::Left) => format!(":{}", "-".repeat(w - 1)),
                (false, _) => "-".repeat(w),
            })
            .collect(),
    );
    for row in rows {
        out += &line(cells(row));
    }
    out
}

// ---------------------------------------------------------------- terminal

fn plain_inline(line: &[Span]) -> String {
    line.iter()
        .map(|s| match s {
            Span::Text(x) | Span::Strong(x) | Span::Code(x) => x.replace('\n', " "),
        })
        .collect()
}

/// Plain text for a terminal: tables as aligned columns, no markup.
pub fn terminal(doc: &Document) -> String {
    let mut out = String::new();
    for b in &doc.blocks {
        match b {
            Block::Heading(_, s) => {
                let _ = writeln!(out, "{s}");
            }
            Block::Paragraph(line) => {
                let _ = write!(out, "{}\n\n", plain_inline(line));
            }
            Block::List(items) => {
                for item in items {
                    let _ = writeln!(out, "  - {}", plain_inline(&item.line));
                    for child in &item.children {
                        let _ = writeln!(out, "    - {}", plain_inline(child));
                    }
                }
                out.push('\n');
            }
            Block::Table(table) => {
                let rows: Vec<Vec<String>> = table.rows.iter().map(|r| r.iter().map(|c| plain_inline(c)).collect()).collect();
                for l in padded_table(&table.headers, &table.align, &rows, false).lines() {
                    let _ = writeln!(out, "  {l}");
                }
                out.push('\n');
            }
            Block::Figure(f) => {
                let _ = write!(out, "{}: {}\n\n", f.title, f.png.display());
            }
            Block::Code { text, .. } => {
                for l in text.lines() {
                    let _ = writeln!(out, "    {l}");
                }
                out.push('\n');
            }
        }
    }
    out
}

// ---------------------------------------------------------------- HTML

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html_inline(line: &[Span]) -> String {
    line.iter()
        .map(|s| match s {
            Span::Text(x) => html_escape(x),
            Span::Strong(x) => format!("<strong>{}</strong>", html_escape(x)),
            Span::Code(x) => format!("<code>{}</code>", html_escape(x)),
        })
        .collect()
}

/// Styles of the HTML page: readable on screen and in print, no web fonts, nothing fetched.
const CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;max-width:1240px;margin:0 auto;padding:1.5em;color:#222;line-height:1.45}\
h1{font-size:1.7em;border-bottom:2px solid #4E79A7;padding-bottom:.2em}\
h2{font-size:1.35em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.15em}\
h3{font-size:1.1em;margin-top:1.4em}\
table{border-collapse:collapse;margin:.6em 0 1em;font-size:.92em}\
th,td{border:1px solid #d0d7de;padding:.3em .6em;vertical-align:top}\
th{background:#f3f5f7}\
tbody tr:nth-child(even){background:#fafbfc}\
td.r,th.r{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
td:first-child{white-space:nowrap}\
code,pre{font-family:ui-monospace,'DejaVu Sans Mono',monospace;font-size:.9em}\
code{background:#f3f5f7;padding:0 .25em;border-radius:3px}\
pre{background:#f6f8fa;border:1px solid #d0d7de;padding:.8em;overflow:auto}\
figure{margin:1em 0 2em}\
figure svg{display:block;width:100%;height:auto;border:1px solid #eee}\
figcaption{color:#555;font-size:.92em;margin-top:.4em}\
footer{color:#777;font-size:.85em;margin-top:3em}";

/// One self-contained HTML page: inline CSS, every figure as inline SVG (`svg` returns a
/// figure's SVG text; `None` shows a note instead), no scripts and no external resources.
pub fn html(doc: &Document, svg: &dyn Fn(&FigureFiles) -> Option<String>) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        html_escape(&doc.title)
    );
    for b in &doc.blocks {
        match b {
            Block::Heading(level, s) => {
                let l = level.clamp(&1, &6);
                let _ = writeln!(out, "<h{l}>{}</h{l}>", html_escape(s));
            }
            Block::Paragraph(line) => {
                let _ = writeln!(out, "<p>{}</p>", html_inline(line));
            }
            Block::List(items) => {
                out.push_str("<ul>\n");
                for item in items {
                    let _ = write!(out, "<li>{}", html_inline(&item.line));
                    if !item.children.is_empty() {
                        out.push_str("<ul>");
                        for child in &item.children {
                            let _ = write!(out, "<li>{}</li>", html_inline(child));
                        }
                        out.push_str("</ul>");
                    }
                    out.push_str("</li>\n");
                }
                out.push_str("</ul>\n");
            }
            Block::Table(table) => {
                let class = |i: usize| if table.align.get(i) == Some(&Align::Right) { " class=\"r\"" } else { "" };
                out.push_str("<table>\n<thead><tr>");
                for (i, h) in table.headers.iter().enumerate() {
                    let _ = write!(out, "<th{}>{}</th>", class(i), html_escape(h));
                }
                out.push_str("</tr></thead>\n<tbody>\n");
                for row in &table.rows {
                    out.push_str("<tr>");
                    for (i, c) in row.iter().enumerate() {
                        let _ = write!(out, "<td{}>{}</td>", class(i), html_inline(c));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody>\n</table>\n");
            }
            Block::Figure(f) => {
                let _ = writeln!(out, "<figure id=\"{}\">\n<h3>{}</h3>", html_escape(f.name), html_escape(f.title));
                match svg(f) {
                    Some(s) => out.push_str(strip_xml_prolog(&s).trim()),
                    None => {
                        let _ = write!(out, "<p><em>{} could not be read.</em></p>", html_escape(&file_name(&f.svg)));
                    }
                }
                let _ = writeln!(out, "\n<figcaption>{}</figcaption>\n</figure>", html_escape(f.how_to_read));
            }
            Block::Code { text, .. } => {
                let _ = writeln!(out, "<pre><code>{}</code></pre>", html_escape(text.trim_end()));
            }
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// An SVG file may start with `<?xml ...?>`, which is not allowed inside an HTML body.
fn strip_xml_prolog(svg: &str) -> &str {
    let s = svg.trim_start();
    match s.strip_prefix("<?xml").and_then(|rest| rest.find("?>").map(|end| &rest[end + 2..])) {
        Some(rest) => rest,
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Document {
        let mut d = Document::new("a <b> & c");
        d.heading(1, "Title | one");
        d.paragraph(vec![t("x|y "), strong("bold"), t(" and "), code("a`b")]);
        d.push(Block::List(vec![Item { line: plain("one"), children: vec![plain("child <i>")] }]));
        d.push(Block::Table(Table::numeric(&["name", "value"], vec![vec![plain("a|b"), plain("1")], vec![plain("longer name"), plain("12.5 µs")]])));
        d.push(Block::Code { language: "toml", text: "name = \"x\"\n# ```\n".into() });
        d
    }

    #[test]
    fn markdown_escapes_and_aligns() {
        let md = markdown(&sample());
        assert!(md.starts_with("# Title \\| one\n\n"), "{md}");
        assert!(md.contains("x\\|y **bold** and `a'b`\n\n"), "{md}");
        assert!(md.contains("- one\n  - child <i>\n\n"), "{md}");
        let table: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(table.len(), 4);
        assert!(table.iter().all(|l| l.chars().count() == table[0].chars().count()), "{md}");
        assert!(table[1].contains("---:") && table[2].contains("a\\|b"), "{md}");
        assert!(md.contains("````toml\nname = \"x\"\n# ```\n````\n"), "{md}");
    }

    #[test]
    fn html_escapes_user_text() {
        let h = html(&sample(), &|_| None);
        assert!(h.starts_with("<!DOCTYPE html>"));
        assert!(h.contains("<title>a &lt;b&gt; &amp; c</title>"));
        assert!(h.contains("<li>one<ul><li>child &lt;i&gt;</li></ul></li>"), "{h}");
        assert!(h.contains("<td class=\"r\">12.5 µs</td>"), "{h}");
        assert!(h.contains("<code>a`b</code>"));
        assert!(h.contains("name = &quot;x&quot;"));
        assert!(h.trim_end().ends_with("</html>"));
    }

    #[test]
    fn terminal_tables_are_plain_columns() {
        let text = terminal(&sample());
        assert!(text.contains("  name           value\n  -----------  -------\n  a|b                1\n"), "{text}");
        assert!(!text.contains("**"));
    }

    #[test]
    fn xml_prologs_are_dropped() {
        assert_eq!(strip_xml_prolog("<?xml version=\"1.0\"?>\n<svg/>").trim(), "<svg/>");
        assert_eq!(strip_xml_prolog("<svg/>"), "<svg/>");
    }
}
