//! Leases of request quotas on PostgreSQL, and the `QuotaStore` implementation (reservations are in
//! `reservations`). A lease locks its counter, grants what fits under the maximum and adds it, in
//! one transaction: concurrent holders share exactly the maximum.

use async_trait::async_trait;
use sqlx::PgConnection;
use tollgate_store::{
    EventToRecord, LeaseGrant, LeaseRequest, LeaseReturn, LeaseSummary, LeaseUse, QuotaStore, ReservationInsert,
    ReservationRecord, ReserveOutcome, Result, Settled,
};
use tollgate_types::{CounterKey, HolderId, ReservationId, Timestamp};

use crate::PgStore;
use crate::counters;
use crate::error::PgResultExt;
use crate::reservations::{self, EXPIRE_CHUNK};
use crate::rows::int;
use crate::store::retrying;

/// A lease row of `$1` (the holder) on the counter `$2` … `$6`.
const LEASE: &str =
    "holder = $1 AND subject_kind = $2 AND subject = $3 AND metric = $4 AND period = $5 AND window_start = $6";

type LeaseQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds a holder and a counter's key as `$1` … `$6`.
fn bind_lease<'q>(query: LeaseQuery<'q>, holder: &HolderId, key: &CounterKey) -> LeaseQuery<'q> {
    query
        .bind(holder.to_string())
        .bind(key.limit.subject.kind())
        .bind(key.limit.subject.id())
        .bind(key.limit.metric.as_str())
        .bind(key.limit.window.as_str())
        .bind(key.window_start.unix_micros())
}

async fn lease(store: &PgStore, holder: &HolderId, request: &LeaseRequest, at: Timestamp) -> Result<LeaseGrant> {
    let mut tx = store.begin().await?;
    let used = counters::ensure(tx.conn(), &request.key).await?;
    let max = i64::try_from(request.max).unwrap_or(i64::MAX);
    let left = u64::try_from(max.saturating_sub(used)).unwrap_or(0);
    let granted = request.want.min(left);
    if granted == 0 {
        tx.commit().await?;
        return Ok(LeaseGrant { granted, used });
    }
    let amount = int(granted);
    let used = counters::add(tx.conn(), &request.key, amount).await?;
    // The holder must be registered: its foreign key refuses the lease otherwise (a conflict,
    // and the counter's change is rolled back with it).
    bind_lease(
        sqlx::query(
            "INSERT INTO quota_leases (holder, subject_kind, subject, metric, period, window_start, window_end,
                granted, consumed, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9)
             ON CONFLICT (holder, subject_kind, subject, metric, period, window_start)
             DO UPDATE SET granted = quota_leases.granted + excluded.granted, updated_at = excluded.updated_at",
        ),
        holder,
        &request.key,
    )
    .bind(request.key.window_end().unix_micros())
    .bind(amount)
    .bind(at.unix_micros())
    .execute(tx.conn())
    .await
    .store()?;
    tx.commit().await?;
    Ok(LeaseGrant { granted, used })
}

async fn report(store: &PgStore, holder: &HolderId, uses: &[LeaseUse], at: Timestamp) -> Result<()> {
    let mut tx = store.begin().await?;
    let mut uses: Vec<&LeaseUse> = uses.iter().collect();
    uses.sort_by(|a, b| a.key.cmp(&b.key));
    for lease in uses {
        bind_lease(
            sqlx::query(&format!(
                "UPDATE quota_leases SET consumed = least(granted, greatest(consumed, $7)), updated_at = $8 WHERE {LEASE}"
            )),
            holder,
            &lease.key,
        )
        .bind(int(lease.consumed))
        .bind(at.unix_micros())
        .execute(tx.conn())
        .await
        .store()?;
    }
    sqlx::query("UPDATE quota_holders SET heartbeat_at = greatest(heartbeat_at, $2) WHERE id = $1")
        .bind(holder.to_string())
        .bind(at.unix_micros())
        .execute(tx.conn())
        .await
        .store()?;
    tx.commit().await?;
    Ok(())
}

