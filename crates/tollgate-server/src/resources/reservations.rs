//! `/v1/reservations/{id}`: what a verify with an estimate holds, settled with the call's actual
//! usage or released; unsettled, it expires by itself and its holds return.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use tollgate::{EventId, Receipt, ReceiptKind, UsageInput, UsageOutcome};
use tollgate::{Microdollars, ReservationId, ReservationRecord, ReservationState, Settlement, Timestamp, TokenId};

use super::receipts::{receipt_schema, sign, usage_content};
use super::usage_record::{event_schema, outcome_schema};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, PathId};
use crate::openapi::{ApiSchema, Components, id, nullable, timestamp};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

pub(super) fn routes() -> Routes {
    Routes::new()
        .get(
            "/v1/reservations/{id}",
            Doc::new("getReservation", "verify", "A reservation (admins, or the owner of its token)")
                .bearer()
                .response::<ReservationView>(200, "The reservation")
                .problems(&[400, 404]),
            show,
        )
        .post(
            "/v1/reservations/{id}/settle",
            Doc::new("settleReservation", "verify", "Replace a reservation's holds with the call's actual usage")
                .describe(
                    "In one transaction the holds are returned, the actual usage counts against the limits and \
                     the usage event is stored (`token_id` may be left out: it is the reservation's). Settling \
                     again records nothing more (`outcome: duplicate`). An expired reservation's usage is \
                     recorded as plain usage; a released one answers 409.",
                )
                .bearer()
                .body::<SettleBody>()
                .response::<SettlementView<'static>>(200, "Settled")
                .problems(&[400, 403, 404, 409, 413, 415, 503]),
            settle,
        )
        .post(
            "/v1/reservations/{id}/release",
            Doc::new(
                "releaseReservation",
                "verify",
                "Give a reservation's holds back unused (the call did not happen)",
            )
            .describe("Releasing again, or releasing a settled or expired reservation, changes nothing.")
            .bearer()
            .response::<ReservationView>(200, "Released (or as it was when already closed)")
            .problems(&[400, 403, 404, 503]),
            release,
        )
}

/// The settle body: a usage event whose `token_id` may be left out.
#[derive(Debug)]
struct SettleBody;

impl ApiSchema for SettleBody {
    const NAME: &'static str = "SettleReservation";
    fn schema(_: &mut Components) -> Value {
        event_schema(false)
    }
}

/// One hold: an amount counted against one limit's window.
#[derive(Debug, Serialize)]
struct HoldView {
    subject: String,
    limit: String,
    window_start: Timestamp,
    amount: i64,
}

#[derive(Debug, Serialize)]
struct ReservationView {
    id: ReservationId,
    token_id: TokenId,
    state: ReservationState,
    holds: Vec<HoldView>,
    created_at: Timestamp,
    expires_at: Timestamp,
    closed_at: Option<Timestamp>,
}

impl ReservationView {
    fn of(record: &ReservationRecord) -> Self {
        Self {
            id: record.id,
            token_id: record.token_id,
            state: record.state,
            holds: record
                .holds
                .iter()
                .map(|(key, amount)| HoldView {
                    subject: key.limit.subject.to_string(),
                    limit: key.limit.name(),
                    window_start: key.window_start,
                    amount: *amount,
                })
                .collect(),
            created_at: record.created_at,
            expires_at: record.expires_at,
            closed_at: record.closed_at,
        }
    }
}

fn reservation_schema() -> Value {
    json!({
        "type": "object",
        "required": ["id", "token_id", "state", "holds", "created_at", "expires_at", "closed_at"],
        "properties": {
            "id": id("rsv_", "The reservation."),
            "token_id": id("tok_", "The token it holds for."),
            "state": { "type": "string", "enum": ["held", "settled", "released", "expired"] },
            "holds": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["subject", "limit", "window_start", "amount"],
                    "properties": {
                        "subject": { "type": "string", "description": "`token:tok_…`, `user:usr_…`, `project:prj_…`…" },
                        "limit": { "type": "string", "description": "e.g. `cost_per_day`." },
                        "window_start": timestamp("The window the amount counts in."),
                        "amount": { "type": "integer", "description": "Tokens, or microdollars." },
                    }
                }
            },
            "created_at": timestamp("When."),
            "expires_at": timestamp("When the holds return by themselves."),
            "closed_at": nullable(timestamp("When it was settled, released or expired.")),
        }
    })
}

