use super::*;
use crate::calendar::{LunarDate, lunar_to_solar, month_days};
use crate::rules::{default_rules, grief_rules};
use chrono_tz::Asia::Shanghai;
use std::collections::BTreeSet;

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

const FAMILY: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
const MOTHER: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002);
const FATHER: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0003);
const CHILD: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0004);

fn member(id: Uuid, name: &str, relation: MemberRelation, birth: Option<Birth>) -> MemberInput {
    MemberInput {
        id,
        name: name.into(),
        relation,
        birth,
        deceased: false,
        death_date: None,
    }
}

fn solar(month: u32, day: u32) -> Option<Birth> {
    Some(Birth {
        calendar: BirthCalendar::Solar,
        year: Some(1958),
        month,
        day,
        leap: false,
    })
}

fn lunar(month: u32, day: u32) -> Option<Birth> {
    Some(Birth {
        calendar: BirthCalendar::Lunar,
        year: Some(1958),
        month,
        day,
        leap: false,
    })
}

fn family(category: FamilyCategory, members: Vec<MemberInput>) -> FamilyInput {
    FamilyInput {
        id: FAMILY,
        category,
        status: FamilyStatus::Active,
        members,
        preferences: Preferences::default(),
        first_visit_done: true,
    }
}

fn mother(birth: Option<Birth>) -> FamilyInput {
    family(
        FamilyCategory::DaughtersOnly,
        vec![member(MOTHER, "钱秀英", MemberRelation::Mother, birth)],
    )
}

/// 失独 parents whose son 小明 was born on lunar 三月初八 and died on 2019-07-20.
fn bereaved() -> FamilyInput {
    let mut child = member(CHILD, "小明", MemberRelation::Child, lunar(3, 8));
    child.deceased = true;
    child.death_date = Some(d(2019, 7, 20));
    family(
        FamilyCategory::Bereaved,
        vec![
            member(MOTHER, "钱秀英", MemberRelation::Mother, lunar(10, 2)),
            member(FATHER, "张建国", MemberRelation::Father, solar(5, 1)),
            child,
        ],
    )
}

fn only(key: &str, rules: &[Rule]) -> Vec<Rule> {
    rules.iter().filter(|r| r.key == key).cloned().collect()
}

fn plan(f: &FamilyInput, rules: &[Rule], from: NaiveDate, to: NaiveDate) -> Plan {
    plan_family(f, rules, from, to, Shanghai)
}

fn with_kind(p: &Plan, kind: VisitKind) -> Vec<&PlannedVisit> {
    p.visits
        .iter()
        .filter(|v| v.kinds.contains(&kind))
        .collect()
}

fn shanghai_midnight(day: NaiveDate) -> DateTime<Utc> {
    // China has kept UTC+8 all year since 1991.
    day.and_time(NaiveTime::MIN).and_utc() - chrono::TimeDelta::hours(8)
}

#[test]
fn festival_table_matches_the_calendar() {
    for (i, &f) in Festival::ALL.iter().enumerate() {
        assert_eq!(f as usize, i, "discriminant of {f}");
    }
    for year in [MIN_YEAR, 1999, 2026, 2027, 2033, MAX_YEAR] {
        for f in Festival::ALL {
            assert_eq!(festival_days(f, year), calendar::festival_dates(f, year));
        }
    }
    assert!(festival_days(Festival::SpringFestival, MAX_YEAR + 1).is_empty());
}