/// What the holder's lease on `key` still holds unused, at most `unused` (locked with `lock`).
async fn returnable(
    connection: &mut PgConnection,
    holder: &HolderId,
    key: &CounterKey,
    unused: u64,
    lock: bool,
) -> Result<i64> {
    let sql = format!(
        "SELECT least($7, granted - consumed) FROM quota_leases WHERE {LEASE}{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row: Option<(i64,)> = sqlx::query_as(&sql)
        .bind(holder.to_string())
        .bind(key.limit.subject.kind())
        .bind(key.limit.subject.id())
        .bind(key.limit.metric.as_str())
        .bind(key.limit.window.as_str())
        .bind(key.window_start.unix_micros())
        .bind(int(unused))
        .fetch_optional(connection)
        .await
        .store()?;
    Ok(row.map_or(0, |(unused,)| unused).max(0))
}

async fn give_back(store: &PgStore, holder: &HolderId, returns: &[LeaseReturn], at: Timestamp) -> Result<()> {
    let mut tx = store.begin().await?;
    let mut returns: Vec<&LeaseReturn> = returns.iter().collect();
    returns.sort_by(|a, b| a.key.cmp(&b.key));
    for lease in returns {
        // Never more than the lease still holds unused; the counter is locked before the lease,
        // as a lease does, and the lease read again under its lock.
        if returnable(tx.conn(), holder, &lease.key, lease.unused, false).await? == 0 {
            continue;
        }
        counters::ensure(tx.conn(), &lease.key).await?;
        let unused = returnable(tx.conn(), holder, &lease.key, lease.unused, true).await?;
        if unused == 0 {
            continue;
        }
        counters::add(tx.conn(), &lease.key, -unused).await?;
        bind_lease(
            sqlx::query(&format!("UPDATE quota_leases SET granted = granted - $7, updated_at = $8 WHERE {LEASE}")),
            holder,
            &lease.key,
        )
        .bind(unused)
        .bind(at.unix_micros())
        .execute(tx.conn())
        .await
        .store()?;
    }
    sqlx::query("UPDATE quota_holders SET stopped_at = $2, heartbeat_at = greatest(heartbeat_at, $2) WHERE id = $1")
        .bind(holder.to_string())
        .bind(at.unix_micros())
        .execute(tx.conn())
        .await
        .store()?;
    tx.commit().await?;
    Ok(())
}

async fn purge(store: &PgStore, before: Timestamp) -> Result<u64> {
    let mut tx = store.begin().await?;
    let before = before.unix_micros();
    let mut deleted = 0;
    for sql in [
        "DELETE FROM quota_leases WHERE window_end < $1",
        "DELETE FROM quota_reservations WHERE closed_at IS NOT NULL AND closed_at < $1",
        "DELETE FROM quota_holders WHERE heartbeat_at < $1
         AND NOT EXISTS (SELECT 1 FROM quota_leases WHERE holder = quota_holders.id)",
    ] {
        deleted += sqlx::query(sql).bind(before).execute(tx.conn()).await.store()?.rows_affected();
    }
    tx.commit().await?;
    Ok(deleted)
}

#[async_trait]
impl QuotaStore for PgStore {
    async fn register_holder(&self, holder: &HolderId, at: Timestamp) -> Result<()> {
        sqlx::query("INSERT INTO quota_holders (id, started_at, heartbeat_at) VALUES ($1, $2, $2)")
            .bind(holder.to_string())
            .bind(at.unix_micros())
            .execute(self.pool())
            .await
            .store()
            .map(drop)
    }

    async fn lease(&self, holder: &HolderId, request: &LeaseRequest, at: Timestamp) -> Result<LeaseGrant> {
        retrying(move || lease(self, holder, request, at)).await
    }

    async fn report_leases(&self, holder: &HolderId, uses: &[LeaseUse], at: Timestamp) -> Result<()> {
        retrying(move || report(self, holder, uses, at)).await
    }

    async fn return_leases(&self, holder: &HolderId, returns: &[LeaseReturn], at: Timestamp) -> Result<()> {
        retrying(move || give_back(self, holder, returns, at)).await
    }

    async fn lease_summaries(
        &self,
        keys: &[CounterKey],
        except: &HolderId,
        live_since: Timestamp,
    ) -> Result<Vec<LeaseSummary>> {
        let mut connection = self.pool().acquire().await.store()?;
        let mut summaries = Vec::with_capacity(keys.len());
        for key in keys {
            let (leased, stranded): (i64, i64) = sqlx::query_as(
                "SELECT
                    coalesce(sum(CASE WHEN h.stopped_at IS NULL AND h.heartbeat_at >= $7
                                      THEN l.granted - l.consumed ELSE 0 END), 0)::bigint,
                    coalesce(sum(CASE WHEN h.stopped_at IS NULL AND h.heartbeat_at < $7
                                      THEN l.granted - l.consumed ELSE 0 END), 0)::bigint
                 FROM quota_leases l JOIN quota_holders h ON h.id = l.holder
                 WHERE l.subject_kind = $2 AND l.subject = $3 AND l.metric = $4 AND l.period = $5
                   AND l.window_start = $6 AND l.holder <> $1",
            )
            .bind(except.to_string())
            .bind(key.limit.subject.kind())
            .bind(key.limit.subject.id())
            .bind(key.limit.metric.as_str())
            .bind(key.limit.window.as_str())
            .bind(key.window_start.unix_micros())
            .bind(live_since.unix_micros())
            .fetch_one(&mut *connection)
            .await
            .store()?;
            let count = |units: i64| u64::try_from(units).unwrap_or(0);
            summaries.push(LeaseSummary { leased: count(leased), stranded: count(stranded) });
        }
        Ok(summaries)
    }

    async fn stranded_units(&self, live_since: Timestamp, now: Timestamp) -> Result<u64> {
        let stranded: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(l.granted - l.consumed), 0)::bigint
             FROM quota_leases l JOIN quota_holders h ON h.id = l.holder
             WHERE l.window_end > $2 AND h.stopped_at IS NULL AND h.heartbeat_at < $1",
        )
        .bind(live_since.unix_micros())
        .bind(now.unix_micros())
        .fetch_one(self.pool())
        .await
        .store()?;
        Ok(u64::try_from(stranded).unwrap_or(0))
    }

    async fn reserve(&self, insert: &ReservationInsert) -> Result<ReserveOutcome> {
        retrying(move || reservations::reserve(self, insert)).await
    }

    async fn settle_reservation(&self, id: &ReservationId, usage: &EventToRecord, at: Timestamp) -> Result<Settled> {
        retrying(move || reservations::settle(self, id, usage, at)).await
    }

    async fn release_reservation(&self, id: &ReservationId, at: Timestamp) -> Result<ReservationRecord> {
        retrying(move || reservations::release(self, id, at)).await
    }

    async fn expire_reservations(&self, now: Timestamp) -> Result<u64> {
        // Chunk by chunk until one comes back short: every reservation past its expiry, each
        // closed together with the return of its holds.
        let mut expired = 0;
        loop {
            let chunk = retrying(move || reservations::expire_chunk(self, now)).await?;
            expired += chunk;
            if chunk < EXPIRE_CHUNK {
                return Ok(expired);
            }
        }
    }

    async fn reservation(&self, id: &ReservationId) -> Result<ReservationRecord> {
        let mut connection = self.pool().acquire().await.store()?;
        reservations::fetch(&mut connection, id, false).await
    }

    async fn counter_values(&self, keys: &[CounterKey]) -> Result<Vec<i64>> {
        let mut connection = self.pool().acquire().await.store()?;
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(counters::value(&mut connection, key).await?);
        }
        Ok(values)
    }

    async fn purge_quota_state(&self, before: Timestamp) -> Result<u64> {
        retrying(move || purge(self, before)).await
    }
}
