//! Care rules — what a family is owed — and compliance with the contact quotas.
//!
//! A family's rules are the defaults of its category ([`default_rules`]) with the family's
//! own overrides applied ([`effective_rules`]). Rules are plain data with serde so the
//! database can keep overrides as JSON; [`crate::plan`] expands them into visits.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{Datelike, Days, NaiveDate, Weekday};
use entity::{FamilyCategory, Skill};
use serde::{Deserialize, Serialize};

use crate::calendar::Festival;

/// Longest allowed `lead_days`: a visit is never published more than two months ahead.
pub const MAX_LEAD_DAYS: u32 = 60;
/// Longest allowed `window_days` (a quarter): longer windows stop meaning anything.
pub const MAX_WINDOW_DAYS: u32 = 92;
/// Longest allowed rule key, so that occurrence keys stay well inside the 160 characters of
/// `visit_task.unique_key`.
pub const MAX_KEY_CHARS: usize = 40;

/// Part of the day a family would rather be visited or called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeOfDay {
    Morning,
    Afternoon,
    Evening,
}

/// How the contact is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// 入户走访: face to face, at the family's home.
    HomeVisit,
    /// 电话问候.
    PhoneCall,
}

impl Channel {
    pub fn code(self) -> &'static str {
        match self {
            Channel::HomeVisit => "home_visit",
            Channel::PhoneCall => "phone_call",
        }
    }
}

/// The unit of a check-in period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodUnit {
    Day,
    Week,
    Month,
}

/// What a rule is about, which decides the dates it falls on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// Routine contact once every `every` days, weeks or months (定期走访 / 电话问候).
    Checkin { every: u32, unit: PeriodUnit },
    /// The birthday of each living member, in the calendar that member keeps.
    MemberBirthday,
    /// A festival visit (节日慰问).
    Festival(#[serde(with = "festival_serde")] Festival),
    /// The deceased child's birthday (bereaved families only): gentle.
    ChildBirthday,
    /// The anniversary of the child's death (忌日, bereaved families only): gentle.
    DeathAnniversary,
    /// Gentle contact around 清明 (bereaved families only).
    Qingming,
}

impl RuleKind {
    /// Grief days: the child's birthday, the death anniversary and 清明. Always gentle,
    /// always with counselling, never merged with a festive visit.
    pub fn is_grief_day(self) -> bool {
        matches!(
            self,
            RuleKind::ChildBirthday | RuleKind::DeathAnniversary | RuleKind::Qingming
        )
    }

    /// Festive occasions: festivals and the birthdays of living members.
    pub fn is_festive(self) -> bool {
        matches!(self, RuleKind::Festival(_) | RuleKind::MemberBirthday)
    }
}

