//! Conformance cases for [`BudgetStore`](crate::BudgetStore): accounts, leases and the ledger move
//! together, nothing passes the allocation, and change requests are decided once.

use tollgate_types::{
    AgentId, AgentName, Description, EventId, LeaseId, LeaseState, LedgerKind, Metadata, ModelName, NewAgent,
    OwnerRecord, ProviderList, ProviderName, RequestState, Timestamp, TokenId, UsageEvent,
};

use super::fixtures::{at, audit, insert, join_all, owner};
use crate::{
    AgentInsert, AllocationChange, BudgetDecision, BudgetRequestFilter, BudgetRequestInsert, EventToRecord, LeaseClose,
    LeaseOpen, LeaseOpened, LeaseReport, PageRequest, Reported, Store, StoreError,
};

/// An agent of `owner` with a credential and `allocated` microdollars.
pub(crate) async fn agent(store: &dyn Store, owner: &OwnerRecord, allocated: i64) -> (AgentId, TokenId) {
    let id = AgentId::generate();
    let new = NewAgent {
        name: AgentName::parse("runner").unwrap(),
        owner: owner.id,
        project: None,
        providers: ProviderList::default(),
        provider_key: None,
        description: Description::default(),
        metadata: Metadata::default(),
    };
    let insert_agent = AgentInsert { id, agent: new, owner_name: owner.name.to_owner(), created_at: at(0) };
    store.insert_agent(&insert_agent, &audit("agent.create", id, at(0))).await.unwrap();
    let credential = crate::TokenInsert { agent: Some(id), ..insert("credential", owner, None, at(0)) };
    store.insert_token(&credential, &audit("agent.credential.create", credential.id, at(0))).await.unwrap();
    allocate(store, &id, allocated, 1).await.unwrap();
    (id, credential.id)
}

async fn allocate(
    store: &dyn Store,
    agent: &AgentId,
    allocated: i64,
    seconds: i64,
) -> crate::Result<tollgate_types::BudgetAccount> {
    let change = AllocationChange {
        agent: *agent,
        allocated,
        actor: "cli".to_owned(),
        reason: None,
        request: None,
        at: at(seconds),
    };
    store.set_allocation(&change, &audit("budget.allocate", agent, at(seconds))).await
}

pub(crate) fn open(agent: &AgentId, credential: &TokenId, requested: i64, seconds: i64) -> LeaseOpen {
    LeaseOpen {
        id: LeaseId::generate(),
        agent: *agent,
        credential: *credential,
        provider: ProviderName::parse("openai").unwrap(),
        requested,
        min_grant: 1,
        refresh_of: None,
        delegate_from: None,
        at: at(seconds),
        expires_at: at(seconds + 600),
    }
}

pub(crate) async fn opened(store: &dyn Store, open: &LeaseOpen) -> tollgate_types::LeaseRecord {
    match store.open_lease(open, &[audit("budget.lease.open", open.id, open.at)]).await.unwrap() {
        LeaseOpened::Opened(lease, _) => lease,
        LeaseOpened::Exhausted(account) => panic!("exhausted: {account:?}"),
    }
}

pub(crate) fn report(
    lease: &LeaseId,
    agent: &AgentId,
    credential: &TokenId,
    request_id: &str,
    cost: i64,
    at: Timestamp,
) -> LeaseReport {
    let mut event =
        UsageEvent::new(*credential, at, ProviderName::parse("openai").unwrap(), ModelName::parse("gpt-4o").unwrap());
    event.event_id = Some(EventId::parse(&format!("{lease}/{request_id}")).unwrap());
    event.cost = Some(tollgate_types::Microdollars::from_micros(cost));
    LeaseReport {
        lease: *lease,
        agent: *agent,
        request_id: request_id.to_owned(),
        cost,
        usage: EventToRecord { event, counters: Vec::new(), agent: None },
        at,
    }
}

pub(crate) async fn reported(store: &dyn Store, report: &LeaseReport) -> Reported {
    store.report_lease(report, &audit("budget.lease.report", report.lease, report.at)).await.unwrap()
}

