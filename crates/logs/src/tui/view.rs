//! The drawing of one snapshot.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, Widget};

use crate::follow::{FileState, Snapshot};
use crate::report::{fmt_ms, term};

/// One [`Snapshot`] as a ratatui [`Widget`]: a header with the totals, then the status mix,
/// the top paths and clients, and the followed files.
///
/// ```
/// use ratatui::{Terminal, backend::TestBackend};
/// use weft_logs::follow::{Follower, Snapshot, Start};
/// use weft_logs::tui::SnapshotView;
/// use weft_logs::Options;
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("app.log");
/// std::fs::write(&path, "2024-03-01 12:00:00 path=/api status=502 time=7ms\n")?;
/// let mut follower = Follower::new([&path], Options::default(), Start::Beginning)?;
/// follower.poll()?;
/// let snap = Snapshot::new(&follower, std::time::Duration::from_secs(3), 1, 1.0);
/// let mut terminal = Terminal::new(TestBackend::new(100, 30))?;
/// terminal.draw(|frame| frame.render_widget(SnapshotView::new(&snap), frame.area()))?;
/// let screen: String = terminal.backend().buffer().content().iter().map(|c| c.symbol()).collect();
/// assert!(screen.contains("requests 1"));
/// assert!(screen.contains("/api"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct SnapshotView<'a> {
    snapshot: &'a Snapshot,
}

impl<'a> SnapshotView<'a> {
    /// A view of `snapshot`.
    pub fn new(snapshot: &'a Snapshot) -> Self {
        SnapshotView { snapshot }
    }
}

const BAR: usize = 20;

fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

