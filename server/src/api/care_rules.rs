//! What one family is owed: its category's default rules, the family's own changes to
//! them (stored on the family as `care_overrides`), and the result the planner uses.
//! Saving changes re-plans the family at once.

use std::sync::Arc;

use chrono::Utc;
use entity::{Skill, family, family_member};
use poem_openapi::{Enum, Object, OpenApi, param::Path, payload::Json};
use scheduler::{
    calendar::Festival,
    generate::elderly_parent,
    rules::{
        Channel, PeriodUnit, Rule, RuleKind, RuleOverride, TimeOfDay, default_rules_with,
        effective_rules,
    },
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{
    Tag, families,
    planning::{PlanChannel, PlanTimeOfDay},
};
use crate::{
    app::AppState,
    audit,
    auth::Manager,
    error::{ApiError, ApiResult},
    input::{Input, Validate},
};

/// More would mean the category is wrong, not the family.
const MAX_OVERRIDES: usize = 30;

pub struct Api(pub Arc<AppState>);

/// What a rule is about.
#[derive(Enum, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RuleKindCode {
    /// 例行走访或电话问候：每 `every` 个 `unit` 一次
    Checkin,
    /// 每位在世成员的生日
    MemberBirthday,
    /// 节日慰问（`festival`）
    Festival,
    /// 已故子女的生日（关怀日）
    ChildBirthday,
    /// 子女忌日（关怀日）
    DeathAnniversary,
    /// 清明关怀
    Qingming,
}

/// The unit of a check-in period.
#[derive(Enum, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum PeriodUnitCode {
    Day,
    Week,
    Month,
}

/// One thing the family is owed.
#[derive(Object, Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    /// Stable name, e.g. `checkin-visit`, `festival-春节`; letters, digits and `-`.
    pub key: String,
    pub kind: RuleKindCode,
    /// For `checkin`: how many units between contacts.
    pub every: Option<u32>,
    /// For `checkin`.
    pub unit: Option<PeriodUnitCode>,
    /// For `festival`: 春节, 中秋, 重阳, 端午…
    pub festival: Option<String>,
    pub channel: PlanChannel,
    /// Days before the occasion that the visit is published and its window opens.
    pub lead_days: u32,
    /// Length of the window in days.
    pub window_days: u32,
    pub preferred_time: Option<PlanTimeOfDay>,
    #[serde(default)]
    pub required_skills: Vec<Skill>,
    pub volunteers_needed: u8,
    /// Pre-assigned to the family's 一帮一 cadre instead of open for volunteers.
    #[serde(default)]
    pub assign_to_cadre: bool,
}

/// A change to the category's defaults.
#[derive(Enum, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum OverrideOp {
    /// Replace the default rule with the same key.
    Replace,
    /// Drop the default rule `key`.
    Disable,
    /// Add a rule the category does not have.
    Add,
}

#[derive(Object, Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct OverrideDoc {
    pub op: OverrideOp,
    /// For `disable`: the key of the rule to drop.
    pub key: Option<String>,
    /// For `replace` and `add`.
    pub rule: Option<RuleDoc>,
}

/// The family's changes, all of them (what is not listed is dropped).
#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RulesChange {
    pub overrides: Vec<OverrideDoc>,
}

impl Validate for RulesChange {
    fn validate(&self) -> Result<(), ApiError> {
        if self.overrides.len() > MAX_OVERRIDES {
            return Err(ApiError::field(
                "overrides",
                format!("最多 {MAX_OVERRIDES} 项调整"),
            ));
        }
        for (i, o) in self.overrides.iter().enumerate() {
            to_override(i, o)?;
        }
        Ok(())
    }
}

#[derive(Object)]
pub struct FamilyRules {
    pub family_id: Uuid,
    /// The defaults of the family's category (and age) in this deployment.
    pub defaults: Vec<RuleDoc>,
    /// The family's own changes.
    pub overrides: Vec<OverrideDoc>,
    /// What the planner uses: the defaults with the changes applied.
    pub effective: Vec<RuleDoc>,
}

