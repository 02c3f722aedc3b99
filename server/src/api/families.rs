//! The family register (台账): families with their members, care preferences and consent.
//! Lists are masked; reading a full record, and revealing an ID number, is audited.

use scheduler::events::{LifeEvent, cancel_ahead};
use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use entity::{
    BirthCalendar, FamilyCategory, FamilyStatus, MemberRelation, RegionLevel, consent, family,
    family_member, invite_code,
};
use poem_openapi::{
    Object, OpenApi,
    param::{Path, Query},
    payload::Json,
    types::ToJSON,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    FromQueryResult, ModelTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select, Set,
    TransactionTrait, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{
    JsonBytes, Page, Paging, Tag, auth::Done, contains, in_scope, regions, search_term, starts_with,
};
use crate::{
    app::AppState,
    audit,
    auth::{Ctx, Manager, Scope},
    crypto::{human_code, mask_phone, normalise_code, sha256_hex, valid_id_number},
    error::{ApiError, ApiResult},
    input::{Input, Validate, location, opt_phone, opt_text, range, text},
};

pub struct Api(pub Arc<AppState>);

/// How the family wishes to be contacted.
#[derive(Object, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    /// No calls or messages from this time ("21:00")...
    pub quiet_from: Option<String>,
    /// ...until this time ("08:00").
    pub quiet_to: Option<String>,
    /// Some bereaved parents do not want festive visits; only quiet contact then.
    #[serde(default)]
    pub no_festive_visits: bool,
}

impl Validate for Preferences {
    fn validate(&self) -> ApiResult<()> {
        for (field, v) in [
            ("preferences.quiet_from", &self.quiet_from),
            ("preferences.quiet_to", &self.quiet_to),
        ] {
            if let Some(v) = v
                && chrono::NaiveTime::parse_from_str(v, "%H:%M").is_err()
            {
                return Err(ApiError::field(field, "时间格式应为 HH:MM"));
            }
        }
        if self.quiet_from.is_some() != self.quiet_to.is_some() {
            return Err(ApiError::field(
                "preferences",
                "免打扰时段须同时给出开始和结束",
            ));
        }
        Ok(())
    }
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    pub name: String,
    pub relation: MemberRelation,
    pub gender: Option<String>,
    pub phone: Option<String>,
    /// 18-character resident ID; stored encrypted, shown masked.
    pub id_number: Option<String>,
    /// The calendar the birthday is kept by (default solar).
    #[serde(default)]
    pub birth_calendar: Option<BirthCalendar>,
    pub birth_year: Option<i32>,
    pub birth_month: Option<i32>,
    pub birth_day: Option<i32>,
    /// For lunar birthdays in a leap month (闰月).
    #[serde(default)]
    pub birth_leap_month: bool,
    #[serde(default)]
    pub deceased: bool,
    pub death_date: Option<NaiveDate>,
    #[serde(default)]
    pub primary_contact: bool,
}

impl NewMember {
    fn validate_at(&self, prefix: &str) -> ApiResult<()> {
        let f = |name: &str| format!("{prefix}{name}");
        text(&f("name"), &self.name, 1, 32)?;
        opt_phone(&f("phone"), self.phone.as_deref())?;
        if let Some(g) = &self.gender
            && !matches!(g.as_str(), "男" | "女")
        {
            return Err(ApiError::field(f("gender"), "性别应为 男 或 女"));
        }
        if let Some(id) = &self.id_number
            && !valid_id_number(id.trim())
        {
            return Err(ApiError::field(f("id_number"), "身份证号码不正确"));
        }
        validate_birthday(
            prefix,
            self.birth_calendar.unwrap_or(BirthCalendar::Solar),
            self.birth_year,
            self.birth_month,
            self.birth_day,
            self.birth_leap_month,
        )?;
        if self.death_date.is_some() && !self.deceased {
            return Err(ApiError::field(f("death_date"), "仅已故成员可填写去世日期"));
        }
        if let Some(d) = self.death_date
            && d > Utc::now().date_naive()
        {
            return Err(ApiError::field(f("death_date"), "去世日期不能晚于今天"));
        }
        Ok(())
    }
}

impl Validate for NewMember {
    fn validate(&self) -> ApiResult<()> {
        self.validate_at("")
    }
}