/// Festivals are stored by their Chinese name (`"中秋"`); the ASCII name is accepted too.
pub(crate) mod festival_serde {
    use crate::calendar::Festival;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(f: &Festival, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(f.chinese_name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Festival, D::Error> {
        let s = String::deserialize(d)?;
        Festival::parse(&s).ok_or_else(|| D::Error::custom(format!("unknown festival {s:?}")))
    }
}

/// One thing a family is owed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Stable name ("checkin-visit", "birthday", "festival-春节"). It is part of every
    /// occurrence key, so it never depends on a database id and must not change.
    pub key: String,
    pub kind: RuleKind,
    pub channel: Channel,
    /// Days before the occasion that the window opens (and the visit is published).
    pub lead_days: u32,
    /// Length of the window in days. See [`crate::plan`] for the window convention.
    pub window_days: u32,
    #[serde(default)]
    pub preferred_time: Option<TimeOfDay>,
    #[serde(default)]
    pub required_skills: Vec<Skill>,
    pub volunteers_needed: u8,
    /// Pre-assigned to the family's 一帮一 cadre instead of open for claiming.
    #[serde(default)]
    pub assign_to_cadre: bool,
}

/// A rule that cannot be used, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {key:?}: {field} {problem}")]
pub struct RuleError {
    pub key: String,
    pub field: &'static str,
    pub problem: String,
}

impl Rule {
    /// Checks the limits the planner relies on; the error names the offending field.
    pub fn validate(&self) -> Result<(), RuleError> {
        let fail = |field: &'static str, problem: String| {
            Err(RuleError {
                key: self.key.clone(),
                field,
                problem,
            })
        };
        if self.key.is_empty() {
            return fail("key", "must not be empty".into());
        }
        if self.key.chars().count() > MAX_KEY_CHARS {
            return fail("key", format!("must be at most {MAX_KEY_CHARS} characters"));
        }
        // ':' and '+' separate the parts of occurrence keys.
        if self
            .key
            .chars()
            .any(|c| c == ':' || c == '+' || c.is_whitespace() || c.is_control())
        {
            return fail(
                "key",
                "must not contain ':', '+', spaces or control characters".into(),
            );
        }
        if let RuleKind::Checkin { every, unit } = self.kind {
            let max = match unit {
                PeriodUnit::Day => 366,
                PeriodUnit::Week => 52,
                PeriodUnit::Month => 12,
            };
            if !(1..=max).contains(&every) {
                return fail("kind.every", format!("must be between 1 and {max}"));
            }
        }
        if let RuleKind::Festival(Festival::Qingming) = self.kind {
            return fail(
                "kind",
                "清明 is not a festive occasion: use the gentle `qingming` rule".into(),
            );
        }
        if !(1..=MAX_WINDOW_DAYS).contains(&self.window_days) {
            return fail(
                "window_days",
                format!("must be between 1 and {MAX_WINDOW_DAYS}"),
            );
        }
        if self.lead_days > MAX_LEAD_DAYS {
            return fail("lead_days", format!("must be at most {MAX_LEAD_DAYS}"));
        }
        // An occasion's own day must lie inside its window.
        let dated = !matches!(self.kind, RuleKind::Checkin { .. });
        if dated && self.window_days <= self.lead_days {
            return fail(
                "window_days",
                format!(
                    "must be greater than lead_days ({}) so the window includes the day itself",
                    self.lead_days
                ),
            );
        }
        if !(1..=4).contains(&self.volunteers_needed) {
            return fail("volunteers_needed", "must be between 1 and 4".into());
        }
        if self.channel == Channel::PhoneCall && self.volunteers_needed != 1 {
            return fail("volunteers_needed", "must be 1 for a phone call".into());
        }
        if self.kind.is_grief_day() && !self.required_skills.contains(&Skill::Counselling) {
            return fail(
                "required_skills",
                "must include counselling: grief days are for a trained counsellor".into(),
            );
        }
        Ok(())
    }
}

/// A family's change to its category's defaults, kept as JSON, e.g.
/// `{"op":"disable","key":"festival-春节"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RuleOverride {
    /// Replace the rule with the same key, where it stands (added if there is none).
    Replace(Rule),
    /// Drop the rule with this key (no effect if there is none).
    Disable { key: String },
    /// Add a rule at the end (replacing one with the same key, so keys stay unique).
    Add(Rule),
}

/// The defaults with the overrides applied in order. Keys stay unique: where `defaults`
/// repeats a key, the first rule wins.
pub fn effective_rules(defaults: &[Rule], overrides: &[RuleOverride]) -> Vec<Rule> {
    let mut rules: Vec<Rule> = Vec::with_capacity(defaults.len() + overrides.len());
    for rule in defaults {
        if !rules.iter().any(|r| r.key == rule.key) {
            rules.push(rule.clone());
        }
    }
    for o in overrides {
        match o {
            RuleOverride::Replace(rule) => match rules.iter_mut().find(|r| r.key == rule.key) {
                Some(slot) => *slot = rule.clone(),
                None => rules.push(rule.clone()),
            },
            RuleOverride::Disable { key } => rules.retain(|r| &r.key != key),
            RuleOverride::Add(rule) => {
                rules.retain(|r| r.key != rule.key);
                rules.push(rule.clone());
            }
        }
    }
    rules
}

