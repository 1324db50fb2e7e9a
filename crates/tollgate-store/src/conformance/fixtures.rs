//! Builders shared by the conformance cases: times, hashes, owners, projects, tokens, users, sessions,
//! counters and reservations.

use tollgate_types::{
    Actor, AuditEvent, Description, Imposed, KeyId, NewProject, NewServiceAccount, NewToken, OwnerRecord,
    ProjectRecord, ServiceAccountId, ServiceAccountRecord, Timestamp, TokenHash, TokenId, TokenName, TokenRecord,
    UserRecord, Username,
};

use crate::{ProjectInsert, ServiceAccountInsert, Store, TokenInsert};

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

/// A token insert for `owner`, bound to `project` when given, created at `created_at`. The display
/// names and the owner's role come from the owner and the project records, as the facade fills them in.
pub fn insert(name: &str, owner: &OwnerRecord, project: Option<&ProjectRecord>, created_at: Timestamp) -> TokenInsert {
    let id = TokenId::generate();
    let mut token = NewToken::new(TokenName::parse(name).expect("fixture name is valid"), owner.id);
    token.project = project.map(|project| project.id);
    TokenInsert {
        id,
        token,
        owner_name: owner.name.to_owner(),
        owner_role: owner.role,
        project_name: project.map(|project| project.name.clone()),
        imposed: Imposed::NONE,
        hash: hash_for(&id, 0),
        key_id: KeyId(1),
        display_hint: "tg_AbCd…wxyz".to_owned(),
        created_at,
        agent: None,
    }
}

/// Makes `owner` a member of `project` with the member role (what a token bound to the project
/// needs), at `at(seconds)`; nothing changes when it already is one.
pub async fn join(store: &dyn Store, owner: &OwnerRecord, project: &ProjectRecord, seconds: i64) {
    let event = audit("project.put_member", project.id, at(seconds));
    store
        .put_project_member(&project.id, &owner.id, tollgate_types::ProjectRole::Member, at(seconds), &event)
        .await
        .expect("put project member succeeds");
}

/// Stores a token named `name` of `owner` (in `project`, joining it first) at `at(seconds)`.
pub async fn create_token(
    store: &dyn Store,
    name: &str,
    owner: &OwnerRecord,
    project: Option<&ProjectRecord>,
    seconds: i64,
) -> TokenRecord {
    if let Some(project) = project {
        join(store, owner, project, seconds).await;
    }
    let insert = insert(name, owner, project, at(seconds));
    store.insert_token(&insert, &audit("token.create", insert.id, at(seconds))).await.expect("insert token succeeds")
}

/// A service account insert named `name`, created at `created_at`.
pub fn service_account_insert(name: &str, created_at: Timestamp) -> ServiceAccountInsert {
    ServiceAccountInsert {
        id: ServiceAccountId::generate(),
        account: NewServiceAccount {
            name: Username::parse_field("name", name).expect("fixture account name is valid"),
            description: Description::parse(&format!("{name} runs unattended")).expect("fixture description"),
        },
        created_at,
    }
}

/// Stores a service account named `name` at `T0`.
pub async fn create_service_account(store: &dyn Store, name: &str) -> ServiceAccountRecord {
    let insert = service_account_insert(name, T0);
    store
        .insert_service_account(&insert, &audit("service_account.create", insert.id, T0))
        .await
        .expect("insert service account succeeds")
}

/// The owner named `name`: the user or service account that has the name, else a new (active)
/// service account of that name.
pub async fn owner(store: &dyn Store, name: &str) -> OwnerRecord {
    let username = Username::parse_field("name", name).expect("fixture owner name is valid");
    if let Some(found) = store.owner_by_name(&username).await.expect("owner lookup succeeds") {
        return found;
    }
    let account = create_service_account(store, name).await;
    OwnerRecord { id: account.id.into(), name: account.name, active: true, role: None }
}