/// Month and day must be plausible in the calendar the birthday is kept by. Whether a
/// lunar leap month exists in a given year is the calendar's business, not a form's.
fn validate_birthday(
    prefix: &str,
    calendar: BirthCalendar,
    year: Option<i32>,
    month: Option<i32>,
    day: Option<i32>,
    leap: bool,
) -> ApiResult<()> {
    let f = |name: &str| format!("{prefix}{name}");
    if let Some(y) = year {
        range(
            &f("birth_year"),
            y,
            1900,
            Utc::now().date_naive().year_ce().1 as i32,
        )?;
    }
    match (month, day) {
        (None, None) => {}
        (Some(m), Some(d)) => {
            range(&f("birth_month"), m, 1, 12)?;
            match calendar {
                BirthCalendar::Lunar => range(&f("birth_day"), d, 1, 30)?,
                BirthCalendar::Solar => {
                    // Feb 29 is fine without a year; with one, the date must exist.
                    let y = year.unwrap_or(2000);
                    if NaiveDate::from_ymd_opt(y, m as u32, d as u32).is_none() {
                        return Err(ApiError::field(f("birth_day"), "该日期不存在"));
                    }
                }
            }
        }
        _ => return Err(ApiError::field(f("birth_day"), "生日须同时填写月和日")),
    }
    if leap && calendar != BirthCalendar::Lunar {
        return Err(ApiError::field(f("birth_leap_month"), "只有农历生日有闰月"));
    }
    Ok(())
}

use chrono::Datelike;

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewFamily {
    /// The village or community the family lives in.
    pub region_id: Uuid,
    /// The number in the register (台账编号), unique within the village.
    pub register_no: String,
    pub category: FamilyCategory,
    /// The householder or main contact.
    pub head_name: String,
    pub phone: Option<String>,
    pub address: String,
    pub lat: Option<f64>,
    pub lng: Option<f64>,
    /// 1 (light) to 3 (close attention); default 2.
    pub care_level: Option<i32>,
    #[serde(default)]
    pub consent_sms: bool,
    #[serde(default)]
    pub consent_wechat: bool,
    pub preferences: Option<Preferences>,
    /// Notes for whoever visits (e.g. "prefers afternoons").
    pub visitor_notes: Option<String>,
    /// Notes only counsellors and coordinators see.
    pub counsel_notes: Option<String>,
    #[serde(default)]
    pub members: Vec<NewMember>,
}