fn rule_doc(r: &Rule) -> RuleDoc {
    let (kind, every, unit, festival) = match r.kind {
        RuleKind::Checkin { every, unit } => (
            RuleKindCode::Checkin,
            Some(every),
            Some(match unit {
                PeriodUnit::Day => PeriodUnitCode::Day,
                PeriodUnit::Week => PeriodUnitCode::Week,
                PeriodUnit::Month => PeriodUnitCode::Month,
            }),
            None,
        ),
        RuleKind::MemberBirthday => (RuleKindCode::MemberBirthday, None, None, None),
        RuleKind::Festival(f) => (
            RuleKindCode::Festival,
            None,
            None,
            Some(f.chinese_name().to_string()),
        ),
        RuleKind::ChildBirthday => (RuleKindCode::ChildBirthday, None, None, None),
        RuleKind::DeathAnniversary => (RuleKindCode::DeathAnniversary, None, None, None),
        RuleKind::Qingming => (RuleKindCode::Qingming, None, None, None),
    };
    RuleDoc {
        key: r.key.clone(),
        kind,
        every,
        unit,
        festival,
        channel: r.channel.into(),
        lead_days: r.lead_days,
        window_days: r.window_days,
        preferred_time: r.preferred_time.map(Into::into),
        required_skills: r.required_skills.clone(),
        volunteers_needed: r.volunteers_needed,
        assign_to_cadre: r.assign_to_cadre,
    }
}

fn override_doc(o: &RuleOverride) -> OverrideDoc {
    match o {
        RuleOverride::Replace(r) => OverrideDoc {
            op: OverrideOp::Replace,
            key: Some(r.key.clone()),
            rule: Some(rule_doc(r)),
        },
        RuleOverride::Disable { key } => OverrideDoc {
            op: OverrideOp::Disable,
            key: Some(key.clone()),
            rule: None,
        },
        RuleOverride::Add(r) => OverrideDoc {
            op: OverrideOp::Add,
            key: Some(r.key.clone()),
            rule: Some(rule_doc(r)),
        },
    }
}

/// A rule from its document, checked as the planner needs; errors name
/// `overrides[i].rule.<field>`.
fn to_rule(i: usize, d: &RuleDoc) -> Result<Rule, ApiError> {
    let field = |f: &str| format!("overrides[{i}].rule.{f}");
    let kind = match d.kind {
        RuleKindCode::Checkin => {
            let every = d
                .every
                .ok_or_else(|| ApiError::field(field("every"), "例行走访需填写间隔"))?;
            let unit = match d.unit {
                Some(PeriodUnitCode::Day) => PeriodUnit::Day,
                Some(PeriodUnitCode::Week) => PeriodUnit::Week,
                Some(PeriodUnitCode::Month) => PeriodUnit::Month,
                None => return Err(ApiError::field(field("unit"), "例行走访需填写间隔单位")),
            };
            RuleKind::Checkin { every, unit }
        }
        RuleKindCode::MemberBirthday => RuleKind::MemberBirthday,
        RuleKindCode::Festival => {
            let name = d.festival.as_deref().unwrap_or_default();
            let f = Festival::parse(name.trim())
                .ok_or_else(|| ApiError::field(field("festival"), format!("未知节日 {name:?}")))?;
            RuleKind::Festival(f)
        }
        RuleKindCode::ChildBirthday => RuleKind::ChildBirthday,
        RuleKindCode::DeathAnniversary => RuleKind::DeathAnniversary,
        RuleKindCode::Qingming => RuleKind::Qingming,
    };
    let rule = Rule {
        key: d.key.trim().to_string(),
        kind,
        channel: match d.channel {
            PlanChannel::HomeVisit => Channel::HomeVisit,
            PlanChannel::PhoneCall => Channel::PhoneCall,
        },
        lead_days: d.lead_days,
        window_days: d.window_days,
        preferred_time: d.preferred_time.map(|t| match t {
            PlanTimeOfDay::Morning => TimeOfDay::Morning,
            PlanTimeOfDay::Afternoon => TimeOfDay::Afternoon,
            PlanTimeOfDay::Evening => TimeOfDay::Evening,
        }),
        required_skills: d.required_skills.clone(),
        volunteers_needed: d.volunteers_needed,
        assign_to_cadre: d.assign_to_cadre,
    };
    rule.validate().map_err(|e| {
        let f = match e.field {
            "kind.every" => "every",
            "kind" => "kind",
            other => other,
        };
        ApiError::field(field(f), e.problem)
    })?;
    if !(1..=4).contains(&rule.volunteers_needed) {
        return Err(ApiError::field(
            field("volunteers_needed"),
            "每次走访需 1 到 4 名志愿者",
        ));
    }
    Ok(rule)
}

fn to_override(i: usize, o: &OverrideDoc) -> Result<RuleOverride, ApiError> {
    let rule = || {
        o.rule
            .as_ref()
            .ok_or_else(|| ApiError::field(format!("overrides[{i}].rule"), "请填写规则"))
            .and_then(|d| to_rule(i, d))
    };
    Ok(match o.op {
        OverrideOp::Disable => {
            let key = o
                .key
                .as_deref()
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .ok_or_else(|| {
                    ApiError::field(format!("overrides[{i}].key"), "请填写要停用的规则")
                })?;
            RuleOverride::Disable { key: key.into() }
        }
        OverrideOp::Replace => RuleOverride::Replace(rule()?),
        OverrideOp::Add => RuleOverride::Add(rule()?),
    })
}

