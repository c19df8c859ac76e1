//! `report.html` on a fabricated run: one self-contained page with every figure inline, the
//! tables, the scenario (escaped), versions, host and warnings, and nothing fetched from anywhere.
//! Whether a browser renders it is checked by hand with headless Chromium (see docs/ci.md); this
//! checks what can be checked without one.

mod common;

use std::fs;

use wsbench_analysis::report;

/// The one URL an inline SVG legitimately carries: its XML namespace, which is a name, not a fetch.
const SVG_NAMESPACE: &str = "xmlns=\"http://www.w3.org/2000/svg\"";

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn the_html_report_holds_everything_inline_and_fetches_nothing() {
    let dir = common::temp_dir("report-html");
    let mut run = common::fabricate(&dir.join("run"), &common::default_shapes());
    run.manifest.scenario_text = "name = \"demo\"\n# <script>alert('x')</script> & \"quotes\"\ntrials = 2\n".into();
    common::write_manifest(&run.dir, &run.manifest);

    let paths = report(&run.dir).unwrap();
    assert_eq!(paths.report_html, paths.dir.join("report.html"));
    assert!(paths.files().contains(&paths.report_html.as_path()));
    let html = fs::read_to_string(&paths.report_html).unwrap();

    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..100]);
    assert!(html.trim_end().ends_with("</html>"));
    assert_eq!(count(&html, "<body>"), 1);
    // Every figure, inline, under its title.
    assert_eq!(count(&html, "<svg"), paths.figures.len(), "one inline SVG per figure");
    assert_eq!(count(&html, "</svg>"), paths.figures.len());
    for f in &paths.figures {
        assert!(html.contains(&format!("<h3>{}</h3>", f.title)), "no heading for {}", f.name);
        assert!(html.contains(&format!("<figure id=\"{}\">", f.name)), "no figure {}", f.name);
    }
    // Tables: results, errors and resources, configurations.
    assert!(count(&html, "<table>") >= 3);
    assert_eq!(count(&html, "<table>"), count(&html, "</table>"));
    assert_eq!(count(&html, "<tr>"), count(&html, "</tr>"));
    assert_eq!(count(&html, "<ul>"), count(&html, "</ul>"));
    assert_eq!(count(&html, "<li>"), count(&html, "</li>"));
    for must in [
        "<th>configuration</th>",
        "<td>current-thread</td>",
        "<td>multi-thread</td>",
        "demo-host",
        wsbench_core::VERSION,
        "20261125-101500",
        "<strong>send lag high</strong>",
        "<h2>Warnings</h2>",
        "<h2>Scenario</h2>",
    ] {
        assert!(html.contains(must), "report.html lacks {must:?}");
    }
    // The scenario text is there, escaped: user text never becomes markup.
    assert!(html.contains("# &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quotes&quot;"), "scenario not escaped");
    assert!(!html.contains("<script"), "no scripts at all");
    // Self-contained: no URL but the SVG namespace, no external stylesheet, image or font.
    let rest = html.replace(SVG_NAMESPACE, "");
    assert!(!rest.contains("http://") && !rest.contains("https://"), "report.html refers to the network");
    for external in ["<link", " src=", "url(", "@import"] {
        assert!(!rest.contains(external), "report.html has {external:?}");
    }
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_size_sweep_gets_its_figure_and_other_runs_do_not() {
    let dir = common::temp_dir("report-size-sweep");
    let mut shapes = common::default_shapes();
    for (s, name) in shapes.iter_mut().zip(["size-64", "size-4096"]) {
        s.name = name;
    }
    let mut run = common::fabricate(&dir.join("run"), &shapes);
    for (entry, size) in run.manifest.configs.iter_mut().zip([64, 4096]) {
        entry.server = serde_json::json!({"kind": "builtin", "runtime": "multi-thread"});
        entry.load = serde_json::json!({"connections": 10, "size": size});
    }
    common::write_manifest(&run.dir, &run.manifest);
    let paths = report(&run.dir).unwrap();
    let names: Vec<&str> = paths.figures.iter().map(|f| f.name).collect();
    assert!(names.contains(&"latency-vs-size"), "{names:?}");
    let f = paths.figures.iter().find(|f| f.name == "latency-vs-size").unwrap();
    assert!(f.png.is_file() && f.svg.is_file());
    let svg = fs::read_to_string(&f.svg).unwrap();
    assert!(svg.contains("p50") && svg.contains("p99") && svg.contains("4.0 kiB"), "axis and legend");
    let md = fs::read_to_string(&paths.report_md).unwrap();
    assert!(md.contains("](latency-vs-size.png)"), "{md}");

    // A second difference (here the server) turns the sweep off: the curve would mix two effects.
    run.manifest.configs[1].server = serde_json::json!({"kind": "builtin", "runtime": "current-thread"});
    common::write_manifest(&run.dir, &run.manifest);
    let paths = report(&run.dir).unwrap();
    assert!(paths.figures.iter().all(|f| f.name != "latency-vs-size"));
    fs::remove_dir_all(&dir).ok();
}