#[test]
fn keys_follow_the_documented_format() {
    let f = mother(solar(12, 10));
    let rules = default_rules(FamilyCategory::DaughtersOnly, false);
    let p = plan(&f, &rules, d(2026, 11, 1), d(2026, 12, 31));
    let prefix = format!("{FAMILY}:");
    for v in &p.visits {
        assert!(v.unique_key.starts_with(&prefix), "{}", v.unique_key);
        assert!(v.unique_key.chars().count() <= MAX_KEY_CHARS);
    }
    let calls: Vec<&str> = p
        .visits
        .iter()
        .filter(|v| v.channel == Channel::PhoneCall)
        .map(|v| &v.unique_key[prefix.len()..])
        .collect();
    assert!(calls.len() >= 8, "{calls:?}");
    for c in &calls {
        let week = c.strip_prefix("checkin-call:2026-W").unwrap();
        assert!((45..=53).contains(&week.parse::<u32>().unwrap()), "{c}");
    }
    let birthday = format!("birthday:{MOTHER}:2026");
    let visit = p
        .visits
        .iter()
        .find(|v| v.components.iter().any(|c| c.ends_with(&birthday)))
        .unwrap();
    assert_eq!(visit.reasons.last().unwrap(), "母亲 钱秀英 生日");
    // Everything else is a monthly check-in of November or December.
    for v in p.visits.iter().filter(|v| v.kinds == [VisitKind::Checkin]) {
        let rest = &v.unique_key[prefix.len()..];
        assert!(
            rest.starts_with("checkin-call:")
                || rest == "checkin-visit:2026-11"
                || rest == "checkin-visit:2026-12",
            "{rest}"
        );
    }
}

#[test]
fn checkin_periods_are_anchored_to_the_epoch_not_to_from() {
    let f = mother(None);
    let rules = only(
        "checkin-visit",
        &default_rules(FamilyCategory::Hardship, false),
    );
    let a = plan(&f, &rules, d(2026, 1, 1), d(2026, 12, 31));
    assert_eq!(a.visits.len(), 12);
    let start_day = a.visits[0].date.day();
    for (n, v) in a.visits.iter().enumerate() {
        // The whole month-long period, the same day of every month.
        assert_eq!(v.date, d(2026, n as u32 + 1, start_day));
        assert_eq!(v.window_start, shanghai_midnight(v.date));
        let next = v.date.checked_add_months(chrono::Months::new(1)).unwrap();
        assert_eq!(v.window_end, shanghai_midnight(next));
        assert_eq!(v.reasons, ["每月走访"]);
        assert!(v.assign_to_cadre);
    }
    // Any other `from` gives the same periods and keys.
    for from in [d(2026, 3, 7), d(2026, 3, 28), d(2026, 2, 1)] {
        let b = plan(&f, &rules, from, d(2026, 12, 31));
        let tail: Vec<_> = a.visits.iter().filter(|v| v.date >= from).collect();
        assert_eq!(b.visits.iter().collect::<Vec<_>>(), tail);
    }
    // Every two weeks: the same weeks whatever `from` is.
    let mut fortnightly = rules[0].clone();
    fortnightly.kind = RuleKind::Checkin {
        every: 2,
        unit: PeriodUnit::Week,
    };
    fortnightly.window_days = 14;
    let rules = [fortnightly];
    let a = plan(&f, &rules, d(2026, 1, 1), d(2026, 6, 30));
    let b = plan(&f, &rules, d(2026, 1, 8), d(2026, 6, 30));
    let gaps: BTreeSet<i64> = a
        .visits
        .windows(2)
        .map(|w| (w[1].date - w[0].date).num_days())
        .collect();
    assert_eq!(gaps, BTreeSet::from([14]));
    assert_eq!(a.visits.last(), b.visits.last());
    assert_eq!(a.visits[0].reasons, ["每2周走访"]);
}

#[test]
fn the_phase_spreads_families_over_the_month() {
    let rules = only(
        "checkin-visit",
        &default_rules(FamilyCategory::Hardship, false),
    );
    let mut per_day = [0u32; 32];
    for n in 0..300u128 {
        let mut f = mother(None);
        // v7-like ids: a shared prefix, differing in the low bits.
        f.id = Uuid::from_u128(0x0190_1234_5678_7000_8000_0000_0000_0000 + n);
        let p = plan(&f, &rules, d(2026, 11, 1), d(2026, 11, 30));
        assert_eq!(p.visits.len(), 1);
        per_day[p.visits[0].date.day() as usize] += 1;
    }
    let used = per_day.iter().filter(|&&n| n > 0).count();
    assert!(used >= 25, "{per_day:?}");
    assert!(per_day.iter().all(|&n| n <= 25), "{per_day:?}");
}

