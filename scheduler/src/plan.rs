//! The expansion of a family's rules into the visits of a horizon: [`plan_family`].
//!
//! # Occurrences and windows
//!
//! Every rule has occurrences, each with an occasion date D:
//! - a check-in's D is the first day of its period. Periods are anchored to a fixed epoch,
//!   never to `from`, and shifted by a phase derived from the family id, so 300 families
//!   do not all get their monthly visit on the 1st: a monthly period runs from day
//!   1 + phase (1..=28) of a month to the same day of the next; a weekly one from a
//!   weekday chosen by the phase; every-N periods also take their offset from the phase;
//! - a birthday's D is the day it is kept (lunar conventions of
//!   [`crate::calendar::birthday_in_year`]), a festival's its date, the death anniversary's
//!   the same solar day (02-29 → 02-28), 清明's the solar term.
//!
//! The window is `[D − lead_days, D − lead_days + window_days)` in local days of the
//! deployment's time zone; `window_start`/`window_end` are the local midnights that bound
//! it, in UTC (end exclusive). With `window_days = lead_days + 1` (every dated default) the
//! window *precedes* the occasion and ends on it: a birthday visit lands on the birthday or
//! just before. A longer window surrounds it (清明: three days either side). A check-in's
//! window is additionally clipped to the end of its period, so a monthly visit may happen
//! any time in its period. Blackout dates and weekdays are trimmed from both ends of the
//! window and the suggested day (`date`) moves to the nearest allowed day, earlier first;
//! a window with no allowed day is skipped with the reason.
//!
//! # Keys
//!
//! `unique_key = <family id>:<rule key>:<occurrence>`, the occurrence being
//! - check-ins: the period's start as `2026-11` (months, the month it starts in),
//!   `2026-W48` (weeks, ISO week) or `2026-11-17` (days);
//! - birthdays (a living member's or the deceased child's): `<member id>:<year>`, the year
//!   in the calendar the birthday is kept by (a birthday of lunar 2025 may fall in January
//!   2026 and is still `2025`); the death anniversary: `<member id>:<Gregorian year>`;
//! - festivals and 清明: the Gregorian year (腊八, which a Gregorian year can hold twice:
//!   the lunar year).
//!
//! e.g. `…:checkin-visit:2026-11`, `…:birthday:<member id>:2026`, `…:festival-中秋:2026`.
//! A merged visit's key is the family id and its components' `<rule key>:<occurrence>`,
//! sorted and joined by `+` (`…:birthday:<id>:2026+festival-中秋:2026`); one longer than
//! [`MAX_KEY_CHARS`] becomes `<family id>:merged-<16 hex digits of FNV-1a of the same
//! text>`.
//!
//! # Merging
//!
//! Per channel (a phone call never merges with a home visit):
//! - dated occurrences of the same class — festive (festivals, living members'
//!   birthdays) or gentle (grief days) — whose dates follow each other within
//!   [`MERGE_DAYS`] days chain into one visit: window and suggested day of the earliest
//!   member whose window has an allowed day (its *anchor*), skills the union, volunteers
//!   the maximum, gentle if any is. A grief day and a festive occasion are never merged;
//! - a check-in whose period (intersected with its window) contains the suggested day of
//!   such a visit is satisfied by it and merges into it (the earliest, if several). At most
//!   one period of a rule can contain a day, so one visit never swallows two periods.
//!
//! A merged visit is open for claiming unless every component is assigned to the cadre.
//!
//! # Horizons
//!
//! A visit belongs to the horizon that holds its anchor's date. Merging looks at
//! occurrences up to a margin beyond `[from, to]` (computed from the rules and members, see
//! `context_margin`), so that whether and how a visit is merged does not depend on where the
//! horizon ends. Hence the property tested in `tests/plan_props.rs`: for any `a ≤ b ≤ c`,
//! planning `[a, c]` gives exactly the visits (same keys, same contents) of planning
//! `[a, b]` and `[b, c]` with duplicates (the same key from both) removed — apart from the
//! extra volunteer of a bereaved family's first visit, which marks the first home visit of
//! each horizon. The same holds for the occurrences skipped. (The margin's bound holds for
//! fewer than 80 dated rule instances per family and channel, far more than a household
//! has.) A consequence to know: a check-in whose period starts in the horizon but which
//! merged into a visit anchored before `from` is not planned again (it was planned with
//! that visit).

use std::fmt::{self, Write as _};
use std::sync::OnceLock;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use entity::{BirthCalendar, FamilyCategory, FamilyStatus, MemberRelation, Skill};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::calendar::{self, CalendarKind, Festival, MAX_YEAR, MIN_YEAR};
use crate::rules::{Channel, PeriodUnit, Rule, RuleKind, TimeOfDay, festival_serde};

/// Occasions at most this many days apart become one visit.
pub const MERGE_DAYS: i64 = 3;
/// Longest unique key (`visit_task.unique_key` is 160 characters).
pub const MAX_KEY_CHARS: usize = 160;

// ---------------------------------------------------------------------------------------
// Input

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    Male,
    Female,
}

