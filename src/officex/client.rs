//! The drive's REST API for purchase records (CANISTER `rest/purchases/route.rs`):
//! `POST {org_host}/v1/drive/{org_id}/purchases/update` and `GET …/purchases/get/{purchase_id}`,
//! authenticated by a fresh SIGNATURE token, answered in the envelope `{"ok":{"data":…}}` /
//! `{"err":{"code":…,"message":"…"}}`.
//!
//! `org_host` comes from an unauthenticated checkout request and the drive does not bind tokens to
//! itself, so a signed token only ever goes to a host on `OFFICEX_ALLOWED_HOSTS`: checked before
//! anything is sent, again at DNS resolution (a listed name must not resolve to a private address
//! unless it is listed exactly), and redirects are never followed. The `http_request_update` path
//! through ic-agent is not implemented: HTTPS reaches the same handler on every drive.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{Method, Url};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::OfficexError;
use super::identity::VendorIdentity;
use super::token;

/// Per-request limit for a drive call.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a purchase record lives: the customer's org (drive) and its host, as the checkout gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveTarget {
    pub org_host: String,
    pub org_id: String,
}

/// The fields of a record the vendor keeps true: a subset of the canister's
/// `UpdatePurchaseRequestBody`. Never a secret (no redeem URL, no key in a URL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseUpdate {
    /// The OfficeX `PurchaseID_…`.
    pub id: String,
    pub title: String,
    /// One of the canister's `PurchaseStatus` values (never `PAID`).
    pub status: String,
    pub billing_url: String,
    pub support_url: String,
    pub delivery_url: String,
    pub pricing: String,
    pub vendor_notes: String,
}

/// Reads and writes customers' OfficeX purchase records.
#[async_trait]
pub trait OfficexClient: Send + Sync + fmt::Debug {
    /// `UserID_<principal>` the calls authenticate as.
    fn vendor_id(&self) -> String;
    /// Applies `update` to the record; returns the record the drive answers with.
    async fn update_purchase(
        &self,
        target: &DriveTarget,
        update: &PurchaseUpdate,
    ) -> Result<serde_json::Value, OfficexError>;
    /// Reads a record.
    async fn get_purchase(
        &self,
        target: &DriveTarget,
        purchase_id: &str,
    ) -> Result<serde_json::Value, OfficexError>;
}

/// One `OFFICEX_ALLOWED_HOSTS` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// `*`: any public host.
    Any,
    /// `*.example.com`: any subdomain (not the domain itself); public addresses only.
    Subdomains(String),
    /// `drive.example.com`, `127.0.0.1`, `::1`: exactly this host. The only way to allow a
    /// loopback or private address.
    Exact(String),
}

/// The hosts signed updates may go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAllowList(Vec<HostPattern>);

impl HostAllowList {
    /// From the configured patterns (already lowercased).
    pub fn new(patterns: &[String]) -> Self {
        Self(
            patterns
                .iter()
                .map(|p| {
                    let p = p.trim().trim_end_matches('.').to_ascii_lowercase();
                    if p == "*" {
                        HostPattern::Any
                    } else if let Some(suffix) = p.strip_prefix("*.") {
                        HostPattern::Subdomains(suffix.to_owned())
                    } else {
                        HostPattern::Exact(p.trim_start_matches('[').trim_end_matches(']').into())
                    }
                })
                .collect(),
        )
    }

    fn listed_exactly(&self, host: &str) -> bool {
        self.0
            .iter()
            .any(|p| matches!(p, HostPattern::Exact(h) if h == host))
    }

    fn matches_public(&self, host: &str) -> bool {
        self.0.iter().any(|p| match p {
            HostPattern::Any => true,
            HostPattern::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
            HostPattern::Exact(h) => h == host,
        })
    }

