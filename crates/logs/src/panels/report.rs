//! The panels as the report shows them, and as generic tables every renderer can lay out.

use std::fmt;

use serde::Serialize;

use super::Panel;
use super::count::{PanelTotals, TextEntry, TextTable, seen};
use crate::aggregate::{HLL_STD_ERROR, client_text};
use crate::report::{human_bytes, top_by_count};
use crate::time::format_utc;

/// The panels of a report. A panel is `None` when it was not asked for (see
/// [`PanelSet`](super::PanelSet)) or when no line carried its field; [`Panels::unavailable`]
/// then says which and why. Top tables are exact while their keys fit the memory budget, and
/// carry the heavy-hitters bound past it, as the core tables do.
///
/// ```
/// use weft_logs::{Input, Options, analyze};
/// use weft_core::context::Context;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let data = br#"1.2.3.4 - - [01/Mar/2024:12:00:00 +0000] "GET /a.css HTTP/1.1" 200 100 "https://ex.com/x" "curl/8"
/// 1.2.3.4 - - [01/Mar/2024:13:00:00 +0000] "GET /missing HTTP/1.1" 404 20 "-" "curl/8"
/// "#.to_vec();
/// let r = analyze(&Context::background(), vec![Input::Bytes { name: "a".into(), data }], Options::default()).await?;
/// let p = &r.panels;
/// assert_eq!(p.bandwidth.as_ref().map(|b| b.total_bytes), Some(120));
/// assert_eq!(p.visitors.as_ref().map(|v| v.total), Some(1));
/// assert_eq!(p.not_found.as_ref().map(|t| t.rows[0].key.as_str()), Some("/missing"));
/// assert_eq!(p.static_files.as_ref().map(|s| s.static_requests), Some(1));
/// assert_eq!(p.referring_sites.as_ref().map(|t| t.rows[0].key.as_str()), Some("ex.com"));
/// assert_eq!(p.hours.as_ref().map(|h| (h[12], h[13])), Some((1, 1)));
/// assert!(p.vhosts.is_none(), "the Combined format has no virtual host");
/// assert!(p.tables().iter().any(|t| t.id == "not-found"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct Panels {
    /// Response bytes in total, per path and per client.
    pub bandwidth: Option<BandwidthPanel>,
    /// Unique visitors per day.
    pub visitors: Option<VisitorsPanel>,
    /// Paths answered 404, by requests.
    pub not_found: Option<TopTable>,
    /// Static files against dynamic requests.
    pub static_files: Option<StaticPanel>,
    /// Referrer URLs (`-` and empty left out), by requests.
    pub referrers: Option<TopTable>,
    /// The host part of the referrers, by requests.
    pub referring_sites: Option<TopTable>,
    /// Browsers, operating systems, device categories and crawlers.
    pub agents: Option<AgentsPanel>,
    /// Requests by hour of the day (UTC), 24 counts from 00:00.
    pub hours: Option<Vec<u64>>,
    /// Requests and bytes per virtual host.
    pub vhosts: Option<TopTable>,
    /// Panels asked for that have nothing to show, each with the reason.
    pub unavailable: Vec<String>,
}

/// Response bytes.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct BandwidthPanel {
    /// Bytes over all requests that state a size (`-` counts 0).
    pub total_bytes: u64,
    /// Requests that state a size.
    pub sized_requests: u64,
    /// Paths by bytes (`requests` counts those made while the path was tracked).
    pub per_path: TopTable,
    /// Client addresses by bytes.
    pub per_client: TopTable,
}

/// A top-N table under the memory budget.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TopTable {
    /// The rows, largest first, ties by key.
    pub rows: Vec<KeyCount>,
    /// The most a row's ranked figure (`requests`, or `bytes` for bandwidth tables) can exceed
    /// the true one: 0 while every key fits the budget (Misra-Gries/Space-Saving bound).
    pub max_overcount: u64,
    /// Distinct keys held (all of them while `max_overcount` is 0).
    pub tracked: usize,
}

/// A row of a [`TopTable`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct KeyCount {
    /// The path, address, URL or host (invalid UTF-8 replaced).
    pub key: String,
    /// Requests.
    pub requests: u64,
    /// Response bytes, where the table counts them.
    pub bytes: Option<u64>,
}

/// Unique visitors: requests with the same client address, day (UTC) and user agent count
/// once, and 4xx responses are not visits, as GoAccess counts them by default (its
/// `--4xx-to-unique-count` is off). GoAccess takes the day from the log's own time zone; the
/// figures agree on logs written in UTC.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct VisitorsPanel {
    /// The sum over the days (a visitor on two days counts twice, as in GoAccess).
    pub total: u64,
    /// Whether the counts are exact; else HyperLogLog estimates with `error` relative standard
    /// error each.
    pub exact: bool,
    /// The relative standard error of an estimated day (0.81%).
    pub error: f64,
    /// Per day, in date order.
    pub days: Vec<DayVisitors>,
    /// Visitor keys left out because their day did not fit the budget's room for days.
    pub days_dropped: u64,
}