/// A birthday as registered. `year` is the Gregorian year of birth, if known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Birth {
    pub calendar: BirthCalendar,
    pub year: Option<i32>,
    pub month: u32,
    pub day: u32,
    /// Born in a leap (闰) month; ignored for solar birthdays.
    #[serde(default)]
    pub leap: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInput {
    pub id: Uuid,
    /// Shown in the visit's reasons ("母亲 钱秀英 农历生日"); may be empty.
    pub name: String,
    pub relation: MemberRelation,
    /// None when the month and day of birth are unknown: no birthday visit.
    pub birth: Option<Birth>,
    pub deceased: bool,
    pub death_date: Option<NaiveDate>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    pub preferred_time: Option<TimeOfDay>,
    pub preferred_visitor_gender: Option<Gender>,
    /// Days the family does not want to be contacted (local dates).
    #[serde(default)]
    pub blackout_dates: Vec<NaiveDate>,
    #[serde(default)]
    pub blackout_weekdays: Vec<Weekday>,
    /// No festival visits at all (some bereaved parents find them painful).
    #[serde(default)]
    pub no_festive_visits: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyInput {
    pub id: Uuid,
    pub category: FamilyCategory,
    pub status: FamilyStatus,
    pub members: Vec<MemberInput>,
    pub preferences: Preferences,
    /// Whether anyone has visited the family yet; the first visit to a bereaved family
    /// needs two volunteers.
    pub first_visit_done: bool,
}

impl FamilyInput {
    /// A 失独 family, or any family that has lost a child: grief days apply.
    pub fn is_bereaved(&self) -> bool {
        self.category == FamilyCategory::Bereaved || self.members.iter().any(is_deceased_child)
    }
}

fn is_deceased_child(m: &MemberInput) -> bool {
    m.deceased && m.relation == MemberRelation::Child
}

// ---------------------------------------------------------------------------------------
// Output

/// What a visit is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitKind {
    Checkin,
    MemberBirthday,
    Festival(#[serde(with = "festival_serde")] Festival),
    ChildBirthday,
    DeathAnniversary,
    Qingming,
}

impl VisitKind {
    fn of(kind: RuleKind) -> VisitKind {
        match kind {
            RuleKind::Checkin { .. } => VisitKind::Checkin,
            RuleKind::MemberBirthday => VisitKind::MemberBirthday,
            RuleKind::Festival(f) => VisitKind::Festival(f),
            RuleKind::ChildBirthday => VisitKind::ChildBirthday,
            RuleKind::DeathAnniversary => VisitKind::DeathAnniversary,
            RuleKind::Qingming => VisitKind::Qingming,
        }
    }

    /// The short code for `visit_task.kind`.
    pub fn code(self) -> &'static str {
        match self {
            VisitKind::Checkin => "checkin",
            VisitKind::MemberBirthday => "birthday",
            VisitKind::Festival(_) => "festival",
            VisitKind::ChildBirthday => "child_birthday",
            VisitKind::DeathAnniversary => "death_anniversary",
            VisitKind::Qingming => "qingming",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedVisit {
    /// Stable across runs: the database's idempotency key.
    pub unique_key: String,
    /// The keys the merged occurrences have on their own, sorted (just `unique_key` for a
    /// visit that is not merged), so the writer can recognise a task it wrote for one of
    /// them before they were merged.
    pub components: Vec<String>,
    /// The keys of the rules involved, in the order of `kinds`' occasions.
    pub rule_keys: Vec<String>,
    /// Distinct kinds, earliest occasion first.
    pub kinds: Vec<VisitKind>,
    /// Plain Chinese, one per occasion ("母亲 钱秀英 农历生日", "中秋节慰问", "清明 关怀").
    pub reasons: Vec<String>,
    pub channel: Channel,
    /// The suggested (local) day inside the window.
    pub date: NaiveDate,
    pub window_start: DateTime<Utc>,
    /// Exclusive.
    pub window_end: DateTime<Utc>,
    pub preferred_time: Option<TimeOfDay>,
    pub preferred_visitor_gender: Option<Gender>,
    pub required_skills: Vec<Skill>,
    pub volunteers_needed: u8,
    pub assign_to_cadre: bool,
    /// A grief day: quiet, no gifts or greetings, a counsellor.
    pub gentle: bool,
    /// The first visit to a bereaved family (two volunteers).
    pub first_visit: bool,
}

/// An occurrence (or the whole family, or a rule) that got no visit, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The occurrence's key; for the family or a rule, the family id or `<family>:<rule>`.
    pub key: String,
    /// The occasion's date; `from` for the family or a rule.
    pub date: NaiveDate,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Sorted by suggested date, then key.
    pub visits: Vec<PlannedVisit>,
    /// Sorted by date, then key.
    pub skipped: Vec<Skipped>,
}

// ---------------------------------------------------------------------------------------
// Internals

/// Which occurrence of a rule: the last part of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ident {
    Year(i32),
    Month(i32, u32),
    Week(i32, u32),
    Day(NaiveDate),
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Ident::Year(y) => write!(f, "{y}"),
            Ident::Month(y, m) => write!(f, "{y:04}-{m:02}"),
            Ident::Week(y, w) => write!(f, "{y:04}-W{w:02}"),
            Ident::Day(d) => write!(f, "{}", d.format("%Y-%m-%d")),
        }
    }
}

