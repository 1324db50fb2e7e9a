//! Request and response bodies of the budget routes.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate::{BudgetView, LeaseRecord, LedgerEntry, Page};

use crate::openapi::{
    ApiSchema, Components, event_cost, id, identifier, lease_ttl, model, notes, nullable, text, timestamp, token_count,
};

fn money(description: &str) -> Value {
    json!({ "type": "integer", "description": format!("{description} (microdollars).") })
}

/// `POST /v1/budget/handshake`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HandshakeBody {
    pub(super) provider: tollgate::ProviderName,
    #[serde(default)]
    pub(super) requested_microdollars: Option<i64>,
    #[serde(default)]
    pub(super) ttl_seconds: Option<u64>,
}

impl ApiSchema for HandshakeBody {
    const NAME: &'static str = "BudgetHandshake";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["provider"],
            "properties": {
                "provider": identifier(64, "The provider the agent will call; its assigned key must be of it."),
                "requested_microdollars": { "type": "integer", "minimum": 1, "description": "How much to lease (default: the server's default grant); the grant is at most what is available." },
                "ttl_seconds": lease_ttl("How long the lease lives (default 15 minutes, at most the server's maximum)."),
            }
        })
    }
}

/// `POST /v1/budget/leases/{id}/refresh`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RefreshBody {
    #[serde(default)]
    pub(super) requested_microdollars: Option<i64>,
    #[serde(default)]
    pub(super) ttl_seconds: Option<u64>,
}

impl ApiSchema for RefreshBody {
    const NAME: &'static str = "BudgetRefresh";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "requested_microdollars": { "type": "integer", "minimum": 1 },
                "ttl_seconds": lease_ttl(""),
            }
        })
    }
}

/// `POST /v1/budget/leases/{id}/report`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportBody {
    pub(super) request_id: String,
    pub(super) cost_microdollars: i64,
    #[serde(default)]
    pub(super) input_tokens: u64,
    #[serde(default)]
    pub(super) output_tokens: u64,
    pub(super) model: String,
}

impl ApiSchema for ReportBody {
    const NAME: &'static str = "BudgetReport";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["request_id", "cost_microdollars", "model"],
            "properties": {
                "request_id": { "type": "string", "pattern": "^[A-Za-z0-9._:/-]{1,90}$", "description": "Your key for this call: a repeat changes nothing." },
                "cost_microdollars": event_cost(""),
                "input_tokens": token_count(""),
                "output_tokens": token_count(""),
                "model": model(""),
            }
        })
    }
}

/// `POST /v1/budget/leases/{id}/delegate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DelegateBody {
    pub(super) agent_id: tollgate::AgentId,
    pub(super) requested_microdollars: i64,
    #[serde(default)]
    pub(super) ttl_seconds: Option<u64>,
}

impl ApiSchema for DelegateBody {
    const NAME: &'static str = "BudgetDelegate";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["agent_id", "requested_microdollars"],
            "properties": {
                "agent_id": id("agt_", "The child agent: another agent of the same owner."),
                "requested_microdollars": { "type": "integer", "minimum": 1, "description": "At most what the parent lease has left is granted." },
                "ttl_seconds": lease_ttl("The child lease expires no later than its parent."),
            }
        })
    }
}

/// `PUT /v1/agents/{id}/budget`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SetBudgetBody {
    pub(super) allocated_microdollars: i64,
    #[serde(default)]
    pub(super) reason: Option<String>,
}

impl ApiSchema for SetBudgetBody {
    const NAME: &'static str = "SetBudget";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["allocated_microdollars"],
            "properties": {
                "allocated_microdollars": { "type": "integer", "minimum": 0, "description": "The new allocation: an absolute value, not a delta." },
                "reason": notes(1024, "Recorded in the audit log."),
            }
        })
    }
}

/// `POST /v1/budget/requests`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateRequestBody {
    pub(super) agent_id: tollgate::AgentId,
    pub(super) requested_allocation_microdollars: i64,
    pub(super) justification: String,
}

impl ApiSchema for CreateRequestBody {
    const NAME: &'static str = "CreateBudgetRequest";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["agent_id", "requested_allocation_microdollars", "justification"],
            "properties": {
                "agent_id": id("agt_", "The agent."),
                "requested_allocation_microdollars": { "type": "integer", "minimum": 0, "description": "The allocation asked for: an absolute target." },
                "justification": text(1024, "Why the budget is needed."),
            }
        })
    }
}

/// `…/approve`, `…/reject`, `…/revoke`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReasonBody {
    #[serde(default)]
    pub(super) reason: Option<String>,
}

impl ApiSchema for ReasonBody {
    const NAME: &'static str = "Reason";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": { "reason": notes(1024, "Recorded in the audit log.") }
        })
    }
}

