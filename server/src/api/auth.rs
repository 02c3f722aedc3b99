//! Logging in the way a mini-program does, binding a WeChat account to a person, token
//! refresh and logout, and "who am I".

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use entity::{
    Role, UserStatus, VolunteerStatus, app_user, family_member, invite_code, role_grant, volunteer,
};
use poem::Request;
use poem_openapi::{Object, OpenApi, payload::Json};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait, sea_query::Expr,
};
use serde::Deserialize;
use uuid::Uuid;

use super::Tag;
use crate::{
    app::AppState,
    auth::{self, Auth, TokenPair, decode_ticket, issue_tokens, sign_ticket},
    crypto::{mask_phone, normalise_code, sha256_hex},
    error::{ApiError, ApiResult},
    input::{Input, Validate, text},
    wechat::WeChatError,
};

pub struct Api(pub Arc<AppState>);

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeChatLogin {
    /// The code from `wx.login()`; single use, valid five minutes.
    pub code: String,
}

impl Validate for WeChatLogin {
    fn validate(&self) -> ApiResult<()> {
        text("code", &self.code, 1, 128)
    }
}

#[derive(Object)]
pub struct LoginResult {
    /// True when this WeChat account belongs to a known person; tokens are then set.
    pub bound: bool,
    pub tokens: Option<TokenPair>,
    /// For an unknown WeChat account: present it to register as a volunteer or to
    /// redeem an invite code. Valid 30 minutes.
    pub ticket: Option<String>,
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindRequest {
    pub ticket: String,
    /// The one-time invite code a coordinator gave (8 characters).
    pub code: String,
}

impl Validate for BindRequest {
    fn validate(&self) -> ApiResult<()> {
        text("ticket", &self.ticket, 1, 2048)?;
        text("code", &self.code, 1, 32)
    }
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

impl Validate for RefreshRequest {
    fn validate(&self) -> ApiResult<()> {
        text("refresh_token", &self.refresh_token, 1, 256)
    }
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevLogin {
    /// The phone number of a demo user.
    pub phone: String,
}

impl Validate for DevLogin {
    fn validate(&self) -> ApiResult<()> {
        text("phone", &self.phone, 1, 32)
    }
}

/// What the development login offers; both false in production.
#[derive(Object)]
pub struct DevOptions {
    /// `POST /api/auth/dev` logs in as a demo user by phone number.
    pub dev_login: bool,
    /// `POST /api/auth/dev/wx-code` gives a login code from the fake WeChat server.
    pub wx_code: bool,
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevCodeRequest {
    /// The WeChat account (openid) of the simulated phone.
    pub openid: String,
}

impl Validate for DevCodeRequest {
    fn validate(&self) -> ApiResult<()> {
        text("openid", &self.openid, 1, 64)
    }
}

#[derive(Object)]
pub struct DevCode {
    /// Log in with it at `POST /api/auth/wechat`, as with a `wx.login()` code.
    pub code: String,
}

#[derive(Object)]
pub struct Me {
    pub user_id: Uuid,
    pub name: String,
    pub phone: Option<String>,
    pub roles: Vec<Role>,
    /// Set when the person registered as a volunteer.
    pub volunteer_status: Option<VolunteerStatus>,
    /// Set when the person is bound to a family.
    pub family_id: Option<Uuid>,
}

impl Api {
    async fn throttle(&self, req: &Request, what: &str) -> ApiResult<()> {
        let ip = client_ip(req, self.0.config.behind_proxy);
        let n = self
            .0
            .cache
            .hit(&format!("{what}:{ip}"), Duration::from_secs(60))
            .await;
        if n > self.0.config.login_per_minute {
            return Err(ApiError::TooManyRequests("登录过于频繁，请稍后再试".into()));
        }
        Ok(())
    }
}

#[OpenApi(prefix_path = "/auth", tag = "Tag::Auth")]
impl Api {
    /// Log in with the code from `wx.login()`.
    #[oai(path = "/wechat", method = "post")]
    async fn wechat(
        &self,
        req: &Request,
        body: Input<WeChatLogin>,
    ) -> ApiResult<Json<LoginResult>> {
        self.throttle(req, "login").await?;
        let state = &self.0;
        let session = state
            .wechat
            .code2session(body.0.code.trim())
            .await
            .map_err(login_error)?;
        let user = app_user::Entity::find()
            .filter(app_user::Column::Openid.eq(&session.openid))
            .one(&state.db)
            .await?;
        match user {
            Some(u) if u.status == UserStatus::Disabled => {
                Err(ApiError::Forbidden("账号已停用".into()))
            }
            Some(u) => Ok(Json(LoginResult {
                bound: true,
                tokens: Some(issue_tokens(state, &state.db, u.id, None).await?),
                ticket: None,
            })),
            None => Ok(Json(LoginResult {
                bound: false,
                tokens: None,
                ticket: Some(sign_ticket(
                    &state.secrets.jwt_key,
                    &session.openid,
                    session.unionid.as_deref(),
                )),
            })),
        }
    }

