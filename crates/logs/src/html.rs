//! The HTML report: one self-contained page (inline CSS, SVG and a small script; no font, image,
//! script or link to fetch), so it can be mailed or archived as a single file.
//!
//! Every section is a panel; every table sorts by a column when its header is clicked (numbers
//! by value, from a `data-v` attribute, text by locale). The layout narrows to one column on a
//! phone: charts scale with their `viewBox`, wide tables scroll sideways in their panel. The
//! script records any error in the page's `data-errors` attribute, and opened with `#selftest`
//! it sorts a table by clicking its header and writes the outcome into `data-selftest`, which
//! is how the browser test checks it (crates/logs/tests/logs_html_browser.rs).

use std::fmt::Write as _;

use super::Report;
use super::panels::{Cell, Table};
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

/// The page's script: sortable tables, errors recorded for tests, and the `#selftest` check.
const SCRIPT: &str = r#"(function(){
var root=document.documentElement,errs=[];
function fail(m){errs.push(String(m));root.setAttribute('data-errors',errs.join(' | '));}
window.addEventListener('error',function(e){fail(e.message);});
function key(td){var v=td.getAttribute('data-v');return v===null?td.textContent:parseFloat(v);}
function cmp(x,y){return (typeof x==='number'&&typeof y==='number')?x-y:String(x).localeCompare(String(y));}
function sortBy(th){
 var table=th.closest('table'),body=table.tBodies[0];
 var idx=Array.prototype.indexOf.call(th.parentNode.children,th);
 var asc=th.getAttribute('aria-sort')!=='ascending';
 var rows=Array.prototype.slice.call(body.rows);
 rows.sort(function(a,b){var c=cmp(key(a.cells[idx]),key(b.cells[idx]));return asc?c:-c;});
 rows.forEach(function(r){body.appendChild(r);});
 Array.prototype.forEach.call(th.parentNode.children,function(h){h.removeAttribute('aria-sort');});
 th.setAttribute('aria-sort',asc?'ascending':'descending');
}
Array.prototype.forEach.call(document.querySelectorAll('table.sortable th'),function(th){
 th.addEventListener('click',function(){sortBy(th);});
});
function column(table,idx){return Array.prototype.map.call(table.tBodies[0].rows,function(r){return key(r.cells[idx]);});}
function sorted(v,asc){for(var i=1;i<v.length;i++){var c=cmp(v[i-1],v[i]);if(asc?c>0:c<0)return false;}return true;}
if(location.hash==='#selftest'){
 try{
  var tables=Array.prototype.filter.call(document.querySelectorAll('table.sortable'),function(t){return t.tBodies[0].rows.length>1;});
  if(!tables.length)throw new Error('no sortable table with two rows');
  var checked=0;
  tables.forEach(function(t){
   var ths=t.tHead.rows[0].cells;
   for(var i=0;i<ths.length;i++){
    ths[i].click();
    if(!sorted(column(t,i),true))throw new Error('column '+i+' of '+(t.id||'a table')+' not ascending');
    ths[i].click();
    if(!sorted(column(t,i),false))throw new Error('column '+i+' of '+(t.id||'a table')+' not descending');
    checked++;
   }
  });
  root.setAttribute('data-selftest','pass: '+checked+' columns in '+tables.length+' tables');
 }catch(e){root.setAttribute('data-selftest','fail: '+e.message);}
}
// Readable on a phone: nothing wider than the window (wide tables scroll inside their panel).
root.setAttribute('data-fits',String(root.scrollWidth<=window.innerWidth+1));
root.setAttribute('data-ready','1');
})();"#;