    /// Parses `org_host` (`https://…`, or a bare host meaning https) into the drive's base URL if
    /// the allow-list permits it. HTTPS always, except plain HTTP to an exactly listed
    /// loopback/private host (a local drive).
    pub fn base_url(&self, org_host: &str) -> Result<Url, OfficexError> {
        let org_host = org_host.trim();
        let with_scheme = if org_host.contains("://") {
            org_host.to_owned()
        } else {
            format!("https://{org_host}")
        };
        let url = Url::parse(&with_scheme)
            .map_err(|e| OfficexError::InvalidTarget(format!("org host {org_host:?}: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(OfficexError::InvalidTarget(
                "org host must not carry credentials".into(),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(OfficexError::InvalidTarget(
                "org host must not carry a query or fragment".into(),
            ));
        }
        let Some(raw_host) = url.host_str() else {
            return Err(OfficexError::InvalidTarget(format!(
                "org host {org_host:?} has no host"
            )));
        };
        let raw_host = raw_host.trim_start_matches('[').trim_end_matches(']');
        let (host, local) = match raw_host.parse::<IpAddr>() {
            Ok(ip) => (ip.to_string(), is_non_public(ip)),
            Err(_) => {
                let d = raw_host.trim_end_matches('.').to_ascii_lowercase();
                let local = d == "localhost" || d.ends_with(".localhost");
                (d, local)
            }
        };
        let allowed = if local {
            self.listed_exactly(&host)
        } else {
            self.matches_public(&host)
        };
        if !allowed {
            return Err(OfficexError::HostNotAllowed(host));
        }
        match url.scheme() {
            "https" => {}
            "http" if local => {}
            other => {
                return Err(OfficexError::InvalidTarget(format!(
                    "org host must use https (got {other}://)"
                )));
            }
        }
        Ok(url)
    }
}

/// Whether an address is anything but globally routable unicast: loopback, private, shared,
/// link-local, documentation, benchmarking, reserved, multicast, broadcast, and the IPv6 forms
/// that embed or translate to IPv4 (mapped, compatible, NAT64, 6to4, Teredo). Such an address is
/// never reached unless listed exactly.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let a = u32::from(v4);
            // IANA IPv4 special-purpose registry, plus multicast and the reserved 240/4.
            const NON_GLOBAL_V4: [(u32, u32); 15] = [
                (0x0000_0000, 8),  // 0.0.0.0/8 this network
                (0x0a00_0000, 8),  // 10.0.0.0/8 private
                (0x6440_0000, 10), // 100.64.0.0/10 shared (CGNAT)
                (0x7f00_0000, 8),  // 127.0.0.0/8 loopback
                (0xa9fe_0000, 16), // 169.254.0.0/16 link-local
                (0xac10_0000, 12), // 172.16.0.0/12 private
                (0xc000_0000, 24), // 192.0.0.0/24 IETF protocol assignments
                (0xc000_0200, 24), // 192.0.2.0/24 documentation
                (0xc058_6300, 24), // 192.88.99.0/24 6to4 relay anycast
                (0xc0a8_0000, 16), // 192.168.0.0/16 private
                (0xc612_0000, 15), // 198.18.0.0/15 benchmarking
                (0xc633_6400, 24), // 198.51.100.0/24 documentation
                (0xcb00_7100, 24), // 203.0.113.0/24 documentation
                (0xe000_0000, 4),  // 224.0.0.0/4 multicast
                (0xf000_0000, 4),  // 240.0.0.0/4 reserved, and the broadcast address
            ];
            NON_GLOBAL_V4
                .iter()
                .any(|&(net, len)| a >> (32 - len) == net >> (32 - len))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_non_public(IpAddr::V4(v4));
            }
            let a = u128::from(v6);
            // Global unicast is 2000::/3; everything else (::, ::1, ::a.b.c.d, 64:ff9b::/96,
            // 100::/64, ULA, link-local, site-local, multicast, 5f00::/16) is not.
            if a >> 125 != 1 {
                return true;
            }
            const NON_GLOBAL_V6: [(u128, u32); 4] = [
                (0x2001_0000 << 96, 23), // 2001::/23 IETF protocol assignments (Teredo, ORCHID, benchmarking)
                (0x2001_0db8 << 96, 32), // 2001:db8::/32 documentation
                (0x2002 << 112, 16),     // 2002::/16 6to4
                (0x3fff << 112, 20),     // 3fff::/20 documentation
            ];
            NON_GLOBAL_V6
                .iter()
                .any(|&(net, len)| a >> (128 - len) == net >> (128 - len))
        }
    }
}

/// Resolves names like the system does, then drops loopback/private addresses unless the name is
/// listed exactly: a public pattern must not lead a signed token into the vendor's own network.
struct PublicOnlyResolver {
    allow: HostAllowList,
}

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        let keep_local = self.allow.listed_exactly(&host);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| keep_local || !is_non_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTPS client.
pub struct HttpOfficexClient {
    http: reqwest::Client,
    identity: Arc<VendorIdentity>,
    allow: HostAllowList,
}

impl fmt::Debug for HttpOfficexClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpOfficexClient")
            .field("identity", &self.identity)
            .field("allow", &self.allow)
            .finish_non_exhaustive()
    }
}

