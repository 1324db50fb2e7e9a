//! Sessions after login: refresh with rotation and reuse detection, logout, and turning presented
//! credentials (an access JWT, an API token) into a [`Principal`] with the rights its user has *now*.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::json;
use tollgate_store::{
    Page, PageRequest, RefreshLookup, RefreshOutcome, RefreshRotation, RefreshTokenInsert, StoreError,
};
use tollgate_types::{
    Actor, AuditEvent, Principal, Refusal, RefusalCode, SessionId, SessionRecord, Timestamp, TokenHash, TokenSecret,
    UserId, UserRecord, UserStatus, VerifyRequest,
};

use super::jwt::{AccessClaims, AccessToken};
use crate::authz::{Operation, authorize};
use crate::users::UserService;
use crate::{Caller, Error, Result, TokenContext};

/// What a login or a refresh hands out. The two secrets are redacted in `Debug`; show them once.
#[derive(Debug)]
pub struct SessionTokens {
    /// The access JWT (send as `Authorization: Bearer …`).
    pub access_token: AccessToken,
    /// When the access token expires.
    pub access_expires_at: Timestamp,
    /// Seconds until the access token expires (the OAuth `expires_in`).
    pub expires_in: u64,
    /// The refresh token: exchange it once for new tokens before `refresh_expires_at`.
    pub refresh_token: TokenSecret,
    /// When the refresh token expires.
    pub refresh_expires_at: Timestamp,
    /// The session.
    pub session: SessionRecord,
    /// The user now.
    pub user: UserRecord,
}

/// A verified access token: who is calling, in which session, with their role read from the store now.
#[derive(Debug, Clone, Serialize)]
pub struct AccessContext {
    /// The principal to authorize with (`Principal::User`, current role).
    #[serde(skip)]
    pub principal: Principal,
    /// The token's claims.
    pub claims: AccessClaims,
    /// The session, live.
    pub session: SessionRecord,
    /// The user, active.
    pub user: UserRecord,
}

fn refused(code: RefusalCode) -> Error {
    Error::Refused(Refusal::new(code))
}

impl UserService {
    pub(crate) fn session_tokens(
        &self,
        session: SessionRecord,
        user: UserRecord,
        refresh_token: TokenSecret,
        now: Timestamp,
    ) -> Result<SessionTokens> {
        let (access_token, access_expires_at) = self.inner.jwt.issue(user.id, session.id, now)?;
        Ok(SessionTokens {
            access_token,
            access_expires_at,
            expires_in: self.inner.jwt.ttl().as_secs(),
            refresh_token,
            refresh_expires_at: session.expires_at,
            session,
            user,
        })
    }

    /// Finds a presented refresh token under the current key, then under older keys.
    async fn find_refresh(&self, presented: &str) -> Result<(TokenHash, RefreshLookup)> {
        let secret =
            TokenSecret::parse(&self.inner.refresh_prefix, presented).map_err(|_| refused(RefusalCode::Malformed))?;
        let hasher = &self.inner.refresh_hasher;
        let current = hasher.hash(&secret);
        if let Some(found) = self.inner.store.refresh_token(&current).await? {
            return Ok((current, found));
        }
        for (_, older) in hasher.previous_hashes(&secret) {
            if let Some(found) = self.inner.store.refresh_token(&older).await? {
                return Ok((older, found));
            }
        }
        Err(refused(RefusalCode::NotFound))
    }