/// A user as the owner of tokens (its status and role as in `user`).
pub fn user_owner(user: &UserRecord) -> OwnerRecord {
    OwnerRecord {
        id: user.id.into(),
        name: user.username.clone(),
        active: user.status == tollgate_types::UserStatus::Active,
        role: Some(user.role),
    }
}

/// A project insert named `name`, created at `created_at`.
pub fn project_insert(name: &str, created_at: Timestamp) -> ProjectInsert {
    ProjectInsert {
        id: tollgate_types::ProjectId::generate(),
        project: NewProject {
            name: tollgate_types::ProjectName::parse(name).expect("fixture project name is valid"),
            description: Description::parse(&format!("the {name} project")).expect("fixture description"),
        },
        created_at,
    }
}

/// The project named `name`, created at `T0` when there is none yet.
pub async fn project(store: &dyn Store, name: &str) -> ProjectRecord {
    let insert = project_insert(name, T0);
    if let Some(found) = store.project_by_name(&insert.project.name).await.expect("project lookup succeeds") {
        return found;
    }
    store.insert_project(&insert, &audit("project.create", insert.id, T0)).await.expect("insert project succeeds")
}

/// The actions of the whole audit chain, oldest first.
pub async fn chain_actions(store: &dyn Store) -> Vec<String> {
    let chain = store.audit_chain(0, 1_000).await.expect("audit chain reads");
    chain.into_iter().map(|entry| entry.event.action).collect()
}

/// `ids`, sorted (for comparing sets of revoked tokens whatever order a backend reports them in).
pub fn sorted(mut ids: Vec<TokenId>) -> Vec<TokenId> {
    ids.sort();
    ids
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
pub async fn create_user(store: &dyn Store, username: &str, role: tollgate_types::Role) -> tollgate_types::UserRecord {
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
    store: &dyn Store,
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

/// Whether `error` is a refusal of a token whose `entity` (`owner` or `project`) does not exist.
///
/// [`TokenStore::insert_token`](crate::TokenStore::insert_token) documents `NotFound` naming the
/// entity; the SQLite backend answers `Conflict` (its schema's trigger or foreign key refuses the
/// row). Both are accepted until backend and contract agree; anything else, or success, fails.
pub fn refuses_missing(error: &crate::StoreError, entity: &str) -> bool {
    match error {
        crate::StoreError::NotFound { entity: named } => *named == entity,
        crate::StoreError::Conflict(_) => true,
        _ => false,
    }
}

/// A limit subject for a service account no case stores: limits, counters, leases and reservations
/// name their subjects by id and need no stored owner.
pub fn some_owner() -> tollgate_types::LimitSubject {
    tollgate_types::LimitSubject::Owner(tollgate_types::OwnerId::ServiceAccount(ServiceAccountId::generate()))
}

/// The counter of `subject`'s `metric` over `window` for the window containing `at(seconds)`.
pub fn counter(
    subject: &tollgate_types::LimitSubject,
    metric: tollgate_types::Metric,
    window: tollgate_types::Window,
    seconds: i64,
) -> tollgate_types::CounterKey {
    let limit = tollgate_types::LimitKey { subject: subject.clone(), metric, window };
    tollgate_types::CounterKey::at(limit, at(seconds))
}

/// A hold of `amount` on `key`, refused past `max` (held unconditionally without one).
pub fn hold(key: &tollgate_types::CounterKey, amount: i64, max: Option<u64>) -> crate::Hold {
    crate::Hold { key: key.clone(), amount, max }
}

/// A new reservation of `holds` for `token_id`, made at `at(seconds)` and expiring a minute later.
pub fn reservation(token_id: TokenId, holds: Vec<crate::Hold>, seconds: i64) -> crate::ReservationInsert {
    crate::ReservationInsert {
        id: tollgate_types::ReservationId::generate(),
        token_id,
        holds,
        created_at: at(seconds),
        expires_at: at(seconds + 60),
    }
}
