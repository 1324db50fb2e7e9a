//! Service accounts and owners of either kind on PostgreSQL.

use async_trait::async_trait;
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use tollgate_store::{AccountStatusChanged, AccountStore, Page, PageRequest, Result, ServiceAccountInsert, StoreError};
use tollgate_types::{
    AccountStatus, AuditEvent, Description, OwnerId, OwnerRecord, Role, ServiceAccountId, ServiceAccountRecord,
    UserStatus, Username,
};

use crate::PgStore;
use crate::error::{PgResultExt, corrupt};
use crate::rows::{get, parsed, time};
use crate::store::retrying;

const COLUMNS: &str = "id, name, description, status, status_reason, created_at, updated_at";
const TABLE: &str = "service_accounts";

fn account_from_row(row: &PgRow) -> Result<ServiceAccountRecord> {
    let text = |column: &str| -> Result<String> { get(row, TABLE, column) };
    Ok(ServiceAccountRecord {
        id: parsed(TABLE, "id", ServiceAccountId::parse(&text("id")?))?,
        name: parsed(TABLE, "name", Username::parse_field("name", &text("name")?))?,
        description: parsed(TABLE, "description", Description::parse(&text("description")?))?,
        status: parsed(TABLE, "status", text("status")?.parse::<AccountStatus>())?,
        status_reason: get(row, TABLE, "status_reason")?,
        created_at: time(row, TABLE, "created_at")?,
        updated_at: time(row, TABLE, "updated_at")?,
    })
}

async fn fetch_account(
    connection: &mut PgConnection,
    id: &ServiceAccountId,
    lock: bool,
) -> Result<ServiceAccountRecord> {
    let sql = format!("SELECT {COLUMNS} FROM service_accounts WHERE id = $1{}", if lock { " FOR UPDATE" } else { "" });
    let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(connection).await.store()?;
    row.as_ref().map(account_from_row).transpose()?.ok_or(StoreError::NotFound { entity: "service account" })
}

/// The owner `id` names, with its name, status and role. `NotFound` (entity `owner`).
pub(crate) async fn fetch_owner(connection: &mut PgConnection, id: &OwnerId) -> Result<OwnerRecord> {
    let owner = match id {
        OwnerId::User(user) => {
            let row = sqlx::query("SELECT username, status, role FROM users WHERE id = $1")
                .bind(user.to_string())
                .fetch_optional(connection)
                .await
                .store()?;
            match row {
                Some(row) => {
                    let status: String = get(&row, "users", "status")?;
                    let role: String = get(&row, "users", "role")?;
                    Some(OwnerRecord {
                        id: *id,
                        name: parsed("users", "username", Username::parse(&get::<String>(&row, "users", "username")?))?,
                        active: status == UserStatus::Active.as_str(),
                        role: Some(parsed("users", "role", role.parse::<Role>())?),
                    })
                }
                None => None,
            }
        }
        OwnerId::ServiceAccount(account) => {
            let row = sqlx::query("SELECT name, status FROM service_accounts WHERE id = $1")
                .bind(account.to_string())
                .fetch_optional(connection)
                .await
                .store()?;
            match row {
                Some(row) => {
                    let status: String = get(&row, TABLE, "status")?;
                    let name: String = get(&row, TABLE, "name")?;
                    Some(OwnerRecord {
                        id: *id,
                        name: parsed(TABLE, "name", Username::parse_field("name", &name))?,
                        active: status == AccountStatus::Active.as_str(),
                        role: None,
                    })
                }
                None => None,
            }
        }
    };
    owner.ok_or(StoreError::NotFound { entity: "owner" })
}

async fn insert_account(
    store: &PgStore,
    insert: &ServiceAccountInsert,
    audit: &AuditEvent,
) -> Result<ServiceAccountRecord> {
    let mut tx = store.begin().await?;
    // The trigger and the unique index refuse it too; asking first gives the conflict a message
    // that names the field.
    let taken: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM users WHERE lower(username) = lower($1)
         UNION ALL SELECT 1 FROM service_accounts WHERE lower(name) = lower($1) LIMIT 1",
    )
    .bind(insert.account.name.as_str())
    .fetch_optional(tx.conn())
    .await
    .store()?;
    if taken.is_some() {
        return Err(StoreError::Conflict("name is already taken by a user or a service account".to_owned()));
    }
    sqlx::query(
        "INSERT INTO service_accounts (id, name, description, status, created_at, updated_at)
         VALUES ($1, $2, $3, 'active', $4, $4)",
    )
    .bind(insert.id.to_string())
    .bind(insert.account.name.as_str())
    .bind(insert.account.description.as_str())
    .bind(insert.created_at.unix_micros())
    .execute(tx.conn())
    .await
    .store()?;
    let record = fetch_account(tx.conn(), &insert.id, false).await?;
    tx.audit(audit.clone());
    tx.commit().await?;
    Ok(record)
}