/// The family's defaults (for its category and, as the planner decides, whether a parent
/// is 60 or older), overrides and effective rules.
async fn family_rules(state: &AppState, f: &family::Model) -> ApiResult<FamilyRules> {
    let members = family_member::Entity::find()
        .filter(family_member::Column::FamilyId.eq(f.id))
        .all(&state.db)
        .await?;
    let today = state.today();
    let elderly = members.iter().any(|m| {
        let birth = m.birth_year.map(|y| {
            let month = m
                .birth_month
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(1);
            let day = m.birth_day.and_then(|v| u32::try_from(v).ok()).unwrap_or(1);
            (y, month, day)
        });
        elderly_parent(m.relation, m.deceased, birth, today)
    });
    let defaults = default_rules_with(f.category, elderly, &state.festivals);
    let overrides: Vec<RuleOverride> = f
        .care_overrides
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let effective = effective_rules(&defaults, &overrides);
    Ok(FamilyRules {
        family_id: f.id,
        defaults: defaults.iter().map(rule_doc).collect(),
        overrides: overrides.iter().map(override_doc).collect(),
        effective: effective.iter().map(rule_doc).collect(),
    })
}

#[OpenApi(tag = "Tag::Families")]
impl Api {
    /// The family's care rules: the category's defaults, the family's changes, and the
    /// result the planning uses.
    #[oai(path = "/families/:id/rules", method = "get")]
    async fn get_rules(&self, auth: Manager, id: Path<Uuid>) -> ApiResult<Json<FamilyRules>> {
        let scope = auth.0.manager_scope()?;
        let f = families::find_in_scope(&self.0.db, &scope, id.0).await?;
        Ok(Json(family_rules(&self.0, &f).await?))
    }

    /// Change what the family is owed: replace or drop default rules, add others (e.g.
    /// the grief-day rules for a family of another category that lost a child). The list
    /// replaces the earlier changes; an empty list returns to the defaults. The family's
    /// visits are re-planned at once.
    #[oai(path = "/families/:id/rules", method = "put")]
    async fn put_rules(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        body: Input<RulesChange>,
    ) -> ApiResult<Json<FamilyRules>> {
        let scope = auth.0.manager_scope()?;
        let state = &self.0;
        let f = families::find_in_scope(&state.db, &scope, id.0).await?;
        let overrides: Vec<RuleOverride> = body
            .0
            .overrides
            .iter()
            .enumerate()
            .map(|(i, o)| to_override(i, o))
            .collect::<Result<_, _>>()?;
        // Keys must name rules that exist (replace, disable) or do not (add): a typo would
        // otherwise silently do nothing.
        let defaults = default_rules_with(f.category, true, &state.festivals);
        for (i, o) in overrides.iter().enumerate() {
            let (key, must_exist) = match o {
                RuleOverride::Replace(r) => (&r.key, true),
                RuleOverride::Disable { key } => (key, true),
                RuleOverride::Add(r) => (&r.key, false),
            };
            let exists = defaults.iter().any(|d| &d.key == key);
            if exists != must_exist {
                let (field, message) = match o {
                    RuleOverride::Disable { .. } => ("key", format!("没有名为 {key} 的默认规则")),
                    RuleOverride::Replace(_) => {
                        ("rule.key", format!("没有名为 {key} 的默认规则，请用 add"))
                    }
                    RuleOverride::Add(_) => (
                        "rule.key",
                        format!("已有名为 {key} 的默认规则，请用 replace"),
                    ),
                };
                return Err(ApiError::field(format!("overrides[{i}].{field}"), message));
            }
        }
        let stored = (!overrides.is_empty())
            .then(|| serde_json::to_value(&overrides).expect("rules serialise"));
        let txn = state.db.begin().await?;
        let mut row: family::ActiveModel = f.into();
        row.care_overrides = Set(stored);
        row.updated_at = Set(Utc::now());
        let f = row.update(&txn).await?;
        audit::record(
            &txn,
            Some(auth.0.user_id),
            "update_care_rules",
            "family",
            Some(f.id),
            json!({"overrides": overrides.len()}),
        )
        .await?;
        txn.commit().await?;
        crate::jobs::replan(state, f.id).await;
        Ok(Json(family_rules(state, &f).await?))
    }
}
