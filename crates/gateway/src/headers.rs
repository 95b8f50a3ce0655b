//! Which headers cross the gateway, in each direction.
//!
//! Invariant: hop-by-hop headers (RFC 9110 §7.6.1) describe one connection and never travel to
//! the next hop — neither the fixed list nor any header the sender named in `Connection`. The
//! upstream learns who the real client was from `x-forwarded-*` instead.

use poem::http::header::{CONNECTION, HOST};
use poem::http::{HeaderMap, HeaderName, HeaderValue};

/// `x-forwarded-for`: the chain of client addresses, the closest hop last.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `x-forwarded-proto`: the scheme the client used to reach the edge.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `x-forwarded-host`: the `Host` the client asked for, before the gateway rewrote it.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers that only concern one connection, always dropped (`proxy-*` is matched by prefix).
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Copies `headers` without the hop-by-hop ones, for either direction.
pub fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let named_by_connection: Vec<String> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let lower = name.as_str();
        let hop = HOP_BY_HOP.contains(&lower)
            || lower.starts_with("proxy-")
            || named_by_connection.iter().any(|n| n == lower);
        if !hop {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// What the gateway knows about the client connection, to tell the upstream.
#[derive(Debug, Clone, Copy)]
pub struct ClientHop<'a> {
    /// The peer's IP address as the gateway saw it, if it was an IP socket.
    pub peer_ip: Option<std::net::IpAddr>,
    /// The scheme the gateway was reached with (`http` unless TLS terminates here).
    pub scheme: &'a str,
}

/// Builds the headers for the upstream request from the client's ones.
///
/// `Host` is removed so the HTTP client writes the upstream's own; the original goes to
/// `x-forwarded-host` unless a proxy in front already recorded it. The peer is appended to
/// `x-forwarded-for`; `x-forwarded-proto` is kept if an edge proxy set it, else it is ours.
pub fn upstream_request_headers(client: &HeaderMap, hop: ClientHop<'_>) -> HeaderMap {
    let mut out = end_to_end(client);
    let original_host = out.remove(HOST);

    if let Some(ip) = hop.peer_ip {
        let chain = match out.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prior) if !prior.trim().is_empty() => format!("{prior}, {ip}"),
            _ => ip.to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&chain) {
            out.insert(X_FORWARDED_FOR, value);
        }
    }
    if !out.contains_key(&X_FORWARDED_PROTO)
        && let Ok(value) = HeaderValue::from_str(hop.scheme)
    {
        out.insert(X_FORWARDED_PROTO, value);
    }
    if let Some(host) = original_host
        && !out.contains_key(&X_FORWARDED_HOST)
    {
        out.insert(X_FORWARDED_HOST, host);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_dropped() {
        let h = map(&[
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "keep-alive"),
            ("x-private", "1"),
            ("content-type", "application/json"),
            ("x-custom", "a"),
            ("x-custom", "b"),
        ]);
        let out = end_to_end(&h);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["content-type", "x-custom"]);
        assert_eq!(out.get_all("x-custom").iter().count(), 2);
    }

    #[test]
    fn forwarded_headers_are_added_and_host_is_moved() {
        let h = map(&[("host", "api.example:8080"), ("accept", "*/*")]);
        let hop = ClientHop {
            peer_ip: Some([10, 0, 0, 7].into()),
            scheme: "http",
        };
        let out = upstream_request_headers(&h, hop);
        assert!(out.get(HOST).is_none());
        assert_eq!(out[&X_FORWARDED_FOR], "10.0.0.7");
        assert_eq!(out[&X_FORWARDED_PROTO], "http");
        assert_eq!(out[&X_FORWARDED_HOST], "api.example:8080");
        assert_eq!(out["accept"], "*/*");
    }

    #[test]
    fn an_edge_proxys_forwarded_headers_are_extended_not_replaced() {
        let h = map(&[
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "shop.example"),
        ]);
        let hop = ClientHop {
            peer_ip: Some([127, 0, 0, 1].into()),
            scheme: "http",
        };
        let out = upstream_request_headers(&h, hop);
        assert_eq!(out[&X_FORWARDED_FOR], "203.0.113.9, 127.0.0.1");
        assert_eq!(out[&X_FORWARDED_PROTO], "https");
        assert_eq!(out[&X_FORWARDED_HOST], "shop.example");
    }
}
