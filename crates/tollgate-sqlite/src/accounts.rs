//! Service accounts and owners of either kind on SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};
use tollgate_store::{AccountStatusChanged, AccountStore, Page, PageRequest, Result, ServiceAccountInsert, StoreError};
use tollgate_types::{
    AccountStatus, AuditEvent, Description, OwnerId, OwnerRecord, Role, ServiceAccountId, ServiceAccountRecord,
    Timestamp, UserStatus, Username,
};

use crate::SqliteStore;
use crate::audit::append;
use crate::columns::{Column, Columns, collect, execute, first, one};
use crate::error::corrupt;
use crate::writer::Tx;

const NAMES: [&str; 7] = ["id", "name", "description", "status", "status_reason", "created_at", "updated_at"];
const COLUMNS: &str = "id, name, description, status, status_reason, created_at, updated_at";

fn at(index: usize) -> Column {
    Column { index, name: NAMES[index] }
}

fn column<T, E: std::fmt::Display>(name: &str, parsed: std::result::Result<T, E>) -> Result<T> {
    parsed.map_err(|error| corrupt(&format!("service_accounts.{name}"), error))
}

fn account_from_row(row: &Row<'_>) -> Result<ServiceAccountRecord> {
    Ok(ServiceAccountRecord {
        id: column("id", ServiceAccountId::parse(&row.text(at(0))?))?,
        name: column("name", Username::parse_field("name", &row.text(at(1))?))?,
        description: column("description", Description::parse(&row.text(at(2))?))?,
        status: column("status", row.text(at(3))?.parse::<AccountStatus>())?,
        status_reason: row.optional_text(at(4))?,
        created_at: Timestamp::from_unix_micros(row.integer(at(5))?),
        updated_at: Timestamp::from_unix_micros(row.integer(at(6))?),
    })
}

pub(crate) fn fetch_account(connection: &Connection, id: &ServiceAccountId) -> Result<ServiceAccountRecord> {
    one(
        connection,
        "service account",
        &format!("SELECT {COLUMNS} FROM service_accounts WHERE id = ?"),
        [id.to_string()],
        account_from_row,
    )
}

/// The owner `id` names, with its name, status and role. `NotFound` (entity `owner`).
pub(crate) fn fetch_owner(connection: &Connection, id: &OwnerId) -> Result<OwnerRecord> {
    let owner = match id {
        OwnerId::User(user) => {
            first(connection, "SELECT username, status, role FROM users WHERE id = ?", [user.to_string()], |row| {
                let status = row.text(Column { index: 1, name: "users.status" })?;
                let role = row.text(Column { index: 2, name: "users.role" })?;
                Ok(OwnerRecord {
                    id: *id,
                    name: column("name", Username::parse(&row.text(Column { index: 0, name: "users.username" })?))?,
                    active: status == UserStatus::Active.as_str(),
                    role: Some(column("role", role.parse::<Role>())?),
                })
            })?
        }
        OwnerId::ServiceAccount(account) => {
            first(connection, "SELECT name, status FROM service_accounts WHERE id = ?", [account.to_string()], |row| {
                let status = row.text(Column { index: 1, name: "service_accounts.status" })?;
                Ok(OwnerRecord {
                    id: *id,
                    name: column(
                        "name",
                        Username::parse_field("name", &row.text(Column { index: 0, name: "service_accounts.name" })?),
                    )?,
                    active: status == AccountStatus::Active.as_str(),
                    role: None,
                })
            })?
        }
    };
    owner.ok_or(StoreError::NotFound { entity: "owner" })
}

fn name_taken(connection: &Connection, name: &Username) -> Result<bool> {
    let taken = first(
        connection,
        "SELECT 1 FROM users WHERE username = ?1 UNION ALL SELECT 1 FROM service_accounts WHERE name = ?1 LIMIT 1",
        [name.as_str()],
        |_| Ok(()),
    )?;
    Ok(taken.is_some())
}