/// The drive's envelope.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Envelope {
    Ok { data: serde_json::Value },
    Err { code: u16, message: String },
}

fn valid_path_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl HttpOfficexClient {
    pub fn new(identity: Arc<VendorIdentity>, allow: HostAllowList) -> Result<Self, OfficexError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("vendor-server/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(PublicOnlyResolver {
                allow: allow.clone(),
            })
            .build()
            .map_err(|e| OfficexError::Network(e.to_string()))?;
        Ok(Self {
            http,
            identity,
            allow,
        })
    }

    /// `{base}/v1/drive/{org_id}/{path}` after the allow-list check.
    fn url(&self, target: &DriveTarget, path: &[&str]) -> Result<Url, OfficexError> {
        if !valid_path_segment(&target.org_id) {
            return Err(OfficexError::InvalidTarget(format!(
                "org id {:?} is not a drive id",
                target.org_id
            )));
        }
        let mut url = self.allow.base_url(&target.org_host)?;
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| OfficexError::InvalidTarget("org host cannot be a base".into()))?;
            segments
                .pop_if_empty()
                .extend(["v1", "drive", target.org_id.as_str()])
                .extend(path);
        }
        Ok(url)
    }

    async fn call(
        &self,
        method: Method,
        url: Url,
        org_id: &str,
        body: Option<&PurchaseUpdate>,
    ) -> Result<serde_json::Value, OfficexError> {
        let token = token::signature_token(&self.identity, org_id, token::now_ms())?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|e| OfficexError::Signing(e.to_string()))?;
        auth.set_sensitive(true);
        let mut request = self.http.request(method, url).header(AUTHORIZATION, auth);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| OfficexError::Network(error_chain(&e)))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| OfficexError::Network(error_chain(&e)))?;
        match serde_json::from_slice::<Envelope>(&bytes) {
            Ok(Envelope::Ok { data }) if (200..300).contains(&status) => Ok(data),
            Ok(Envelope::Err { code, message }) => Err(OfficexError::Drive {
                status: if (200..300).contains(&status) {
                    code
                } else {
                    status
                },
                message: truncate(&message, 300),
                retry_after,
            }),
            _ if (200..300).contains(&status) => Err(OfficexError::Protocol(format!(
                "HTTP {status} without an {{\"ok\":{{\"data\"}}}} envelope"
            ))),
            _ => Err(OfficexError::Drive {
                status,
                message: truncate(&String::from_utf8_lossy(&bytes), 300),
                retry_after,
            }),
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[async_trait]
impl OfficexClient for HttpOfficexClient {
    fn vendor_id(&self) -> String {
        self.identity.user_id()
    }

    async fn update_purchase(
        &self,
        target: &DriveTarget,
        update: &PurchaseUpdate,
    ) -> Result<serde_json::Value, OfficexError> {
        let url = self.url(target, &["purchases", "update"])?;
        self.call(Method::POST, url, &target.org_id, Some(update))
            .await
    }

    async fn get_purchase(
        &self,
        target: &DriveTarget,
        purchase_id: &str,
    ) -> Result<serde_json::Value, OfficexError> {
        if !valid_path_segment(purchase_id) {
            return Err(OfficexError::InvalidTarget(format!(
                "purchase id {purchase_id:?} is not an OfficeX purchase id"
            )));
        }
        let url = self.url(target, &["purchases", "get", purchase_id])?;
        self.call(Method::GET, url, &target.org_id, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(patterns: &[&str]) -> HostAllowList {
        HostAllowList::new(&patterns.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn default_patterns_allow_ic_and_officex_subdomains_only() {
        let a = allow(&["*.icp0.io", "*.ic0.app", "*.officex.app"]);
        for ok in [
            "https://abcde-aaaaa.icp0.io",
            "abcde-aaaaa.raw.icp0.io",
            "https://x.ic0.app/",
            "https://drive.officex.app/prefix",
            "https://X.OFFICEX.APP",
        ] {
            assert!(a.base_url(ok).is_ok(), "{ok}");
        }
        for (bad, host) in [
            ("https://icp0.io", "icp0.io"),
            ("https://evilicp0.io", "evilicp0.io"),
            ("https://icp0.io.evil.com", "icp0.io.evil.com"),
            ("https://127.0.0.1", "127.0.0.1"),
            ("http://localhost:8080", "localhost"),
            ("https://10.0.0.8", "10.0.0.8"),
            ("https://[::1]", "::1"),
            ("https://169.254.169.254", "169.254.169.254"),
        ] {
            match a.base_url(bad) {
                Err(OfficexError::HostNotAllowed(h)) => assert_eq!(h, host, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn loopback_needs_an_exact_entry_and_public_hosts_need_https() {
        let a = allow(&["*", "127.0.0.1", "localhost"]);
        assert!(a.base_url("http://127.0.0.1:4943").is_ok());
        assert!(a.base_url("http://localhost:4943").is_ok());
        assert!(a.base_url("https://drive.example.com").is_ok());
        // A wildcard never admits a private address.
        assert!(matches!(
            a.base_url("http://192.168.1.2"),
            Err(OfficexError::HostNotAllowed(_))
        ));
        for bad in [
            "http://drive.example.com",
            "ftp://drive.example.com",
            "https://user:pw@drive.example.com",
            "https://drive.example.com/?a=b",
            "https://",
        ] {
            assert!(
                matches!(a.base_url(bad), Err(OfficexError::InvalidTarget(_))),
                "{bad}"
            );
        }
        // Decimal and mapped forms of loopback are still loopback.
        let none = allow(&["*"]);
        for sneaky in [
            "https://2130706433",
            "https://[::ffff:127.0.0.1]",
            "https://0.0.0.0",
        ] {
            assert!(
                matches!(none.base_url(sneaky), Err(OfficexError::HostNotAllowed(_))),
                "{sneaky}"
            );
        }
    }

    #[test]
    fn only_globally_routable_addresses_are_public() {
        let non_public = [
            // IPv4: this network, private, shared, loopback, link-local, protocol assignments,
            // documentation, 6to4 relay, benchmarking, multicast, reserved, broadcast.
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.254",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.254",
            "255.255.255.255",
            // IPv6: unspecified, loopback, mapped and compatible IPv4, NAT64, discard, IETF
            // assignments (Teredo, benchmarking, ORCHID), documentation, 6to4, ULA, link-local,
            // site-local, multicast, anything outside 2000::/3.
            "::",
            "::1",
            "::ffff:10.0.0.1",
            "::ffff:192.0.2.1",
            "::8.8.8.8",
            "::127.0.0.1",
            "64:ff9b::8.8.8.8",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:2::1",
            "2001:10::1",
            "2001:db8::1",
            "2002:808:808::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "5f00::1",
            "4000::1",
        ];
        for ip in non_public {
            let parsed: IpAddr = ip.parse().unwrap();
            assert!(is_non_public(parsed), "{ip} must not count as public");
        }
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "192.0.3.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.255",
            "::ffff:8.8.8.8",
            "2001:4860:4860::8888",
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
        ];
        for ip in public {
            let parsed: IpAddr = ip.parse().unwrap();
            assert!(!is_non_public(parsed), "{ip} is public");
        }
        // And through the host check with a wildcard.
        let any = allow(&["*"]);
        for ip in [
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "[64:ff9b::808:808]",
            "[2002::1]",
            "[::808:808]",
        ] {
            assert!(
                matches!(
                    any.base_url(&format!("https://{ip}")),
                    Err(OfficexError::HostNotAllowed(_))
                ),
                "{ip}"
            );
        }
    }

    #[test]
    fn urls_are_built_under_the_host_path() {
        let client = HttpOfficexClient::new(
            Arc::new(VendorIdentity::from_raw_key(&[1; 32])),
            allow(&["*.officex.app"]),
        )
        .unwrap();
        let target = DriveTarget {
            org_host: "https://drive.officex.app/base/".into(),
            org_id: "DriveID_abc-def".into(),
        };
        assert_eq!(
            client
                .url(&target, &["purchases", "update"])
                .unwrap()
                .as_str(),
            "https://drive.officex.app/base/v1/drive/DriveID_abc-def/purchases/update"
        );
        let bad = DriveTarget {
            org_id: "../../admin".into(),
            ..target
        };
        assert!(matches!(
            client.url(&bad, &["purchases", "update"]),
            Err(OfficexError::InvalidTarget(_))
        ));
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_need_an_exact_entry() {
        use reqwest::dns::Resolve;
        let name = || "localhost".parse::<reqwest::dns::Name>().unwrap();
        let wildcard = PublicOnlyResolver {
            allow: allow(&["*"]),
        };
        assert!(wildcard.resolve(name()).await.is_err());
        let exact = PublicOnlyResolver {
            allow: allow(&["localhost"]),
        };
        let addrs: Vec<SocketAddr> = exact.resolve(name()).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }

    #[test]
    fn non_public_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_non_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "100.128.0.1", "2001:4860::8888"] {
            assert!(!is_non_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