#[test]
fn a_birthday_visit_lands_on_or_just_before_the_birthday() {
    let f = mother(solar(12, 10));
    let rules = only("birthday", &default_rules(FamilyCategory::Hardship, false));
    let p = plan(&f, &rules, d(2026, 12, 1), d(2026, 12, 31));
    let [v] = &p.visits[..] else { panic!("{p:?}") };
    assert_eq!(v.unique_key, format!("{FAMILY}:birthday:{MOTHER}:2026"));
    assert_eq!(v.components, std::slice::from_ref(&v.unique_key));
    assert_eq!(v.date, d(2026, 12, 10));
    assert_eq!(v.window_start, shanghai_midnight(d(2026, 12, 7)));
    assert_eq!(v.window_end, shanghai_midnight(d(2026, 12, 11)));
    // 2026-12-07 00:00 in Shanghai is 12-06 16:00 UTC.
    assert_eq!(v.window_start.to_rfc3339(), "2026-12-06T16:00:00+00:00");
    assert_eq!(v.kinds, [VisitKind::MemberBirthday]);
    assert!(!v.gentle && !v.assign_to_cadre);
    // The occasion decides the horizon, not the window: a birthday on `from` is planned,
    // one the day after `to` is not.
    assert_eq!(
        plan(&f, &rules, d(2026, 12, 10), d(2026, 12, 10)).visits,
        p.visits
    );
    assert!(
        plan(&f, &rules, d(2026, 12, 1), d(2026, 12, 9))
            .visits
            .is_empty()
    );
}

#[test]
fn lunar_day_30_is_kept_on_the_29th_of_a_short_month() {
    let year = (2025..2060)
        .find(|&y| month_days(y, 8, false) == Some(29))
        .unwrap();
    let f = mother(lunar(8, 30));
    let rules = only("birthday", &default_rules(FamilyCategory::Hardship, false));
    let p = plan(&f, &rules, d(year, 1, 1), d(year, 12, 31));
    let [v] = &p.visits[..] else { panic!("{p:?}") };
    let kept = lunar_to_solar(LunarDate {
        year,
        month: 8,
        day: 29,
        leap: false,
    })
    .unwrap();
    assert_eq!(v.date, kept);
    assert_eq!(v.reasons, ["母亲 钱秀英 农历生日"]);
    assert_eq!(v.unique_key, format!("{FAMILY}:birthday:{MOTHER}:{year}"));
}

#[test]
fn a_12th_month_lunar_birthday_in_january_is_keyed_by_its_lunar_year() {
    // Lunar 腊月初五 of 2025 falls in January 2026.
    let date = lunar_to_solar(LunarDate {
        year: 2025,
        month: 12,
        day: 5,
        leap: false,
    })
    .unwrap();
    assert_eq!((date.year(), date.month()), (2026, 1));
    let f = mother(lunar(12, 5));
    let rules = only("birthday", &default_rules(FamilyCategory::Hardship, false));
    let p = plan(&f, &rules, d(2026, 1, 1), d(2026, 12, 31));
    let keys: Vec<&str> = p.visits.iter().map(|v| v.unique_key.as_str()).collect();
    // Lunar 2026's 腊月初五 is in 2027, outside the horizon.
    assert_eq!(keys, [format!("{FAMILY}:birthday:{MOTHER}:2025")]);
    assert_eq!(p.visits[0].date, date);
    // A horizon that starts just after 元旦 still finds it.
    let p = plan(&f, &rules, d(2026, 1, 2), d(2026, 2, 28));
    assert_eq!(p.visits.len(), 1);
}

