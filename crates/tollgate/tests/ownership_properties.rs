//! A property of ownership by id, over a real SQLite file and a manual clock: for random sequences of
//! token creation, demotion and promotion, suspension, activation, rotation and time passing, every
//! token ever created verifies after every step exactly as an independent model says. A token whose
//! owner was suspended after it was created is refused as revoked (activation does not bring it
//! back); any other works with `effective_permission = min(its level, its owner's current role)` (a
//! service account's token: its own level), and `principal_for_token` carries that permission.
//!
//! The cases come from a seeded generator (the same cases on every run). They share one database,
//! since opening a fresh one costs more than a case, but each has owners and tokens of its own and
//! checks only those. A failing case is shrunk by dropping steps, on fresh databases, and printed
//! with its seed.

mod identity_common;
use identity_common as common;

use std::time::Duration;

use common::Fixture;
use tollgate::{Error, OwnerId, Permission, Principal, RefusalCode, Role, TokenId, UserRecord, VerifyRequest};

const CASES: u64 = 400;
const MAX_STEPS: usize = 40;
const GRACE: Duration = Duration::from_secs(60);

/// One thing that happens. Owners and tokens are picked by index, modulo how many there are.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// The operator, or the owner itself when it is an active user, creates a token.
    Create {
        owner: usize,
        permission: Permission,
        by_owner: bool,
    },
    /// An admin changes a user's role.
    SetRole {
        owner: usize,
        role: Role,
    },
    Suspend {
        owner: usize,
    },
    Activate {
        owner: usize,
    },
    /// The operator rotates a token, keeping the old secret for `GRACE` or not at all.
    Rotate {
        token: usize,
        grace: bool,
    },
    /// The clock moves (graces and cache entries lapse).
    Advance {
        seconds: u64,
    },
}

/// splitmix64: small, fast and good enough to pick steps.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// A case: the initial roles of the users (2 or 3) and the steps. The last owner is a service account.
fn case(seed: u64) -> (Vec<Role>, Vec<Step>) {
    let mut rng = Rng(seed);
    let roles = (0..2 + rng.below(2)).map(|_| rng.pick(&Role::ALL)).collect();
    let steps = (0..1 + rng.below(MAX_STEPS))
        .map(|_| match rng.below(10) {
            0..=3 => Step::Create {
                owner: rng.below(4),
                permission: rng.pick(&Permission::ALL),
                by_owner: rng.below(2) == 0,
            },
            4 | 5 => Step::SetRole { owner: rng.below(4), role: rng.pick(&Role::ALL) },
            6 => Step::Suspend { owner: rng.below(4) },
            7 => Step::Activate { owner: rng.below(4) },
            8 => Step::Rotate { token: rng.below(64), grace: rng.below(2) == 0 },
            _ => Step::Advance { seconds: rng.pick(&[1, 30, 90]) },
        })
        .collect();
    (roles, steps)
}

/// What the test believes about an owner.
struct ModelOwner {
    id: OwnerId,
    /// The user's record (its username), or `None` for the service account.
    user: Option<UserRecord>,
    /// The user's role now.
    role: Option<Role>,
    active: bool,
}

/// What the test believes about a token.
struct ModelToken {
    id: TokenId,
    owner: usize,
    permission: Permission,
    secret: String,
    /// The secret before the last rotation and until when it works.
    previous: Option<(String, tollgate::Timestamp)>,
    /// Secrets that no longer work (replaced by rotations, or dropped from a revoked token).
    retired: Vec<String>,
    revoked: bool,
}

/// What verifying a secret must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// It works; `previous` when it is the secret before the last rotation.
    Live {
        previous: bool,
    },
    Refused(RefusalCode),
}

struct Model {
    owners: Vec<ModelOwner>,
    tokens: Vec<ModelToken>,
}

impl Model {
    fn effective(&self, token: &ModelToken) -> Permission {
        match self.owners[token.owner].role {
            Some(role) => token.permission.min(role.max_permission()),
            None => token.permission,
        }
    }
}

