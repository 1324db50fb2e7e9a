//! Reports: usage totals and breakdowns, error rates, latency percentiles and top spenders, all
//! summed from hourly rollups (never from raw events).

use serde::Serialize;
use tollgate_store::{Page, PageRequest, UsageFilter, UsageGroup, UsageGroupBy, UsageTotals};
use tollgate_types::{LimitSubject, Principal, Timestamp, ValidationError};

use super::Metering;
use crate::authz::{Operation, UsageScope, authorize};
use crate::{Error, Result};

/// Usage over a time range: the totals and, when asked, one row per group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageReport {
    /// From (rounded down to the hour).
    pub since: Timestamp,
    /// Until (exclusive).
    pub until: Timestamp,
    /// How `groups` are grouped.
    pub group_by: Option<UsageGroupBy>,
    /// Sums over everything matched.
    pub totals: UsageTotals,
    /// Per group, highest cost first (then by key).
    pub groups: Vec<UsageGroup>,
    /// Pass this back for the next page of groups; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// The operator's overview of a time range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnalyticsReport {
    /// From (rounded down to the hour).
    pub since: Timestamp,
    /// Until (exclusive).
    pub until: Timestamp,
    /// Sums over everything.
    pub totals: UsageTotals,
    /// Input plus output tokens.
    pub total_tokens: u64,
    /// Errored events per event, 0 to 1 (a ratio for display, not money).
    pub error_rate: f64,
    /// Median latency: the upper bound of its histogram bucket, in milliseconds.
    pub latency_p50_ms: Option<u32>,
    /// 95th percentile latency: the upper bound of its histogram bucket, in milliseconds.
    pub latency_p95_ms: Option<u32>,
    /// Per provider.
    pub by_provider: Vec<UsageGroup>,
    /// Per provider/model.
    pub by_model: Vec<UsageGroup>,
    /// Per project.
    pub by_project: Vec<UsageGroup>,
    /// Per owner.
    pub by_owner: Vec<UsageGroup>,
    /// The tokens that spent the most.
    pub top_tokens: Vec<UsageGroup>,
}

/// Errored events per event, rounded to four decimals.
pub(crate) fn error_rate(totals: &UsageTotals) -> f64 {
    if totals.events == 0 {
        return 0.0;
    }
    let per_ten_thousand = (u128::from(totals.errors) * 10_000).div_ceil(u128::from(totals.events));
    u32::try_from(per_ten_thousand).map_or(1.0, |rate| f64::from(rate) / 10_000.0)
}

impl Metering {
    /// Restricts a filter to what `principal` may read: admins read everything; a project's members
    /// read that project's usage; everyone else reads their own.
    async fn scoped(&self, principal: &Principal, filter: &UsageFilter) -> Result<UsageFilter> {
        if filter.since >= filter.until {
            return Err(ValidationError::new("since", "must be before until").into());
        }
        let mut scoped = filter.clone();
        if authorize(principal, Operation::ReadUsage { scope: UsageScope::Everything }).is_ok() {
            return Ok(scoped);
        }
        if let Some(project) = &filter.project {
            self.authorize_read(principal, Some(&LimitSubject::Project(*project))).await?;
            return Ok(scoped);
        }
        if let Some(token) = &filter.token_id {
            self.authorize_read(principal, Some(&LimitSubject::Token(*token))).await?;
        }
        let own = principal.owner_id().ok_or_else(|| Error::Forbidden("reading usage".to_owned()))?;
        authorize(principal, Operation::ReadUsage { scope: UsageScope::Owner(scoped.owner.unwrap_or(own)) })?;
        scoped.owner = Some(own);
        Ok(scoped)
    }

    /// Usage matching `filter`: totals, plus a page of groups when `group_by` is given (every
    /// filter applied before paging, so the totals cover every page).
    pub async fn usage(
        &self,
        principal: &Principal,
        filter: &UsageFilter,
        group_by: Option<UsageGroupBy>,
        page: &PageRequest,
    ) -> Result<UsageReport> {
        let filter = self.scoped(principal, filter).await?;
        let store = &self.inner.store;
        let totals = store.usage_summary(&filter, None, 1).await?.first().map(|group| group.totals).unwrap_or_default();
        let groups = match group_by {
            Some(group_by) => store.usage_groups(&filter, Some(group_by), page).await?,
            None => Page { items: Vec::new(), next_cursor: None },
        };
        Ok(UsageReport {
            since: filter.since,
            until: filter.until,
            group_by,
            totals,
            groups: groups.items,
            next_cursor: groups.next_cursor,
        })
    }

    /// A page of the groups of usage matching `filter` (`None`: the one total row), without
    /// [`Metering::usage`]'s totals over every page and without latency histograms (left empty):
    /// one scan of the rollups summing six columns instead of 23, for readers that show neither
    /// (the dashboard's charts and top lists).
    pub async fn usage_breakdown(
        &self,
        principal: &Principal,
        filter: &UsageFilter,
        group_by: Option<UsageGroupBy>,
        page: &PageRequest,
    ) -> Result<Page<UsageGroup>> {
        let filter = self.scoped(principal, filter).await?;
        Ok(self.inner.store.usage_groups_without_latency(&filter, group_by, page).await?)
    }

    /// The overview of `[since, until)`: totals, error rate, p50/p95 latency, breakdowns and the
    /// `top` tokens by spend. Admins only.
    pub async fn analytics(
        &self,
        principal: &Principal,
        since: Timestamp,
        until: Timestamp,
        top: u32,
    ) -> Result<AnalyticsReport> {
        authorize(principal, Operation::ReadUsage { scope: UsageScope::Everything })?;
        let filter = self.scoped(principal, &UsageFilter::between(since, until)).await?;
        let store = &self.inner.store;
        let breakdown = |group_by| store.usage_summary(&filter, Some(group_by), top.max(1));
        let totals = store.usage_summary(&filter, None, 1).await?.first().map(|group| group.totals).unwrap_or_default();
        Ok(AnalyticsReport {
            since,
            until,
            total_tokens: totals.total_tokens(),
            error_rate: error_rate(&totals),
            latency_p50_ms: totals.latency.percentile(50),
            latency_p95_ms: totals.latency.percentile(95),
            totals,
            by_provider: breakdown(UsageGroupBy::Provider).await?,
            by_model: breakdown(UsageGroupBy::Model).await?,
            by_project: breakdown(UsageGroupBy::Project).await?,
            by_owner: breakdown(UsageGroupBy::Owner).await?,
            top_tokens: breakdown(UsageGroupBy::Token).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_rates_are_ratios_rounded_up_to_four_decimals() {
        let totals = |events, errors| UsageTotals { events, errors, ..UsageTotals::default() };
        assert_eq!(error_rate(&totals(0, 0)), 0.0);
        assert_eq!(error_rate(&totals(4, 1)), 0.25);
        assert_eq!(error_rate(&totals(3, 1)), 0.3334);
        assert_eq!(error_rate(&totals(10, 10)), 1.0);
    }
}
