//! The protocol's money moves, and each failure of the system we replace as a regression test.

use std::time::Duration;

use tollgate::{Caller, Error, LeaseState, Principal, TokenId};

use super::{Fixture, openai, owners, report};

#[tokio::test]
async fn a_handshake_reserves_the_grant_and_reports_move_it_to_spent_once() {
    let fixture = Fixture::new().await;
    let (agent, caller) = fixture.agent(100).await;
    let handshake = fixture.agents.handshake(&caller, &openai(), Some(10), None).await.unwrap();
    assert_eq!((handshake.lease.granted, handshake.available_after), (10, 90));
    assert_eq!(handshake.provider_key.secret.expose(), "sk-budget-0123456789abcdef");
    let account = fixture.account(&agent).await;
    assert_eq!((account.reserved, account.spent), (10, 0));

    // No double debit: reserve 10 + report 3 is spent 3, reserved 7 — not spent 13.
    let lease = fixture.agents.report_lease(&caller, &handshake.lease.id, &report("r1", 3)).await.unwrap();
    assert_eq!(lease.remaining(), 7);
    let account = fixture.account(&agent).await;
    assert_eq!((account.reserved, account.spent, account.available()), (7, 3, 90));
    // The same request_id again changes nothing.
    fixture.agents.report_lease(&caller, &handshake.lease.id, &report("r1", 3)).await.unwrap();
    assert_eq!(fixture.account(&agent).await.spent, 3);
    // A report past the grant records nothing.
    let refused = fixture.agents.report_lease(&caller, &handshake.lease.id, &report("r2", 8)).await.unwrap_err();
    assert!(matches!(refused, Error::LeaseExhausted { remaining: 7 }), "{refused:?}");
    assert_eq!(fixture.account(&agent).await.spent, 3);

    // The return is computed by the server: grant − reported.
    let (closed, returned) = fixture.agents.return_lease(&caller, &handshake.lease.id).await.unwrap();
    assert_eq!((closed.state, returned), (LeaseState::Returned, 7));
    let account = fixture.account(&agent).await;
    assert_eq!((account.reserved, account.spent, account.available()), (0, 3, 97));
    // A closed lease accepts nothing, and a second return returns 0.
    let closed = fixture.agents.report_lease(&caller, &handshake.lease.id, &report("r3", 1)).await.unwrap_err();
    assert!(matches!(closed, Error::LeaseClosed { state: LeaseState::Returned }), "{closed:?}");
    assert_eq!(fixture.agents.return_lease(&caller, &handshake.lease.id).await.unwrap().1, 0);
    fixture.assert_invariants().await;
}

#[tokio::test]
async fn a_refresh_returns_the_remainder_in_the_same_step() {
    let fixture = Fixture::new().await;
    let (agent, caller) = fixture.agent(100).await;
    let first = fixture.agents.handshake(&caller, &openai(), Some(40), None).await.unwrap().lease;
    fixture.agents.report_lease(&caller, &first.id, &report("a", 15)).await.unwrap();
    let (second, available) = fixture.agents.refresh_lease(&caller, &first.id, Some(50), None).await.unwrap();
    assert_eq!((second.granted, second.refreshed_from, available), (50, Some(first.id), 35));
    let old = tollgate::BudgetStore::budget_lease(fixture.store.as_ref(), &first.id, super::START).await.unwrap();
    assert_eq!((old.state, old.returned), (LeaseState::Refreshed, 25));
    let account = fixture.account(&agent).await;
    assert_eq!((account.reserved, account.spent), (50, 15));
    // Refreshing a closed lease is refused and changes nothing.
    let refused = fixture.agents.refresh_lease(&caller, &first.id, None, None).await.unwrap_err();
    assert!(matches!(refused, Error::LeaseClosed { .. }), "{refused:?}");
    assert_eq!(fixture.account(&agent).await.reserved, 50);
    fixture.assert_invariants().await;
}

#[tokio::test]
async fn concurrent_returns_credit_once() {
    let fixture = Fixture::new().await;
    let (agent, caller) = fixture.agent(1_000).await;
    let lease = fixture.agents.handshake(&caller, &openai(), Some(600), None).await.unwrap().lease;
    fixture.agents.report_lease(&caller, &lease.id, &report("x", 100)).await.unwrap();
    let returns: Vec<_> = (0..16)
        .map(|_| {
            let (agents, caller, id) = (fixture.agents.clone(), caller.clone(), lease.id);
            tokio::spawn(async move { agents.return_lease(&caller, &id).await.unwrap().1 })
        })
        .collect();
    let mut credited = 0;
    for task in returns {
        credited += task.await.unwrap();
    }
    assert_eq!(credited, 500, "one return credits the remainder, the others 0");
    let account = fixture.account(&agent).await;
    assert_eq!((account.reserved, account.spent, account.available()), (0, 100, 900));
    fixture.assert_invariants().await;
}

