//! The HTML report: one self-contained page (inline CSS and SVG; no script, font, image or link
//! to fetch), so it can be mailed or archived as a single file.

use std::fmt::Write as _;

use super::Report;
use super::report::{distinct, fmt_ms, overcount_sentence};
use super::time::parse_datetime_prefix;

/// Escapes text for HTML and SVG (element content and quoted attributes).
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn status_color(code: u16) -> &'static str {
    match code {
        500.. => "#d64545",
        400..500 => "#e8a33d",
        300..400 => "#4a90d9",
        200..300 => "#3aa76d",
        _ => "#888888",
    }
}

const W: f64 = 720.0;

fn status_chart(r: &Report, out: &mut String) {
    let h = 40.0;
    let _ = write!(
        out,
        r#"<svg role="img" width="{W}" height="{}" viewBox="0 0 {W} {}"><title>Status mix</title>"#,
        h + 10.0,
        h + 10.0
    );
    let mut x = 0.0;
    for s in &r.status_codes {
        let w = s.share * W;
        let _ = write!(
            out,
            r#"<rect x="{x:.2}" y="0" width="{w:.2}" height="{h}" fill="{}"><title>{} : {} ({:.2}%)</title></rect>"#,
            status_color(s.status),
            s.status,
            s.count,
            s.share * 100.0
        );
        x += w;
    }
    out.push_str("</svg><ul class=\"legend\">");
    for s in &r.status_codes {
        let _ = write!(
            out,
            r#"<li><span class="sw" style="background:{}"></span>{} : {} ({:.2}%)</li>"#,
            status_color(s.status),
            s.status,
            s.count,
            s.share * 100.0
        );
    }
    out.push_str("</ul>");
}

/// A vertical bar chart with a label under every `label_every`-th bar.
fn bar_chart(title: &str, bars: &[(String, u64)], label_every: usize, out: &mut String) {
    let (h, pad) = (220.0, 40.0);
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    let n = bars.len().max(1) as f64;
    let bw = W / n;
    let _ = write!(
        out,
        r#"<svg role="img" width="{W}" height="{}" viewBox="0 0 {W} {}"><title>{}</title>"#,
        h + pad,
        h + pad,
        esc(title)
    );
    let _ = write!(
        out,
        r##"<line x1="0" y1="{h}" x2="{W}" y2="{h}" stroke="#999"/><text x="2" y="12" class="ax">{}</text>"##,
        max as u64
    );
    for (i, (label, count)) in bars.iter().enumerate() {
        let bh = *count as f64 / max * (h - 16.0);
        let x = i as f64 * bw;
        let _ = write!(
            out,
            r##"<rect x="{:.2}" y="{:.2}" width="{:.2}" height="{bh:.2}" fill="#4a90d9"><title>{}: {count}</title></rect>"##,
            x + bw * 0.1,
            h - bh,
            (bw * 0.8).max(0.5),
            esc(label)
        );
        if label_every > 0 && i % label_every == 0 {
            let _ = write!(
                out,
                r#"<text x="{:.2}" y="{}" class="ax">{}</text>"#,
                x + 1.0,
                h + 14.0,
                esc(label)
            );
        }
    }
    out.push_str("</svg>");
}

fn latency_chart(r: &Report, out: &mut String) {
    let bars: Vec<(String, u64)> = r
        .latency_histogram
        .iter()
        .map(|b| {
            (
                format!("{}-{} ms", fmt_ms(b.lo_ms), fmt_ms(b.hi_ms)),
                b.count,
            )
        })
        .collect();
    let every = bars.len().div_ceil(8).max(1);
    bar_chart("Latency distribution", &bars, every, out);
}

