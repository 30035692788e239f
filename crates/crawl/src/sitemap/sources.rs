//! The scheduler's side of sitemaps: which documents to queue, each at most once, within the
//! limits. Only the scheduler touches it, so it needs no locks.

use std::collections::HashSet;

use url::Url;

use super::{SitemapError, SitemapFailure, SitemapLimits};
use crate::frontier::{Job, JobKind};
use crate::robots::Robots;
use crate::url::{host_key, normalize};

#[derive(Debug)]
pub(crate) struct Sources {
    limits: SitemapLimits,
    /// Seed hosts (`host_key`) whose sitemaps are not queued yet.
    waiting: HashSet<String>,
    /// Every sitemap URL queued (normalised), so none is read twice and index loops end.
    seen: HashSet<String>,
    /// Documents queued so far, against `limits.documents`.
    queued: usize,
}

impl Sources {
    /// Sources for these seeds; none at all when sitemaps are off.
    pub(crate) fn new(enabled: bool, seeds: &[Url], limits: SitemapLimits) -> Self {
        Sources {
            limits,
            waiting: if enabled {
                seeds.iter().map(host_key).collect()
            } else {
                HashSet::new()
            },
            seen: HashSet::new(),
            queued: 0,
        }
    }

    /// The level-0 documents of the seed host at `origin`, once its robots.txt is known (or
    /// is not read: `robots` is `None`): its `Sitemap:` lines, or else `/sitemap.xml`. Nothing
    /// for a host that is not a seed's or was handled already. A failure if the document
    /// limit left some out.
    pub(crate) fn for_host(
        &mut self,
        origin: &Url,
        robots: Option<&Robots>,
    ) -> (Vec<Job>, Option<SitemapFailure>) {
        if !self.waiting.remove(&host_key(origin)) {
            return (Vec::new(), None);
        }
        let mut listed: Vec<Url> = robots
            .map(Robots::sitemaps)
            .unwrap_or_default()
            .iter()
            .filter_map(|line| origin.join(line.trim()).ok().and_then(normalize))
            .collect();
        if listed.is_empty()
            && let Ok(default) = origin.join("/sitemap.xml")
        {
            listed.push(default);
        }
        let robots_url = origin
            .join("/robots.txt")
            .unwrap_or_else(|_| origin.clone());
        self.admit(&robots_url, 0, listed)
    }

    /// The level-0 documents of every seed host, when robots.txt is not read.
    pub(crate) fn without_robots(&mut self) -> (Vec<Job>, Vec<SitemapFailure>) {
        let mut origins: Vec<Url> = self
            .waiting
            .iter()
            .filter_map(|key| Url::parse(key).ok())
            .collect();
        origins.sort();
        let mut jobs = Vec::new();
        let mut failures = Vec::new();
        for origin in origins {
            let (more, failure) = self.for_host(&origin, None);
            jobs.extend(more);
            failures.extend(failure);
        }
        (jobs, failures)
    }

    /// The sitemaps that the index at `index` (level `level`) lists, one level down. A failure
    /// if the nesting or document limit left some out.
    pub(crate) fn listed_by_index(
        &mut self,
        index: &Url,
        level: u32,
        listed: Vec<Url>,
    ) -> (Vec<Job>, Option<SitemapFailure>) {
        let limit = self.limits.get_nesting();
        if level >= limit {
            let skipped = listed
                .iter()
                .filter(|url| !self.seen.contains(url.as_str()))
                .count();
            let failure = (skipped > 0).then(|| {
                SitemapFailure::new(index.to_string(), SitemapError::TooDeep { limit, skipped })
            });
            return (Vec::new(), failure);
        }
        self.admit(index, level + 1, listed)
    }

    /// A redirect of a sitemap to another host: queued unless that URL was queued already.
    pub(crate) fn redirect(&mut self, job: Job) -> Option<Job> {
        self.seen.insert(job.url.as_str().to_owned()).then_some(job)
    }

