//! `TenantLayer` and `TenantService`: run each request inside its tenant's scope.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use axum::{
    body::{Body, Bytes},
    extract::Request,
    response::{IntoResponse, Response},
};
use http_body::{Frame, SizeHint};
use tenantry::{Registry, SchemaName, TenantInfo, TenantScope};
use tower::{Layer, Service};
use tracing::Instrument;

use crate::{
    CurrentTenant, InvalidTenant, TenantCache, TenantLookupFailed, TenantSource, TenantSuspended,
    UnknownTenant,
};

/// What to do with a request whose tenant name is valid but names no tenant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnknownTenantPolicy {
    /// Serve it from the shared schema, as if it named no tenant (the seed's behaviour).
    #[default]
    Shared,
    /// Refuse it with [`UnknownTenant`] (404).
    Reject,
}

/// A tower layer that resolves each request's tenant and runs the inner service inside
/// [`tenantry::with_tenant`]. See the [crate docs](crate).
///
/// Cheap to clone; clones share the [`TenantCache`].
#[derive(Clone, Debug)]
pub struct TenantLayer {
    source: TenantSource,
    cache: TenantCache,
    policy: UnknownTenantPolicy,
}

impl TenantLayer {
    /// A layer reading the `tenant` header, looking tenants up in `registry`'s
    /// [`Tenant`](tenantry::contrib::Tenant) table through a new [`TenantCache`], serving
    /// unknown tenants from the shared schema. For your own tenant table:
    /// `TenantLayer::with_cache(TenantCache::with_store(registry, store))`. A known tenant's
    /// [`TenantInfo`] is in the request's extensions (`Extension<TenantInfo>`).
    pub fn new(registry: Registry) -> Self {
        Self::with_cache(TenantCache::new(registry))
    }

    /// A layer looking tenants up through `cache` (share one cache between layers, or
    /// choose its limits).
    pub fn with_cache(cache: TenantCache) -> Self {
        TenantLayer {
            source: TenantSource::default(),
            cache,
            policy: UnknownTenantPolicy::default(),
        }
    }

    /// Reads the tenant from `source` instead of the `tenant` header.
    pub fn source(mut self, source: TenantSource) -> Self {
        self.source = source;
        self
    }

    /// What to do with unknown tenants.
    pub fn unknown_tenant(mut self, policy: UnknownTenantPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// `true`: unknown tenants are refused (404); `false`: they get the shared schema.
    pub fn strict(self, strict: bool) -> Self {
        self.unknown_tenant(if strict {
            UnknownTenantPolicy::Reject
        } else {
            UnknownTenantPolicy::Shared
        })
    }

    /// The cache: create and drop tenants through it so this layer sees them at once.
    pub fn cache(&self) -> &TenantCache {
        &self.cache
    }

    /// Resolves the tenant of a request: its schema and what the store knows of it, or the
    /// response refusing it. The sources are tried in order; the first that names a tenant
    /// decides.
    async fn resolve(
        &self,
        parts: &axum::http::request::Parts,
    ) -> Result<Option<(SchemaName, TenantInfo)>, Response> {
        let sources = self.source.each();
        for source in sources {
            let lookup = match source {
                TenantSource::Domain => {
                    let host = crate::source::host(parts).map_err(IntoResponse::into_response)?;
                    let Some(host) = host else {
                        continue;
                    };
                    // A host under a subdomain base of this chain is that source's: a
                    // tenant's custom domain never captures another tenant's subdomain.
                    if TenantSource::under_a_subdomain_base(sources, &host) {
                        continue;
                    }
                    match self.cache.lookup_lowercase_domain(&host).await {
                        Ok(Some(tenant)) => return self.admit(tenant.schema.clone(), Some(tenant)),
                        Ok(None) => continue,
                        Err(error) => return Err(TenantLookupFailed::new(error).into_response()),
                    }
                }
                named => match named.resolve(parts) {
                    Ok(Some(raw)) => raw,
                    Ok(None) => continue,
                    Err(rejection) => return Err(rejection.into_response()),
                },
            };
            let schema = SchemaName::parse(&lookup)
                .map_err(|error| InvalidTenant::new(error.to_string()).into_response())?;
            return match self.cache.lookup(&schema).await {
                Ok(tenant) => self.admit(schema, tenant),
                Err(error) => Err(TenantLookupFailed::new(error).into_response()),
            };
        }
        Ok(None)
    }

    /// The database a tenant's requests run on: the store's answer, else (a store that wraps
    /// the directory's without forwarding `database`) the registry's directory's, so that a
    /// directory tenant is never served from a schema of the same name in the default
    /// database. `None`: the registry's databases.
    async fn route(&self, info: &TenantInfo) -> tenantry::Result<Option<tenantry::Database>> {
        if let Some(database) = self.cache.store().database(info).await? {
            return Ok(Some(database));
        }
        let registry = self.cache.registry();
        match registry.tenant_directory() {
            Some(directory) => directory.database_of(registry, info).await,
            None => Ok(None),
        }
    }

    /// A named tenant: served, refused as suspended, or (unknown) as the policy says.
    #[allow(clippy::result_large_err)] // The refusal is the response itself, as in `resolve`.
    fn admit(
        &self,
        schema: SchemaName,
        tenant: Option<TenantInfo>,
    ) -> Result<Option<(SchemaName, TenantInfo)>, Response> {
        match tenant {
            Some(tenant) if tenant.suspended => Err(TenantSuspended::new(schema).into_response()),
            Some(tenant) => Ok(Some((schema, tenant))),
            None => match self.policy {
                UnknownTenantPolicy::Shared => Ok(None),
                UnknownTenantPolicy::Reject => Err(UnknownTenant::new(schema).into_response()),
            },
        }
    }
}

impl<S> Layer<S> for TenantLayer {
    type Service = TenantService<S>;