    /// Exchanges a refresh token for a new access token and a new refresh token. The presented one is
    /// used up; presenting it again revokes the whole session (only a stolen copy is presented twice).
    ///
    /// Refusals: `malformed`, `not_found`, `revoked` (logged out, reuse, user suspended or deleted),
    /// `expired`.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, refresh_token: &str, ip: Option<IpAddr>) -> Result<SessionTokens> {
        let (hash, found) = self.find_refresh(refresh_token).await?;
        let now = self.inner.clock.now();
        let session = &found.session;
        if session.revoked_at.is_some() {
            return Err(refused(RefusalCode::Revoked));
        }
        let next = TokenSecret::generate(&self.inner.refresh_prefix)
            .map_err(|_| Error::Config("the system random generator failed".to_owned()))?;
        let rotation = RefreshRotation {
            presented: hash,
            next: RefreshTokenInsert {
                hash: self.inner.refresh_hasher.hash(&next),
                key_id: self.inner.refresh_hasher.current_key_id(),
                expires_at: now.saturating_add(self.inner.refresh_ttl),
            },
            at: now,
        };
        let mut rotated = AuditEvent::new(Actor::id(session.user_id), "session.refresh", session.user_id, now);
        rotated.after = Some(json!({ "session_id": session.id, "generation": session.generation + 1 }));
        rotated.ip = ip;
        let mut reused = AuditEvent::new(Actor::system(), "session.reuse_detected", session.user_id, now);
        reused.after = Some(json!({ "session_id": session.id, "presented_generation": found.generation }));
        reused.reason = Some("a used refresh token was presented again; the session is revoked".to_owned());
        reused.ip = ip;
        let outcome =
            self.inner.store.rotate_refresh(&rotation, &rotated, &reused).await.map_err(|error| match error {
                StoreError::NotFound { .. } => refused(RefusalCode::NotFound),
                other => other.into(),
            })?;
        match outcome {
            RefreshOutcome::Rotated { session, user } => {
                tracing::info!(session_id = %session.id, generation = session.generation, "session refreshed");
                self.session_tokens(session, user, next, now)
            }
            RefreshOutcome::Reused { session } => {
                tracing::warn!(session_id = %session.id, user_id = %session.user_id, "refresh token reused; session revoked");
                Err(refused(RefusalCode::Revoked))
            }
            RefreshOutcome::Ended { session } => {
                let expired = session.revoked_at.is_none() && (found.expires_at <= now || session.expires_at <= now);
                Err(refused(if expired { RefusalCode::Expired } else { RefusalCode::Revoked }))
            }
        }
    }

    /// Logs out with a refresh token: the session (every token of its family, and its access tokens
    /// from the next request on) ends at once. Idempotent for a session already ended.
    #[tracing::instrument(skip_all)]
    pub async fn logout(&self, refresh_token: &str, ip: Option<IpAddr>) -> Result<SessionRecord> {
        let (_, found) = self.find_refresh(refresh_token).await?;
        let user_id = found.session.user_id;
        let mut event = self.session_event(ip, Actor::id(user_id), user_id, &found.session.id);
        event.reason = Some("logout".to_owned());
        Ok(self.inner.store.revoke_session(&found.session.id, "logout", &event).await?)
    }

    fn session_event(&self, ip: Option<IpAddr>, actor: Actor, user: UserId, session: &SessionId) -> AuditEvent {
        let mut event = AuditEvent::new(actor, "session.revoke", user, self.inner.clock.now());
        event.after = Some(json!({ "session_id": session }));
        event.ip = ip;
        event
    }

    /// Revokes one session (logging out with an access token: pass its own session id). Admins may
    /// revoke anyone's; others only their own — anything else is `NotFound`.
    #[tracing::instrument(skip_all, fields(session_id = %id))]
    pub async fn revoke_session(&self, caller: &Caller, id: &SessionId, reason: Option<&str>) -> Result<SessionRecord> {
        let session = self.inner.store.session(id).await?;
        authorize(&caller.principal, Operation::ManageSessions { user: session.user_id })
            .map_err(|_| Error::NotFound { entity: "session" })?;
        let reason = reason.unwrap_or("logout");
        crate::users::check_reason(reason)?;
        let mut event = self.session_event(caller.ip, caller.principal.actor(), session.user_id, id);
        event.reason = Some(reason.to_owned());
        Ok(self.inner.store.revoke_session(id, reason, &event).await?)
    }

    /// A user's sessions, newest first (their own, or anyone's for admins).
    pub async fn list_sessions(
        &self,
        principal: &Principal,
        user: &UserId,
        page: &PageRequest,
    ) -> Result<Page<SessionRecord>> {
        authorize(principal, Operation::ManageSessions { user: *user })?;
        Ok(self.inner.store.list_sessions(user, page).await?)
    }

    /// Verifies an access JWT and resolves its caller: the signature and claims first (no I/O), then
    /// the session must be live and the user active, and the role is the one stored now — so a
    /// logout, suspension, deletion or demotion takes effect on the very next request.
    ///
    /// Refusals: `malformed` (any signature, algorithm, key id, issuer, audience or type problem),
    /// `expired`, `revoked` (session ended or user no longer active).
    pub async fn authenticate_access(&self, access_token: &str) -> Result<AccessContext> {
        let now = self.inner.clock.now();
        let claims = self.inner.jwt.validate(access_token, now)?;
        let found =
            self.inner.store.session_with_user(&claims.session_id).await?.ok_or(refused(RefusalCode::Revoked))?;
        if found.session.user_id != claims.user_id {
            return Err(refused(RefusalCode::Malformed));
        }
        if found.session.revoked_at.is_some() || found.user.status != UserStatus::Active {
            return Err(refused(RefusalCode::Revoked));
        }
        if !found.session.is_live(now) {
            return Err(refused(RefusalCode::Expired));
        }
        Ok(AccessContext { principal: found.user.principal(), claims, session: found.session, user: found.user })
    }

    /// The `Principal::User` an access JWT acts as (see [`authenticate_access`](Self::authenticate_access)).
    pub async fn principal_for_access(&self, access_token: &str) -> Result<Principal> {
        Ok(self.authenticate_access(access_token).await?.principal)
    }

    /// The principal a verified API token acts as: its owner, with the token's effective permission
    /// (the lower of its own level and its owner's current role, which the store keeps on the token's
    /// row). A token whose owner was suspended or deleted was revoked with it and never gets here.
    pub fn principal_for_token(&self, context: &TokenContext) -> Principal {
        Principal::Token {
            id: context.record.id,
            owner: context.record.owner,
            permission: context.effective_permission,
        }
    }

    /// Verifies an API token (the full verify path of the token manager) and resolves its principal.
    pub async fn authenticate_token(
        &self,
        presented: &str,
        request: &VerifyRequest,
    ) -> Result<(TokenContext, Principal)> {
        let context = self.inner.tokens.verify(presented, request).await?;
        let principal = self.principal_for_token(&context);
        Ok((context, principal))
    }

    /// Deletes sessions that ended (signed out, revoked or expired) more than `older_than` ago, with
    /// their refresh tokens; audited as `session.cleanup` with the count when any went.
    pub async fn cleanup_sessions(&self, caller: &Caller, older_than: std::time::Duration) -> Result<u64> {
        authorize(&caller.principal, Operation::CleanupTokens)?;
        self.delete_ended_sessions(caller.principal.actor(), caller.ip, older_than).await
    }

    /// [`cleanup_sessions`](Self::cleanup_sessions) as tollgate's own housekeeping, audited as
    /// `system`: `tollgate serve` runs it every ten minutes with its session retention, so the
    /// session table does not grow with every sign-in ever made.
    pub async fn purge_ended_sessions(&self, older_than: std::time::Duration) -> Result<u64> {
        self.delete_ended_sessions(Actor::system(), None, older_than).await
    }

    async fn delete_ended_sessions(
        &self,
        actor: Actor,
        ip: Option<IpAddr>,
        older_than: std::time::Duration,
    ) -> Result<u64> {
        let now = self.inner.clock.now();
        let mut event = AuditEvent::new(actor, "session.cleanup", "sessions", now);
        event.ip = ip;
        Ok(self.inner.store.delete_ended_sessions(now.saturating_sub(older_than), &event).await?)
    }
}
