//! `tollgate project …`: projects and their members, managed as the operator.

use std::process::ExitCode;

use clap::Subcommand;
use tollgate::{
    Caller, Description, NewProject, PageRequest, Principal, ProjectMember, ProjectName, ProjectRecord, ProjectRole,
    ValidationError,
};

use super::identity;
use crate::cli::GlobalArgs;
use crate::exit::CliResult;
use crate::output::{print_fields, print_json, print_table};

#[derive(Debug, Subcommand)]
pub(crate) enum ProjectCommand {
    /// Create a project (names are unique, case-insensitively).
    Create {
        /// The name (1–128 characters).
        #[arg(long)]
        name: String,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// List projects, newest first.
    List {
        /// Page size (1–1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// The cursor printed by the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show a project and its members.
    Show {
        /// The project: id (prj_…) or name.
        project: String,
    },
    /// Add a member to a project, or change its role.
    AddMember {
        /// The project: id or name.
        project: String,
        /// The member: a user or a service account, by id or name.
        #[arg(long)]
        member: String,
        /// member (binds its tokens to the project) or viewer (reads its usage).
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// Remove a member: its tokens bound to the project are revoked.
    RemoveMember {
        /// The project: id or name.
        project: String,
        /// The member: a user or a service account, by id or name.
        #[arg(long)]
        member: String,
    },
}

/// Runs one project command as the operator.
pub(crate) async fn run(global: &GlobalArgs, command: ProjectCommand) -> CliResult {
    let (context, users) = identity::open(global).await?;
    let tokens = &context.tokens;
    let operator = Caller::operator();
    let principal = Principal::Operator;
    match command {
        ProjectCommand::Create { name, description } => {
            let project = NewProject {
                name: ProjectName::parse(&name)?,
                description: description.as_deref().map(Description::parse).transpose()?.unwrap_or_default(),
            };
            let record = users.create_project(&operator, project).await?;
            print_project(global, &record, &[]);
        }
        ProjectCommand::List { limit, cursor } => {
            if !(1..=PageRequest::MAX_LIMIT).contains(&limit) {
                return Err(ValidationError::new("limit", "must be between 1 and 1000").into());
            }
            let page = match cursor {
                Some(cursor) => PageRequest::after(limit, cursor),
                None => PageRequest::first(limit),
            };
            let page = users.list_projects(&principal, &page).await?;
            if global.json {
                print_json(&page);
            } else {
                let rows: Vec<Vec<String>> = page
                    .items
                    .iter()
                    .map(|project| {
                        vec![
                            project.id.to_string(),
                            project.name.to_string(),
                            project.created_at.to_string(),
                            project.description.to_string(),
                        ]
                    })
                    .collect();
                print_table(&["ID", "NAME", "CREATED", "DESCRIPTION"], &rows);
                if let Some(cursor) = page.next_cursor {
                    eprintln!("more: --cursor {cursor}");
                }
            }
        }
        ProjectCommand::Show { project } => {
            let id = tokens.resolve_project(&principal, &project).await?;
            let record = users.project(&principal, &id).await?;
            let members = users.project_members(&principal, &id).await?;
            print_project(global, &record, &members);
        }
        ProjectCommand::AddMember { project, member, role } => {
            let id = tokens.resolve_project(&principal, &project).await?;
            let member = resolve_member(tokens, &principal, &member).await?;
            let membership = users.put_project_member(&operator, &id, &member, role.parse::<ProjectRole>()?).await?;
            print_member(global, &membership);
        }
        ProjectCommand::RemoveMember { project, member } => {
            let id = tokens.resolve_project(&principal, &project).await?;
            let member = resolve_member(tokens, &principal, &member).await?;
            let membership = users.remove_project_member(&operator, &id, &member).await?;
            print_member(global, &membership);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_project(global: &GlobalArgs, project: &ProjectRecord, members: &[ProjectMember]) {
    if global.json {
        print_json(&serde_json::json!({ "project": project, "members": members }));
        return;
    }
    let names: Vec<String> = members.iter().map(|member| format!("{} ({})", member.member_name, member.role)).collect();
    print_fields(&[
        ("id", project.id.to_string()),
        ("name", project.name.to_string()),
        ("created", project.created_at.to_string()),
        ("description", project.description.to_string()),
        ("members", if names.is_empty() { "-".to_owned() } else { names.join(", ") }),
    ]);
}

fn print_member(global: &GlobalArgs, member: &ProjectMember) {
    if global.json {
        print_json(member);
        return;
    }
    print_fields(&[
        ("project", member.project_id.to_string()),
        ("member", format!("{} ({})", member.member_name, member.member)),
        ("role", member.role.to_string()),
        ("updated", member.updated_at.to_string()),
    ]);
}

/// The member named by `--member`; one that does not exist names the flag.
async fn resolve_member(
    tokens: &tollgate::TokenManager,
    principal: &tollgate::Principal,
    member: &str,
) -> CliResult<tollgate::OwnerId> {
    match tokens.resolve_owner(principal, member).await {
        Err(tollgate::Error::NotFound { .. }) => {
            Err(tollgate::ValidationError::new("member", "no user or service account has this id or name").into())
        }
        other => Ok(other?),
    }
}