impl Validate for NewFamily {
    fn validate(&self) -> ApiResult<()> {
        text("register_no", &self.register_no, 1, 32)?;
        text("head_name", &self.head_name, 1, 32)?;
        opt_phone("phone", self.phone.as_deref())?;
        text("address", &self.address, 1, 200)?;
        location("location", self.lat, self.lng)?;
        if let Some(l) = self.care_level {
            range("care_level", l, 1, 3)?;
        }
        if let Some(p) = &self.preferences {
            p.validate()?;
        }
        opt_text("visitor_notes", self.visitor_notes.as_deref(), 1000)?;
        opt_text("counsel_notes", self.counsel_notes.as_deref(), 2000)?;
        if self.members.len() > 20 {
            return Err(ApiError::field("members", "成员不能超过 20 人"));
        }
        for (i, m) in self.members.iter().enumerate() {
            m.validate_at(&format!("members[{i}]."))?;
        }
        Ok(())
    }
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyChange {
    pub region_id: Option<Uuid>,
    pub register_no: Option<String>,
    pub category: Option<FamilyCategory>,
    pub head_name: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub lat: Option<f64>,
    pub lng: Option<f64>,
    pub care_level: Option<i32>,
    pub status: Option<FamilyStatus>,
    pub consent_sms: Option<bool>,
    pub consent_wechat: Option<bool>,
    pub preferences: Option<Preferences>,
    pub visitor_notes: Option<String>,
    pub counsel_notes: Option<String>,
}

impl Validate for FamilyChange {
    fn validate(&self) -> ApiResult<()> {
        if let Some(v) = &self.register_no {
            text("register_no", v, 1, 32)?;
        }
        if let Some(v) = &self.head_name {
            text("head_name", v, 1, 32)?;
        }
        opt_phone("phone", self.phone.as_deref())?;
        if let Some(v) = &self.address {
            text("address", v, 1, 200)?;
        }
        location("location", self.lat, self.lng)?;
        if let Some(l) = self.care_level {
            range("care_level", l, 1, 3)?;
        }
        if let Some(p) = &self.preferences {
            p.validate()?;
        }
        opt_text("visitor_notes", self.visitor_notes.as_deref(), 1000)?;
        opt_text("counsel_notes", self.counsel_notes.as_deref(), 2000)
    }
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberChange {
    pub name: Option<String>,
    pub relation: Option<MemberRelation>,
    pub gender: Option<String>,
    pub phone: Option<String>,
    pub id_number: Option<String>,
    pub birth_calendar: Option<BirthCalendar>,
    pub birth_year: Option<i32>,
    pub birth_month: Option<i32>,
    pub birth_day: Option<i32>,
    pub birth_leap_month: Option<bool>,
    pub deceased: Option<bool>,
    pub death_date: Option<NaiveDate>,
    pub primary_contact: Option<bool>,
}

impl Validate for MemberChange {
    fn validate(&self) -> ApiResult<()> {
        if let Some(v) = &self.name {
            text("name", v, 1, 32)?;
        }
        opt_phone("phone", self.phone.as_deref())?;
        if let Some(g) = &self.gender
            && !matches!(g.as_str(), "男" | "女")
        {
            return Err(ApiError::field("gender", "性别应为 男 或 女"));
        }
        if let Some(id) = &self.id_number
            && !valid_id_number(id.trim())
        {
            return Err(ApiError::field("id_number", "身份证号码不正确"));
        }
        Ok(())
    }
}

/// A row of the family list: phone masked, no address or notes.
#[derive(Object, Clone)]
pub struct FamilySummary {
    pub id: Uuid,
    pub region_id: Uuid,
    pub register_no: String,
    pub category: FamilyCategory,
    pub head_name: String,
    pub phone: Option<String>,
    pub care_level: i32,
    pub status: FamilyStatus,
}

/// The columns a list row needs, and no more: notes and preferences stay in the database.
#[derive(FromQueryResult)]
struct SummaryRow {
    id: Uuid,
    region_id: Uuid,
    register_no: String,
    category: FamilyCategory,
    head_name: String,
    phone: Option<String>,
    care_level: i32,
    status: FamilyStatus,
}

impl From<SummaryRow> for FamilySummary {
    fn from(f: SummaryRow) -> Self {
        Self {
            id: f.id,
            region_id: f.region_id,
            register_no: f.register_no,
            category: f.category,
            head_name: f.head_name,
            phone: f.phone.as_deref().map(mask_phone),
            care_level: f.care_level,
            status: f.status,
        }
    }
}

#[derive(Object)]
pub struct MemberView {
    pub id: Uuid,
    pub name: String,
    pub relation: MemberRelation,
    pub gender: Option<String>,
    pub phone: Option<String>,
    /// Masked; see the id-number endpoint to reveal it.
    pub id_number: Option<String>,
    pub birth_calendar: BirthCalendar,
    pub birth_year: Option<i32>,
    pub birth_month: Option<i32>,
    pub birth_day: Option<i32>,
    pub birth_leap_month: bool,
    pub deceased: bool,
    pub death_date: Option<NaiveDate>,
    pub primary_contact: bool,
    /// Whether the member has bound their WeChat.
    pub bound: bool,
}

impl From<family_member::Model> for MemberView {
    fn from(m: family_member::Model) -> Self {
        Self {
            id: m.id,
            name: m.name,
            relation: m.relation,
            gender: m.gender,
            phone: m.phone,
            id_number: m.id_number_masked,
            birth_calendar: m.birth_calendar,
            birth_year: m.birth_year,
            birth_month: m.birth_month,
            birth_day: m.birth_day,
            birth_leap_month: m.birth_leap_month,
            deceased: m.deceased,
            death_date: m.death_date,
            primary_contact: m.primary_contact,
            bound: m.user_id.is_some(),
        }
    }
}

/// The full record, for coordinators. Every read is audited.
#[derive(Object)]
pub struct FamilyDetail {
    pub id: Uuid,
    pub region_id: Uuid,
    pub register_no: String,
    pub category: FamilyCategory,
    pub head_name: String,
    pub phone: Option<String>,
    pub address: String,
    pub lat: Option<f64>,
    pub lng: Option<f64>,
    pub care_level: i32,
    pub status: FamilyStatus,
    pub consent_sms: bool,
    pub consent_wechat: bool,
    pub preferences: Preferences,
    pub visitor_notes: String,
    pub counsel_notes: String,
    pub members: Vec<MemberView>,
}

#[derive(Object)]
pub struct IdNumber {
    pub id_number: String,
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInvite {
    /// The member who will bind their WeChat with this code.
    pub member_id: Uuid,
}

impl Validate for NewInvite {}

#[derive(Object)]
pub struct Invite {
    /// Eight characters to read out or type; works once.
    pub code: String,
    pub expires_at: chrono::DateTime<Utc>,
}

/// A family the caller may manage, or 404.
/// The families of `scope`, narrowed to a region's subtree (a township: all its villages)
/// and a category when given: the list and the register export filter alike.
pub async fn scoped(
    db: &DatabaseConnection,
    scope: &Scope,
    region_id: Option<Uuid>,
    category: Option<FamilyCategory>,
) -> ApiResult<Select<family::Entity>> {
    let path = match region_id {
        Some(rid) => Some(regions::find_in_scope(db, scope, rid).await?.path),
        None => None,
    };
    Ok(scoped_to(scope, path.as_deref(), category))
}

/// Families in `scope`, under the region at `region_path` (already checked to be in scope).
fn scoped_to(
    scope: &Scope,
    region_path: Option<&str>,
    category: Option<FamilyCategory>,
) -> Select<family::Entity> {
    let mut select = family::Entity::find().filter(in_scope(scope, family::Column::RegionId));
    if let Some(path) = region_path {
        select = select.filter(in_scope(
            &Scope::Subtrees(vec![path.to_owned()]),
            family::Column::RegionId,
        ));
    }
    if let Some(c) = category {
        select = select.filter(family::Column::Category.eq(c));
    }
    select
}

pub async fn find_in_scope(
    db: &impl ConnectionTrait,
    scope: &Scope,
    id: Uuid,
) -> ApiResult<family::Model> {
    let f = family::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("家庭"))?;
    if let Scope::Subtrees(_) = scope {
        let region = entity::region::Entity::find_by_id(f.region_id)
            .one(db)
            .await?;
        if !region.is_some_and(|r| scope.contains(&r.path)) {
            return Err(ApiError::NotFound("家庭"));
        }
    }
    Ok(f)
}

/// The village a family belongs to, which must be in scope.
async fn village(
    db: &impl ConnectionTrait,
    scope: &Scope,
    id: Uuid,
) -> ApiResult<entity::region::Model> {
    let r = regions::referenced(db, scope, "region_id", id).await?;
    if r.level != RegionLevel::Village {
        return Err(ApiError::field("region_id", "家庭应登记在村/社区"));
    }
    Ok(r)
}

fn preferences_of(f: &family::Model) -> Preferences {
    serde_json::from_value(f.do_not_disturb.clone()).unwrap_or_default()
}

pub fn member_model(
    state: &AppState,
    family_id: Uuid,
    m: &NewMember,
) -> family_member::ActiveModel {
    let id_number = m.id_number.as_deref().map(|s| s.trim().to_uppercase());
    family_member::ActiveModel {
        id: Set(Uuid::now_v7()),
        family_id: Set(family_id),
        name: Set(m.name.trim().into()),
        relation: Set(m.relation),
        gender: Set(m.gender.clone()),
        phone: Set(m.phone.as_deref().map(|p| p.trim().to_string())),
        id_number_enc: Set(id_number.as_deref().map(|s| state.secrets.encrypt(s))),
        id_number_masked: Set(id_number.as_deref().map(crate::crypto::mask_id_number)),
        birth_calendar: Set(m.birth_calendar.unwrap_or(BirthCalendar::Solar)),
        birth_year: Set(m.birth_year),
        birth_month: Set(m.birth_month),
        birth_day: Set(m.birth_day),
        birth_leap_month: Set(m.birth_leap_month),
        deceased: Set(m.deceased),
        death_date: Set(m.death_date),
        primary_contact: Set(m.primary_contact),
        user_id: Set(None),
        created_at: Set(Utc::now()),
    }
}

pub fn family_model(body: &NewFamily) -> family::ActiveModel {
    let now = Utc::now();
    family::ActiveModel {
        id: Set(Uuid::now_v7()),
        region_id: Set(body.region_id),
        register_no: Set(body.register_no.trim().into()),
        category: Set(body.category),
        head_name: Set(body.head_name.trim().into()),
        phone: Set(body.phone.as_deref().map(|p| p.trim().to_string())),
        address: Set(body.address.trim().into()),
        lat: Set(body.lat),
        lng: Set(body.lng),
        care_level: Set(body.care_level.unwrap_or(2)),
        status: Set(FamilyStatus::Active),
        consent_data: Set(true),
        consent_sms: Set(body.consent_sms),
        consent_wechat: Set(body.consent_wechat),
        consent_at: Set((body.consent_sms || body.consent_wechat).then_some(now)),
        do_not_disturb: Set(
            serde_json::to_value(body.preferences.clone().unwrap_or_default())
                .expect("preferences serialise"),
        ),
        visitor_notes: Set(body.visitor_notes.clone().unwrap_or_default()),
        counsel_notes: Set(body.counsel_notes.clone().unwrap_or_default()),
        created_at: Set(now),
        updated_at: Set(now),
        care_overrides: Set(None),
        plan_stamp: Set(None),
    }
}

/// Records a change of consent for one purpose (PIPL separate consent).
async fn record_consent(
    db: &impl ConnectionTrait,
    family_id: Uuid,
    purpose: &str,
    granted: bool,
    by: Uuid,
) -> ApiResult<()> {
    let now = Utc::now();
    if granted {
        consent::ActiveModel {
            id: Set(Uuid::now_v7()),
            family_id: Set(family_id),
            member_id: Set(None),
            purpose: Set(purpose.into()),
            notice_version: Set("v1".into()),
            channel: Set("coordinator".into()),
            recorded_by: Set(Some(by)),
            granted_at: Set(now),
            withdrawn_at: Set(None),
        }
        .insert(db)
        .await?;
    } else {
        consent::Entity::update_many()
            .col_expr(consent::Column::WithdrawnAt, Expr::value(now))
            .filter(consent::Column::FamilyId.eq(family_id))
            .filter(consent::Column::Purpose.eq(purpose))
            .filter(consent::Column::WithdrawnAt.is_null())
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Creates a family with its members in one transaction (used by the API and imports).
pub async fn insert_family(
    state: &AppState,
    db: &impl ConnectionTrait,
    body: &NewFamily,
    by: Uuid,
) -> ApiResult<family::Model> {
    let f = family_model(body)
        .insert(db)
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::Conflict { .. } => ApiError::field("register_no", "该村已有此台账编号"),
            other => other,
        })?;
    for m in &body.members {
        member_model(state, f.id, m).insert(db).await?;
    }
    for (purpose, on) in [("sms", body.consent_sms), ("wechat", body.consent_wechat)] {
        if on {
            record_consent(db, f.id, purpose, true, by).await?;
        }
    }
    Ok(f)
}

impl Api {
    async fn detail(&self, ctx: &Ctx, f: family::Model) -> ApiResult<FamilyDetail> {
        let db = &self.0.db;
        let members = family_member::Entity::find()
            .filter(family_member::Column::FamilyId.eq(f.id))
            .order_by_asc(family_member::Column::CreatedAt)
            .all(db)
            .await?;
        audit::record(
            db,
            Some(ctx.user_id),
            "read_family",
            "family",
            Some(f.id),
            json!({}),
        )
        .await?;
        Ok(FamilyDetail {
            preferences: preferences_of(&f),
            id: f.id,
            region_id: f.region_id,
            register_no: f.register_no,
            category: f.category,
            head_name: f.head_name,
            phone: f.phone,
            address: f.address,
            lat: f.lat,
            lng: f.lng,
            care_level: f.care_level,
            status: f.status,
            consent_sms: f.consent_sms,
            consent_wechat: f.consent_wechat,
            visitor_notes: f.visitor_notes,
            counsel_notes: f.counsel_notes,
            members: members.into_iter().map(MemberView::from).collect(),
        })
    }

