//! The limits in memory, indexed by the subjects a token answers to, and the token attributes the
//! index is searched with.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tollgate_types::{
    LimitKey, LimitRecord, LimitSpec, LimitSubject, Metric, OwnerId, ProjectId, TokenId, TokenRecord,
};

/// What a token answers to: itself, its owner and its project, by id. These never change after a
/// token is created, so they can be cached without expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subjects {
    pub(crate) token_id: TokenId,
    pub(crate) owner: Option<OwnerId>,
    pub(crate) project: Option<ProjectId>,
}

impl Subjects {
    pub(crate) fn of(record: &TokenRecord) -> Self {
        Self { token_id: record.id, owner: Some(record.owner), project: record.project }
    }

    /// A token the store does not know (usage recorded for it is still kept, under its id only).
    pub(crate) fn token_only(token_id: TokenId) -> Self {
        Self { token_id, owner: None, project: None }
    }
}

/// Every limit, by subject.
#[derive(Debug, Default, Clone)]
pub(crate) struct LimitIndex {
    by_token: HashMap<TokenId, Vec<LimitSpec>>,
    by_owner: HashMap<OwnerId, Vec<LimitSpec>>,
    by_project: HashMap<ProjectId, Vec<LimitSpec>>,
    /// Whether any limit counts tokens or cost (recording usage must then update counters).
    pub(crate) has_usage_limits: bool,
    /// Whether any enforced limit counts cost (an unpriced model must then be refused).
    pub(crate) has_cost_limits: bool,
}

impl LimitIndex {
    pub(crate) fn build(records: &[LimitRecord]) -> Self {
        let mut index = Self::default();
        for record in records {
            let spec = record.spec.clone();
            index.has_usage_limits |= spec.key().metric != Metric::Requests;
            index.has_cost_limits |= spec.key().metric == Metric::Cost && !spec.shadow();
            match &spec.key().subject {
                LimitSubject::Token(id) => index.by_token.entry(*id).or_default().push(spec),
                LimitSubject::Owner(id) => index.by_owner.entry(*id).or_default().push(spec),
                LimitSubject::Project(id) => index.by_project.entry(*id).or_default().push(spec),
            }
        }
        index
    }

    /// This index with the limit of `key` replaced by `spec` (removed when `None`): one change in
    /// memory, instead of reading every stored limit again.
    pub(crate) fn replaced(&self, key: &LimitKey, spec: Option<LimitSpec>) -> Self {
        let mut next = self.clone();
        let specs = match &key.subject {
            LimitSubject::Token(id) => next.by_token.entry(*id).or_default(),
            LimitSubject::Owner(id) => next.by_owner.entry(*id).or_default(),
            LimitSubject::Project(id) => next.by_project.entry(*id).or_default(),
        };
        specs.retain(|existing| existing.key() != key);
        specs.extend(spec);
        next.by_token.retain(|_, specs| !specs.is_empty());
        next.by_owner.retain(|_, specs| !specs.is_empty());
        next.by_project.retain(|_, specs| !specs.is_empty());
        let all = || next.by_token.values().chain(next.by_owner.values()).chain(next.by_project.values()).flatten();
        next.has_usage_limits = all().any(|spec| spec.key().metric != Metric::Requests);
        next.has_cost_limits = all().any(|spec| spec.key().metric == Metric::Cost && !spec.shadow());
        next
    }

    /// Whether there are no limits at all (the common fast path).
    pub(crate) fn is_empty(&self) -> bool {
        self.by_token.is_empty() && self.by_owner.is_empty() && self.by_project.is_empty()
    }

    /// The limit with `key`, if it is set.
    pub(crate) fn spec(&self, key: &LimitKey) -> Option<&LimitSpec> {
        let specs = match &key.subject {
            LimitSubject::Token(id) => self.by_token.get(id),
            LimitSubject::Owner(id) => self.by_owner.get(id),
            LimitSubject::Project(id) => self.by_project.get(id),
        };
        specs?.iter().find(|spec| spec.key() == key)
    }

    /// The limits that govern a token.
    pub(crate) fn applicable<'a>(&'a self, subjects: &Subjects) -> impl Iterator<Item = &'a LimitSpec> + use<'a> {
        let token = self.by_token.get(&subjects.token_id);
        let owner = subjects.owner.and_then(|id| self.by_owner.get(&id));
        let project = subjects.project.and_then(|id| self.by_project.get(&id));
        [token, owner, project].into_iter().flatten().flatten()
    }
}

