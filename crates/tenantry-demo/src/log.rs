//! One log line per request, with its tenant.

use std::time::Instant;

use axum::{extract::Request, middleware::Next, response::Response};
use tenantry_axum::CurrentTenant;

/// Logs method, path, status, tenant and duration of every request. The tenant is the one
/// [`TenantLayer`](tenantry_axum::TenantLayer) resolved (it leaves it in the response), else
/// the raw `tenant` header of a refused request, else `-`.
pub async fn log(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let header = request
        .headers()
        .get("tenant")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let response = next.run(request).await;
    let tenant = match response.extensions().get::<CurrentTenant>() {
        Some(CurrentTenant(Some(schema))) => schema.to_string(),
        Some(CurrentTenant(None)) => "-".to_owned(),
        None => header.map_or_else(|| "-".to_owned(), |raw| format!("{raw:?} (refused)")),
    };
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        tenant,
        micros = start.elapsed().as_micros() as u64,
        "request"
    );
    response
}