/// Writes a table whose header sorts it; numbers carry their value in `data-v`.
fn sortable(out: &mut String, id: &str, columns: &[&str], rows: &[Vec<Cell>]) {
    let _ = write!(
        out,
        "<div class=\"scroll\"><table class=\"sortable\" id=\"t-{}\"><thead><tr>",
        esc(id)
    );
    for (i, c) in columns.iter().enumerate() {
        let text = rows
            .first()
            .and_then(|r| r.get(i))
            .is_some_and(|c| matches!(c, Cell::Text(_)));
        let _ = write!(
            out,
            "<th{}>{}</th>",
            if text { " class=\"l\"" } else { "" },
            esc(c)
        );
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            match cell {
                Cell::Text(t) => {
                    let _ = write!(out, "<td class=\"l\">{}</td>", esc(t));
                }
                other => {
                    let _ = write!(
                        out,
                        "<td data-v=\"{}\">{}</td>",
                        other.number().unwrap_or(0.0),
                        esc(&other.to_string())
                    );
                }
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>\n");
}

/// A panel of the report's [`Panels`](crate::Panels): a chart where one helps, then its table.
fn panel(out: &mut String, t: &Table) {
    let _ = writeln!(
        out,
        "<section class=\"panel\" id=\"{}\"><h2>{}</h2>",
        esc(t.id),
        esc(&t.title)
    );
    if let Some(note) = &t.note {
        let class = if note.contains("upper bounds") {
            "partial"
        } else {
            "note"
        };
        let _ = writeln!(out, "<p class=\"{class}\">{}</p>", esc(note));
    }
    if matches!(t.id, "hours" | "visitors") && !t.rows.is_empty() {
        let bars: Vec<(String, u64)> = t
            .rows
            .iter()
            .map(|r| match (r.first(), r.last()) {
                (Some(Cell::Count(n)), Some(Cell::Text(label))) => (label.clone(), *n),
                _ => (String::new(), 0),
            })
            .collect();
        let every = bars.len().div_ceil(8).max(1);
        bar_chart(&t.title, &bars, every, out);
    }
    if t.rows.is_empty() {
        out.push_str("<p class=\"note\">none</p>");
    } else {
        sortable(out, t.id, &t.columns, &t.rows);
    }
    out.push_str("</section>\n");
}

/// Renders the report as one self-contained HTML page: a panel per section, inline SVG charts
/// (status mix, latency distribution, traffic over time, top paths, visitors per day, requests
/// by hour) and tables that sort when a header is clicked.
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
/// // Status, latency, traffic, top paths, and requests by hour (the line has no client, so no
/// // visitors chart).
/// assert_eq!(html.matches("<svg").count(), 5);
/// assert!(html.contains("<table class=\"sortable\""));
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
        "body{font:14px/1.4 system-ui,sans-serif;margin:1em auto;max-width:980px;color:#222;",
        "padding:0 .75em;background:#f6f7f9}",
        "h1{font-size:1.5em}h2{font-size:1.1em;margin:0 0 .5em}",
        "main{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,440px),1fr));gap:1em}",
        ".panel{background:#fff;border:1px solid #dde;border-radius:6px;padding:.8em;min-width:0}",
        ".wide{grid-column:1/-1}.scroll{overflow-x:auto}svg{width:100%;height:auto}",
        "table{border-collapse:collapse;width:100%}td,th{padding:2px 8px;text-align:right}",
        "th{cursor:pointer;user-select:none;background:#eef;white-space:nowrap}",
        "th[aria-sort=ascending]::after{content:' \\25B2'}th[aria-sort=descending]::after{content:' \\25BC'}",
        "td.l{word-break:break-all}",
        "@media (max-width:600px){body{font-size:13px;margin:.5em auto}td,th{padding:2px 4px}}",
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
    out.push_str("<main>\n<section class=\"panel\" id=\"summary\"><h2>Summary</h2>\n<div class=\"scroll\"><table>");
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
    out.push_str(
        "</table></div></section>\n<section class=\"panel\" id=\"status\"><h2>Status mix</h2>\n",
    );
    status_chart(r, &mut out);
    let status_rows: Vec<Vec<Cell>> = r
        .status_codes
        .iter()
        .map(|s| {
            vec![
                Cell::Count(s.count),
                Cell::Share(s.share),
                Cell::Text(s.status.to_string()),
            ]
        })
        .collect();
    sortable(
        &mut out,
        "status",
        &["requests", "share", "status"],
        &status_rows,
    );
    out.push_str(
        "</section>\n<section class=\"panel\" id=\"latency\"><h2>Latency distribution</h2>\n",
    );
    if r.latency.is_some() {
        latency_chart(r, &mut out);
    } else {
        out.push_str("<p class=\"note\">no request has a response time</p>");
    }
    out.push_str(
        "</section>\n<section class=\"panel wide\" id=\"traffic\"><h2>Traffic over time</h2>\n",
    );
    traffic_chart(r, &mut out);
    let _ = write!(
        out,
        "</section>\n<section class=\"panel wide\" id=\"paths\"><h2>Top paths</h2>\n<p class=\"note\">{} of {} distinct paths</p>\n",
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
    let path_rows: Vec<Vec<Cell>> = r
        .top_paths
        .iter()
        .map(|p| {
            vec![
                Cell::Count(p.count),
                Cell::Count(p.errors),
                Cell::Millis(p.avg_ms),
                Cell::Millis(p.p95_ms),
                Cell::Text(p.path.clone()),
            ]
        })
        .collect();
    sortable(
        &mut out,
        "paths",
        &["requests", "errors", "avg ms", "p95 ms", "path"],
        &path_rows,
    );
    let _ = write!(
        out,
        "</section>\n<section class=\"panel\" id=\"clients\"><h2>Top client addresses</h2>\n<p class=\"note\">{} of {} distinct addresses</p>\n",
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
    let ip_rows: Vec<Vec<Cell>> = r
        .top_ips
        .iter()
        .map(|ip| vec![Cell::Count(ip.count), Cell::Text(ip.ip.clone())])
        .collect();
    sortable(&mut out, "clients", &["requests", "address"], &ip_rows);
    out.push_str("</section>\n");
    for t in r.panels.tables() {
        panel(&mut out, &t);
    }
    if !r.panels.unavailable.is_empty() {
        out.push_str(
            "<section class=\"panel\" id=\"unavailable\"><h2>Panels without data</h2><ul>",
        );
        for u in &r.panels.unavailable {
            let _ = write!(out, "<li>{}</li>", esc(u));
        }
        out.push_str("</ul></section>\n");
    }
    if !r.malformed_reasons.is_empty() {
        out.push_str("<section class=\"panel wide\" id=\"malformed\"><h2>Malformed lines</h2>\n");
        let reason_rows: Vec<Vec<Cell>> = r
            .malformed_reasons
            .iter()
            .map(|m| vec![Cell::Count(m.count), Cell::Text(m.reason.clone())])
            .collect();
        sortable(&mut out, "malformed", &["lines", "reason"], &reason_rows);
        if !r.malformed_samples.is_empty() {
            out.push_str("<div class=\"scroll\"><table>");
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
            out.push_str("</table></div>\n");
        }
        out.push_str("</section>\n");
    }
    out.push_str("</main>\n<script>");
    out.push_str(SCRIPT);
    out.push_str("</script>\n");
    out.push_str("</body></html>\n");
    out
}