impl Widget for SnapshotView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let s = self.snapshot;
        let r = &s.report;
        let files = s.files.len() as u16;
        let headline = panel_headline(&r.panels);
        let [header, middle, bottom] = Layout::vertical([
            Constraint::Length(if headline.is_some() { 6 } else { 5 }),
            Constraint::Min(8),
            Constraint::Length(files.saturating_add(3).min(10)),
        ])
        .areas(area);

        // Header: totals.
        let secs = s.elapsed.as_secs();
        let title = format!(
            " weft logs --follow  +{}:{:02}  (q or Ctrl-C: stop and print the report) ",
            secs / 60,
            secs % 60
        );
        let mut lines = vec![
            Line::from(vec![
                Span::styled(format!("lines {}", r.lines), bold()),
                Span::raw(format!(
                    "  (+{}, {:.0}/s)   ",
                    s.new_lines, s.lines_per_second
                )),
                Span::styled(format!("requests {}", r.requests), bold()),
                Span::raw(format!(
                    "   errors {} ({:.1}%)   slow {}   ",
                    r.errors,
                    r.error_share * 100.0,
                    r.slow
                )),
                Span::raw(format!(
                    "malformed {}   filtered out {}",
                    r.malformed_lines, r.filtered_out
                )),
            ]),
            match &r.latency {
                Some(l) => Line::raw(format!(
                    "latency ms  p50 {}  p90 {}  p99 {}  max {}  avg {}  ({} timed)",
                    fmt_ms(l.p50_ms),
                    fmt_ms(l.p90_ms),
                    fmt_ms(l.p99_ms),
                    fmt_ms(l.max_ms),
                    fmt_ms(l.avg_ms),
                    l.count
                )),
                None => Line::raw("latency     no request has a response time yet"),
            },
        ];
        if let Some(rate) = &r.requests_per_minute {
            lines.push(Line::raw(format!(
                "requests/min avg {:.1}, peak {} at {}   distinct paths {}, clients {}",
                rate.average, rate.peak, rate.peak_minute, r.distinct_paths, r.distinct_ips
            )));
        }
        if let Some(h) = headline {
            lines.push(Line::raw(h));
        }
        Paragraph::new(lines)
            .block(Block::bordered().title(title))
            .render(header, buf);

        // Middle: status mix | top paths | top clients.
        let [status, paths, clients] = Layout::horizontal([
            Constraint::Length(44),
            Constraint::Min(30),
            Constraint::Length(30),
        ])
        .areas(middle);
        status_mix(s, status, buf);
        let overcount = |n: u64| {
            if n > 0 {
                format!(" (counts may exceed by {n})")
            } else {
                String::new()
            }
        };
        let rows = r.top_paths.iter().map(|p| {
            Row::new(vec![
                Cell::from(p.count.to_string()),
                Cell::from(p.errors.to_string()),
                Cell::from(p.p95_ms.map_or("-".into(), fmt_ms)),
                Cell::from(term(&p.path).into_owned()),
            ])
        });
        Table::new(
            rows,
            [
                Constraint::Length(9),
                Constraint::Length(7),
                Constraint::Length(8),
                Constraint::Min(10),
            ],
        )
        .header(Row::new(["count", "errors", "p95 ms", "path"]).style(bold()))
        .block(Block::bordered().title(format!(
            " top paths{} ",
            overcount(r.top_paths_max_overcount)
        )))
        .render(paths, buf);
        let rows = r.top_ips.iter().map(|c| {
            Row::new(vec![
                Cell::from(c.count.to_string()),
                Cell::from(term(&c.ip).into_owned()),
            ])
        });
        Table::new(rows, [Constraint::Length(9), Constraint::Min(10)])
            .header(Row::new(["count", "client"]).style(bold()))
            .block(Block::bordered().title(format!(
                " top clients{} ",
                overcount(r.top_ips_max_overcount)
            )))
            .render(clients, buf);

        // Bottom: the files.
        let rows = s.files.iter().map(|f| {
            let (state, color) = match f.state {
                FileState::Following => ("following", Color::Green),
                FileState::Waiting => ("waiting", Color::Yellow),
                _ => ("refused", Color::Red),
            };
            Row::new(vec![
                Cell::from(Span::styled(state, Style::default().fg(color))),
                Cell::from(f.lines.to_string()),
                Cell::from(f.offset.to_string()),
                Cell::from(format!("{}/{}", f.rotations, f.truncations)),
                Cell::from(term(&f.path.display().to_string()).into_owned()),
                Cell::from(
                    f.error
                        .as_deref()
                        .map(|e| term(e).into_owned())
                        .unwrap_or_default(),
                ),
            ])
        });
        Table::new(
            rows,
            [
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Length(12),
                Constraint::Length(9),
                Constraint::Min(20),
                Constraint::Min(0),
            ],
        )
        .header(Row::new(["state", "lines", "offset", "rot/trunc", "file", "error"]).style(bold()))
        .block(Block::bordered().title(" files "))
        .render(bottom, buf);
    }
}

/// Requests by status class, with a bar each, then the most frequent codes.
/// One line with the panels' headlines (bandwidth, visitors, the top 404, the crawlers' share),
/// when the report has any of them; the full panels are in `--html` and the final report.
fn panel_headline(p: &crate::Panels) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(b) = &p.bandwidth {
        parts.push(format!(
            "bandwidth {}",
            crate::report::human_bytes(b.total_bytes)
        ));
    }
    if let Some(v) = &p.visitors {
        let approx = if v.exact { "" } else { "~" };
        parts.push(format!("visitors {approx}{}", v.total));
    }
    if let Some(top) = p.not_found.as_ref().and_then(|t| t.rows.first()) {
        parts.push(format!("top 404 {} ({})", term(&top.key), top.requests));
    }
    if let Some(a) = &p.agents {
        let crawlers: f64 = a
            .categories
            .iter()
            .filter(|c| c.name == "crawler")
            .map(|c| c.share)
            .sum();
        parts.push(format!("crawlers {:.1}%", crawlers * 100.0));
    }
    (!parts.is_empty()).then(|| parts.join("   "))
}

