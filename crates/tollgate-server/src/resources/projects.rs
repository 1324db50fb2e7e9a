//! `/v1/projects`: projects and their members. Admins create projects and manage members; members
//! (and viewers) read their projects; a token can be bound only to a project its owner is a member of.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate::{Description, NewProject, OwnerId, ProjectId, ProjectMember, ProjectName, ProjectRecord, ProjectRole};

use super::users::PageQuery;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, PathId, Query};
use crate::openapi::{ApiSchema, Components, id, notes, text, timestamp};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

const ID: &str = "The project id (prj_…)";
const MEMBER: &str = "The member: a user (usr_…) or a service account (svc_…)";

pub(super) fn routes() -> Routes {
    let project = |operation_id, summary| Doc::new(operation_id, "projects", summary).bearer().path_param("id", ID);
    let member = |operation_id, summary| project(operation_id, summary).path_param("member", MEMBER);
    Routes::new()
        .post(
            "/v1/projects",
            Doc::new("createProject", "projects", "Create a project (admins only)")
                .bearer()
                .body::<CreateProjectBody>()
                .response::<ProjectView<'static>>(201, "Created")
                .response_headers(&["Location"])
                .problems(&[400, 403, 409, 413, 415]),
            create,
        )
        .get(
            "/v1/projects",
            Doc::new("listProjects", "projects", "List projects, newest first")
                .describe("Admins see every project; others see the projects they are members of.")
                .bearer()
                .query::<PageQuery>()
                .response::<ProjectPage<'static>>(200, "One page")
                .problems(&[400, 403]),
            list,
        )
        .get(
            "/v1/projects/{id}",
            project("getProject", "Show a project (admins and its members)")
                .response::<ProjectView<'static>>(200, "The project")
                .problems(&[400, 404]),
            show,
        )
        .get(
            "/v1/projects/{id}/members",
            project("listProjectMembers", "A project's members (admins and its members)")
                .response::<MemberList<'static>>(200, "The members, by name")
                .problems(&[400, 404]),
            members,
        )
        .put(
            "/v1/projects/{id}/members/{member}",
            member("putProjectMember", "Add a member or change its role (admins only)")
                .describe("`member` may bind its tokens to the project; `viewer` reads its usage and limits.")
                .body::<MemberBody>()
                .response::<MemberView<'static>>(200, "The membership")
                .problems(&[400, 403, 404, 413, 415]),
            put_member,
        )
        .delete(
            "/v1/projects/{id}/members/{member}",
            member("removeProjectMember", "Remove a member (admins only); its tokens bound to the project are revoked")
                .response::<MemberView<'static>>(200, "The membership that ended")
                .problems(&[400, 403, 404]),
            remove_member,
        )
}

/// `POST /v1/projects`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateProjectBody {
    name: ProjectName,
    #[serde(default)]
    description: Option<Description>,
}

impl ApiSchema for CreateProjectBody {
    const NAME: &'static str = "CreateProject";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["name"],
            "properties": {
                "name": text(128, "Unique, case-insensitively."),
                "description": notes(1024, ""),
            }
        })
    }
}

/// `PUT /v1/projects/{id}/members/{member}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberBody {
    role: ProjectRole,
}

impl ApiSchema for MemberBody {
    const NAME: &'static str = "ProjectMemberRole";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["role"],
            "properties": { "role": { "type": "string", "enum": ["member", "viewer"] } }
        })
    }
}

/// A project as the API shows it.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(crate) struct ProjectView<'a>(&'a ProjectRecord);

impl ApiSchema for ProjectView<'_> {
    const NAME: &'static str = "Project";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["id", "name", "description", "created_at", "updated_at"],
            "properties": {
                "id": id("prj_", "Public id."),
                "name": { "type": "string" },
                "description": { "type": "string" },
                "created_at": timestamp("Creation time."),
                "updated_at": timestamp("Last change."),
            }
        })
    }
}

/// A page of projects.
#[derive(Debug, Serialize)]
pub(crate) struct ProjectPage<'a> {
    items: Vec<ProjectView<'a>>,
    next_cursor: Option<&'a str>,
}

