//! Password login without account enumeration: every refusal that depends on the account (unknown
//! user, wrong password, locked, suspended, deleted) costs one bcrypt run and one audited write and
//! answers with the same code, `invalid_credentials`.

use std::net::IpAddr;

use serde_json::json;
use tollgate_store::{LoginFailure, PasswordChange, RefreshTokenInsert, SessionStart, UserCredentials};
use tollgate_types::{
    Actor, AuditEvent, Email, Password, PasswordHash, Refusal, RefusalCode, SessionId, Timestamp, TokenSecret,
    UserStatus, Username, ValidationError,
};

use super::failures::Detail;
use super::service::{UserService, conflict_is_refusal};
use crate::sessions::SessionTokens;
use crate::{Error, Result};

/// What a login names the account by. Either way the account is found by one indexed lookup (or
/// none, for text that is no username or email), so unknown names of both kinds cost the same.
#[derive(Debug, Clone, Copy)]
enum Account<'a> {
    Username(&'a str),
    Email(&'a str),
}

fn invalid_credentials() -> Error {
    Error::Refused(Refusal::new(RefusalCode::InvalidCredentials))
}

impl UserService {
    /// Checks a username and password, counting failures per account and per client address.
    /// Returns the account when the password is right, whatever `must_change_password` says.
    async fn authenticate_password(
        &self,
        account: Account<'_>,
        password: Password,
        ip: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<UserCredentials> {
        let inner = &self.inner;
        // The slot is taken before any work, so concurrent attempts cannot pass the limit together.
        let slot = match ip {
            Some(ip) => Some(inner.throttle.take(ip, now).await.inspect_err(|error| {
                if matches!(error, Error::Refused(_)) {
                    tracing::warn!(%ip, "login refused: too many failures from this address");
                }
            })?),
            None => None,
        };
        // Before anything depends on the account, so the first unknown-user login is not slower.
        inner.passwords.warm_up().await?;
        let credentials = match account {
            Account::Username(text) => match Username::parse(text) {
                Ok(username) => inner.store.user_credentials(&username).await?,
                Err(_) => None,
            },
            Account::Email(text) => match Email::parse(text) {
                Ok(email) => inner.store.user_by_email(&email).await?,
                Err(_) => None,
            },
        };
        let matched = inner.passwords.verify(&password, credentials.as_ref().map(|found| &found.password_hash)).await?;

        let anonymous = Actor::id("anonymous");
        let failed = |target: String, reason: &str| {
            let mut event = AuditEvent::new(anonymous.clone(), "user.login_failed", target, now);
            event.reason = Some(reason.to_owned());
            event.ip = ip;
            event
        };
        // Repeats within a minute per account and address are summarized, not written one by one.
        let note = |target: &str, reason: &str| {
            let (detail, due) = inner.failures.note(target, ip, reason, now);
            (detail == Detail::Suppress, due)
        };
        let (refusal, due) = match &credentials {
            // The attempted name is not recorded: people type passwords into username fields.
            None => {
                let reason = match account {
                    Account::Username(_) => "unknown username",
                    Account::Email(_) => "unknown email",
                };
                let (suppressed, due) = note("unknown", reason);
                if !suppressed {
                    inner.store.append_audit(&failed("unknown".to_owned(), reason)).await?;
                }
                (reason, due)
            }
            Some(found) if found.record.status != UserStatus::Active => {
                let reason = format!("user {}", found.record.status);
                let target = found.record.id.to_string();
                let (suppressed, due) = note(&target, &reason);
                if !suppressed {
                    inner.store.append_audit(&failed(target, &reason)).await?;
                }
                ("inactive user", due)
            }
            Some(found) if !matched || found.record.is_locked(now) => {
                let reason = if found.record.is_locked(now) { "account locked" } else { "wrong password" };
                let (suppressed, due) = note(&found.record.id.to_string(), reason);
                let failure = LoginFailure {
                    id: found.record.id,
                    at: now,
                    max_failures: inner.lockout.max_failures,
                    lock_for: inner.lockout.lock_for,
                    suppressed,
                };
                let record =
                    inner.store.record_login_failure(&failure, &failed(found.record.id.to_string(), reason)).await?;
                if record.locked_until != found.record.locked_until {
                    tracing::warn!(user_id = %record.id, "account locked after repeated login failures");
                }
                (reason, due)
            }
            Some(found) => {
                if let Some(slot) = slot {
                    inner.throttle.give_back(slot).await;
                }
                let rehashed = match inner.passwords.needs_rehash(&found.password_hash) {
                    true => self.rehash(found, &password, ip, now).await,
                    false => None,
                };
                let mut credentials = credentials.ok_or_else(invalid_credentials)?;
                // The session is started against the hash now stored.
                if let Some(rehashed) = rehashed {
                    credentials.password_hash = rehashed;
                }
                return Ok(credentials);
            }
        };
        for summary in due {
            inner.store.append_audit(&summary).await?;
        }
        tracing::info!(reason = refusal, "login refused");
        Err(invalid_credentials())
    }

    /// Writes the summaries of repeated failed logins whose minute has ended (every one with
    /// `everything`, at shutdown). Call on an interval; login failures also write them as they go.
    pub async fn flush_login_failures(&self, everything: bool) -> Result<()> {
        for summary in self.inner.failures.take(self.inner.clock.now(), everything) {
            self.inner.store.append_audit(&summary).await?;
        }
        Ok(())
    }

    /// Stores the password just verified hashed at the configured cost (the stored hash was made at
    /// another): later logins cost what the configured cost says. Returns the hash stored now, if it
    /// was replaced; a failure only leaves the old hash.
    async fn rehash(
        &self,
        found: &UserCredentials,
        password: &Password,
        ip: Option<IpAddr>,
        now: Timestamp,
    ) -> Option<PasswordHash> {
        let inner = &self.inner;
        let rehashed = match inner.passwords.hash(password).await {
            Ok(rehashed) => rehashed,
            Err(error) => {
                tracing::warn!(error = %error, "re-hashing a password failed");
                return None;
            }
        };
        let mut event =
            AuditEvent::new(Actor::id(found.record.id.to_string()), "user.password_rehashed", found.record.id, now);
        event.ip = ip;
        event.before = Some(json!({ "cost": found.password_hash.cost() }));
        event.after = Some(json!({ "cost": rehashed.cost() }));
        match inner.store.rehash_password(&found.record.id, &found.password_hash, &rehashed, &event).await {
            Ok(true) => {
                tracing::info!(user_id = %found.record.id, cost = rehashed.cost(), "password re-hashed at the configured cost");
                Some(rehashed)
            }
            Ok(false) => None,
            Err(error) => {
                tracing::warn!(error = %error, "storing a re-hashed password failed");
                None
            }
        }
    }

    /// Logs in with a username and password and starts a session: a short-lived access JWT and a
    /// refresh token.
    ///
    /// Refusals: `invalid_credentials` for an unknown user, a wrong password, a locked, suspended or
    /// deleted account (one code, one cost); `password_change_required` when the password is right but
    /// must be changed first (see [`change_password`](Self::change_password)); `rate_limited` with a
    /// retry-after when too many logins failed from this client address.
    #[tracing::instrument(skip_all)]
    pub async fn login(&self, username: &str, password: Password, ip: Option<IpAddr>) -> Result<SessionTokens> {
        self.login_as(Account::Username(username), password, ip).await
    }

    /// Logs in with an email address (any case) instead of a username; otherwise exactly
    /// [`login`](Self::login): the same refusals, and an unknown address costs what an unknown
    /// username does (one indexed lookup, one bcrypt run against the dummy hash, one audited write).
    #[tracing::instrument(skip_all)]
    pub async fn login_by_email(&self, email: &str, password: Password, ip: Option<IpAddr>) -> Result<SessionTokens> {
        self.login_as(Account::Email(email), password, ip).await
    }

    async fn login_as(&self, account: Account<'_>, password: Password, ip: Option<IpAddr>) -> Result<SessionTokens> {
        let now = self.inner.clock.now();
        let credentials = self.authenticate_password(account, password, ip, now).await?;
        if credentials.record.must_change_password {
            return Err(Error::Refused(Refusal::new(RefusalCode::PasswordChangeRequired)));
        }
        let user = credentials.record;
        let refresh = TokenSecret::generate(&self.inner.refresh_prefix)
            .map_err(|_| Error::Config("the system random generator failed".to_owned()))?;
        let start = SessionStart {
            id: SessionId::generate(),
            user_id: user.id,
            checked_password_hash: credentials.password_hash,
            refresh: RefreshTokenInsert {
                hash: self.inner.refresh_hasher.hash(&refresh),
                key_id: self.inner.refresh_hasher.current_key_id(),
                expires_at: now.saturating_add(self.inner.refresh_ttl),
            },
            created_at: now,
            ip,
        };
        let mut event = AuditEvent::new(Actor::id(user.id), "session.create", user.id, now);
        event.after = Some(json!({ "session_id": start.id, "expires_at": start.refresh.expires_at }));
        event.ip = ip;
        // A conflict here means the account changed (suspended, locked, new password) during the check.
        let session = self
            .inner
            .store
            .start_session(&start, &event)
            .await
            .map_err(|error| conflict_is_refusal(error, RefusalCode::InvalidCredentials))?;
        tracing::info!(user_id = %user.id, session_id = %session.id, "login");
        self.session_tokens(session, user, refresh, now)
    }

    /// Changes one's own password, proving the current one (the way out of `password_change_required`).
    /// Same refusals and failure counting as [`login`](Self::login). Every session of the user ends.
    #[tracing::instrument(skip_all)]
    pub async fn change_password(
        &self,
        username: &str,
        current: Password,
        new: Password,
        ip: Option<IpAddr>,
    ) -> Result<()> {
        if current.expose() == new.expose() {
            return Err(ValidationError::new("new_password", "must differ from the current password").into());
        }
        let now = self.inner.clock.now();
        let credentials = self.authenticate_password(Account::Username(username), current, ip, now).await?;
        let user = credentials.record;
        let password_hash = self.inner.passwords.hash(&new).await?;
        let mut event = AuditEvent::new(Actor::id(user.id), "user.change_password", user.id, now);
        event.ip = ip;
        let change = PasswordChange { id: user.id, password_hash, must_change_password: false, at: now };
        self.inner.store.set_password(&change, &event).await?;
        tracing::info!(user_id = %user.id, "password changed");
        Ok(())
    }
}
