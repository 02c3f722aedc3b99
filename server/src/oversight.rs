//! The arithmetic of seeing the work, without a database: periods in the deployment's
//! time zone, how evenly visits are spread over volunteers (max/mean, Gini), whether a
//! family's visits in a period were all done, blood-pressure thresholds, the gift rules,
//! and the figures of the reports the association files. The handlers in `api::workload`,
//! `api::coverage`, `api::filings`, `api::gifts` and `api::health_readings` load rows,
//! call these, and write.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use entity::visit_task::status;
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    eligibility::local_midnight,
    error::{ApiError, ApiResult},
};

// ---------------------------------------------------------------------------------------
// Periods

/// Local days `from..=to`, and the UTC instants that bound them (`start..end`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// The longest period a report or a coverage view covers.
pub const MAX_PERIOD_DAYS: i64 = 366;

impl Period {
    pub fn days(from: NaiveDate, to: NaiveDate, tz: Tz) -> Self {
        let next = to.checked_add_days(Days::new(1)).unwrap_or(to);
        Self {
            from,
            to,
            start: local_midnight(tz, from),
            end: local_midnight(tz, next),
        }
    }

    /// The period asked for: both ends or neither (then the month so far), `from` not
    /// after `to`, at most a year.
    pub fn asked(
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        today: NaiveDate,
        tz: Tz,
    ) -> ApiResult<Self> {
        let (from, to) = match (from, to) {
            (Some(f), Some(t)) => (f, t),
            (None, None) => (today.with_day(1).unwrap_or(today), today),
            (Some(_), None) => return Err(ApiError::field("to", "请同时给出起止日期")),
            (None, Some(_)) => return Err(ApiError::field("from", "请同时给出起止日期")),
        };
        if from > to {
            return Err(ApiError::field("to", "结束日期不能早于开始日期"));
        }
        if (to - from).num_days() >= MAX_PERIOD_DAYS {
            return Err(ApiError::field(
                "to",
                format!("统计期间最长 {MAX_PERIOD_DAYS} 天"),
            ));
        }
        Ok(Self::days(from, to, tz))
    }

    /// Monday to Sunday around `day`.
    pub fn week_of(day: NaiveDate, tz: Tz) -> Self {
        let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
        Self::days(monday, monday + Duration::days(6), tz)
    }

    /// The calendar month of `day`.
    pub fn month_of(day: NaiveDate, tz: Tz) -> Self {
        let first = day.with_day(1).unwrap_or(day);
        let next = first
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(first);
        Self::days(first, next - Duration::days(1), tz)
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }

    pub fn len_days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    /// "2026-11-01至2026-11-30", for report headings.
    pub fn label(&self) -> String {
        format!("{}至{}", self.from, self.to)
    }
}

// ---------------------------------------------------------------------------------------
// Workload

/// A volunteer's visits in a period.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Load {
    /// Held and not yet done (open, claimed, in progress).
    pub held: u32,
    /// Reported or confirmed.
    pub done: u32,
    /// Held while the window passed.
    pub missed: u32,
    /// Claims given back or released in the period.
    pub released: u32,
}

impl Load {
    /// What counts against capacity: every visit held in the period, done or not.
    pub fn total(&self) -> u32 {
        self.held + self.done + self.missed
    }

    /// Counts one active claim by the visit's state.
    pub fn count(&mut self, visit_status: &str) {
        match visit_status {
            status::REPORTED | status::CONFIRMED => self.done += 1,
            status::MISSED => self.missed += 1,
            status::CANCELLED => {}
            _ => self.held += 1,
        }
    }

    pub fn add(&mut self, other: &Load) {
        self.held += other.held;
        self.done += other.done;
        self.missed += other.missed;
        self.released += other.released;
    }
}

/// A month's capacity from a weekly one, pro rata by days.
pub fn month_capacity(weekly: i32, days_in_month: i64) -> f64 {
    (f64::from(weekly.max(0)) * days_in_month as f64 / 7.0 * 10.0).round() / 10.0
}

/// Load over capacity (1.0 is full); None without capacity.
pub fn utilisation(load: u32, capacity: f64) -> Option<f64> {
    (capacity > 0.0).then(|| (f64::from(load) / capacity * 100.0).round() / 100.0)
}

/// How evenly visits are spread.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spread {
    pub people: usize,
    pub max: f64,
    pub mean: f64,
    /// Max over mean (1.0: perfectly even); None when nobody holds anything.
    pub max_over_mean: Option<f64>,
    /// 0 (all equal) to 1 (one person holds everything).
    pub gini: f64,
}