impl ApiSchema for ProjectPage<'_> {
    const NAME: &'static str = "ProjectPage";
    fn schema(components: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": { "type": "array", "items": Components::reference::<ProjectView<'static>>(components) },
                "next_cursor": { "type": ["string", "null"], "description": "Pass as `cursor` for the next page." },
            }
        })
    }
}

/// A membership as the API shows it.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(crate) struct MemberView<'a>(&'a ProjectMember);

impl ApiSchema for MemberView<'_> {
    const NAME: &'static str = "ProjectMember";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["project_id", "member", "member_name", "role", "updated_at"],
            "properties": {
                "project_id": id("prj_", "The project."),
                "member": { "type": "string", "pattern": "^(usr|svc)_[0-9a-f]{32}$", "description": "A user or a service account." },
                "member_name": { "type": "string" },
                "role": { "type": "string", "enum": ["member", "viewer"] },
                "updated_at": timestamp("When it was added or its role last changed."),
            }
        })
    }
}

/// A project's members.
#[derive(Debug, Serialize)]
pub(crate) struct MemberList<'a> {
    items: Vec<MemberView<'a>>,
}

impl ApiSchema for MemberList<'_> {
    const NAME: &'static str = "ProjectMembers";
    fn schema(components: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["items"],
            "properties": { "items": { "type": "array", "items": Components::reference::<MemberView<'static>>(components) } }
        })
    }
}

/// The `{id}` and `{member}` path segments.
fn project_and_member(Path((project, member)): Path<(String, String)>) -> Result<(ProjectId, OwnerId), ApiError> {
    let project = ProjectId::parse(&project).map_err(|error| ApiError::invalid_field("id", error.reason))?;
    let member = OwnerId::parse_field("member", &member)?;
    Ok((project, member))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateProjectBody>,
) -> Result<Response, ApiError> {
    let project = NewProject { name: body.name, description: body.description.unwrap_or_default() };
    let record = state.users().create_project(&caller.audited(), project).await?;
    let mut response = (StatusCode::CREATED, axum::Json(ProjectView(&record))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/projects/{}", record.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let settings = state.settings();
    let page = query.into_page(settings.default_page_size, settings.max_page_size)?;
    let page = state.users().list_projects(&caller.principal, &page).await?;
    let view =
        ProjectPage { items: page.items.iter().map(ProjectView).collect(), next_cursor: page.next_cursor.as_deref() };
    Ok(axum::Json(view).into_response())
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ProjectId>,
) -> Result<Response, ApiError> {
    let record = state.users().project(&caller.principal, &id).await?;
    Ok(axum::Json(ProjectView(&record)).into_response())
}

async fn members(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ProjectId>,
) -> Result<Response, ApiError> {
    let members = state.users().project_members(&caller.principal, &id).await?;
    Ok(axum::Json(MemberList { items: members.iter().map(MemberView).collect() }).into_response())
}

async fn put_member(
    State(state): State<AppState>,
    caller: Caller,
    path: Path<(String, String)>,
    Json(body): Json<MemberBody>,
) -> Result<Response, ApiError> {
    let (project, member) = project_and_member(path)?;
    let membership = state.users().put_project_member(&caller.audited(), &project, &member, body.role).await?;
    Ok(axum::Json(MemberView(&membership)).into_response())
}

async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    path: Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (project, member) = project_and_member(path)?;
    let membership = state.users().remove_project_member(&caller.audited(), &project, &member).await?;
    Ok(axum::Json(MemberView(&membership)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::{check_request, check_response};

    #[test]
    fn schemas_match_their_types() {
        check_request::<CreateProjectBody>();
        check_request::<MemberBody>();
        let now = tollgate::Timestamp::from_unix_micros(0);
        let project = ProjectRecord {
            id: ProjectId::generate(),
            name: ProjectName::parse("search").unwrap(),
            description: Description::parse("the search team").unwrap(),
            created_at: now,
            updated_at: now,
        };
        check_response(&ProjectView(&project));
        check_response(&ProjectPage { items: vec![ProjectView(&project)], next_cursor: None });
        let member = ProjectMember {
            project_id: project.id,
            member: OwnerId::User(tollgate::UserId::generate()),
            member_name: tollgate::Username::parse("alice").unwrap(),
            role: ProjectRole::Viewer,
            updated_at: now,
        };
        check_response(&MemberView(&member));
        check_response(&MemberList { items: vec![MemberView(&member)] });
    }
}