fn status_mix(s: &Snapshot, area: Rect, buf: &mut Buffer) {
    let r = &s.report;
    let mut classes = [0u64; 6];
    for c in &r.status_codes {
        classes[usize::from(c.status / 100).min(5)] += c.count;
    }
    let colors = [
        Color::Gray,
        Color::Gray,
        Color::Green,
        Color::Cyan,
        Color::Yellow,
        Color::Red,
    ];
    let mut lines = Vec::new();
    for class in 1..=5 {
        let n = classes[class];
        let share = if r.requests > 0 {
            n as f64 / r.requests as f64
        } else {
            0.0
        };
        let filled = (share * BAR as f64).round() as usize;
        lines.push(Line::from(vec![
            Span::raw(format!("{class}xx ")),
            Span::styled("█".repeat(filled), Style::default().fg(colors[class])),
            Span::raw(" ".repeat(BAR - filled.min(BAR))),
            Span::raw(format!(" {n:>7} {:>5.1}%", share * 100.0)),
        ]));
    }
    let mut codes: Vec<_> = r.status_codes.iter().collect();
    codes.sort_by(|a, b| b.count.cmp(&a.count).then(a.status.cmp(&b.status)));
    let top: Vec<String> = codes
        .iter()
        .take(6)
        .map(|c| format!("{} {}", c.status, c.count))
        .collect();
    if !top.is_empty() {
        lines.push(Line::raw(""));
        lines.push(Line::raw(top.join("  ")));
    }
    Paragraph::new(lines)
        .block(Block::bordered().title(" status mix "))
        .render(area, buf);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::Options;
    use crate::follow::{Follower, Start};

    fn screen(snap: &Snapshot, w: u16, h: u16) -> String {
        let mut t = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
        t.draw(|f| f.render_widget(SnapshotView::new(snap), f.area()))
            .expect("draw");
        let buf = t.backend().buffer();
        (0..h)
            .map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect::<String>() + "\n")
            .collect()
    }

    #[test]
    fn the_dashboard_shows_totals_status_classes_tables_and_file_states() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("app.log");
        let later = dir.path().join("later.log");
        let mut text = String::new();
        for (i, status) in [200, 200, 200, 404, 503].iter().enumerate() {
            text.push_str(&format!(
                "2024-03-01 12:00:0{i} ip=10.0.0.{i} path=/p{i} status={status} time=3ms\n"
            ));
        }
        std::fs::write(&log, text).expect("write");
        let mut f =
            Follower::new([&log, &later], Options::default(), Start::Beginning).expect("follower");
        f.poll().expect("poll");
        let snap = Snapshot::new(&f, Duration::from_secs(65), 5, 5.0);
        let s = screen(&snap, 140, 30);
        for want in [
            "+1:05",
            "lines 5",
            "(+5, 5/s)",
            "requests 5",
            "errors 2 (40.0%)",
            "2xx",
            "5xx",
            "60.0%",
            "/p3",
            "10.0.0.4",
            "following",
            "waiting",
            "later.log",
        ] {
            assert!(s.contains(want), "{want:?} missing from\n{s}");
        }
    }

    #[test]
    fn the_header_shows_the_panels_headlines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("access.log");
        std::fs::write(
            &log,
            concat!(
                "1.2.3.4 - - [01/Mar/2024:12:00:00 +0000] \"GET /a HTTP/1.1\" 200 2048 \"-\" \"curl/8\"\n",
                "1.2.3.4 - - [01/Mar/2024:12:00:01 +0000] \"GET /gone HTTP/1.1\" 404 0 \"-\" \"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)\"\n",
            ),
        )
        .expect("write");
        let mut f = Follower::new([&log], Options::default(), Start::Beginning).expect("follower");
        f.poll().expect("poll");
        let snap = Snapshot::new(&f, Duration::from_secs(1), 2, 2.0);
        let s = screen(&snap, 140, 30);
        for want in [
            "bandwidth 2.0 KiB",
            "visitors 1",
            "top 404 /gone (1)",
            "crawlers 50.0%",
        ] {
            assert!(s.contains(want), "{want:?} missing from\n{s}");
        }
    }

    #[test]
    fn a_tiny_terminal_is_drawn_without_panicking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = Follower::new([dir.path().join("x.log")], Options::default(), Start::End)
            .expect("follower");
        let snap = Snapshot::new(&f, Duration::ZERO, 0, 0.0);
        for (w, h) in [(1, 1), (10, 3), (40, 12)] {
            let _ = screen(&snap, w, h);
        }
    }
}
