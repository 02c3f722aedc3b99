//! Who is calling: access tokens (short-lived JWT), rotating refresh tokens (stored hashed,
//! one family per login; reuse of a rotated token revokes the family), sign-up tickets for
//! WeChat users not yet bound to a person, and the `Ctx` every handler receives.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use chrono::{Duration, Utc};
use entity::{Role, UserStatus, app_user, refresh_token, region, role_grant};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use poem::Request;
use poem_openapi::{Object, SecurityScheme, auth::Bearer};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set,
    TransactionTrait, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    app::AppState,
    crypto::{random_token, sha256_hex},
    error::{ApiError, ApiResult},
};

/// A role held, with the region subtree it applies to (coordinators, cadres).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Grant {
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region_id: Option<Uuid>,
    /// The region's materialised path; a region is in scope when its path starts with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct AccessClaims {
    sub: Uuid,
    exp: i64,
    iat: i64,
    typ: String,
    grants: Vec<Grant>,
}

#[derive(Debug, Serialize, Deserialize)]
struct TicketClaims {
    openid: String,
    unionid: Option<String>,
    exp: i64,
    typ: String,
}

/// The caller of a request.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub user_id: Uuid,
    pub grants: Vec<Grant>,
}

/// Which regions a coordinator-level caller may see.
#[derive(Clone, Debug, PartialEq)]
pub enum Scope {
    All,
    /// Region path prefixes.
    Subtrees(Vec<String>),
}

impl Scope {
    pub fn contains(&self, path: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Subtrees(prefixes) => prefixes.iter().any(|p| path.starts_with(p.as_str())),
        }
    }
}

impl Scope {
    /// Strictly below one of the scope's roots: where a coordinator may appoint another.
    pub fn strictly_contains(&self, path: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Subtrees(prefixes) => prefixes
                .iter()
                .any(|p| path.starts_with(p.as_str()) && path != p),
        }
    }
}

impl Ctx {
    pub fn has(&self, role: Role) -> bool {
        self.grants.iter().any(|g| g.role == role)
    }

    /// Admins see everything; coordinators see their region subtrees. Everyone else is
    /// refused: this is the gate of every management endpoint.
    pub fn manager_scope(&self) -> ApiResult<Scope> {
        if self.has(Role::Admin) {
            return Ok(Scope::All);
        }
        let paths: Vec<String> = self
            .grants
            .iter()
            .filter(|g| g.role == Role::Coordinator)
            .filter_map(|g| g.path.clone())
            .collect();
        if paths.is_empty() {
            Err(ApiError::forbidden())
        } else {
            Ok(Scope::Subtrees(paths))
        }
    }

    /// The region a coordinator is responsible for (the first, if several).
    pub fn home_region(&self) -> Option<Uuid> {
        self.grants
            .iter()
            .find(|g| g.role == Role::Coordinator)
            .and_then(|g| g.region_id)
    }
}

#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_bearer")]
pub struct Auth(pub Ctx);

/// A caller who manages families: an administrator, or a coordinator (in their region
/// subtree). Anyone else is refused with 403 before their request body is even read.
#[derive(SecurityScheme)]
#[oai(
    rename = "ManagerBearer",
    ty = "bearer",
    bearer_format = "JWT",
    checker = "check_manager"
)]
pub struct Manager(pub Ctx);

async fn check_manager(req: &Request, bearer: Bearer) -> poem::Result<Ctx> {
    let ctx = check_bearer(req, bearer).await?;
    ctx.manager_scope()?;
    Ok(ctx)
}

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Ctx> {
    let state = req
        .data::<Arc<AppState>>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("state missing")))?;
    Ok(state
        .verified_tokens
        .decode(&state.secrets.jwt_key, &bearer.token)?)
}

/// Seconds an access token is still accepted after its `exp` (clock skew).
const LEEWAY_S: i64 = 5;

fn validation() -> Validation {
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = LEEWAY_S as u64;
    v.validate_aud = false;
    v
}

/// Whether a token expiring at `exp` is still accepted at `now`: the test `validation()`
/// makes.
fn unexpired(exp: i64, now: i64) -> bool {
    exp >= now - LEEWAY_S
}

#[cfg(test)]
fn decode_access(key: &[u8], token: &str) -> ApiResult<Ctx> {
    decode_access_claims(key, token).map(|(ctx, _)| ctx)
}

/// The caller and the token's expiry.
fn decode_access_claims(key: &[u8], token: &str) -> ApiResult<(Ctx, i64)> {
    let data =
        jsonwebtoken::decode::<AccessClaims>(token, &DecodingKey::from_secret(key), &validation())
            .map_err(|_| ApiError::Unauthorized)?;
    if data.claims.typ != "access" {
        return Err(ApiError::Unauthorized);
    }
    let ctx = Ctx {
        user_id: data.claims.sub,
        grants: data.claims.grants,
    };
    Ok((ctx, data.claims.exp))
}

const MAX_VERIFIED: usize = 10_000;

