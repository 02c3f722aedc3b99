//! Properties of `plan_family` over random families, rules and horizons, and a run over
//! 10,000 generated families.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::{Asia::Shanghai, Tz};
use entity::{BirthCalendar, FamilyCategory, FamilyStatus, MemberRelation, Skill};
use proptest::prelude::*;
use proptest::sample::select;
use scheduler::Festival;
use scheduler::plan::{
    Birth, FamilyInput, Gender, MemberInput, Plan, PlannedVisit, Preferences, Skipped, VisitKind,
    plan_family,
};
use scheduler::rules::{
    Channel, PeriodUnit, Rule, RuleKind, TimeOfDay, default_rules, grief_rules,
};
use uuid::Uuid;

fn day(n: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + Days::new(u64::from(n))
}

fn any_date() -> impl Strategy<Value = NaiveDate> {
    // 2024-01-01 .. about 2031.
    (0u32..2700).prop_map(day)
}

fn any_birth() -> impl Strategy<Value = Birth> {
    (
        prop_oneof![Just(BirthCalendar::Solar), Just(BirthCalendar::Lunar)],
        proptest::option::of(1930i32..2024),
        1u32..=12,
        // Includes days that do not exist (solar 04-31, lunar 31): ignored, not a panic.
        prop_oneof![6 => 1u32..=28, 3 => 29u32..=30, 1 => 31u32..=32],
        proptest::bool::weighted(0.1),
    )
        .prop_map(|(calendar, year, month, day, leap)| Birth {
            calendar,
            year,
            month,
            day,
            leap,
        })
}

fn any_member() -> impl Strategy<Value = MemberInput> {
    (
        any::<u128>(),
        select(vec!["钱秀英", "张建国", "小明", ""]),
        select(MemberRelation::ALL.to_vec()),
        proptest::option::weighted(0.85, any_birth()),
        proptest::bool::weighted(0.25),
        proptest::option::of((0u32..4000).prop_map(|n| day(0) - Days::new(u64::from(n)))),
    )
        .prop_map(
            |(id, name, relation, birth, deceased, death_date)| MemberInput {
                id: Uuid::from_u128(id),
                name: name.to_string(),
                relation,
                birth,
                deceased,
                death_date: death_date.filter(|_| deceased),
            },
        )
}

fn any_preferences() -> impl Strategy<Value = Preferences> {
    (
        proptest::option::of(select(vec![
            TimeOfDay::Morning,
            TimeOfDay::Afternoon,
            TimeOfDay::Evening,
        ])),
        proptest::option::of(select(vec![Gender::Male, Gender::Female])),
        proptest::collection::vec(any_date(), 0..8),
        proptest::collection::vec(0u8..7, 0..4),
        proptest::bool::weighted(0.2),
    )
        .prop_map(|(time, gender, dates, weekdays, no_festive)| Preferences {
            preferred_time: time,
            preferred_visitor_gender: gender,
            blackout_dates: dates,
            blackout_weekdays: weekdays
                .into_iter()
                .map(|n| Weekday::try_from(n).unwrap())
                .collect(),
            no_festive_visits: no_festive,
        })
}

/// Defaults of a random category, sometimes with grief rules added, lead and window
/// changed, other check-in periods, more festivals (除夕 and 春节 chain), a birthday call.
fn any_rules(category: FamilyCategory) -> impl Strategy<Value = Vec<Rule>> {
    (
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec((0u32..12, 1u32..40), 0..4),
        (
            1u32..6,
            select(vec![PeriodUnit::Day, PeriodUnit::Week, PeriodUnit::Month]),
        ),
        proptest::collection::vec(select(Festival::ALL.to_vec()), 0..4),
        any::<bool>(),
    )
        .prop_map(
            move |(elderly, grief, tweaks, (every, unit), festivals, call_birthdays)| {
                let mut rules = default_rules(category, elderly);
                if grief && category != FamilyCategory::Bereaved {
                    rules.extend(grief_rules());
                }
                for (n, (lead, window)) in tweaks.into_iter().enumerate() {
                    let i = n * 3 % rules.len();
                    rules[i].lead_days = lead;
                    rules[i].window_days = window;
                }
                let every = if unit == PeriodUnit::Day {
                    every * 3
                } else {
                    every
                };
                rules[1].kind = RuleKind::Checkin { every, unit };
                for f in festivals {
                    let mut r = rules[4].clone();
                    r.key = format!("festival-{}", f.chinese_name());
                    r.kind = RuleKind::Festival(f);
                    rules.push(r);
                }
                if call_birthdays {
                    let mut r = rules[2].clone();
                    r.key = "birthday-call".into();
                    r.channel = Channel::PhoneCall;
                    rules.push(r);
                }
                // Only valid rules with distinct keys: invalid ones are reported with the
                // date `from`, which is not a property of the occurrences.
                let mut seen = BTreeSet::new();
                rules.retain(|r| r.validate().is_ok() && seen.insert(r.key.clone()));
                rules
            },
        )
}

