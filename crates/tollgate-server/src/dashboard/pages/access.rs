//! Service accounts and projects: lists, creation, suspend/activate, and a project's members.

use axum::extract::State;
use axum::response::Response;
use maud::html;
use tollgate::{
    Description, NewProject, NewServiceAccount, Operation, OwnerId, ProjectId, ProjectName, ProjectRole,
    ServiceAccountId, Username,
};

use crate::dashboard::error::HtmlError;
use crate::dashboard::extract::{IdAction, ListQuery, PathId, PathIds, Query};
use crate::dashboard::layout::{Section, badge, csrf_field, notice, page, pager, see_other, table, time};
use crate::dashboard::session::{Form, Session};
use crate::error::ApiError;
use crate::state::AppState;

fn description(form: &Form) -> Result<Description, ApiError> {
    Ok(Description::parse(form.get("description").unwrap_or_default())?)
}

pub(crate) async fn service_accounts(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Result<Response, HtmlError> {
    let found = state.users().list_service_accounts(session.principal(), &query.page(&state)).await?;
    let manage = session.can(Operation::ManageServiceAccounts);
    let rows = html! {
        @for account in &found.items {
            @let action = |name: &str| format!("/dashboard/service-accounts/{}/{name}", account.id);
            tr {
                td { (account.name.as_str()) }
                td { code { (account.id.to_string()) } }
                td { (badge(account.status.as_str())) }
                td { (account.description.as_str()) }
                td { (time(account.created_at)) }
                td.actions { @if manage {
                    @if account.status.as_str() == "active" {
                        form.inline method="post" action=(action("suspend")) data-confirm="Suspend this service account? Its tokens stop working." {
                            (csrf_field(&session))
                            label { span.visually-hidden { "Reason for suspending " (account.name.as_str()) } input name="reason" required maxlength="1024" placeholder="reason"; }
                            button type="submit" { "Suspend" }
                        }
                    } @else {
                        form.inline method="post" action=(action("activate")) { (csrf_field(&session)) button type="submit" { "Activate" } }
                    }
                } }
            }
        }
    };
    let body = html! {
        h1 { "Service accounts" }
        (notice(query.done.as_deref().map(|_| "Done.")))
        (table("Service accounts", &["Name", "Id", "Status", "Description", "Created", "Actions"], rows))
        (pager("/dashboard/service-accounts", "", found.next_cursor.as_deref()))
        @if manage {
            section #create-service-account {
                h2 { "Create a service account" }
                form.stack method="post" action="/dashboard/service-accounts" {
                    (csrf_field(&session))
                    label for="name" { "Name" } input #name name="name" required maxlength="64";
                    label for="description" { "Description" } input #description name="description" maxlength="1024";
                    button type="submit" { "Create service account" }
                }
            }
        }
    };
    Ok(page(&session, Section::ServiceAccounts, "Service accounts", body))
}

pub(crate) async fn create_service_account(
    State(state): State<AppState>,
    session: Session,
    form: Form,
) -> Result<Response, HtmlError> {
    let name = Username::parse(form.required("name")?).map_err(|error| ApiError::from(error.renamed("name")))?;
    let account = NewServiceAccount { name, description: description(&form)? };
    state.users().create_service_account(&session.caller.audited(), account).await?;
    Ok(see_other(&session, "/dashboard/service-accounts?done=created"))
}

pub(crate) async fn act_on_service_account(
    State(state): State<AppState>,
    session: Session,
    IdAction(id, action): IdAction<ServiceAccountId>,
    form: Form,
) -> Result<Response, HtmlError> {
    let caller = session.caller.audited();
    match action.as_str() {
        "suspend" => state.users().suspend_service_account(&caller, &id, form.required("reason")?).await?,
        "activate" => state.users().activate_service_account(&caller, &id).await?,
        _ => return Err(ApiError::route_not_found().into()),
    };
    Ok(see_other(&session, &format!("/dashboard/service-accounts?done={action}")))
}

