//! Change requests: the requester is the caller, an admin other than the requester decides, and an
//! approval sets an absolute allocation checked when it is approved.

use tollgate::{Caller, Error, Principal, RequestState, Role, TokenId};

use super::{Fixture, owners};

#[tokio::test]
async fn the_requester_cannot_approve_and_approvals_are_absolute() {
    let fixture = Fixture::new().await;
    let (agent, _) = fixture.agent(100).await;
    let admin = owners::user(&fixture.users, "ada", Role::Admin).await;
    let other_admin = owners::user(&fixture.users, "grace", Role::Admin).await;
    let as_user = |user: &tollgate::UserRecord| {
        Caller::new(Principal::User { id: user.id, username: user.username.clone(), role: Role::Admin })
    };
    let ada = as_user(&admin);
    let grace = as_user(&other_admin);

    let first = fixture.agents.request_budget(&ada, &agent, 150, "more traffic").await.unwrap();
    let second = fixture.agents.request_budget(&ada, &agent, 150, "again").await.unwrap();
    assert_eq!((first.state, first.requester.as_str()), (RequestState::Pending, admin.id.to_string().as_str()));
    // Separation of duties: not by the requester, nor by a token acting for the requester.
    let refused = fixture.agents.decide_budget_request(&ada, &first.id, true, None).await.unwrap_err();
    assert!(matches!(refused, Error::Forbidden(_)), "{refused:?}");
    let ada_token = Caller::new(Principal::Token {
        id: TokenId::generate(),
        owner: tollgate::OwnerId::User(admin.id),
        permission: tollgate::Permission::Admin,
    });
    assert!(matches!(
        fixture.agents.decide_budget_request(&ada_token, &first.id, true, None).await,
        Err(Error::Forbidden(_))
    ));

    // Two approvals of "100 → 150" give 150, not 200.
    let approved = fixture.agents.decide_budget_request(&grace, &first.id, true, Some("ok")).await.unwrap();
    assert_eq!(
        (approved.state, approved.decided_by.as_deref()),
        (RequestState::Approved, Some(other_admin.id.to_string().as_str()))
    );
    fixture.agents.decide_budget_request(&grace, &second.id, true, None).await.unwrap();
    assert_eq!(fixture.account(&agent).await.allocated, 150);
    // Deciding twice is a conflict.
    let twice = fixture.agents.decide_budget_request(&grace, &first.id, false, None).await.unwrap_err();
    assert!(matches!(twice, Error::Conflict(_)), "{twice:?}");

    // The requester may cancel; a cancelled request cannot be approved.
    let third = fixture.agents.request_budget(&ada, &agent, 500, "launch").await.unwrap();
    assert!(matches!(fixture.agents.cancel_budget_request(&grace, &third.id).await, Err(Error::Forbidden(_))));
    fixture.agents.cancel_budget_request(&ada, &third.id).await.unwrap();
    assert!(matches!(
        fixture.agents.decide_budget_request(&grace, &third.id, true, None).await,
        Err(Error::Conflict(_))
    ));

    // The history names who, why and the request.
    let history = fixture
        .agents
        .budget_history(&Principal::Operator, &agent, false, &tollgate::PageRequest::first(10))
        .await
        .unwrap();
    let allocations: Vec<(i64, Option<tollgate::BudgetRequestId>)> =
        history.items.iter().map(|entry| (entry.allocated_after, entry.request)).collect();
    assert_eq!(allocations, [(150, Some(second.id)), (150, Some(first.id)), (100, None)]);
    assert_eq!(history.items[1].actor, other_admin.id.to_string());
    fixture.assert_invariants().await;
}

#[tokio::test]
async fn an_approval_below_what_is_spent_and_reserved_is_refused() {
    let fixture = Fixture::new().await;
    let (agent, caller) = fixture.agent(100).await;
    fixture.agents.handshake(&caller, &super::openai(), Some(80), None).await.unwrap();
    let admin = owners::user(&fixture.users, "ada", Role::Admin).await;
    let ada = Caller::new(Principal::User { id: admin.id, username: admin.username.clone(), role: Role::Admin });
    let request = fixture.agents.request_budget(&Caller::operator(), &agent, 50, "shrink").await.unwrap();
    let refused = fixture.agents.decide_budget_request(&ada, &request.id, true, None).await.unwrap_err();
    assert!(matches!(refused, Error::Conflict(_)), "{refused:?}");
    let still = fixture.agents.budget_request(&Principal::Operator, &request.id).await.unwrap();
    assert_eq!((still.state, fixture.account(&agent).await.allocated), (RequestState::Pending, 100));
}