/// A lease reserves its grant, reports move cost from reserved to spent once, a return gives back
/// the rest once, and every movement is a ledger row the account equals the sum of.
pub async fn leases_move_the_account_and_the_ledger_together(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let (agent, credential) = agent(store, &alice, 100).await;
    let lease = opened(store, &open(&agent, &credential, 30, 2)).await;
    assert_eq!((lease.granted, lease.state), (30, LeaseState::Open));
    let account = store.budget_account(&agent).await.unwrap();
    assert_eq!((account.allocated, account.reserved, account.spent), (100, 30, 0));
    let first = report(&lease.id, &agent, &credential, "r1", 10, at(3));
    assert!(matches!(reported(store, &first).await, Reported::Recorded(lease) if lease.reported == 10));
    assert!(matches!(reported(store, &first).await, Reported::Duplicate(lease) if lease.reported == 10));
    let too_much = report(&lease.id, &agent, &credential, "r2", 21, at(4));
    assert!(matches!(reported(store, &too_much).await, Reported::Exhausted(lease) if lease.remaining() == 20));
    let account = store.budget_account(&agent).await.unwrap();
    assert_eq!((account.reserved, account.spent, account.available()), (20, 10, 70));
    let event = audit("budget.lease.return", lease.id, at(5));
    let (closed, returned) =
        store.close_lease(&lease.id, Some(&agent), LeaseClose::Return, at(5), &event).await.unwrap();
    assert_eq!((closed.state, closed.returned, returned), (LeaseState::Returned, 20, 20));
    let again = store.close_lease(&lease.id, Some(&agent), LeaseClose::Return, at(6), &event).await.unwrap();
    assert_eq!(again.1, 0, "closing is idempotent");
    let late = report(&lease.id, &agent, &credential, "r3", 1, at(7));
    assert!(matches!(reported(store, &late).await, Reported::Closed(_)));
    // Another agent's lease is not found.
    let (other, _) = self::agent(store, &alice, 10).await;
    let refused = store.close_lease(&lease.id, Some(&other), LeaseClose::Return, at(8), &event).await.unwrap_err();
    assert!(matches!(refused, StoreError::NotFound { .. }), "{refused:?}");
    let ledger = store.ledger(&agent, false, &PageRequest::first(20)).await.unwrap();
    let kinds: Vec<LedgerKind> = ledger.items.iter().rev().map(|entry| entry.kind).collect();
    assert_eq!(kinds, [LedgerKind::Allocate, LedgerKind::Open, LedgerKind::Report, LedgerKind::Release]);
    let history = store.ledger(&agent, true, &PageRequest::first(20)).await.unwrap();
    assert_eq!(history.items.len(), 1);
    assert_eq!(store.check_budgets().await.unwrap(), None);
}

/// Less available than the minimum refuses and flags the account; raising the allocation clears the
/// flag; the allocation cannot go below what is spent and reserved.
pub async fn exhaustion_flags_the_account_and_allocations_keep_their_floor(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let (agent, credential) = agent(store, &alice, 50).await;
    opened(store, &open(&agent, &credential, 45, 2)).await;
    let mut wanting = open(&agent, &credential, 20, 3);
    wanting.min_grant = 10;
    let refused = store.open_lease(&wanting, &[]).await.unwrap();
    assert!(
        matches!(refused, LeaseOpened::Exhausted(account) if account.paused_for_budget && account.available() == 5)
    );
    let error = allocate(store, &agent, 44, 4).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    let raised = allocate(store, &agent, 80, 5).await.unwrap();
    assert!(!raised.paused_for_budget);
    assert!(
        matches!(store.open_lease(&wanting, &[]).await.unwrap(), LeaseOpened::Opened(lease, _) if lease.granted == 20)
    );
    assert_eq!(store.check_budgets().await.unwrap(), None);
}

