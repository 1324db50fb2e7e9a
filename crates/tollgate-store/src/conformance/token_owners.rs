//! Conformance cases for what a token knows about its owner and project: display names, the owner's
//! current role, and the constraints an admin imposed.

use tollgate_types::{Imposed, IpAllowList, Permission, Role, TokenName, TokenPatch, TokenRecord};

use super::fixtures::{at, audit, create_token, create_user, hash_for, insert, owner, project, user_owner};
use crate::{PageRequest, SecretRotation, StatusFilter, Store, StoreError, TokenFilter};

async fn every_read(store: &dyn Store, token: &TokenRecord) -> Vec<TokenRecord> {
    let by_id = store.token(&token.id).await.unwrap();
    let by_hash = store.token_by_hash(&hash_for(&token.id, 0), at(50)).await.unwrap().expect("found by hash").record;
    let filter = TokenFilter { owner: Some(token.owner), status: StatusFilter::All, ..TokenFilter::default() };
    let listed = store.list_tokens(&filter, &PageRequest::first(10), at(50)).await.unwrap().items;
    let listed = listed.into_iter().find(|record| record.id == token.id).expect("listed");
    vec![by_id, by_hash, listed]
}

/// A token carries its owner's and project's names as given at creation, through every read, and
/// keeps them through updates and rotations.
pub async fn token_records_carry_owner_and_project_names(store: &dyn Store) {
    let alice = user_owner(&create_user(store, "alice", Role::User).await);
    let bot = owner(store, "deploy-bot").await;
    let search = project(store, "Search").await;
    let in_project = create_token(store, "in project", &alice, Some(&search), 1).await;
    let unbound = create_token(store, "unbound", &bot, None, 2).await;
    assert_eq!(
        (in_project.owner, in_project.owner_name.as_str(), in_project.project, in_project.project_name.as_ref()),
        (alice.id, "alice", Some(search.id), Some(&search.name))
    );
    assert_eq!((unbound.owner, unbound.owner_name.as_str()), (bot.id, "deploy-bot"));
    assert_eq!((unbound.project, unbound.project_name.clone()), (None, None));
    for read in every_read(store, &in_project).await {
        assert_eq!(read, in_project);
    }
    for read in every_read(store, &unbound).await {
        assert_eq!(read, unbound);
    }

    let patch = TokenPatch { name: Some(TokenName::parse("renamed").unwrap()), ..TokenPatch::default() };
    let updated =
        store.update_token(&in_project.id, &patch, at(3), &audit("token.update", in_project.id, at(3))).await.unwrap();
    let rotation = SecretRotation {
        id: in_project.id,
        hash: hash_for(&in_project.id, 1),
        key_id: in_project.key_id,
        display_hint: "tg_NeWw…hint".to_owned(),
        previous_valid_until: None,
        at: at(4),
    };
    let rotated = store.rotate_token(&rotation, &audit("token.rotate", in_project.id, at(4))).await.unwrap();
    for record in [updated, rotated] {
        assert_eq!((record.owner, record.owner_name.clone()), (alice.id, in_project.owner_name.clone()));
        assert_eq!((record.project, record.project_name.clone()), (Some(search.id), in_project.project_name.clone()));
    }
}