#[tokio::test]
async fn nothing_is_reserved_when_the_handshake_fails() {
    let fixture = Fixture::new().await;
    let (agent, caller) = fixture.agent(100).await;
    // The key does not decrypt (its row was altered): the handshake fails before anything is reserved.
    let connection = rusqlite::Connection::open(&fixture.path).unwrap();
    connection.execute("UPDATE provider_keys SET nonce = zeroblob(12)", []).unwrap();
    let error = fixture.agents.handshake(&caller, &openai(), Some(10), None).await.unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    // A provider the key is not of: the same, nothing reserved.
    let other = tollgate::ProviderName::parse("anthropic").unwrap();
    let error = fixture.agents.handshake(&caller, &other, Some(10), None).await.unwrap_err();
    assert!(matches!(error, Error::NotFound { entity: "provider_key" }), "{error:?}");
    let account = fixture.account(&agent).await;
    assert_eq!((account.reserved, account.spent, account.available()), (0, 0, 100));
    let leases =
        fixture.agents.leases(&Principal::Operator, &Default::default(), &tollgate::PageRequest::first(10)).await;
    assert!(leases.unwrap().items.is_empty());
    fixture.assert_invariants().await;
}

#[tokio::test]
async fn only_the_leases_own_agent_speaks_for_it() {
    let fixture = Fixture::new().await;
    let (_, alice) = fixture.agent(100).await;
    let (_, bob) = fixture.agent(100).await;
    let lease = fixture.agents.handshake(&alice, &openai(), Some(10), None).await.unwrap().lease;
    for caller in [&bob] {
        let refused = fixture.agents.report_lease(caller, &lease.id, &report("r", 1)).await.unwrap_err();
        assert!(matches!(refused, Error::NotFound { entity: "lease" }), "{refused:?}");
        let refused = fixture.agents.return_lease(caller, &lease.id).await.unwrap_err();
        assert!(matches!(refused, Error::NotFound { entity: "lease" }), "{refused:?}");
        let refused = fixture.agents.refresh_lease(caller, &lease.id, None, None).await.unwrap_err();
        assert!(matches!(refused, Error::NotFound { entity: "lease" }), "{refused:?}");
    }
    // Not an agent at all: neither the operator nor a token may speak the protocol.
    let token = Caller::new(Principal::Token {
        id: TokenId::generate(),
        owner: fixture.owner,
        permission: tollgate::Permission::Admin,
    });
    for caller in [Caller::operator(), token] {
        let refused = fixture.agents.report_lease(&caller, &lease.id, &report("r", 1)).await.unwrap_err();
        assert!(matches!(refused, Error::Forbidden(_)), "{refused:?}");
        assert!(matches!(fixture.agents.handshake(&caller, &openai(), None, None).await, Err(Error::Forbidden(_))));
    }
    assert_eq!(fixture.agents.return_lease(&alice, &lease.id).await.unwrap().1, 10);
}

#[tokio::test]
async fn an_exhausted_budget_pauses_the_agent_until_its_allocation_rises() {
    let fixture = Fixture::with(tollgate::BudgetSettings { min_grant: 20, ..Default::default() }).await;
    let (agent, caller) = fixture.agent(50).await;
    let lease = fixture.agents.handshake(&caller, &openai(), Some(40), None).await.unwrap().lease;
    let refused = fixture.agents.handshake(&caller, &openai(), Some(40), None).await.unwrap_err();
    assert!(matches!(refused, Error::BudgetExhausted { available: 10, needed: 20 }), "{refused:?}");
    let budget = fixture.agents.budget(&Principal::Operator, &agent).await.unwrap();
    assert_eq!((budget.status, budget.available), ("paused_for_budget", 10));
    // The allocation cannot go below what is spent and reserved.
    let refused = fixture.agents.set_budget(&Caller::operator(), &agent, 30, None).await.unwrap_err();
    assert!(matches!(refused, Error::Conflict(_)), "{refused:?}");
    let budget = fixture.agents.set_budget(&Caller::operator(), &agent, 200, Some("more")).await.unwrap();
    assert_eq!((budget.status, budget.available), ("ok", 160));
    fixture.agents.handshake(&caller, &openai(), Some(40), None).await.unwrap();
    fixture.agents.return_lease(&caller, &lease.id).await.unwrap();
    fixture.assert_invariants().await;
}