    async fn member_in_scope(
        &self,
        ctx: &Ctx,
        family_id: Uuid,
        member_id: Uuid,
    ) -> ApiResult<(family::Model, family_member::Model)> {
        let scope = ctx.manager_scope()?;
        let db = &self.0.db;
        let f = find_in_scope(db, &scope, family_id).await?;
        let m = family_member::Entity::find_by_id(member_id)
            .one(db)
            .await?
            .filter(|m| m.family_id == f.id)
            .ok_or(ApiError::NotFound("家庭成员"))?;
        Ok((f, m))
    }
}

#[OpenApi(prefix_path = "/families", tag = "Tag::Families")]
impl Api {
    /// Families in my scope. `q` searches register numbers (when it has a digit) or the
    /// householder's name from its beginning ("王秀" finds 王秀英).
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        auth: Manager,
        q: Query<Option<String>>,
        category: Query<Option<FamilyCategory>>,
        status: Query<Option<FamilyStatus>>,
        region_id: Query<Option<Uuid>>,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<JsonBytes<Page<FamilySummary>>> {
        let scope = auth.0.manager_scope()?;
        let db = &self.0.db;
        let region_path = match region_id.0 {
            Some(rid) => Some(regions::find_in_scope(db, &scope, rid).await?.path),
            None => None,
        };
        let paging = Paging::new(page.0, per_page.0)?;
        let term = search_term(q.0.as_deref());
        // Everything that decides the rows, the caller's scope first: a page is never shown
        // to a caller whose scope differs. Cheaper than the query's SQL text.
        let key = format!(
            "{scope:?}|{region_path:?}|{:?}|{:?}|{term:?}",
            category.0, status.0
        );
        let select = || {
            let mut select = scoped_to(&scope, region_path.as_deref(), category.0);
            if let Some(s) = status.0 {
                select = select.filter(family::Column::Status.eq(s));
            }
            if let Some(q) = term {
                // Names never hold digits and register numbers always do; each test uses an index.
                select = select.filter(if q.chars().any(|c| c.is_ascii_digit()) {
                    contains(family::Column::RegisterNo, q)
                } else {
                    starts_with(family::Column::HeadName, q)
                });
            }
            select
        };
        let lists = &self.0.family_lists;
        let total = match lists.totals.get(&key) {
            Some(n) => n,
            None => {
                let n = select().count(db).await?;
                lists.totals.put(key.clone(), n);
                n
            }
        };
        let page_key = format!("{key}|{}|{}", paging.page, paging.per_page);
        let items = match lists.pages.get(&page_key) {
            Some(items) => items,
            None => {
                use family::Column as C;
                let rows: Vec<FamilySummary> = select()
                    .select_only()
                    .columns([
                        C::Id,
                        C::RegionId,
                        C::RegisterNo,
                        C::Category,
                        C::HeadName,
                        C::Phone,
                    ])
                    .columns([C::CareLevel, C::Status])
                    .order_by_asc(C::RegisterNo)
                    .order_by_asc(C::Id)
                    .into_model::<SummaryRow>()
                    .paginate(db, paging.per_page)
                    .fetch_page(paging.page - 1)
                    .await?
                    .into_iter()
                    .map(FamilySummary::from)
                    .collect();
                // Kept serialized: a page served from the cache is only copied out.
                let items: Arc<[u8]> = serde_json::to_vec(&rows.to_json())
                    .map_err(|e| ApiError::Internal(e.into()))?
                    .into();
                lists.pages.put(page_key, items.clone());
                items
            }
        };
        Ok(JsonBytes::new(paging.wrap_json(&items, total)))
    }