/// Where a visit fits once the family's blackouts are taken out of its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fit {
    day: NaiveDate,
    start: NaiveDate,
    /// Exclusive.
    end: NaiveDate,
}

/// One occurrence of one rule, before merging. Kept small: no strings until a visit is
/// emitted.
#[derive(Debug, Clone, Copy)]
struct Occ {
    rule: usize,
    member: Option<usize>,
    ident: Ident,
    /// The occasion: the day itself, or the first day of a check-in period.
    date: NaiveDate,
    /// The raw window, end exclusive.
    start: NaiveDate,
    end: NaiveDate,
    /// For a check-in, the end of its period (exclusive); the window end otherwise.
    period_end: NaiveDate,
    lunar: bool,
    fit: Option<Fit>,
}

/// A visit in the making: a chain of dated occasions (a range of the sorted dated
/// occurrences) or one check-in standing alone. Check-ins a chain satisfies are kept apart,
/// so building groups allocates nothing per group.
struct Group {
    channel: Channel,
    /// `dated[first..end]`; empty for a standalone check-in.
    first: usize,
    end: usize,
    /// The occurrence of a standalone check-in.
    checkin: Option<usize>,
    /// The member whose window the visit takes; None if no member has an allowed day.
    anchor: Option<usize>,
}

/// The family's blackouts, sorted for lookup.
struct Blackout {
    dates: Vec<NaiveDate>,
    /// Bit `n` = weekday `n` days from Monday.
    weekdays: u8,
}

impl Blackout {
    fn new(p: &Preferences) -> Blackout {
        let mut dates = p.blackout_dates.clone();
        dates.sort_unstable();
        dates.dedup();
        let weekdays = p
            .blackout_weekdays
            .iter()
            .fold(0u8, |m, w| m | 1 << w.num_days_from_monday());
        Blackout { dates, weekdays }
    }

    fn allows(&self, d: NaiveDate) -> bool {
        self.weekdays & (1 << d.weekday().num_days_from_monday()) == 0
            && self.dates.binary_search(&d).is_err()
    }

    /// Trims blacked-out days off both ends of [start, end) and moves `target` to the
    /// nearest allowed day, the earlier one on a tie. None if no day is allowed.
    fn fit(&self, target: NaiveDate, start: NaiveDate, end: NaiveDate) -> Option<Fit> {
        let last = end.pred_opt()?;
        if self.weekdays == 0 && self.dates.is_empty() {
            let day = target.clamp(start, last);
            return Some(Fit { day, start, end });
        }
        let first = start
            .iter_days()
            .take_while(|&d| d <= last)
            .find(|&d| self.allows(d))?;
        let last = (0..)
            .map_while(|k| last.checked_sub_days(Days::new(k)))
            .take_while(|&d| d >= first)
            .find(|&d| self.allows(d))?;
        let target = target.clamp(first, last);
        let day = (0..)
            .flat_map(|k| {
                [
                    target.checked_sub_days(Days::new(k)),
                    target.checked_add_days(Days::new(k)),
                ]
            })
            .flatten()
            .find(|&d| (first..=last).contains(&d) && self.allows(d))?;
        Some(Fit {
            day,
            start: first,
            end: last.succ_opt()?,
        })
    }
}

fn add(d: NaiveDate, days: i64) -> Option<NaiveDate> {
    if days >= 0 {
        d.checked_add_days(Days::new(days as u64))
    } else {
        d.checked_sub_days(Days::new(days.unsigned_abs()))
    }
}

fn calendar_kind(c: BirthCalendar) -> CalendarKind {
    match c {
        BirthCalendar::Solar => CalendarKind::Solar,
        BirthCalendar::Lunar => CalendarKind::Lunar,
    }
}

/// Whether a registered birthday is a real day (lunar day 30 and solar 02-29 are fine).
fn birth_is_valid(b: &Birth) -> bool {
    let max = match (b.calendar, b.month) {
        (BirthCalendar::Lunar, _) => 30,
        (BirthCalendar::Solar, 2) => 29,
        (BirthCalendar::Solar, 4 | 6 | 9 | 11) => 30,
        (BirthCalendar::Solar, _) => 31,
    };
    (1..=12).contains(&b.month) && (1..=max).contains(&b.day)
}

// ---------------------------------------------------------------------------------------
// Festival dates, memoised per Gregorian year

const YEARS: usize = (MAX_YEAR - MIN_YEAR + 1) as usize;

/// Per festival (in `Festival::ALL` order): up to two dates and how many there are.
struct FestivalYear([([NaiveDate; 2], u8); 13]);

static FESTIVALS: [OnceLock<FestivalYear>; YEARS] = [const { OnceLock::new() }; YEARS];