/// A refresh closes the old lease (its remainder returned) and opens the new one in one step.
pub async fn a_refresh_replaces_its_lease_in_one_step(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let (agent, credential) = agent(store, &alice, 100).await;
    let old = opened(store, &open(&agent, &credential, 90, 2)).await;
    reported(store, &report(&old.id, &agent, &credential, "a", 40, at(3))).await;
    // 10 available plus the old lease's 50 unspent: a refresh may take 60.
    let refresh = LeaseOpen { refresh_of: Some(old.id), ..open(&agent, &credential, 60, 4) };
    let new = opened(store, &refresh).await;
    assert_eq!((new.granted, new.refreshed_from), (60, Some(old.id)));
    let old = store.budget_lease(&old.id, at(4)).await.unwrap();
    assert_eq!((old.state, old.returned), (LeaseState::Refreshed, 50));
    let account = store.budget_account(&agent).await.unwrap();
    assert_eq!((account.reserved, account.spent), (60, 40));
    let again = LeaseOpen { refresh_of: Some(old.id), ..open(&agent, &credential, 1, 5) };
    assert!(matches!(store.open_lease(&again, &[]).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.check_budgets().await.unwrap(), None);
}

/// An overdue lease expires on the next access to it and by the sweep, returning its remainder.
pub async fn overdue_leases_expire_on_access_and_by_sweep(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let (agent, credential) = agent(store, &alice, 100).await;
    let first = opened(store, &open(&agent, &credential, 30, 2)).await;
    let second = opened(store, &open(&agent, &credential, 30, 2)).await;
    let overdue = at(2 + 601);
    assert_eq!(store.budget_lease(&first.id, overdue).await.unwrap().state, LeaseState::Expired);
    assert!(matches!(
        reported(store, &report(&second.id, &agent, &credential, "x", 1, overdue)).await,
        Reported::Closed(_)
    ));
    assert_eq!(store.budget_account(&agent).await.unwrap().reserved, 0);
    let third = opened(store, &open(&agent, &credential, 30, 700)).await;
    assert_eq!(store.expire_leases(at(700 + 601)).await.unwrap(), 1);
    assert_eq!(store.budget_lease(&third.id, at(700 + 601)).await.unwrap().state, LeaseState::Expired);
    assert_eq!(store.check_budgets().await.unwrap(), None);
}

/// Concurrent handshakes share exactly the allocation, never more.
pub async fn concurrent_leases_never_pass_the_allocation(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let (agent, credential) = agent(store, &alice, 100).await;
    let opens: Vec<LeaseOpen> = (0..32).map(|_| open(&agent, &credential, 7, 2)).collect();
    let outcomes = join_all(opens.iter().map(|open| store.open_lease(open, &[])).collect()).await;
    let granted: i64 = outcomes
        .into_iter()
        .map(|outcome| match outcome.unwrap() {
            LeaseOpened::Opened(lease, _) => lease.granted,
            LeaseOpened::Exhausted(_) => 0,
        })
        .sum();
    assert_eq!(granted, 100);
    assert_eq!(store.budget_account(&agent).await.unwrap().available(), 0);
    assert_eq!(store.check_budgets().await.unwrap(), None);
}

/// A request is decided once; an approval sets the allocation with a ledger row naming it.
pub async fn requests_are_decided_once(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let (agent, _) = agent(store, &alice, 100).await;
    let request = BudgetRequestInsert {
        id: tollgate_types::BudgetRequestId::generate(),
        agent,
        requester: "usr_requester".to_owned(),
        requester_owner: Some(alice.id),
        requested_allocation: 150,
        justification: "more".to_owned(),
        at: at(2),
    };
    let created =
        store.insert_budget_request(&request, &audit("budget.request.create", request.id, at(2))).await.unwrap();
    assert_eq!((created.state, created.requested_allocation), (RequestState::Pending, 150));
    let mine = BudgetRequestFilter { owner: Some(alice.id), state: None };
    assert_eq!(store.list_budget_requests(&mine, &PageRequest::first(10)).await.unwrap().items.len(), 1);
    let decision = BudgetDecision {
        id: request.id,
        state: RequestState::Approved,
        actor: "cli".to_owned(),
        reason: None,
        at: at(3),
    };
    let decided =
        store.decide_budget_request(&decision, &audit("budget.request.approve", request.id, at(3))).await.unwrap();
    assert_eq!((decided.state, decided.decided_by.as_deref()), (RequestState::Approved, Some("cli")));
    assert_eq!(store.budget_account(&agent).await.unwrap().allocated, 150);
    let history = store.ledger(&agent, true, &PageRequest::first(10)).await.unwrap();
    assert_eq!(history.items[0].request, Some(request.id));
    let twice = store.decide_budget_request(&decision, &audit("budget.request.approve", request.id, at(4))).await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))));
    assert_eq!(store.budget_account(&agent).await.unwrap().allocated, 150);
}

