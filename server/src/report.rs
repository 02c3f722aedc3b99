//! The rules of doing a visit, reporting it and confirming it, without a database: which
//! step each state allows, when and where a check-in counts, what a report may say, how
//! many minutes a visit credits, the one-time codes, and the service-hours summary. The
//! handlers in `api::reports` load rows, call these, and write.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use entity::visit_task::status;
use poem_openapi::{Enum, Object};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    crypto::sha256_hex,
    error::{ApiError, ApiResult},
    input::{Validate, opt_text, range, text},
};

// ---------------------------------------------------------------------------------------
// What a report holds

/// A service delivered on a visit.
#[derive(Enum, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Service {
    /// 慰问
    #[serde(alias = "慰问")]
    Condolence,
    /// 心理疏导
    #[serde(alias = "心理疏导")]
    Counselling,
    /// 陪同聊天
    #[serde(alias = "陪同聊天")]
    Companionship,
    /// 健康监测
    #[serde(alias = "健康监测")]
    HealthCheck,
    /// 生活照料
    #[serde(alias = "生活照料")]
    DailyCare,
    /// 政策宣传
    #[serde(alias = "政策宣传")]
    Policy,
    /// 其他 (say what in `other_service`)
    #[serde(alias = "其他")]
    Other,
}

impl Service {
    pub const ALL: [Service; 7] = [
        Service::Condolence,
        Service::Counselling,
        Service::Companionship,
        Service::HealthCheck,
        Service::DailyCare,
        Service::Policy,
        Service::Other,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Service::Condolence => "condolence",
            Service::Counselling => "counselling",
            Service::Companionship => "companionship",
            Service::HealthCheck => "health_check",
            Service::DailyCare => "daily_care",
            Service::Policy => "policy",
            Service::Other => "other",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Service::Condolence => "慰问",
            Service::Counselling => "心理疏导",
            Service::Companionship => "陪同聊天",
            Service::HealthCheck => "健康监测",
            Service::DailyCare => "生活照料",
            Service::Policy => "政策宣传",
            Service::Other => "其他",
        }
    }

    fn from_code(code: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.code() == code)
    }
}

/// How the family seemed.
#[derive(Enum, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Mood {
    /// 良好
    #[serde(alias = "良好")]
    Good,
    /// 平稳
    #[serde(alias = "平稳")]
    Stable,
    /// 低落
    #[serde(alias = "低落")]
    Low,
    /// 焦虑
    #[serde(alias = "焦虑")]
    Anxious,
}

impl Mood {
    pub const ALL: [Mood; 4] = [Mood::Good, Mood::Stable, Mood::Low, Mood::Anxious];

    pub fn code(self) -> &'static str {
        match self {
            Mood::Good => "good",
            Mood::Stable => "stable",
            Mood::Low => "low",
            Mood::Anxious => "anxious",
        }
    }

    pub fn parse(code: &str) -> Option<Mood> {
        Mood::ALL.into_iter().find(|m| m.code() == code)
    }
}

/// A sign of risk the visitor noticed.
#[derive(
    Enum, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RiskSign {
    /// 情绪低落数周
    #[serde(alias = "情绪低落数周")]
    LowMoodWeeks,
    /// 独居无人照看
    #[serde(alias = "独居无人照看")]
    AloneUnattended,
    /// 身体明显变差
    #[serde(alias = "身体明显变差")]
    HealthDeclining,
    /// 有轻生念头
    #[serde(alias = "有轻生念头")]
    SuicidalThoughts,
}

impl RiskSign {
    pub const ALL: [RiskSign; 4] = [
        RiskSign::LowMoodWeeks,
        RiskSign::AloneUnattended,
        RiskSign::HealthDeclining,
        RiskSign::SuicidalThoughts,
    ];

    pub fn code(self) -> &'static str {
        match self {
            RiskSign::LowMoodWeeks => "low_mood_weeks",
            RiskSign::AloneUnattended => "alone_unattended",
            RiskSign::HealthDeclining => "health_declining",
            RiskSign::SuicidalThoughts => "suicidal_thoughts",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            RiskSign::LowMoodWeeks => "情绪低落数周",
            RiskSign::AloneUnattended => "独居无人照看",
            RiskSign::HealthDeclining => "身体明显变差",
            RiskSign::SuicidalThoughts => "有轻生念头",
        }
    }

    pub fn parse(code: &str) -> Option<RiskSign> {
        RiskSign::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// The largest 慰问金 one visit may record, in yuan. Real gifts are a few thousand (the
/// documents mention 2,000); anything near this is a typing error.
pub const MAX_CASH_YUAN: f64 = 50_000.0;
pub const MAX_NEEDS: usize = 10;
pub const MAX_NEED_CHARS: usize = 100;

/// A visit's report as submitted by the volunteer.
#[derive(Object, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ReportInput {
    /// What was done, at least one.
    pub services: Vec<Service>,
    /// What the `other` service was (required with `other`, up to 50 characters).
    pub other_service: Option<String>,
    /// 慰问金 in yuan, at most two decimals (2000, 199.5); not negative, at most 50000.
    pub cash_yuan: Option<f64>,
    /// Goods handed over (rice, oil…), up to 500 characters.
    pub goods: Option<String>,
    /// Blood pressure, mmHg: systolic 70–250 and diastolic 40–150, both or neither.
    pub bp_systolic: Option<i32>,
    pub bp_diastolic: Option<i32>,
    /// Whose blood pressure it is: a member of the visited family (for readings over
    /// time per person). Only with a blood pressure.
    pub bp_member_id: Option<Uuid>,
    pub mood: Option<Mood>,
    #[oai(default)]
    #[serde(default)]
    pub risk_signs: Vec<RiskSign>,
    /// Needs found, one short text each (up to 10 of 100 characters); each becomes a wish
    /// on the wish wall for coordinators.
    #[oai(default)]
    #[serde(default)]
    pub needs: Vec<String>,
    /// Anything else, up to 1000 characters.
    pub notes: Option<String>,
}