/// `calendar::festival_dates`, computed once per year and process.
fn festival_days(festival: Festival, year: i32) -> &'static [NaiveDate] {
    if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
        return &[];
    }
    let table = FESTIVALS[(year - MIN_YEAR) as usize].get_or_init(|| {
        let mut all = [([NaiveDate::MIN; 2], 0u8); 13];
        for (slot, &f) in all.iter_mut().zip(Festival::ALL.iter()) {
            let dates = calendar::festival_dates(f, year);
            for (s, d) in slot.0.iter_mut().zip(&dates) {
                *s = *d;
            }
            slot.1 = dates.len().min(2) as u8;
        }
        FestivalYear(all)
    });
    // The enum's discriminants follow `Festival::ALL` (checked by a test).
    let (dates, n) = &table.0[festival as usize];
    &dates[..usize::from(*n)]
}

// ---------------------------------------------------------------------------------------
// Check-in periods

/// Fixed anchor of every period count: Monday 2000-01-03.
const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(2000, 1, 3).expect("valid epoch");

/// The family's phase, from its id: the same on every run and machine.
#[derive(Debug, Clone, Copy)]
struct Phase(u64);

impl Phase {
    fn of(id: Uuid) -> Phase {
        let v = id.as_u128();
        // splitmix64's finaliser: spreads ids that differ in a few bits (v7 ids share
        // their leading timestamp) over the whole range.
        let mut z = (v as u64) ^ ((v >> 64) as u64);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Phase(z ^ (z >> 31))
    }
    /// Days after Monday that the family's weeks start.
    fn weekday(self) -> u64 {
        self.0 % 7
    }
    /// Days after the 1st that the family's months start (so every month has that day).
    fn day_of_month(self) -> u32 {
        ((self.0 >> 8) % 28) as u32
    }
    /// Offset of every-N periods.
    fn offset(self, every: u32) -> i64 {
        ((self.0 >> 16) % u64::from(every)) as i64
    }
}