#[test]
fn a_birthday_two_days_after_mid_autumn_is_one_visit() {
    let mid_autumn = d(2026, 9, 25);
    assert_eq!(festival_days(Festival::MidAutumn, 2026), [mid_autumn]);
    let f = mother(solar(9, 27));
    let rules = default_rules(FamilyCategory::DaughtersOnly, false);
    let p = plan(&f, &rules, d(2026, 9, 1), d(2026, 10, 31));
    let merged = with_kind(&p, VisitKind::Festival(Festival::MidAutumn));
    let [v] = &merged[..] else { panic!("{p:?}") };
    assert!(v.kinds.contains(&VisitKind::MemberBirthday), "{v:?}");
    assert!(v.reasons.contains(&"中秋节慰问".to_string()));
    assert!(v.reasons.contains(&"母亲 钱秀英 生日".to_string()));
    assert_eq!(with_kind(&p, VisitKind::MemberBirthday).len(), 1);
    // The earlier occasion's window, the larger team.
    assert_eq!(v.date, mid_autumn);
    assert_eq!(v.window_start, shanghai_midnight(d(2026, 9, 20)));
    assert_eq!(v.window_end, shanghai_midnight(d(2026, 9, 26)));
    assert_eq!(v.volunteers_needed, 2);
    // The key is built from the sorted component keys.
    let birthday = format!("birthday:{MOTHER}:2026");
    assert!(v.components.contains(&format!("{FAMILY}:{birthday}")));
    assert!(
        v.components
            .contains(&format!("{FAMILY}:festival-中秋:2026"))
    );
    let parts: Vec<&str> = v
        .components
        .iter()
        .map(|c| &c[FAMILY.to_string().len() + 1..])
        .collect();
    assert_eq!(v.unique_key, format!("{FAMILY}:{}", parts.join("+")));
    // Re-planning from elsewhere gives the same merged visit.
    for from in [d(2026, 9, 20), d(2026, 9, 25)] {
        let again = plan(&f, &rules, from, d(2026, 10, 31));
        assert!(again.visits.contains(v), "from {from}");
    }
    // Even when the horizon ends between the two occasions.
    let cut = plan(&f, &rules, d(2026, 9, 1), d(2026, 9, 25));
    assert!(cut.visits.contains(v));
    assert!(
        plan(&f, &rules, d(2026, 9, 26), d(2026, 10, 31))
            .visits
            .iter()
            .all(|w| w.unique_key != v.unique_key && !w.kinds.contains(&VisitKind::MemberBirthday))
    );
}

#[test]
fn a_festival_visit_satisfies_the_checkin_of_its_period() {
    let f = mother(None);
    let rules = default_rules(FamilyCategory::DaughtersOnly, false);
    let p = plan(&f, &rules, d(2026, 8, 1), d(2026, 12, 31));
    let home: Vec<&PlannedVisit> = p
        .visits
        .iter()
        .filter(|v| v.channel == Channel::HomeVisit)
        .collect();
    let festival = with_kind(&p, VisitKind::Festival(Festival::MidAutumn));
    let [v] = &festival[..] else { panic!("{p:?}") };
    assert!(v.kinds.contains(&VisitKind::Checkin), "{v:?}");
    assert_eq!(v.reasons, ["每月走访", "中秋节慰问"]);
    // Festival volunteers are claimed, so the merged visit is open for claiming.
    assert!(!v.assign_to_cadre);
    // One home visit per monthly period: no separate check-in that month.
    let periods: BTreeSet<String> = home
        .iter()
        .flat_map(|v| v.components.iter())
        .filter(|c| c.contains(":checkin-visit:"))
        .cloned()
        .collect();
    assert_eq!(
        periods.len(),
        home.len(),
        "each home visit holds one period"
    );
    // A phone call is never merged with a home visit.
    assert!(p.visits.iter().all(|v| v.channel == Channel::HomeVisit
        || v.components.iter().all(|c| c.contains(":checkin-call:"))));
}

#[test]
fn a_grief_day_is_never_merged_with_a_festive_visit() {
    // The son died two days after 中秋 2019; the anniversary of 2026 falls two days after
    // 中秋 2026 (09-25).
    let mut f = bereaved();
    f.members[2].death_date = Some(d(2019, 9, 27));
    let rules = default_rules(FamilyCategory::Bereaved, false);
    let p = plan(&f, &rules, d(2026, 9, 1), d(2026, 10, 31));
    let grief = with_kind(&p, VisitKind::DeathAnniversary);
    let [g] = &grief[..] else { panic!("{p:?}") };
    assert!(g.gentle);
    assert_eq!(g.date, d(2026, 9, 27));
    assert!(g.required_skills.contains(&Skill::Counselling));
    assert!(g.reasons.contains(&"孩子 小明 忌日 关怀".to_string()));
    assert!(
        g.kinds
            .iter()
            .all(|k| matches!(k, VisitKind::DeathAnniversary | VisitKind::Checkin))
    );
    let festive = with_kind(&p, VisitKind::Festival(Festival::MidAutumn));
    let [m] = &festive[..] else { panic!("{p:?}") };
    assert!(!m.gentle);
    assert_ne!(m.unique_key, g.unique_key);
}