/// A rule with the common defaults: one volunteer, no skill, no preferred time, open for
/// claiming. Callers change the rest with struct update syntax.
fn rule(key: &str, kind: RuleKind, channel: Channel, lead_days: u32, window_days: u32) -> Rule {
    Rule {
        key: key.to_string(),
        kind,
        channel,
        lead_days,
        window_days,
        preferred_time: None,
        required_skills: Vec::new(),
        volunteers_needed: 1,
        assign_to_cadre: false,
    }
}

/// The festivals a deployment visits families for: `all` for every family, `elderly` also
/// for families with a parent aged 60 or older. Associations differ (some add 端午 or
/// 元宵, a few drop 中秋 for 国庆), so the set comes from configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FestivalSet {
    #[serde(with = "festival_list_serde")]
    pub all: Vec<Festival>,
    #[serde(with = "festival_list_serde")]
    pub elderly: Vec<Festival>,
}

impl Default for FestivalSet {
    /// 两节 (春节, 中秋) for everyone, 重阳 for the elderly.
    fn default() -> Self {
        FestivalSet {
            all: vec![Festival::SpringFestival, Festival::MidAutumn],
            elderly: vec![Festival::DoubleNinth],
        }
    }
}

impl FestivalSet {
    /// Reads festival names as written in configuration (`"春节"`, or the ASCII name). The
    /// error names the bad entry; 清明 is refused (it is a day of mourning, never a festive
    /// visit: bereaved families get the gentle `qingming` rule).
    pub fn parse(all: &[String], elderly: &[String]) -> Result<Self, String> {
        let read = |field: &str, names: &[String]| -> Result<Vec<Festival>, String> {
            let mut out: Vec<Festival> = Vec::new();
            for (i, name) in names.iter().enumerate() {
                let f = Festival::parse(name.trim())
                    .ok_or_else(|| format!("{field}[{i}]: unknown festival {name:?}"))?;
                if f == Festival::Qingming {
                    return Err(format!(
                        "{field}[{i}]: 清明 is not a festive occasion (bereaved families get a gentle call by rule)"
                    ));
                }
                if !out.contains(&f) {
                    out.push(f);
                }
            }
            Ok(out)
        };
        let all = read("festivals", all)?;
        let elderly = read("elderly_festivals", elderly)?
            .into_iter()
            .filter(|f| !all.contains(f))
            .collect();
        Ok(FestivalSet { all, elderly })
    }
}

mod festival_list_serde {
    use crate::calendar::Festival;
    use serde::{Deserialize, Deserializer, Serializer, de::Error, ser::SerializeSeq};

    pub fn serialize<S: Serializer>(list: &[Festival], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(list.len()))?;
        for f in list {
            seq.serialize_element(f.chinese_name())?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Festival>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| {
                Festival::parse(s)
                    .ok_or_else(|| D::Error::custom(format!("unknown festival {s:?}")))
            })
            .collect()
    }
}

/// The visit for one festival: its lead time and who goes. 春节 and 中秋 (两节) take two
/// volunteers, who carry the gifts and witness the 慰问金, and 春节 starts ten days ahead
/// (年前慰问); 重阳 brings a health volunteer (blood pressure); the rest take one volunteer
/// in the three days before.
fn festival_rule(festival: Festival) -> Rule {
    let (lead_days, volunteers_needed, required_skills) = match festival {
        Festival::SpringFestival => (10, 2, Vec::new()),
        Festival::MidAutumn => (5, 2, Vec::new()),
        Festival::DoubleNinth => (3, 1, vec![Skill::Health]),
        _ => (3, 1, Vec::new()),
    };
    Rule {
        volunteers_needed,
        required_skills,
        // Lands on the festival or in the days before it.
        ..rule(
            &format!("festival-{}", festival.chinese_name()),
            RuleKind::Festival(festival),
            Channel::HomeVisit,
            lead_days,
            lead_days + 1,
        )
    }
}

