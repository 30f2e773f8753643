//! Renderings of explain results and plans, shared by the CLI, `/api/explain` and the demo: JSON
//! for machines, aligned text for people.

use serde_json::{Value, json};

use crate::core::decide::{Explanation, Plan};
use crate::core::model::ObjectRef;

/// `explain` as JSON.
pub fn explanation_json(object: &ObjectRef, e: &Explanation) -> Value {
    let item = |x: &crate::core::decide::Explained| {
        json!({
            "externalSecret": x.es.to_string(),
            "target": x.target.to_string(),
            "reads": x.how,
            "reason": x.reason.as_ref().map(|r| r.to_string()),
            "reasonCode": x.reason.as_ref().map(|r| r.as_str()),
        })
    };
    json!({
        "vault": object.vault.as_str(),
        "kind": object.kind.as_str(),
        "name": object.name.as_str(),
        "refreshed": e.refreshed.iter().map(item).collect::<Vec<_>>(),
        "notRefreshed": e.not_refreshed.iter().map(item).collect::<Vec<_>>(),
    })
}

/// `explain` as text.
pub fn explanation_text(object: &ObjectRef, e: &Explanation) -> String {
    let mut out = format!("Key Vault {} {} in {}\n", object.kind, object.name, object.vault);
    if e.refreshed.is_empty() && e.not_refreshed.is_empty() {
        out.push_str("  no ExternalSecret reads it\n");
        return out;
    }
    out.push_str(&format!(
        "  refreshed on a new version ({}):\n",
        e.refreshed.len()
    ));
    for x in &e.refreshed {
        let via = if x.target.to_string() == x.es.to_string() {
            String::new()
        } else {
            format!(" via {}", x.target)
        };
        out.push_str(&format!("    {}{via}  [{}]\n", x.es, x.how));
    }
    if !e.not_refreshed.is_empty() {
        out.push_str(&format!(
            "  referenced but not refreshed ({}):\n",
            e.not_refreshed.len()
        ));
        for x in &e.not_refreshed {
            let why = x.reason.as_ref().map(|r| r.to_string()).unwrap_or_default();
            out.push_str(&format!("    {}  [{}]: {why}\n", x.es, x.how));
        }
    }
    out
}

/// The skipped readers of a plan as text: who reads a changed object but is not refreshed, and why.
pub fn skipped_text(plan: &Plan) -> String {
    plan.skipped
        .iter()
        .map(|s| format!("  not refreshed: {} ({}): {}\n", s.es, s.object, s.reason))
        .collect()
}