/// Access tokens this instance has verified, by their exact text, so that a client's every
/// request does not pay for the signature and the claims' parsing again. Nothing revokes an
/// access token before its expiry (logging out ends the refresh tokens; access tokens are
/// short-lived), so the same text is accepted exactly as long as a full check would accept
/// it: until its expiry, which is checked on every use.
#[derive(Default)]
pub struct VerifiedTokens {
    map: Mutex<HashMap<String, (Ctx, i64)>>,
}

impl VerifiedTokens {
    pub fn decode(&self, key: &[u8], token: &str) -> ApiResult<Ctx> {
        let now = Utc::now().timestamp();
        if let Some((ctx, exp)) = self.map.lock().expect("token cache lock").get(token)
            && unexpired(*exp, now)
        {
            return Ok(ctx.clone());
        }
        let (ctx, exp) = decode_access_claims(key, token)?;
        let mut map = self.map.lock().expect("token cache lock");
        if map.len() >= MAX_VERIFIED {
            map.retain(|_, (_, exp)| unexpired(*exp, now));
            if map.len() >= MAX_VERIFIED {
                map.clear();
            }
        }
        map.insert(token.to_owned(), (ctx.clone(), exp));
        Ok(ctx)
    }
}

/// A short-lived proof that the caller owns a WeChat openid not yet bound to anyone; it
/// lets them register as a volunteer or redeem an invite code.
pub fn sign_ticket(key: &[u8], openid: &str, unionid: Option<&str>) -> String {
    let claims = TicketClaims {
        openid: openid.into(),
        unionid: unionid.map(Into::into),
        exp: (Utc::now() + Duration::minutes(30)).timestamp(),
        typ: "signup".into(),
    };
    jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(key))
        .expect("HS256 signing does not fail")
}

pub struct WeChatIdentity {
    pub openid: String,
    pub unionid: Option<String>,
}

pub fn decode_ticket(key: &[u8], ticket: &str) -> ApiResult<WeChatIdentity> {
    let data =
        jsonwebtoken::decode::<TicketClaims>(ticket, &DecodingKey::from_secret(key), &validation())
            .map_err(|_| ApiError::field("ticket", "注册凭证无效或已过期，请重新进入小程序"))?;
    if data.claims.typ != "signup" {
        return Err(ApiError::field("ticket", "注册凭证无效"));
    }
    Ok(WeChatIdentity {
        openid: data.claims.openid,
        unionid: data.claims.unionid,
    })
}

#[derive(Object, Debug)]
pub struct TokenPair {
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Exchange at /api/auth/refresh; each use gives a new one and retires the old.
    pub refresh_token: String,
    pub user_id: Uuid,
    pub roles: Vec<Role>,
}

/// The grants of a user, with region paths resolved.
pub async fn load_grants(db: &impl ConnectionTrait, user_id: Uuid) -> ApiResult<Vec<Grant>> {
    let rows = role_grant::Entity::find()
        .filter(role_grant::Column::UserId.eq(user_id))
        .all(db)
        .await?;
    let mut grants = Vec::with_capacity(rows.len());
    for g in rows {
        let path = match g.region_id {
            Some(rid) => region::Entity::find_by_id(rid)
                .one(db)
                .await?
                .map(|r| r.path),
            None => None,
        };
        grants.push(Grant {
            role: g.role,
            region_id: g.region_id,
            path,
        });
    }
    Ok(grants)
}

/// Issues an access token and a refresh token; `family` continues a rotation chain.
pub async fn issue_tokens(
    state: &AppState,
    db: &impl ConnectionTrait,
    user_id: Uuid,
    family: Option<Uuid>,
) -> ApiResult<TokenPair> {
    let grants = load_grants(db, user_id).await?;
    let now = Utc::now();
    let ttl = Duration::minutes(state.config.access_token_minutes);
    let claims = AccessClaims {
        sub: user_id,
        iat: now.timestamp(),
        exp: (now + ttl).timestamp(),
        typ: "access".into(),
        grants: grants.clone(),
    };
    let access_token = jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(&state.secrets.jwt_key),
    )
    .map_err(|e| ApiError::Internal(e.into()))?;
    let refresh = random_token();
    refresh_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        family_id: Set(family.unwrap_or_else(Uuid::now_v7)),
        token_hash: Set(sha256_hex(&refresh)),
        expires_at: Set(now + Duration::days(state.config.refresh_token_days)),
        rotated_at: Set(None),
        revoked_at: Set(None),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(TokenPair {
        access_token,
        expires_in: ttl.num_seconds(),
        refresh_token: refresh,
        user_id,
        roles: grants.iter().map(|g| g.role).collect(),
    })
}