    fn layer(&self, inner: S) -> TenantService<S> {
        TenantService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`TenantLayer`] wraps around an inner service.
#[derive(Clone, Debug)]
pub struct TenantService<S> {
    inner: S,
    layer: TenantLayer,
}

impl<S> Service<Request> for TenantService<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The clone that was not polled ready stays behind; the ready one serves this call.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let layer = self.layer.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let resolved = match layer.resolve(&parts).await {
                Ok(resolved) => resolved,
                Err(response) => return Ok(response),
            };
            let (schema, tenant) = match resolved {
                Some((schema, tenant)) => (Some(schema), Some(tenant)),
                None => (None, None),
            };
            // A store that routes its tenants (the directory's) names their database.
            let routed = match &tenant {
                Some(info) => match layer.route(info).await {
                    Ok(routed) => routed,
                    Err(error) => return Ok(TenantLookupFailed::new(error).into_response()),
                },
                None => None,
            };
            parts.extensions.insert(CurrentTenant(schema.clone()));
            // An outer layer's tenant is not this request's when this layer resolved none.
            parts.extensions.remove::<TenantInfo>();
            if let Some(tenant) = tenant {
                parts.extensions.insert(tenant);
            }
            let request = Request::from_parts(parts, body);
            let span = tracing::info_span!(
                "tenant",
                tenant = schema.as_ref().map_or("-", SchemaName::as_str)
            );
            let tenant = CurrentTenant(schema.clone());
            // One scope for the handler and the body: a streamed body (SSE, `from_stream`)
            // is polled by the server after this future returned, and runs in it too.
            let scope = match (schema, routed) {
                (Some(schema), Some(database)) => TenantScope::routed(schema, database),
                (schema, _) => TenantScope::new(schema),
            };
            let mut response = scope
                .scope(async move { inner.call(request).await })
                .instrument(span.clone())
                .await?;
            response.extensions_mut().insert(tenant);
            Ok(response.map(|body| ScopedBody::wrap(body, scope, span)))
        })
    }
}

/// A response body polled inside the request's tenant scope (and span): each `poll_frame`
/// enters the scope, so the queries a streaming body makes go to the request's tenant, not to
/// whatever the server's task has (no tenant), and not to another response's.
struct ScopedBody {
    inner: Body,
    scope: TenantScope,
    span: tracing::Span,
}

impl ScopedBody {
    fn wrap(inner: Body, scope: TenantScope, span: tracing::Span) -> Body {
        Body::new(ScopedBody { inner, scope, span })
    }
}

impl http_body::Body for ScopedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        let inner = &mut this.inner;
        this.scope.sync_scope(|| Pin::new(inner).poll_frame(cx))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
