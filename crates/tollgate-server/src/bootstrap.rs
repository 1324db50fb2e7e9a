//! First start: is there anybody who can administer tollgate yet?

use tollgate::{PageRequest, Permission, Principal, Role, StatusFilter, TokenFilter, UserFilter, UserStatus};

use crate::state::AppState;

/// Whether an active admin user or an active admin token exists. `tollgate serve` says how to
/// create the first admin when there is none (the HTTP API cannot: every route needs an admin to
/// begin with).
pub async fn admin_exists(state: &AppState) -> tollgate::Result<bool> {
    let admins = UserFilter { role: Some(Role::Admin), status: Some(UserStatus::Active), search: None };
    if !state.users().list(&Principal::Operator, &admins, &PageRequest::first(1)).await?.items.is_empty() {
        return Ok(true);
    }
    let filter = TokenFilter { status: StatusFilter::Active, ..TokenFilter::default() };
    let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
    loop {
        let found = state.tokens().list(&Principal::Operator, &filter, &page).await?;
        // What the token may do now, not what it was issued with (its owner may have been demoted).
        if found.items.iter().any(|token| token.effective_permission() == Permission::Admin) {
            return Ok(true);
        }
        match found.next_cursor {
            Some(cursor) => page = PageRequest::after(PageRequest::MAX_LIMIT, cursor),
            None => return Ok(false),
        }
    }
}