/// Exchanges a refresh token for a new pair. A token that was already rotated is being
/// replayed — by a thief or by the owner, we cannot tell — so its whole family is revoked.
pub async fn refresh(state: &AppState, presented: &str) -> ApiResult<TokenPair> {
    let db = &state.db;
    let now = Utc::now();
    let Some(row) = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(sha256_hex(presented)))
        .one(db)
        .await?
    else {
        return Err(ApiError::Unauthorized);
    };
    if row.revoked_at.is_some() || row.expires_at < now {
        return Err(ApiError::Unauthorized);
    }
    let txn = db.begin().await?;
    // Only one caller can retire a token: the conditional update is the arbiter.
    let retired = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RotatedAt, Expr::value(now))
        .filter(refresh_token::Column::Id.eq(row.id))
        .filter(refresh_token::Column::RotatedAt.is_null())
        .exec(&txn)
        .await?;
    if retired.rows_affected != 1 {
        txn.rollback().await?;
        revoke_family(db, row.family_id).await?;
        tracing::warn!(user = %row.user_id, "refresh token reused; its family is revoked");
        return Err(ApiError::Unauthorized);
    }
    let user = app_user::Entity::find_by_id(row.user_id).one(&txn).await?;
    if !matches!(user, Some(u) if u.status == UserStatus::Active) {
        txn.rollback().await?;
        return Err(ApiError::Unauthorized);
    }
    let pair = issue_tokens(state, &txn, row.user_id, Some(row.family_id)).await?;
    txn.commit().await?;
    Ok(pair)
}

pub async fn revoke_family(db: &impl ConnectionTrait, family: Uuid) -> ApiResult<()> {
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(refresh_token::Column::FamilyId.eq(family))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Logging out ends the login the token belongs to (its whole rotation family).
pub async fn logout(db: &impl ConnectionTrait, presented: &str) -> ApiResult<()> {
    if let Some(row) = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(sha256_hex(presented)))
        .one(db)
        .await?
    {
        revoke_family(db, row.family_id).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_tokens_round_trip_and_reject_tampering() {
        let key = [3u8; 32];
        let claims = AccessClaims {
            sub: Uuid::now_v7(),
            iat: Utc::now().timestamp(),
            exp: (Utc::now() + Duration::minutes(5)).timestamp(),
            typ: "access".into(),
            grants: vec![Grant {
                role: Role::Coordinator,
                region_id: None,
                path: Some("/a/".into()),
            }],
        };
        let token =
            jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(&key))
                .unwrap();
        let ctx = decode_access(&key, &token).unwrap();
        assert_eq!(ctx.user_id, claims.sub);
        assert_eq!(
            ctx.manager_scope().unwrap(),
            Scope::Subtrees(vec!["/a/".into()])
        );
        assert!(decode_access(&[4u8; 32], &token).is_err());
        // A sign-up ticket is not an access token.
        let ticket = sign_ticket(&key, "o1", None);
        assert!(decode_access(&key, &ticket).is_err());
        assert!(decode_ticket(&key, &token).is_err());
        assert_eq!(decode_ticket(&key, &ticket).unwrap().openid, "o1");
    }

    fn access_token(key: &[u8], exp: i64) -> String {
        let claims = AccessClaims {
            sub: Uuid::now_v7(),
            iat: exp - 600,
            exp,
            typ: "access".into(),
            grants: vec![],
        };
        jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(key)).unwrap()
    }

    #[test]
    fn a_verified_token_is_accepted_again_only_while_unexpired() {
        let key = [3u8; 32];
        let tokens = VerifiedTokens::default();
        let now = Utc::now().timestamp();
        let live = access_token(&key, now + 600);
        let first = tokens.decode(&key, &live).unwrap();
        assert_eq!(tokens.decode(&key, &live).unwrap().user_id, first.user_id);
        // Signed with another key, or tampered with: another text, checked in full.
        assert!(
            tokens
                .decode(&[4u8; 32], &access_token(&[4u8; 32], now + 600))
                .is_ok()
        );
        assert!(
            tokens
                .decode(&key, &access_token(&[4u8; 32], now + 600))
                .is_err()
        );
        assert!(tokens.decode(&key, &format!("{live}x")).is_err());
        // A token kept from earlier is refused once past its expiry and the leeway.
        let old = access_token(&key, now - LEEWAY_S - 1);
        tokens
            .map
            .lock()
            .unwrap()
            .insert(old.clone(), (first.clone(), now - LEEWAY_S - 1));
        assert!(tokens.decode(&key, &old).is_err());
        // Within the leeway, as the full check.
        let skewed = access_token(&key, now - 2);
        assert!(decode_access(&key, &skewed).is_ok());
        assert!(tokens.decode(&key, &skewed).is_ok());
        assert!(tokens.decode(&key, &skewed).is_ok());
    }

    #[test]
    fn scope_is_a_prefix_match() {
        let s = Scope::Subtrees(vec!["/c/x/".into()]);
        assert!(s.contains("/c/x/"));
        assert!(s.contains("/c/x/y/"));
        assert!(!s.contains("/c/"));
        assert!(!s.contains("/c/xy/"));
    }

    #[test]
    fn volunteers_and_families_have_no_manager_scope() {
        let ctx = Ctx {
            user_id: Uuid::now_v7(),
            grants: vec![Grant {
                role: Role::Volunteer,
                region_id: None,
                path: None,
            }],
        };
        assert!(ctx.manager_scope().is_err());
    }
}
