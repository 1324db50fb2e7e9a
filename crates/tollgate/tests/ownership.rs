//! Ownership by id through the facade, over a real SQLite file: whom a token may be created for,
//! naming owners and projects without revealing who exists, binding tokens to projects, and the
//! constraints an admin imposes on someone else's token.

mod identity_common;
use identity_common as common;

use std::time::Duration;

use common::Fixture;
use tollgate::{
    Caller, Description, Error, Imposed, IpAllowList, NewProject, OwnerId, Principal, ProjectId, ProjectName,
    ProjectRole, RefusalCode, Role, Timestamp, TokenPatch, ToolList, UserId, VerifyRequest,
};

fn not_found<T: std::fmt::Debug>(result: tollgate::Result<T>) -> &'static str {
    match result {
        Err(Error::NotFound { entity }) => entity,
        other => panic!("expected not found, got {other:?}"),
    }
}

async fn project(fx: &Fixture, name: &str) -> ProjectId {
    let project = NewProject { name: ProjectName::parse(name).unwrap(), description: Description::default() };
    fx.users.create_project(&fx.as_admin(), project).await.unwrap().id
}

#[tokio::test]
async fn non_admins_create_tokens_only_for_themselves_and_unknown_owners_are_not_found() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::User).await;
    let bob = fx.user("bob", Role::User).await;
    let robot = fx.service_account("robot").await;

    let own = fx.tokens.create(&alice.principal(), fx.new_token("mine", alice.id)).await.unwrap().record;
    assert_eq!(
        (own.owner, own.owner_name.as_str(), own.owner_role),
        (OwnerId::User(alice.id), "alice", Some(Role::User))
    );
    assert_eq!(own.imposed, Imposed::NONE, "nobody imposes on their own token");
    for owner in [OwnerId::User(bob.id), robot] {
        let refused = fx.tokens.create(&alice.principal(), fx.new_token("theirs", owner)).await;
        assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
    }
    for unknown in [OwnerId::User(UserId::generate()), OwnerId::ServiceAccount(tollgate::ServiceAccountId::generate())]
    {
        assert_eq!(not_found(fx.tokens.create(&Principal::Operator, fx.new_token("ghost", unknown)).await), "owner");
    }
    fx.users.suspend(&fx.as_admin(), &bob.id, "left").await.unwrap();
    let suspended = fx.tokens.create(&fx.admin.principal(), fx.new_token("late", bob.id)).await;
    assert!(matches!(suspended, Err(Error::Conflict(_))), "{suspended:?}");
}

#[tokio::test]
async fn owners_are_named_by_id_or_name_and_non_admins_learn_nothing_about_others() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::User).await;
    fx.user("bob", Role::User).await;
    let robot = fx.service_account("robot").await;
    let admin = fx.admin.principal();
    assert_eq!(fx.tokens.resolve_owner(&admin, "alice").await.unwrap(), OwnerId::User(alice.id));
    assert_eq!(fx.tokens.resolve_owner(&admin, "ROBOT").await.unwrap(), robot, "names are case-insensitive");
    assert_eq!(fx.tokens.resolve_owner(&admin, &robot.to_string()).await.unwrap(), robot);
    assert_eq!(not_found(fx.tokens.resolve_owner(&admin, "nobody").await), "owner");

    let me = alice.principal();
    assert_eq!(fx.tokens.resolve_owner(&me, "alice").await.unwrap(), OwnerId::User(alice.id));
    assert_eq!(fx.tokens.resolve_owner(&me, &alice.id.to_string()).await.unwrap(), OwnerId::User(alice.id));
    let refusals: Vec<String> = refusals_for(&fx, &me, ["bob", "nobody", &robot.to_string()]).await;
    assert!(refusals.iter().all(|refusal| *refusal == refusals[0]), "one answer whoever exists: {refusals:?}");
}

/// The refusal messages `resolve_owner` gives `principal` for each name.
async fn refusals_for<const N: usize>(fx: &Fixture, principal: &Principal, names: [&str; N]) -> Vec<String> {
    let mut refusals = Vec::new();
    for name in names {
        match fx.tokens.resolve_owner(principal, name).await {
            Err(Error::Forbidden(message)) => refusals.push(message),
            other => panic!("{name}: expected forbidden, got {other:?}"),
        }
    }
    refusals
}

