//! Passwords in plaintext, held only between input and hashing: redacted `Debug`, no `Display`,
//! no `Serialize`, zeroized on drop. The policy lives here so every entry point applies the same one.

use std::fmt;

use zeroize::Zeroizing;

use crate::ValidationError;

/// A plaintext password.
///
/// bcrypt reads at most 72 bytes; longer passwords are refused (never silently truncated), so two
/// passwords that share their first 72 bytes can never both work.
///
/// ```
/// # use tollgate_types::Password;
/// let password = Password::new("correct horse battery".to_owned()).unwrap();
/// assert_eq!(format!("{password:?}"), "Password(<redacted>)");
/// assert!(Password::new("short".to_owned()).is_err());
/// assert!(Password::new("x".repeat(73)).is_err());
/// ```
pub struct Password(Zeroizing<String>);

impl Password {
    /// The shortest password a user may set, in characters.
    pub const MIN_CHARS: usize = 12;
    /// The longest password accepted anywhere, in bytes (bcrypt's limit).
    pub const MAX_BYTES: usize = 72;

    /// A new password to set: at least 12 characters, at most 72 bytes, no NUL.
    pub fn new(text: String) -> Result<Self, ValidationError> {
        let text = Zeroizing::new(text);
        if text.chars().count() < Self::MIN_CHARS {
            return Err(ValidationError::new("password", "must be at least 12 characters"));
        }
        Self::check_common(&text)?;
        Ok(Self(text))
    }

    /// A password presented at login: checked only for what bcrypt cannot take (empty, more than
    /// 72 bytes, NUL), because an account may hold a password set under an older policy.
    pub fn presented(text: String) -> Result<Self, ValidationError> {
        let text = Zeroizing::new(text);
        if text.is_empty() {
            return Err(ValidationError::new("password", "must not be empty"));
        }
        Self::check_common(&text)?;
        Ok(Self(text))
    }

    fn check_common(text: &str) -> Result<(), ValidationError> {
        if text.len() > Self::MAX_BYTES {
            return Err(ValidationError::new(
                "password",
                "must be at most 72 bytes (bcrypt's limit; longer passwords are refused, not truncated)",
            ));
        }
        if text.contains('\0') {
            return Err(ValidationError::new("password", "must not contain NUL"));
        }
        Ok(())
    }

    /// The plaintext, for hashing or verifying. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_bounds_length_in_characters_and_bytes() {
        assert!(Password::new("a".repeat(12)).is_ok());
        assert!(Password::new("a".repeat(72)).is_ok());
        assert_eq!(Password::new("a".repeat(11)).unwrap_err().reason, "must be at least 12 characters");
        let too_long = Password::new("a".repeat(73)).unwrap_err();
        assert!(too_long.reason.contains("72 bytes") && too_long.reason.contains("not truncated"));
        // 24 three-byte characters are 72 bytes; 25 are too many even though they are few characters.
        assert!(Password::new("€".repeat(24)).is_ok());
        assert!(Password::new("€".repeat(25)).is_err());
        assert!(Password::new(format!("{}\0", "a".repeat(12))).is_err());
    }

    #[test]
    fn presented_passwords_skip_the_minimum_but_not_the_maximum() {
        assert!(Password::presented("short".to_owned()).is_ok());
        assert!(Password::presented(String::new()).is_err());
        assert!(Password::presented("a".repeat(73)).is_err());
    }

    #[test]
    fn errors_and_debug_never_show_the_password() {
        let secret = "hunter2-but-longer-and-secret";
        let password = Password::new(secret.to_owned()).unwrap();
        assert!(!format!("{password:?} {:?}", Some(&password)).contains("hunter2"));
        let error = Password::new(format!("{secret}{}", "x".repeat(80))).unwrap_err();
        assert!(!error.to_string().contains("hunter2") && !format!("{error:?}").contains("hunter2"));
    }
}
