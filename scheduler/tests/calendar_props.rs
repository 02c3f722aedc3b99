//! Property tests: no calendar function panics on any input, and conversions round-trip.

use chrono::{Datelike, NaiveDate};
use proptest::prelude::*;
use scheduler::calendar::{
    CalendarKind, Festival, LunarDate, MAX_YEAR, MIN_YEAR, birthday_in_year, birthdays_jsonl,
    festival_dates, festivals_between, festivals_jsonl, leap_month, lunar_to_solar, month_days,
    next_birthday_on_or_after, solar_to_lunar,
};

/// Any date chrono can represent, half of them near the supported range.
fn any_date() -> impl Strategy<Value = NaiveDate> {
    let near = NaiveDate::from_ymd_opt(MIN_YEAR - 2, 1, 1)
        .unwrap()
        .num_days_from_ce()
        ..=NaiveDate::from_ymd_opt(MAX_YEAR + 2, 12, 31)
            .unwrap()
            .num_days_from_ce();
    let all = NaiveDate::MIN.num_days_from_ce()..=NaiveDate::MAX.num_days_from_ce();
    prop_oneof![near, all].prop_map(|d| NaiveDate::from_num_days_from_ce_opt(d).unwrap())
}

/// Any year, half of them near the supported range.
fn any_year() -> impl Strategy<Value = i32> {
    prop_oneof![MIN_YEAR - 3..=MAX_YEAR + 3, any::<i32>()]
}

/// Any month or day number, mostly small ones.
fn any_small() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0u32..=32, 1 => any::<u32>()]
}

fn any_kind() -> impl Strategy<Value = CalendarKind> {
    prop_oneof![Just(CalendarKind::Solar), Just(CalendarKind::Lunar)]
}

proptest! {
    #[test]
    fn lunar_to_solar_never_panics_and_round_trips(
        year in any_year(), month in any_small(), day in any_small(), leap: bool,
    ) {
        let lunar = LunarDate { year, month, day, leap };
        if let Ok(solar) = lunar_to_solar(lunar) {
            prop_assert_eq!(solar_to_lunar(solar), Ok(lunar));
            prop_assert_eq!(month_days(year, month, leap).map(|n| day <= n), Some(true));
        }
        let _ = leap_month(year);
    }

    #[test]
    fn solar_to_lunar_never_panics_and_round_trips(date in any_date()) {
        if let Ok(lunar) = solar_to_lunar(date) {
            prop_assert_eq!(lunar_to_solar(lunar), Ok(date));
            prop_assert!((MIN_YEAR..=MAX_YEAR).contains(&lunar.year));
        }
    }

    #[test]
    fn birthday_in_year_never_panics_and_stays_in_its_year(
        kind in any_kind(), month in any_small(), day in any_small(), leap: bool,
        year in any_year(),
    ) {
        if let Ok(date) = birthday_in_year(kind, month, day, leap, year) {
            match kind {
                CalendarKind::Solar => {
                    prop_assert_eq!(date.year(), year);
                    prop_assert_eq!(date.month(), month);
                }
                CalendarKind::Lunar => {
                    let lunar = solar_to_lunar(date).unwrap();
                    prop_assert_eq!((lunar.year, lunar.month), (year, month));
                    prop_assert!(lunar.day <= day);
                }
            }
        }
    }

    #[test]
    fn next_birthday_never_panics_and_is_within_a_year(
        kind in any_kind(), month in any_small(), day in any_small(), leap: bool,
        from in any_date(),
    ) {
        if let Ok(next) = next_birthday_on_or_after(kind, month, day, leap, from) {
            prop_assert!(next >= from);
            // A lunar year has at most 385 days; allow for a 30th kept on the 29th.
            prop_assert!((next - from).num_days() <= 385);
        }
    }

    #[test]
    fn festivals_never_panic(year in any_year(), from in any_year(), to in any_year()) {
        for festival in Festival::ALL {
            for date in festival_dates(festival, year) {
                prop_assert_eq!(date.year(), year);
            }
        }
        let list = festivals_between(from, to, &[Festival::Laba, Festival::NewYearsEve]);
        prop_assert!(list.windows(2).all(|w| w[0].1 <= w[1].1));
        let mut out = Vec::new();
        let _ = festivals_jsonl(from, to.min(from.saturating_add(3)), &mut out);
    }

    #[test]
    fn birthdays_jsonl_never_panics(input in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut out = Vec::new();
        birthdays_jsonl(input.as_slice(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for line in text.lines() {
            prop_assert!(serde_json::from_str::<serde_json::Value>(line).is_ok(), "{}", line);
        }
    }

    #[test]
    fn birthdays_jsonl_handles_near_valid_lines(
        year in 1890i32..2110, month in 0u32..14, day in 0u32..32, leap: bool,
    ) {
        let input = format!(r#"{{"lunar":"{year:04}-{month:02}-{day:02}","leap":{leap}}}"#);
        let mut out = Vec::new();
        birthdays_jsonl(input.as_bytes(), &mut out).unwrap();
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let ok = birthday_in_year(CalendarKind::Lunar, month, day, leap, year).is_ok();
        prop_assert_eq!(line.get("solar").is_some(), ok);
        prop_assert_eq!(line.get("error").is_some(), !ok);
    }
}
