//! When reminders go out and to whom they are addressed: plain functions over plain data.
//! The database side (queuing rows in the transaction of the change, the daily jobs) is
//! in [`super::produce`].
//!
//! What is sent (issue 5, "What is sent, to whom, when"):
//!
//! - volunteer: [`CLAIM_CONFIRMED`] at the claim; [`EVENING_BEFORE`] at
//!   `reminders.evening_before` (18:00) the day before the window opens;
//!   [`HOURS_BEFORE`] `reminders.hours_before` (2) hours before the visit starts (see
//!   [`visit_start`] for windows without a set time); [`NEW_VISITS`], a daily digest of new
//!   visits they could take; [`VISIT_MOVED`] when a visit they hold is moved (its
//!   reminders are queued again for the new time). Cancellations, releases, declines and move requests have
//!   their templates beside the code that causes them.
//! - family: [`VISIT_COMING`] (surname and team of who comes, and when) at each claim;
//!   [`FAMILY_DAY_BEFORE`] at `reminders.family_day_before` (10:00) the day before;
//!   [`PLEASE_CONFIRM`] once the report is in (the moment confirming becomes possible);
//!   [`WISH_ANSWERED`]; [`HELP_RECEIVED`].
//! - coordinators of the family's region subtree: [`VISITS_UNCLAIMED`] (daily, a count);
//!   [`VISIT_MISSED`]; [`VISIT_UNCONFIRMED`]; [`LOW_RATING`]; [`RISK_SIGNS`];
//!   [`WISHES_UNANSWERED`] (daily, a count); [`HELP_EMERGENCY`].
//!
//! Payloads hold what the template says and nothing else: a visit id, a day, the window the
//! reminder was computed for, display strings such as "王*". Never a family's name,
//! category, illness or address: messages show on locked screens.
//!
//! **`"emergency": true`** in a payload marks a message that must not wait (quiet hours,
//! daily caps, digests do not apply): today only [`HELP_EMERGENCY`].

use std::fmt;

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer};

// Volunteer.
pub const CLAIM_CONFIRMED: &str = "claim_confirmed";
pub const EVENING_BEFORE: &str = "visit_evening_before";
pub const HOURS_BEFORE: &str = "visit_hours_before";
pub const NEW_VISITS: &str = "new_visits_digest";
/// A visit they hold was moved to another time (their reminders follow it).
pub const VISIT_MOVED: &str = scheduler::events::TEMPLATE_VISIT_MOVED;
// Family.
pub const VISIT_COMING: &str = "visit_coming";
pub const FAMILY_DAY_BEFORE: &str = "visit_day_before";
pub const PLEASE_CONFIRM: &str = "visit_please_confirm";
pub const WISH_ANSWERED: &str = "wish_answered";
pub const HELP_RECEIVED: &str = "help_received";
// Coordinators.
pub const VISITS_UNCLAIMED: &str = "visits_unclaimed";
pub const VISIT_MISSED: &str = "visit_missed";
pub const VISIT_UNCONFIRMED: &str = "visit_unconfirmed";
pub const LOW_RATING: &str = "visit_low_rating";
pub const RISK_SIGNS: &str = "visit_risk_signs";
pub const WISHES_UNANSWERED: &str = "wishes_unanswered";
pub const HELP_EMERGENCY: &str = "help_emergency";

/// Every template of this module.
pub const TEMPLATES: [&str; 17] = [
    CLAIM_CONFIRMED,
    VISIT_MOVED,
    EVENING_BEFORE,
    HOURS_BEFORE,
    NEW_VISITS,
    VISIT_COMING,
    FAMILY_DAY_BEFORE,
    PLEASE_CONFIRM,
    WISH_ANSWERED,
    HELP_RECEIVED,
    VISITS_UNCLAIMED,
    VISIT_MISSED,
    VISIT_UNCONFIRMED,
    LOW_RATING,
    RISK_SIGNS,
    WISHES_UNANSWERED,
    HELP_EMERGENCY,
];

/// Messages about a visit someone holds: true only while they hold it, it is ahead and
/// still at the time they were queued for.
pub const HOLDER_REMINDERS: [&str; 4] =
    [CLAIM_CONFIRMED, EVENING_BEFORE, HOURS_BEFORE, VISIT_MOVED];
