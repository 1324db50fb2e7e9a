//! `tollgate login`: exchange a username (or email) and password (from the terminal or standard input) for an
//! access token and a refresh token, printed once.

use std::process::ExitCode;

use clap::Args;
use tollgate::ValidationError;

use super::identity;
use crate::cli::GlobalArgs;
use crate::exit::CliResult;
use crate::output::{print_fields, print_json};

#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    /// The username.
    #[arg(long, required_unless_present = "email", conflicts_with = "email")]
    username: Option<String>,
    /// The email address instead of the username (any case).
    #[arg(long)]
    email: Option<String>,
}

/// Logs in and prints the tokens.
pub(crate) async fn run(global: &GlobalArgs, args: LoginArgs) -> CliResult {
    let (_context, users) = identity::open(global).await?;
    let password = identity::presented_password()?;
    let tokens = match (&args.username, &args.email) {
        (Some(username), _) => users.login(username, password, None).await,
        (None, Some(email)) => users.login_by_email(email, password, None).await,
        (None, None) => return Err(ValidationError::new("username", "give --username or --email").into()),
    }
    .map_err(super::identity::login_refusal)?;
    if global.json {
        print_json(&serde_json::json!({
            "access_token": tokens.access_token.expose(),
            "refresh_token": tokens.refresh_token.expose(),
            "token_type": "Bearer",
            "expires_in": tokens.expires_in,
            "refresh_expires_at": tokens.refresh_expires_at,
            "session_id": tokens.session.id,
            "user_id": tokens.user.id,
        }));
    } else {
        print_fields(&[
            ("access_token", tokens.access_token.expose().to_owned()),
            ("refresh_token", tokens.refresh_token.expose().to_owned()),
            ("expires_in", tokens.expires_in.to_string()),
            ("refresh_expires_at", tokens.refresh_expires_at.to_string()),
            ("session", tokens.session.id.to_string()),
        ]);
        eprintln!("logged in as {} — the tokens above are shown only once", tokens.user.username);
    }
    Ok(ExitCode::SUCCESS)
}
