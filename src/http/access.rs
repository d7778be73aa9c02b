//! Who may do what: API keys in two scopes, and which `Host` names a request may carry.
//!
//! A service on a shared network must not let whoever reaches its port delete every space. With
//! keys set, every route but the probes needs one: a read-only key reads (queries included, though
//! they are POSTs), a read-write key does everything. Keys are lists, so a key is rotated by
//! adding the new one, moving clients over, then removing the old one, with no restart in between
//! that loses access. A presented key is compared with every configured key in constant time, so
//! the time an answer takes says nothing about how close a guess was.
//!
//! Without keys the service stays open, as a database on localhost usually is. What a browser on
//! the same machine could still do to it is DNS rebinding: a page on a hostile name that resolves
//! to 127.0.0.1 talks to the service as if it were that page's own server. Such requests carry
//! the hostile name in `Host`, so without keys only the names the service is known by are
//! accepted: the listen address, `localhost`, IP literals and the names configured.

use super::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use std::net::IpAddr;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The fewest characters a key may have: 16 random characters are beyond guessing over HTTP.
pub const MIN_KEY_LENGTH: usize = 16;

/// What a key lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    ReadOnly,
    ReadWrite,
}

/// What a route asks of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Open to everyone: the liveness and readiness probes, and the API's description.
    Nothing,
    /// Any key.
    Read,
    /// A read-write key.
    Write,
}

/// A key setting that cannot be used, naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{setting}: a key must have at least {MIN_KEY_LENGTH} characters, and one has {length}"
    )]
    TooShort {
        setting: &'static str,
        length: usize,
    },
    #[error(
        "{setting}: a key may hold only visible ASCII characters (no spaces), as HTTP headers carry them"
    )]
    NotVisibleAscii { setting: &'static str },
    #[error(
        "{setting} is set but holds no key (an empty file or value, or only commas and blanks): give it a key, or unset it to run without keys"
    )]
    NoKey { setting: &'static str },
    #[error("a key is set both as read-write and as read-only: give each key one scope")]
    InBothScopes,
    #[error("{setting}: cannot read {path}: {source}")]
    Unreadable {
        setting: &'static str,
        path: String,
        source: std::io::Error,
    },
}

/// The configured keys of both scopes.
#[derive(Clone, Debug, Default)]
pub struct Keys {
    read_write: Vec<String>,
    read_only: Vec<String>,
}

