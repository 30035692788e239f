//! The panels GoAccess users open it for: bandwidth, unique visitors, the not-found list, static
//! against dynamic requests, referrers, user agents, requests by hour and virtual hosts.
//!
//! Each panel is counted in two levels like the core figures (see `aggregate`): a
//! [`count::PanelChunk`] per chunk on the worker, folded into [`count::PanelTotals`] whose
//! tables live under the memory budget (heavy-hitters tables with their over-count bound,
//! HyperLogLog for visitors past their room). [`Panels`] is what the report shows, and
//! [`Panels::tables`] lays every panel out as rows, so the text report, the HTML page and a
//! live view render whatever panels the report has the same way.

mod agents;
pub(crate) mod count;
pub(crate) mod report;

use std::fmt;
use std::str::FromStr;

use super::LogsError;

pub use report::{
    AgentCount, AgentsPanel, BandwidthPanel, Cell, DayVisitors, KeyCount, Panels, StaticPanel,
    Table, TopTable, VisitorsPanel,
};

/// One panel of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Panel {
    /// Response bytes in total, per path and per client (`bandwidth`).
    Bandwidth,
    /// Unique visitors per day: same client address, day and user agent (`visitors`).
    Visitors,
    /// The paths answered with 404 (`not-found`).
    NotFound,
    /// Static files against dynamic requests, by extension (`static`).
    Static,
    /// Referrer URLs and referring sites (`referrers`).
    Referrers,
    /// Browsers, operating systems and crawlers (`agents`).
    Agents,
    /// Requests by hour of the day, UTC (`hours`).
    Hours,
    /// Requests and bytes per virtual host (`vhosts`).
    Vhosts,
}

impl Panel {
    /// Every panel, in report order.
    pub const ALL: [Panel; 8] = [
        Panel::Bandwidth,
        Panel::Visitors,
        Panel::NotFound,
        Panel::Static,
        Panel::Referrers,
        Panel::Agents,
        Panel::Hours,
        Panel::Vhosts,
    ];

    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// The name used by `--panels`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Panel::Bandwidth => "bandwidth",
            Panel::Visitors => "visitors",
            Panel::NotFound => "not-found",
            Panel::Static => "static",
            Panel::Referrers => "referrers",
            Panel::Agents => "agents",
            Panel::Hours => "hours",
            Panel::Vhosts => "vhosts",
        }
    }
}

impl fmt::Display for Panel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which panels an analysis counts: `all` (the default), `none`, or a comma-separated list of
/// panel names.
///
/// ```
/// use weft_logs::{Panel, PanelSet};
/// let s: PanelSet = "bandwidth,agents".parse()?;
/// assert!(s.contains(Panel::Agents) && !s.contains(Panel::Visitors));
/// assert_eq!(PanelSet::default(), PanelSet::all());
/// assert!("none".parse::<PanelSet>()?.is_empty());
/// assert_eq!(s.to_string(), "bandwidth,agents");
/// assert!("bandwith".parse::<PanelSet>().is_err());
/// # Ok::<(), weft_logs::LogsError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PanelSet(u16);

impl PanelSet {
    /// Every panel.
    #[must_use]
    pub fn all() -> Self {
        Panel::ALL.iter().fold(PanelSet(0), |s, p| s.with(*p))
    }

    /// No panel: the plain report.
    #[must_use]
    pub fn none() -> Self {
        PanelSet(0)
    }

    /// This set and `p`.
    #[must_use]
    pub fn with(self, p: Panel) -> Self {
        PanelSet(self.0 | p.bit())
    }

    /// Whether `p` is counted.
    #[must_use]
    pub fn contains(self, p: Panel) -> bool {
        self.0 & p.bit() != 0
    }

    /// Whether no panel is counted.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn iter(self) -> impl Iterator<Item = Panel> {
        Panel::ALL.into_iter().filter(move |p| self.contains(*p))
    }
}

impl Default for PanelSet {
    fn default() -> Self {
        PanelSet::all()
    }
}

impl fmt::Debug for PanelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PanelSet({self})")
    }
}

impl fmt::Display for PanelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.iter().map(Panel::name).collect();
        f.write_str(&names.join(","))
    }
}

impl FromStr for PanelSet {
    type Err = LogsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "all" => return Ok(PanelSet::all()),
            "none" | "" => return Ok(PanelSet::none()),
            _ => {}
        }
        s.split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .try_fold(PanelSet::none(), |set, w| {
                let p = Panel::ALL
                    .into_iter()
                    .find(|p| p.name() == w)
                    .ok_or_else(|| {
                        let names: Vec<&str> = Panel::ALL.iter().map(|p| p.name()).collect();
                        LogsError::InvalidArgument(format!(
                            "unknown panel {w:?} (expected all, none, or a list of: {})",
                            names.join(", ")
                        ))
                    })?;
                Ok(set.with(p))
            })
    }
}

/// The extensions that make a request static by default (lowercase, without the dot): images,
/// styles, scripts, fonts, media, documents and archives, as GoAccess's default list has them.
pub const DEFAULT_STATIC_EXTENSIONS: &[&str] = &[
    "css", "js", "mjs", "map", "jpg", "jpeg", "png", "gif", "webp", "avif", "svg", "ico", "bmp",
    "tif", "tiff", "woff", "woff2", "ttf", "otf", "eot", "mp3", "mp4", "webm", "ogg", "ogv", "wav",
    "flac", "avi", "mov", "mkv", "pdf", "txt", "csv", "xml", "json", "zip", "gz", "tgz", "bz2",
    "xz", "7z", "rar", "tar", "iso", "dmg", "exe", "swf", "flv", "doc", "docx", "xls", "xlsx",
    "ppt", "pptx",
];

/// Whether `path`'s last segment has one of `exts` as its extension (ASCII case ignored).
pub(crate) fn is_static(path: &[u8], exts: &[Box<[u8]>]) -> bool {
    let last = &path[path.iter().rposition(|&c| c == b'/').map_or(0, |i| i + 1)..];
    let Some(dot) = last.iter().rposition(|&c| c == b'.') else {
        return false;
    };
    let ext = &last[dot + 1..];
    !ext.is_empty() && ext.len() <= 8 && exts.iter().any(|e| e.eq_ignore_ascii_case(ext))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_by_last_segment_extension() {
        let exts: Vec<Box<[u8]>> = DEFAULT_STATIC_EXTENSIONS
            .iter()
            .map(|e| e.as_bytes().into())
            .collect();
        assert!(is_static(b"/img/logo.PNG", &exts));
        assert!(is_static(b"/app.min.js", &exts));
        assert!(
            !is_static(b"/api/v1.2/users", &exts),
            "a dot in a directory"
        );
        assert!(!is_static(b"/index.php", &exts));
        assert!(!is_static(b"/", &exts));
        assert!(!is_static(b"/file.", &exts));
    }

    #[test]
    fn every_panel_name_parses_back() {
        for p in Panel::ALL {
            assert_eq!(
                p.name().parse::<PanelSet>().ok(),
                Some(PanelSet::none().with(p))
            );
        }
        assert_eq!(
            PanelSet::all().to_string().parse::<PanelSet>().ok(),
            Some(PanelSet::all())
        );
    }
}