/// The owners of a case: users with `roles` and a service account, named after the run.
async fn setup(fx: &Fixture, run: u64, roles: &[Role]) -> Model {
    let mut owners = Vec::new();
    for (index, role) in roles.iter().enumerate() {
        let user = fx.user(&format!("run-{run}-user-{index}"), *role).await;
        owners.push(ModelOwner { id: OwnerId::User(user.id), user: Some(user), role: Some(*role), active: true });
    }
    let id = fx.service_account(&format!("run-{run}-robot")).await;
    owners.push(ModelOwner { id, user: None, role: None, active: true });
    Model { owners, tokens: Vec::new() }
}

/// Applies one step to the system and the model; `Err` when the system answered otherwise.
async fn apply(fx: &Fixture, model: &mut Model, step: Step) -> Result<(), String> {
    let admin = fx.as_admin();
    match step {
        Step::Create { owner, permission, by_owner } => {
            let index = owner % model.owners.len();
            let owner = &model.owners[index];
            let as_owner = match (&owner.user, owner.role) {
                (Some(user), Some(role)) if by_owner && owner.active => {
                    Some(Principal::User { id: user.id, username: user.username.clone(), role })
                }
                _ => None,
            };
            // The owner itself is held to its current role; the operator only to the owner being active.
            let expected = match (&as_owner, owner.role) {
                (Some(_), Some(role)) if role < Role::User || permission > role.max_permission() => "forbidden",
                (None, _) if !owner.active => "conflict",
                _ => "created",
            };
            let mut token = fx.new_token(&format!("t{}", model.tokens.len()), owner.id);
            token.permission = permission;
            let creator = as_owner.unwrap_or(Principal::Operator);
            match (fx.tokens.create(&creator, token).await, expected) {
                (Ok(created), "created") => model.tokens.push(ModelToken {
                    id: created.record.id,
                    owner: index,
                    permission,
                    secret: created.secret.expose().to_owned(),
                    previous: None,
                    retired: Vec::new(),
                    revoked: false,
                }),
                (Err(Error::Forbidden(_)), "forbidden") | (Err(Error::Conflict(_)), "conflict") => {}
                (result, _) => return Err(format!("create: expected {expected}, got {result:?}")),
            }
        }
        Step::SetRole { owner, role } => {
            let count = model.owners.len();
            let owner = &mut model.owners[owner % count];
            if let Some(user) = &owner.user {
                fx.users.set_role(&admin, &user.id, role).await.map_err(|error| format!("set_role: {error}"))?;
                owner.role = Some(role);
            }
        }
        Step::Suspend { owner } | Step::Activate { owner } => {
            let suspend = matches!(step, Step::Suspend { .. });
            let index = owner % model.owners.len();
            let (id, was_active) = (model.owners[index].id, model.owners[index].active);
            let result = match (id, suspend) {
                (OwnerId::User(id), true) => fx.users.suspend(&admin, &id, "property").await.map(drop),
                (OwnerId::User(id), false) => fx.users.activate(&admin, &id).await.map(drop),
                (OwnerId::ServiceAccount(id), true) => {
                    fx.users.suspend_service_account(&admin, &id, "property").await.map(drop)
                }
                (OwnerId::ServiceAccount(id), false) => fx.users.activate_service_account(&admin, &id).await.map(drop),
            };
            result.map_err(|error| format!("{step:?}: {error}"))?;
            if suspend && was_active {
                for token in model.tokens.iter_mut().filter(|token| token.owner == index && !token.revoked) {
                    token.revoked = true;
                    token.retired.extend(token.previous.take().map(|(secret, _)| secret));
                }
            }
            model.owners[index].active = !suspend;
        }
        Step::Rotate { token, grace } => {
            if model.tokens.is_empty() {
                return Ok(());
            }
            let count = model.tokens.len();
            let token = &mut model.tokens[token % count];
            let grace = if grace { GRACE } else { Duration::ZERO };
            match (fx.tokens.rotate(&Principal::Operator, &token.id, grace).await, token.revoked) {
                (Ok(rotated), false) => {
                    let until = fx.now().saturating_add(grace);
                    let old = std::mem::replace(&mut token.secret, rotated.secret.expose().to_owned());
                    token.retired.extend(token.previous.take().map(|(secret, _)| secret));
                    if grace.is_zero() {
                        token.retired.push(old);
                    } else {
                        token.previous = Some((old, until));
                    }
                }
                (Err(Error::Conflict(_)), true) => {}
                (result, revoked) => return Err(format!("rotate (revoked: {revoked}): got {result:?}")),
            }
        }
        Step::Advance { seconds } => fx.advance(seconds),
    }
    Ok(())
}