async fn set_status(
    store: &PgStore,
    id: &ServiceAccountId,
    status: AccountStatus,
    reason: Option<&str>,
    audit: &AuditEvent,
) -> Result<AccountStatusChanged> {
    let mut tx = store.begin().await?;
    let current = fetch_account(tx.conn(), id, true).await?;
    if current.status == status {
        tx.rollback().await?;
        return Ok(AccountStatusChanged { record: current, revoked_tokens: Vec::new() });
    }
    sqlx::query(
        "UPDATE service_accounts SET status = $1, status_reason = $2, updated_at = greatest(updated_at, $3)
         WHERE id = $4",
    )
    .bind(status.as_str())
    .bind(reason)
    .bind(audit.at.unix_micros())
    .bind(id.to_string())
    .execute(tx.conn())
    .await
    .store()?;
    let record = fetch_account(tx.conn(), id, false).await?;
    tx.audit(audit.clone());
    let revoked_tokens = if status == AccountStatus::Suspended {
        let why = match reason {
            Some(reason) => format!("service account suspended: {reason}"),
            None => "service account suspended".to_owned(),
        };
        let why: String = why.chars().take(1024).collect();
        crate::tokens::revoke_where(&mut tx, "owner_id = $1", &[id.to_string()], &why, audit).await?
    } else {
        Vec::new()
    };
    tx.commit().await?;
    Ok(AccountStatusChanged { record, revoked_tokens })
}

#[async_trait]
impl AccountStore for PgStore {
    async fn insert_service_account(
        &self,
        insert: &ServiceAccountInsert,
        audit: &AuditEvent,
    ) -> Result<ServiceAccountRecord> {
        retrying(move || insert_account(self, insert, audit)).await
    }

    async fn service_account(&self, id: &ServiceAccountId) -> Result<ServiceAccountRecord> {
        let mut connection = self.pool().acquire().await.store()?;
        fetch_account(&mut connection, id, false).await
    }

    async fn list_service_accounts(&self, page: &PageRequest) -> Result<Page<ServiceAccountRecord>> {
        let before = match &page.cursor {
            Some(cursor) => ServiceAccountId::parse(cursor).map_err(|_| StoreError::InvalidCursor)?.to_string(),
            None => "~".to_owned(), // sorts after every `svc_…` id (ids are in the "C" collation)
        };
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM service_accounts WHERE id < $1 ORDER BY id DESC LIMIT $2"))
                .bind(before)
                .bind(i64::from(page.limit) + 1)
                .fetch_all(self.pool())
                .await
                .store()?;
        let items = rows.iter().map(account_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |record| record.id.to_string()))
    }

    async fn set_service_account_status(
        &self,
        id: &ServiceAccountId,
        status: AccountStatus,
        reason: Option<&str>,
        audit: &AuditEvent,
    ) -> Result<AccountStatusChanged> {
        retrying(move || set_status(self, id, status, reason, audit)).await
    }

    async fn owner(&self, id: &OwnerId) -> Result<OwnerRecord> {
        let mut connection = self.pool().acquire().await.store()?;
        fetch_owner(&mut connection, id).await
    }

    async fn owner_by_name(&self, name: &Username) -> Result<Option<OwnerRecord>> {
        let mut connection = self.pool().acquire().await.store()?;
        let id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM users WHERE lower(username) = lower($1)
             UNION ALL SELECT id FROM service_accounts WHERE lower(name) = lower($1) LIMIT 1",
        )
        .bind(name.as_str())
        .fetch_optional(&mut *connection)
        .await
        .store()?;
        match id {
            Some(id) => {
                let id = OwnerId::parse(&id).map_err(|error| corrupt("owner id", error))?;
                fetch_owner(&mut connection, &id).await.map(Some)
            }
            None => Ok(None),
        }
    }
}