#[test]
fn a_bereaved_family_over_a_year() {
    let mut f = bereaved();
    f.preferences.no_festive_visits = true;
    let rules = default_rules(FamilyCategory::Bereaved, true);
    let p = plan(&f, &rules, d(2026, 1, 1), d(2026, 12, 31));

    let birthday = with_kind(&p, VisitKind::ChildBirthday);
    let [b] = &birthday[..] else { panic!("{p:?}") };
    let kept = lunar_to_solar(LunarDate {
        year: 2026,
        month: 3,
        day: 8,
        leap: false,
    })
    .unwrap();
    assert_eq!(b.date, kept);
    assert!(b.reasons.contains(&"孩子 小明 农历生日 关怀".to_string()));
    assert!(
        b.components
            .contains(&format!("{FAMILY}:child-birthday:{CHILD}:2026"))
    );

    let anniversary = with_kind(&p, VisitKind::DeathAnniversary);
    let [a] = &anniversary[..] else {
        panic!("{p:?}")
    };
    assert_eq!(a.date, d(2026, 7, 20));
    assert_eq!(a.channel, Channel::HomeVisit);

    let qingming = with_kind(&p, VisitKind::Qingming);
    let [q] = &qingming[..] else { panic!("{p:?}") };
    assert_eq!(q.reasons.last().unwrap(), "清明 关怀");
    assert_eq!(q.channel, Channel::PhoneCall);
    // Around 清明 (04-05): three days either side.
    assert_eq!(q.window_start, shanghai_midnight(d(2026, 4, 2)));
    assert_eq!(q.window_end, shanghai_midnight(d(2026, 4, 9)));

    for v in [b, a, q] {
        assert!(v.gentle);
        assert!(v.required_skills.contains(&Skill::Counselling));
        assert!(!v.assign_to_cadre);
    }
    for v in p.visits.iter().filter(|v| v.gentle) {
        assert!(
            !v.kinds
                .iter()
                .any(|k| matches!(k, VisitKind::Festival(_) | VisitKind::MemberBirthday))
        );
    }
    // No festival visit at all; each one is reported.
    assert!(
        p.visits
            .iter()
            .all(|v| !v.kinds.iter().any(|k| matches!(k, VisitKind::Festival(_))))
    );
    let dropped: Vec<(&str, NaiveDate)> = p
        .skipped
        .iter()
        .filter(|s| s.reason == "家庭不希望节日慰问")
        .map(|s| (&s.key[37..], s.date))
        .collect();
    assert_eq!(
        dropped,
        [
            ("festival-春节:2026", d(2026, 2, 17)),
            ("festival-中秋:2026", d(2026, 9, 25)),
            ("festival-重阳:2026", d(2026, 10, 18)),
        ]
    );
    // Living members' birthdays are still visited; the son's is not a "member birthday".
    let birthdays = with_kind(&p, VisitKind::MemberBirthday);
    assert_eq!(birthdays.len(), 2);
    assert!(birthdays.iter().all(|v| !v.gentle));
    // Weekly calls and monthly visits all year.
    assert!(
        p.visits
            .iter()
            .filter(|v| v.channel == Channel::PhoneCall)
            .count()
            >= 52
    );
}

#[test]
fn grief_days_need_a_lost_child() {
    let mut rules = default_rules(FamilyCategory::EmptyNest, true);
    rules.extend(grief_rules());
    // Not bereaved: the grief rules give nothing.
    let f = mother(solar(3, 3));
    let p = plan(&f, &rules, d(2026, 1, 1), d(2026, 12, 31));
    assert!(p.visits.iter().all(|v| !v.gentle));
    // Another category with a deceased child is bereaved.
    let mut f = bereaved();
    f.category = FamilyCategory::EmptyNest;
    assert!(f.is_bereaved());
    let p = plan(&f, &rules, d(2026, 1, 1), d(2026, 12, 31));
    assert_eq!(with_kind(&p, VisitKind::DeathAnniversary).len(), 1);
    assert_eq!(with_kind(&p, VisitKind::ChildBirthday).len(), 1);
    assert_eq!(with_kind(&p, VisitKind::Qingming).len(), 1);
}

