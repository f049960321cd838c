//! Browser safety at the service's edge: the requests a web page could make a browser send,
//! and their refusal. Any page can make its visitor's browser POST to 127.0.0.1 without
//! asking (a "simple" request: `text/plain` or a form encoding, no preflight), and a page on
//! a name its author points at 127.0.0.1 (DNS rebinding) can even read the answers. So the
//! `Host` must name the address the connection came in on (or a listed host), a request
//! carrying an `Origin` must come from a listed origin, and a JSON-RPC POST must say
//! `Content-Type: application/json`, which no page can send to another origin without a
//! preflight that an unlisted origin fails. Pure: no I/O, unit-tested below.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::Uri;

/// Who may reach the service from a browser besides its own address: the listed origins
/// (`--allow-origin`) and host names (`--allow-host`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrowserRules {
    /// Origins as browsers write them (`https://app.example`, lower case, no default port).
    pub origins: Vec<String>,
    pub hosts: Vec<AllowedHost>,
}

/// A host name clients may reach the service by: any port, or the one given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// Lower case; an IPv6 address without its brackets.
    name: String,
    port: Option<u16>,
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_host(f, &self.name)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

fn write_host(f: &mut impl fmt::Write, name: &str) -> fmt::Result {
    if name.contains(':') {
        write!(f, "[{name}]")
    } else {
        f.write_str(name)
    }
}

/// Parses an `--allow-origin` value, `scheme://host[:port]`, into the form browsers send in
/// the `Origin` header (lower case, the scheme's default port left out).
pub fn parse_origin(text: &str) -> Result<String, String> {
    let lower = text.to_ascii_lowercase();
    if lower == "null" || lower == "*" {
        return Err(format!(
            "{text:?} is not an origin that can be allowed: `null` is what sandboxed frames, \
             file:// pages and cross-site redirects send, whoever wrote them, and `*` is every \
             site; list each origin, as scheme://host[:port]"
        ));
    }
    let shape = || {
        format!("{text:?} is not an origin: expected scheme://host[:port] (https://app.example), with no path, query or user")
    };
    let (scheme, rest) = lower.split_once("://").ok_or_else(shape)?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok || rest.contains(['/', '?', '#', '@']) {
        return Err(shape());
    }
    let (name, port) = split_host(rest).ok_or_else(shape)?;
    check_name(&name).map_err(|why| format!("{}: {why}", shape()))?;
    let port = match (scheme, port) {
        ("http", Some(80)) | ("https", Some(443)) => None,
        (_, port) => port,
    };
    let mut origin = format!("{scheme}://");
    let _ = write_host(&mut origin, &name);
    if let Some(port) = port {
        origin.push_str(&format!(":{port}"));
    }
    Ok(origin)
}

/// Parses an `--allow-host` value, `NAME` (any port) or `NAME:PORT`.
pub fn parse_allowed_host(text: &str) -> Result<AllowedHost, String> {
    let shape =
        || format!("{text:?} is not a host: expected NAME or NAME:PORT (signer.internal:8545)");
    let (name, port) = split_host(&text.to_ascii_lowercase()).ok_or_else(shape)?;
    check_name(&name).map_err(|why| format!("{}: {why}", shape()))?;
    Ok(AllowedHost { name, port })
}

/// A host name, an IPv4 address or an IPv6 address; nothing else (no wildcards).
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    if labels_ok {
        Ok(())
    } else {
        Err("a host is a name of letters, digits, '-' and '.', or an IP address")
    }
}

/// Splits `host[:port]` (`[v6]:port` for IPv6) into the host, lower case and without
/// brackets, and the port if one is written.
fn split_host(text: &str) -> Option<(String, Option<u16>)> {
    let (name, port) = if let Some(rest) = text.strip_prefix('[') {
        let (name, after) = rest.split_once(']')?;
        match after {
            "" => (name, None),
            _ => (name, Some(after.strip_prefix(':')?)),
        }
    } else {
        match text.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (text, None),
        }
    };
    if name.is_empty() {
        return None;
    }
    let port = match port {
        // Digits only: `u16::from_str` would take "+80".
        Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            Some(port.parse().ok()?)
        }
        Some(_) => return None,
        None => None,
    };
    Some((name.to_ascii_lowercase(), port))
}