impl Validate for ReportInput {
    fn validate(&self) -> ApiResult<()> {
        if self.bp_member_id.is_some() && self.bp_systolic.is_none() {
            return Err(ApiError::field(
                "bp_member_id",
                "填写血压时才需注明是哪位家庭成员",
            ));
        }
        self.fields().map(|_| ())
    }
}

/// A report as kept: checked, trimmed, in the codes stored in `visit_record`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportFields {
    /// Service codes; `other` is kept as `other:<what>`.
    pub services: Vec<String>,
    pub cash_fen: i64,
    pub goods: String,
    pub bp_systolic: Option<i32>,
    pub bp_diastolic: Option<i32>,
    pub mood: Option<String>,
    pub risk_signs: Vec<String>,
    pub needs: Vec<String>,
    pub notes: String,
}

impl ReportInput {
    /// The report as it will be kept, or the first field that is wrong.
    pub fn fields(&self) -> ApiResult<ReportFields> {
        Ok(ReportFields {
            services: services(&self.services, self.other_service.as_deref())?,
            cash_fen: self
                .cash_yuan
                .map_or(Ok(0), |y| yuan_to_fen("cash_yuan", y))?,
            goods: trimmed("goods", self.goods.as_deref(), 500)?,
            bp_systolic: self.bp_systolic,
            bp_diastolic: self.bp_diastolic,
            mood: self.mood.map(|m| m.code().to_string()),
            risk_signs: risk_signs(&self.risk_signs),
            needs: needs(&self.needs)?,
            notes: trimmed("notes", self.notes.as_deref(), 1000)?,
        })
        .and_then(|f| {
            blood_pressure(f.bp_systolic, f.bp_diastolic)?;
            Ok(f)
        })
    }
}

/// A coordinator's correction of a submitted report: only the fields given change, and
/// the result must be a valid report.
#[derive(Object, Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ReportChange {
    pub services: Option<Vec<Service>>,
    pub other_service: Option<String>,
    pub cash_yuan: Option<f64>,
    pub goods: Option<String>,
    pub bp_systolic: Option<i32>,
    pub bp_diastolic: Option<i32>,
    pub mood: Option<Mood>,
    pub risk_signs: Option<Vec<RiskSign>>,
    pub needs: Option<Vec<String>>,
    pub notes: Option<String>,
    /// Why it was corrected (kept in the audit log), up to 200 characters.
    pub reason: Option<String>,
}

impl Validate for ReportChange {
    fn validate(&self) -> ApiResult<()> {
        opt_text("reason", self.reason.as_deref(), 200)?;
        if self.other_service.is_some() && self.services.is_none() {
            return Err(ApiError::field(
                "other_service",
                "修改“其他”服务时请同时给出 services",
            ));
        }
        if let Some(s) = &self.services {
            services(s, self.other_service.as_deref())?;
        }
        if let Some(y) = self.cash_yuan {
            yuan_to_fen("cash_yuan", y)?;
        }
        if let Some(n) = &self.needs {
            needs(n)?;
        }
        trimmed("goods", self.goods.as_deref(), 500)?;
        trimmed("notes", self.notes.as_deref(), 1000)?;
        Ok(())
    }
}

impl ReportChange {
    /// The report after the change, checked as a whole (a new systolic value must still
    /// be above the diastolic one kept).
    pub fn apply(&self, before: &ReportFields) -> ApiResult<ReportFields> {
        let mut after = before.clone();
        if let Some(s) = &self.services {
            after.services = services(s, self.other_service.as_deref())?;
        }
        if let Some(y) = self.cash_yuan {
            after.cash_fen = yuan_to_fen("cash_yuan", y)?;
        }
        if self.goods.is_some() {
            after.goods = trimmed("goods", self.goods.as_deref(), 500)?;
        }
        if let Some(v) = self.bp_systolic {
            after.bp_systolic = Some(v);
        }
        if let Some(v) = self.bp_diastolic {
            after.bp_diastolic = Some(v);
        }
        blood_pressure(after.bp_systolic, after.bp_diastolic)?;
        if let Some(m) = self.mood {
            after.mood = Some(m.code().to_string());
        }
        if let Some(r) = &self.risk_signs {
            after.risk_signs = risk_signs(r);
        }
        if let Some(n) = &self.needs {
            after.needs = needs(n)?;
        }
        if self.notes.is_some() {
            after.notes = trimmed("notes", self.notes.as_deref(), 1000)?;
        }
        Ok(after)
    }
}