#[test]
fn a_blackout_weekday_moves_the_visit() {
    // 2026-12-10 is a Thursday.
    assert_eq!(d(2026, 12, 10).weekday(), Weekday::Thu);
    let mut f = mother(solar(12, 10));
    f.preferences.blackout_weekdays = vec![Weekday::Thu];
    let rules = only("birthday", &default_rules(FamilyCategory::Hardship, false));
    let p = plan(&f, &rules, d(2026, 12, 1), d(2026, 12, 31));
    let [v] = &p.visits[..] else { panic!("{p:?}") };
    assert_eq!(v.date, d(2026, 12, 9));
    // The Thursday is trimmed off the end of the window.
    assert_eq!(v.window_start, shanghai_midnight(d(2026, 12, 7)));
    assert_eq!(v.window_end, shanghai_midnight(d(2026, 12, 10)));
    // A blackout date works the same way, and the nearest earlier day wins.
    f.preferences.blackout_weekdays.clear();
    f.preferences.blackout_dates = vec![d(2026, 12, 10), d(2026, 12, 9)];
    let p = plan(&f, &rules, d(2026, 12, 1), d(2026, 12, 31));
    assert_eq!(p.visits[0].date, d(2026, 12, 8));
    // In a check-in's month-long window the visit moves later, inside its period.
    let mut f = mother(None);
    let rules = only(
        "checkin-visit",
        &default_rules(FamilyCategory::Hardship, false),
    );
    let start = plan(&f, &rules, d(2026, 12, 1), d(2026, 12, 31)).visits[0].date;
    f.preferences.blackout_weekdays = vec![start.weekday()];
    let moved = &plan(&f, &rules, d(2026, 12, 1), d(2026, 12, 31)).visits[0];
    assert_eq!(moved.date, start.succ_opt().unwrap());
    assert_eq!(moved.window_start, shanghai_midnight(moved.date));
}

#[test]
fn a_fully_blacked_out_window_is_skipped_with_the_reason() {
    let mut f = mother(solar(12, 10));
    f.preferences.blackout_dates = (7..=10).map(|day| d(2026, 12, day)).collect();
    let rules = only("birthday", &default_rules(FamilyCategory::Hardship, false));
    let p = plan(&f, &rules, d(2026, 12, 1), d(2026, 12, 31));
    assert!(p.visits.is_empty());
    assert_eq!(
        p.skipped,
        [Skipped {
            key: format!("{FAMILY}:birthday:{MOTHER}:2026"),
            date: d(2026, 12, 10),
            reason: "窗口期内均为家庭不便日期".into(),
        }]
    );
    // With the monthly check-in the birthday is still blacked out; the check-in is not.
    let rules = default_rules(FamilyCategory::Hardship, false);
    let p = plan(&f, &rules, d(2026, 12, 1), d(2026, 12, 31));
    assert!(with_kind(&p, VisitKind::MemberBirthday).is_empty());
    assert_eq!(p.skipped.len(), 1);
}

#[test]
fn a_paused_or_closed_family_gets_nothing() {
    let rules = default_rules(FamilyCategory::Bereaved, true);
    for (status, reason) in [
        (FamilyStatus::Paused, "家庭已暂停"),
        (FamilyStatus::Closed, "家庭已销册"),
    ] {
        let mut f = bereaved();
        f.status = status;
        let p = plan(&f, &rules, d(2026, 1, 1), d(2026, 12, 31));
        assert!(p.visits.is_empty());
        assert_eq!(
            p.skipped,
            [Skipped {
                key: FAMILY.to_string(),
                date: d(2026, 1, 1),
                reason: reason.into()
            }]
        );
    }
}