/// One day's unique visitors.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct DayVisitors {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Unique visitors.
    pub visitors: u64,
}

/// Static files against dynamic requests, by the path's extension.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StaticPanel {
    /// Requests for a path with a static extension.
    pub static_requests: u64,
    /// Their response bytes.
    pub static_bytes: u64,
    /// The other requests.
    pub dynamic_requests: u64,
    /// Their response bytes.
    pub dynamic_bytes: u64,
}

/// User agents by family.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct AgentsPanel {
    /// Requests per browser (crawlers by name too), most first.
    pub browsers: Vec<AgentCount>,
    /// Requests per operating system.
    pub systems: Vec<AgentCount>,
    /// Requests per category: `pc`, `smartphone`, `mobilephone`, `crawler`, `appliance`,
    /// `misc`, `UNKNOWN`.
    pub categories: Vec<AgentCount>,
    /// Requests per crawler or bot.
    pub crawlers: Vec<AgentCount>,
}

/// Requests of one family.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct AgentCount {
    /// The family's name as woothee gives it.
    pub name: String,
    /// Requests.
    pub requests: u64,
    /// Share of the requests with a user agent (0 to 1).
    pub share: f64,
}

/// A panel laid out as a table, for any renderer (text, HTML, a terminal dashboard).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Table {
    /// A stable identifier (`bandwidth-paths`, `visitors`, `not-found`, ...).
    pub id: &'static str,
    /// The heading.
    pub title: String,
    /// A sentence to show under the heading (exactness, error bound), if any.
    pub note: Option<String>,
    /// Column names; the last column is the key for most tables.
    pub columns: Vec<&'static str>,
    /// The rows, in display order.
    pub rows: Vec<Vec<Cell>>,
}

/// A table cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Cell {
    /// Text from the input (render it escaped).
    Text(String),
    /// A count.
    Count(u64),
    /// A number of bytes (shown as KiB, MiB, ...).
    Bytes(u64),
    /// A share from 0 to 1 (shown as a percentage).
    Share(f64),
    /// Milliseconds, if there is a value (shown as `-` when not; sorts below every value).
    Millis(Option<f64>),
}

impl Cell {
    /// The value to sort by, for numbers.
    #[must_use]
    pub fn number(&self) -> Option<f64> {
        match self {
            Cell::Text(_) => None,
            Cell::Count(n) | Cell::Bytes(n) => Some(*n as f64),
            Cell::Share(s) => Some(*s),
            Cell::Millis(ms) => Some(ms.unwrap_or(-1.0)),
        }
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Text(t) => f.write_str(t),
            Cell::Count(n) => write!(f, "{n}"),
            Cell::Bytes(n) => f.write_str(&human_bytes(*n)),
            Cell::Share(s) => write!(f, "{:.2}%", s * 100.0),
            Cell::Millis(Some(ms)) => f.write_str(&crate::report::fmt_ms(*ms)),
            Cell::Millis(None) => f.write_str("-"),
        }
    }
}

fn overcount_note(max: u64, what: &str) -> Option<String> {
    (max > 0).then(|| {
        format!(
            "more distinct {what} than fit the memory budget: figures are upper bounds, each at \
             most {max} above the true one (Misra-Gries/Space-Saving summary)"
        )
    })
}

