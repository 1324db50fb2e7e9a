//! What agents report about their calls (analytics events), and what people read about agents:
//! spending by agent, provider and model, and each agent's budget status with its risk level.
//!
//! Analytics events go into the same durable pipeline and hourly rollups as usage and budget
//! reports, so there is one source of truth for spend.

use serde::Serialize;
use tollgate_store::{AgentFilter, AgentScope, Page, PageRequest, UsageFilter, UsageGroup, UsageGroupBy, UsageTotals};
use tollgate_types::{
    AgentId, AgentName, AgentStatus, AnalyticsEventInput, EventId, LeaseId, Permission, Principal, Timestamp,
};

use super::{AgentService, BudgetView};
use crate::authz::{Operation, authorize};
use crate::metering::error_rate;
use crate::{Caller, Error, Result, UsageOutcome};

/// What became of one analytics event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngestedEvent {
    /// The stored key: the event's id, or `lease/event_id` when it named a lease.
    pub event_id: EventId,
    /// Recorded, or a duplicate of an event (or budget report) already stored for the agent.
    pub outcome: UsageOutcome,
}

/// Sums over an agent's usage with the figures derived from them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpendingFigures {
    /// The sums.
    #[serde(flatten)]
    pub totals: UsageTotals,
    /// Input plus output tokens.
    pub total_tokens: u64,
    /// Events that succeeded per event, 0 to 1, four decimals (`None` without events).
    pub success_rate: Option<f64>,
    /// Cost per request, microdollars rounded down (`None` without requests).
    pub average_cost_per_request_micros: Option<i64>,
}

impl From<UsageTotals> for SpendingFigures {
    fn from(totals: UsageTotals) -> Self {
        let average = (totals.requests > 0).then(|| {
            let average = i128::from(totals.cost.micros()) / i128::from(totals.requests);
            i64::try_from(average).unwrap_or(i64::MAX)
        });
        Self {
            total_tokens: totals.total_tokens(),
            success_rate: (totals.events > 0).then(|| ((1.0 - error_rate(&totals)) * 10_000.0).round() / 10_000.0),
            average_cost_per_request_micros: average,
            totals,
        }
    }
}

/// One group of a spending report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpendingGroup {
    /// The group's key (an agent id, a provider, `provider/model`, …).
    pub key: Option<String>,
    /// Its figures.
    #[serde(flatten)]
    pub figures: SpendingFigures,
}

/// Agents' spending over a range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpendingReport {
    /// From (inclusive, a whole hour).
    pub since: Timestamp,
    /// Until (exclusive).
    pub until: Timestamp,
    /// How `groups` are grouped.
    pub group_by: Option<UsageGroupBy>,
    /// Over every agent matched (every page).
    pub totals: SpendingFigures,
    /// One page of groups, highest cost first.
    pub groups: Vec<SpendingGroup>,
    /// Pass this back for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// How close an agent is to the end of its budget, by the share of its allocation spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    /// Less than 50 % spent.
    Low,
    /// At least 50 %.
    Medium,
    /// At least 80 %.
    High,
    /// At least 95 %.
    Critical,
    /// Everything spent (or nothing allocated).
    Exhausted,
}

impl RiskLevel {
    /// Its name, as serialized (`low` … `exhausted`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
            Self::Exhausted => "exhausted",
        }
    }

    /// The level of `spent` out of `allocated`, exactly (in basis points, rounded down).
    pub fn of(spent: i64, allocated: i64) -> (u32, Self) {
        let basis_points = if allocated <= 0 {
            10_000
        } else {
            let share = i128::from(spent.max(0)) * 10_000 / i128::from(allocated);
            u32::try_from(share).unwrap_or(u32::MAX)
        };
        let level = match basis_points {
            10_000.. => Self::Exhausted,
            9_500.. => Self::Critical,
            8_000.. => Self::High,
            5_000.. => Self::Medium,
            _ => Self::Low,
        };
        (basis_points, level)
    }
}

/// An agent's budget as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetStatus {
    /// The agent.
    pub agent_id: AgentId,
    /// Its name.
    pub name: AgentName,
    /// Whether it may work.
    pub agent_status: AgentStatus,
    /// Allocated, reserved, spent, available.
    #[serde(flatten)]
    pub budget: BudgetView,
    /// Spent per allocated, in percent with two decimals, rounded down (100 when nothing is allocated).
    pub percent_used: f64,
    /// The risk level.
    pub risk: RiskLevel,
}