    /// Register a family with its members.
    #[oai(path = "/", method = "post")]
    async fn create(&self, auth: Manager, body: Input<NewFamily>) -> ApiResult<Json<FamilyDetail>> {
        let scope = auth.0.manager_scope()?;
        let state = &self.0;
        village(&state.db, &scope, body.0.region_id).await?;
        let txn = state.db.begin().await?;
        let f = insert_family(state, &txn, &body.0, auth.0.user_id).await?;
        audit::record(
            &txn,
            Some(auth.0.user_id),
            "create_family",
            "family",
            Some(f.id),
            json!({}),
        )
        .await?;
        txn.commit().await?;
        // Totals cached before the commit are stale now.
        self.0.family_lists.clear();
        crate::jobs::replan(state, f.id).await;
        Ok(Json(self.detail(&auth.0, f).await?))
    }

    /// The full record. Audited.
    #[oai(path = "/:id", method = "get")]
    async fn get(&self, auth: Manager, id: Path<Uuid>) -> ApiResult<Json<FamilyDetail>> {
        let scope = auth.0.manager_scope()?;
        let f = find_in_scope(&self.0.db, &scope, id.0).await?;
        Ok(Json(self.detail(&auth.0, f).await?))
    }

    /// Change a family: address, category, care level, preferences, consent, notes.
    #[oai(path = "/:id", method = "patch")]
    async fn update(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        body: Input<FamilyChange>,
    ) -> ApiResult<Json<FamilyDetail>> {
        let scope = auth.0.manager_scope()?;
        let db = &self.0.db;
        let b = body.0;
        let current = find_in_scope(db, &scope, id.0).await?;
        if let Some(rid) = b.region_id {
            village(db, &scope, rid).await?;
        }
        // Life events cancel everything ahead at once (holders told); other changes to
        // what the planner reads re-plan the family.
        let event =
            if b.status == Some(FamilyStatus::Closed) && current.status != FamilyStatus::Closed {
                Some(LifeEvent::Closed)
            } else if b.region_id.is_some_and(|r| r != current.region_id) {
                Some(LifeEvent::Moved)
            } else {
                None
            };
        let replan = event.is_some()
            || b.status.is_some_and(|s| s != current.status)
            || b.category.is_some_and(|c| c != current.category)
            || b.preferences.is_some();
        let txn = db.begin().await?;
        let mut changed = Vec::new();
        for (purpose, now, before) in [
            ("sms", b.consent_sms, current.consent_sms),
            ("wechat", b.consent_wechat, current.consent_wechat),
        ] {
            if let Some(now) = now
                && now != before
            {
                record_consent(&txn, current.id, purpose, now, auth.0.user_id).await?;
                changed.push(format!("consent_{purpose}"));
            }
        }
        let mut row: family::ActiveModel = current.into();
        let trimmed = |v: String| v.trim().to_string();
        if let Some(v) = b.region_id {
            row.region_id = Set(v);
            changed.push("region_id".into());
        }
        if let Some(v) = b.register_no {
            row.register_no = Set(trimmed(v));
            changed.push("register_no".into());
        }
        if let Some(v) = b.category {
            row.category = Set(v);
            changed.push("category".into());
        }
        if let Some(v) = b.head_name {
            row.head_name = Set(trimmed(v));
            changed.push("head_name".into());
        }
        if let Some(v) = b.phone {
            row.phone = Set(Some(trimmed(v)));
            changed.push("phone".into());
        }
        if let Some(v) = b.address {
            row.address = Set(trimmed(v));
            changed.push("address".into());
        }
        if let Some(v) = b.care_level {
            row.care_level = Set(v);
            changed.push("care_level".into());
        }
        if let Some(v) = b.status {
            row.status = Set(v);
            changed.push("status".into());
        }
        if let Some(v) = b.consent_sms {
            row.consent_sms = Set(v);
        }
        if let Some(v) = b.consent_wechat {
            row.consent_wechat = Set(v);
        }
        if let Some(v) = b.visitor_notes {
            row.visitor_notes = Set(v);
            changed.push("visitor_notes".into());
        }
        if let Some(v) = b.counsel_notes {
            row.counsel_notes = Set(v);
            changed.push("counsel_notes".into());
        }
        if b.lat.is_some() {
            row.lat = Set(b.lat);
            row.lng = Set(b.lng);
            changed.push("location".into());
        }
        if let Some(p) = b.preferences {
            row.do_not_disturb = Set(serde_json::to_value(p).expect("preferences serialise"));
            changed.push("preferences".into());
        }
        row.updated_at = Set(Utc::now());
        let f = row
            .update(&txn)
            .await
            .map_err(|e| match ApiError::from(e) {
                ApiError::Conflict { .. } => ApiError::field("register_no", "该村已有此台账编号"),
                other => other,
            })?;
        audit::record(
            &txn,
            Some(auth.0.user_id),
            "update_family",
            "family",
            Some(f.id),
            json!({"fields": changed}),
        )
        .await?;
        if let Some(event) = event {
            cancel_ahead(&txn, f.id, event, Utc::now(), self.0.tz).await?;
        }
        txn.commit().await?;
        self.0.family_lists.clear();
        if replan {
            crate::jobs::replan(&self.0, f.id).await;
        }
        Ok(Json(self.detail(&auth.0, f).await?))
    }