/// Checks that the request names this service: its `Host` header (and the authority of an
/// absolute request target, which HTTP/1.1 says wins over it) must be the address the
/// connection came in on (`local`), `localhost` with that port when it came in on loopback,
/// or a listed host. A page on `rebind.evil.example`, rebound to 127.0.0.1, sends its own
/// name: refused. The error says what was sent and what to do.
pub fn check_host(
    headers: &HeaderMap,
    uri: &Uri,
    local: SocketAddr,
    rules: &BrowserRules,
) -> Result<(), String> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(host), None) => host
            .to_str()
            .map_err(|_| "the Host header is not text".to_owned())?,
        (None, _) => return Err("the request has no Host header".to_owned()),
        (Some(_), Some(_)) => return Err("the request has more than one Host header".to_owned()),
    };
    let named = |text: &str| names_service(text, local, rules);
    let authority = uri.authority().map(|a| a.as_str());
    if named(host) && authority.is_none_or(named) {
        return Ok(());
    }
    let sent = authority.filter(|a| !named(a)).unwrap_or(host);
    Err(format!(
        "the request is for {sent:?}, not this service's address {local}: a web page on another \
         name that points at this machine (DNS rebinding) sends its own name. If clients reach \
         the service by this name, start it with --allow-host {sent}"
    ))
}

fn names_service(text: &str, local: SocketAddr, rules: &BrowserRules) -> bool {
    let Some((name, port)) = split_host(text) else {
        return false;
    };
    // Without a port the Host names HTTP's default one.
    let effective = port.unwrap_or(80);
    let local_ip = local.ip().to_canonical();
    let own = match name.parse::<IpAddr>() {
        Ok(ip) => ip.to_canonical() == local_ip,
        Err(_) => name == "localhost" && local_ip.is_loopback(),
    };
    (own && effective == local.port())
        || rules
            .hosts
            .iter()
            .any(|allowed| allowed.name == name && allowed.port.is_none_or(|p| p == effective))
}

/// What the request's `Origin` header says about it.
#[derive(Debug, PartialEq, Eq)]
pub enum Origin {
    /// No `Origin`: not sent by a script or form of another page (browsers send one with
    /// every cross-origin request and every POST).
    Absent,
    /// A listed origin: answered, with CORS headers naming it.
    Allowed(HeaderValue),
    /// Any other: refused, with why.
    Refused(String),
}

/// Reads the request's `Origin` against the listed origins.
pub fn check_origin(headers: &HeaderMap, rules: &BrowserRules) -> Origin {
    let mut origins = headers.get_all(header::ORIGIN).iter();
    let origin = match (origins.next(), origins.next()) {
        (None, _) => return Origin::Absent,
        (Some(origin), None) => origin,
        (Some(_), Some(_)) => {
            return Origin::Refused("the request has more than one Origin header".to_owned())
        }
    };
    let text = String::from_utf8_lossy(origin.as_bytes()).to_ascii_lowercase();
    if rules.origins.contains(&text) {
        return Origin::Allowed(origin.clone());
    }
    Origin::Refused(format!(
        "requests from web pages of origin {text:?} are refused: a page of any site can make \
         its visitor's browser call this service. To let a site's pages use it, start the \
         service with --allow-origin ORIGIN"
    ))
}

/// The CORS headers of every answer to a listed origin: that origin alone, never `*`.
pub fn add_cors(headers: &mut HeaderMap, origin: &HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
}

/// The headers of the answer to a listed origin's preflight (`OPTIONS`): the methods and
/// headers a JSON-RPC call uses, cached by the browser for ten minutes.
pub fn add_preflight(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
}