pub(crate) async fn projects(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Result<Response, HtmlError> {
    let found = state.users().list_projects(session.principal(), &query.page(&state)).await?;
    let rows = html! {
        @for project in &found.items {
            tr {
                td { a href=(format!("/dashboard/projects/{}", project.id)) { (project.name.as_str()) } }
                td { code { (project.id.to_string()) } }
                td { (project.description.as_str()) }
                td { (time(project.created_at)) }
            }
        }
    };
    let manage = session.can(Operation::ManageProjects);
    let body = html! {
        h1 { "Projects" }
        (notice(query.done.as_deref().map(|_| "Done.")))
        (table("Projects", &["Name", "Id", "Description", "Created"], rows))
        (pager("/dashboard/projects", "", found.next_cursor.as_deref()))
        @if manage {
            section #create-project {
                h2 { "Create a project" }
                form.stack method="post" action="/dashboard/projects" {
                    (csrf_field(&session))
                    label for="name" { "Name" } input #name name="name" required maxlength="128";
                    label for="description" { "Description" } input #description name="description" maxlength="1024";
                    button type="submit" { "Create project" }
                }
            }
        }
    };
    Ok(page(&session, Section::Projects, "Projects", body))
}

pub(crate) async fn create_project(
    State(state): State<AppState>,
    session: Session,
    form: Form,
) -> Result<Response, HtmlError> {
    let name = ProjectName::parse(form.required("name")?).map_err(|error| ApiError::from(error.renamed("name")))?;
    let project = NewProject { name, description: description(&form)? };
    state.users().create_project(&session.caller.audited(), project).await?;
    Ok(see_other(&session, "/dashboard/projects?done=created"))
}

pub(crate) async fn project(
    State(state): State<AppState>,
    session: Session,
    PathId(id): PathId<ProjectId>,
    Query(query): Query<ListQuery>,
) -> Result<Response, HtmlError> {
    let record = state.users().project(session.principal(), &id).await?;
    let members = state.users().project_members(session.principal(), &id).await?;
    let manage = session.can(Operation::ManageProjects);
    let rows = html! {
        @for member in &members {
            tr {
                td { (member.member_name.as_str()) }
                td { code { (member.member.to_string()) } }
                td { (member.role.as_str()) }
                td { (time(member.updated_at)) }
                td.actions { @if manage {
                    form.inline method="post" action=(format!("/dashboard/projects/{id}/members/{}/remove", member.member))
                        data-confirm="Remove this member? Their tokens bound to the project are revoked." {
                        (csrf_field(&session))
                        button.danger type="submit" { "Remove" }
                    }
                } }
            }
        }
    };
    let body = html! {
        h1 { "Project " (record.name.as_str()) }
        (notice(query.done.as_deref().map(|_| "Done.")))
        p { (record.description.as_str()) }
        (table("Members", &["Member", "Id", "Role", "Since", "Actions"], rows))
        @if manage {
            section #add-member {
                h2 { "Add a member or change a role" }
                form.stack method="post" action=(format!("/dashboard/projects/{id}/members")) {
                    (csrf_field(&session))
                    label for="member" { "User or service account (name or id)" } input #member name="member" required maxlength="128";
                    label for="role" { "Role" }
                    select #role name="role" { @for word in ["viewer", "member", "admin"] { option value=(word) { (word) } } }
                    button type="submit" { "Save member" }
                }
            }
        }
    };
    Ok(page(&session, Section::Projects, record.name.as_str(), body))
}

pub(crate) async fn put_member(
    State(state): State<AppState>,
    session: Session,
    PathId(id): PathId<ProjectId>,
    form: Form,
) -> Result<Response, HtmlError> {
    let member =
        state.tokens().resolve_owner(session.principal(), form.required("member")?).await.map_err(|error| {
            match ApiError::from(error) {
                error if error.status().as_u16() == 404 => {
                    ApiError::invalid_field("member", "no such user or service account")
                }
                error => error,
            }
        })?;
    let role = form.required("role")?.parse::<ProjectRole>().map_err(|error| ApiError::from(error.renamed("role")))?;
    state.users().put_project_member(&session.caller.audited(), &id, &member, role).await?;
    Ok(see_other(&session, &format!("/dashboard/projects/{id}?done=member")))
}

/// `POST /dashboard/projects/{id}/members/{member_id}/remove`: revokes the member's tokens bound to it.
pub(crate) async fn remove_member(
    State(state): State<AppState>,
    session: Session,
    PathIds(id, member): PathIds<ProjectId, OwnerId>,
    _form: Form,
) -> Result<Response, HtmlError> {
    state.users().remove_project_member(&session.caller.audited(), &id, &member).await?;
    Ok(see_other(&session, &format!("/dashboard/projects/{id}?done=removed")))
}
