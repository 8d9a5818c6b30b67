//! The refresh-token lifecycle against the store, for one request
//! ([`Sessions`] bundles what it needs): logins open a family, sliding
//! tokens are refreshed, tokens are blacklisted, and a user is logged out
//! everywhere. Refreshing a refresh token is [`super::refresh`]'s.

use super::refresh::{RefreshPolicy, RefreshWriter};
use super::{Claims, IssueError, TokenError, TokenService, TokenType, new_jti};
use crate::clock::UnixTime;
use crate::keys::KeySet;
use crate::store::{NewToken, RecordedType, Store, StoreError};
use crate::tokens::Invalid;

/// Why a lifecycle operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The presented token is refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The token's user is inactive or gone.
    #[error("no active account for the token")]
    NoActiveAccount,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing failed.
    #[error(transparent)]
    Issue(#[from] IssueError),
}

/// An access token and, when rotating, a new refresh token.
#[derive(Debug, Clone)]
pub struct Refreshed {
    /// The new access token.
    pub access: String,
    /// The new refresh token, if rotation is on.
    pub refresh: Option<String>,
}

/// Everything a lifecycle operation needs.
pub struct Sessions<'a> {
    /// Where tokens are recorded, rotated and blacklisted.
    pub store: &'a Store,
    /// Issues and verifies tokens.
    pub tokens: &'a TokenService,
    /// The key set of this request.
    pub keys: &'a KeySet,
    /// Rotation and reuse settings.
    pub policy: RefreshPolicy,
    /// Writes refreshes in batches.
    pub writer: &'a RefreshWriter,
    /// Logins set the user's `last_login`.
    pub update_last_login: bool,
}

impl Sessions<'_> {
    /// A new login: an access and a refresh token, the refresh token
    /// recorded in a new family (with `last_login`, if configured, in the
    /// same transaction).
    pub async fn login(
        &self,
        user_id: i64,
        now: UnixTime,
    ) -> Result<(String, String), SessionError> {
        let user = user_id.to_string();
        let (refresh, claims) = self
            .tokens
            .issue(self.keys, TokenType::Refresh, &user, now)?;
        let (access, _) = self
            .tokens
            .issue(self.keys, TokenType::Access, &user, now)?;
        let family = new_jti(now);
        self.store
            .record_login(
                &outstanding(RecordedType::Refresh, user_id, &claims, Some(&family)),
                now,
                self.update_last_login,
            )
            .await?;
        super::count_issued(self.keys, now, &[TokenType::Access, TokenType::Refresh]);
        Ok((access, refresh))
    }

    /// A new sliding token, recorded until its `refresh_exp`.
    pub async fn login_sliding(&self, user_id: i64, now: UnixTime) -> Result<String, SessionError> {
        let (token, claims) =
            self.tokens
                .issue(self.keys, TokenType::Sliding, &user_id.to_string(), now)?;
        self.store
            .record_sliding(
                &outstanding(RecordedType::Sliding, user_id, &claims, None),
                now,
                self.update_last_login,
            )
            .await?;
        super::count_issued(self.keys, now, &[TokenType::Sliding]);
        Ok(token)
    }

    /// Refreshes a verified sliding token: same id and `refresh_exp`, new
    /// `exp` and `iat`.
    pub async fn refresh_sliding(
        &self,
        claims: &Claims,
        now: UnixTime,
    ) -> Result<String, SessionError> {
        let refresh_exp = claims
            .refresh_exp
            .ok_or(TokenError::Invalid(Invalid::BadClaim))?;
        if refresh_exp <= now {
            return Err(TokenError::RefreshExpired.into());
        }
        self.check_not_blacklisted(claims).await?;
        let user_id = claims
            .user_id
            .parse::<i64>()
            .map_err(|_| SessionError::NoActiveAccount)?;
        if !self
            .store
            .account_by_id(user_id)
            .await?
            .is_some_and(|account| account.is_active)
        {
            return Err(SessionError::NoActiveAccount);
        }
        let token = self.tokens.reissue_sliding(self.keys, claims, now)?;
        super::count_issued(self.keys, now, &[TokenType::Sliding]);
        Ok(token)
    }

    /// Refuses a refresh or sliding token that is blacklisted, in a revoked
    /// family, or unknown to the store. Access tokens are not recorded and
    /// always pass.
    pub async fn check_not_blacklisted(&self, claims: &Claims) -> Result<(), SessionError> {
        if claims.token_type == TokenType::Access {
            return Ok(());
        }
        match self.store.token_record(&claims.jti).await? {
            None => Err(TokenError::Invalid(Invalid::NotRecorded).into()),
            Some(record) if record.is_blacklisted() => Err(TokenError::Blacklisted.into()),
            Some(_) => Ok(()),
        }
    }

    /// Ends every session of `user_id`: blacklists each of its outstanding
    /// refresh and sliding tokens that has not expired. Returns how many.
    pub async fn logout_all(&self, user_id: i64, now: UnixTime) -> Result<u64, SessionError> {
        Ok(self.store.logout_all(user_id, now).await?)
    }

    /// Blacklists a verified refresh token.
    pub async fn blacklist(&self, claims: &Claims, now: UnixTime) -> Result<(), SessionError> {
        self.check_not_blacklisted(claims).await?;
        self.store.blacklist(&claims.jti, now).await?;
        Ok(())
    }
}

/// The outstanding-token row of freshly issued `claims`.
fn outstanding<'a>(
    kind: RecordedType,
    user_id: i64,
    claims: &'a Claims,
    family_id: Option<&'a str>,
) -> NewToken<'a> {
    NewToken {
        jti: &claims.jti,
        user_id,
        token_type: kind,
        family_id,
        expires_at: claims.refresh_exp.unwrap_or(claims.exp),
    }
}