/// Messages to the family about a coming visit: true only while the visit is ahead at the
/// time they were queued for.
pub const FAMILY_REMINDERS: [&str; 2] = [VISIT_COMING, FAMILY_DAY_BEFORE];

/// A local time of day, written "18:00" in the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime(pub NaiveTime);

impl LocalTime {
    pub fn hm(h: u32, m: u32) -> Self {
        Self(NaiveTime::from_hms_opt(h, m, 0).expect("a time of day"))
    }
}

impl<'de> Deserialize<'de> for LocalTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NaiveTime::parse_from_str(s.trim(), "%H:%M")
            .map(LocalTime)
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a time like \"18:00\"")))
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%H:%M"))
    }
}

/// `[reminders]`: when reminders go out and when coordinators are told.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemindersConfig {
    /// Volunteers are reminded at this local time the day before the window opens.
    pub evening_before: LocalTime,
    /// And this many hours before the visit starts (0: not at all).
    pub hours_before: i64,
    /// A window without a set time and without a preferred time of day counts as starting
    /// at this time on its first day, for the hours-before reminder: with the defaults the
    /// reminder goes at 08:00, when quiet hours end.
    pub whole_day_start: LocalTime,
    /// Families are reminded at this local time the day before (daytime: elderly parents).
    pub family_day_before: LocalTime,
    /// Coordinators hear of visits still short of volunteers this many days before their
    /// window opens (daily).
    pub unclaimed_days: i64,
    /// A rating (1–5) at or below this reaches the coordinators.
    pub low_rating: i32,
    /// Coordinators hear of wishes unanswered after this many days (daily).
    pub wish_days: i64,
    /// The daily job: coordinators' escalations and the volunteers' digest of new visits.
    /// 6-field cron (seconds first), local time.
    pub daily_cron: String,
}

impl Default for RemindersConfig {
    fn default() -> Self {
        Self {
            evening_before: LocalTime::hm(18, 0),
            hours_before: 2,
            whole_day_start: LocalTime::hm(10, 0),
            family_day_before: LocalTime::hm(10, 0),
            unclaimed_days: 3,
            low_rating: 2,
            wish_days: 7,
            daily_cron: "0 30 8 * * *".into(),
        }
    }
}

impl RemindersConfig {
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (0..=48).contains(&self.hours_before),
            "reminders.hours_before must be between 0 and 48"
        );
        anyhow::ensure!(
            self.unclaimed_days >= 0 && self.wish_days >= 1,
            "reminders.unclaimed_days must be 0 or more and reminders.wish_days 1 or more"
        );
        anyhow::ensure!(
            (0..=5).contains(&self.low_rating),
            "reminders.low_rating must be between 0 (never) and 5"
        );
        scheduler::jobs::parse_cron(&self.daily_cron)
            .map_err(|e| anyhow::anyhow!("reminders.daily_cron: {e}"))?;
        Ok(())
    }
}

fn at_local(tz: Tz, day: NaiveDate, time: LocalTime) -> DateTime<Utc> {
    // A time skipped by a clock change (not in China) falls back to the earliest valid one.
    tz.from_local_datetime(&day.and_time(time.0))
        .earliest()
        .unwrap_or_else(|| tz.from_utc_datetime(&day.and_time(time.0)))
        .with_timezone(&Utc)
}

/// When a visit counts as starting, for the hours-before reminder:
///
/// - a window that opens at a set time (not local midnight) starts then;
/// - a whole-day window with a preferred time of day (`morning`, `afternoon`, `evening`)
///   starts at 09:00, 14:00 or 18:00 of its first day;
/// - any other whole-day window starts at `reminders.whole_day_start` of its first day.
///   The volunteer picks the hour, so the reminder is a morning nudge that the window
///   opens today rather than a warning to leave now; the evening-before reminder is the
///   one that helps them plan.
pub fn visit_start(
    window_start: DateTime<Utc>,
    preferred_time: Option<&str>,
    c: &RemindersConfig,
    tz: Tz,
) -> DateTime<Utc> {
    let local = window_start.with_timezone(&tz);
    if local.time() != NaiveTime::MIN {
        return window_start;
    }
    let time = match preferred_time {
        Some("morning") => LocalTime::hm(9, 0),
        Some("afternoon") => LocalTime::hm(14, 0),
        Some("evening") => LocalTime::hm(18, 0),
        _ => c.whole_day_start,
    };
    at_local(tz, local.date_naive(), time)
}