/// What a correction changed: `{field: {"before": …, "after": …}}` for each field that
/// differs, for the audit log.
pub fn diff(
    before: &ReportFields,
    after: &ReportFields,
) -> serde_json::Map<String, serde_json::Value> {
    let b = serde_json::to_value(before).expect("a report serialises");
    let a = serde_json::to_value(after).expect("a report serialises");
    let mut out = serde_json::Map::new();
    if let (Some(b), Some(a)) = (b.as_object(), a.as_object()) {
        for (k, av) in a {
            let bv = b.get(k).cloned().unwrap_or(serde_json::Value::Null);
            if &bv != av {
                out.insert(
                    k.clone(),
                    serde_json::json!({"before": bv, "after": av.clone()}),
                );
            }
        }
    }
    out
}

fn trimmed(field: &str, value: Option<&str>, max: usize) -> ApiResult<String> {
    opt_text(field, value, max)?;
    Ok(value.map(str::trim).unwrap_or_default().to_string())
}

/// Service codes in the order given, each once; `other` carries its text.
fn services(list: &[Service], other: Option<&str>) -> ApiResult<Vec<String>> {
    if list.is_empty() {
        return Err(ApiError::field("services", "请至少选择一项服务"));
    }
    let has_other = list.contains(&Service::Other);
    match other.map(str::trim) {
        Some(_) if !has_other => {
            return Err(ApiError::field(
                "other_service",
                "只有选择“其他”时才需填写其他服务",
            ));
        }
        None if has_other => {
            return Err(ApiError::field("other_service", "请说明“其他”是什么服务"));
        }
        Some(t) => text("other_service", t, 1, 50)?,
        None => {}
    }
    let mut out: Vec<String> = Vec::new();
    for s in list {
        let code = match s {
            Service::Other => format!("other:{}", other.unwrap_or_default().trim()),
            s => s.code().to_string(),
        };
        if !out.contains(&code) {
            out.push(code);
        }
    }
    Ok(out)
}

/// A stored service code for people: "慰问", or the text of an "other".
pub fn service_label(code: &str) -> String {
    match code.strip_prefix("other:") {
        Some(what) => format!("其他：{what}"),
        None => Service::from_code(code).map_or_else(|| code.to_string(), |s| s.label().into()),
    }
}

/// Splits a stored service code into the service and the text of an "other".
pub fn parse_service(code: &str) -> Option<(Service, Option<String>)> {
    match code.strip_prefix("other:") {
        Some(what) => Some((Service::Other, Some(what.to_string()))),
        None => Service::from_code(code).map(|s| (s, None)),
    }
}

fn risk_signs(list: &[RiskSign]) -> Vec<String> {
    let mut signs = list.to_vec();
    signs.sort();
    signs.dedup();
    signs.into_iter().map(|r| r.code().to_string()).collect()
}

