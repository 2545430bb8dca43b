//! Remote versions: a version answered by another v2 server (Triton, KServe, MLServer, another
//! Switchyard) instead of a model file the gateway runs itself.
//!
//! A remote version's artifact is its `Upstream` written as canonical JSON (`descriptor`), so
//! everything keyed by an artifact works unchanged: the sha256 names *which server and model*
//! answered (registering the same upstream twice finds the same version), the bytes are verified
//! before every load, diff and cards read it, and garbage collection removes it.

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Where a remote version is served: a v2 server's base URL and the model (and version) there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Base URL, `http://HOST:PORT` (no path, no trailing slash once normalised).
    pub url: String,
    /// The model's name on the upstream.
    pub model: String,
    /// The upstream's version of it; `None` lets the upstream pick (its default version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// How to speak to it: HTTP/1.1 (the default, left out of the descriptor) or HTTP/2 with
    /// prior knowledge (h2c).
    #[serde(default, skip_serializing_if = "Protocol::is_default")]
    pub protocol: Protocol,
    /// Send tensors as the v2 binary tensor extension (and ask for binary outputs) instead of
    /// JSON: for servers that implement it (Triton, KServe, Switchyard; not MLServer).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub binary: bool,
}

/// The HTTP version a remote version's upstream is spoken to with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 over a pool of keep-alive connections.
    #[default]
    Http1,
    /// HTTP/2 without TLS, with prior knowledge: one multiplexed connection.
    H2c,
}

impl Protocol {
    fn is_default(&self) -> bool {
        *self == Protocol::Http1
    }

    /// As written in configs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::H2c => "h2c",
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Protocol, String> {
        match s {
            "http1" => Ok(Protocol::Http1),
            "h2c" => Ok(Protocol::H2c),
            other => Err(format!("unknown upstream protocol {other:?} (expected http1 or h2c)")),
        }
    }
}

/// The key that marks a descriptor, so it is never mistaken for a model file.
const DESCRIPTOR_KEY: &str = "switchyard_upstream";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Descriptor {
    switchyard_upstream: u32,
    #[serde(flatten)]
    upstream: Upstream,
}

impl Upstream {
    /// Checks and normalises what an operator typed: an `http://` URL with a host and nothing
    /// after the authority (a trailing `/` is dropped), a model name and version that fit in a
    /// URL path segment.
    pub fn new(url: &str, model: &str, version: Option<&str>) -> Result<Upstream, StoreError> {
        let invalid = |reason: String| StoreError::InvalidUpstream(reason);
        let url = url.trim().trim_end_matches('/');
        let Some(authority) = url.strip_prefix("http://") else {
            return Err(invalid(match url.split_once("://") {
                Some(("https", _)) => {
                    format!("{url}: https upstreams are not supported yet; use http:// (h2c or HTTP/1.1)")
                }
                _ => format!("{url}: the upstream must be an http:// URL (http://HOST:PORT)"),
            }));
        };
        if authority.contains(['/', '?', '#', '@', ' ']) {
            return Err(invalid(format!(
                "{url}: give the server's base URL, http://HOST:PORT, without a path, query or user"
            )));
        }
        if authority.is_empty() || authority.parse::<http_authority::Authority>().is_err() {
            return Err(invalid(format!("{url}: '{authority}' is not a host and port")));
        }
        let segment = |what: &str, value: &str| {
            let ok = !value.is_empty()
                && value.len() <= 256
                && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                && value != "."
                && value != "..";
            match ok {
                true => Ok(()),
                false => Err(invalid(format!(
                    "upstream {what} {value:?} must be 1–256 characters of letters, digits, '-', '_' and '.'"
                ))),
            }
        };
        segment("model", model)?;
        if let Some(v) = version {
            segment("version", v)?;
        }
        Ok(Upstream {
            url: url.to_owned(),
            model: model.to_owned(),
            version: version.map(str::to_owned),
            protocol: Protocol::Http1,
            binary: false,
        })
    }

    /// The artifact bytes of a remote version: canonical JSON (keys in a fixed order).
    pub fn descriptor(&self) -> Vec<u8> {
        let descriptor = Descriptor { switchyard_upstream: 1, upstream: self.clone() };
        serde_json::to_vec(&descriptor).expect("a descriptor is plain strings")
    }

