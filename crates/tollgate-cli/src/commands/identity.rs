//! What the identity commands share: opening the user service (with the JWT key file beside the
//! database), reading passwords from the terminal or standard input (never from argv), and
//! resolving a user given by id or username.

use std::io::{IsTerminal, Read};
use std::path::Path;

use anyhow::anyhow;
use tollgate::{JwtKeys, KeyFile, Password, Principal, TokenManager, UserId, UserService, Username, ValidationError};
use zeroize::Zeroizing;

use crate::cli::GlobalArgs;
use crate::context::{self, Context};
use crate::exit::{CliError, CliResult};

/// Opens the database, the token manager and the user service.
pub(crate) async fn open(global: &GlobalArgs) -> CliResult<(Context, UserService)> {
    check_bcrypt_cost(global.bcrypt_cost)?;
    let context = context::open(global).await?;
    let token_key = tollgate::load_or_create_key_file(&context::key_file_path(global)?)?;
    let users = user_service(&context.tokens, &token_key, &context::jwt_key_file_path(global)?, global.bcrypt_cost)?;
    Ok((context, users))
}

fn check_bcrypt_cost(cost: u32) -> CliResult<()> {
    if !(10..=31).contains(&cost) {
        return Err(ValidationError::new("bcrypt_cost", "must be between 10 and 31").into());
    }
    Ok(())
}

/// The user service beside `tokens`: access JWTs signed with the key in `jwt_key_file` (created on
/// first use), refresh tokens hashed with the token key. `tollgate serve` builds it the same way.
pub(crate) fn user_service(
    tokens: &TokenManager,
    token_key: &KeyFile,
    jwt_key_file: &Path,
    bcrypt_cost: u32,
) -> CliResult<UserService> {
    check_bcrypt_cost(bcrypt_cost)?;
    let jwt_key = tollgate::load_or_create_key_file(jwt_key_file)?;
    Ok(UserService::builder(tokens, JwtKeys::from_key_file(&jwt_key)?, token_key.hasher()?)
        .bcrypt_cost(bcrypt_cost)
        .build()?)
}

/// A secret that is not a password (a provider API key): typed at the terminal without echo, or the
/// first line of standard input. Never from argv, where `ps` would show it.
pub(crate) fn read_secret(label: &str, field: &'static str) -> CliResult<Zeroizing<String>> {
    if std::io::stdin().is_terminal() {
        return prompt(label);
    }
    read_stdin(1, field, "the secret on its first line").map(|mut lines| lines.remove(0))
}

/// Reads up to `lines` lines from standard input (at most 4 KiB), without their line endings.
fn read_stdin_lines(lines: usize) -> CliResult<Vec<Zeroizing<String>>> {
    let what = if lines == 1 { "a password" } else { "one password per line" };
    read_stdin(lines, "password", what)
}

fn read_stdin(lines: usize, field: &'static str, what: &str) -> CliResult<Vec<Zeroizing<String>>> {
    let mut input = Zeroizing::new(String::new());
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut input)
        .map_err(|error| CliError::Failed(anyhow!("cannot read standard input: {error}")))?;
    let read: Vec<Zeroizing<String>> = input
        .split('\n')
        .take(lines)
        .map(|line| Zeroizing::new(line.strip_suffix('\r').unwrap_or(line).to_owned()))
        .collect();
    if read.len() < lines || read.iter().any(|line| line.is_empty()) {
        return Err(ValidationError::new(field, format!("standard input must hold {what}")).into());
    }
    Ok(read)
}

fn prompt(label: &str) -> CliResult<Zeroizing<String>> {
    rpassword::prompt_password(label)
        .map(Zeroizing::new)
        .map_err(|error| CliError::Failed(anyhow!("cannot read a secret from the terminal: {error}")))
}

/// A new password to set: from standard input with `--password-stdin`, else typed twice at the terminal.
pub(crate) fn new_password(password_stdin: bool) -> CliResult<Password> {
    let text = if password_stdin {
        read_stdin_lines(1)?.remove(0)
    } else if std::io::stdin().is_terminal() {
        let first = prompt("New password: ")?;
        let again = prompt("Repeat it: ")?;
        if *first != *again {
            return Err(ValidationError::new("password", "the two entries differ").into());
        }
        first
    } else {
        return Err(ValidationError::new(
            "password",
            "standard input is not a terminal: pass --password-stdin to read the password from it",
        )
        .into());
    };
    Ok(Password::new(text.to_string())?)
}

/// A password to present (login): typed at the terminal, or the first line of standard input.
pub(crate) fn presented_password() -> CliResult<Password> {
    let text = if std::io::stdin().is_terminal() { prompt("Password: ")? } else { read_stdin_lines(1)?.remove(0) };
    Ok(Password::presented(text.to_string())?)
}

/// The current and the new password (change-password): typed at the terminal, or two lines of standard input.
pub(crate) fn password_change() -> CliResult<(Password, Password)> {
    let (current, new) = if std::io::stdin().is_terminal() {
        let current = prompt("Current password: ")?;
        let new = prompt("New password: ")?;
        if *prompt("Repeat it: ")? != *new {
            return Err(ValidationError::new("password", "the two entries differ").into());
        }
        (current, new)
    } else {
        let mut lines = read_stdin_lines(2)?;
        let new = lines.remove(1);
        (lines.remove(0), new)
    };
    Ok((Password::presented(current.to_string())?, Password::new(new.to_string())?))
}

/// Reports a refused login as such (the library's refusal reads "token refused").
pub(crate) fn login_refusal(error: tollgate::Error) -> CliError {
    match error {
        tollgate::Error::Refused(refusal) => {
            let retry =
                refusal.retry_after.map(|after| format!(" (retry after {}s)", after.as_secs())).unwrap_or_default();
            CliError::Failed(anyhow!("login refused: {}{retry}", refusal.code))
        }
        other => other.into(),
    }
}

/// A user named by id (`usr_…`) or by username.
pub(crate) async fn resolve_user(users: &UserService, principal: &Principal, text: &str) -> CliResult<UserId> {
    if text.starts_with(UserId::PREFIX) {
        return Ok(UserId::parse(text)?);
    }
    let username =
        Username::parse(text).map_err(|_| ValidationError::new("user", "must be a user id or a username"))?;
    Ok(users.find(principal, &username).await?.id)
}
