//! People and waiting for tests of events, wishes and help: a family member who uses the
//! app, staff reachable on WeChat, and polling for what a background task sends.

use std::time::Duration as StdDuration;

use chrono::Utc;
use entity::{BirthCalendar, FamilyCategory, MemberRelation, UserStatus, app_user, family_member};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, IntoActiveModel};
use serde_json::json;
use uuid::Uuid;

use crate::TestApp;

/// A family member with an account and a token.
#[derive(Clone, Debug)]
pub struct TestMember {
    pub family: Uuid,
    pub user: Uuid,
    pub token: String,
    pub phone: String,
}

/// A birthday of a member, kept by its calendar: (calendar, month, day, leap month).
pub type Birthday = (BirthCalendar, i32, i32, bool);

impl TestApp {
    /// A family in `village` (household head `head`) whose member with `phone` uses the
    /// app, born on `birthday` when given.
    pub async fn member_of_new_family(
        &self,
        village: &str,
        head: &str,
        phone: &str,
        birthday: Option<Birthday>,
    ) -> TestMember {
        let family = self
            .family_at(
                village,
                FamilyCategory::Bereaved,
                head,
                Some((31.31, 116.60)),
            )
            .await;
        self.add_member(family, head, phone, birthday).await
    }

    /// Another member of `family` who uses the app.
    pub async fn add_member(
        &self,
        family: Uuid,
        name: &str,
        phone: &str,
        birthday: Option<Birthday>,
    ) -> TestMember {
        let db = &self.state.db;
        let now = Utc::now();
        let user = Uuid::now_v7();
        app_user::ActiveModel {
            id: Set(user),
            name: Set(name.into()),
            phone: Set(Some(phone.into())),
            openid: Set(None),
            unionid: Set(None),
            status: Set(UserStatus::Active),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(db)
        .await
        .expect("user");
        family_member::ActiveModel {
            id: Set(Uuid::now_v7()),
            family_id: Set(family),
            name: Set(name.into()),
            relation: Set(MemberRelation::Mother),
            gender: Set(None),
            phone: Set(Some(phone.into())),
            id_number_enc: Set(None),
            id_number_masked: Set(None),
            birth_calendar: Set(birthday.map_or(BirthCalendar::Solar, |b| b.0)),
            birth_year: Set(Some(1955)),
            birth_month: Set(birthday.map(|b| b.1)),
            birth_day: Set(birthday.map(|b| b.2)),
            birth_leap_month: Set(birthday.is_some_and(|b| b.3)),
            deceased: Set(false),
            death_date: Set(None),
            primary_contact: Set(true),
            user_id: Set(Some(user)),
            created_at: Set(now),
        }
        .insert(db)
        .await
        .expect("member");
        let token = self.token_for(phone).await;
        TestMember {
            family,
            user,
            token,
            phone: phone.into(),
        }
    }

    /// Gives a person a WeChat account with `grants` grants of the test deployment's
    /// template, as a mini-program user who accepted its subscription prompts would have;
    /// returns the openid.
    pub async fn on_wechat(&self, user: Uuid, token: &str, grants: u32) -> String {
        let db = &self.state.db;
        let openid = format!("o-{}", user.simple());
        let mut row = app_user::Entity::find_by_id(user)
            .one(db)
            .await
            .expect("query")
            .expect("user")
            .into_active_model();
        row.openid = Set(Some(openid.clone()));
        row.update(db).await.expect("user");
        self.wechat.mint_code(&openid, None);
        self.wechat
            .grant_credits(&openid, miniapp_stub::TEMPLATE_VISIT_NOTICE, grants);
        for _ in 0..grants {
            self.post(
                "/api/me/subscriptions",
                Some(token),
                json!({"accepted": [miniapp_stub::TEMPLATE_VISIT_NOTICE]}),
            )
            .await
            .ok();
        }
        openid
    }

    /// SMS the fake provider received for a number.
    pub fn sms_count(&self, phone: &str) -> usize {
        self.wechat
            .sms_outbox()
            .iter()
            .filter(|s| s.phone == phone)
            .count()
    }

    /// WeChat messages the fake server delivered to an openid.
    pub fn wechat_count(&self, openid: &str) -> usize {
        self.wechat
            .outbox()
            .iter()
            .filter(|m| m.touser == openid)
            .count()
    }
}

/// Waits up to `secs` seconds for `cond` to hold; whether it did.
pub async fn eventually(secs: f64, mut cond: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + StdDuration::from_secs_f64(secs);
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
}