    /// Queues the new ones of `listed` at `level`, up to the document limit.
    fn admit(
        &mut self,
        lister: &Url,
        level: u32,
        listed: Vec<Url>,
    ) -> (Vec<Job>, Option<SitemapFailure>) {
        let limit = self.limits.get_documents().get();
        let mut jobs = Vec::new();
        let mut skipped = 0;
        for url in listed {
            if self.seen.contains(url.as_str()) {
                continue;
            }
            if self.queued >= limit {
                skipped += 1;
                continue;
            }
            self.seen.insert(url.as_str().to_owned());
            self.queued += 1;
            jobs.push(Job {
                url,
                depth: 0,
                redirects: 0,
                kind: JobKind::Sitemap { level },
            });
        }
        let failure = (skipped > 0).then(|| {
            SitemapFailure::new(
                lister.to_string(),
                SitemapError::DocumentLimit { limit, skipped },
            )
        });
        (jobs, failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroUsize;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("test url")
    }

    fn urls(jobs: &[Job]) -> Vec<&str> {
        jobs.iter().map(|j| j.url.as_str()).collect()
    }

    #[test]
    fn robots_lines_come_first_and_sitemap_xml_is_the_fallback_once_per_seed_host() {
        let seeds = [
            url("http://a.test/x"),
            url("http://a.test/y"),
            url("http://b.test/"),
        ];
        let mut sources = Sources::new(true, &seeds, SitemapLimits::default());
        let robots = Robots::parse(
            "weft",
            b"User-agent: *\nDisallow:\nSitemap: http://a.test/s.xml.gz\nSitemap: /rel.xml\n",
        );
        let (jobs, failure) = sources.for_host(&url("http://a.test/"), Some(&robots));
        assert_eq!(
            urls(&jobs),
            ["http://a.test/s.xml.gz", "http://a.test/rel.xml"]
        );
        assert!(failure.is_none());
        assert!(
            sources
                .for_host(&url("http://a.test/"), Some(&robots))
                .0
                .is_empty(),
            "a host's sources are queued once"
        );
        let (jobs, _) = sources.for_host(&url("http://b.test/"), Some(&Robots::AllowAll));
        assert_eq!(urls(&jobs), ["http://b.test/sitemap.xml"]);
        assert!(
            sources.for_host(&url("http://c.test/"), None).0.is_empty(),
            "not a seed host"
        );
    }

    #[test]
    fn nothing_is_queued_when_sitemaps_are_off() {
        let mut sources = Sources::new(false, &[url("http://a.test/")], SitemapLimits::default());
        assert!(sources.without_robots().0.is_empty());
    }

    #[test]
    fn an_index_leads_one_level_down_once_per_url_within_both_limits() {
        let limits = SitemapLimits::default()
            .nesting(1)
            .documents(NonZeroUsize::new(3).expect("3"));
        let mut sources = Sources::new(true, &[url("http://a.test/")], limits);
        let (jobs, _) = sources.without_robots();
        assert_eq!(urls(&jobs), ["http://a.test/sitemap.xml"]);
        let index = url("http://a.test/sitemap.xml");
        let listed = vec![
            index.clone(),
            url("http://a.test/1.xml"),
            url("http://a.test/2.xml"),
            url("http://a.test/3.xml"),
        ];
        let (jobs, failure) = sources.listed_by_index(&index, 0, listed);
        assert_eq!(urls(&jobs), ["http://a.test/1.xml", "http://a.test/2.xml"]);
        assert_eq!(jobs[0].kind, JobKind::Sitemap { level: 1 });
        assert_eq!(
            failure.map(|f| f.error),
            Some(SitemapError::DocumentLimit {
                limit: 3,
                skipped: 1
            })
        );
        let (jobs, failure) = sources.listed_by_index(
            &url("http://a.test/1.xml"),
            1,
            vec![url("http://a.test/deeper.xml"), url("http://a.test/2.xml")],
        );
        assert!(jobs.is_empty());
        assert_eq!(
            failure.map(|f| f.error),
            Some(SitemapError::TooDeep {
                limit: 1,
                skipped: 1
            })
        );
    }
}