#[test]
fn the_first_visit_to_a_bereaved_family_needs_two_volunteers() {
    let mut f = bereaved();
    f.first_visit_done = false;
    let rules = default_rules(FamilyCategory::Bereaved, false);
    let p = plan(&f, &rules, d(2026, 11, 1), d(2026, 12, 31));
    let first = p
        .visits
        .iter()
        .find(|v| v.channel == Channel::HomeVisit)
        .unwrap();
    assert!(first.first_visit);
    assert_eq!(first.volunteers_needed, 2);
    assert_eq!(first.reasons.last().unwrap(), "首次入户走访，两人同行");
    assert_eq!(p.visits.iter().filter(|v| v.first_visit).count(), 1);
    assert!(
        p.visits
            .iter()
            .filter(|v| v.channel == Channel::PhoneCall)
            .all(|v| v.volunteers_needed == 1 && !v.first_visit)
    );
    // Once someone has been, nothing changes; keys never do.
    f.first_visit_done = true;
    let later = plan(&f, &rules, d(2026, 11, 1), d(2026, 12, 31));
    assert!(later.visits.iter().all(|v| !v.first_visit));
    let keys =
        |p: &Plan| -> Vec<String> { p.visits.iter().map(|v| v.unique_key.clone()).collect() };
    assert_eq!(keys(&p), keys(&later));
    // Not bereaved: no special first visit.
    let mut f = mother(None);
    f.first_visit_done = false;
    let p = plan(&f, &rules, d(2026, 11, 1), d(2026, 12, 31));
    assert!(p.visits.iter().all(|v| !v.first_visit));
}

#[test]
fn preferences_are_carried() {
    let mut f = mother(solar(12, 10));
    f.preferences.preferred_visitor_gender = Some(Gender::Female);
    let mut rules = only("birthday", &default_rules(FamilyCategory::Hardship, false));
    rules[0].preferred_time = Some(TimeOfDay::Morning);
    let p = plan(&f, &rules, d(2026, 12, 1), d(2026, 12, 31));
    assert_eq!(p.visits[0].preferred_time, Some(TimeOfDay::Morning));
    assert_eq!(p.visits[0].preferred_visitor_gender, Some(Gender::Female));
    // The family's wish wins over the rule's.
    f.preferences.preferred_time = Some(TimeOfDay::Afternoon);
    let p = plan(&f, &rules, d(2026, 12, 1), d(2026, 12, 31));
    assert_eq!(p.visits[0].preferred_time, Some(TimeOfDay::Afternoon));
}

#[test]
fn members_without_a_birthday_or_alive_get_none() {
    let mut f = bereaved();
    f.members.push(member(
        Uuid::from_u128(9),
        "无生日",
        MemberRelation::Grandchild,
        None,
    ));
    // Solar 04-31 does not exist: ignored, not a panic.
    f.members.push(member(
        Uuid::from_u128(10),
        "",
        MemberRelation::Other,
        solar(4, 31),
    ));
    let rules = only("birthday", &default_rules(FamilyCategory::Bereaved, false));
    let p = plan(&f, &rules, d(2026, 1, 1), d(2026, 12, 31));
    let people: BTreeSet<String> = p.visits.iter().flat_map(|v| v.reasons.clone()).collect();
    assert_eq!(
        people,
        BTreeSet::from([
            "母亲 钱秀英 农历生日".to_string(),
            "父亲 张建国 生日".to_string()
        ])
    );
}

#[test]
fn a_death_anniversary_on_29_february() {
    let mut f = bereaved();
    f.members[2].death_date = Some(d(2020, 2, 29));
    let rules = only(
        "death-anniversary",
        &default_rules(FamilyCategory::Bereaved, false),
    );
    let p = plan(&f, &rules, d(2027, 1, 1), d(2028, 12, 31));
    let dates: Vec<NaiveDate> = p.visits.iter().map(|v| v.date).collect();
    assert_eq!(dates, [d(2027, 2, 28), d(2028, 2, 29)]);
    // No anniversary in the year of the death itself.
    let p = plan(&f, &rules, d(2020, 1, 1), d(2020, 12, 31));
    assert!(p.visits.is_empty());
}