/// The reminders of a volunteer who took a visit at `now`: (template, when), those still
/// ahead only (a claim made after 18:00 the evening before gets no evening reminder: the
/// confirmation says the same).
pub fn holder_reminders(
    window_start: DateTime<Utc>,
    preferred_time: Option<&str>,
    now: DateTime<Utc>,
    c: &RemindersConfig,
    tz: Tz,
) -> Vec<(&'static str, DateTime<Utc>)> {
    let first_day = window_start.with_timezone(&tz).date_naive();
    let mut out = Vec::new();
    if let Some(eve) = first_day.checked_sub_days(Days::new(1)) {
        out.push((EVENING_BEFORE, at_local(tz, eve, c.evening_before)));
    }
    if c.hours_before > 0 {
        let start = visit_start(window_start, preferred_time, c, tz);
        out.push((HOURS_BEFORE, start - Duration::hours(c.hours_before)));
    }
    out.retain(|(_, at)| *at > now);
    out
}

/// When the family is reminded of a visit the day before, if that is still ahead.
pub fn family_day_before(
    window_start: DateTime<Utc>,
    now: DateTime<Utc>,
    c: &RemindersConfig,
    tz: Tz,
) -> Option<DateTime<Utc>> {
    let first_day = window_start.with_timezone(&tz).date_naive();
    let at = at_local(
        tz,
        first_day.checked_sub_days(Days::new(1))?,
        c.family_day_before,
    );
    (at > now).then_some(at)
}

/// How a visit's time reads in a message: "11月26日 14:00", "11月26日上午",
/// "11月26日" (a whole day) or "11月26日至28日" (several days).
pub fn when_text(
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    preferred_time: Option<&str>,
    tz: Tz,
) -> String {
    let start = window_start.with_timezone(&tz);
    let day = start.format("%-m月%-d日").to_string();
    if start.time() != NaiveTime::MIN {
        return format!("{day} {}", start.format("%H:%M"));
    }
    // The last day the window covers (it ends at the following midnight).
    let last = (window_end - Duration::seconds(1))
        .with_timezone(&tz)
        .date_naive();
    if last > start.date_naive() {
        let end = if last.month() == start.month() {
            last.format("%-d日").to_string()
        } else {
            last.format("%-m月%-d日").to_string()
        };
        return format!("{day}至{end}");
    }
    match preferred_time {
        Some("morning") => format!("{day}上午"),
        Some("afternoon") => format!("{day}下午"),
        Some("evening") => format!("{day}傍晚"),
        _ => day,
    }
}

/// Whether a reminder computed for the window that opened at `computed_for` still speaks
/// of the visit as it is (a moved visit's old reminders are stale). Times compare to the
/// second: payloads carry RFC 3339 text.
pub fn window_moved(computed_for: Option<&str>, window_start: DateTime<Utc>) -> bool {
    computed_for
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .is_some_and(|t| t.timestamp() != window_start.timestamp())
}

/// The dedupe key of a message: reason, object, recipient and moment, so that the same
/// message for the same reason is queued once however often its cause runs.
pub fn key(
    template: &str,
    object: impl fmt::Display,
    recipient: impl fmt::Display,
    moment: impl fmt::Display,
) -> String {
    format!("{template}:{object}:{recipient}:{moment}")
}

/// The prefix of the keys of `template` about `object` for `recipient`.
pub fn key_prefix(
    template: &str,
    object: impl fmt::Display,
    recipient: impl fmt::Display,
) -> String {
    format!("{template}:{object}:{recipient}:")
}

/// A person's name as a locked screen may show it: the surname ("王*").
pub fn surname(full: &str) -> String {
    super::templates::masked_name(full)
}

#[cfg(test)]
mod tests {
    use chrono_tz::Asia::Shanghai;

    use super::*;

    fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Shanghai
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn c() -> RemindersConfig {
        RemindersConfig::default()
    }