fn any_family() -> impl Strategy<Value = (FamilyInput, Vec<Rule>)> {
    (
        any::<u128>(),
        select(FamilyCategory::ALL.to_vec()),
        prop_oneof![
            8 => Just(FamilyStatus::Active),
            1 => Just(FamilyStatus::Paused),
            1 => Just(FamilyStatus::Closed),
        ],
        proptest::collection::vec(any_member(), 0..6),
        any_preferences(),
        any::<bool>(),
    )
        .prop_flat_map(|(id, category, status, members, preferences, first)| {
            let family = FamilyInput {
                id: Uuid::from_u128(id),
                category,
                status,
                members,
                preferences,
                first_visit_done: first,
            };
            (Just(family), any_rules(category))
        })
}

fn plan(f: &FamilyInput, rules: &[Rule], from: NaiveDate, to: NaiveDate) -> Plan {
    plan_family(f, rules, from, to, Shanghai)
}

fn local_midnight(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    tz.from_local_datetime(&d.and_time(NaiveTime::MIN))
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}

fn by_key(plans: &[&Plan]) -> BTreeMap<String, PlannedVisit> {
    plans
        .iter()
        .flat_map(|p| p.visits.iter())
        .map(|v| (v.unique_key.clone(), v.clone()))
        .collect()
}