    /// Bind a new WeChat account with a one-time invite code: a family member to their
    /// family, or a coordinator or cadre to the account made for them.
    #[oai(path = "/bind", method = "post")]
    async fn bind(&self, req: &Request, body: Input<BindRequest>) -> ApiResult<Json<TokenPair>> {
        self.throttle(req, "bind").await?;
        let state = &self.0;
        let who = decode_ticket(&state.secrets.jwt_key, &body.0.ticket)?;
        let now = Utc::now();
        let txn = state.db.begin().await?;
        let invite = invite_code::Entity::find()
            .filter(invite_code::Column::CodeHash.eq(sha256_hex(&normalise_code(&body.0.code))))
            .one(&txn)
            .await?
            .filter(|i| i.used_at.is_none() && i.expires_at > now)
            .ok_or_else(|| ApiError::field("code", "邀请码无效或已过期，请联系工作人员"))?;
        // The conditional update makes a code good for exactly one binding.
        let taken = invite_code::Entity::update_many()
            .col_expr(invite_code::Column::UsedAt, Expr::value(now))
            .filter(invite_code::Column::Id.eq(invite.id))
            .filter(invite_code::Column::UsedAt.is_null())
            .exec(&txn)
            .await?;
        if taken.rows_affected != 1 {
            return Err(ApiError::field("code", "邀请码已被使用"));
        }
        if app_user::Entity::find()
            .filter(app_user::Column::Openid.eq(&who.openid))
            .one(&txn)
            .await?
            .is_some()
        {
            return Err(ApiError::conflict("already_bound", "该微信已绑定账号"));
        }
        let user_id = match (invite.purpose.as_str(), invite.member_id, invite.user_id) {
            ("family_member", Some(member_id), _) => {
                let member = family_member::Entity::find_by_id(member_id)
                    .one(&txn)
                    .await?
                    .ok_or(ApiError::NotFound("家庭成员"))?;
                if member.user_id.is_some() {
                    return Err(ApiError::conflict("already_bound", "该家庭成员已绑定微信"));
                }
                let family = entity::family::Entity::find_by_id(member.family_id)
                    .one(&txn)
                    .await?
                    .ok_or(ApiError::NotFound("家庭"))?;
                let user_id = Uuid::now_v7();
                app_user::ActiveModel {
                    id: Set(user_id),
                    name: Set(member.name.clone()),
                    phone: Set(member.phone.clone()),
                    openid: Set(Some(who.openid)),
                    unionid: Set(who.unionid),
                    status: Set(UserStatus::Active),
                    created_at: Set(now),
                    updated_at: Set(now),
                }
                .insert(&txn)
                .await?;
                grant(
                    &txn,
                    user_id,
                    Role::Family,
                    Some(family.region_id),
                    invite.created_by,
                )
                .await?;
                let mut member: family_member::ActiveModel = member.into();
                member.user_id = Set(Some(user_id));
                member.update(&txn).await?;
                user_id
            }
            ("staff", _, Some(user_id)) => {
                let user = app_user::Entity::find_by_id(user_id)
                    .one(&txn)
                    .await?
                    .ok_or(ApiError::NotFound("账号"))?;
                if user.openid.is_some() {
                    return Err(ApiError::conflict("already_bound", "该账号已绑定微信"));
                }
                let mut user: app_user::ActiveModel = user.into();
                user.openid = Set(Some(who.openid));
                user.unionid = Set(who.unionid);
                user.status = Set(UserStatus::Active);
                user.updated_at = Set(now);
                user.update(&txn).await?;
                user_id
            }
            _ => return Err(ApiError::field("code", "邀请码无效")),
        };
        crate::audit::record(
            &txn,
            Some(user_id),
            "bind_wechat",
            "invite_code",
            Some(invite.id),
            serde_json::json!({"purpose": invite.purpose}),
        )
        .await?;
        let tokens = issue_tokens(state, &txn, user_id, None).await?;
        txn.commit().await?;
        Ok(Json(tokens))
    }

    /// Exchange a refresh token for new tokens. Each refresh token works once.
    #[oai(path = "/refresh", method = "post")]
    async fn refresh(&self, body: Input<RefreshRequest>) -> ApiResult<Json<TokenPair>> {
        Ok(Json(auth::refresh(&self.0, &body.0.refresh_token).await?))
    }

    /// End this login on this device.
    #[oai(path = "/logout", method = "post")]
    async fn logout(&self, body: Input<RefreshRequest>) -> ApiResult<Json<Done>> {
        auth::logout(&self.0.db, &body.0.refresh_token).await?;
        Ok(Json(Done { ok: true }))
    }