/// Verifies one secret of `token` and compares the answer with `expect`.
async fn check_secret(
    fx: &Fixture,
    model: &Model,
    token: &ModelToken,
    secret: &str,
    expect: Expect,
) -> Result<(), String> {
    let outcome = fx.users.authenticate_token(secret, &VerifyRequest::default()).await;
    let label = format!("token {} of owner {} at {}, expected {expect:?}", token.id, token.owner, token.permission);
    match (outcome, expect) {
        (Ok((context, principal)), Expect::Live { previous }) => {
            let permission = model.effective(token);
            let wanted = Principal::Token { id: token.id, owner: model.owners[token.owner].id, permission };
            if context.effective_permission != permission || principal != wanted {
                return Err(format!("{label}: {} and {principal:?}, not {permission}", context.effective_permission));
            }
            if fx.users.principal_for_token(&context) != wanted || context.via_previous_secret != previous {
                return Err(format!("{label}: principal_for_token or via_previous_secret disagree"));
            }
            Ok(())
        }
        (Err(Error::Refused(refusal)), Expect::Refused(code)) if refusal.code == code => Ok(()),
        (outcome, _) => Err(format!("{label}: got {:?}", outcome.map(|(_, principal)| principal))),
    }
}

/// Checks every secret of every token ever created against the model.
async fn check_all(fx: &Fixture, model: &Model) -> Result<(), String> {
    let now = fx.now();
    for token in &model.tokens {
        let current =
            if token.revoked { Expect::Refused(RefusalCode::Revoked) } else { Expect::Live { previous: false } };
        check_secret(fx, model, token, &token.secret, current).await?;
        if let Some((secret, until)) = &token.previous {
            let previous =
                if now < *until { Expect::Live { previous: true } } else { Expect::Refused(RefusalCode::NotFound) };
            check_secret(fx, model, token, secret, previous).await?;
        }
        for secret in &token.retired {
            check_secret(fx, model, token, secret, Expect::Refused(RefusalCode::NotFound)).await?;
        }
    }
    Ok(())
}

/// Runs a case as run number `run` of `fx`; `Err` names the first step the system and the model
/// disagree at.
async fn run(fx: &Fixture, run: u64, roles: &[Role], steps: &[Step]) -> Result<(), String> {
    let mut model = setup(fx, run, roles).await;
    for (index, step) in steps.iter().enumerate() {
        apply(fx, &mut model, *step).await.map_err(|error| format!("step {index} {step:?}: {error}"))?;
        check_all(fx, &model).await.map_err(|error| format!("after step {index} {step:?}: {error}"))?;
    }
    Ok(())
}

/// Runs a case alone on a fresh database.
async fn run_alone(roles: &[Role], steps: &[Step]) -> Result<(), String> {
    run(&Fixture::new().await, 0, roles, steps).await
}

/// Drops steps from a case that fails on a fresh database while it keeps failing.
async fn shrink(roles: &[Role], mut steps: Vec<Step>, mut failure: String) -> (Vec<Step>, String) {
    let mut index = steps.len();
    while index > 0 {
        index -= 1;
        let mut fewer = steps.clone();
        fewer.remove(index);
        if let Err(error) = run_alone(roles, &fewer).await {
            (steps, failure) = (fewer, error);
        }
    }
    (steps, failure)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_verifies_with_its_owners_current_role_and_suspension_revokes() {
    let shared = Fixture::new().await;
    for seed in 0..CASES {
        let (roles, steps) = case(seed);
        if let Err(failure) = run(&shared, seed, &roles, &steps).await {
            let Err(alone) = run_alone(&roles, &steps).await else {
                panic!("seed {seed} fails only after the cases before it: {failure}");
            };
            let (steps, failure) = shrink(&roles, steps, alone).await;
            panic!("seed {seed}, users {roles:?}, shrunk to {} steps {steps:#?}\n{failure}", steps.len());
        }
    }
}
