//! A token's metadata: what is asked for at creation, what is stored, and what may change later.

use serde::Serialize;

use crate::{
    Description, IpAllowList, KeyId, OwnerName, Permission, ProjectName, Scope, Timestamp, TokenId, TokenName,
    ToolList, UserId,
};

/// A validated request to create a token. Every field has already passed its own parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Human name.
    pub name: TokenName,
    /// Owner: a username or a service name.
    pub owner: OwnerName,
    /// The user account that owns the token, when the owner is a tollgate user.
    pub user_id: Option<UserId>,
    /// The project it is for.
    pub project: Option<ProjectName>,
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
    pub fn new(name: TokenName, owner: OwnerName) -> Self {
        Self {
            name,
            owner,
            user_id: None,
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
    /// Owner.
    pub owner: OwnerName,
    /// Owning user account, if any.
    pub user_id: Option<UserId>,
    /// Project.
    pub project: Option<ProjectName>,
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
}

impl TokenPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}
