//! A token's metadata: what is asked for at creation, what is stored, and what may change later.

use serde::Serialize;

use crate::{
    AgentId, AgentStatus, Description, IpAllowList, KeyId, OwnerId, OwnerName, Permission, ProjectId, ProjectName,
    Role, Scope, Timestamp, TokenId, TokenName, ToolList,
};

/// Which of a token's constraints an admin set for its owner: a non-admin owner may only tighten
/// those (shrink the list, shorten the expiry), never loosen or remove them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Imposed(u8);

impl Imposed {
    /// The IP allow-list.
    pub const IP_ALLOW: Self = Self(1);
    /// The allowed tools.
    pub const ALLOWED_TOOLS: Self = Self(2);
    /// The scopes.
    pub const SCOPES: Self = Self(4);
    /// The expiry.
    pub const EXPIRES_AT: Self = Self(8);
    /// Nothing imposed.
    pub const NONE: Self = Self(0);
    /// Every constraint.
    pub const ALL: Self = Self(15);

    const NAMES: [(Self, &'static str); 4] = [
        (Self::IP_ALLOW, "ip_allow"),
        (Self::ALLOWED_TOOLS, "allowed_tools"),
        (Self::SCOPES, "scopes"),
        (Self::EXPIRES_AT, "expires_at"),
    ];

    /// From the stored bits; `None` when a bit is unknown.
    pub fn from_bits(bits: u8) -> Option<Self> {
        (bits & !Self::ALL.0 == 0).then_some(Self(bits))
    }

    /// The stored bits.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Whether every constraint in `other` is imposed.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    /// These and `other`.
    pub fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The names of the imposed constraints, as fields are named.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES.into_iter().filter(move |(flag, _)| self.contains(*flag)).map(|(_, name)| name)
    }
}

impl Serialize for Imposed {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.names())
    }
}

/// A validated request to create a token. Every field has already passed its own parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Human name.
    pub name: TokenName,
    /// Owner: a user or a service account, by id.
    pub owner: OwnerId,
    /// The project it is for.
    pub project: Option<ProjectId>,
    /// Permission level.
    pub permission: Permission,
    /// Scopes, sorted and without duplicates.
    pub scopes: Vec<Scope>,
    /// Tools it may call; empty means any.
    pub allowed_tools: ToolList,
    /// Networks it may be used from; empty means any.
    pub ip_allow: IpAllowList,
    /// When it stops working; `None` means never.
    pub expires_at: Option<Timestamp>,
    /// Free-form notes.
    pub description: Description,
}

impl NewToken {
    /// A standard-permission token with no restrictions, to be refined field by field.
    pub fn new(name: TokenName, owner: OwnerId) -> Self {
        Self {
            name,
            owner,
            project: None,
            permission: Permission::Standard,
            scopes: Vec::new(),
            allowed_tools: ToolList::default(),
            ip_allow: IpAllowList::default(),
            expires_at: None,
            description: Description::default(),
        }
    }
}

impl Default for Description {
    fn default() -> Self {
        Self::parse("").expect("the empty description is valid")
    }
}

/// A token as stored: metadata only, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    /// Public id, stable across rotation.
    pub id: TokenId,
    /// Human name.
    pub name: TokenName,
    /// Owner, by id: what authorization, limits and reports use.
    pub owner: OwnerId,
    /// The owner's name when the token was created, for display (names never change).
    pub owner_name: OwnerName,
    /// The owning user's role now (kept current by the store when the role changes); `None` for a
    /// service account's token. See [`TokenRecord::effective_permission`].
    pub owner_role: Option<Role>,
    /// Project, by id.
    pub project: Option<ProjectId>,
    /// The project's name when the token was created, for display.
    pub project_name: Option<ProjectName>,
    /// Permission level.
    pub permission: Permission,
    /// Scopes.
    pub scopes: Vec<Scope>,
    /// Allowed tools; empty means any.
    pub allowed_tools: ToolList,
    /// IP allow-list; empty means any.
    pub ip_allow: IpAllowList,
    /// Expiry; `None` means never.
    pub expires_at: Option<Timestamp>,
    /// Notes.
    pub description: Description,
    /// Which constraints an admin imposed (only they can loosen them).
    pub imposed: Imposed,
    /// Non-secret hint of the current secret, e.g. `tg_AbCd…wxyz`.
    pub display_hint: String,
    /// Which server key hashed the current secret.
    #[serde(skip)]
    pub key_id: KeyId,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change of metadata or secret.
    pub updated_at: Timestamp,
    /// When the token was last verified successfully (batched, so up to a few seconds late).
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// Why it was revoked.
    pub revoke_reason: Option<String>,
    /// When the secret was last rotated.
    pub rotated_at: Option<Timestamp>,
    /// Until when the secret before the last rotation is still accepted.
    pub previous_valid_until: Option<Timestamp>,
    /// For an agent credential: the agent it authenticates and that agent's status now (kept current
    /// by the store). `None` for an API token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentBinding>,
}

/// The agent an agent credential belongs to, and whether that agent may act now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AgentBinding {
    /// The agent.
    pub id: AgentId,
    /// Its status now: a credential of an agent that is not active is refused.
    pub status: AgentStatus,
}

/// Whether a token works now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    /// Usable.
    Active,
    /// Revoked by someone.
    Revoked,
    /// Past its expiry.
    Expired,
}

impl TokenStatus {
    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

impl TokenRecord {
    /// What the token may do now: the lower of its own level and its owner's current role.
    ///
    /// ```
    /// # use tollgate_types::{Permission, Role};
    /// assert_eq!(Permission::Admin.min(Role::Viewer.max_permission()), Permission::ReadOnly);
    /// ```
    pub fn effective_permission(&self) -> Permission {
        match self.owner_role {
            Some(role) => self.permission.min(role.max_permission()),
            None => self.permission,
        }
    }

    /// The status at `now`. Revocation wins over expiry.
    pub fn status(&self, now: Timestamp) -> TokenStatus {
        if self.revoked_at.is_some() {
            TokenStatus::Revoked
        } else if self.expires_at.is_some_and(|expiry| expiry <= now) {
            TokenStatus::Expired
        } else {
            TokenStatus::Active
        }
    }
}

/// A change to a token's metadata. `None` leaves a field as it is; `Some(None)` clears an optional field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenPatch {
    /// New name.
    pub name: Option<TokenName>,
    /// New description.
    pub description: Option<Description>,
    /// New allowed tools.
    pub allowed_tools: Option<ToolList>,
    /// New IP allow-list.
    pub ip_allow: Option<IpAllowList>,
    /// New expiry, or `Some(None)` for never.
    pub expires_at: Option<Option<Timestamp>>,
    /// Constraints this change imposes (an admin changing someone else's token); not a change by itself.
    pub impose: Imposed,
}

impl TokenPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        Self { impose: Imposed::NONE, ..self.clone() } == Self::default()
    }

    /// The constraints this patch changes.
    pub fn constraints(&self) -> Imposed {
        let mut changed = Imposed::NONE;
        if self.ip_allow.is_some() {
            changed = changed.with(Imposed::IP_ALLOW);
        }
        if self.allowed_tools.is_some() {
            changed = changed.with(Imposed::ALLOWED_TOOLS);
        }
        if self.expires_at.is_some() {
            changed = changed.with(Imposed::EXPIRES_AT);
        }
        changed
    }
}
