//! The addresses a crawl never requests: link-local networks and cloud metadata services, where a
//! hostile page or redirect could make the crawler fetch a machine's credentials (blind SSRF).
//!
//! Every request is checked twice: its URL before it is sent (IP literals and the metadata
//! services' host names), and each address a host name resolves to (see [`GuardedResolver`]), so
//! that a name pointing at `169.254.169.254` is refused as well. A seed that itself names such a
//! host exempts that host: the user asked for it.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};

use url::{Host, Url};

/// Host names of cloud metadata services (lowercase, without a trailing dot).
const METADATA_NAMES: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "metadata.azure.com",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.tencentyun.com",
    "metadata.packet.net",
];

/// Whether `ip` is link-local (`169.254.0.0/16`, `fe80::/10`) or a metadata service address
/// (AWS's IPv6 `fd00:ec2::254`, Alibaba's `100.100.100.200`), also as an IPv4-mapped IPv6
/// address.
pub(crate) fn is_blocked_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_blocked_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_blocked_v4(v4);
            }
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6 == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)
        }
    }
}

fn is_blocked_v4(ip: Ipv4Addr) -> bool {
    ip.is_link_local() || ip == Ipv4Addr::new(100, 100, 100, 200)
}

/// Whether `name` is a metadata service's host name.
pub(crate) fn is_metadata_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    METADATA_NAMES.contains(&name.as_str())
}

/// The hosts the crawl must not request, and the ones its seeds exempt.
#[derive(Debug, Clone, Default)]
pub(crate) struct Guard {
    /// Host names and addresses (as `Url::host_str` gives them) a seed named. Shared with the
    /// client's resolver, which is built once per crawler.
    exempt: Arc<RwLock<HashSet<String>>>,
}

impl Guard {
    /// Exempts the hosts of these seeds (only those that would be blocked matter).
    pub(crate) fn exempt_seeds<'a>(&self, seeds: impl IntoIterator<Item = &'a Url>) {
        let mut exempt = self.exempt.write().unwrap_or_else(PoisonError::into_inner);
        for seed in seeds {
            if let Some(host) = seed.host_str() {
                exempt.insert(host.to_ascii_lowercase());
            }
        }
    }

    fn is_exempt(&self, host: &str) -> bool {
        self.exempt
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(host)
    }

    /// Whether `url` may be requested: false for a link-local or metadata address or name
    /// that no seed named.
    pub(crate) fn allows(&self, url: &Url) -> bool {
        let blocked = match url.host() {
            Some(Host::Ipv4(ip)) => is_blocked_ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => is_blocked_ip(IpAddr::V6(ip)),
            Some(Host::Domain(name)) => is_metadata_name(name),
            None => false,
        };
        !blocked || url.host_str().is_some_and(|h| self.is_exempt(h))
    }

    /// The addresses of `name` that may be connected to (all of them when a seed named it).
    fn filter(&self, name: &str, addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
        if self.is_exempt(&name.to_ascii_lowercase()) {
            return addrs;
        }
        addrs
            .into_iter()
            .filter(|a| !is_blocked_ip(a.ip()))
            .collect()
    }
}

/// The crawler's DNS resolver: the system's (`getaddrinfo` on a blocking thread, as reqwest's
/// default), minus the addresses [`Guard`] blocks. A name that resolves only to blocked
/// addresses fails to resolve.
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver(pub(crate) Guard);

/// Why a name was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0} resolves only to link-local or cloud metadata addresses, which are never crawled")]
struct BlockedName(String);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = guard.filter(&host, addrs);
            if allowed.is_empty() {
                return Err(Box::new(BlockedName(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn link_local_and_metadata_addresses_are_blocked() {
        for s in [
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.0.1/",
            "http://[fe80::1]/",
            "http://[febf::1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.google.internal./",
            "http://metadata/",
        ] {
            assert!(!Guard::default().allows(&url(s)), "{s} must be blocked");
        }
        for s in [
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://169.255.0.1/",
            "http://[fec0::1]/",
            "http://example.com/",
            "http://metadata.example.com/",
        ] {
            assert!(Guard::default().allows(&url(s)), "{s} must be allowed");
        }
    }

    #[test]
    fn a_seed_exempts_its_own_host_only() {
        let guard = Guard::default();
        guard.exempt_seeds([&url("http://169.254.169.254/")]);
        assert!(guard.allows(&url("http://169.254.169.254/other")));
        assert!(!guard.allows(&url("http://169.254.0.1/")));
        assert!(!guard.allows(&url("http://metadata.google.internal/")));
    }

    #[test]
    fn resolved_link_local_addresses_are_dropped_unless_exempt() {
        let addrs: Vec<SocketAddr> = vec![
            "169.254.169.254:0".parse().unwrap(),
            "10.0.0.1:0".parse().unwrap(),
        ];
        let guard = Guard::default();
        assert_eq!(
            guard.filter("rebind.test", addrs.clone()),
            ["10.0.0.1:0".parse().unwrap()]
        );
        guard.exempt_seeds([&url("http://rebind.test/")]);
        assert_eq!(guard.filter("rebind.test", addrs.clone()), addrs);
    }
}