#[tokio::test]
async fn tokens_bind_only_to_projects_their_owner_is_a_member_of() {
    let fx = Fixture::new().await;
    let search = project(&fx, "search").await;
    let (alice, bob, carol) =
        (fx.user("alice", Role::User).await, fx.user("bob", Role::User).await, fx.user("carol", Role::User).await);
    fx.users.put_project_member(&fx.as_admin(), &search, &OwnerId::User(alice.id), ProjectRole::Member).await.unwrap();
    fx.users.put_project_member(&fx.as_admin(), &search, &OwnerId::User(bob.id), ProjectRole::Viewer).await.unwrap();
    let in_search = |user: UserId| {
        let mut token = fx.new_token("search", user);
        token.project = Some(search);
        token
    };

    let bound = fx.tokens.create(&alice.principal(), in_search(alice.id)).await.unwrap();
    assert_eq!(
        (bound.record.project, bound.record.project_name.as_ref().map(|name| name.as_str())),
        (Some(search), Some("search"))
    );
    let viewer = fx.tokens.create(&bob.principal(), in_search(bob.id)).await;
    assert!(matches!(viewer, Err(Error::Forbidden(_))), "a viewer of the project may not spend it: {viewer:?}");
    assert_eq!(not_found(fx.tokens.create(&carol.principal(), in_search(carol.id)).await), "project");
    let mut unknown = fx.new_token("elsewhere", carol.id);
    unknown.project = Some(ProjectId::generate());
    assert_eq!(not_found(fx.tokens.create(&carol.principal(), unknown).await), "project", "exists or not");
    let by_admin = fx.tokens.create(&fx.admin.principal(), in_search(carol.id)).await;
    assert!(matches!(by_admin, Err(Error::Conflict(_))), "the owner must be a member: {by_admin:?}");

    assert_eq!(fx.tokens.resolve_project(&alice.principal(), "search").await.unwrap(), search);
    assert_eq!(fx.tokens.resolve_project(&bob.principal(), &search.to_string()).await.unwrap(), search);
    for text in ["search", "nope", &ProjectId::generate().to_string()] {
        assert_eq!(not_found(fx.tokens.resolve_project(&carol.principal(), text).await), "project", "{text}");
    }

    // Leaving the project revokes the tokens bound to it, on the next verify.
    fx.tokens.verify(bound.secret.expose(), &VerifyRequest::default()).await.unwrap();
    fx.users.remove_project_member(&fx.as_admin(), &search, &OwnerId::User(alice.id)).await.unwrap();
    let refused = fx.tokens.verify(bound.secret.expose(), &VerifyRequest::default()).await.unwrap_err();
    assert!(matches!(refused, Error::Refused(ref r) if r.code == RefusalCode::Revoked), "{refused:?}");
}

#[tokio::test]
async fn an_admins_constraints_on_someone_elses_token_can_only_be_tightened_by_them() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::User).await;
    let hour = fx.now().saturating_add(Duration::from_secs(3_600));
    let mut token = fx.new_token("limited", alice.id);
    token.ip_allow = IpAllowList::parse(&["10.1.2.0/24"]).unwrap();
    token.allowed_tools = ToolList::parse(&["search", "browse"]).unwrap();
    token.expires_at = Some(hour);
    let limited = fx.tokens.create(&fx.admin.principal(), token).await.unwrap().record;
    assert_eq!(limited.imposed, Imposed::ALL);

    let later = Timestamp::from_unix_micros(hour.unix_micros() + 1);
    let loosenings = [
        ("ip_allow", TokenPatch { ip_allow: Some(IpAllowList::default()), ..TokenPatch::default() }),
        (
            "ip_allow",
            TokenPatch { ip_allow: Some(IpAllowList::parse(&["10.0.0.0/8"]).unwrap()), ..TokenPatch::default() },
        ),
        ("allowed_tools", TokenPatch { allowed_tools: Some(ToolList::default()), ..TokenPatch::default() }),
        (
            "allowed_tools",
            TokenPatch { allowed_tools: Some(ToolList::parse(&["search", "shell"]).unwrap()), ..TokenPatch::default() },
        ),
        ("expires_at", TokenPatch { expires_at: Some(None), ..TokenPatch::default() }),
        ("expires_at", TokenPatch { expires_at: Some(Some(later)), ..TokenPatch::default() }),
    ];
    for (field, patch) in &loosenings {
        match fx.tokens.update(&alice.principal(), &limited.id, patch).await {
            Err(Error::Forbidden(message)) => assert!(message.starts_with(field), "{field}: {message}"),
            other => panic!("{field}: loosening must be forbidden, got {other:?}"),
        }
    }
    let unchanged = fx.tokens.show(&Principal::Operator, &limited.id).await.unwrap();
    assert_eq!(
        (&unchanged.ip_allow, &unchanged.allowed_tools, unchanged.expires_at),
        (&limited.ip_allow, &limited.allowed_tools, limited.expires_at)
    );

    let half_hour = fx.now().saturating_add(Duration::from_secs(1_800));
    let tighter = TokenPatch {
        ip_allow: Some(IpAllowList::parse(&["10.1.2.0/25"]).unwrap()),
        allowed_tools: Some(ToolList::parse(&["search"]).unwrap()),
        expires_at: Some(Some(half_hour)),
        ..TokenPatch::default()
    };
    let tightened = fx.tokens.update(&alice.principal(), &limited.id, &tighter).await.unwrap();
    assert_eq!((tightened.expires_at, tightened.imposed), (Some(half_hour), Imposed::ALL), "still imposed");
    let admin_loosens = TokenPatch { ip_allow: Some(IpAllowList::default()), ..TokenPatch::default() };
    assert!(
        fx.tokens.update(&fx.admin.principal(), &limited.id, &admin_loosens).await.unwrap().ip_allow.is_unrestricted()
    );

    // On a token she made herself, nothing is imposed: she may loosen it.
    let mut own = fx.new_token("own", alice.id);
    own.allowed_tools = ToolList::parse(&["search"]).unwrap();
    let own = fx.tokens.create(&alice.principal(), own).await.unwrap().record;
    let open = TokenPatch { allowed_tools: Some(ToolList::default()), ..TokenPatch::default() };
    assert!(fx.tokens.update(&alice.principal(), &own.id, &open).await.unwrap().allowed_tools.is_unrestricted());
}

