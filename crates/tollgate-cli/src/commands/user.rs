//! `tollgate user …`: the user lifecycle from the shell, acted on as the operator. Passwords come
//! from the terminal or standard input, never from argv.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use tollgate::{
    Caller, Email, NewUser, PageRequest, Principal, Role, UserFilter, UserRecord, UserStatus, Username, ValidationError,
};

use super::identity::{self, resolve_user};
use crate::cli::GlobalArgs;
use crate::exit::CliResult;
use crate::output::{or_dash, print_fields, print_json, print_table};

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user (the password is typed twice, or read from standard input with --password-stdin).
    Create(CreateArgs),
    /// List users, newest first.
    List(ListArgs),
    /// Show one user.
    Show {
        /// The user: id (usr_…) or username.
        user: String,
    },
    /// Suspend a user: their sessions and API tokens are revoked at once.
    Suspend {
        /// The user: id or username.
        user: String,
        /// Why (required; recorded on the user and in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Activate a suspended user (revoked tokens stay revoked).
    Activate {
        /// The user: id or username.
        user: String,
    },
    /// Delete a user (kept for the audit trail; their sessions and tokens are revoked).
    Delete {
        /// The user: id or username.
        user: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Change a user's role.
    SetRole {
        /// The user: id or username.
        user: String,
        /// admin, user or viewer.
        #[arg(long)]
        role: String,
    },
    /// Change a user's email (stored lowercase; refused when another user has it in any case).
    SetEmail {
        /// The user: id or username.
        user: String,
        /// The new email address.
        #[arg(long)]
        email: String,
    },
    /// Set a new password for a user (their sessions end).
    ResetPassword {
        /// The user: id or username.
        user: String,
        /// Read the new password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Make the user choose a new password at the next login.
        #[arg(long)]
        must_change: bool,
    },
    /// Clear a user's failed logins and lock.
    Unlock {
        /// The user: id or username.
        user: String,
    },
    /// Change your own password: current and new password from the terminal, or two lines of standard input.
    ChangePassword {
        /// Your username.
        #[arg(long)]
        username: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Login name: 3–64 characters of a-z 0-9 . _ - (stored lowercase).
    #[arg(long)]
    username: String,
    /// Email address (stored lowercase).
    #[arg(long)]
    email: String,
    /// admin, user or viewer.
    #[arg(long)]
    role: String,
    /// Read the password from the first line of standard input (for scripts).
    #[arg(long)]
    password_stdin: bool,
    /// Make the user choose a new password at the first login.
    #[arg(long)]
    must_change: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only users with this role.
    #[arg(long)]
    role: Option<String>,
    /// Only users with this status (active, suspended, deleted).
    #[arg(long)]
    status: Option<String>,
    /// Only users whose username or email contains this text.
    #[arg(long)]
    search: Option<String>,
    /// Page size (1–1000).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// The cursor printed by the previous page.
    #[arg(long)]
    cursor: Option<String>,
}

/// Runs one user command as the operator.
pub(crate) async fn run(global: &GlobalArgs, command: UserCommand) -> CliResult {
    let (context, users) = identity::open(global).await?;
    let operator = Caller::operator();
    let principal = Principal::Operator;
    let now = context.tokens.clock().now();
    let record = match command {
        UserCommand::Create(args) => {
            let mut user =
                NewUser::new(Username::parse(&args.username)?, Email::parse(&args.email)?, args.role.parse::<Role>()?);
            user.must_change_password = args.must_change;
            let password = identity::new_password(args.password_stdin)?;
            users.create(&operator, user, password).await?
        }
        UserCommand::List(args) => {
            let filter = UserFilter {
                role: args.role.as_deref().map(str::parse::<Role>).transpose()?,
                status: args.status.as_deref().map(str::parse::<UserStatus>).transpose()?,
                search: args.search,
            };
            if !(1..=PageRequest::MAX_LIMIT).contains(&args.limit) {
                return Err(ValidationError::new("limit", "must be between 1 and 1000").into());
            }
            let page = match args.cursor {
                Some(cursor) => PageRequest::after(args.limit, cursor),
                None => PageRequest::first(args.limit),
            };
            let page = users.list(&principal, &filter, &page).await?;
            if global.json {
                print_json(&page);
            } else {
                let rows: Vec<Vec<String>> = page.items.iter().map(|user| summary_row(user, now)).collect();
                print_table(&["ID", "USERNAME", "EMAIL", "ROLE", "STATUS", "LOCKED", "LAST LOGIN"], &rows);
                if let Some(cursor) = page.next_cursor {
                    eprintln!("more: --cursor {cursor}");
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        UserCommand::Show { user } => users.show(&principal, &resolve_user(&users, &principal, &user).await?).await?,
        UserCommand::Suspend { user, reason } => {
            let id = resolve_user(&users, &principal, &user).await?;
            users.suspend(&operator, &id, &reason).await?
        }
        UserCommand::Activate { user } => {
            users.activate(&operator, &resolve_user(&users, &principal, &user).await?).await?
        }
        UserCommand::Delete { user, reason } => {
            let id = resolve_user(&users, &principal, &user).await?;
            users.delete(&operator, &id, reason.as_deref()).await?
        }
        UserCommand::SetRole { user, role } => {
            let role = role.parse::<Role>()?;
            users.set_role(&operator, &resolve_user(&users, &principal, &user).await?, role).await?
        }
        UserCommand::SetEmail { user, email } => {
            let email = Email::parse(&email)?;
            users.set_email(&operator, &resolve_user(&users, &principal, &user).await?, email).await?
        }
        UserCommand::ResetPassword { user, password_stdin, must_change } => {
            let id = resolve_user(&users, &principal, &user).await?;
            let password = identity::new_password(password_stdin)?;
            users.reset_password(&operator, &id, password, must_change).await?
        }
        UserCommand::Unlock { user } => {
            users.unlock(&operator, &resolve_user(&users, &principal, &user).await?).await?
        }
        UserCommand::ChangePassword { username } => {
            let (current, new) = identity::password_change()?;
            users.change_password(&username, current, new, None).await.map_err(identity::login_refusal)?;
            if global.json {
                print_json(&serde_json::json!({ "changed": true }));
            } else {
                say!("password changed; sessions of {username} have ended");
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    print_user(global, &record, now);
    Ok(ExitCode::SUCCESS)
}

fn summary_row(user: &UserRecord, now: tollgate::Timestamp) -> Vec<String> {
    vec![
        user.id.to_string(),
        user.username.to_string(),
        user.email.to_string(),
        user.role.to_string(),
        user.status.to_string(),
        if user.is_locked(now) { or_dash(user.locked_until) } else { "-".to_owned() },
        or_dash(user.last_login_at),
    ]
}

fn print_user(global: &GlobalArgs, user: &UserRecord, now: tollgate::Timestamp) {
    if global.json {
        print_json(&serde_json::json!({ "locked": user.is_locked(now), "user": user }));
        return;
    }
    print_fields(&[
        ("id", user.id.to_string()),
        ("username", user.username.to_string()),
        ("email", user.email.to_string()),
        ("role", user.role.to_string()),
        ("status", user.status.to_string()),
        ("status reason", or_dash(user.status_reason.as_ref())),
        ("must change password", user.must_change_password.to_string()),
        ("failed logins", user.failed_logins.to_string()),
        ("locked until", if user.is_locked(now) { or_dash(user.locked_until) } else { "-".to_owned() }),
        ("created", user.created_at.to_string()),
        ("updated", user.updated_at.to_string()),
        ("password changed", user.password_changed_at.to_string()),
        ("last login", or_dash(user.last_login_at)),
    ]);
}