/// The spread of loads; volunteers with no load count (they are part of the team).
pub fn spread(loads: &[f64]) -> Spread {
    let n = loads.len();
    if n == 0 {
        return Spread::default();
    }
    let max = loads.iter().copied().fold(0.0, f64::max);
    let mean = loads.iter().sum::<f64>() / n as f64;
    Spread {
        people: n,
        max,
        mean: round2(mean),
        max_over_mean: (mean > 0.0).then(|| round2(max / mean)),
        gini: round3(gini(loads)),
    }
}

/// The Gini coefficient: the mean absolute difference between all pairs over twice the
/// mean. Sorted, that is `Σ (2i − n − 1)·xᵢ / (n·Σx)` with i from 1.
pub fn gini(values: &[f64]) -> f64 {
    let n = values.len();
    let total: f64 = values.iter().sum();
    if n < 2 || total <= 0.0 {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let weighted: f64 = v
        .iter()
        .enumerate()
        .map(|(i, x)| (2.0 * (i as f64 + 1.0) - n as f64 - 1.0) * x)
        .sum();
    weighted / (n as f64 * total)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------------------
// Coverage

/// One family's visits due in a period, by state.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Due {
    pub due: u32,
    pub done: u32,
    pub missed: u32,
}

impl Due {
    pub fn count(&mut self, visit_status: &str) {
        match visit_status {
            status::CANCELLED => return,
            status::REPORTED | status::CONFIRMED => self.done += 1,
            status::MISSED => self.missed += 1,
            _ => {}
        }
        self.due += 1;
    }

    /// Every visit due was done (随访到位). A family with nothing due is not counted.
    pub fn met(&self) -> bool {
        self.due > 0 && self.done == self.due
    }
}

/// A share as a percentage with one decimal; None of nothing.
pub fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 / whole as f64 * 1000.0).round() / 10.0)
}

// ---------------------------------------------------------------------------------------
// Blood pressure

/// When a reading calls for a health follow-up (`[health]`): at or above the high
/// thresholds (either value), or below the low systolic one.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    pub systolic_high: i32,
    pub diastolic_high: i32,
    pub systolic_low: i32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        // Grade 2 hypertension and above, or clearly low: worth a coordinator's call.
        Self {
            systolic_high: 160,
            diastolic_high: 100,
            systolic_low: 90,
        }
    }
}

impl HealthConfig {
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (70..=250).contains(&self.systolic_high)
                && (40..=150).contains(&self.diastolic_high)
                && (0..self.systolic_high).contains(&self.systolic_low),
            "health: systolic_high 70–250, diastolic_high 40–150, systolic_low below systolic_high"
        );
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BpLevel {
    Normal,
    High,
    Low,
}

impl BpLevel {
    pub fn code(self) -> &'static str {
        match self {
            BpLevel::Normal => "normal",
            BpLevel::High => "high",
            BpLevel::Low => "low",
        }
    }
}

pub fn bp_level(systolic: i32, diastolic: i32, c: &HealthConfig) -> BpLevel {
    if systolic >= c.systolic_high || diastolic >= c.diastolic_high {
        BpLevel::High
    } else if systolic < c.systolic_low {
        BpLevel::Low
    } else {
        BpLevel::Normal
    }
}

/// Why a reading is flagged, for coordinators; None when it is not.
pub fn bp_followup_reason(systolic: i32, diastolic: i32, c: &HealthConfig) -> Option<String> {
    let what = match bp_level(systolic, diastolic, c) {
        BpLevel::Normal => return None,
        BpLevel::High => format!("高于 {}/{}", c.systolic_high, c.diastolic_high),
        BpLevel::Low => format!("收缩压低于 {}", c.systolic_low),
    };
    Some(format!(
        "走访测得血压 {systolic}/{diastolic} mmHg（{what}），请安排健康随访"
    ))
}

/// The kind of a health follow-up visit (`visit_task.kind`).
pub const HEALTH_FOLLOWUP_KIND: &str = "health_followup";

/// One per visit that found the reading, however often the report is corrected.
pub fn health_followup_key(family: Uuid, task: Uuid) -> String {
    use scheduler::generate::FOLLOWUP_KEY_MARK;
    format!("{family}{FOLLOWUP_KEY_MARK}bp:{task}")
}

// ---------------------------------------------------------------------------------------
// Gifts

/// `[gifts]`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GiftsConfig {
    /// A gift above this many yuan needs a second coordinator's approval.
    pub approval_above_yuan: f64,
}

impl Default for GiftsConfig {
    fn default() -> Self {
        Self {
            approval_above_yuan: 2000.0,
        }
    }
}