/// A child lease is carved out of an open lease: it spends the same account, gives what it does not
/// spend back to its parent, and closing the parent closes it first.
pub async fn delegated_leases_spend_their_parents_grant(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let (parent_agent, credential) = agent(store, &alice, 1_000).await;
    let (child_agent, child_credential) = agent(store, &alice, 0).await;
    let root = opened(store, &open(&parent_agent, &credential, 400, 2)).await;
    let delegation =
        LeaseOpen { delegate_from: Some((root.id, parent_agent)), ..open(&child_agent, &credential, 150, 3) };
    let child = opened(store, &delegation).await;
    assert_eq!((child.account, child.parent, child.granted), (parent_agent, Some(root.id), 150));
    assert!(child.expires_at <= root.expires_at);
    let root_now = store.budget_lease(&root.id, at(3)).await.unwrap();
    assert_eq!((root_now.delegated, root_now.remaining()), (150, 250));
    // Only the parent's agent delegates out of it.
    let stranger = LeaseOpen { delegate_from: Some((root.id, child_agent)), ..open(&child_agent, &credential, 10, 3) };
    assert!(matches!(store.open_lease(&stranger, &[]).await, Err(StoreError::NotFound { .. })));
    // The child reports against the parent agent's account.
    let spent = report(&child.id, &child_agent, &child_credential, "c1", 100, at(4));
    assert!(matches!(reported(store, &spent).await, Reported::Recorded(lease) if lease.remaining() == 50));
    let too_much = report(&child.id, &child_agent, &child_credential, "c2", 51, at(4));
    assert!(matches!(reported(store, &too_much).await, Reported::Exhausted(_)));
    let account = store.budget_account(&parent_agent).await.unwrap();
    assert_eq!((account.reserved, account.spent), (300, 100));
    assert_eq!(store.budget_account(&child_agent).await.unwrap().spent, 0, "the child's own account is untouched");
    // More than the parent has left is granted only what it has left.
    let greedy =
        LeaseOpen { delegate_from: Some((root.id, parent_agent)), ..open(&child_agent, &credential, 10_000, 5) };
    let second = opened(store, &greedy).await;
    assert_eq!(second.granted, 250);
    assert!(matches!(
        store.open_lease(&LeaseOpen { id: LeaseId::generate(), ..greedy.clone() }, &[]).await.unwrap(),
        LeaseOpened::Exhausted(_)
    ));
    assert_eq!(store.check_budgets().await.unwrap(), None);
    // Returning the child gives its remainder to the parent, not to the account.
    let event = audit("budget.lease.return", child.id, at(6));
    let (_, back) = store.close_lease(&child.id, Some(&child_agent), LeaseClose::Return, at(6), &event).await.unwrap();
    assert_eq!(back, 50);
    assert_eq!(store.budget_lease(&root.id, at(6)).await.unwrap().delegated, 350);
    assert_eq!(store.budget_account(&parent_agent).await.unwrap().reserved, 300);
    // Revoking the parent closes the open child first; everything unspent returns to the account.
    let event = audit("budget.lease.revoke", root.id, at(7));
    let (closed, returned) = store.close_lease(&root.id, None, LeaseClose::Revoke, at(7), &event).await.unwrap();
    assert_eq!((closed.state, returned), (LeaseState::Revoked, 300));
    assert_eq!(store.budget_lease(&second.id, at(7)).await.unwrap().state, LeaseState::Revoked);
    let account = store.budget_account(&parent_agent).await.unwrap();
    assert_eq!((account.reserved, account.spent, account.available()), (0, 100, 900));
    let late = LeaseOpen { delegate_from: Some((root.id, parent_agent)), ..open(&child_agent, &credential, 1, 8) };
    assert!(matches!(store.open_lease(&late, &[]).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.check_budgets().await.unwrap(), None);
}