fn needs(list: &[String]) -> ApiResult<Vec<String>> {
    if list.len() > MAX_NEEDS {
        return Err(ApiError::field(
            "needs",
            format!("需求最多填写 {MAX_NEEDS} 条"),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, n) in list.iter().enumerate() {
        text(&format!("needs[{i}]"), n, 1, MAX_NEED_CHARS)?;
        let n = n.trim().to_string();
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

/// Yuan with at most two decimals → fen, exactly. JSON numbers arrive as `f64`; Rust
/// prints the shortest decimal that reads back as the same `f64`, which is what was sent.
pub fn yuan_to_fen(field: &str, yuan: f64) -> ApiResult<i64> {
    if !yuan.is_finite() {
        return Err(ApiError::field(field, "金额无效"));
    }
    if yuan < 0.0 {
        return Err(ApiError::field(field, "慰问金不能为负数"));
    }
    if yuan > MAX_CASH_YUAN {
        return Err(ApiError::field(
            field,
            format!("单次慰问金不能超过 {MAX_CASH_YUAN} 元，请核对"),
        ));
    }
    let printed = format!("{yuan}");
    if printed
        .split_once('.')
        .is_some_and(|(_, dec)| dec.len() > 2)
    {
        return Err(ApiError::field(field, "金额最多保留两位小数（分）"));
    }
    Ok((yuan * 100.0).round() as i64)
}

/// Fen → yuan for display.
pub fn fen_to_yuan(fen: i64) -> f64 {
    fen as f64 / 100.0
}

/// Blood pressure: both values or neither, in plausible ranges, systolic above diastolic.
pub fn blood_pressure(systolic: Option<i32>, diastolic: Option<i32>) -> ApiResult<()> {
    match (systolic, diastolic) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(ApiError::field(
            "bp_diastolic",
            "血压须同时填写收缩压和舒张压",
        )),
        (None, Some(_)) => Err(ApiError::field(
            "bp_systolic",
            "血压须同时填写收缩压和舒张压",
        )),
        (Some(s), Some(d)) => {
            range("bp_systolic", s, 70, 250)?;
            range("bp_diastolic", d, 40, 150)?;
            if s <= d {
                return Err(ApiError::field("bp_systolic", "收缩压应高于舒张压，请核对"));
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------
// What follows a report

/// A risk sign that calls for a counsellor's follow-up visit.
pub fn needs_followup(signs: &[String]) -> bool {
    signs
        .iter()
        .any(|s| s == RiskSign::LowMoodWeeks.code() || s == RiskSign::SuicidalThoughts.code())
}

/// The kind of a follow-up visit (`visit_task.kind`).
pub const FOLLOWUP_KIND: &str = "followup";
/// How long the counsellor has for the follow-up.
pub const FOLLOWUP_DAYS: i64 = 7;

/// The follow-up's idempotency key: one per visit that found the risk, however often the
/// report is retried or corrected.
pub fn followup_key(family: Uuid, task: Uuid) -> String {
    use scheduler::generate::FOLLOWUP_KEY_MARK;
    format!("{family}{FOLLOWUP_KEY_MARK}{task}")
}

/// Why the follow-up is flagged, for coordinators. Plain and calm: it is read by people
/// who arrange help, not shown to the family.
pub fn followup_reason(signs: &[String]) -> String {
    let labels: Vec<&str> = RiskSign::ALL
        .into_iter()
        .filter(|r| signs.iter().any(|s| s == r.code()))
        .map(RiskSign::label)
        .collect();
    format!("走访发现：{}，请安排心理咨询志愿者回访", labels.join("、"))
}

// ---------------------------------------------------------------------------------------
// Which step each state allows

/// A check-in may happen this long before the window opens (volunteers arrive early).
pub const CHECKIN_EARLY_HOURS: i64 = 2;

fn refused(code: &'static str, state: &str, message: impl Into<String>) -> ApiError {
    ApiError::state(code, state, message)
}

fn terminal(state: &str) -> Option<ApiError> {
    match state {
        status::MISSED => Some(refused("visit_missed", state, "该走访已错过，无法继续")),
        status::CANCELLED => Some(refused("visit_cancelled", state, "该走访已取消")),
        _ => None,
    }
}

/// Whether a holder may check in on a visit in `state`. `cadre_visit`: the caller is the
/// cadre the visit was pre-assigned to (it stays `open`). `missing`: claims still wanted.
pub fn may_check_in(state: &str, cadre_visit: bool, missing: i32) -> ApiResult<()> {
    if let Some(e) = terminal(state) {
        return Err(e);
    }
    match state {
        status::CLAIMED | status::IN_PROGRESS => Ok(()),
        status::OPEN if cadre_visit => Ok(()),
        status::OPEN => Err(refused(
            "not_fully_claimed",
            state,
            format!("该走访还需 {} 位志愿者认领，人齐后才能签到", missing.max(1)),
        )),
        status::REPORTED | status::CONFIRMED => Err(refused(
            "already_reported",
            state,
            "该走访已提交记录，不能再签到",
        )),
        _ => Err(refused("invalid_state", state, "该走访当前不能签到")),
    }
}

/// Whether now is inside the visit's window, or at most two hours before it.
pub fn within_window(
    now: DateTime<Utc>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    state: &str,
) -> ApiResult<()> {
    if now < start - Duration::hours(CHECKIN_EARLY_HOURS) {
        return Err(refused(
            "too_early",
            state,
            format!("还未到走访时间，最早可在开始前 {CHECKIN_EARLY_HOURS} 小时签到"),
        ));
    }
    if now > end {
        return Err(refused("window_passed", state, "走访时间已过，无法签到"));
    }
    Ok(())
}

/// Whether a holder who checked in may check out: while the visit is under way or reported,
/// not once the family has confirmed it (the hours are credited then).
pub fn may_check_out(state: &str) -> ApiResult<()> {
    if let Some(e) = terminal(state) {
        return Err(e);
    }
    match state {
        status::IN_PROGRESS | status::REPORTED => Ok(()),
        status::CONFIRMED => Err(refused(
            "already_confirmed",
            state,
            "家庭已确认该走访，不能再签退",
        )),
        _ => Err(refused("not_checked_in", state, "请先签到")),
    }
}

/// Whether a report may be submitted: once, after check-in.
pub fn may_report(state: &str) -> ApiResult<()> {
    if let Some(e) = terminal(state) {
        return Err(e);
    }
    match state {
        status::IN_PROGRESS => Ok(()),
        status::REPORTED | status::CONFIRMED => Err(refused(
            "already_reported",
            state,
            "该走访已提交记录；如需更正，请联系协会工作者",
        )),
        _ => Err(refused("not_checked_in", state, "请先签到，再提交走访记录")),
    }
}

/// Whether the family (or the volunteer with the family's code) may confirm: once, after
/// the report.
pub fn may_confirm(state: &str) -> ApiResult<()> {
    if let Some(e) = terminal(state) {
        return Err(e);
    }
    match state {
        status::REPORTED => Ok(()),
        status::CONFIRMED => Err(refused("already_confirmed", state, "该走访已确认")),
        _ => Err(refused("not_reported", state, "走访记录提交后才能确认")),
    }
}

/// Whether a coordinator may correct the report: once it was submitted.
pub fn may_correct(state: &str) -> ApiResult<()> {
    match state {
        status::REPORTED | status::CONFIRMED => Ok(()),
        _ => Err(refused("not_reported", state, "该走访还没有提交记录")),
    }
}

/// Whether the family may decline or ask to move a visit: before it happens.
pub fn may_change_plans(state: &str, now: DateTime<Utc>, end: DateTime<Utc>) -> ApiResult<()> {
    if let Some(e) = terminal(state) {
        return Err(e);
    }
    match state {
        status::OPEN | status::CLAIMED if now < end => Ok(()),
        status::OPEN | status::CLAIMED => Err(refused("window_passed", state, "该走访时间已过")),
        _ => Err(refused(
            "visit_under_way",
            state,
            "走访已经开始或完成，无法婉拒或改期",
        )),
    }
}

/// `status_reason` of a reported visit the family has not confirmed in time.
pub const REASON_UNCONFIRMED: &str = "家庭未确认";

// ---------------------------------------------------------------------------------------
// Check-in by position

/// The distance from the family's home, if within `radius_m`; otherwise a 422 naming `lat`
/// with the distance.
pub fn check_position(home: Option<(f64, f64)>, at: (f64, f64), radius_m: f64) -> ApiResult<f64> {
    let Some((lat, lng)) = home else {
        return Err(ApiError::field(
            "lat",
            "该家庭未登记位置，请用家庭出示的验证码签到",
        ));
    };
    let d = crate::geo::distance_m(lat, lng, at.0, at.1);
    if d > radius_m {
        return Err(ApiError::field(
            "lat",
            format!(
                "当前位置距家庭约 {}，超出签到范围 {} 米；请到家门口签到，或请家庭出示验证码",
                human_distance(d),
                radius_m.round()
            ),
        ));
    }
    Ok(d)
}

fn human_distance(m: f64) -> String {
    if m >= 1000.0 {
        format!("{:.1} 公里", m / 1000.0)
    } else {
        format!("{} 米", m.round())
    }
}

// ---------------------------------------------------------------------------------------
// One-time codes

/// How long a code the family shows stays good.
pub const CODE_MINUTES: i64 = 30;

/// Six random digits.
pub fn new_code() -> String {
    format!("{:06}", rand::random_range(0..1_000_000u32))
}

/// The code as typed, if it is six digits (spaces and dashes ignored).
pub fn normalise_code(code: &str) -> Option<String> {
    let digits: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    (digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// What is stored: a code works for its own visit only.
pub fn code_hash(task: Uuid, code: &str) -> String {
    sha256_hex(&format!("visit-code:{task}:{code}"))
}

// ---------------------------------------------------------------------------------------
// Service hours

/// Minutes credited to one volunteer for one visit: from their check-in to their
/// check-out (or, without one, to the report's submission), never negative, at most `cap`.
pub fn credit_minutes(checkin: DateTime<Utc>, end: Option<DateTime<Utc>>, cap: i64) -> i32 {
    let minutes = end.map_or(0, |e| (e - checkin).num_minutes());
    minutes.clamp(0, cap.max(0)) as i32
}

/// A visit kind for people (hours summaries, the family's list). Grief days read as a
/// plain "关怀走访".
pub fn kind_label(kind: &str) -> &'static str {
    match kind {
        "checkin" => "定期走访",
        "birthday" => "生日慰问",
        "festival" => "节日慰问",
        "child_birthday" | "death_anniversary" | "qingming" => "关怀走访",
        FOLLOWUP_KIND => "心理回访",
        crate::oversight::HEALTH_FOLLOWUP_KIND => "健康随访",
        _ => "走访",
    }
}

/// A ledger row as the summary needs it.
#[derive(Clone, Debug)]
pub struct HoursEntry {
    pub at: DateTime<Utc>,
    pub minutes: i32,
    pub kind: String,
    pub note: String,
}

/// Totals by month (in the deployment's time zone, newest first) and by kind.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct HoursTotals {
    pub minutes: i64,
    pub entries: u64,
    /// ("2026-11", minutes, entries)
    pub by_month: Vec<(String, i64, u64)>,
    /// (kind, minutes, entries), most minutes first.
    pub by_kind: Vec<(String, i64, u64)>,
}

pub fn totals(entries: &[HoursEntry], tz: chrono_tz::Tz) -> HoursTotals {
    let mut months: BTreeMap<String, (i64, u64)> = BTreeMap::new();
    let mut kinds: BTreeMap<String, (i64, u64)> = BTreeMap::new();
    let mut t = HoursTotals::default();
    for e in entries {
        let m = i64::from(e.minutes);
        t.minutes += m;
        t.entries += 1;
        let month = e.at.with_timezone(&tz).format("%Y-%m").to_string();
        let slot = months.entry(month).or_default();
        slot.0 += m;
        slot.1 += 1;
        let slot = kinds.entry(e.kind.clone()).or_default();
        slot.0 += m;
        slot.1 += 1;
    }
    t.by_month = months
        .into_iter()
        .rev()
        .map(|(k, v)| (k, v.0, v.1))
        .collect();
    t.by_kind = kinds.into_iter().map(|(k, v)| (k, v.0, v.1)).collect();
    t.by_kind.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    t
}

/// Minutes as hours with one decimal, for people.
pub fn hours(minutes: i64) -> f64 {
    (minutes as f64 / 6.0).round() / 10.0
}

/// The volunteer's service as a CSV file for Excel: UTF-8 with a byte-order mark, Chinese
/// headers, one row per ledger entry (oldest first) and a total. No family details.
pub fn hours_csv(name: &str, entries: &[HoursEntry], tz: chrono_tz::Tz) -> Vec<u8> {
    let mut out = "\u{feff}".as_bytes().to_vec();
    {
        let mut w = csv::Writer::from_writer(&mut out);
        let total: i64 = entries.iter().map(|e| i64::from(e.minutes)).sum();
        let rows = entries.iter().map(|e| {
            [
                name.to_string(),
                e.at.with_timezone(&tz).format("%Y-%m-%d").to_string(),
                kind_label(&e.kind).to_string(),
                e.minutes.to_string(),
                format!("{:.1}", hours(i64::from(e.minutes))),
                e.note.clone(),
            ]
        });
        let header = [
            "志愿者",
            "日期",
            "服务类型",
            "时长（分钟）",
            "时长（小时）",
            "说明",
        ];
        let footer = [
            name.to_string(),
            "合计".to_string(),
            format!("{} 次", entries.len()),
            total.to_string(),
            format!("{:.1}", hours(total)),
            String::new(),
        ];
        // Writing to memory does not fail.
        let _ = w.write_record(header);
        for r in rows {
            let _ = w.write_record(r);
        }
        let _ = w.write_record(footer);
        let _ = w.flush();
    }
    out
}

// ---------------------------------------------------------------------------------------
// Names the family sees

/// A surname followed by `*` ("王*"): all the family learns of who is coming. Two-character
/// surnames (欧阳, 司马…) are kept whole when the name is longer than the surname.
pub fn surname_only(name: &str) -> String {
    const COMPOUND: [&str; 16] = [
        "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "令狐", "慕容", "司徒", "夏侯", "尉迟",
        "公孙", "长孙", "宇文", "端木", "南宫",
    ];
    let name = name.trim();
    let chars: Vec<char> = name.chars().collect();
    if chars.is_empty() {
        return String::new();
    }
    let surname: String = match COMPOUND.iter().find(|c| name.starts_with(**c)) {
        Some(c) if chars.len() > 2 => (*c).to_string(),
        _ => chars[0].to_string(),
    };
    format!("{surname}*")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn field_of<T: std::fmt::Debug>(r: ApiResult<T>) -> String {
        match r {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn state_code<T: std::fmt::Debug>(r: ApiResult<T>) -> (&'static str, String) {
        match r {
            Err(ApiError::State { code, state, .. }) => (code, state),
            other => panic!("expected a state error, got {other:?}"),
        }
    }

    fn report(json: &str) -> ApiResult<ReportFields> {
        crate::input::parse_json::<ReportInput>(json.as_bytes())?.fields()
    }

    #[test]
    fn cash_is_kept_in_fen_exactly() {
        assert_eq!(yuan_to_fen("c", 2000.0).unwrap(), 200_000);
        assert_eq!(yuan_to_fen("c", 199.5).unwrap(), 19_950);
        assert_eq!(yuan_to_fen("c", 0.29).unwrap(), 29);
        assert_eq!(yuan_to_fen("c", 19.99).unwrap(), 1_999);
        assert_eq!(yuan_to_fen("c", 0.0).unwrap(), 0);
        assert_eq!(yuan_to_fen("c", 50_000.0).unwrap(), 5_000_000);
        assert!(yuan_to_fen("c", -0.01).is_err());
        assert!(yuan_to_fen("c", -200.0).is_err());
        assert!(yuan_to_fen("c", 12.345).is_err());
        assert!(yuan_to_fen("c", 50_000.01).is_err());
        assert!(yuan_to_fen("c", 1e300).is_err());
    }

    #[test]
    fn blood_pressure_must_be_plausible() {
        assert!(blood_pressure(None, None).is_ok());
        assert!(blood_pressure(Some(128), Some(82)).is_ok());
        assert_eq!(field_of(blood_pressure(Some(400), Some(20))), "bp_systolic");
        assert_eq!(
            field_of(blood_pressure(Some(120), Some(20))),
            "bp_diastolic"
        );
        assert_eq!(field_of(blood_pressure(Some(69), Some(50))), "bp_systolic");
        assert_eq!(
            field_of(blood_pressure(Some(120), Some(151))),
            "bp_diastolic"
        );
        assert_eq!(field_of(blood_pressure(Some(90), Some(90))), "bp_systolic");
        assert_eq!(field_of(blood_pressure(Some(120), None)), "bp_diastolic");
        assert_eq!(field_of(blood_pressure(None, Some(80))), "bp_systolic");
    }

    #[test]
    fn a_report_is_checked_field_by_field() {
        let ok = report(
            r#"{"services":["condolence","健康监测","condolence","other"],
                "other_service":" 代缴电费 ","cash_yuan":2000,"goods":"米一袋、油一桶",
                "bp_systolic":135,"bp_diastolic":85,"mood":"低落",
                "risk_signs":["suicidal_thoughts","low_mood_weeks","low_mood_weeks"],
                "needs":["想有人陪着去医院复查"," 想有人陪着去医院复查 ","家里灯坏了"]}"#,
        )
        .unwrap();
        assert_eq!(
            ok.services,
            ["condolence", "health_check", "other:代缴电费"]
        );
        assert_eq!(ok.cash_fen, 200_000);
        assert_eq!(ok.mood.as_deref(), Some("low"));
        assert_eq!(ok.risk_signs, ["low_mood_weeks", "suicidal_thoughts"]);
        assert_eq!(ok.needs, ["想有人陪着去医院复查", "家里灯坏了"]);
        assert!(needs_followup(&ok.risk_signs));
        assert_eq!(service_label(&ok.services[2]), "其他：代缴电费");

        let bad = |j: &str| field_of(report(j));
        assert_eq!(bad(r#"{"services":[]}"#), "services");
        assert_eq!(bad(r#"{"services":["sing"]}"#), "services[0]");
        assert_eq!(bad(r#"{"services":["other"]}"#), "other_service");
        assert_eq!(
            bad(r#"{"services":["policy"],"other_service":"x"}"#),
            "other_service"
        );
        assert_eq!(
            bad(r#"{"services":["policy"],"cash_yuan":-5}"#),
            "cash_yuan"
        );
        assert_eq!(
            bad(r#"{"services":["policy"],"cash_yuan":"5"}"#),
            "cash_yuan"
        );
        assert_eq!(
            bad(r#"{"services":["policy"],"bp_systolic":400,"bp_diastolic":20}"#),
            "bp_systolic"
        );
        assert_eq!(bad(r#"{"services":["policy"],"mood":"so-so"}"#), "mood");
        assert_eq!(
            bad(r#"{"services":["policy"],"risk_signs":["bored"]}"#),
            "risk_signs[0]"
        );
        assert_eq!(bad(r#"{"services":["policy"],"needs":["  "]}"#), "needs[0]");
        let many: Vec<String> = (0..11).map(|i| format!("\"需求{i}\"")).collect();
        assert_eq!(
            bad(&format!(
                r#"{{"services":["policy"],"needs":[{}]}}"#,
                many.join(",")
            )),
            "needs"
        );
        assert_eq!(bad(r#"{"services":["policy"],"extra":1}"#), "extra");
    }

    #[test]
    fn low_mood_and_suicidal_thoughts_call_for_a_counsellor() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(needs_followup(&s(&["low_mood_weeks"])));
        assert!(needs_followup(&s(&["suicidal_thoughts"])));
        assert!(!needs_followup(&s(&[
            "alone_unattended",
            "health_declining"
        ])));
        assert!(!needs_followup(&[]));
        let family = Uuid::now_v7();
        let task = Uuid::now_v7();
        assert_eq!(
            followup_key(family, task),
            format!("{family}:followup:{task}")
        );
        assert!(followup_reason(&s(&["suicidal_thoughts"])).contains("有轻生念头"));
    }

    #[test]
    fn a_correction_is_checked_as_a_whole_and_its_changes_listed() {
        let before = report(
            r#"{"services":["condolence"],"cash_yuan":200,"bp_systolic":130,"bp_diastolic":80}"#,
        )
        .unwrap();
        let change = ReportChange {
            cash_yuan: Some(2000.0),
            bp_systolic: Some(125),
            ..Default::default()
        };
        let after = change.apply(&before).unwrap();
        assert_eq!(after.cash_fen, 200_000);
        let d = diff(&before, &after);
        assert_eq!(d.len(), 2);
        assert_eq!(d["cash_fen"]["before"], 20_000);
        assert_eq!(d["cash_fen"]["after"], 200_000);
        assert_eq!(d["bp_systolic"]["after"], 125);
        // A systolic value below the diastolic one kept is refused.
        let change = ReportChange {
            bp_systolic: Some(75),
            ..Default::default()
        };
        assert_eq!(field_of(change.apply(&before)), "bp_systolic");
        assert!(diff(&before, &before).is_empty());
        let change = ReportChange {
            other_service: Some("x".into()),
            ..Default::default()
        };
        assert_eq!(field_of(change.validate()), "other_service");
    }

    #[test]
    fn each_step_is_allowed_in_its_states_only() {
        use status::*;
        assert!(may_check_in(CLAIMED, false, 0).is_ok());
        assert!(may_check_in(IN_PROGRESS, false, 0).is_ok());
        assert!(may_check_in(OPEN, true, 1).is_ok());
        assert_eq!(
            state_code(may_check_in(OPEN, false, 1)),
            ("not_fully_claimed", OPEN.to_string())
        );
        assert_eq!(
            state_code(may_check_in(REPORTED, false, 0)).0,
            "already_reported"
        );
        assert_eq!(state_code(may_check_in(MISSED, false, 0)).0, "visit_missed");
        assert_eq!(
            state_code(may_check_in(CANCELLED, true, 0)).0,
            "visit_cancelled"
        );

        assert!(may_report(IN_PROGRESS).is_ok());
        assert_eq!(
            state_code(may_report(CLAIMED)),
            ("not_checked_in", CLAIMED.to_string())
        );
        assert_eq!(
            state_code(may_report(REPORTED)),
            ("already_reported", REPORTED.to_string())
        );

        assert!(may_check_out(IN_PROGRESS).is_ok());
        assert!(may_check_out(REPORTED).is_ok());
        assert_eq!(state_code(may_check_out(CLAIMED)).0, "not_checked_in");
        assert_eq!(state_code(may_check_out(CONFIRMED)).0, "already_confirmed");

        assert!(may_confirm(REPORTED).is_ok());
        assert_eq!(state_code(may_confirm(CONFIRMED)).0, "already_confirmed");
        assert_eq!(state_code(may_confirm(IN_PROGRESS)).0, "not_reported");

        assert!(may_correct(REPORTED).is_ok());
        assert!(may_correct(CONFIRMED).is_ok());
        assert_eq!(state_code(may_correct(CLAIMED)).0, "not_reported");

        let now = Utc::now();
        assert!(may_change_plans(CLAIMED, now, now + Duration::days(1)).is_ok());
        assert!(may_change_plans(OPEN, now, now + Duration::days(1)).is_ok());
        assert_eq!(
            state_code(may_change_plans(IN_PROGRESS, now, now + Duration::days(1))).0,
            "visit_under_way"
        );
        assert_eq!(
            state_code(may_change_plans(CLAIMED, now, now - Duration::hours(1))).0,
            "window_passed"
        );
    }

    #[test]
    fn check_in_is_allowed_from_two_hours_before_the_window_to_its_end() {
        let start = Utc.with_ymd_and_hms(2026, 11, 24, 1, 0, 0).unwrap();
        let end = start + Duration::days(3);
        let at = |h: i64| start + Duration::hours(h);
        assert!(within_window(at(-2), start, end, "claimed").is_ok());
        assert!(within_window(at(30), start, end, "claimed").is_ok());
        assert!(within_window(end, start, end, "claimed").is_ok());
        assert_eq!(
            state_code(within_window(at(-3), start, end, "claimed")).0,
            "too_early"
        );
        assert_eq!(
            state_code(within_window(
                end + Duration::minutes(1),
                start,
                end,
                "claimed"
            ))
            .0,
            "window_passed"
        );
    }

    #[test]
    fn check_in_by_position_must_be_at_the_door() {
        let home = Some((31.82, 117.23));
        // About 111 m north.
        let d = check_position(home, (31.821, 117.23), 500.0).unwrap();
        assert!((100.0..120.0).contains(&d), "{d}");
        // About 5 km away: refused, naming lat and saying how far.
        let err = check_position(home, (31.865, 117.23), 500.0).unwrap_err();
        match err {
            ApiError::Validation { field, message } => {
                assert_eq!(field, "lat");
                assert!(message.contains("5.0 公里"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(field_of(check_position(None, (31.8, 117.2), 500.0)), "lat");
    }

    #[test]
    fn codes_are_six_digits_and_bound_to_their_visit() {
        for _ in 0..100 {
            let c = new_code();
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
        assert_eq!(normalise_code(" 123 456 ").as_deref(), Some("123456"));
        assert_eq!(normalise_code("123-456").as_deref(), Some("123456"));
        assert_eq!(normalise_code("12345"), None);
        assert_eq!(normalise_code("12345a"), None);
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_ne!(code_hash(a, "123456"), code_hash(b, "123456"));
        assert_eq!(code_hash(a, "123456"), code_hash(a, "123456"));
    }

    #[test]
    fn credit_is_the_duration_capped() {
        let t = Utc.with_ymd_and_hms(2026, 11, 24, 1, 0, 0).unwrap();
        assert_eq!(credit_minutes(t, Some(t + Duration::minutes(75)), 240), 75);
        assert_eq!(credit_minutes(t, Some(t + Duration::hours(9)), 240), 240);
        assert_eq!(credit_minutes(t, Some(t - Duration::minutes(5)), 240), 0);
        assert_eq!(credit_minutes(t, None, 240), 0);
    }

    #[test]
    fn totals_by_month_and_kind() {
        let tz: chrono_tz::Tz = "Asia/Shanghai".parse().unwrap();
        let e = |y, m, d, h, minutes, kind: &str| HoursEntry {
            at: Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap(),
            minutes,
            kind: kind.into(),
            note: String::new(),
        };
        // 2026-10-31 17:00 UTC is already November in Beijing.
        let entries = [
            e(2026, 10, 31, 17, 60, "checkin"),
            e(2026, 10, 10, 2, 90, "festival"),
            e(2026, 11, 20, 2, 30, "checkin"),
        ];
        let t = totals(&entries, tz);
        assert_eq!((t.minutes, t.entries), (180, 3));
        assert_eq!(
            t.by_month,
            [
                ("2026-11".to_string(), 90, 2),
                ("2026-10".to_string(), 90, 1)
            ]
        );
        assert_eq!(t.by_kind[0], ("checkin".to_string(), 90, 2));
        assert_eq!(t.by_kind[1], ("festival".to_string(), 90, 1));
        assert_eq!(hours(90), 1.5);
        assert_eq!(hours(100), 1.7);

        let csv = String::from_utf8(hours_csv("王芳", &entries, tz)).unwrap();
        assert!(csv.starts_with('\u{feff}'));
        let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[0].starts_with("志愿者,日期,服务类型"));
        assert!(lines[1].contains("2026-11-01") && lines[1].contains("定期走访"));
        assert!(lines[4].contains("合计") && lines[4].contains(",180,3.0,"));
    }

    #[test]
    fn the_family_sees_a_surname_only() {
        assert_eq!(surname_only("王芳"), "王*");
        assert_eq!(surname_only("王小明"), "王*");
        assert_eq!(surname_only("欧阳修"), "欧阳*");
        assert_eq!(surname_only("欧阳"), "欧*");
        assert_eq!(surname_only("李"), "李*");
        assert_eq!(surname_only(""), "");
    }
}