#[tokio::test]
async fn an_expired_lease_returns_its_remainder_by_itself() {
    let fixture = Fixture::new().await;
    let (agent, caller) = fixture.agent(100).await;
    let lease =
        fixture.agents.handshake(&caller, &openai(), Some(30), Some(Duration::from_secs(60))).await.unwrap().lease;
    fixture.agents.report_lease(&caller, &lease.id, &report("a", 5)).await.unwrap();
    fixture.clock.advance(Duration::from_secs(61));
    // The next access sees it expired, whichever it is; no sweeper needed.
    let refused = fixture.agents.report_lease(&caller, &lease.id, &report("b", 5)).await.unwrap_err();
    assert!(matches!(refused, Error::LeaseClosed { state: LeaseState::Expired }), "{refused:?}");
    let account = fixture.account(&agent).await;
    assert_eq!((account.reserved, account.spent, account.available()), (0, 5, 95));
    // The sweeper expires what nobody touches.
    let other = fixture.agents.handshake(&caller, &openai(), Some(10), Some(Duration::from_secs(60))).await.unwrap();
    fixture.clock.advance(Duration::from_secs(61));
    assert_eq!(fixture.agents.expire_overdue_leases().await.unwrap(), 1);
    assert_eq!(fixture.account(&agent).await.reserved, 0);
    let _ = other;
    fixture.assert_invariants().await;
}

#[tokio::test]
async fn tampering_with_the_ledger_is_found() {
    let fixture = Fixture::new().await;
    let (agent, caller) = fixture.agent(100).await;
    let lease = fixture.agents.handshake(&caller, &openai(), Some(30), None).await.unwrap().lease;
    fixture.agents.report_lease(&caller, &lease.id, &report("a", 5)).await.unwrap();
    fixture.assert_invariants().await;
    let connection = rusqlite::Connection::open(&fixture.path).unwrap();
    connection.execute("UPDATE budget_accounts SET spent = spent - 1", []).unwrap();
    let violation = fixture.agents.verify_budgets(&Principal::Operator).await.unwrap().expect("a violation");
    assert!(violation.contains(&agent.to_string()) && violation.contains("ledger"), "{violation}");
    let refused = connection.execute("DELETE FROM budget_ledger", []).unwrap_err().to_string();
    assert!(refused.contains("append-only"), "{refused}");
}

#[tokio::test]
async fn a_parents_lease_bounds_its_childrens() {
    let fixture = Fixture::new().await;
    let (parent, parent_caller) = fixture.agent(1_000).await;
    let (child, child_caller) = fixture.agent(0).await;
    let root = fixture.agents.handshake(&parent_caller, &openai(), Some(300), None).await.unwrap().lease;
    let delegated = fixture.agents.delegate_lease(&parent_caller, &root.id, &child, 100, None).await.unwrap();
    assert_eq!((delegated.agent, delegated.account, delegated.parent), (child, parent, Some(root.id)));
    // The child spends with its own credential, on the parent's budget, never past its grant.
    fixture.agents.report_lease(&child_caller, &delegated.id, &report("c1", 60)).await.unwrap();
    let refused = fixture.agents.report_lease(&child_caller, &delegated.id, &report("c2", 41)).await.unwrap_err();
    assert!(matches!(refused, Error::LeaseExhausted { remaining: 40 }), "{refused:?}");
    assert_eq!(fixture.account(&parent).await.spent, 60);
    // The parent cannot report on the child's lease, nor the child delegate out of the parent's.
    let refused = fixture.agents.report_lease(&parent_caller, &delegated.id, &report("p1", 1)).await.unwrap_err();
    assert!(matches!(refused, Error::NotFound { entity: "lease" }), "{refused:?}");
    let refused = fixture.agents.delegate_lease(&child_caller, &root.id, &child, 10, None).await.unwrap_err();
    assert!(matches!(refused, Error::NotFound { entity: "lease" }), "{refused:?}");
    // Another owner's agent is no child: not even acknowledged.
    let stranger = {
        let other = owners::service_account(&fixture.users, "other").await;
        let agent = tollgate::NewAgent {
            name: tollgate::AgentName::parse("stranger").unwrap(),
            owner: other,
            project: None,
            providers: tollgate::ProviderList::default(),
            provider_key: None,
            description: tollgate::Description::default(),
            metadata: tollgate::Metadata::default(),
        };
        fixture.agents.create_agent(&Caller::operator(), agent).await.unwrap().id
    };
    let refused = fixture.agents.delegate_lease(&parent_caller, &root.id, &stranger, 10, None).await.unwrap_err();
    assert!(matches!(refused, Error::NotFound { entity: "agent" }), "{refused:?}");
    // Returning the parent closes the child first; all unspent goes back.
    let (_, returned) = fixture.agents.return_lease(&parent_caller, &root.id).await.unwrap();
    assert_eq!(returned, 240);
    let closed = fixture.agents.report_lease(&child_caller, &delegated.id, &report("c3", 1)).await.unwrap_err();
    assert!(matches!(closed, Error::LeaseClosed { state: LeaseState::Returned }), "{closed:?}");
    let account = fixture.account(&parent).await;
    assert_eq!((account.reserved, account.spent, account.available()), (0, 60, 940));
    fixture.assert_invariants().await;
}