/// Periods (start, end exclusive, ident) of a check-in whose start lies in [lo, hi].
fn checkin_periods(
    every: u32,
    unit: PeriodUnit,
    phase: Phase,
    lo: NaiveDate,
    hi: NaiveDate,
    out: &mut impl FnMut(NaiveDate, NaiveDate, Ident),
) {
    let every = every.max(1);
    let n = i64::from(every);
    let offset = phase.offset(every);
    match unit {
        PeriodUnit::Day => {
            let first = (lo - EPOCH).num_days();
            let first = first + (offset - first).rem_euclid(n);
            let mut start = add(EPOCH, first);
            while let Some(s) = start.filter(|&s| s <= hi) {
                let Some(end) = add(s, n) else { return };
                out(s, end, Ident::Day(s));
                start = Some(end);
            }
        }
        PeriodUnit::Week => {
            let shift = phase.weekday() as i64;
            // The Monday of the week whose (shifted) start may be the first >= lo.
            let week = (lo - EPOCH).num_days().div_euclid(7) - 1;
            let week = week + (offset - week).rem_euclid(n);
            let mut monday = add(EPOCH, week * 7);
            while let Some(m) = monday {
                let Some(s) = add(m, shift) else { return };
                if s > hi {
                    return;
                }
                let Some(end) = add(s, 7 * n) else { return };
                if s >= lo {
                    let iso = m.iso_week();
                    out(s, end, Ident::Week(iso.year(), iso.week()));
                }
                monday = add(m, 7 * n);
            }
        }
        PeriodUnit::Month => {
            let day = 1 + phase.day_of_month();
            let index = |d: NaiveDate| i64::from(d.year()) * 12 + i64::from(d.month0());
            let start_of = |i: i64| {
                let y = i32::try_from(i.div_euclid(12)).ok()?;
                NaiveDate::from_ymd_opt(y, i.rem_euclid(12) as u32 + 1, day)
            };
            let first = index(lo) - 1;
            let mut i = first + (offset - first).rem_euclid(n);
            while let Some(s) = start_of(i) {
                if s > hi {
                    return;
                }
                let Some(end) = start_of(i + n) else { return };
                if s >= lo {
                    out(s, end, Ident::Month(s.year(), s.month()));
                }
                i += n;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Expansion

/// The days dated occurrences (in `channel`) may chain over, and so how far beyond the
/// horizon the planner must look for merging not to depend on the horizon's ends. Zero
/// when nothing in the channel can merge.
///
/// Each dated rule instance (a member's birthday, a festival…) falls at most once in any
/// 300 days, so with `n` instances a chain of occasions at most `MERGE_DAYS` apart spans
/// X < 3n(X/300 + 1), i.e. X < 300n / (100 − n). A visit's key then depends on occurrences
/// within two chains and two windows (a check-in merging into a chain, and the chains that
/// check-in could have merged into instead) of its anchor.
fn context_margin(family: &FamilyInput, rules: &[&Rule], channel: Channel, bereaved: bool) -> i64 {
    let with_birth = |m: &&MemberInput| m.birth.is_some_and(|b| birth_is_valid(&b));
    let mut instances = 0i64;
    let mut checkins = false;
    let mut reach = 0i64;
    for r in rules.iter().filter(|r| r.channel == channel) {
        reach = reach.max(i64::from(r.lead_days + r.window_days));
        instances += match r.kind {
            RuleKind::Checkin { .. } => {
                checkins = true;
                0
            }
            RuleKind::MemberBirthday => family
                .members
                .iter()
                .filter(|m| !m.deceased)
                .filter(with_birth)
                .count() as i64,
            RuleKind::Festival(_) => 1,
            _ if !bereaved => 0,
            RuleKind::ChildBirthday => family
                .members
                .iter()
                .filter(|m| is_deceased_child(m))
                .filter(with_birth)
                .count() as i64,
            RuleKind::DeathAnniversary => family
                .members
                .iter()
                .filter(|m| is_deceased_child(m) && m.death_date.is_some())
                .count() as i64,
            RuleKind::Qingming => 1,
        };
    }
    if instances == 0 || (instances == 1 && !checkins) {
        return 0;
    }
    let chain = if instances < 80 {
        (300 * instances + 99 - instances) / (100 - instances)
    } else {
        1200
    };
    2 * (chain + reach) + MERGE_DAYS + 4
}

/// Every occurrence of `rule` whose occasion lies in [lo, hi].
fn expand_rule(
    family: &FamilyInput,
    index: usize,
    rule: &Rule,
    bereaved: bool,
    lo: NaiveDate,
    hi: NaiveDate,
    out: &mut Vec<Occ>,
) {
    let lead = -i64::from(rule.lead_days);
    let window = i64::from(rule.window_days);
    let mut push = |date: NaiveDate, member: Option<usize>, ident: Ident, lunar: bool| {
        let (Some(start), Some(end)) = (add(date, lead), add(date, lead + window)) else {
            return;
        };
        out.push(Occ {
            rule: index,
            member,
            ident,
            date,
            start,
            end,
            period_end: end,
            lunar,
            fit: None,
        });
    };
    // Gregorian years whose days can lie in [lo, hi]; lunar years start one earlier (a
    // 12th-month birthday of lunar Y falls in January of Y + 1).
    let years = lo.year()..=hi.year();
    let birthdays = |m: &MemberInput, push: &mut dyn FnMut(NaiveDate, Ident, bool)| {
        let Some(b) = m.birth.filter(birth_is_valid) else {
            return;
        };
        let kind = calendar_kind(b.calendar);
        let lunar = kind == CalendarKind::Lunar;
        let first = if lunar { lo.year() - 1 } else { lo.year() };
        for y in first..=hi.year() {
            let leap = lunar && b.leap;
            let Ok(d) = calendar::birthday_in_year(kind, b.month, b.day, leap, y) else {
                continue;
            };
            if (lo..=hi).contains(&d) && b.year.is_none_or(|by| d.year() > by) {
                push(d, Ident::Year(y), lunar);
            }
        }
    };
    match rule.kind {
        RuleKind::Checkin { every, unit } => {
            let phase = Phase::of(family.id);
            checkin_periods(every, unit, phase, lo, hi, &mut |s, period_end, ident| {
                let (Some(start), Some(end)) = (add(s, lead), add(s, lead + window)) else {
                    return;
                };
                out.push(Occ {
                    rule: index,
                    member: None,
                    ident,
                    date: s,
                    start,
                    end: end.min(period_end),
                    period_end,
                    lunar: false,
                    fit: None,
                });
            });
        }
        RuleKind::MemberBirthday => {
            for (i, m) in family.members.iter().enumerate() {
                if !m.deceased {
                    birthdays(m, &mut |d, id, lunar| push(d, Some(i), id, lunar));
                }
            }
        }
        RuleKind::Festival(f) => {
            for y in years {
                for &d in festival_days(f, y) {
                    if (lo..=hi).contains(&d) {
                        // 腊八 can fall twice in a Gregorian year: key it by lunar year.
                        let key_year = if f == Festival::Laba && d.month() == 1 {
                            y - 1
                        } else {
                            y
                        };
                        push(d, None, Ident::Year(key_year), false);
                    }
                }
            }
        }
        _ if !bereaved => {}
        RuleKind::ChildBirthday => {
            for (i, m) in family.members.iter().enumerate() {
                if is_deceased_child(m) {
                    birthdays(m, &mut |d, id, lunar| push(d, Some(i), id, lunar));
                }
            }
        }
        RuleKind::DeathAnniversary => {
            for (i, m) in family.members.iter().enumerate() {
                let Some(death) = m.death_date.filter(|_| is_deceased_child(m)) else {
                    continue;
                };
                for y in years.clone().filter(|&y| y > death.year()) {
                    let (month, day) = (death.month(), death.day());
                    let Ok(d) =
                        calendar::birthday_in_year(CalendarKind::Solar, month, day, false, y)
                    else {
                        continue;
                    };
                    if (lo..=hi).contains(&d) {
                        push(d, Some(i), Ident::Year(y), false);
                    }
                }
            }
        }
        RuleKind::Qingming => {
            for y in years {
                for &d in festival_days(Festival::Qingming, y) {
                    if (lo..=hi).contains(&d) {
                        push(d, None, Ident::Year(y), false);
                    }
                }
            }
        }
    }
}

/// The rules that can be used: valid, first of each key. The others are reported.
fn usable_rules<'r>(
    family: &FamilyInput,
    rules: &'r [Rule],
    from: NaiveDate,
    skipped: &mut Vec<Skipped>,
) -> Vec<&'r Rule> {
    let mut usable: Vec<&Rule> = Vec::with_capacity(rules.len());
    for r in rules {
        let problem = match r.validate() {
            Err(e) => Some(format!("规则无效：{e}")),
            Ok(()) if usable.iter().any(|u| u.key == r.key) => Some("规则重复".to_string()),
            Ok(()) => None,
        };
        match problem {
            Some(reason) => skipped.push(Skipped {
                key: format!("{}:{}", family.id, r.key),
                date: from,
                reason,
            }),
            None => usable.push(r),
        }
    }
    usable
}

/// Gentle (grief day) 1, festive 0; check-ins are not chained.
fn class(kind: RuleKind) -> u8 {
    u8::from(kind.is_grief_day())
}

/// Plans the visits of one family whose anchor occasion (see the module docs) lies in
/// `from..=to`; `tz` is the deployment's time zone. Pure and cheap: called for every family
/// on every run.
pub fn plan_family(
    family: &FamilyInput,
    rules: &[Rule],
    from: NaiveDate,
    to: NaiveDate,
    tz: Tz,
) -> Plan {
    let mut plan = Plan::default();
    let status = match family.status {
        FamilyStatus::Active => None,
        FamilyStatus::Paused => Some("家庭已暂停"),
        FamilyStatus::Closed => Some("家庭已销册"),
    };
    if let Some(reason) = status {
        plan.skipped.push(Skipped {
            key: family.id.to_string(),
            date: from,
            reason: reason.to_string(),
        });
        return plan;
    }
    if from > to {
        return plan;
    }
    let rules = usable_rules(family, rules, from, &mut plan.skipped);
    let bereaved = family.is_bereaved();
    let prefs = &family.preferences;
    let blackout = Blackout::new(prefs);
    let in_horizon = |d: NaiveDate| (from..=to).contains(&d);

    // 1. Occurrences, with the context margin of their channel.
    let mut occs: Vec<Occ> = Vec::with_capacity(64);
    for channel in [Channel::HomeVisit, Channel::PhoneCall] {
        let margin = context_margin(family, &rules, channel, bereaved);
        let lo = add(from, -margin).unwrap_or(from);
        let hi = add(to, margin).unwrap_or(to);
        for (i, r) in rules.iter().enumerate() {
            if r.channel == channel {
                expand_rule(family, i, r, bereaved, lo, hi, &mut occs);
            }
        }
    }
    let mut prefix = Uuid::encode_buffer();
    let fam: &str = family.id.hyphenated().encode_lower(&mut prefix);
    let key_of = |o: &Occ| occurrence_key(fam, family, &rules, o);
    if prefs.no_festive_visits {
        occs.retain(|o| {
            let festival = matches!(rules[o.rule].kind, RuleKind::Festival(_));
            if festival && in_horizon(o.date) {
                plan.skipped.push(Skipped {
                    key: key_of(o),
                    date: o.date,
                    reason: "家庭不希望节日慰问".to_string(),
                });
            }
            !festival
        });
    }
    for o in &mut occs {
        o.fit = blackout.fit(o.date, o.start, o.end);
    }

    // 2. Dated occasions chain into groups per channel and class.
    let member_id = |o: &Occ| o.member.map(|i| family.members[i].id);
    let mut dated: Vec<usize> = Vec::with_capacity(occs.len());
    let mut checkins: Vec<usize> = Vec::new();
    for (i, o) in occs.iter().enumerate() {
        match rules[o.rule].kind {
            RuleKind::Checkin { .. } => checkins.push(i),
            _ => dated.push(i),
        }
    }
    dated.sort_by_key(|&i| {
        let o = &occs[i];
        let r = rules[o.rule];
        (
            r.channel,
            class(r.kind),
            o.date,
            o.rule,
            member_id(o),
            o.ident,
        )
    });
    let mut groups: Vec<Group> = Vec::with_capacity(dated.len() + checkins.len());
    let mut last: Option<(Channel, u8, NaiveDate)> = None;
    for (pos, &i) in dated.iter().enumerate() {
        let o = &occs[i];
        let r = rules[o.rule];
        let joins = last.is_some_and(|(c, k, d)| {
            c == r.channel && k == class(r.kind) && (o.date - d).num_days() <= MERGE_DAYS
        });
        if !joins {
            groups.push(Group {
                channel: r.channel,
                first: pos,
                end: pos,
                checkin: None,
                anchor: None,
            });
        }
        let g = groups.last_mut().expect("pushed above");
        g.end = pos + 1;
        if g.anchor.is_none() && o.fit.is_some() {
            g.anchor = Some(i);
        }
        last = Some((r.channel, class(r.kind), o.date));
    }

    // 3. A check-in whose period (and window) holds a visit's suggested day is satisfied
    //    by it; the others stand alone.
    checkins.sort_by_key(|&i| (occs[i].date, occs[i].rule, occs[i].ident));
    let chains = groups.len();
    // (group, check-in occurrence)
    let mut attached: Vec<(usize, usize)> = Vec::new();
    for i in checkins {
        let c = &occs[i];
        let channel = rules[c.rule].channel;
        let (lo, hi) = (c.date.max(c.start), c.period_end.min(c.end));
        let host = groups[..chains]
            .iter()
            .enumerate()
            .filter(|(_, g)| g.channel == channel)
            .filter_map(|(n, g)| Some((occs[g.anchor?].fit?.day, n)))
            .filter(|&(day, _)| day >= lo && day < hi)
            .min();
        match host {
            Some((_, n)) => attached.push((n, i)),
            None => groups.push(Group {
                channel,
                first: 0,
                end: 0,
                checkin: Some(i),
                anchor: c.fit.map(|_| i),
            }),
        }
    }
    attached.sort_unstable();

    // 4. Emit the visits anchored in the horizon; report what could not be placed.
    let mut members: Vec<usize> = Vec::new();
    for (n, g) in groups.iter().enumerate() {
        members.clear();
        members.extend_from_slice(&dated[g.first..g.end]);
        members.extend(g.checkin);
        let Some(anchor) = g.anchor else {
            for o in members.iter().map(|&i| &occs[i]) {
                if in_horizon(o.date) {
                    plan.skipped.push(Skipped {
                        key: key_of(o),
                        date: o.date,
                        reason: "窗口期内均为家庭不便日期".to_string(),
                    });
                }
            }
            continue;
        };
        if in_horizon(occs[anchor].date) {
            let at = attached.partition_point(|&(m, _)| m < n);
            let satisfied = attached[at..].iter().take_while(|&&(m, _)| m == n);
            members.extend(satisfied.map(|&(_, i)| i));
            let ctx = VisitContext {
                family,
                prefix: fam,
                rules: &rules,
                occs: &occs,
                tz,
            };
            plan.visits.push(ctx.build(&mut members, g.channel, anchor));
        }
    }

    plan.visits
        .sort_by(|a, b| (a.date, &a.unique_key).cmp(&(b.date, &b.unique_key)));
    if bereaved && !family.first_visit_done {
        let first = plan
            .visits
            .iter_mut()
            .find(|v| v.channel == Channel::HomeVisit);
        if let Some(v) = first {
            v.volunteers_needed = v.volunteers_needed.max(2);
            v.first_visit = true;
            v.reasons.push("首次入户走访，两人同行".to_string());
        }
    }
    plan.skipped
        .sort_by(|a, b| (a.date, &a.key, &a.reason).cmp(&(b.date, &b.key, &b.reason)));
    plan
}

/// `<rule key>:[<member id>:]<occurrence>`: the part after the family id.
fn write_component(out: &mut String, family: &FamilyInput, rule: &Rule, o: &Occ) {
    out.push_str(&rule.key);
    out.push(':');
    if let Some(i) = o.member {
        let _ = write!(out, "{}:", family.members[i].id);
    }
    let _ = write!(out, "{}", o.ident);
}

fn occurrence_key(fam: &str, family: &FamilyInput, rules: &[&Rule], o: &Occ) -> String {
    let mut key = String::with_capacity(96);
    key.push_str(fam);
    key.push(':');
    write_component(&mut key, family, rules[o.rule], o);
    key
}

/// FNV-1a, 64 bits: stable across runs, platforms and Rust versions (unlike `Hash`).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What building a visit needs besides the group.
struct VisitContext<'a> {
    family: &'a FamilyInput,
    /// The family id, formatted once.
    prefix: &'a str,
    rules: &'a [&'a Rule],
    occs: &'a [Occ],
    tz: Tz,
}

