//! `GET /v1/me`: who the caller is — a logged-in user or an API token — what it may do now, the
//! projects it belongs to and the limits that govern it.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use tollgate::{
    LimitStatus, LimitSubject, OwnerId, PageRequest, Permission, ProjectId, ProjectName, ProjectRole, Role,
};

use super::tokens::TokenView;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::openapi::{ApiSchema, Components, id};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

pub(super) fn routes() -> Routes {
    Routes::new().get(
        "/v1/me",
        Doc::new("getMe", "auth", "Who the caller is, what it may do now, its projects and its limits")
            .describe(
                "For an access JWT: the user and its current role. For an API token: the token, its owner and its \
                 effective permission (the lower of its own level and its owner's current role).",
            )
            .bearer()
            .response::<MeView<'static>>(200, "The caller")
            .problems(&[401]),
        me,
    )
}

/// One project the caller belongs to.
#[derive(Debug, Serialize)]
struct Membership {
    project_id: ProjectId,
    name: ProjectName,
    role: ProjectRole,
}

/// The body of `GET /v1/me`.
#[derive(Debug, Serialize)]
pub(crate) struct MeView<'a> {
    /// `user` or `token`.
    kind: &'static str,
    owner: OwnerId,
    owner_name: String,
    /// The user's role now (`null` for a service account's token).
    role: Option<Role>,
    /// What the caller may do now.
    permission: Permission,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<TokenView<'a>>,
    projects: Vec<Membership>,
    limits: Vec<LimitStatus>,
}

impl ApiSchema for MeView<'_> {
    const NAME: &'static str = "Me";
    fn schema(components: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["kind", "owner", "owner_name", "role", "permission", "projects", "limits"],
            "properties": {
                "kind": { "type": "string", "enum": ["user", "token"] },
                "owner": { "type": "string", "pattern": "^(usr|svc)_[0-9a-f]{32}$", "description": "The user, or the token's owner." },
                "owner_name": { "type": "string" },
                "role": { "type": ["string", "null"], "enum": ["admin", "user", "viewer", null], "description": "The user's current role; null for a service account." },
                "permission": { "type": "string", "enum": ["read_only", "standard", "admin"], "description": "What the caller may do now." },
                "token": Components::reference::<TokenView<'static>>(components),
                "projects": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["project_id", "name", "role"],
                        "properties": {
                            "project_id": id("prj_", "The project."),
                            "name": { "type": "string" },
                            "role": { "type": "string", "enum": ["member", "viewer"] },
                        }
                    }
                },
                "limits": {
                    "type": "array",
                    "description": "Every limit that governs the caller (its token, its owner, its token's project) with its use now.",
                    "items": { "type": "object" },
                },
            }
        })
    }
}

async fn me(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let principal = &caller.principal;
    let owner = principal.owner_id().ok_or_else(|| ApiError::forbidden("the operator has no identity here"))?;
    let owner_record = state.tokens().owner(principal, &owner).await?;
    let mut subjects = vec![LimitSubject::Owner(owner)];
    if let Some(token) = &caller.token {
        subjects.insert(0, LimitSubject::Token(token.token_id));
        if let Some(project) = token.record.project {
            subjects.push(LimitSubject::Project(project));
        }
    }
    let mut limits = Vec::new();
    for subject in &subjects {
        match state.metering().limit_status(principal, Some(subject)).await {
            Ok(found) => limits.extend(found),
            // A token bound to a project its owner has since left reads none of the project's limits.
            Err(tollgate::Error::NotFound { .. }) => {}
            Err(other) => return Err(other.into()),
        }
    }
    let users = state.users();
    let mut projects = Vec::new();
    for project in users.list_projects(principal, &PageRequest::first(PageRequest::MAX_LIMIT)).await?.items {
        if let Some(role) = users.project_role(principal, &project.id).await? {
            projects.push(Membership { project_id: project.id, name: project.name, role });
        }
    }
    let now = state.tokens().clock().now();
    let view = MeView {
        kind: if caller.token.is_some() { "token" } else { "user" },
        owner,
        owner_name: owner_record.name.to_string(),
        role: owner_record.role,
        permission: principal.level(),
        token: caller.token.as_ref().map(|token| TokenView::new(&token.record, now)),
        projects,
        limits,
    };
    Ok(axum::Json(view).into_response())
}