impl ApiSchema for ReservationView {
    const NAME: &'static str = "Reservation";
    fn schema(_: &mut Components) -> Value {
        reservation_schema()
    }
}

#[derive(Debug, Serialize)]
struct SettlementView<'a> {
    reservation: ReservationView,
    event_id: Option<&'a EventId>,
    outcome: UsageOutcome,
    cost_micros: Microdollars,
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt: Option<Receipt>,
}

impl<'a> SettlementView<'a> {
    fn of(settlement: &'a Settlement, receipt: Option<Receipt>) -> Self {
        Self {
            receipt,
            reservation: ReservationView::of(&settlement.reservation),
            event_id: settlement.event.event_id.as_ref(),
            outcome: settlement.outcome,
            cost_micros: settlement.event.cost.unwrap_or(Microdollars::ZERO),
        }
    }
}

impl ApiSchema for SettlementView<'_> {
    const NAME: &'static str = "Settlement";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["reservation", "event_id", "outcome", "cost_micros"],
            "properties": {
                "reservation": reservation_schema(),
                "event_id": { "type": ["string", "null"] },
                "outcome": outcome_schema(),
                "cost_micros": { "type": "integer", "minimum": 0, "description": "The actual cost as stored." },
                "receipt": receipt_schema(),
            }
        })
    }
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ReservationId>,
) -> Result<Response, ApiError> {
    let record = state.metering().reservation(&caller.principal, &id).await?;
    Ok(axum::Json(ReservationView::of(&record)).into_response())
}

async fn settle(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ReservationId>,
    Json(input): Json<UsageInput>,
) -> Result<Response, ApiError> {
    let settlement = state.metering().settle_reservation(&caller.principal, &id, &input).await?;
    // Settled at the reservation's close, which a repeat does not move: a repeat signs the same.
    let receipt = sign(&state, || {
        let at = settlement.reservation.closed_at.unwrap_or(settlement.event.at);
        usage_content(ReceiptKind::Settle, &settlement.event, Some(id.to_string()), at)
    });
    Ok(axum::Json(SettlementView::of(&settlement, receipt)).into_response())
}

async fn release(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ReservationId>,
) -> Result<Response, ApiError> {
    let record = state.metering().release_reservation(&caller.principal, &id).await?;
    Ok(axum::Json(ReservationView::of(&record)).into_response())
}

#[cfg(test)]
mod tests {
    fn record_id(settlement: &Settlement) -> String {
        settlement.reservation.id.to_string()
    }

    use tollgate::{CounterKey, LimitKey, LimitSubject, Metric, ModelName, ProviderName, UsageEvent, Window};

    use super::*;
    use crate::openapi::conformance::check_response;

    #[test]
    fn schemas_match_their_types() {
        let token_id = TokenId::generate();
        let at = Timestamp::from_unix_micros(1_800_000_000_000_000);
        let key = LimitKey { subject: LimitSubject::Token(token_id), metric: Metric::Cost, window: Window::Day };
        let record = ReservationRecord {
            id: ReservationId::generate(),
            token_id,
            holds: vec![(CounterKey::at(key, at), 1_000)],
            state: ReservationState::Settled,
            created_at: at,
            expires_at: at,
            closed_at: Some(at),
        };
        check_response(&ReservationView::of(&record));
        let mut event =
            UsageEvent::new(token_id, at, ProviderName::parse("openai").unwrap(), ModelName::parse("gpt-4o").unwrap());
        event.event_id = Some(EventId::parse("req-1").unwrap());
        event.cost = Some(Microdollars::from_micros(7));
        let settlement = Settlement { reservation: record, event, outcome: UsageOutcome::Recorded };
        check_response(&SettlementView::of(&settlement, None));
        let signer = tollgate::ReceiptSigner::ephemeral().unwrap();
        let content = usage_content(ReceiptKind::Settle, &settlement.event, Some(record_id(&settlement)), at);
        check_response(&SettlementView::of(&settlement, Some(signer.sign(content))));
    }
}
