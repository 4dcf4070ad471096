//! Where the webhook channel may send: public addresses only. A webhook URL
//! that names (or resolves to) a loopback, private, link-local or other
//! internal address would let whoever controls it reach the cluster's
//! insides (a cloud's metadata endpoint at 169.254.169.254, say); such
//! addresses are refused unless `ORDERFLOW_WEBHOOK_ALLOW_PRIVATE` says
//! otherwise. The check is made where connections are made, on every
//! address a name resolves to, so a name that changes its answer between
//! two lookups gains nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether `ip` is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
}

/// A name that resolves to an address that is not public.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {ip}, which is not a public address (set ORDERFLOW_WEBHOOK_ALLOW_PRIVATE=true to allow it)")]
pub struct NotPublic {
    pub host: String,
    pub ip: IpAddr,
}

impl NotPublic {
    /// The refusal somewhere in `error`'s chain of causes, if it is one.
    pub fn in_chain<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a NotPublic> {
        let mut cause = Some(error);
        while let Some(e) = cause {
            if let Some(found) = e.downcast_ref::<NotPublic>() {
                return Some(found);
            }
            cause = e.source();
        }
        None
    }
}

/// A resolver for the webhook's HTTP client that refuses names resolving to
/// any address that is not public.
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(internal) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(Box::new(NotPublic {
                    host,
                    ip: internal.ip(),
                })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Why a webhook URL may not be used, if it names an address itself.
pub fn refuse_literal(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let ip = match parsed.host()? {
        url::Host::Ipv4(v4) => IpAddr::V4(v4),
        url::Host::Ipv6(v6) => IpAddr::V6(v6),
        url::Host::Domain("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
        url::Host::Domain(_) => return None,
    };
    (!is_public(ip)).then(|| format!("{ip} is not a public address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(internal.parse().unwrap()), "{internal}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn a_url_naming_an_internal_address_is_refused() {
        assert!(refuse_literal("http://127.0.0.1:9000/hook").is_some());
        assert!(refuse_literal("http://[::1]/hook").is_some());
        assert!(refuse_literal("http://localhost/hook").is_some());
        assert!(refuse_literal("http://169.254.169.254/latest/meta-data").is_some());
        assert_eq!(refuse_literal("https://hooks.example.com/x"), None);
        assert_eq!(refuse_literal("https://93.184.216.34/x"), None);
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_where_connections_are_made() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let refused = PublicOnly.resolve(name).await.err().expect("refused");
        assert!(NotPublic::in_chain(refused.as_ref()).is_some(), "{refused}");
    }
}