/// Requests over time: the minutes from first to last, summed into at most 240 bars.
fn traffic_chart(r: &Report, out: &mut String) {
    let minutes: Vec<(i64, u64)> = r
        .per_minute
        .iter()
        .filter_map(|m| parse_datetime_prefix(m.minute.as_bytes()).map(|(s, _)| (s / 60, m.count)))
        .collect();
    let (Some(first), Some(last)) = (minutes.first(), minutes.last()) else {
        bar_chart("Traffic over time", &[], 0, out);
        return;
    };
    let span = (last.0 - first.0 + 1) as usize;
    let group = span.div_ceil(240).max(1);
    let mut bars: Vec<(String, u64)> = (0..span.div_ceil(group))
        .map(|g| {
            let m = first.0 + (g * group) as i64;
            let label = super::time::format_utc(m * 60)[5..16].to_string();
            (label, 0)
        })
        .collect();
    for (m, c) in &minutes {
        bars[(m - first.0) as usize / group].1 += c;
    }
    let every = bars.len().div_ceil(6).max(1);
    bar_chart("Traffic over time", &bars, every, out);
    let _ = write!(
        out,
        "<p class=\"note\">{} per bar (UTC)</p>",
        if group == 1 {
            "1 minute".to_string()
        } else {
            format!("{group} minutes")
        }
    );
}

fn paths_chart(r: &Report, out: &mut String) {
    let row = 22.0;
    let h = row * r.top_paths.len() as f64 + 4.0;
    let max = r
        .top_paths
        .iter()
        .map(|p| p.count)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let label_w = 260.0;
    let _ = write!(
        out,
        r#"<svg role="img" width="{W}" height="{h}" viewBox="0 0 {W} {h}"><title>Top paths</title>"#
    );
    for (i, p) in r.top_paths.iter().enumerate() {
        let y = i as f64 * row;
        let bw = p.count as f64 / max * (W - label_w - 80.0);
        let mut label: String = p.path.chars().take(40).collect();
        if p.path.chars().count() > 40 {
            label.push('…');
        }
        let _ = write!(
            out,
            r##"<text x="0" y="{:.1}" class="lb">{}</text><rect x="{label_w}" y="{:.1}" width="{bw:.2}" height="{}" fill="#3aa76d"><title>{}: {}</title></rect><text x="{:.1}" y="{:.1}" class="ax">{}</text>"##,
            y + 15.0,
            esc(&label),
            y + 3.0,
            row - 6.0,
            esc(&p.path),
            p.count,
            label_w + bw + 4.0,
            y + 15.0,
            p.count
        );
    }
    out.push_str("</svg>");
}