fn finish_with_audit(tx: &mut Tx<'_>, id: &ServiceAccountId, audit: &AuditEvent) -> Result<ServiceAccountRecord> {
    let record = fetch_account(tx.connection, id)?;
    append(tx, audit)?;
    Ok(record)
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn insert_service_account(
        &self,
        insert: &ServiceAccountInsert,
        audit: &AuditEvent,
    ) -> Result<ServiceAccountRecord> {
        let (insert, audit) = (insert.clone(), audit.clone());
        self.write(move |tx| {
            // The triggers refuse it too; asking first gives the conflict a message that names the field.
            if name_taken(tx.connection, &insert.account.name)? {
                return Err(StoreError::Conflict("name is already taken by a user or a service account".to_owned()));
            }
            let at = insert.created_at.unix_micros();
            execute(
                tx.connection,
                "INSERT INTO service_accounts (id, name, description, status, created_at, updated_at)
                 VALUES (?, ?, ?, 'active', ?, ?)",
                params![
                    insert.id.to_string(),
                    insert.account.name.as_str(),
                    insert.account.description.as_str(),
                    at,
                    at
                ],
            )?;
            finish_with_audit(tx, &insert.id, &audit)
        })
        .await
    }

    async fn service_account(&self, id: &ServiceAccountId) -> Result<ServiceAccountRecord> {
        let id = *id;
        self.point(move |connection| fetch_account(connection, &id)).await
    }

    async fn list_service_accounts(&self, page: &PageRequest) -> Result<Page<ServiceAccountRecord>> {
        let before = match &page.cursor {
            Some(cursor) => ServiceAccountId::parse(cursor).map_err(|_| StoreError::InvalidCursor)?.to_string(),
            None => "~".to_owned(), // sorts after every `svc_…` id
        };
        let limit = page.limit;
        let items = self
            .scan(move |connection| {
                collect(
                    connection,
                    &format!("SELECT {COLUMNS} FROM service_accounts WHERE id < ? ORDER BY id DESC LIMIT ?"),
                    params![before, i64::from(limit) + 1],
                    account_from_row,
                )
            })
            .await?;
        Ok(Page::from_overfetch(items, page.limit, |record| record.id.to_string()))
    }

    async fn set_service_account_status(
        &self,
        id: &ServiceAccountId,
        status: AccountStatus,
        reason: Option<&str>,
        audit: &AuditEvent,
    ) -> Result<AccountStatusChanged> {
        let (id, reason, audit) = (*id, reason.map(str::to_owned), audit.clone());
        self.write(move |tx| {
            let current = fetch_account(tx.connection, &id)?;
            if current.status == status {
                return Ok(AccountStatusChanged { record: current, revoked_tokens: Vec::new() });
            }
            execute(
                tx.connection,
                "UPDATE service_accounts SET status = ?, status_reason = ?, updated_at = max(updated_at, ?) WHERE id = ?",
                params![status.as_str(), reason.as_deref(), audit.at.unix_micros(), id.to_string()],
            )?;
            let record = finish_with_audit(tx, &id, &audit)?;
            let revoked_tokens = if status == AccountStatus::Suspended {
                let why = match &reason {
                    Some(reason) => format!("service account suspended: {reason}"),
                    None => "service account suspended".to_owned(),
                };
                let why: String = why.chars().take(1024).collect();
                crate::tokens::revoke_where(tx, "owner_id = ?1", &[id.to_string()], &why, &audit)?
            } else {
                Vec::new()
            };
            Ok(AccountStatusChanged { record, revoked_tokens })
        })
        .await
    }

    async fn owner(&self, id: &OwnerId) -> Result<OwnerRecord> {
        let id = *id;
        self.point(move |connection| fetch_owner(connection, &id)).await
    }

    async fn owner_by_name(&self, name: &Username) -> Result<Option<OwnerRecord>> {
        let name = name.clone();
        self.point(move |connection| {
            let id = first(
                connection,
                "SELECT id FROM users WHERE username = ?1 UNION ALL SELECT id FROM service_accounts WHERE name = ?1 LIMIT 1",
                [name.as_str()],
                |row| row.text(Column { index: 0, name: "id" }),
            )?;
            match id {
                Some(id) => {
                    let id = OwnerId::parse(&id).map_err(|error| corrupt("owner id", error))?;
                    fetch_owner(connection, &id).map(Some)
                }
                None => Ok(None),
            }
        })
        .await
    }
}