impl Panels {
    /// Every panel the report has, as tables in report order.
    #[must_use]
    pub fn tables(&self) -> Vec<Table> {
        let mut out = Vec::new();
        if let Some(b) = &self.bandwidth {
            out.push(Table {
                id: "bandwidth",
                title: "Bandwidth".into(),
                note: None,
                columns: vec!["bytes", "sized requests"],
                rows: vec![vec![
                    Cell::Bytes(b.total_bytes),
                    Cell::Count(b.sized_requests),
                ]],
            });
            out.push(top_table(
                "bandwidth-paths",
                "Bandwidth by path",
                &b.per_path,
                "paths",
                "path",
            ));
            out.push(top_table(
                "bandwidth-clients",
                "Bandwidth by client address",
                &b.per_client,
                "clients",
                "address",
            ));
        }
        if let Some(v) = &self.visitors {
            let mut note = format!("{} visitor-days in total", v.total);
            if !v.exact {
                note.push_str(&format!(
                    "; estimated (HyperLogLog, {:.2}% standard error per day)",
                    v.error * 100.0
                ));
            }
            if v.days_dropped > 0 {
                note.push_str(&format!(
                    "; {} visitors on days that did not fit the budget are left out",
                    v.days_dropped
                ));
            }
            out.push(Table {
                id: "visitors",
                title: "Unique visitors per day (same address, day and user agent)".into(),
                note: Some(note),
                columns: vec!["visitors", "day"],
                rows: v
                    .days
                    .iter()
                    .map(|d| vec![Cell::Count(d.visitors), Cell::Text(d.day.clone())])
                    .collect(),
            });
        }
        if let Some(t) = &self.not_found {
            out.push(top_table(
                "not-found",
                "Not found (404)",
                t,
                "paths",
                "path",
            ));
        }
        if let Some(s) = &self.static_files {
            out.push(Table {
                id: "static",
                title: "Static and dynamic requests".into(),
                note: None,
                columns: vec!["requests", "bytes", "kind"],
                rows: vec![
                    vec![
                        Cell::Count(s.static_requests),
                        Cell::Bytes(s.static_bytes),
                        Cell::Text("static".into()),
                    ],
                    vec![
                        Cell::Count(s.dynamic_requests),
                        Cell::Bytes(s.dynamic_bytes),
                        Cell::Text("dynamic".into()),
                    ],
                ],
            });
        }
        if let Some(t) = &self.referrers {
            out.push(top_table(
                "referrers",
                "Referrers",
                t,
                "referrers",
                "referrer",
            ));
        }
        if let Some(t) = &self.referring_sites {
            out.push(top_table(
                "referring-sites",
                "Referring sites",
                t,
                "sites",
                "site",
            ));
        }
        if let Some(a) = &self.agents {
            for (id, title, list) in [
                ("browsers", "Browsers", &a.browsers),
                ("systems", "Operating systems", &a.systems),
                ("categories", "Device categories", &a.categories),
                ("crawlers", "Crawlers and bots", &a.crawlers),
            ] {
                out.push(Table {
                    id,
                    title: title.into(),
                    note: None,
                    columns: vec!["requests", "share", "name"],
                    rows: list
                        .iter()
                        .map(|c| {
                            vec![
                                Cell::Count(c.requests),
                                Cell::Share(c.share),
                                Cell::Text(c.name.clone()),
                            ]
                        })
                        .collect(),
                });
            }
        }
        if let Some(h) = &self.hours {
            out.push(Table {
                id: "hours",
                title: "Requests by hour of day (UTC)".into(),
                note: None,
                columns: vec!["requests", "hour"],
                rows: h
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| vec![Cell::Count(n), Cell::Text(format!("{i:02}:00"))])
                    .collect(),
            });
        }
        if let Some(t) = &self.vhosts {
            out.push(top_table("vhosts", "Virtual hosts", t, "hosts", "host"));
        }
        out
    }
}

fn top_table(id: &'static str, title: &str, t: &TopTable, what: &str, key: &'static str) -> Table {
    let with_bytes = t.rows.iter().any(|r| r.bytes.is_some());
    let columns = if with_bytes {
        vec!["requests", "bytes", key]
    } else {
        vec!["requests", key]
    };
    Table {
        id,
        title: title.into(),
        note: overcount_note(t.max_overcount, what),
        columns,
        rows: t
            .rows
            .iter()
            .map(|r| {
                let mut row = vec![Cell::Count(r.requests)];
                if with_bytes {
                    row.push(Cell::Bytes(r.bytes.unwrap_or(0)));
                }
                row.push(Cell::Text(r.key.clone()));
                row
            })
            .collect(),
    }
}

/// A table of texts ranked by weight; `bytes_ranked` when the weight is bytes.
fn text_table(t: TextTable, top: usize, bytes_ranked: bool, with_bytes: bool) -> TopTable {
    let over = t.table.max_overcount();
    let tracked = t.table.len();
    let items: Vec<(Box<[u8]>, TextEntry)> = t
        .table
        .map
        .values()
        .map(|e| (t.text(e).into(), e.clone()))
        .collect();
    let rows = top_by_count(items, |e| e.weight, top)
        .into_iter()
        .map(|(k, e)| KeyCount {
            key: String::from_utf8_lossy(&k).into_owned(),
            requests: if bytes_ranked {
                e.hits
            } else {
                e.weight + over
            },
            bytes: if bytes_ranked {
                Some(e.weight + over)
            } else {
                with_bytes.then_some(e.bytes)
            },
        })
        .collect();
    TopTable {
        rows,
        max_overcount: over,
        tracked,
    }
}