/// Renders the report as one self-contained HTML page with inline SVG charts: status mix,
/// latency distribution, traffic over time and top paths.
///
/// ```
/// use weft_logs::{Input, Options, analyze, render_html};
/// use weft_core::context::Context;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let data = b"2024-03-01 12:00:00 path=\"/<b>\" status=200 time=5ms\n".to_vec();
/// let report = analyze(&Context::background(), vec![Input::Bytes { name: "a".into(), data }], Options::default()).await?;
/// let html = render_html(&report);
/// assert!(html.starts_with("<!DOCTYPE html>"));
/// assert_eq!(html.matches("<svg").count(), 4);
/// assert!(html.contains("/&lt;b&gt;") && !html.contains("/<b>"));
/// # Ok(()) }
/// ```
#[must_use]
pub fn render_html(r: &Report) -> String {
    let mut out = String::with_capacity(64 << 10);
    out.push_str(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>weft logs report</title><style>",
        "body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:760px;color:#222}",
        "h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}",
        "table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right}",
        "td.l,th.l{text-align:left}tr:nth-child(even){background:#f4f4f4}",
        ".ax{font-size:10px;fill:#555}.lb{font-size:11px;fill:#222}",
        ".legend{list-style:none;padding:0}.legend li{display:inline-block;margin-right:1em}",
        ".sw{display:inline-block;width:10px;height:10px;margin-right:4px}",
        ".partial{background:#fde2e2;padding:.5em;border:1px solid #d64545}.note{color:#666}",
        "</style></head><body>\n<h1>weft logs report</h1>\n"
    ));
    if r.partial {
        let _ = writeln!(
            out,
            "<p class=\"partial\">PARTIAL: stopped early ({}); the figures cover only the input read so far.</p>",
            esc(r.stopped_because.as_deref().unwrap_or("cancelled"))
        );
    }
    out.push_str("<h2>Summary</h2>\n<table>");
    let mut row = |k: &str, v: String| {
        let _ = write!(
            out,
            "<tr><th class=\"l\">{}</th><td>{}</td></tr>",
            esc(k),
            esc(&v)
        );
    };
    row("inputs", r.inputs.len().to_string());
    row("lines", r.lines.to_string());
    row("requests", r.requests.to_string());
    row(
        "errors (status >= 400)",
        format!("{} ({:.2}%)", r.errors, r.error_share * 100.0),
    );
    row(
        &format!("slow (> {} ms)", r.slow_threshold_ms),
        r.slow.to_string(),
    );
    if let Some(l) = &r.latency {
        row(
            "latency ms (min / avg / max)",
            format!(
                "{} / {} / {}",
                fmt_ms(l.min_ms),
                fmt_ms(l.avg_ms),
                fmt_ms(l.max_ms)
            ),
        );
        row(
            "latency ms (p50 / p90 / p99)",
            format!(
                "{} / {} / {}",
                fmt_ms(l.p50_ms),
                fmt_ms(l.p90_ms),
                fmt_ms(l.p99_ms)
            ),
        );
    }
    if let Some(rate) = &r.requests_per_minute {
        row(
            "requests per minute (avg / peak)",
            format!(
                "{:.1} / {} at {}",
                rate.average, rate.peak, rate.peak_minute
            ),
        );
    }
    row("malformed lines", r.malformed_lines.to_string());
    row("filtered out", r.filtered_out.to_string());
    out.push_str("</table>\n<h2>Status mix</h2>\n");
    status_chart(r, &mut out);
    out.push_str("\n<h2>Latency distribution</h2>\n");
    latency_chart(r, &mut out);
    out.push_str("\n<h2>Traffic over time</h2>\n");
    traffic_chart(r, &mut out);
    let _ = write!(
        out,
        "\n<h2>Top paths</h2>\n<p class=\"note\">{} of {} distinct paths</p>\n",
        r.top_paths.len(),
        esc(&distinct(
            r.distinct_paths,
            r.distinct_paths_exact,
            r.distinct_error
        ))
    );
    if let Some(note) = overcount_sentence(r.top_paths_max_overcount, "paths", r.memory_budget) {
        let _ = writeln!(out, "<p class=\"partial\">{}</p>", esc(&note));
    }
    paths_chart(r, &mut out);
    out.push_str("\n<table><tr><th>requests</th><th>errors</th><th>avg ms</th><th>p95 ms</th><th class=\"l\">path</th></tr>");
    for p in &r.top_paths {
        let opt = |v: Option<f64>| v.map_or("-".to_string(), fmt_ms);
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
            p.count,
            p.errors,
            opt(p.avg_ms),
            opt(p.p95_ms),
            esc(&p.path)
        );
    }
    let _ = write!(
        out,
        "</table>\n<h2>Top client addresses</h2>\n<p class=\"note\">{} of {} distinct addresses</p>\n",
        r.top_ips.len(),
        esc(&distinct(
            r.distinct_ips,
            r.distinct_ips_exact,
            r.distinct_error
        ))
    );
    if let Some(note) = overcount_sentence(r.top_ips_max_overcount, "clients", r.memory_budget) {
        let _ = writeln!(out, "<p class=\"partial\">{}</p>", esc(&note));
    }
    out.push_str("<table><tr><th>requests</th><th class=\"l\">address</th></tr>");
    for ip in &r.top_ips {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"l\">{}</td></tr>",
            ip.count,
            esc(&ip.ip)
        );
    }
    out.push_str("</table>\n");
    if !r.malformed_reasons.is_empty() {
        out.push_str("<h2>Malformed lines</h2>\n<table>");
        for m in &r.malformed_reasons {
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"l\">{}</td></tr>",
                m.count,
                esc(&m.reason)
            );
        }
        out.push_str("</table>\n");
    }
    if !r.malformed_samples.is_empty() {
        out.push_str("<table>");
        for s in &r.malformed_samples {
            let at = s.line.map_or(String::new(), |l| format!(":{l}"));
            let _ = write!(
                out,
                "<tr><td class=\"l\">{}{}</td><td class=\"l\">{}</td><td class=\"l\"><code>{}</code></td></tr>",
                esc(&s.input),
                at,
                esc(&s.reason),
                esc(&s.text)
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("</body></html>\n");
    out
}
