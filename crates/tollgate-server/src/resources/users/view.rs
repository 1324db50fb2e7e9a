//! Response bodies of `/v1/users`: a user (never a password hash: the record holds none) and a page.

use serde::Serialize;
use serde_json::{Value, json};
use tollgate::{Page, UserRecord};

use crate::openapi::{ApiSchema, Components, id, nullable, timestamp};

/// A user as the API shows it.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(crate) struct UserView<'a>(pub(crate) &'a UserRecord);

impl ApiSchema for UserView<'_> {
    const NAME: &'static str = "User";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": [
                "id", "username", "email", "role", "status", "status_reason", "must_change_password",
                "failed_logins", "locked_until", "created_at", "updated_at", "password_changed_at", "last_login_at",
            ],
            "properties": {
                "id": id("usr_", "Public id."),
                "username": { "type": "string" },
                "email": { "type": "string" },
                "role": { "type": "string", "enum": ["admin", "user", "viewer"] },
                "status": { "type": "string", "enum": ["active", "suspended", "deleted"] },
                "status_reason": { "type": ["string", "null"] },
                "must_change_password": { "type": "boolean" },
                "failed_logins": { "type": "integer", "minimum": 0 },
                "locked_until": nullable(timestamp("Logins refused until then.")),
                "created_at": timestamp("Creation time."),
                "updated_at": timestamp("Last change."),
                "password_changed_at": timestamp("When the password was last set."),
                "last_login_at": nullable(timestamp("Last successful login.")),
            }
        })
    }
}

/// A page of users, newest first.
#[derive(Debug, Serialize)]
pub(crate) struct UserPage<'a> {
    items: Vec<UserView<'a>>,
    next_cursor: Option<&'a str>,
}

impl<'a> UserPage<'a> {
    pub(crate) fn new(page: &'a Page<UserRecord>) -> Self {
        Self { items: page.items.iter().map(UserView).collect(), next_cursor: page.next_cursor.as_deref() }
    }
}

impl ApiSchema for UserPage<'_> {
    const NAME: &'static str = "UserPage";
    fn schema(components: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": { "type": "array", "items": Components::reference::<UserView<'static>>(components) },
                "next_cursor": { "type": ["string", "null"], "description": "Pass as `cursor` for the next page." },
            }
        })
    }
}