#[test]
fn laba_twice_in_one_gregorian_year_gets_two_keys() {
    let year = (2000..2100)
        .find(|&y| festival_days(Festival::Laba, y).len() == 2)
        .unwrap();
    let mut r = only(
        "festival-中秋",
        &default_rules(FamilyCategory::Hardship, false),
    )
    .remove(0);
    r.key = "festival-腊八".into();
    r.kind = RuleKind::Festival(Festival::Laba);
    let p = plan(&mother(None), &[r], d(year, 1, 1), d(year, 12, 31));
    let keys: Vec<String> = p.visits.iter().map(|v| v.unique_key.clone()).collect();
    assert_eq!(
        keys,
        [
            format!("{FAMILY}:festival-腊八:{}", year - 1),
            format!("{FAMILY}:festival-腊八:{year}")
        ]
    );
    assert_eq!(p.visits[0].reasons, ["腊八节慰问"]);
}

#[test]
fn a_very_long_merged_key_is_hashed() {
    // Five relatives sharing a birthday: five components of ~50 characters.
    let members = (0..5)
        .map(|n| {
            member(
                Uuid::from_u128(100 + n),
                "",
                MemberRelation::Other,
                solar(6, 1),
            )
        })
        .collect();
    let f = family(FamilyCategory::Hardship, members);
    let rules = only("birthday", &default_rules(FamilyCategory::Hardship, false));
    let p = plan(&f, &rules, d(2026, 6, 1), d(2026, 6, 1));
    let [v] = &p.visits[..] else { panic!("{p:?}") };
    assert_eq!(v.components.len(), 5);
    assert!(v.unique_key.starts_with(&format!("{FAMILY}:merged-")));
    assert_eq!(v.unique_key.len(), 36 + 8 + 16);
    assert_eq!(v.reasons, ["其他 生日"]);
    assert_eq!(
        plan(&f, &rules, d(2026, 5, 1), d(2026, 6, 30)).visits,
        p.visits
    );
}

#[test]
fn unusable_rules_are_reported_and_the_rest_planned() {
    let f = mother(solar(12, 10));
    let mut rules = only("birthday", &default_rules(FamilyCategory::Hardship, false));
    rules.push(rules[0].clone());
    let mut bad = rules[0].clone();
    bad.key = "bad".into();
    bad.volunteers_needed = 9;
    rules.push(bad);
    let p = plan(&f, &rules, d(2026, 12, 1), d(2026, 12, 31));
    assert_eq!(p.visits.len(), 1);
    let reasons: Vec<&str> = p.skipped.iter().map(|s| s.reason.as_str()).collect();
    assert_eq!(reasons.len(), 2);
    assert!(reasons.contains(&"规则重复"));
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("规则无效：") && r.contains("volunteers_needed"))
    );
}

#[test]
fn an_empty_or_reversed_horizon_plans_nothing() {
    let rules = default_rules(FamilyCategory::Bereaved, true);
    assert_eq!(
        plan(&bereaved(), &rules, d(2026, 2, 1), d(2026, 1, 1)),
        Plan::default()
    );
}

#[test]
fn blackout_fit() {
    let b = Blackout::new(&Preferences {
        blackout_weekdays: vec![Weekday::Sat, Weekday::Sun],
        blackout_dates: vec![d(2026, 12, 9), d(2026, 12, 9)],
        ..Preferences::default()
    });
    // Mon 12-07 .. Sun 12-13; the 9th is out too.
    let fit = b
        .fit(d(2026, 12, 9), d(2026, 12, 5), d(2026, 12, 14))
        .unwrap();
    assert_eq!(
        fit,
        Fit {
            day: d(2026, 12, 8),
            start: d(2026, 12, 7),
            end: d(2026, 12, 12)
        }
    );
    assert_eq!(
        b.fit(d(2026, 12, 12), d(2026, 12, 12), d(2026, 12, 14)),
        None
    );
}

#[test]
fn local_midnight_survives_a_dst_gap() {
    // São Paulo skipped midnight on 2018-11-04 (00:00 → 01:00).
    let t = local_midnight(chrono_tz::America::Sao_Paulo, d(2018, 11, 4));
    assert_eq!(t.to_rfc3339(), "2018-11-04T03:00:00+00:00");
    let t = local_midnight(Shanghai, d(2026, 1, 1));
    assert_eq!(t.to_rfc3339(), "2025-12-31T16:00:00+00:00");
}