#[tokio::test]
async fn service_accounts_share_the_namespace_and_suspending_one_revokes_its_tokens() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::User).await;
    let robot = fx.service_account("robot").await;
    let OwnerId::ServiceAccount(robot_id) = robot else { panic!("a service account") };
    let taken = fx
        .users
        .create(&common::operator(), common::new_user("robot", Role::User), common::password(common::PASSWORD))
        .await;
    assert!(matches!(taken, Err(Error::Conflict(_))), "a user may not take a service account's name: {taken:?}");
    let named_like_alice = tollgate::NewServiceAccount {
        name: tollgate::Username::parse("alice").unwrap(),
        description: Description::default(),
    };
    let taken = fx.users.create_service_account(&fx.as_admin(), named_like_alice).await;
    assert!(matches!(taken, Err(Error::Conflict(_))), "nor the reverse: {taken:?}");

    let me = alice.principal();
    assert_eq!(not_found(fx.users.service_account(&me, &robot_id).await), "service account");
    assert!(matches!(
        fx.users.list_service_accounts(&me, &tollgate::PageRequest::default()).await,
        Err(Error::Forbidden(_))
    ));
    assert!(matches!(
        fx.users.suspend_service_account(&Caller::new(me), &robot_id, "no").await,
        Err(Error::Forbidden(_))
    ));

    let created = fx.tokens.create(&Principal::Operator, fx.new_token("ci", robot)).await.unwrap();
    let (_, principal) = fx.users.authenticate_token(created.secret.expose(), &VerifyRequest::default()).await.unwrap();
    assert_eq!(
        fx.users.service_account(&principal, &robot_id).await.unwrap().name.as_str(),
        "robot",
        "it reads itself"
    );

    let empty = fx.users.suspend_service_account(&fx.as_admin(), &robot_id, " ").await;
    assert!(matches!(empty, Err(Error::Validation(ref invalid)) if invalid.field == "reason"), "{empty:?}");
    fx.users.suspend_service_account(&fx.as_admin(), &robot_id, "key leaked").await.unwrap();
    let refused = fx.tokens.verify(created.secret.expose(), &VerifyRequest::default()).await.unwrap_err();
    assert!(
        matches!(refused, Error::Refused(ref r) if r.code == RefusalCode::Revoked),
        "cached, yet refused: {refused:?}"
    );
    let late = fx.tokens.create(&Principal::Operator, fx.new_token("late", robot)).await;
    assert!(matches!(late, Err(Error::Conflict(_))), "{late:?}");
    fx.users.activate_service_account(&fx.as_admin(), &robot_id).await.unwrap();
    assert!(fx.tokens.verify(created.secret.expose(), &VerifyRequest::default()).await.is_err(), "stays revoked");
    let fresh = fx.tokens.create(&Principal::Operator, fx.new_token("fresh", robot)).await.unwrap();
    assert!(fx.tokens.verify(fresh.secret.expose(), &VerifyRequest::default()).await.is_ok());
}

#[tokio::test]
async fn project_members_read_their_projects_and_everyone_else_gets_not_found() {
    let fx = Fixture::new().await;
    let (search, chat) = (project(&fx, "search").await, project(&fx, "chat").await);
    let (alice, bob) = (fx.user("alice", Role::User).await, fx.user("bob", Role::Viewer).await);
    fx.users.put_project_member(&fx.as_admin(), &search, &OwnerId::User(alice.id), ProjectRole::Member).await.unwrap();
    fx.users.put_project_member(&fx.as_admin(), &search, &OwnerId::User(bob.id), ProjectRole::Viewer).await.unwrap();
    for member in [&alice, &bob] {
        assert_eq!(fx.users.project(&member.principal(), &search).await.unwrap().name.as_str(), "search");
        assert_eq!(fx.users.project_members(&member.principal(), &search).await.unwrap().len(), 2);
        let listed = fx.users.list_projects(&member.principal(), &tollgate::PageRequest::default()).await.unwrap();
        assert_eq!(listed.items.iter().map(|project| project.id).collect::<Vec<_>>(), [search]);
        assert_eq!(not_found(fx.users.project(&member.principal(), &chat).await), "project");
        assert_eq!(not_found(fx.users.project(&member.principal(), &ProjectId::generate()).await), "project");
    }
    let all = fx.users.list_projects(&fx.admin.principal(), &tollgate::PageRequest::default()).await.unwrap();
    assert_eq!(all.items.len(), 2);
    let by_member = fx
        .users
        .put_project_member(&Caller::new(alice.principal()), &chat, &OwnerId::User(alice.id), ProjectRole::Member)
        .await;
    assert!(matches!(by_member, Err(Error::Forbidden(_))), "only admins manage members: {by_member:?}");
}