impl GiftsConfig {
    pub fn approval_above_fen(&self) -> i64 {
        (self.approval_above_yuan * 100.0).round() as i64
    }
}

/// The key that makes a family's first gift of a festival the only one: an override
/// (with a reason) gets a key of its own.
pub fn gift_once_key(festival: &str, family: Uuid, override_of: Option<Uuid>) -> String {
    match override_of {
        None => format!("{festival}:{family}"),
        Some(id) => format!("{festival}:{family}:override:{id}"),
    }
}

/// The key a cancelled gift moves to, freeing the family's place for the festival.
pub fn gift_cancelled_key(once_key: &str, id: Uuid) -> String {
    format!("{once_key}:cancelled:{id}")
}

pub fn needs_second_approval(amount_fen: i64, c: &GiftsConfig) -> bool {
    amount_fen > c.approval_above_fen()
}

// ---------------------------------------------------------------------------------------
// The reports the association files

/// A visit done in the period, as the report counts it.
#[derive(Clone, Debug)]
pub struct DoneVisit {
    pub task: Uuid,
    pub family: Uuid,
    pub kind: String,
    pub cash_fen: i64,
    pub goods: String,
    /// Volunteers and cadres who checked in.
    pub people: Vec<Uuid>,
}

/// The figures of one report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    /// 户数: families reached at least once.
    pub families: u64,
    /// 户次: visits done (each a household reached once).
    pub household_visits: u64,
    /// kind → (户次, 人次 of visitors).
    pub by_kind: BTreeMap<String, (u64, u64)>,
    pub cash_fen: i64,
    /// Visits that handed over goods.
    pub goods_visits: u64,
    /// 人次: visitors' check-ins on those visits.
    pub volunteer_visits: u64,
    /// Different visitors.
    pub volunteers: u64,
    pub service_minutes: i64,
    pub events_held: u64,
    /// Families and volunteers recorded as present at those events.
    pub event_attendance: u64,
    pub wishes_received: u64,
    pub wishes_answered: u64,
}

