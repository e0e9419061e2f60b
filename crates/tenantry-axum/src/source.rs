//! Where a request names its tenant.

use std::{fmt, sync::Arc};

use axum::http::{header, request::Parts, HeaderName};

use crate::InvalidTenant;

/// Finds the raw tenant name in a request. `Ok(None)`: the request names no tenant (it runs
/// on the shared schema); `Ok(Some(text))`: the text is then validated as a
/// [`SchemaName`](tenantry::SchemaName) and looked up; `Err`: refuse the request (400).
///
/// Implemented for every `Fn(&Parts) -> Result<Option<String>, InvalidTenant>` closure.
pub trait TenantResolver: Send + Sync + 'static {
    /// The tenant name the request carries, if any.
    fn resolve(&self, parts: &Parts) -> Result<Option<String>, InvalidTenant>;
}

impl<F> TenantResolver for F
where
    F: Fn(&Parts) -> Result<Option<String>, InvalidTenant> + Send + Sync + 'static,
{
    fn resolve(&self, parts: &Parts) -> Result<Option<String>, InvalidTenant> {
        self(parts)
    }
}

/// Where [`TenantLayer`](crate::TenantLayer) reads the tenant from. The default is the
/// `tenant` header, as in the seed's middleware.
#[derive(Clone)]
#[non_exhaustive]
pub enum TenantSource {
    /// A request header; absent means no tenant, a value that is not visible ASCII is
    /// [`InvalidTenant`].
    Header(HeaderName),
    /// The subdomain of the `Host` header (or of the URI's authority) under this base domain:
    /// with base `example.com`, `edgy.example.com` is tenant `edgy`; `example.com` itself
    /// and other hosts name no tenant. The host is compared case-insensitively and its port
    /// is ignored; `a.b.example.com` gives `a.b`, which is no valid name (400).
    Subdomain(String),
    /// The first segment of the path: `/edgy/products` is tenant `edgy`; `/` names none. The
    /// path is left as it is, so routes include the segment (`/{tenant}/products`), and
    /// routes without a tenant belong outside the layer.
    PathSegment,
    /// A resolver of your own.
    Custom(Arc<dyn TenantResolver>),
    /// The request's host as a custom domain of a tenant ([`tenantry::TenantInfo::domains`]),
    /// looked up among the tenants the layer's [`TenantCache`](crate::TenantCache) holds in
    /// memory (no database lookup per request). A host that is no tenant's domain names no
    /// tenant: the next source of a [`Chain`](Self::Chain) is tried.
    Domain,
    /// Sources tried in order; the first that names a tenant decides (a name that is no
    /// tenant then follows the layer's [`UnknownTenantPolicy`](crate::UnknownTenantPolicy),
    /// without trying the rest). A request none of them names a tenant for (the apex host,
    /// say) is served on the shared schema.
    Chain(Vec<TenantSource>),
}

impl Default for TenantSource {
    fn default() -> Self {
        TenantSource::Header(HeaderName::from_static("tenant"))
    }
}

impl fmt::Debug for TenantSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TenantSource::Header(name) => f.debug_tuple("Header").field(name).finish(),
            TenantSource::Subdomain(base) => f.debug_tuple("Subdomain").field(base).finish(),
            TenantSource::PathSegment => f.write_str("PathSegment"),
            TenantSource::Custom(_) => f.write_str("Custom(..)"),
            TenantSource::Domain => f.write_str("Domain"),
            TenantSource::Chain(sources) => f.debug_tuple("Chain").field(sources).finish(),
        }
    }
}

impl TenantSource {
    /// The header `name`. `name` must be a valid header name (lowercase ASCII token
    /// characters); an invalid one falls back to `tenant`, and is logged.
    pub fn header(name: &str) -> Self {
        match HeaderName::try_from(name) {
            Ok(name) => TenantSource::Header(name),
            Err(_) => {
                tracing::error!(name, "invalid tenant header name; using `tenant`");
                TenantSource::default()
            }
        }
    }