impl VisitContext<'_> {
    /// The visit of a group whose occurrences are `members`, anchored at `anchor`.
    fn build(&self, indices: &mut [usize], channel: Channel, anchor: usize) -> PlannedVisit {
        let VisitContext {
            family,
            prefix,
            rules,
            occs,
            tz,
        } = *self;
        let fit = occs[anchor].fit.expect("an anchor has an allowed day");
        // Occasions in date order.
        indices.sort_by_key(|&i| {
            let o = &occs[i];
            (o.date, o.rule, o.member.map(|m| family.members[m].id))
        });
        let members = || indices.iter().map(|&i| &occs[i]);

        let (unique_key, components) = if let [only] = *indices {
            let key = occurrence_key(prefix, family, rules, &occs[only]);
            (key.clone(), vec![key])
        } else {
            let mut parts: Vec<String> = members()
                .map(|o| {
                    let mut s = String::with_capacity(64);
                    write_component(&mut s, family, rules[o.rule], o);
                    s
                })
                .collect();
            parts.sort();
            let mut key = String::with_capacity(prefix.len() + 1 + 64 * parts.len());
            key.push_str(prefix);
            key.push(':');
            for (n, part) in parts.iter().enumerate() {
                if n > 0 {
                    key.push('+');
                }
                key.push_str(part);
            }
            if key.chars().count() > MAX_KEY_CHARS {
                key = format!("{prefix}:merged-{:016x}", fnv1a(&key));
            }
            let components = parts.iter().map(|c| format!("{prefix}:{c}")).collect();
            (key, components)
        };

        let mut kinds = Vec::with_capacity(1);
        let mut reasons = Vec::with_capacity(1);
        let mut rule_keys = Vec::with_capacity(1);
        let mut skills: Vec<Skill> = Vec::new();
        let mut volunteers = 1;
        let mut cadre = true;
        let mut gentle = false;
        let mut preferred_time = family.preferences.preferred_time;
        for o in members() {
            let r = rules[o.rule];
            let kind = VisitKind::of(r.kind);
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
            let reason = reason(family, r, o);
            if !reasons.contains(&reason) {
                reasons.push(reason);
            }
            if !rule_keys.contains(&r.key) {
                rule_keys.push(r.key.clone());
            }
            skills.extend_from_slice(&r.required_skills);
            volunteers = volunteers.max(r.volunteers_needed);
            cadre &= r.assign_to_cadre;
            gentle |= r.kind.is_grief_day();
            preferred_time = preferred_time.or(r.preferred_time);
        }
        if gentle {
            skills.push(Skill::Counselling);
        }
        let skill_rank = |s: &Skill| Skill::ALL.iter().position(|x| x == s);
        skills.sort_by_key(skill_rank);
        skills.dedup();

        PlannedVisit {
            unique_key,
            components,
            rule_keys,
            kinds,
            reasons,
            channel,
            date: fit.day,
            window_start: local_midnight(tz, fit.start),
            window_end: local_midnight(tz, fit.end),
            preferred_time,
            preferred_visitor_gender: family.preferences.preferred_visitor_gender,
            required_skills: skills,
            volunteers_needed: volunteers,
            assign_to_cadre: cadre,
            gentle,
            first_visit: false,
        }
    }
}

