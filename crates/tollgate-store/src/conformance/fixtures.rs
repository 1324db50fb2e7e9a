//! Builders shared by the conformance cases.

use tollgate_types::{
    Actor, AuditEvent, KeyId, NewToken, OwnerName, ProjectName, Timestamp, TokenHash, TokenId, TokenName,
};

use crate::TokenInsert;

/// A fixed starting time for cases: 2026-01-01T00:00:00Z.
pub const T0: Timestamp = Timestamp::from_unix_micros(1_767_225_600_000_000);

/// `T0` plus `seconds`.
pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros(T0.unix_micros() + seconds * 1_000_000)
}

/// A hash unique to `id` (the cases need distinct hashes, not real HMACs).
pub fn hash_for(id: &TokenId, salt: u8) -> TokenHash {
    let mut bytes = [salt; 32];
    bytes[..16].copy_from_slice(id.as_bytes());
    TokenHash::from_bytes(bytes)
}

/// A token insert for `owner` in `project`, created at `created_at`.
pub fn insert(name: &str, owner: &str, project: Option<&str>, created_at: Timestamp) -> TokenInsert {
    let id = TokenId::generate();
    let mut token = NewToken::new(
        TokenName::parse(name).expect("fixture name is valid"),
        OwnerName::parse(owner).expect("fixture owner is valid"),
    );
    token.project = project.map(|project| ProjectName::parse(project).expect("fixture project is valid"));
    TokenInsert {
        id,
        token,
        hash: hash_for(&id, 0),
        key_id: KeyId(1),
        display_hint: "tg_AbCd…wxyz".to_owned(),
        created_at,
    }
}

/// An audit event by the CLI actor.
pub fn audit(action: &str, target: impl std::fmt::Display, at: Timestamp) -> AuditEvent {
    AuditEvent::new(Actor::cli(), action, target, at)
}

/// A bcrypt-shaped hash, distinct per `variant` (the store never checks passwords itself).
pub fn fake_password_hash(variant: u8) -> tollgate_types::PasswordHash {
    let last = char::from(b'a' + variant % 26);
    let text = format!("$2b$04${}{last}", "x".repeat(52));
    tollgate_types::PasswordHash::parse(&text).expect("fixture hash is bcrypt-shaped")
}

/// A user insert for `username` (`<username>@example.com`) with `role`, created at `created_at`.
pub fn user_insert(username: &str, role: tollgate_types::Role, created_at: Timestamp) -> crate::UserInsert {
    let user = tollgate_types::NewUser::new(
        tollgate_types::Username::parse(username).expect("fixture username is valid"),
        tollgate_types::Email::parse(&format!("{username}@example.com")).expect("fixture email is valid"),
        role,
    );
    crate::UserInsert { id: tollgate_types::UserId::generate(), user, password_hash: fake_password_hash(0), created_at }
}

/// Stores a user named `username` with `role` at `T0`.
pub async fn create_user(
    store: &dyn crate::Store,
    username: &str,
    role: tollgate_types::Role,
) -> tollgate_types::UserRecord {
    let insert = user_insert(username, role, T0);
    store.insert_user(&insert, &audit("user.create", insert.id, T0)).await.expect("insert user succeeds")
}

/// A refresh-token hash unique to `(session, generation)`.
pub fn refresh_hash(session: &tollgate_types::SessionId, generation: u8) -> TokenHash {
    let mut bytes = [generation; 32];
    bytes[..16].copy_from_slice(session.as_bytes());
    TokenHash::from_bytes(bytes)
}

/// A session start for `user` at `at(seconds)` whose first refresh token expires a day later.
pub fn session_start(user: &tollgate_types::UserRecord, seconds: i64) -> crate::SessionStart {
    let id = tollgate_types::SessionId::generate();
    crate::SessionStart {
        id,
        user_id: user.id,
        checked_password_hash: fake_password_hash(0),
        refresh: crate::RefreshTokenInsert {
            hash: refresh_hash(&id, 1),
            key_id: KeyId(1),
            expires_at: at(seconds + 86_400),
        },
        created_at: at(seconds),
        ip: Some("192.0.2.1".parse().expect("fixture address parses")),
    }
}

/// Starts a session for `user` at `at(seconds)`.
pub async fn start_session(
    store: &dyn crate::Store,
    user: &tollgate_types::UserRecord,
    seconds: i64,
) -> tollgate_types::SessionRecord {
    let start = session_start(user, seconds);
    store.start_session(&start, &audit("session.create", user.id, at(seconds))).await.expect("session starts")
}

/// Runs `futures` concurrently on the current task and collects their outputs in order (the
/// conformance suite has no executor of its own to spawn on, and borrows the store).
pub async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut done = true;
        for (future, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(context) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
    outputs.into_iter().map(|output| output.expect("every future completed")).collect()
}