    /// The subdomain under `base` (see [`TenantSource::Subdomain`]).
    pub fn subdomain(base: impl Into<String>) -> Self {
        TenantSource::Subdomain(base.into().to_ascii_lowercase())
    }

    /// A resolver closure or [`TenantResolver`].
    pub fn custom(resolver: impl TenantResolver) -> Self {
        TenantSource::Custom(Arc::new(resolver))
    }

    /// Several sources, tried in order (see [`TenantSource::Chain`]); a chain among them is
    /// spliced in.
    pub fn chain(sources: impl IntoIterator<Item = TenantSource>) -> Self {
        let mut flat = Vec::new();
        for source in sources {
            match source {
                TenantSource::Chain(inner) => flat.extend(inner),
                single => flat.push(single),
            }
        }
        TenantSource::Chain(flat)
    }

    /// The sources this one tries, in order: itself, or a chain's members. (A chain built
    /// as a variant, not with [`chain`](Self::chain), may hold a chain: it is tried as a
    /// whole, by name.)
    pub(crate) fn each(&self) -> &[TenantSource] {
        match self {
            TenantSource::Chain(sources) => sources,
            single => std::slice::from_ref(single),
        }
    }

    /// Whether `host` is the base of a [`Subdomain`](Self::Subdomain) among `sources` or
    /// under it: such a host is that source's to resolve, never a custom domain's.
    pub(crate) fn under_a_subdomain_base(sources: &[TenantSource], host: &str) -> bool {
        sources.iter().any(|source| match source {
            TenantSource::Subdomain(base) => {
                host == base
                    || host
                        .strip_suffix(base.as_str())
                        .is_some_and(|prefix| prefix.ends_with('.'))
            }
            _ => false,
        })
    }

    /// The raw tenant name `parts` carries. [`Domain`](Self::Domain) needs the layer's
    /// cache and names nothing here; a [`Chain`](Self::Chain) gives its first name-based
    /// source's answer.
    pub fn resolve(&self, parts: &Parts) -> Result<Option<String>, InvalidTenant> {
        match self {
            TenantSource::Header(name) => match parts.headers.get(name) {
                None => Ok(None),
                Some(value) => value.to_str().map(|v| Some(v.to_owned())).map_err(|_| {
                    InvalidTenant::new(format!("the {name} header is not visible ASCII text"))
                }),
            },
            TenantSource::Subdomain(base) => Ok(subdomain(&host(parts)?, base)),
            TenantSource::PathSegment => Ok(parts
                .uri
                .path()
                .trim_start_matches('/')
                .split('/')
                .next()
                .filter(|segment| !segment.is_empty())
                .map(str::to_owned)),
            TenantSource::Custom(resolver) => resolver.resolve(parts),
            TenantSource::Domain => Ok(None),
            TenantSource::Chain(sources) => {
                for source in sources {
                    if let Some(name) = source.resolve(parts)? {
                        return Ok(Some(name));
                    }
                }
                Ok(None)
            }
        }
    }
}

/// The request's host, lower case, without its port or a trailing dot: the URI's authority
/// when the request has one (an absolute-form target, where `Host` must be ignored), else
/// the `Host` header. An unreadable `Host` header is [`InvalidTenant`], never replaced.
pub(crate) fn host(parts: &Parts) -> Result<Option<String>, InvalidTenant> {
    let host = match (parts.uri.host(), parts.headers.get(header::HOST)) {
        (Some(host), _) => host,
        (None, Some(header)) => header
            .to_str()
            .map_err(|_| InvalidTenant::new("the Host header is not visible ASCII text"))?,
        (None, None) => return Ok(None),
    };
    let host = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    let host = host.strip_suffix('.').unwrap_or(host);
    Ok((!host.is_empty()).then(|| host.to_ascii_lowercase()))
}

fn subdomain(host: &Option<String>, base: &str) -> Option<String> {
    let host = host.as_ref()?;
    let prefix = host.strip_suffix(base)?.strip_suffix('.')?;
    (!prefix.is_empty()).then(|| prefix.to_owned())
}
