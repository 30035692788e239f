//! A host's robots.txt verdict, parsed by `texting_robots` (RFC 9309 rules, wildcards,
//! longest match wins).

use url::Url;

/// What robots.txt says for one host.
pub(crate) enum Robots {
    /// No robots.txt (4xx), robots are ignored, or it could not be parsed.
    AllowAll,
    /// The server failed (5xx): RFC 9309 says to assume everything is disallowed.
    DisallowAll,
    /// The parsed rules for our user agent.
    Rules(texting_robots::Robot),
}

impl std::fmt::Debug for Robots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Robots::AllowAll => f.write_str("AllowAll"),
            Robots::DisallowAll => f.write_str("DisallowAll"),
            Robots::Rules(r) => f.debug_tuple("Rules").field(r).finish(),
        }
    }
}

impl Robots {
    /// Parses a robots.txt body for `agent`; an unparsable file allows everything.
    pub(crate) fn parse(agent: &str, body: &[u8]) -> Self {
        match texting_robots::Robot::new(agent, body) {
            Ok(robot) => Robots::Rules(robot),
            Err(_) => Robots::AllowAll,
        }
    }

    pub(crate) fn allows(&self, url: &Url) -> bool {
        match self {
            Robots::AllowAll => true,
            Robots::DisallowAll => false,
            Robots::Rules(r) => r.allowed(url.as_str()),
        }
    }

    /// The `Sitemap:` lines, as written (they belong to no user-agent group).
    pub(crate) fn sitemaps(&self) -> &[String] {
        match self {
            Robots::Rules(r) => &r.sitemaps,
            _ => &[],
        }
    }

    /// The `Crawl-delay` in seconds, if given and positive.
    pub(crate) fn crawl_delay(&self) -> Option<f32> {
        match self {
            Robots::Rules(r) => r.delay.filter(|d| d.is_finite() && *d > 0.0),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// robots.txt-ish lines, some well formed, some not.
    fn robots_text() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                Just(b"User-agent: *\n".to_vec()),
                Just(b"User-agent: weft\n".to_vec()),
                Just(b"Disallow: /private/\n".to_vec()),
                Just(b"Disallow: /*.pdf$\n".to_vec()),
                Just(b"Allow: /private/ok\n".to_vec()),
                Just(b"Crawl-delay: 1e30\n".to_vec()),
                Just(b"Crawl-delay: -5\n".to_vec()),
                Just(b"Crawl-delay: NaN\n".to_vec()),
                Just(b"Sitemap: http://h.test/s.xml\n".to_vec()),
                Just(b"Disallow: /\xff\xfe%zz*$$**\n".to_vec()),
                "[ -~]{0,30}\n".prop_map(String::into_bytes),
                proptest::collection::vec(any::<u8>(), 0..30),
            ],
            0..30,
        )
        .prop_map(|lines| lines.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn any_robots_txt_parses_and_answers_without_panicking(
            body in robots_text(),
            path in "(/|[a-z]|\\.|%2F|\\*|\\$|\\?|=){0,20}",
        ) {
            let robots = Robots::parse("weft", &body);
            if let Ok(url) = Url::parse(&format!("http://h.test/{path}")) {
                let _ = robots.allows(&url);
            }
            if let Some(delay) = robots.crawl_delay() {
                prop_assert!(delay.is_finite() && delay > 0.0);
            }
        }
    }
}
