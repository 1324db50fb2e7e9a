//! Request bodies and query strings of `/v1/users`, parsed into the facade's types. Passwords are
//! held zeroized and never shown by `Debug`.

use serde::Deserialize;
use serde_json::{Value, json};
use tollgate::{Email, NewUser, PageRequest, Password, Role, UserFilter, UserStatus, Username};
use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::openapi::{ApiSchema, Components, cursor, id_key, notes, password, text, username};

/// A password as it arrives in a body: zeroized on drop, redacted in `Debug`.
pub(crate) struct PresentedPassword(Zeroizing<String>);

impl std::fmt::Debug for PresentedPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PresentedPassword(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for PresentedPassword {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|text| Self(Zeroizing::new(text)))
    }
}

impl PresentedPassword {
    /// A new password to set: the password policy applies.
    pub(crate) fn into_new(self) -> Result<Password, ApiError> {
        Ok(Password::new(self.0.to_string())?)
    }

    /// A password to check at login (only its length is limited).
    pub(crate) fn into_presented(self) -> Result<Password, ApiError> {
        Ok(Password::presented(self.0.to_string())?)
    }
}

fn role_schema() -> Value {
    json!({ "type": "string", "enum": ["admin", "user", "viewer"] })
}

fn password_schema(description: &str) -> Value {
    password(12, description)
}

/// `POST /v1/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateUserBody {
    username: String,
    email: String,
    role: Role,
    password: PresentedPassword,
    #[serde(default)]
    must_change_password: bool,
}

impl CreateUserBody {
    pub(super) fn into_parts(self) -> Result<(NewUser, Password), ApiError> {
        let mut user = NewUser::new(Username::parse(&self.username)?, Email::parse(&self.email)?, self.role);
        user.must_change_password = self.must_change_password;
        Ok((user, self.password.into_new()?))
    }
}

impl ApiSchema for CreateUserBody {
    const NAME: &'static str = "CreateUser";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["username", "email", "role", "password"],
            "properties": {
                "username": username("3–64 characters of a-z 0-9 . _ - (stored lowercase)."),
                "email": { "type": "string", "format": "email" },
                "role": role_schema(),
                "password": password_schema("The initial password (never logged or stored in clear)."),
                "must_change_password": { "type": "boolean", "default": false },
            }
        })
    }
}

/// `PATCH /v1/users/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PatchUserBody {
    #[serde(default)]
    pub(super) role: Option<Role>,
    #[serde(default)]
    pub(super) email: Option<String>,
}

impl ApiSchema for PatchUserBody {
    const NAME: &'static str = "UpdateUser";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "minProperties": 1,
            "properties": {
                "role": role_schema(),
                "email": {
                    "type": "string",
                    "format": "email",
                    "description": "The new address (stored lowercase); 409 when another user has it in any case.",
                },
            }
        })
    }
}

/// `POST /v1/users/{id}/suspend`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SuspendBody {
    pub(super) reason: String,
}

impl ApiSchema for SuspendBody {
    const NAME: &'static str = "SuspendUser";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["reason"],
            "properties": { "reason": text(1024, "Why (audited).") }
        })
    }
}

/// `DELETE /v1/users/{id}` takes its optional reason in the query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeleteQuery {
    #[serde(default)]
    pub(super) reason: Option<String>,
}

impl ApiSchema for DeleteQuery {
    const NAME: &'static str = "DeleteUserQuery";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": { "reason": notes(1024, "Why (audited).") }
        })
    }
}

/// `POST /v1/users/{id}/reset-password`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResetPasswordBody {
    pub(super) password: PresentedPassword,
    #[serde(default = "yes")]
    pub(super) must_change_password: bool,
}

fn yes() -> bool {
    true
}

impl ApiSchema for ResetPasswordBody {
    const NAME: &'static str = "ResetPassword";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["password"],
            "properties": {
                "password": password_schema("The new password."),
                "must_change_password": {
                    "type": "boolean", "default": true, "description": "Force a change at the next login.",
                },
            }
        })
    }
}

/// `GET /v1/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListUsersQuery {
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    status: Option<UserStatus>,
    #[serde(default)]
    search: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

/// The page a `limit` and `cursor` ask for, within the server's bounds.
pub(crate) fn page_request(
    limit: Option<u32>,
    cursor: Option<String>,
    default_limit: u32,
    max_limit: u32,
) -> Result<PageRequest, ApiError> {
    let limit = limit.unwrap_or(default_limit);
    if !(1..=max_limit).contains(&limit) {
        return Err(ApiError::invalid_field("limit", format!("must be between 1 and {max_limit}")));
    }
    match cursor {
        Some(cursor) if cursor.is_empty() || cursor.len() > 256 => {
            Err(ApiError::invalid_field("cursor", "not a cursor from a previous page"))
        }
        Some(cursor) => Ok(PageRequest::after(limit, cursor)),
        None => Ok(PageRequest::first(limit)),
    }
}

/// `?limit=&cursor=`: the query of a list without filters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

impl PageQuery {
    pub(crate) fn into_page(self, default_limit: u32, max_limit: u32) -> Result<PageRequest, ApiError> {
        page_request(self.limit, self.cursor, default_limit, max_limit)
    }
}

impl ApiSchema for PageQuery {
    const NAME: &'static str = "PageQuery";
    fn schema(_: &mut Components) -> Value {
        json!({ "type": "object", "additionalProperties": false, "properties": paging_properties() })
    }
}

impl ListUsersQuery {
    pub(super) fn into_parts(self, default_limit: u32, max_limit: u32) -> Result<(UserFilter, PageRequest), ApiError> {
        let page = page_request(self.limit, self.cursor, default_limit, max_limit)?;
        Ok((UserFilter { role: self.role, status: self.status, search: self.search }, page))
    }
}

/// The `limit` and `cursor` query parameters, documented once.
pub(crate) fn paging_properties() -> Value {
    json!({
        "limit": {
            "type": "integer", "minimum": 1, "maximum": PageRequest::MAX_LIMIT,
            "default": PageRequest::DEFAULT_LIMIT, "description": "Page size.",
        },
        "cursor": cursor(&id_key("usr_")),
    })
}

impl ApiSchema for ListUsersQuery {
    const NAME: &'static str = "ListUsersQuery";
    fn schema(_: &mut Components) -> Value {
        let mut properties = json!({
            "role": role_schema(),
            "status": { "type": "string", "enum": ["active", "suspended", "deleted"] },
            "search": text(254, "Username or email contains this (case-insensitive)."),
        });
        if let (Some(properties), Value::Object(paging)) = (properties.as_object_mut(), paging_properties()) {
            properties.extend(paging);
        }
        json!({ "type": "object", "additionalProperties": false, "properties": properties })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        let body: ResetPasswordBody = serde_json::from_str(r#"{"password": "hunter2hunter2"}"#).unwrap();
        assert!(!format!("{body:?}").contains("hunter2"));
        assert!(body.must_change_password);
    }
}