    /// Add a member to a family.
    #[oai(path = "/:id/members", method = "post")]
    async fn add_member(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        body: Input<NewMember>,
    ) -> ApiResult<Json<MemberView>> {
        let scope = auth.0.manager_scope()?;
        let state = &self.0;
        let f = find_in_scope(&state.db, &scope, id.0).await?;
        let m = member_model(state, f.id, &body.0).insert(&state.db).await?;
        audit::record(
            &state.db,
            Some(auth.0.user_id),
            "add_member",
            "family",
            Some(f.id),
            json!({"member": m.id}),
        )
        .await?;
        crate::jobs::replan(state, f.id).await;
        Ok(Json(m.into()))
    }

    /// Correct a member's details.
    #[oai(path = "/:id/members/:member_id", method = "patch")]
    async fn update_member(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        member_id: Path<Uuid>,
        body: Input<MemberChange>,
    ) -> ApiResult<Json<MemberView>> {
        let (f, m) = self.member_in_scope(&auth.0, id.0, member_id.0).await?;
        let b = body.0;
        // Validate the birthday as it will be after the change.
        let calendar = b.birth_calendar.unwrap_or(m.birth_calendar);
        let month = b.birth_month.or(m.birth_month);
        let day = b.birth_day.or(m.birth_day);
        let year = b.birth_year.or(m.birth_year);
        let leap = b.birth_leap_month.unwrap_or(m.birth_leap_month);
        validate_birthday("", calendar, year, month, day, leap)?;
        let deceased = b.deceased.unwrap_or(m.deceased);
        let died = deceased && !m.deceased;
        if b.death_date.or(m.death_date).is_some() && !deceased {
            return Err(ApiError::field("death_date", "仅已故成员可填写去世日期"));
        }
        let state = &self.0;
        let mut row: family_member::ActiveModel = m.into();
        if let Some(v) = b.name {
            row.name = Set(v.trim().into());
        }
        if let Some(v) = b.relation {
            row.relation = Set(v);
        }
        if let Some(v) = b.gender {
            row.gender = Set(Some(v));
        }
        if let Some(v) = b.phone {
            row.phone = Set(Some(v.trim().into()));
        }
        if let Some(v) = b.id_number {
            let v = v.trim().to_uppercase();
            row.id_number_enc = Set(Some(state.secrets.encrypt(&v)));
            row.id_number_masked = Set(Some(crate::crypto::mask_id_number(&v)));
        }
        row.birth_calendar = Set(calendar);
        row.birth_year = Set(year);
        row.birth_month = Set(month);
        row.birth_day = Set(day);
        row.birth_leap_month = Set(leap);
        row.deceased = Set(deceased);
        if let Some(d) = b.death_date {
            row.death_date = Set(Some(d));
        }
        if let Some(v) = b.primary_contact {
            row.primary_contact = Set(v);
        }
        let txn = state.db.begin().await?;
        let m = row.update(&txn).await?;
        audit::record(
            &txn,
            Some(auth.0.user_id),
            "update_member",
            "family",
            Some(f.id),
            json!({"member": m.id}),
        )
        .await?;
        if died {
            cancel_ahead(&txn, f.id, LifeEvent::Death, Utc::now(), state.tz).await?;
        }
        txn.commit().await?;
        crate::jobs::replan(state, f.id).await;
        Ok(Json(m.into()))
    }