/// The rules a family of `category` is owed by default with the standard festivals
/// ([`FestivalSet::default`]); `elderly` = a parent is 60 or older.
pub fn default_rules(category: FamilyCategory, elderly: bool) -> Vec<Rule> {
    default_rules_with(category, elderly, &FestivalSet::default())
}

/// The rules a family of `category` is owed by default.
///
/// Every category: a weekly phone call and a monthly home visit by the paired cadre
/// (contact at least weekly, face to face at least monthly, which also gives the four home
/// visits a year), a visit on each living member's birthday, and the deployment's festival
/// visits ([`festival_rule`]); `elderly` families (a parent aged 60 or older) also those of
/// `festivals.elderly`. Bereaved (失独) families also get [`grief_rules`].
pub fn default_rules_with(
    category: FamilyCategory,
    elderly: bool,
    festivals: &FestivalSet,
) -> Vec<Rule> {
    use Channel::{HomeVisit, PhoneCall};
    let checkin = |key, every, unit, channel, window_days| Rule {
        assign_to_cadre: true,
        ..rule(
            key,
            RuleKind::Checkin { every, unit },
            channel,
            0,
            window_days,
        )
    };
    let mut rules = vec![
        checkin("checkin-call", 1, PeriodUnit::Week, PhoneCall, 7),
        // The window is clipped to the end of the month-long period.
        checkin("checkin-visit", 1, PeriodUnit::Month, HomeVisit, 31),
        // On the birthday or in the three days before it.
        rule("birthday", RuleKind::MemberBirthday, HomeVisit, 3, 4),
    ];
    rules.extend(festivals.all.iter().map(|&f| festival_rule(f)));
    if elderly {
        rules.extend(festivals.elderly.iter().map(|&f| festival_rule(f)));
    }
    if category == FamilyCategory::Bereaved {
        rules.extend(grief_rules());
    }
    rules
}

/// The grief-day rules of a bereaved family: gentle contact by one counsellor on the
/// child's birthday and on the death anniversary (home visits, on the day or in the two
/// days before), and around 清明 (a phone call, three days either side: many families go to
/// the grave that day and a visit would intrude). Exposed so a family of another category
/// that has lost a child can be given them as overrides.
pub fn grief_rules() -> Vec<Rule> {
    use Channel::{HomeVisit, PhoneCall};
    let gentle = |key, kind, channel, lead_days, window_days| Rule {
        required_skills: vec![Skill::Counselling],
        ..rule(key, kind, channel, lead_days, window_days)
    };
    vec![
        gentle("child-birthday", RuleKind::ChildBirthday, HomeVisit, 2, 3),
        gentle(
            "death-anniversary",
            RuleKind::DeathAnniversary,
            HomeVisit,
            2,
            3,
        ),
        gentle("qingming", RuleKind::Qingming, PhoneCall, 3, 7),
    ]
}

// ---------------------------------------------------------------------------------------
// Compliance

/// A contact quota of township practice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quota {
    /// At least one contact (a phone call or a home visit) in every calendar week
    /// (Monday–Sunday) that lies wholly inside the period.
    WeeklyContact,
    /// At least one home visit in every calendar month that lies wholly inside the period.
    MonthlyFaceToFace,
    /// At least this many home visits (on different days) a year, prorated to the length of
    /// the period and rounded to the nearest whole visit.
    HomeVisitsPerYear(u32),
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quota::WeeklyContact => f.write_str("每周联系"),
            Quota::MonthlyFaceToFace => f.write_str("每月见面"),
            Quota::HomeVisitsPerYear(n) => write!(f, "每年入户{n}次"),
        }
    }
}