/// A lease as the API shows it.
#[derive(Debug, Serialize)]
pub(super) struct LeaseView<'a> {
    #[serde(flatten)]
    lease: &'a LeaseRecord,
    remaining: i64,
}

impl<'a> LeaseView<'a> {
    pub(super) fn new(lease: &'a LeaseRecord) -> Self {
        Self { lease, remaining: lease.remaining() }
    }
}

pub(super) fn lease_properties() -> Value {
    json!({
        "id": id("bls_", "The lease."),
        "agent": id("agt_", "Its agent."),
        "credential": id("tok_", "The credential that opened it."),
        "provider": { "type": "string" },
        "account": id("agt_", "The agent whose budget it spends (for a delegated lease, its root lease's agent)."),
        "parent": nullable(id("bls_", "The lease it was delegated out of.")),
        "granted": money("What was granted"),
        "reported": money("What was reported spent"),
        "delegated": money("What is delegated out of it to child leases now"),
        "returned": money("What went back to the account when it closed"),
        "remaining": money("What is left of the grant: neither reported nor delegated"),
        "state": { "type": "string", "enum": ["open", "returned", "refreshed", "expired", "revoked"] },
        "refreshed_from": nullable(id("bls_", "The lease it replaced.")),
        "created_at": timestamp("Opened."),
        "expires_at": timestamp("Expires if still open."),
        "closed_at": nullable(timestamp("Closed.")),
    })
}

impl ApiSchema for LeaseView<'_> {
    const NAME: &'static str = "BudgetLease";
    fn schema(_: &mut Components) -> Value {
        let required = [
            "id",
            "agent",
            "credential",
            "provider",
            "granted",
            "reported",
            "returned",
            "remaining",
            "state",
            "refreshed_from",
            "created_at",
            "expires_at",
            "closed_at",
        ];
        json!({ "type": "object", "required": required, "properties": lease_properties() })
    }
}

/// A page of leases.
#[derive(Debug, Serialize)]
pub(super) struct LeasePage<'a> {
    items: Vec<LeaseView<'a>>,
    next_cursor: Option<&'a str>,
}

impl<'a> LeasePage<'a> {
    pub(super) fn new(page: &'a Page<LeaseRecord>) -> Self {
        Self { items: page.items.iter().map(LeaseView::new).collect(), next_cursor: page.next_cursor.as_deref() }
    }
}

impl ApiSchema for LeasePage<'_> {
    const NAME: &'static str = "BudgetLeasePage";
    fn schema(components: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": { "type": "array", "items": Components::reference::<LeaseView<'static>>(components) },
                "next_cursor": { "type": ["string", "null"] },
            }
        })
    }
}

/// An agent's budget.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(super) struct BudgetViewBody(pub(super) BudgetView);

impl ApiSchema for BudgetViewBody {
    const NAME: &'static str = "Budget";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["agent", "allocated", "reserved", "spent", "available", "paused_for_budget", "status", "updated_at"],
            "properties": {
                "agent": id("agt_", "The agent."),
                "allocated": money("What the agent may spend in all"),
                "reserved": money("The unspent grants of its open leases"),
                "spent": money("What its leases reported"),
                "available": money("What a new lease could be granted now: allocated − reserved − spent"),
                "paused_for_budget": { "type": "boolean" },
                "status": { "type": "string", "enum": ["ok", "paused_for_budget"] },
                "updated_at": nullable(timestamp("The last movement.")),
            }
        })
    }
}

/// A page of ledger rows (the allocation history).
#[derive(Debug, Serialize)]
pub(super) struct LedgerPage<'a> {
    pub(super) items: &'a [LedgerEntry],
    pub(super) next_cursor: Option<&'a str>,
}

impl ApiSchema for LedgerPage<'_> {
    const NAME: &'static str = "BudgetHistory";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": { "type": "array", "items": {
                    "type": "object",
                    "required": ["sequence", "agent", "kind", "lease", "allocated_delta", "reserved_delta", "spent_delta",
                                 "allocated_after", "actor", "reason", "request", "at"],
                    "properties": {
                        "sequence": { "type": "integer" },
                        "agent": id("agt_", "The agent."),
                        "kind": { "type": "string", "enum": ["allocate", "open", "report", "release"] },
                        "lease": nullable(id("bls_", "The lease it concerns.")),
                        "allocated_delta": money("Change of the allocation"),
                        "reserved_delta": money("Change of reserved"),
                        "spent_delta": money("Change of spent"),
                        "allocated_after": money("The allocation after"),
                        "actor": { "type": "string", "description": "Who: a user, token, agent, `cli` or `system`." },
                        "reason": { "type": ["string", "null"] },
                        "request": nullable(id("brq_", "The change request it came from.")),
                        "at": timestamp("When."),
                    }
                } },
                "next_cursor": { "type": ["string", "null"] },
            }
        })
    }
}