    /// Remove a member entered by mistake.
    #[oai(path = "/:id/members/:member_id", method = "delete")]
    async fn delete_member(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        member_id: Path<Uuid>,
    ) -> ApiResult<Json<Done>> {
        let (f, m) = self.member_in_scope(&auth.0, id.0, member_id.0).await?;
        let db = &self.0.db;
        if m.user_id.is_some() {
            return Err(ApiError::conflict(
                "member_bound",
                "该成员已绑定微信，不能删除",
            ));
        }
        let mid = m.id;
        m.delete(db).await?;
        audit::record(
            db,
            Some(auth.0.user_id),
            "delete_member",
            "family",
            Some(f.id),
            json!({"member": mid}),
        )
        .await?;
        crate::jobs::replan(&self.0, f.id).await;
        Ok(Json(Done { ok: true }))
    }

    /// Reveal a member's full ID number. Audited.
    #[oai(path = "/:id/members/:member_id/id-number", method = "get")]
    async fn reveal_id_number(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        member_id: Path<Uuid>,
    ) -> ApiResult<Json<IdNumber>> {
        let (f, m) = self.member_in_scope(&auth.0, id.0, member_id.0).await?;
        let state = &self.0;
        let plain = m
            .id_number_enc
            .as_deref()
            .and_then(|enc| state.secrets.decrypt(enc))
            .ok_or(ApiError::NotFound("身份证号码"))?;
        audit::record(
            &state.db,
            Some(auth.0.user_id),
            "reveal_id_number",
            "family",
            Some(f.id),
            json!({"member": m.id}),
        )
        .await?;
        Ok(Json(IdNumber { id_number: plain }))
    }

