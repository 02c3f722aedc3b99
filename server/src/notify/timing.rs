//! When a message may reach a person, as plain functions: quiet hours, the daily cap and
//! its digest, reminders too late to be worth sending, and a bereaved family's sensitive
//! days (the child's birthday, the death anniversary, 清明).

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use entity::{BirthCalendar, MemberRelation, family_member};
use scheduler::calendar::{self, CalendarKind, Festival};

/// Local hours in which nothing but emergencies is pushed. `start == end`: none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

/// "21:00" → a time of day.
pub fn parse_hm(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M").ok()
}

fn at_local(tz: Tz, day: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = day.and_time(time);
    tz.from_local_datetime(&local)
        .earliest()
        // A time skipped by a daylight-saving change: an hour later exists.
        .or_else(|| {
            tz.from_local_datetime(&(local + Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&local))
}

/// If `at` falls in quiet hours, the moment they end.
pub fn quiet_until(at: DateTime<Utc>, tz: Tz, q: QuietHours) -> Option<DateTime<Utc>> {
    let local = at.with_timezone(&tz);
    let (day, t) = (local.date_naive(), local.time());
    let end_on = |d: NaiveDate| Some(at_local(tz, d, q.end));
    if q.start > q.end {
        // Over midnight (21:00–08:00).
        if t >= q.start {
            end_on(day.succ_opt()?)
        } else if t < q.end {
            end_on(day)
        } else {
            None
        }
    } else if q.start < q.end && t >= q.start && t < q.end {
        end_on(day)
    } else {
        None
    }
}

/// If `at` falls in any of these quiet hours, the moment none of them holds any more (a
/// family's own hours can start where the association's end).
pub fn quiet_until_all(at: DateTime<Utc>, tz: Tz, all: &[QuietHours]) -> Option<DateTime<Utc>> {
    let mut until = None;
    // Each step leaves one stretch; hours covering the whole day stop after a few.
    for _ in 0..4 {
        let from = until.unwrap_or(at);
        match all.iter().filter_map(|q| quiet_until(from, tz, *q)).max() {
            Some(end) => until = Some(end),
            None => break,
        }
    }
    until
}

/// A family's own quiet hours from `family.do_not_disturb` (`quiet_from`/`quiet_to`,
/// "21:00"), when it set them.
pub fn family_quiet(do_not_disturb: &serde_json::Value) -> Option<QuietHours> {
    let at = |k: &str| parse_hm(do_not_disturb.get(k)?.as_str()?);
    let q = QuietHours {
        start: at("quiet_from")?,
        end: at("quiet_to")?,
    };
    (q.start != q.end).then_some(q)
}

/// The local day `at` falls on, from midnight.
pub fn day_start(at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    at_local(tz, at.with_timezone(&tz).date_naive(), NaiveTime::MIN)
}

/// When the digest of messages held back by today's cap goes out: tomorrow, as soon as
/// quiet hours allow (08:00 with the defaults; 08:00 as well when there are none).
pub fn digest_at(now: DateTime<Utc>, tz: Tz, q: QuietHours) -> DateTime<Utc> {
    let today = now.with_timezone(&tz).date_naive();
    let tomorrow = today.succ_opt().unwrap_or(today);
    let midnight = at_local(tz, tomorrow, NaiveTime::MIN);
    quiet_until(midnight, tz, q)
        .unwrap_or_else(|| at_local(tz, tomorrow, NaiveTime::from_hms_opt(8, 0, 0).unwrap()))
}

/// Why a reminder meant for `due` is too late at `now`, if it is: more than `tolerance`
/// after the moment it could first have gone (the end of quiet hours, for one due in
/// any of them). A message without a tolerance is never too late (news stays news).
pub fn too_late(
    due: DateTime<Utc>,
    now: DateTime<Utc>,
    tolerance: Option<Duration>,
    tz: Tz,
    quiet: &[QuietHours],
) -> Option<String> {
    let tolerance = tolerance?;
    let could_go = quiet_until_all(due, tz, quiet).unwrap_or(due);
    let late = now - could_go;
    (late > tolerance).then(|| {
        format!(
            "too late: meant for {}, {} minutes past (tolerance {} minutes)",
            due.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
            late.num_minutes(),
            tolerance.num_minutes()
        )
    })
}

/// A child a family lost, as its sensitive days need it.
#[derive(Clone, Debug, PartialEq)]
pub struct Loss {
    /// (calendar, month, day, leap month) of the birthday, when known.
    pub birth: Option<(CalendarKind, u32, u32, bool)>,
    pub death: Option<NaiveDate>,
}

impl Loss {
    /// The family's deceased children.
    pub fn of_members(members: &[family_member::Model]) -> Vec<Loss> {
        members
            .iter()
            .filter(|m| m.deceased && m.relation == MemberRelation::Child)
            .map(|m| Loss {
                birth: match (m.birth_month, m.birth_day) {
                    (Some(month), Some(day)) if month > 0 && day > 0 => Some((
                        match m.birth_calendar {
                            BirthCalendar::Solar => CalendarKind::Solar,
                            BirthCalendar::Lunar => CalendarKind::Lunar,
                        },
                        month as u32,
                        day as u32,
                        m.birth_leap_month,
                    )),
                    _ => None,
                },
                death: m.death_date,
            })
            .collect()
    }
}

/// Which sensitive day `day` is for a family that lost these children, if any.
pub fn sensitive_day(day: NaiveDate, losses: &[Loss]) -> Option<&'static str> {
    if losses.is_empty() {
        return None;
    }
    for loss in losses {
        if let Some((kind, month, d, leap)) = loss.birth {
            let year = match kind {
                CalendarKind::Solar => Some(day.year()),
                CalendarKind::Lunar => calendar::solar_to_lunar(day).ok().map(|l| l.year),
            };
            let kept = year.and_then(|y| calendar::birthday_in_year(kind, month, d, leap, y).ok());
            if kept == Some(day) {
                return Some("孩子的生日");
            }
        }
        if let Some(death) = loss.death {
            let kept = calendar::birthday_in_year(
                CalendarKind::Solar,
                death.month(),
                death.day(),
                false,
                day.year(),
            );
            if day.year() > death.year() && kept.ok() == Some(day) {
                return Some("孩子的忌日");
            }
        }
    }
    if calendar::festival_dates(Festival::Qingming, day.year()).contains(&day) {
        return Some("清明");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TZ: Tz = chrono_tz::Asia::Shanghai;

    fn local(s: &str) -> DateTime<Utc> {
        TZ.from_local_datetime(&chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap())
            .unwrap()
            .with_timezone(&Utc)
    }

    fn q(start: &str, end: &str) -> QuietHours {
        QuietHours {
            start: parse_hm(start).unwrap(),
            end: parse_hm(end).unwrap(),
        }
    }

    #[test]
    fn quiet_hours_over_midnight_end_in_the_morning() {
        let night = q("21:00", "08:00");
        assert_eq!(
            quiet_until(local("2026-11-26 21:00"), TZ, night),
            Some(local("2026-11-27 08:00"))
        );
        assert_eq!(
            quiet_until(local("2026-11-26 23:59"), TZ, night),
            Some(local("2026-11-27 08:00"))
        );
        assert_eq!(
            quiet_until(local("2026-11-27 03:00"), TZ, night),
            Some(local("2026-11-27 08:00"))
        );
        assert_eq!(quiet_until(local("2026-11-27 08:00"), TZ, night), None);
        assert_eq!(quiet_until(local("2026-11-27 20:59"), TZ, night), None);
        // Within one day (a midday rest), and none at all.
        let noon = q("12:00", "14:00");
        assert_eq!(
            quiet_until(local("2026-11-27 13:00"), TZ, noon),
            Some(local("2026-11-27 14:00"))
        );
        assert_eq!(quiet_until(local("2026-11-27 14:00"), TZ, noon), None);
        assert_eq!(
            quiet_until(local("2026-11-27 03:00"), TZ, q("00:00", "00:00")),
            None
        );
        // Another time zone: 21:00 there is not 21:00 in Shanghai.
        let utc = chrono_tz::UTC;
        assert_eq!(
            quiet_until(local("2026-11-27 06:00"), utc, night),
            Some(local("2026-11-27 16:00"))
        );
    }

    #[test]
    fn the_digest_goes_the_next_morning() {
        let night = q("21:00", "08:00");
        assert_eq!(
            digest_at(local("2026-11-26 15:00"), TZ, night),
            local("2026-11-27 08:00")
        );
        assert_eq!(
            digest_at(local("2026-11-26 23:30"), TZ, q("22:00", "07:30")),
            local("2026-11-27 07:30")
        );
        assert_eq!(
            digest_at(local("2026-11-26 10:00"), TZ, q("00:00", "00:00")),
            local("2026-11-27 08:00")
        );
        assert_eq!(
            day_start(local("2026-11-26 00:30"), TZ),
            local("2026-11-26 00:00")
        );
    }

    #[test]
    fn a_reminder_late_beyond_its_tolerance_is_too_late_quiet_hours_not_counted() {
        let night = q("21:00", "08:00");
        let hour = Some(Duration::hours(1));
        let due = local("2026-11-26 18:00");
        assert_eq!(
            too_late(due, local("2026-11-26 18:59"), hour, TZ, &[night]),
            None
        );
        let why = too_late(due, local("2026-11-26 19:30"), hour, TZ, &[night]).unwrap();
        assert!(
            why.contains("90 minutes") && why.contains("2026-11-26 18:00"),
            "{why}"
        );
        // Due at night: it could first go at 08:00.
        let night_due = local("2026-11-26 22:00");
        assert_eq!(
            too_late(night_due, local("2026-11-27 08:30"), hour, TZ, &[night]),
            None
        );
        assert!(too_late(night_due, local("2026-11-27 09:30"), hour, TZ, &[night]).is_some());
        // News has no tolerance.
        assert_eq!(
            too_late(due, local("2026-12-26 18:00"), None, TZ, &[night]),
            None
        );
    }

    #[test]
    fn a_familys_own_quiet_hours_add_to_the_associations() {
        let night = q("21:00", "08:00");
        let family = family_quiet(&serde_json::json!({"quiet_from": "20:30", "quiet_to": "09:30"}));
        assert_eq!(family, Some(q("20:30", "09:30")));
        let both = [night, family.unwrap()];
        assert_eq!(
            quiet_until_all(local("2026-11-26 20:45"), TZ, &both),
            Some(local("2026-11-27 09:30"))
        );
        // Hours that begin where the others end are waited out too.
        let morning = q("08:00", "10:00");
        assert_eq!(
            quiet_until_all(local("2026-11-26 23:00"), TZ, &[night, morning]),
            Some(local("2026-11-27 10:00"))
        );
        assert_eq!(quiet_until_all(local("2026-11-27 10:00"), TZ, &both), None);
        // A reminder due in the family's hours is not late for having waited for them.
        let hour = Some(Duration::hours(1));
        let due = local("2026-11-27 09:00");
        assert_eq!(
            too_late(due, local("2026-11-27 10:15"), hour, TZ, &both),
            None
        );
        assert!(too_late(due, local("2026-11-27 10:15"), hour, TZ, &[night]).is_some());
        for unset in [
            serde_json::json!({}),
            serde_json::json!({"quiet_from": "20:30"}),
            serde_json::json!({"quiet_from": "8pm", "quiet_to": "09:30"}),
            serde_json::json!({"quiet_from": "09:00", "quiet_to": "09:00"}),
            serde_json::Value::Null,
        ] {
            assert_eq!(family_quiet(&unset), None, "{unset}");
        }
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn sensitive_days_are_the_childs_birthday_the_anniversary_and_qingming() {
        let lost = [Loss {
            birth: Some((CalendarKind::Solar, 3, 12, false)),
            death: Some(day("2019-08-20")),
        }];
        assert_eq!(sensitive_day(day("2026-03-12"), &lost), Some("孩子的生日"));
        assert_eq!(sensitive_day(day("2026-08-20"), &lost), Some("孩子的忌日"));
        // 清明 2026 is 5 April.
        assert_eq!(sensitive_day(day("2026-04-05"), &lost), Some("清明"));
        assert_eq!(sensitive_day(day("2026-03-13"), &lost), None);
        // Not the day of the death itself (that year has no anniversary yet).
        assert_eq!(sensitive_day(day("2019-08-20"), &lost[..]), None);
        // A family that lost no child has no such days, 清明 included.
        assert_eq!(sensitive_day(day("2026-04-05"), &[]), None);

        // A lunar birthday, 八月十五: 2026-09-25.
        let lunar = [Loss {
            birth: Some((CalendarKind::Lunar, 8, 15, false)),
            death: None,
        }];
        assert_eq!(sensitive_day(day("2026-09-25"), &lunar), Some("孩子的生日"));
        assert_eq!(sensitive_day(day("2026-08-15"), &lunar), None);
    }
}