/// Whether the request says `Content-Type: application/json` (parameters such as
/// `charset` allowed), once.
pub fn is_json(headers: &HeaderMap) -> bool {
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    match (types.next(), types.next()) {
        (Some(value), None) => value.to_str().is_ok_and(|text| {
            text.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("application/json")
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn rules(origins: &[&str], hosts: &[&str]) -> BrowserRules {
        BrowserRules {
            origins: origins.iter().map(|o| parse_origin(o).unwrap()).collect(),
            hosts: hosts
                .iter()
                .map(|h| parse_allowed_host(h).unwrap())
                .collect(),
        }
    }

    fn host_ok(host: &str, local: &str, rules: &BrowserRules) -> bool {
        check_host(
            &headers(&[("host", host)]),
            &Uri::from_static("/"),
            local.parse().unwrap(),
            rules,
        )
        .is_ok()
    }

    #[test]
    fn origins_are_written_as_browsers_send_them() {
        assert_eq!(
            parse_origin("https://App.Example").unwrap(),
            "https://app.example"
        );
        assert_eq!(
            parse_origin("https://app.example:443").unwrap(),
            "https://app.example"
        );
        assert_eq!(
            parse_origin("http://localhost:80").unwrap(),
            "http://localhost"
        );
        assert_eq!(
            parse_origin("http://localhost:3000").unwrap(),
            "http://localhost:3000"
        );
        assert_eq!(
            parse_origin("http://[::1]:3000").unwrap(),
            "http://[::1]:3000"
        );
        assert_eq!(
            parse_origin("chrome-extension://abcdefgh").unwrap(),
            "chrome-extension://abcdefgh"
        );
        for bad in [
            "null",
            "*",
            "app.example",
            "https://app.example/",
            "https://app.example/path",
            "https://user@app.example",
            "https://*.example",
            "https://",
            "https://app.example:x",
            "https://app.example:+80",
            "1http://app.example",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_listed_origins_are_allowed() {
        let rules = rules(&["https://app.example"], &[]);
        assert_eq!(check_origin(&headers(&[]), &rules), Origin::Absent);
        assert!(matches!(
            check_origin(&headers(&[("origin", "https://app.example")]), &rules),
            Origin::Allowed(_)
        ));
        for refused in [
            "https://evil.example",
            "http://app.example",
            "https://app.example.evil.example",
            "null",
        ] {
            assert!(
                matches!(
                    check_origin(&headers(&[("origin", refused)]), &rules),
                    Origin::Refused(_)
                ),
                "{refused}"
            );
        }
        let twice = headers(&[
            ("origin", "https://app.example"),
            ("origin", "https://evil.example"),
        ]);
        assert!(matches!(check_origin(&twice, &rules), Origin::Refused(_)));
    }

    #[test]
    fn the_host_must_name_the_listener_or_a_listed_host() {
        let none = BrowserRules::default();
        let local = "127.0.0.1:8545";
        assert!(host_ok("127.0.0.1:8545", local, &none));
        assert!(host_ok("localhost:8545", local, &none));
        assert!(host_ok("LOCALHOST:8545", local, &none));
        assert!(!host_ok("rebind.evil.example:8545", local, &none));
        assert!(!host_ok("rebind.evil.example", local, &none));
        assert!(!host_ok("127.0.0.1:8546", local, &none));
        assert!(!host_ok("127.0.0.1", local, &none), "port 80 is not 8545");
        assert!(!host_ok("127.0.0.2:8545", local, &none));
        assert!(!host_ok("127.0.0.1:8545:1", local, &none));
        assert!(!host_ok("", local, &none));
        // On a non-loopback address, localhost does not name it.
        assert!(host_ok("10.1.2.3:8545", "10.1.2.3:8545", &none));
        assert!(!host_ok("localhost:8545", "10.1.2.3:8545", &none));
        // IPv6, and IPv4 connections on a dual-stack listener.
        assert!(host_ok("[::1]:8545", "[::1]:8545", &none));
        assert!(host_ok("localhost:8545", "[::1]:8545", &none));
        assert!(host_ok("127.0.0.1:8545", "[::ffff:127.0.0.1]:8545", &none));
        assert!(host_ok("127.0.0.1:80", "127.0.0.1:80", &none));
        assert!(host_ok("127.0.0.1", "127.0.0.1:80", &none));

        let listed = rules(&[], &["signer.internal", "pinned.internal:9000"]);
        assert!(host_ok("signer.internal", local, &listed));
        assert!(host_ok("Signer.Internal:443", local, &listed));
        assert!(host_ok("pinned.internal:9000", local, &listed));
        assert!(!host_ok("pinned.internal:9001", local, &listed));
        assert!(!host_ok("pinned.internal", local, &listed));
        assert!(!host_ok("evil.signer.internal", local, &listed));
        for bad in ["*.example", "a b", "", "host:", "[::1", "-x.example"] {
            assert!(parse_allowed_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_host_header_must_be_there_once_and_agree_with_an_absolute_target() {
        let none = BrowserRules::default();
        let local: SocketAddr = "127.0.0.1:8545".parse().unwrap();
        let ok = headers(&[("host", "127.0.0.1:8545")]);
        assert!(check_host(&headers(&[]), &Uri::from_static("/"), local, &none).is_err());
        let twice = headers(&[("host", "127.0.0.1:8545"), ("host", "127.0.0.1:8545")]);
        assert!(check_host(&twice, &Uri::from_static("/"), local, &none).is_err());
        let absolute = Uri::from_static("http://rebind.evil.example:8545/");
        let err = check_host(&ok, &absolute, local, &none).unwrap_err();
        assert!(err.contains("rebind.evil.example"), "{err}");
        assert!(check_host(
            &ok,
            &Uri::from_static("http://127.0.0.1:8545/"),
            local,
            &none
        )
        .is_ok());
    }

    #[test]
    fn only_application_json_is_json() {
        for json in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
        ] {
            assert!(is_json(&headers(&[("content-type", json)])), "{json}");
        }
        for other in [
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "application/json-rpc",
        ] {
            assert!(!is_json(&headers(&[("content-type", other)])), "{other}");
        }
        assert!(!is_json(&headers(&[])));
        assert!(!is_json(&headers(&[
            ("content-type", "application/json"),
            ("content-type", "text/plain")
        ])));
    }
}