impl Keys {
    /// Keys from comma-separated lists, each checked; `setting` names where each list came from.
    pub fn new(
        read_write: &[(&'static str, String)],
        read_only: &[(&'static str, String)],
    ) -> Result<Keys, KeyError> {
        let keys = Keys {
            read_write: parse_lists(read_write)?,
            read_only: parse_lists(read_only)?,
        };
        if keys.read_write.iter().any(|k| keys.read_only.contains(k)) {
            return Err(KeyError::InBothScopes);
        }
        Ok(keys)
    }

    /// Whether any key is set: without one the service is open.
    pub fn are_set(&self) -> bool {
        !self.read_write.is_empty() || !self.read_only.is_empty()
    }

    /// The scope of a presented key, `None` when it matches no key. Every configured key is
    /// compared, each in constant time, whatever matched before.
    pub fn scope_of(&self, presented: &str) -> Option<Scope> {
        let matches = |keys: &[String]| {
            keys.iter().fold(subtle::Choice::from(0), |found, key| {
                found | key.as_bytes().ct_eq(presented.as_bytes())
            })
        };
        let (read_write, read_only) = (matches(&self.read_write), matches(&self.read_only));
        if bool::from(read_write) {
            Some(Scope::ReadWrite)
        } else if bool::from(read_only) {
            Some(Scope::ReadOnly)
        } else {
            None
        }
    }
}

/// Every key of every list. A list that is given must hold a key: a setting present but empty
/// (a Docker secret mounted empty, `DENDRITE_API_KEY=`) would otherwise start an open service.
fn parse_lists(lists: &[(&'static str, String)]) -> Result<Vec<String>, KeyError> {
    let mut keys = Vec::new();
    for (setting, list) in lists {
        let before = keys.len();
        for key in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            if !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(KeyError::NotVisibleAscii { setting });
            }
            if key.chars().count() < MIN_KEY_LENGTH {
                return Err(KeyError::TooShort {
                    setting,
                    length: key.chars().count(),
                });
            }
            keys.push(key.to_owned());
        }
        if keys.len() == before {
            return Err(KeyError::NoKey { setting });
        }
    }
    Ok(keys)
}

/// Reads a key list from a file (a Docker secret), without its surrounding whitespace.
pub fn read_key_file(setting: &'static str, path: &std::path::Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path)
        .map(|content| content.trim().to_owned())
        .map_err(|source| KeyError::Unreadable {
            setting,
            path: path.display().to_string(),
            source,
        })
}

/// The key a request carries: `api-key: <key>` or `Authorization: Bearer <key>`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get("api-key") {
        return value.to_str().ok();
    }
    let authorization = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Checks the request's key against what its route needs: 401 without a valid key, 403 for a
/// read-only key on a write. Runs first of a route's checks ([`super::guard::check_route`]), so a
/// refused request reads no body and changes nothing.
pub fn check_key(keys: &Keys, need: Need, headers: &HeaderMap) -> Result<(), ApiError> {
    if need == Need::Nothing || !keys.are_set() {
        return Ok(());
    }
    let scope = presented_key(headers).and_then(|key| keys.scope_of(key));
    match (scope, need) {
        (None, _) => Err(ApiError::unauthorized()),
        (Some(Scope::ReadOnly), Need::Write) => Err(ApiError::forbidden(
            "this key is read-only; writes need a read-write key",
        )),
        (Some(_), Need::Nothing | Need::Read | Need::Write) => Ok(()),
    }
}

/// The names a request's `Host` may carry when no key is set.
#[derive(Clone, Debug, Default)]
pub struct AllowedHosts {
    /// The listen address's host and the configured names, lower-case.
    names: Vec<String>,
}

impl AllowedHosts {
    /// `listen` is the listen setting (`host:port`); `configured` the names given by setting.
    pub fn new(listen: &str, configured: &[String]) -> AllowedHosts {
        let listen_host = host_without_port(listen);
        let names = std::iter::once(listen_host)
            .chain(std::iter::once("localhost"))
            .chain(configured.iter().map(String::as_str))
            .map(str::to_ascii_lowercase)
            .collect();
        AllowedHosts { names }
    }

    /// Whether a `Host` value names this service: an IP literal, or one of its names.
    pub fn allows(&self, host: &str) -> bool {
        let name = host_without_port(host);
        let unbracketed = name.trim_start_matches('[').trim_end_matches(']');
        unbracketed.parse::<IpAddr>().is_ok()
            || self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// `example.com:8080` → `example.com`; `[::1]:8080` → `[::1]`; a name without a port as it is.
fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Without keys, refuses a request whose `Host` is not a name of this service (421): the mark of
/// DNS rebinding. The probes are exempt, since container platforms call them by any name; a
/// request without `Host` (HTTP/1.0 tools, never a browser) passes.
pub async fn check_host(
    State((keys, hosts)): State<(Arc<Keys>, Arc<AllowedHosts>)>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let path = request.uri().path();
    let probe = path == "/healthz" || path == "/readyz";
    if keys.are_set() || probe {
        return Ok(next.run(request).await);
    }
    match request.headers().get(header::HOST).map(|h| h.to_str()) {
        None => Ok(next.run(request).await),
        Some(Ok(host)) if hosts.allows(host) => Ok(next.run(request).await),
        Some(_) => Err(ApiError::host_not_allowed()),
    }
}

/// The browser origins allowed to call across origins (`--cors-origin`), compared without case.
#[derive(Clone, Debug, Default)]
pub struct TrustedOrigins(Vec<String>);

impl TrustedOrigins {
    pub fn new(origins: &[String]) -> TrustedOrigins {
        TrustedOrigins(
            origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        )
    }

    fn allows(&self, origin: &str) -> bool {
        self.0.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

/// Whether `origin` (`scheme://authority`) is the origin a request with this `Host` was sent to.
fn is_same_origin(origin: &str, host: Option<&str>) -> bool {
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

/// Refuses (403) a state-changing request that a browser sent from another site, unless that
/// site is a configured CORS origin. Without a key, any page a user opens could otherwise make
/// their browser post to a service on localhost (a backup, a delete: requests without a body
/// need no preflight). Browsers say where a request comes from in `Sec-Fetch-Site` (or, older
/// ones, in `Origin`); clients that are not browsers send neither and pass.
pub fn check_same_site(trusted: &TrustedOrigins, headers: &HeaderMap) -> Result<(), ApiError> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
    };
    let origin = text(header::ORIGIN);
    let cross_site = match text(header::HeaderName::from_static("sec-fetch-site")) {
        Some("same-origin" | "none") => false,
        Some(_) => true,
        None => origin.is_some_and(|o| !is_same_origin(o, text(header::HOST))),
    };
    if cross_site && !origin.is_some_and(|o| trusted.allows(o)) {
        return Err(ApiError::cross_site());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_is_the_same_when_its_authority_is_the_host() {
        assert!(is_same_origin(
            "http://127.0.0.1:8080",
            Some("127.0.0.1:8080")
        ));
        assert!(is_same_origin(
            "https://Memory.example",
            Some("memory.example")
        ));
        assert!(!is_same_origin(
            "http://evil.example",
            Some("127.0.0.1:8080")
        ));
        assert!(!is_same_origin("null", Some("null")));
        assert!(!is_same_origin("http://127.0.0.1:8080", None));
    }

    /// The keys of two settings; an empty string leaves its setting unset.
    fn keys(read_write: &str, read_only: &str) -> Result<Keys, KeyError> {
        let given = |setting: &'static str, list: &str| {
            (!list.is_empty())
                .then(|| (setting, list.to_owned()))
                .into_iter()
                .collect::<Vec<_>>()
        };
        Keys::new(
            &given("DENDRITE_API_KEY", read_write),
            &given("DENDRITE_READ_ONLY_API_KEY", read_only),
        )
    }

    #[test]
    fn a_setting_given_without_a_key_stops_start_up_naming_it() {
        for blank in ["", " ", ",,", " , \n,"] {
            let error = Keys::new(&[("DENDRITE_API_KEY_FILE", blank.into())], &[]).unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with("DENDRITE_API_KEY_FILE is set but holds no key"),
                "{blank:?}: {error}"
            );
            let error = Keys::new(
                &[("DENDRITE_API_KEY", "a-good-read-write-key".into())],
                &[("DENDRITE_READ_ONLY_API_KEY", blank.into())],
            )
            .unwrap_err();
            assert!(matches!(
                error,
                KeyError::NoKey {
                    setting: "DENDRITE_READ_ONLY_API_KEY"
                }
            ));
        }
    }

    #[test]
    fn each_key_of_a_list_has_its_scope() {
        let keys = keys(
            "old-read-write-key-1, new-read-write-key-2",
            "a-read-only-key-000",
        )
        .unwrap();
        assert!(keys.are_set());
        assert_eq!(
            keys.scope_of("old-read-write-key-1"),
            Some(Scope::ReadWrite)
        );
        assert_eq!(
            keys.scope_of("new-read-write-key-2"),
            Some(Scope::ReadWrite)
        );
        assert_eq!(keys.scope_of("a-read-only-key-000"), Some(Scope::ReadOnly));
        assert_eq!(keys.scope_of("old-read-write-key"), None, "a prefix");
        assert_eq!(keys.scope_of(""), None);
        assert!(!self::keys("", "").unwrap().are_set());
    }

    #[test]
    fn short_blank_or_doubly_scoped_keys_are_refused_naming_the_setting() {
        let short = keys("too-short", "").unwrap_err().to_string();
        assert!(short.starts_with("DENDRITE_API_KEY:"), "{short}");
        assert!(short.contains("has 9"), "{short}");
        let ro_short = keys("", "short").unwrap_err().to_string();
        assert!(
            ro_short.starts_with("DENDRITE_READ_ONLY_API_KEY:"),
            "{ro_short}"
        );
        assert!(matches!(
            keys("a key with spaces in it", ""),
            Err(KeyError::NotVisibleAscii { .. })
        ));
        assert!(matches!(
            keys("the-same-key-twice", "the-same-key-twice"),
            Err(KeyError::InBothScopes)
        ));
    }

    #[test]
    fn a_key_comes_in_either_header() {
        let mut headers = HeaderMap::new();
        headers.insert("api-key", "k1".parse().unwrap());
        assert_eq!(presented_key(&headers), Some("k1"));
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Bearer k2".parse().unwrap());
        assert_eq!(presented_key(&headers), Some("k2"));
        headers.insert(header::AUTHORIZATION, "bearer  k3".parse().unwrap());
        assert_eq!(presented_key(&headers), Some("k3"));
        headers.insert(header::AUTHORIZATION, "Basic k4".parse().unwrap());
        assert_eq!(presented_key(&headers), None);
    }

    #[test]
    fn hosts_are_the_service_s_names_and_ip_literals() {
        let hosts = AllowedHosts::new("0.0.0.0:8080", &["dendrite".into()]);
        for allowed in [
            "127.0.0.1:8080",
            "10.1.2.3",
            "[::1]:8080",
            "[fe80::1]",
            "localhost:8080",
            "LOCALHOST",
            "dendrite:8080",
            "0.0.0.0:8080",
        ] {
            assert!(hosts.allows(allowed), "{allowed}");
        }
        for refused in [
            "evil.example",
            "evil.example:8080",
            "dendrite.evil.example",
            "",
        ] {
            assert!(!hosts.allows(refused), "{refused}");
        }
        let named = AllowedHosts::new("memory.internal:9000", &[]);
        assert!(named.allows("memory.internal:9000"));
    }
}