fn families(map: &crate::heavy::FastMap<u16, u64>, t: &PanelTotals, total: u64) -> Vec<AgentCount> {
    let mut v: Vec<AgentCount> = map
        .iter()
        .map(|(&id, &n)| AgentCount {
            name: t.classifier.name(id).to_string(),
            requests: n,
            share: if total == 0 {
                0.0
            } else {
                n as f64 / total as f64
            },
        })
        .collect();
    v.sort_by(|a, b| {
        b.requests
            .cmp(&a.requests)
            .then_with(|| a.name.cmp(&b.name))
    });
    v
}

pub(crate) fn build(t: PanelTotals, top: usize, requests: u64) -> Panels {
    let mut p = Panels::default();
    if requests == 0 {
        return p;
    }
    let set = t.set;
    let has = |bit: u8| t.seen & bit != 0;
    let mut unavailable = Vec::new();
    let mut missing = |panel: Panel, why: &str| {
        if set.contains(panel) {
            unavailable.push(format!("{panel}: {why}"));
        }
    };
    // The panels that read the whole totals first; the tables are then moved out.
    if set.contains(Panel::Visitors) && has(seen::TIME) && has(seen::CLIENT) {
        let days: Vec<DayVisitors> = t
            .days
            .iter()
            .map(|(&day, d)| DayVisitors {
                day: format_utc(day * 86_400)[..10].to_string(),
                visitors: t.day_visitors(d),
            })
            .collect();
        p.visitors = Some(VisitorsPanel {
            total: days.iter().map(|d| d.visitors).sum(),
            exact: t.visitors_exact,
            error: HLL_STD_ERROR,
            days,
            days_dropped: t.days_dropped,
        });
    } else {
        missing(
            Panel::Visitors,
            "the lines need a client address and a timestamp",
        );
    }
    if set.contains(Panel::Agents) && has(seen::AGENT) {
        let total: u64 = t.categories.values().sum();
        p.agents = Some(AgentsPanel {
            browsers: families(&t.browsers, &t, total),
            systems: families(&t.systems, &t, total),
            categories: families(&t.categories, &t, total),
            crawlers: families(&t.crawlers, &t, total),
        });
    } else {
        missing(Panel::Agents, "no line carried a user agent");
    }
    if set.contains(Panel::Hours) && has(seen::TIME) {
        p.hours = Some(t.hours.to_vec());
    } else {
        missing(Panel::Hours, "no line had a timestamp");
    }
    if set.contains(Panel::Static) {
        p.static_files = Some(StaticPanel {
            static_requests: t.static_requests,
            static_bytes: t.static_bytes,
            dynamic_requests: requests - t.static_requests.min(requests),
            dynamic_bytes: t.bytes.saturating_sub(t.static_bytes),
        });
    }
    let (bytes_seen, referer_seen, vhost_seen) =
        (has(seen::BYTES), has(seen::REFERER), has(seen::VHOST));
    if set.contains(Panel::Bandwidth) && bytes_seen {
        let mut bw_clients = t.bw_clients;
        let over = bw_clients.max_overcount();
        let tracked = bw_clients.len();
        // (address text, (bytes, requests))
        type Row = (Box<[u8]>, (u64, u64));
        let clients: Vec<Row> = bw_clients
            .map
            .drain()
            .map(|(key, c)| {
                let text = c
                    .text
                    .unwrap_or_else(|| client_text(key).into_bytes().into_boxed_slice());
                (text, (c.bytes, c.hits))
            })
            .collect();
        let rows = top_by_count(clients, |c| c.0, top)
            .into_iter()
            .map(|(k, (bytes, hits))| KeyCount {
                key: String::from_utf8_lossy(&k).into_owned(),
                requests: hits,
                bytes: Some(bytes + over),
            })
            .collect();
        p.bandwidth = Some(BandwidthPanel {
            total_bytes: t.bytes,
            sized_requests: t.sized,
            per_path: text_table(t.bw_paths, top, true, true),
            per_client: TopTable {
                rows,
                max_overcount: over,
                tracked,
            },
        });
    } else {
        missing(Panel::Bandwidth, "no line stated a response size");
    }
    if set.contains(Panel::NotFound) {
        p.not_found = Some(text_table(t.not_found, top, false, false));
    }
    if set.contains(Panel::Referrers) && referer_seen {
        p.referrers = Some(text_table(t.referrers, top, false, false));
        p.referring_sites = Some(text_table(t.sites, top, false, false));
    } else {
        missing(Panel::Referrers, "no line carried a referrer");
    }
    if set.contains(Panel::Vhosts) && vhost_seen {
        p.vhosts = Some(text_table(t.vhosts, top, false, true));
    } else {
        missing(Panel::Vhosts, "no line named a virtual host");
    }
    p.unavailable = unavailable;
    p
}