    /// Issue a one-time code with which a member binds their WeChat to the family.
    #[oai(path = "/:id/invites", method = "post")]
    async fn invite(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        body: Input<NewInvite>,
    ) -> ApiResult<Json<Invite>> {
        let (f, m) = self
            .member_in_scope(&auth.0, id.0, body.0.member_id)
            .await
            .map_err(|e| match e {
                ApiError::NotFound("家庭成员") => {
                    ApiError::field("member_id", "该家庭没有这位成员")
                }
                other => other,
            })?;
        if m.deceased {
            return Err(ApiError::field("member_id", "该成员已故"));
        }
        if m.user_id.is_some() {
            return Err(ApiError::conflict("already_bound", "该成员已绑定微信"));
        }
        let db = &self.0.db;
        let code = human_code();
        let expires_at = Utc::now() + chrono::Duration::days(7);
        invite_code::ActiveModel {
            id: Set(Uuid::now_v7()),
            purpose: Set("family_member".into()),
            family_id: Set(Some(f.id)),
            member_id: Set(Some(m.id)),
            user_id: Set(None),
            code_hash: Set(sha256_hex(&normalise_code(&code))),
            created_by: Set(auth.0.user_id),
            expires_at: Set(expires_at),
            used_at: Set(None),
            created_at: Set(Utc::now()),
        }
        .insert(db)
        .await?;
        audit::record(
            db,
            Some(auth.0.user_id),
            "issue_invite",
            "family",
            Some(f.id),
            json!({"member": m.id}),
        )
        .await?;
        Ok(Json(Invite { code, expires_at }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn birthdays_are_checked_in_their_calendar() {
        use BirthCalendar::*;
        assert!(validate_birthday("", Lunar, Some(1950), Some(6), Some(30), true).is_ok());
        assert!(validate_birthday("", Solar, Some(1950), Some(2), Some(30), false).is_err());
        assert!(validate_birthday("", Solar, None, Some(2), Some(29), false).is_ok());
        assert!(validate_birthday("", Solar, Some(1951), Some(2), Some(29), false).is_err());
        assert!(validate_birthday("", Solar, Some(1952), Some(2), Some(29), false).is_ok());
        assert!(validate_birthday("", Solar, None, Some(5), Some(1), true).is_err());
        assert!(validate_birthday("", Lunar, None, Some(13), Some(1), false).is_err());
        assert!(validate_birthday("", Lunar, None, Some(5), None, false).is_err());
        let err =
            validate_birthday("members[2].", Lunar, None, Some(5), Some(31), false).unwrap_err();
        assert!(
            matches!(err, ApiError::Validation { field, .. } if field == "members[2].birth_day")
        );
    }
}