impl AgentService {
    /// Records analytics events from the calling agent (its own credential), durably: every event
    /// is validated first (one bad event: nothing is stored), a lease it names must be its own,
    /// and a repeat of an `event_id` for the agent is a duplicate, counted once.
    pub async fn ingest_events(&self, caller: &Caller, inputs: &[AnalyticsEventInput]) -> Result<Vec<IngestedEvent>> {
        let Principal::Agent { id: agent, credential } = caller.principal else {
            return Err(Error::Forbidden("only an agent, with its own credential, sends analytics events".to_owned()));
        };
        authorize(&caller.principal, Operation::ReportAnalytics { agent })?;
        let metering = self.tokens.metering().ok_or_else(|| Error::Unavailable("metering is off".to_owned()))?;
        let now = self.now();
        let mut events = Vec::with_capacity(inputs.len());
        let mut leases: Vec<LeaseId> = Vec::new();
        for input in inputs {
            let event = input.parse(credential, now)?;
            if let Some(lease) = event.lease
                && !leases.contains(&lease)
            {
                self.own_lease(&agent, &lease).await?;
                leases.push(lease);
            }
            events.push(event.usage);
        }
        let recorded = metering.record_for_agent(agent, events).await?;
        Ok(recorded
            .into_iter()
            .filter_map(|item| Some(IngestedEvent { event_id: item.event.event_id?, outcome: item.outcome }))
            .collect())
    }

    /// Agents' spending matching `filter` (its `agent` scope is narrowed to agents; naming an agent
    /// the principal may not read is `NotFound`): admins read every agent's, everyone else their own.
    pub async fn spending(
        &self,
        principal: &Principal,
        filter: &UsageFilter,
        group_by: Option<UsageGroupBy>,
        page: &PageRequest,
    ) -> Result<SpendingReport> {
        let metering = self.tokens.metering().ok_or_else(|| Error::Unavailable("metering is off".to_owned()))?;
        let mut filter = filter.clone();
        match filter.agent {
            Some(AgentScope::One(agent)) => {
                self.agent(principal, &agent).await?;
            }
            Some(AgentScope::Any) => {}
            None => filter.agent = Some(AgentScope::Any),
        }
        let report = metering.usage(principal, &filter, group_by, page).await?;
        let group = |group: UsageGroup| SpendingGroup { key: group.key, figures: group.totals.into() };
        Ok(SpendingReport {
            since: report.since,
            until: report.until,
            group_by: report.group_by,
            totals: report.totals.into(),
            groups: report.groups.into_iter().map(group).collect(),
            next_cursor: report.next_cursor,
        })
    }

    /// Budget status of a page of agents, newest first: admins see every agent (or `filter`'s),
    /// everyone else their own.
    pub async fn budget_statuses(
        &self,
        principal: &Principal,
        filter: &AgentFilter,
        page: &PageRequest,
    ) -> Result<Page<BudgetStatus>> {
        let owner = if principal.level() == Permission::Admin { filter.owner } else { principal.owner_id() };
        authorize(principal, Operation::ReadBudget { owner })?;
        let agents = self.list_agents(principal, filter, page).await?;
        let mut statuses = Vec::with_capacity(agents.items.len());
        for agent in agents.items {
            let account = self.store.budget_account(&agent.id).await?;
            let (basis_points, risk) = RiskLevel::of(account.spent, account.allocated);
            statuses.push(BudgetStatus {
                agent_id: agent.id,
                name: agent.name,
                agent_status: agent.status,
                budget: account.into(),
                percent_used: f64::from(basis_points.min(1_000_000)) / 100.0,
                risk,
            });
        }
        Ok(Page { items: statuses, next_cursor: agents.next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use tollgate_types::Microdollars;

    use super::*;

    #[test]
    fn risk_levels_start_at_their_thresholds() {
        let cases = [
            (0, 100, 0, RiskLevel::Low),
            (4_999, 10_000, 4_999, RiskLevel::Low),
            (50, 100, 5_000, RiskLevel::Medium),
            (79_999, 100_000, 7_999, RiskLevel::Medium),
            (80, 100, 8_000, RiskLevel::High),
            (95, 100, 9_500, RiskLevel::Critical),
            (999_999, 1_000_000, 9_999, RiskLevel::Critical),
            (100, 100, 10_000, RiskLevel::Exhausted),
            (0, 0, 10_000, RiskLevel::Exhausted),
            (i64::MAX, 1, u32::MAX, RiskLevel::Exhausted),
        ];
        for (spent, allocated, basis_points, level) in cases {
            assert_eq!(RiskLevel::of(spent, allocated), (basis_points, level), "{spent}/{allocated}");
        }
    }

    #[test]
    fn derived_figures_round_and_stay_absent_without_data() {
        let empty = SpendingFigures::from(UsageTotals::default());
        assert_eq!((empty.success_rate, empty.average_cost_per_request_micros), (None, None));
        let totals = UsageTotals {
            events: 3,
            requests: 3,
            errors: 1,
            cost: Microdollars::from_micros(1_000),
            input_tokens: 5,
            output_tokens: 7,
            ..UsageTotals::default()
        };
        let figures = SpendingFigures::from(totals);
        assert_eq!(figures.success_rate, Some(0.6666));
        assert_eq!(figures.average_cost_per_request_micros, Some(333));
        assert_eq!(figures.total_tokens, 12);
    }
}