/// The constraints an admin imposed round-trip, and a patch's `impose` adds to them: never removes
/// one, whatever else the patch changes.
pub async fn imposed_flags_round_trip_and_patches_add_to_them(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let mut imposed = insert("imposed", &alice, None, at(0));
    imposed.imposed = Imposed::IP_ALLOW;
    let created = store.insert_token(&imposed, &audit("token.create", imposed.id, at(0))).await.unwrap();
    assert_eq!(created.imposed, Imposed::IP_ALLOW);
    assert_eq!(store.token(&imposed.id).await.unwrap().imposed, Imposed::IP_ALLOW);
    let free = create_token(store, "free", &alice, None, 1).await;
    assert_eq!(store.token(&free.id).await.unwrap().imposed, Imposed::NONE);

    let update = |patch: TokenPatch, seconds| async move {
        let event = audit("token.update", imposed.id, at(seconds));
        store.update_token(&imposed.id, &patch, at(seconds), &event).await.unwrap()
    };
    let expiry = TokenPatch { expires_at: Some(Some(at(900))), impose: Imposed::EXPIRES_AT, ..TokenPatch::default() };
    let tightened = update(expiry, 2).await;
    assert_eq!(tightened.imposed, Imposed::IP_ALLOW.with(Imposed::EXPIRES_AT));
    assert_eq!(tightened.expires_at, Some(at(900)));
    let renamed = TokenPatch { name: Some(TokenName::parse("renamed").unwrap()), ..TokenPatch::default() };
    let renamed = update(renamed, 3).await;
    assert_eq!(renamed.imposed, Imposed::IP_ALLOW.with(Imposed::EXPIRES_AT), "imposing nothing removes nothing");
    let again = TokenPatch {
        ip_allow: Some(IpAllowList::parse(&["10.0.0.0/8"]).unwrap()),
        impose: Imposed::IP_ALLOW.with(Imposed::SCOPES),
        ..TokenPatch::default()
    };
    let widened = update(again, 4).await;
    let expected = Imposed::IP_ALLOW.with(Imposed::EXPIRES_AT).with(Imposed::SCOPES);
    assert_eq!(widened.imposed, expected);
    assert_eq!(store.token(&imposed.id).await.unwrap(), widened);
    assert_eq!(store.token(&free.id).await.unwrap().imposed, Imposed::NONE, "other tokens are untouched");
}

/// A user's token carries the user's current role (changed with the user, so its effective
/// permission follows); a service account's carries none; an insert with a role the owner does not
/// have is refused.
pub async fn token_owner_role_follows_the_users_role(store: &dyn Store) {
    let _admin = create_user(store, "root", Role::Admin).await;
    let alice = create_user(store, "alice", Role::User).await;
    let mut admin_level = insert("admin level", &user_owner(&alice), None, at(1));
    admin_level.token.permission = Permission::Admin;
    let token = store.insert_token(&admin_level, &audit("token.create", admin_level.id, at(1))).await.unwrap();
    assert_eq!((token.owner_role, token.effective_permission()), (Some(Role::User), Permission::Standard));
    let bots = create_token(store, "bot's", &owner(store, "deploy-bot").await, None, 2).await;
    assert_eq!((bots.owner_role, bots.effective_permission()), (None, Permission::Standard));

    store.set_user_role(&alice.id, Role::Viewer, at(3), &audit("user.set_role", alice.id, at(3))).await.unwrap();
    for read in every_read(store, &token).await {
        assert_eq!((read.owner_role, read.effective_permission()), (Some(Role::Viewer), Permission::ReadOnly));
    }
    store.set_user_role(&alice.id, Role::Admin, at(4), &audit("user.set_role", alice.id, at(4))).await.unwrap();
    let promoted = store.token(&token.id).await.unwrap();
    assert_eq!((promoted.owner_role, promoted.effective_permission()), (Some(Role::Admin), Permission::Admin));
    assert_eq!(store.token(&bots.id).await.unwrap().owner_role, None);

    let mut stale = insert("stale role", &user_owner(&alice), None, at(5));
    stale.owner_role = Some(Role::User);
    let error = store.insert_token(&stale, &audit("token.create", stale.id, at(5))).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    let mut roleless = insert("no role", &user_owner(&alice), None, at(5));
    roleless.owner_role = None;
    let error = store.insert_token(&roleless, &audit("token.create", roleless.id, at(5))).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    let mut bot_with_role = insert("bot with role", &owner(store, "deploy-bot").await, None, at(5));
    bot_with_role.owner_role = Some(Role::Admin);
    let error = store.insert_token(&bot_with_role, &audit("token.create", bot_with_role.id, at(5))).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    for refused in [stale.id, roleless.id, bot_with_role.id] {
        assert!(matches!(store.token(&refused).await, Err(StoreError::NotFound { .. })));
    }
}