    /// The upstream a descriptor names, or `None` for bytes that are not one (a model file).
    pub fn from_descriptor(bytes: &[u8]) -> Option<Upstream> {
        if !bytes.starts_with(b"{") || !bytes.windows(DESCRIPTOR_KEY.len()).any(|w| w == DESCRIPTOR_KEY.as_bytes()) {
            return None;
        }
        serde_json::from_slice::<Descriptor>(bytes).ok().map(|d| d.upstream)
    }

    /// The model's path on the upstream: `/v2/models/{model}[/versions/{version}]`.
    pub fn model_path(&self) -> String {
        match &self.version {
            Some(v) => format!("/v2/models/{}/versions/{v}", self.model),
            None => format!("/v2/models/{}", self.model),
        }
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.url, self.model_path())?;
        match (self.protocol, self.binary) {
            (Protocol::Http1, false) => Ok(()),
            (Protocol::H2c, false) => f.write_str(" (h2c)"),
            (Protocol::Http1, true) => f.write_str(" (binary tensors)"),
            (Protocol::H2c, true) => f.write_str(" (h2c, binary tensors)"),
        }
    }
}

/// A host and port check without a URL crate: `host[:port]`, host a name, IPv4 or `[IPv6]`.
mod http_authority {
    pub struct Authority;

    impl std::str::FromStr for Authority {
        type Err = ();

        fn from_str(s: &str) -> Result<Authority, ()> {
            let (host, port) = match s.strip_prefix('[') {
                Some(rest) => {
                    let (v6, after) = rest.split_once(']').ok_or(())?;
                    v6.parse::<std::net::Ipv6Addr>().map_err(drop)?;
                    ("v6", after.strip_prefix(':'))
                }
                None => match s.rsplit_once(':') {
                    Some((host, port)) => (host, Some(port)),
                    None => (s, None),
                },
            };
            if let Some(port) = port {
                port.parse::<u16>().map_err(drop)?;
            }
            let host_ok = !host.is_empty()
                && host.len() <= 253
                && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if host_ok { Ok(Authority) } else { Err(()) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_round_trips_and_a_model_file_is_not_one() {
        let up = Upstream::new("http://127.0.0.1:8000/", "iris", Some("3")).expect("valid");
        assert_eq!(up.url, "http://127.0.0.1:8000");
        assert_eq!(up.model_path(), "/v2/models/iris/versions/3");
        let bytes = up.descriptor();
        assert_eq!(Upstream::from_descriptor(&bytes), Some(up.clone()));
        // Same upstream, same bytes: the sha256 names the binding.
        assert_eq!(bytes, Upstream::new("http://127.0.0.1:8000", "iris", Some("3")).unwrap().descriptor());
        assert_eq!(Upstream::from_descriptor(b"\x08\x07\x12\x04onnx"), None);
        assert_eq!(Upstream::from_descriptor(br#"{"url": "http://x:1", "model": "m"}"#), None);
        let latest = Upstream::new("http://localhost:9", "m", None).unwrap();
        assert_eq!(latest.to_string(), "http://localhost:9/v2/models/m");
        // HTTP/2 is another binding; HTTP/1.1 descriptors stay as they were.
        assert!(!String::from_utf8(latest.descriptor()).unwrap().contains("protocol"));
        let h2 = Upstream { protocol: Protocol::H2c, ..latest.clone() };
        assert_ne!(h2.descriptor(), latest.descriptor());
        assert_eq!(Upstream::from_descriptor(&h2.descriptor()), Some(h2.clone()));
        assert_eq!(h2.to_string(), "http://localhost:9/v2/models/m (h2c)");
    }

    #[test]
    fn bad_upstreams_are_refused_with_the_reason() {
        let refused = |url: &str, model: &str, version: Option<&str>| {
            Upstream::new(url, model, version).expect_err(url).to_string()
        };
        assert!(refused("https://h:1", "m", None).contains("https upstreams are not supported"));
        assert!(refused("ftp://h:1", "m", None).contains("must be an http:// URL"));
        assert!(refused("h:1", "m", None).contains("must be an http:// URL"));
        assert!(refused("http://h:1/v2", "m", None).contains("without a path"));
        assert!(refused("http://", "m", None).contains("must be an http:// URL"));
        assert!(refused("http://:80", "m", None).contains("is not a host and port"));
        assert!(refused("http://h:99999", "m", None).contains("is not a host and port"));
        assert!(refused("http://h:1", "a/b", None).contains("upstream model"));
        assert!(refused("http://h:1", "m", Some("..")).contains("upstream version"));
        assert!(Upstream::new("http://[::1]:8000", "m", None).is_ok());
    }
}
