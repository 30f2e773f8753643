//! `GET /api/explain?vault=V&name=N&kind=secret`: which ExternalSecrets read a Key Vault object and
//! which would not be refreshed, and why. Authenticated like deliveries (it reveals cluster layout).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::auth::{AuthOutcome, Authenticator};
use crate::core::decide::{NamespaceLabels, explain};
use crate::core::model::{Cloud, ObjectKind, ObjectName, ObjectRef, VaultId};
use crate::kube::SharedIndex;

/// What explain reads.
pub struct ExplainState {
    /// The index.
    pub index: SharedIndex,
    /// Namespace labels.
    pub namespaces: Arc<dyn NamespaceLabels + Send + Sync>,
    /// Cloud of bare vault names.
    pub cloud: Cloud,
    /// Authentication (same as deliveries).
    pub auth: Authenticator,
}

/// Parses the query into the object asked about.
pub fn object_from_query(q: &HashMap<String, String>, cloud: Cloud) -> Result<ObjectRef, String> {
    let vault = q.get("vault").ok_or("missing query parameter vault")?;
    let name = q
        .get("name")
        .filter(|n| !n.trim().is_empty())
        .ok_or("missing query parameter name")?;
    let kind = match q.get("kind") {
        None => ObjectKind::Secret,
        Some(k) => {
            ObjectKind::parse(k).ok_or_else(|| format!("unknown kind {k:?}: secret, certificate or key"))?
        }
    };
    let vault = VaultId::parse_flexible(vault, cloud).map_err(|e| e.to_string())?;
    Ok(ObjectRef {
        vault,
        kind,
        name: ObjectName::new(name),
    })
}

/// `GET /api/explain`.
pub async fn get(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let ex = &state.explain;
    match ex.auth.authenticate(&headers, raw.as_deref()).await {
        AuthOutcome::Allowed { .. } => {}
        AuthOutcome::Denied(_) => {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": "authentication required"})),
            )
                .into_response();
        }
        AuthOutcome::Unavailable(_) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"error": "authentication temporarily unavailable"})),
            )
                .into_response();
        }
    }
    let object = match object_from_query(&q, ex.cloud) {
        Ok(o) => o,
        Err(e) => return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": e}))).into_response(),
    };
    let explanation = {
        let index = ex.index.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        explain(&index, &object, ex.namespaces.as_ref())
    };
    (
        StatusCode::OK,
        axum::Json(crate::report::explanation_json(&object, &explanation)),
    )
        .into_response()
}