/// Token attributes by id, for recording usage (which names only a token id). Bounded: when full
/// it starts over, and misses are read from the store.
#[derive(Debug)]
pub(crate) struct SubjectCache {
    entries: RwLock<HashMap<TokenId, Arc<Subjects>>>,
    capacity: usize,
}

impl SubjectCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { entries: RwLock::new(HashMap::new()), capacity: capacity.max(1) }
    }

    pub(crate) fn get(&self, id: &TokenId) -> Option<Arc<Subjects>> {
        self.entries.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(id).cloned()
    }

    pub(crate) fn insert(&self, subjects: Subjects) -> Arc<Subjects> {
        let subjects = Arc::new(subjects);
        let mut entries = self.entries.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(subjects.token_id, Arc::clone(&subjects));
        subjects
    }
}

#[cfg(test)]
mod tests {
    use tollgate_types::{LimitKey, Timestamp, Window};

    use super::*;

    fn record(subject: LimitSubject, metric: Metric, shadow: bool) -> LimitRecord {
        let key = LimitKey { subject, metric, window: Window::Day };
        LimitRecord {
            spec: LimitSpec::new(key, 10, shadow).unwrap(),
            created_at: Timestamp::from_unix_micros(0),
            updated_at: Timestamp::from_unix_micros(0),
            shadow_hits: 0,
            last_shadow_hit_at: None,
        }
    }

    #[test]
    fn one_limit_replaced_in_memory_matches_a_rebuild() {
        let token_id = TokenId::generate();
        let requests = record(LimitSubject::Token(token_id), Metric::Requests, false);
        let cost = record(LimitSubject::Token(token_id), Metric::Cost, false);
        let index = LimitIndex::build(std::slice::from_ref(&requests));
        assert!(!index.has_cost_limits);
        let added = index.replaced(cost.spec.key(), Some(cost.spec.clone()));
        assert!(added.has_cost_limits && added.has_usage_limits);
        assert!(added.spec(cost.spec.key()).is_some() && added.spec(requests.spec.key()).is_some());
        let tighter = LimitSpec::new(cost.spec.key().clone(), 3, false).unwrap();
        let changed = added.replaced(cost.spec.key(), Some(tighter));
        assert_eq!(changed.spec(cost.spec.key()).map(LimitSpec::max), Some(3), "replaced, not added twice");
        let removed = changed.replaced(cost.spec.key(), None);
        assert!(!removed.has_cost_limits, "the flags follow a removal");
        assert!(removed.spec(cost.spec.key()).is_none());
        let empty = removed.replaced(requests.spec.key(), None);
        assert!(empty.is_empty());
    }

    #[test]
    fn a_token_answers_to_itself_its_owner_and_project() {
        let token_id = TokenId::generate();
        let owner = OwnerId::User(tollgate_types::UserId::generate());
        let project = ProjectId::generate();
        let index = LimitIndex::build(&[
            record(LimitSubject::Token(token_id), Metric::Requests, false),
            record(LimitSubject::Owner(owner), Metric::Requests, false),
            record(LimitSubject::Owner(owner), Metric::Tokens, true),
            record(LimitSubject::Project(project), Metric::Requests, false),
            record(
                LimitSubject::Owner(OwnerId::ServiceAccount(tollgate_types::ServiceAccountId::generate())),
                Metric::Cost,
                false,
            ),
        ]);
        assert!(index.has_usage_limits && index.has_cost_limits && !index.is_empty());
        let subjects = Subjects { token_id, owner: Some(owner), project: Some(project) };
        assert_eq!(index.applicable(&subjects).count(), 4);
        assert_eq!(index.applicable(&Subjects::token_only(token_id)).count(), 1);
        assert_eq!(index.applicable(&Subjects::token_only(TokenId::generate())).count(), 0);
        let shadow_cost = LimitIndex::build(&[record(LimitSubject::Token(token_id), Metric::Cost, true)]);
        assert!(shadow_cost.has_usage_limits && !shadow_cost.has_cost_limits);
        assert!(LimitIndex::default().is_empty());
    }
}