    #[test]
    fn a_set_time_is_reminded_the_evening_before_and_two_hours_before() {
        let start = local(2026, 11, 26, 14, 30);
        let claimed = local(2026, 11, 20, 9, 0);
        assert_eq!(
            holder_reminders(start, None, claimed, &c(), Shanghai),
            [
                (EVENING_BEFORE, local(2026, 11, 25, 18, 0)),
                (HOURS_BEFORE, local(2026, 11, 26, 12, 30)),
            ]
        );
    }

    #[test]
    fn whole_day_windows_start_at_the_preferred_time_or_ten() {
        let start = local(2026, 11, 26, 0, 0);
        let at = |p| visit_start(start, p, &c(), Shanghai);
        assert_eq!(at(Some("morning")), local(2026, 11, 26, 9, 0));
        assert_eq!(at(Some("afternoon")), local(2026, 11, 26, 14, 0));
        assert_eq!(at(Some("evening")), local(2026, 11, 26, 18, 0));
        assert_eq!(at(None), local(2026, 11, 26, 10, 0));
        let r = holder_reminders(start, None, local(2026, 11, 1, 0, 0), &c(), Shanghai);
        assert_eq!(r[1], (HOURS_BEFORE, local(2026, 11, 26, 8, 0)));
    }

    #[test]
    fn reminders_already_past_at_the_claim_are_not_queued() {
        let start = local(2026, 11, 26, 10, 0);
        let r = |now| holder_reminders(start, None, now, &c(), Shanghai);
        assert_eq!(r(local(2026, 11, 25, 18, 30)).len(), 1);
        assert_eq!(r(local(2026, 11, 26, 8, 30)).len(), 0);
        let mut none = c();
        none.hours_before = 0;
        assert_eq!(
            holder_reminders(start, None, local(2026, 11, 1, 0, 0), &none, Shanghai).len(),
            1
        );
    }

    #[test]
    fn the_family_hears_the_day_before_in_the_daytime() {
        let start = local(2026, 11, 26, 0, 0);
        assert_eq!(
            family_day_before(start, local(2026, 11, 20, 0, 0), &c(), Shanghai),
            Some(local(2026, 11, 25, 10, 0))
        );
        assert_eq!(
            family_day_before(start, local(2026, 11, 25, 11, 0), &c(), Shanghai),
            None
        );
    }

    #[test]
    fn the_time_of_a_visit_reads_plainly() {
        let w = |s, e, p| when_text(s, e, p, Shanghai);
        let d = |day, h| local(2026, 11, day, h, 0);
        assert_eq!(w(d(26, 14), d(26, 16), None), "11月26日 14:00");
        assert_eq!(w(d(26, 0), d(27, 0), None), "11月26日");
        assert_eq!(w(d(26, 0), d(27, 0), Some("morning")), "11月26日上午");
        assert_eq!(w(d(26, 0), d(29, 0), None), "11月26日至28日");
        assert_eq!(
            w(d(29, 0), local(2026, 12, 3, 0, 0), None),
            "11月29日至12月2日"
        );
    }

    #[test]
    fn a_reminder_for_another_window_is_recognised() {
        let start = local(2026, 11, 26, 10, 0);
        let text = start.to_rfc3339();
        assert!(!window_moved(Some(&text), start));
        assert!(window_moved(Some(&text), start + Duration::days(1)));
        assert!(!window_moved(None, start));
    }

    #[test]
    fn times_are_read_from_the_configuration() {
        #[derive(Deserialize)]
        struct T {
            reminders: RemindersConfig,
        }
        let t: T =
            toml::from_str("[reminders]\nevening_before = \"19:30\"\nunclaimed_days = 5").unwrap();
        assert_eq!(t.reminders.evening_before, LocalTime::hm(19, 30));
        assert_eq!(t.reminders.unclaimed_days, 5);
        assert_eq!(t.reminders.hours_before, 2);
        t.reminders.check().unwrap();
        assert!(toml::from_str::<T>("[reminders]\nevening_before = \"7pm\"").is_err());
        let mut bad = c();
        bad.daily_cron = "whenever".into();
        assert!(bad.check().is_err());
    }
}