    /// Development only (`dev_login = true`): log in as a demo user by phone number.
    #[oai(path = "/dev", method = "post")]
    async fn dev(&self, body: Input<DevLogin>) -> ApiResult<Json<TokenPair>> {
        let state = &self.0;
        if !state.config.dev_login {
            return Err(ApiError::NotFound("开发登录"));
        }
        let user = app_user::Entity::find()
            .filter(app_user::Column::Phone.eq(body.0.phone.trim()))
            .filter(app_user::Column::Status.eq(UserStatus::Active))
            .one(&state.db)
            .await?
            .ok_or(ApiError::NotFound("用户"))?;
        tracing::warn!(user = %user.id, "development login");
        Ok(Json(issue_tokens(state, &state.db, user.id, None).await?))
    }

    /// What the development login offers (the H5 login page asks).
    #[oai(path = "/dev", method = "get")]
    async fn dev_options(&self) -> Json<DevOptions> {
        let state = &self.0;
        Json(DevOptions {
            dev_login: state.config.dev_login,
            wx_code: state.config.dev_login && state.wechat.is_fake(),
        })
    }

    /// Development only (`dev_login = true` and `wechat.api_base` the fake WeChat server):
    /// a login code for a WeChat account, standing in for `wx.login()` in a browser, so
    /// the H5 pages log in by the mini-program's own path.
    #[oai(path = "/dev/wx-code", method = "post")]
    async fn dev_wx_code(&self, body: Input<DevCodeRequest>) -> ApiResult<Json<DevCode>> {
        let state = &self.0;
        if !state.config.dev_login || !state.wechat.is_fake() {
            return Err(ApiError::NotFound("开发登录"));
        }
        let code = state
            .wechat
            .fake_login_code(body.0.openid.trim())
            .await
            .map_err(|e| {
                tracing::warn!(err = %e, "the fake WeChat server gave no login code");
                ApiError::Upstream("模拟微信未启动或不可达".into())
            })?;
        Ok(Json(DevCode { code }))
    }

    /// Who I am and what I may do.
    #[oai(path = "/me", method = "get")]
    async fn me(&self, auth: Auth) -> ApiResult<Json<Me>> {
        let db = &self.0.db;
        let user = app_user::Entity::find_by_id(auth.0.user_id)
            .one(db)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        let volunteer = volunteer::Entity::find()
            .filter(volunteer::Column::UserId.eq(user.id))
            .one(db)
            .await?;
        let member = family_member::Entity::find()
            .filter(family_member::Column::UserId.eq(user.id))
            .one(db)
            .await?;
        let roles = role_grant::Entity::find()
            .filter(role_grant::Column::UserId.eq(user.id))
            .all(db)
            .await?
            .into_iter()
            .map(|g| g.role)
            .collect();
        Ok(Json(Me {
            user_id: user.id,
            name: user.name,
            phone: user.phone.as_deref().map(mask_phone),
            roles,
            volunteer_status: volunteer.map(|v| v.status),
            family_id: member.map(|m| m.family_id),
        }))
    }
}

#[derive(Object)]
pub struct Done {
    pub ok: bool,
}

pub async fn grant(
    db: &impl sea_orm::ConnectionTrait,
    user_id: Uuid,
    role: Role,
    region_id: Option<Uuid>,
    by: Uuid,
) -> ApiResult<()> {
    role_grant::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        role: Set(role),
        region_id: Set(region_id),
        granted_by: Set(Some(by)),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// The client's address. Behind a load balancer every connection comes from the balancer,
/// so the first `X-Forwarded-For` entry is used when `behind_proxy` is set (and only then:
/// otherwise any client could claim any address).
pub fn client_ip(req: &Request, behind_proxy: bool) -> String {
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    match forwarded {
        Some(ip) if behind_proxy => ip,
        _ => {
            let who = req.remote_addr().to_string();
            who.rsplit_once(':')
                .map_or(who.as_str(), |(ip, _)| ip)
                .to_string()
        }
    }
}

fn login_error(err: WeChatError) -> ApiError {
    match err {
        WeChatError::Api {
            errcode: 40029 | 40163,
            ..
        } => ApiError::field("code", "登录凭证无效或已使用，请重新登录"),
        WeChatError::Api { errcode: 45011, .. } => {
            ApiError::TooManyRequests("登录过于频繁，请一分钟后再试".into())
        }
        WeChatError::Api { errcode: 40226, .. } => {
            ApiError::Forbidden("微信判定该账号存在风险，暂不能登录".into())
        }
        WeChatError::Api {
            errcode: 40013 | 40125,
            ..
        } => {
            tracing::error!(%err, "WeChat appid/secret are misconfigured");
            ApiError::Upstream("微信登录暂不可用".into())
        }
        other => {
            tracing::warn!(err = %other, "WeChat login failed");
            ApiError::Upstream("微信登录暂不可用，请稍后再试".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_forwarded_address_counts_only_behind_a_proxy() {
        let req = Request::builder()
            .header("x-forwarded-for", "203.0.113.7, 10.0.0.1")
            .finish();
        assert_eq!(client_ip(&req, true), "203.0.113.7");
        assert_ne!(client_ip(&req, false), "203.0.113.7");
    }
}
