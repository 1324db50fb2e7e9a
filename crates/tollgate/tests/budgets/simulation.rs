//! Thousands of random interleavings of handshakes, reports (repeats included), refreshes, returns,
//! delegations to child agents, expiries, revocations, allocation changes and approvals across 32 agents' concurrent tasks, with
//! a clock the test moves. After every step the store's invariants hold; at the end each agent's
//! `spent` equals the sum of the reports it had accepted, exactly.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tollgate::{AgentId, Caller, Error, LeaseId, Principal, Role};

use super::{Fixture, openai, owners, report};

const AGENTS: usize = 32;
const STEPS_PER_AGENT: usize = 120;

/// A small deterministic generator (xorshift), one per task, so a failure can be replayed.
pub(crate) struct Random(pub(crate) u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

/// What the test saw accepted, to compare with the store at the end.
#[derive(Default)]
struct Accepted {
    reports: HashSet<(LeaseId, String)>,
    spent: HashMap<AgentId, i64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_interleavings_never_break_the_ledger() {
    let fixture = Arc::new(Fixture::new().await);
    let admin = owners::user(&fixture.users, "ada", Role::Admin).await;
    let approver = Caller::new(Principal::User { id: admin.id, username: admin.username.clone(), role: Role::Admin });
    let mut agents = Vec::new();
    for _ in 0..AGENTS {
        agents.push(fixture.agent(2_000).await);
    }
    let accepted = Arc::new(Mutex::new(Accepted::default()));
    let tasks: Vec<_> = agents
        .iter()
        .enumerate()
        .map(|(index, (agent, caller))| {
            let (fixture, accepted, approver) = (Arc::clone(&fixture), Arc::clone(&accepted), approver.clone());
            let (agent, caller) = (*agent, caller.clone());
            let child = agents[(index + 1) % AGENTS].clone();
            tokio::spawn(async move {
                let mut random = Random(0x9E37_79B9_7F4A_7C15 ^ ((index as u64 + 1) * 0x1000_0001));
                let mut open: Vec<LeaseId> = Vec::new();
                let mut request_ids: Vec<(LeaseId, String, i64)> = Vec::new();
                for step in 0..STEPS_PER_AGENT {
                    let step = Step { agent: &agent, caller: &caller, child: &child, approver: &approver, step };
                    simulate_step(&fixture, &step, &mut random, &mut open, &mut request_ids, &accepted).await;
                    fixture.assert_invariants().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    fixture.assert_invariants().await;
    let (spent, reports) = {
        let accepted = accepted.lock().unwrap();
        (accepted.spent.clone(), accepted.reports.len())
    };
    for (agent, _) in &agents {
        let account = fixture.account(agent).await;
        assert_eq!(account.spent, spent.get(agent).copied().unwrap_or(0), "spent of {agent}");
        assert!(account.spent + account.reserved <= account.allocated);
    }
    assert!(reports > AGENTS * 6, "the simulation made reports: {reports}");
    // Every accepted report is spending in the analytics too, exactly once (retries included).
    let (since, until) = tollgate::Period::AllTime.range(tollgate::Clock::now(fixture.clock.as_ref()));
    let all = tollgate::UsageFilter::between(since, until);
    let page = tollgate::PageRequest::first(1);
    let spending = fixture.agents.spending(&Principal::Operator, &all, None, &page).await.unwrap();
    assert_eq!(spending.totals.totals.cost.micros(), spent.values().sum::<i64>(), "analytics equal the ledger");
    assert_eq!(spending.totals.totals.events, reports as u64);
}

/// Who takes one step, and which agent is its child.
struct Step<'a> {
    agent: &'a AgentId,
    caller: &'a Caller,
    child: &'a (AgentId, Caller),
    approver: &'a Caller,
    step: usize,
}

async fn simulate_step(
    fixture: &Fixture,
    step: &Step<'_>,
    random: &mut Random,
    open: &mut Vec<LeaseId>,
    request_ids: &mut Vec<(LeaseId, String, i64)>,
    accepted: &Mutex<Accepted>,
) {
    let (agent, caller, approver) = (step.agent, step.caller, step.approver);
    let step_number = step.step;
    let agents = &fixture.agents;
    let pick =
        |random: &mut Random, leases: &Vec<LeaseId>| leases.get(random.below(leases.len() as u64) as usize).copied();
    match random.below(100) {
        0..=24 => {
            let requested = 1 + random.below(400) as i64;
            let ttl = Duration::from_secs(30 + random.below(600));
            match agents.handshake(caller, &openai(), Some(requested), Some(ttl)).await {
                Ok(handshake) => {
                    assert!(handshake.lease.granted <= requested && handshake.lease.granted >= 1);
                    open.push(handshake.lease.id);
                }
                Err(Error::BudgetExhausted { .. }) => {}
                Err(error) => panic!("handshake: {error:?}"),
            }
        }
        25..=59 => {
            let Some(lease) = pick(random, open) else { return };
            // One in five reports repeats an earlier request id of the lease (a client retry).
            let repeat = request_ids.iter().rfind(|(id, _, _)| *id == lease).cloned();
            let (request_id, cost) = match repeat {
                Some((_, request_id, cost)) if random.below(5) == 0 => (request_id, cost),
                _ => (format!("s{step_number}-{}", random.below(1_000_000)), random.below(60) as i64),
            };
            match agents.report_lease(caller, &lease, &report(&request_id, cost)).await {
                Ok(_) => {
                    let mut accepted = accepted.lock().unwrap();
                    if accepted.reports.insert((lease, request_id.clone())) {
                        *accepted.spent.entry(*agent).or_default() += cost;
                    }
                    request_ids.push((lease, request_id, cost));
                }
                Err(Error::LeaseExhausted { .. } | Error::LeaseClosed { .. }) => {}
                Err(error) => panic!("report: {error:?}"),
            }
        }
        60..=69 => {
            let Some(lease) = pick(random, open) else { return };
            match agents.refresh_lease(caller, &lease, Some(1 + random.below(300) as i64), None).await {
                Ok((new, _)) => {
                    open.retain(|id| *id != lease);
                    open.push(new.id);
                }
                Err(Error::LeaseClosed { .. } | Error::BudgetExhausted { .. }) => open.retain(|id| *id != lease),
                Err(error) => panic!("refresh: {error:?}"),
            }
        }
        70..=79 => {
            let Some(lease) = pick(random, open) else { return };
            let (closed, returned) = agents.return_lease(caller, &lease).await.expect("return");
            assert!(returned == 0 || returned == closed.granted - closed.reported - closed.delegated);
            open.retain(|id| *id != lease);
        }
        80..=81 => fixture.clock.advance(Duration::from_secs(random.below(120))),
        82..=84 => {
            // Delegate to the child agent, which reports a few times and maybe returns.
            let Some(lease) = pick(random, open) else { return };
            let (child, child_caller) = step.child;
            match agents.delegate_lease(caller, &lease, child, 1 + random.below(150) as i64, None).await {
                Ok(delegated) => {
                    for index in 0..random.below(4) {
                        let request_id = format!("d{step_number}-{index}");
                        let cost = random.below(50) as i64;
                        match agents.report_lease(child_caller, &delegated.id, &report(&request_id, cost)).await {
                            Ok(_) => {
                                let mut accepted = accepted.lock().unwrap();
                                if accepted.reports.insert((delegated.id, request_id)) {
                                    *accepted.spent.entry(*agent).or_default() += cost;
                                }
                            }
                            Err(Error::LeaseExhausted { .. } | Error::LeaseClosed { .. }) => {}
                            Err(error) => panic!("child report: {error:?}"),
                        }
                    }
                    if random.below(2) == 0 {
                        agents.return_lease(child_caller, &delegated.id).await.expect("child return");
                    }
                }
                Err(Error::LeaseExhausted { .. } | Error::LeaseClosed { .. }) => {}
                Err(error) => panic!("delegate: {error:?}"),
            }
        }
        85..=88 => {
            let Some(lease) = pick(random, open) else { return };
            agents.revoke_lease(&Caller::operator(), &lease, Some("simulated")).await.expect("revoke");
            open.retain(|id| *id != lease);
        }
        89..=94 => {
            let target = random.below(4_000) as i64;
            match agents.set_budget(&Caller::operator(), agent, target, Some("simulated")).await {
                Ok(budget) => assert_eq!(budget.account.allocated, target),
                Err(Error::Conflict(_)) => {}
                Err(error) => panic!("set budget: {error:?}"),
            }
        }
        _ => {
            let target = random.below(4_000) as i64;
            let request =
                agents.request_budget(&Caller::operator(), agent, target, "simulated").await.expect("request");
            match agents.decide_budget_request(approver, &request.id, random.below(3) > 0, None).await {
                Ok(_) | Err(Error::Conflict(_)) => {}
                Err(error) => panic!("decide: {error:?}"),
            }
        }
    }
}