/// The quotas of township practice: weekly contact, monthly face to face, four home visits
/// a year.
pub fn default_quotas() -> Vec<Quota> {
    vec![
        Quota::WeeklyContact,
        Quota::MonthlyFaceToFace,
        Quota::HomeVisitsPerYear(4),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaResult {
    pub quota: Quota,
    /// Weeks, months or visits required in the period.
    pub required: u32,
    /// Of those, how many were done.
    pub done: u32,
    pub met: bool,
}

/// Compliance of a family's completed contacts with each quota over `period` (both ends
/// included). A home visit also counts as contact for [`Quota::WeeklyContact`]. Contacts
/// outside the period are ignored; several contacts on one day count once.
pub fn compliance(
    contacts: &[(NaiveDate, Channel)],
    quotas: &[Quota],
    period: (NaiveDate, NaiveDate),
) -> Vec<QuotaResult> {
    let (start, end) = period;
    let in_period = |d: &NaiveDate| (start..=end).contains(d);
    let any_days: BTreeSet<NaiveDate> =
        contacts.iter().map(|&(d, _)| d).filter(in_period).collect();
    let visit_days: BTreeSet<NaiveDate> = contacts
        .iter()
        .filter(|&&(_, c)| c == Channel::HomeVisit)
        .map(|&(d, _)| d)
        .filter(in_period)
        .collect();
    let has_day_in =
        |days: &BTreeSet<NaiveDate>, a: NaiveDate, b: NaiveDate| days.range(a..=b).next().is_some();

    quotas
        .iter()
        .map(|&quota| {
            let (required, done) = match quota {
                Quota::WeeklyContact => {
                    let weeks = whole_weeks(start, end);
                    let done = weeks
                        .iter()
                        .filter(|&&(a, b)| has_day_in(&any_days, a, b))
                        .count();
                    (weeks.len() as u32, done as u32)
                }
                Quota::MonthlyFaceToFace => {
                    let months = whole_months(start, end);
                    let done = months
                        .iter()
                        .filter(|&&(a, b)| has_day_in(&visit_days, a, b))
                        .count();
                    (months.len() as u32, done as u32)
                }
                Quota::HomeVisitsPerYear(per_year) => {
                    let days = if end >= start {
                        (end - start).num_days() as u64 + 1
                    } else {
                        0
                    };
                    // Round half up: a quarter (90–92 days) of 4 a year is 1.
                    let required = (u64::from(per_year) * days * 2 + 365) / (2 * 365);
                    (required as u32, visit_days.len() as u32)
                }
            };
            QuotaResult {
                quota,
                required,
                done,
                met: done >= required,
            }
        })
        .collect()
}

/// The Monday–Sunday weeks wholly inside [start, end].
fn whole_weeks(start: NaiveDate, end: NaiveDate) -> Vec<(NaiveDate, NaiveDate)> {
    let mut weeks = Vec::new();
    let offset = (7 - start.weekday().num_days_from_monday()) % 7;
    let mut monday = start.checked_add_days(Days::new(u64::from(offset)));
    while let Some(m) = monday {
        match m.checked_add_days(Days::new(6)) {
            Some(sunday) if sunday <= end => weeks.push((m, sunday)),
            _ => break,
        }
        monday = m.checked_add_days(Days::new(7));
    }
    debug_assert!(weeks.iter().all(|(m, _)| m.weekday() == Weekday::Mon));
    weeks
}

/// The calendar months wholly inside [start, end].
fn whole_months(start: NaiveDate, end: NaiveDate) -> Vec<(NaiveDate, NaiveDate)> {
    let mut months = Vec::new();
    let mut first = if start.day() == 1 {
        Some(start)
    } else {
        first_of_next_month(start)
    };
    while let Some(f) = first {
        let next = first_of_next_month(f);
        match next.and_then(|n| n.pred_opt()) {
            Some(last) if last <= end => months.push((f, last)),
            _ => break,
        }
        first = next;
    }
    months
}

fn first_of_next_month(d: NaiveDate) -> Option<NaiveDate> {
    let (y, m) = if d.month() == 12 {
        (d.year() + 1, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn keys(rules: &[Rule]) -> Vec<&str> {
        rules.iter().map(|r| r.key.as_str()).collect()
    }

    #[test]
    fn defaults_are_valid_for_every_category() {
        for &category in FamilyCategory::ALL {
            for elderly in [false, true] {
                for r in default_rules(category, elderly) {
                    r.validate().unwrap();
                }
            }
        }
        for r in grief_rules() {
            r.validate().unwrap();
        }
    }

    #[test]
    fn a_deployment_chooses_its_festivals() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let set = FestivalSet::parse(
            &names(&["春节", "DragonBoat", "春节"]),
            &names(&["重阳", "端午"]),
        )
        .unwrap();
        assert_eq!(set.all, [Festival::SpringFestival, Festival::DragonBoat]);
        // 端午 is already everyone's.
        assert_eq!(set.elderly, [Festival::DoubleNinth]);
        let young = default_rules_with(FamilyCategory::DisabledChild, false, &set);
        assert_eq!(
            keys(&young)[3..],
            ["festival-春节", "festival-端午"],
            "中秋 dropped, 端午 added"
        );
        let old = default_rules_with(FamilyCategory::DisabledChild, true, &set);
        let double_ninth = old.iter().find(|r| r.key == "festival-重阳").unwrap();
        assert_eq!(double_ninth.required_skills, [Skill::Health]);
        for r in &old {
            r.validate().unwrap();
        }

        let err = FestivalSet::parse(&names(&["春节", "圣诞"]), &[]).unwrap_err();
        assert!(
            err.contains("festivals[1]") && err.contains("圣诞"),
            "{err}"
        );
        let err = FestivalSet::parse(&[], &names(&["清明"])).unwrap_err();
        assert!(
            err.contains("elderly_festivals[0]") && err.contains("清明"),
            "{err}"
        );
        // Nothing at all is a valid choice: routine and birthday visits remain.
        let none = FestivalSet::parse(&[], &[]).unwrap();
        assert_eq!(
            keys(&default_rules_with(FamilyCategory::Hardship, true, &none)).len(),
            3
        );
    }

    #[test]
    fn defaults_per_category() {
        let base = [
            "checkin-call",
            "checkin-visit",
            "birthday",
            "festival-春节",
            "festival-中秋",
        ];
        assert_eq!(
            keys(&default_rules(FamilyCategory::DaughtersOnly, false)),
            base
        );
        let elderly = default_rules(FamilyCategory::EmptyNest, true);
        assert_eq!(keys(&elderly)[..5], base);
        assert_eq!(keys(&elderly)[5..], ["festival-重阳"]);
        let bereaved = default_rules(FamilyCategory::Bereaved, true);
        assert_eq!(
            keys(&bereaved)[5..],
            [
                "festival-重阳",
                "child-birthday",
                "death-anniversary",
                "qingming"
            ]
        );
        for r in bereaved.iter().filter(|r| r.kind.is_grief_day()) {
            assert_eq!(r.required_skills, [Skill::Counselling]);
            assert!(!r.assign_to_cadre);
        }
        // Weekly phone contact, monthly face to face.
        let call = &bereaved[0];
        assert_eq!(call.channel, Channel::PhoneCall);
        assert_eq!(
            call.kind,
            RuleKind::Checkin {
                every: 1,
                unit: PeriodUnit::Week
            }
        );
        assert!(call.assign_to_cadre);
        let visit = &bereaved[1];
        assert_eq!(visit.channel, Channel::HomeVisit);
        assert_eq!(
            visit.kind,
            RuleKind::Checkin {
                every: 1,
                unit: PeriodUnit::Month
            }
        );
    }

    fn base() -> Rule {
        default_rules(FamilyCategory::Hardship, false)[2].clone()
    }

    fn field_of(r: Rule) -> &'static str {
        r.validate().unwrap_err().field
    }

    #[test]
    fn validation_names_the_field() {
        let mut r = base();
        r.key = "bad key".into();
        assert_eq!(field_of(r), "key");
        let mut r = base();
        r.key = "a:b".into();
        assert_eq!(field_of(r), "key");
        let mut r = base();
        r.key = String::new();
        assert_eq!(field_of(r), "key");
        let mut r = base();
        r.kind = RuleKind::Checkin {
            every: 0,
            unit: PeriodUnit::Week,
        };
        assert_eq!(field_of(r), "kind.every");
        let mut r = base();
        r.window_days = 0;
        assert_eq!(field_of(r), "window_days");
        let mut r = base();
        r.lead_days = 61;
        r.window_days = 70;
        assert_eq!(field_of(r), "lead_days");
        let mut r = base();
        r.lead_days = 4;
        assert_eq!(field_of(r), "window_days");
        let mut r = base();
        r.volunteers_needed = 0;
        assert_eq!(field_of(r), "volunteers_needed");
        let mut r = base();
        r.volunteers_needed = 5;
        assert_eq!(field_of(r), "volunteers_needed");
        let mut r = base();
        r.channel = Channel::PhoneCall;
        r.volunteers_needed = 2;
        let e = r.validate().unwrap_err();
        assert_eq!(e.field, "volunteers_needed");
        assert!(e.to_string().contains("phone call"), "{e}");
        let mut r = grief_rules()[0].clone();
        r.required_skills.clear();
        assert_eq!(field_of(r), "required_skills");
        let mut r = base();
        r.kind = RuleKind::Festival(Festival::Qingming);
        assert_eq!(field_of(r), "kind");
        // A check-in's window may be shorter than its lead (it is anchored to a period).
        let mut r = default_rules(FamilyCategory::Hardship, false)[1].clone();
        r.lead_days = 7;
        r.window_days = 3;
        r.validate().unwrap();
    }

    #[test]
    fn rules_round_trip_through_json() {
        for r in default_rules(FamilyCategory::Bereaved, true) {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<Rule>(&json).unwrap(), r);
        }
        let r = &default_rules(FamilyCategory::Bereaved, false)[3];
        let json = serde_json::to_value(r).unwrap();
        assert_eq!(json["kind"], serde_json::json!({"festival": "春节"}));
        assert_eq!(json["channel"], "home_visit");
        let checkin =
            serde_json::to_value(&default_rules(FamilyCategory::Bereaved, false)[0]).unwrap();
        assert_eq!(
            checkin["kind"],
            serde_json::json!({"checkin": {"every": 1, "unit": "week"}})
        );
        // ASCII festival names are accepted; optional fields may be left out.
        let parsed: Rule = serde_json::from_str(
            r#"{"key":"festival-端午","kind":{"festival":"DragonBoat"},"channel":"home_visit",
                "lead_days":2,"window_days":3,"volunteers_needed":1}"#,
        )
        .unwrap();
        assert_eq!(parsed.kind, RuleKind::Festival(Festival::DragonBoat));
        assert!(parsed.required_skills.is_empty() && !parsed.assign_to_cadre);
        assert!(
            serde_json::from_str::<RuleKind>(r#"{"festival":"圣诞"}"#)
                .unwrap_err()
                .to_string()
                .contains("unknown festival")
        );
    }

    #[test]
    fn overrides_replace_disable_and_add() {
        let defaults = default_rules(FamilyCategory::Bereaved, false);
        let mut calls = defaults[0].clone();
        calls.kind = RuleKind::Checkin {
            every: 2,
            unit: PeriodUnit::Week,
        };
        let mut dragon = defaults[3].clone();
        dragon.key = "festival-端午".into();
        dragon.kind = RuleKind::Festival(Festival::DragonBoat);
        let overrides = vec![
            RuleOverride::Replace(calls.clone()),
            RuleOverride::Disable {
                key: "festival-春节".into(),
            },
            RuleOverride::Add(dragon.clone()),
            RuleOverride::Disable {
                key: "no-such-rule".into(),
            },
        ];
        let rules = effective_rules(&defaults, &overrides);
        assert_eq!(rules[0], calls);
        assert!(!keys(&rules).contains(&"festival-春节"));
        assert_eq!(rules.last().unwrap(), &dragon);
        assert_eq!(rules.len(), defaults.len());
        // Keys stay unique whatever the overrides say.
        let twice = effective_rules(
            &defaults,
            &[
                RuleOverride::Add(calls.clone()),
                RuleOverride::Replace(dragon.clone()),
                RuleOverride::Replace(dragon.clone()),
            ],
        );
        let unique: BTreeSet<&str> = keys(&twice).into_iter().collect();
        assert_eq!(unique.len(), twice.len());
        // The JSON the database keeps.
        let json = serde_json::to_string(&overrides[1]).unwrap();
        assert_eq!(json, r#"{"op":"disable","key":"festival-春节"}"#);
        let back: Vec<RuleOverride> =
            serde_json::from_str(&serde_json::to_string(&overrides).unwrap()).unwrap();
        assert_eq!(back, overrides);
    }

    #[test]
    fn compliance_counts_weeks_months_and_visits() {
        use Channel::{HomeVisit, PhoneCall};
        // 2026-11-01 is a Sunday: whole weeks are 11-02..11-29 (four), one whole month.
        let period = (d(2026, 11, 1), d(2026, 11, 30));
        let contacts = [
            (d(2026, 11, 3), PhoneCall),
            (d(2026, 11, 10), HomeVisit), // a visit is contact too
            (d(2026, 11, 10), HomeVisit), // same day: once
            (d(2026, 11, 30), PhoneCall), // in no whole week
            (d(2026, 12, 2), HomeVisit),  // outside the period
        ];
        let r = compliance(&contacts, &default_quotas(), period);
        assert_eq!(
            r[0],
            QuotaResult {
                quota: Quota::WeeklyContact,
                required: 4,
                done: 2,
                met: false
            }
        );
        assert_eq!((r[1].required, r[1].done, r[1].met), (1, 1, true));
        // 30 days of four a year: 0.33 rounds to 0.
        assert_eq!((r[2].required, r[2].done, r[2].met), (0, 1, true));

        let year = (d(2026, 1, 1), d(2026, 12, 31));
        let visits: Vec<_> = [2, 5, 8]
            .iter()
            .map(|&m| (d(2026, m, 15), HomeVisit))
            .collect();
        let r = compliance(&visits, &[Quota::HomeVisitsPerYear(4)], year);
        assert_eq!((r[0].required, r[0].done, r[0].met), (4, 3, false));
        let quarter = (d(2026, 1, 1), d(2026, 3, 31));
        let r = compliance(&visits, &[Quota::HomeVisitsPerYear(4)], quarter);
        assert_eq!((r[0].required, r[0].done, r[0].met), (1, 1, true));
        let r = compliance(&visits, &[Quota::MonthlyFaceToFace], year);
        assert_eq!((r[0].required, r[0].done), (12, 3));
        // An empty or reversed period requires nothing.
        let r = compliance(&visits, &default_quotas(), (d(2026, 3, 2), d(2026, 3, 1)));
        assert!(r.iter().all(|q| q.required == 0 && q.met));
    }

    #[test]
    fn whole_periods() {
        assert_eq!(
            whole_weeks(d(2026, 11, 2), d(2026, 11, 8)),
            [(d(2026, 11, 2), d(2026, 11, 8))]
        );
        assert!(whole_weeks(d(2026, 11, 3), d(2026, 11, 9)).is_empty());
        assert_eq!(
            whole_months(d(2026, 1, 1), d(2026, 2, 28)),
            [
                (d(2026, 1, 1), d(2026, 1, 31)),
                (d(2026, 2, 1), d(2026, 2, 28))
            ]
        );
        assert!(whole_months(d(2026, 1, 2), d(2026, 2, 27)).is_empty());
    }
}