/// The start of local day `d` in UTC. Where a time zone skips midnight (a DST change at
/// 00:00), the day starts at the first local time that exists.
fn local_midnight(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    let midnight = d.and_time(NaiveTime::MIN);
    (0..=3)
        .filter_map(|h| {
            tz.from_local_datetime(&(midnight + chrono::TimeDelta::hours(h)))
                .earliest()
        })
        .next()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
}

/// `"母亲 钱秀英"`, or just `"母亲"` without a name.
fn person(relation: &str, name: &str) -> String {
    let name = name.trim();
    if name.is_empty() {
        relation.to_string()
    } else {
        format!("{relation} {name}")
    }
}

fn festival_reason(f: Festival) -> String {
    let name = f.chinese_name();
    // 春节, 母亲节… already end in 节; 元旦, 除夕 take no 节.
    if name.ends_with('节') || matches!(f, Festival::NewYear | Festival::NewYearsEve) {
        format!("{name}慰问")
    } else {
        format!("{name}节慰问")
    }
}

fn checkin_reason(every: u32, unit: PeriodUnit, channel: Channel) -> String {
    let period = match (every, unit) {
        (1, PeriodUnit::Day) => "每天".to_string(),
        (1, PeriodUnit::Week) => "每周".to_string(),
        (1, PeriodUnit::Month) => "每月".to_string(),
        (n, PeriodUnit::Day) => format!("每{n}天"),
        (n, PeriodUnit::Week) => format!("每{n}周"),
        (n, PeriodUnit::Month) => format!("每{n}个月"),
    };
    match channel {
        Channel::HomeVisit => format!("{period}走访"),
        Channel::PhoneCall => format!("{period}电话问候"),
    }
}

/// Why a visit happens, in plain words for the volunteer. Grief days are worded quietly.
fn reason(family: &FamilyInput, rule: &Rule, o: &Occ) -> String {
    let member = o.member.map(|i| &family.members[i]);
    let birthday = if o.lunar { "农历生日" } else { "生日" };
    match (rule.kind, member) {
        (RuleKind::Checkin { every, unit }, _) => checkin_reason(every, unit, rule.channel),
        (RuleKind::MemberBirthday, Some(m)) => {
            format!("{} {birthday}", person(m.relation.label(), &m.name))
        }
        (RuleKind::Festival(f), _) => festival_reason(f),
        (RuleKind::ChildBirthday, Some(m)) => {
            format!("{} {birthday} 关怀", person("孩子", &m.name))
        }
        (RuleKind::DeathAnniversary, Some(m)) => format!("{} 忌日 关怀", person("孩子", &m.name)),
        (RuleKind::Qingming, _) => "清明 关怀".to_string(),
        (_, None) => rule.key.clone(),
    }
}

#[cfg(test)]
mod tests;