fn skipped(plans: &[&Plan]) -> BTreeSet<(String, NaiveDate, String)> {
    plans
        .iter()
        .flat_map(|p| p.skipped.iter())
        .map(|Skipped { key, date, reason }| (key.clone(), *date, reason.clone()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// (a) keys are unique, and an occurrence is in at most one visit.
    #[test]
    fn keys_are_unique((f, rules) in any_family(), from in any_date(), len in 0u32..400) {
        let p = plan(&f, &rules, from, from + Days::new(u64::from(len)));
        let keys: BTreeSet<&str> = p.visits.iter().map(|v| v.unique_key.as_str()).collect();
        prop_assert_eq!(keys.len(), p.visits.len());
        let components: Vec<&String> = p.visits.iter().flat_map(|v| &v.components).collect();
        let distinct: BTreeSet<&String> = components.iter().copied().collect();
        prop_assert_eq!(distinct.len(), components.len());
        for v in &p.visits {
            prop_assert!(v.unique_key.chars().count() <= scheduler::plan::MAX_KEY_CHARS);
        }
    }

    /// (b) Splitting the horizon changes nothing: planning [a, c] gives exactly the visits
    /// (and skipped occurrences) of [a, b] and [b, c] together, duplicates removed. Exact
    /// contents for families already visited; for a bereaved family's first visit, whose
    /// extra volunteer goes to the first home visit of *each* horizon, the keys.
    #[test]
    fn splitting_the_horizon_changes_nothing(
        (mut f, rules) in any_family(),
        a in any_date(),
        ab in 0u32..200,
        bc in 0u32..200,
    ) {
        let b = a + Days::new(u64::from(ab));
        let c = b + Days::new(u64::from(bc));
        let whole = plan(&f, &rules, a, c);
        let left = plan(&f, &rules, a, b);
        let right = plan(&f, &rules, b, c);
        let keys = |m: BTreeMap<String, PlannedVisit>| m.into_keys().collect::<Vec<_>>();
        prop_assert_eq!(keys(by_key(&[&whole])), keys(by_key(&[&left, &right])));

        f.first_visit_done = true;
        let whole = plan(&f, &rules, a, c);
        let left = plan(&f, &rules, a, b);
        let right = plan(&f, &rules, b, c);
        prop_assert_eq!(by_key(&[&whole]), by_key(&[&left, &right]));
        if f.status == FamilyStatus::Active {
            prop_assert_eq!(skipped(&[&whole]), skipped(&[&left, &right]));
            // Also with the split day in one half only.
            if b < c {
                let right = plan(&f, &rules, b + Days::new(1), c);
                prop_assert_eq!(by_key(&[&whole]), by_key(&[&left, &right]));
            }
        }
    }

    /// (c) Every window is non-empty, holds its suggested day and lies within
    /// [from − max lead, to + max window]; (d) planning is deterministic and does not depend
    /// on the order of members or blackout dates. Plus the rules of tone.
    #[test]
    fn windows_are_bounded_and_planning_deterministic(
        (f, rules) in any_family(),
        from in any_date(),
        len in 0u32..200,
    ) {
        let to = from + Days::new(u64::from(len));
        let p = plan(&f, &rules, from, to);
        let max_lead = rules.iter().map(|r| r.lead_days).max().unwrap_or(0);
        let max_window = rules.iter().map(|r| r.window_days).max().unwrap_or(0);
        let lo = local_midnight(Shanghai, from - Days::new(u64::from(max_lead)));
        let hi = local_midnight(Shanghai, to + Days::new(u64::from(max_window)));
        for v in &p.visits {
            prop_assert!(v.window_start < v.window_end, "{v:?}");
            prop_assert!(lo <= v.window_start && v.window_end <= hi, "{v:?}");
            let day = local_midnight(Shanghai, v.date);
            prop_assert!(v.window_start <= day && day < v.window_end, "{v:?}");
            // Grief days: quiet, with a counsellor, never with a festive occasion.
            if v.gentle {
                prop_assert!(v.required_skills.contains(&Skill::Counselling));
                prop_assert!(!v.kinds.iter().any(|k| matches!(
                    k,
                    VisitKind::Festival(_) | VisitKind::MemberBirthday
                )), "{v:?}");
            }
            if f.preferences.no_festive_visits {
                prop_assert!(!v.kinds.iter().any(|k| matches!(k, VisitKind::Festival(_))));
            }
            if v.channel == Channel::PhoneCall {
                prop_assert_eq!(v.volunteers_needed, 1);
            }
            prop_assert!((1..=4).contains(&v.volunteers_needed));
        }
        if f.status != FamilyStatus::Active {
            prop_assert!(p.visits.is_empty());
        }
        prop_assert_eq!(&plan(&f, &rules, from, to), &p);

        let mut shuffled = f.clone();
        shuffled.members.reverse();
        shuffled.preferences.blackout_dates.reverse();
        prop_assert_eq!(plan(&shuffled, &rules, from, to), p);
    }
}

/// A deterministic stream of pseudo-random numbers (no seeding, no dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn generated_family(rng: &mut Lcg, n: u128) -> (FamilyInput, bool) {
    let category = FamilyCategory::ALL[rng.next(FamilyCategory::ALL.len() as u64) as usize];
    let mut members = Vec::new();
    for (i, relation) in [
        MemberRelation::Father,
        MemberRelation::Mother,
        MemberRelation::Child,
    ]
    .into_iter()
    .enumerate()
    {
        if rng.next(10) == 0 {
            continue;
        }
        let lunar = rng.next(2) == 0;
        let deceased = relation == MemberRelation::Child && category == FamilyCategory::Bereaved;
        members.push(MemberInput {
            id: Uuid::from_u128(n << 8 | i as u128),
            name: "钱秀英".into(),
            relation,
            birth: Some(Birth {
                calendar: if lunar {
                    BirthCalendar::Lunar
                } else {
                    BirthCalendar::Solar
                },
                year: Some(1950 + rng.next(50) as i32),
                month: 1 + rng.next(12) as u32,
                day: 1 + rng.next(if lunar { 30 } else { 28 }) as u32,
                leap: false,
            }),
            deceased,
            death_date: deceased.then(|| day(0) - Days::new(rng.next(5000))),
        });
    }
    let family = FamilyInput {
        id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n),
        category,
        status: FamilyStatus::Active,
        members,
        preferences: Preferences {
            blackout_weekdays: if rng.next(4) == 0 {
                vec![Weekday::Sun]
            } else {
                vec![]
            },
            no_festive_visits: rng.next(10) == 0,
            ..Preferences::default()
        },
        first_visit_done: rng.next(5) != 0,
    };
    (family, rng.next(2) == 0)
}

/// Untimed: plans 10,000 generated families over 60 days and reports the time taken (run
/// with `--release --nocapture` for a realistic figure).
#[test]
fn ten_thousand_families_over_sixty_days() {
    let mut rng = Lcg(7);
    let families: Vec<(FamilyInput, Vec<Rule>)> = (0..10_000)
        .map(|n| {
            let (f, elderly) = generated_family(&mut rng, n);
            let rules = default_rules(f.category, elderly);
            (f, rules)
        })
        .collect();
    let from = NaiveDate::from_ymd_opt(2026, 9, 1).unwrap();
    let to = from + Days::new(59);
    let started = Instant::now();
    let mut visits = 0;
    let mut merged = 0;
    for (f, rules) in &families {
        let p = plan_family(f, rules, from, to, Shanghai);
        visits += p.visits.len();
        merged += p.visits.iter().filter(|v| v.components.len() > 1).count();
    }
    let elapsed = started.elapsed();
    println!(
        "planned {visits} visits ({merged} merged) for {} families in {elapsed:?}",
        families.len()
    );
    // Every family gets at least its weekly calls and monthly visits.
    assert!(visits >= families.len() * 10, "{visits}");
    assert!(merged > 0);
}
