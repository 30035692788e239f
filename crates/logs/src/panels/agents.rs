//! User agents classified into browser, operating system and category (crawler, pc,
//! smartphone, ...) with `woothee` (its pattern set is the woothee project's, shared by its
//! Java, Ruby, Python, Go and Rust ports), cached by the agent's hash because a log repeats a
//! few thousand agents over millions of lines. BENCHMARKS.md says why woothee and not uaparser.

use crate::heavy::FastMap;

/// Distinct agents whose class is remembered; past it the cache starts over (about 24 bytes an
/// entry, so 1.5 MiB).
const CACHE_ENTRIES: usize = 1 << 16;

/// A class: indices into [`Classifier::names`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Class {
    pub(crate) browser: u16,
    pub(crate) os: u16,
    pub(crate) category: u16,
}

pub(crate) struct Classifier {
    parser: woothee::parser::Parser,
    cache: FastMap<u64, Class>,
    /// The names woothee returns (a few hundred at most), interned.
    names: Vec<Box<str>>,
    ids: FastMap<Box<str>, u16>,
}

/// A clone starts with the same cache; woothee's parser holds no state.
impl Clone for Classifier {
    fn clone(&self) -> Self {
        Classifier {
            parser: woothee::parser::Parser::new(),
            cache: self.cache.clone(),
            names: self.names.clone(),
            ids: self.ids.clone(),
        }
    }
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("cached", &self.cache.len())
            .field("names", &self.names.len())
            .finish_non_exhaustive()
    }
}

impl Classifier {
    pub(crate) fn new() -> Self {
        Classifier {
            parser: woothee::parser::Parser::new(),
            cache: FastMap::default(),
            names: Vec::new(),
            ids: FastMap::default(),
        }
    }

    fn intern(&mut self, name: &str) -> u16 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        // woothee's names are a fixed list; a cap keeps a surprise from growing the table.
        if self.names.len() >= usize::from(u16::MAX) {
            return 0;
        }
        let id = self.names.len() as u16;
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    /// The class of `agent`, whose hash is `hash`.
    pub(crate) fn classify(&mut self, hash: u64, agent: &[u8]) -> Class {
        if let Some(&c) = self.cache.get(&hash) {
            return c;
        }
        let text = String::from_utf8_lossy(agent);
        let (browser, os, category) = match self.parser.parse(&text) {
            Some(r) => (r.name, r.os, r.category),
            None => ("UNKNOWN", "UNKNOWN", "UNKNOWN"),
        };
        let (browser, os, category) = (browser.to_string(), os.to_string(), category.to_string());
        let c = Class {
            browser: self.intern(&browser),
            os: self.intern(&os),
            category: self.intern(&category),
        };
        if self.cache.len() >= CACHE_ENTRIES {
            self.cache.clear();
        }
        self.cache.insert(hash, c);
        c
    }

    pub(crate) fn name(&self, id: u16) -> &str {
        self.names.get(usize::from(id)).map_or("UNKNOWN", |n| n)
    }

    /// Bytes held, for the budget.
    pub(crate) const fn max_bytes() -> usize {
        CACHE_ENTRIES * 32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_systems_and_crawlers_are_told_apart() {
        let mut c = Classifier::new();
        let cases = [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
                ("Chrome", "Windows 10", "pc"),
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
                ("Safari", "iPhone", "smartphone"),
            ),
            (
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                ("Googlebot", "UNKNOWN", "crawler"),
            ),
            ("", ("UNKNOWN", "UNKNOWN", "UNKNOWN")),
        ];
        for (i, (ua, (b, o, cat))) in cases.iter().enumerate() {
            let class = c.classify(i as u64, ua.as_bytes());
            assert_eq!(
                (
                    c.name(class.browser),
                    c.name(class.os),
                    c.name(class.category)
                ),
                (*b, *o, *cat),
                "{ua}"
            );
            assert_eq!(c.classify(i as u64, b"ignored: cached by hash"), class);
        }
    }
}