/// Sums the visits; service minutes, events and wishes are counted by the caller.
pub fn figures(visits: &[DoneVisit]) -> Figures {
    let mut f = Figures::default();
    let mut families = BTreeSet::new();
    let mut people = BTreeSet::new();
    for v in visits {
        families.insert(v.family);
        f.household_visits += 1;
        let slot = f.by_kind.entry(v.kind.clone()).or_default();
        slot.0 += 1;
        slot.1 += v.people.len() as u64;
        f.cash_fen += v.cash_fen;
        if !v.goods.trim().is_empty() {
            f.goods_visits += 1;
        }
        f.volunteer_visits += v.people.len() as u64;
        people.extend(v.people.iter().copied());
    }
    f.families = families.len() as u64;
    f.volunteers = people.len() as u64;
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const TZ: Tz = chrono_tz::Asia::Shanghai;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn gini_of_even_and_uneven_loads() {
        assert_eq!(gini(&[3.0, 3.0, 3.0]), 0.0);
        assert_eq!(gini(&[]), 0.0);
        assert_eq!(gini(&[0.0, 0.0]), 0.0);
        // One of four holds everything: (n−1)/n.
        assert!((gini(&[0.0, 0.0, 0.0, 8.0]) - 0.75).abs() < 1e-9);
        // Mean absolute difference of {1,2,3}: (1+2+1)·2/9 = 8/9; over 2·mean (4): 2/9.
        assert!((gini(&[3.0, 1.0, 2.0]) - 2.0 / 9.0).abs() < 1e-9);
    }

    #[test]
    fn spread_counts_people_without_load() {
        let s = spread(&[4.0, 0.0, 0.0, 0.0]);
        assert_eq!(s.people, 4);
        assert_eq!(s.max, 4.0);
        assert_eq!(s.mean, 1.0);
        assert_eq!(s.max_over_mean, Some(4.0));
        assert_eq!(s.gini, 0.75);
        let even = spread(&[2.0, 2.0]);
        assert_eq!(even.max_over_mean, Some(1.0));
        assert_eq!(even.gini, 0.0);
        assert_eq!(spread(&[0.0, 0.0]).max_over_mean, None);
        assert_eq!(spread(&[]), Spread::default());
    }

    #[test]
    fn loads_count_by_state() {
        let mut l = Load::default();
        for s in [
            "claimed",
            "in_progress",
            "reported",
            "confirmed",
            "missed",
            "cancelled",
        ] {
            l.count(s);
        }
        assert_eq!((l.held, l.done, l.missed), (2, 2, 1));
        assert_eq!(l.total(), 5);
        assert_eq!(month_capacity(3, 30), 12.9);
        assert_eq!(utilisation(3, 3.0), Some(1.0));
        assert_eq!(utilisation(3, 0.0), None);
    }

    #[test]
    fn weeks_and_months_are_local() {
        // 2026-11-26 is a Thursday.
        let w = Period::week_of(d("2026-11-26"), TZ);
        assert_eq!((w.from, w.to), (d("2026-11-23"), d("2026-11-29")));
        // Midnight in Beijing is 16:00 UTC the day before.
        assert_eq!(w.start.to_rfc3339(), "2026-11-22T16:00:00+00:00");
        assert_eq!(w.len_days(), 7);
        let m = Period::month_of(d("2027-02-10"), TZ);
        assert_eq!((m.from, m.to), (d("2027-02-01"), d("2027-02-28")));
        let dec = Period::month_of(d("2026-12-31"), TZ);
        assert_eq!(dec.to, d("2026-12-31"));
        assert!(dec.contains(dec.start) && !dec.contains(dec.end));
    }

    #[test]
    fn asked_periods_are_checked() {
        let today = d("2026-11-26");
        let p = Period::asked(None, None, today, TZ).unwrap();
        assert_eq!((p.from, p.to), (d("2026-11-01"), today));
        let field = |r: ApiResult<Period>| match r {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(Period::asked(Some(today), None, today, TZ)), "to");
        assert_eq!(field(Period::asked(None, Some(today), today, TZ)), "from");
        assert_eq!(
            field(Period::asked(Some(today), Some(d("2026-11-01")), today, TZ)),
            "to"
        );
        assert_eq!(
            field(Period::asked(Some(d("2025-01-01")), Some(today), today, TZ)),
            "to"
        );
    }

    #[test]
    fn a_family_is_covered_when_every_visit_due_was_done() {
        let mut due = Due::default();
        assert!(!due.met());
        due.count("confirmed");
        due.count("cancelled");
        assert!(due.met());
        due.count("missed");
        assert!(!due.met());
        assert_eq!((due.due, due.done, due.missed), (2, 1, 1));
        assert_eq!(rate(1, 3), Some(33.3));
        assert_eq!(rate(0, 0), None);
    }

    #[test]
    fn blood_pressure_thresholds() {
        let c = HealthConfig::default();
        assert_eq!(bp_level(128, 82, &c), BpLevel::Normal);
        assert_eq!(bp_level(160, 90, &c), BpLevel::High);
        assert_eq!(bp_level(150, 100, &c), BpLevel::High);
        assert_eq!(bp_level(85, 55, &c), BpLevel::Low);
        assert!(bp_followup_reason(128, 82, &c).is_none());
        assert!(
            bp_followup_reason(182, 112, &c)
                .unwrap()
                .contains("182/112")
        );
        assert!(c.check().is_ok());
        let bad = HealthConfig {
            systolic_low: 200,
            ..c
        };
        assert!(bad.check().is_err());
    }

    #[test]
    fn gift_keys_and_approval() {
        let fam = Uuid::now_v7();
        let id = Uuid::now_v7();
        assert_eq!(
            gift_once_key("2027春节", fam, None),
            format!("2027春节:{fam}")
        );
        assert_ne!(
            gift_once_key("2027春节", fam, Some(id)),
            gift_once_key("2027春节", fam, None)
        );
        let c = GiftsConfig::default();
        assert!(!needs_second_approval(200_000, &c));
        assert!(needs_second_approval(200_001, &c));
    }

    #[test]
    fn figures_add_up_the_visits() {
        let fam = Uuid::now_v7();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let v = |kind: &str, cash, goods: &str, people: Vec<Uuid>| DoneVisit {
            task: Uuid::now_v7(),
            family: fam,
            kind: kind.into(),
            cash_fen: cash,
            goods: goods.into(),
            people,
        };
        let f = figures(&[
            v("festival", 50_000, "大米", vec![a, b]),
            v("festival", 0, " ", vec![a]),
            v("checkin", 20_050, "", vec![b]),
        ]);
        assert_eq!(f.families, 1);
        assert_eq!(f.household_visits, 3);
        assert_eq!(f.by_kind["festival"], (2, 3));
        assert_eq!(f.by_kind["checkin"], (1, 1));
        assert_eq!(f.cash_fen, 70_050);
        assert_eq!(f.goods_visits, 1);
        assert_eq!((f.volunteer_visits, f.volunteers), (4, 2));
    }
}
