//! Which open visits a volunteer may take, and in what order the feed offers them. Plain
//! functions over plain data: the feed and the claim load rows and ask here.
//!
//! # The rules
//!
//! A volunteer can take a visit when all of these hold, checked in this order:
//!
//! 1. it is a volunteer visit: not one the rules give to the family's paired cadre
//!    (`assign_to_cadre`, or already `assigned_cadre_id`);
//! 2. they have every skill it requires;
//! 3. it is within their reach: the family's home lies within `max_distance_km` of the
//!    volunteer's home. A family without a recorded location is never within reach (nobody
//!    can tell how far it is), so its visits are not offered to volunteers: a coordinator
//!    records the location or assigns the visit. A volunteer without a recorded home has no
//!    reach to check; the feed then needs their current position and measures from it;
//! 4. it is `open` and not full (`claims_count < volunteers_needed`);
//! 5. they do not hold it already;
//! 6. their weekly capacity is not used up: the visits they hold whose window starts in the
//!    same ISO week (in the deployment's time zone) as this one's, counting this one, are
//!    at most `weekly_capacity`;
//! 7. it does not overlap a visit they hold. Windows are half-open, `[start, end)`, so a
//!    visit ending at midnight and one starting then do not overlap.
//!
//! Rules 1–3 are about who the volunteer is and where the visit is: a visit failing them is
//! not theirs to see ([`Refusal::hides`]: 404). Rules 4–7 are about the moment: the claim
//! answers 409 saying which.
//!
//! # The feed's order
//!
//! Nearest first, most urgent among equally near: visits are grouped by the distance the
//! volunteer is shown (rounded to 0.5 km, [`band`]) and, inside a group, ordered by the end
//! of their window (the one that must be done soonest first), then by id. The key
//! ([`FeedKey`]) depends on nothing that changes with the clock, so a cursor holding the
//! last key seen continues exactly where the page ended however long the volunteer waits.

use std::cmp::Ordering;

use chrono::{DateTime, Datelike, Duration, IsoWeek, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use uuid::Uuid;

/// Width of a distance group, and the precision of the distance shown before a claim.
pub const BAND_M: f64 = 500.0;

pub use scheduler::geo::{Point, Window};

/// The volunteer, as far as taking visits goes.
#[derive(Debug, Clone)]
pub struct Taker {
    /// Skill codes (`entity::Skill::code`).
    pub skills: Vec<String>,
    pub home: Option<Point>,
    pub max_distance_km: f64,
    pub weekly_capacity: i32,
}

impl Taker {
    pub fn reach_m(&self) -> f64 {
        self.max_distance_km * 1000.0
    }

    /// The first skill `required` names that the volunteer lacks.
    pub fn missing_skill<'a>(&self, required: &'a [String]) -> Option<&'a str> {
        required
            .iter()
            .find(|s| !self.skills.iter().any(|h| h == *s))
            .map(String::as_str)
    }
}

/// A visit the volunteer holds (not cancelled, not missed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub id: Uuid,
    pub window: Window,
}

/// A visit that might be taken.
#[derive(Debug, Clone)]
pub struct Offer {
    pub id: Uuid,
    pub status: String,
    pub window: Window,
    pub volunteers_needed: i32,
    pub claims_count: i32,
    pub required_skills: Vec<String>,
    pub assign_to_cadre: bool,
    pub assigned_cadre_id: Option<Uuid>,
    /// The family's home.
    pub family_at: Option<Point>,
}

impl Offer {
    pub fn is_cadre_visit(&self) -> bool {
        self.assign_to_cadre || self.assigned_cadre_id.is_some()
    }

    pub fn is_full(&self) -> bool {
        self.claims_count >= self.volunteers_needed
    }
}

/// Why a volunteer cannot take a visit.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The family's paired cadre does it.
    CadreVisit,
    MissingSkill(String),
    /// The family's location is not recorded.
    NoLocation,
    /// Farther from the volunteer's home than they go (metres).
    OutOfReach(f64),
    /// Not open (the current status).
    NotOpen(String),
    /// Every volunteer it needs holds it.
    Full {
        needed: i32,
    },
    /// They hold it already.
    AlreadyHeld,
    /// They hold `held` visits starting in that ISO week already.
    OverCapacity {
        week: IsoWeek,
        held: usize,
        capacity: i32,
    },
    /// Its window overlaps that of a visit they hold.
    Overlaps(Uuid),
}

impl Refusal {
    /// Refusals about who the volunteer is and where the visit is: such a visit is not
    /// theirs to see at all.
    pub fn hides(&self) -> bool {
        matches!(
            self,
            Refusal::CadreVisit
                | Refusal::MissingSkill(_)
                | Refusal::NoLocation
                | Refusal::OutOfReach(_)
        )
    }
}

/// Whether the visit is one the volunteer may see at all (rules 1–3). Returns the distance
/// from their home, when both places are known.
pub fn visible(taker: &Taker, offer: &Offer) -> Result<Option<f64>, Refusal> {
    if offer.is_cadre_visit() {
        return Err(Refusal::CadreVisit);
    }
    if let Some(s) = taker.missing_skill(&offer.required_skills) {
        return Err(Refusal::MissingSkill(s.to_string()));
    }
    let Some(home) = taker.home else {
        // No home on record: nothing to measure from here (the feed measures from the
        // position the volunteer gives).
        return Ok(None);
    };
    let Some(at) = offer.family_at else {
        return Err(Refusal::NoLocation);
    };
    let d = home.distance_m(at);
    if d > taker.reach_m() {
        return Err(Refusal::OutOfReach(d));
    }
    Ok(Some(d))
}

/// Whether the volunteer can take the visit now: every rule of the module. `held` are the
/// visits they hold (any that are not cancelled or missed; those far from the offer's
/// window may be left out). Returns the distance from their home, when known.
pub fn check(taker: &Taker, held: &[Held], offer: &Offer, tz: Tz) -> Result<Option<f64>, Refusal> {
    let d = visible(taker, offer)?;
    if offer.status != entity::visit_task::status::OPEN {
        if offer.status == entity::visit_task::status::CLAIMED {
            return Err(Refusal::Full {
                needed: offer.volunteers_needed,
            });
        }
        return Err(Refusal::NotOpen(offer.status.clone()));
    }
    if offer.is_full() {
        return Err(Refusal::Full {
            needed: offer.volunteers_needed,
        });
    }
    if held.iter().any(|h| h.id == offer.id) {
        return Err(Refusal::AlreadyHeld);
    }
    let week = week_of(offer.window.start, tz);
    let same_week = held
        .iter()
        .filter(|h| week_of(h.window.start, tz) == week)
        .count();
    if same_week as i64 + 1 > taker.weekly_capacity as i64 {
        return Err(Refusal::OverCapacity {
            week,
            held: same_week,
            capacity: taker.weekly_capacity,
        });
    }
    if let Some(h) = held.iter().find(|h| h.window.overlaps(&offer.window)) {
        return Err(Refusal::Overlaps(h.id));
    }
    Ok(d)
}

pub use scheduler::assign::week_of;

/// The weeks in which the volunteer may take nothing more, as `[start, end)` in UTC (Monday
/// midnight to Monday midnight in `tz`): a filter the database can apply before
/// [`check`] decides.
pub fn full_weeks(held: &[Held], capacity: i32, tz: Tz) -> Vec<Window> {
    let mut weeks: Vec<(IsoWeek, DateTime<Utc>)> = held
        .iter()
        .map(|h| (week_of(h.window.start, tz), h.window.start))
        .collect();
    weeks.sort_by_key(|w| w.0);
    let mut out = Vec::new();
    let mut i = 0;
    while i < weeks.len() {
        let j = weeks[i..].iter().take_while(|w| w.0 == weeks[i].0).count();
        if j as i64 >= capacity as i64 {
            out.push(week_bounds(weeks[i].1, tz));
        }
        i += j;
    }
    out
}

/// Monday 00:00 to the next Monday 00:00 (local time in `tz`) around `t`, in UTC.
pub fn week_bounds(t: DateTime<Utc>, tz: Tz) -> Window {
    let day = t.with_timezone(&tz).date_naive();
    let monday = day - Duration::days(day.weekday().num_days_from_monday() as i64);
    let start = local_midnight(tz, monday);
    let end = local_midnight(tz, monday + Duration::days(7));
    Window::new(start, end)
}

/// The first instant of `day` in `tz` (midnight, or the first moment after a gap).
pub fn local_midnight(tz: Tz, day: chrono::NaiveDate) -> DateTime<Utc> {
    let mut t = day.and_time(NaiveTime::MIN);
    for _ in 0..24 {
        if let Some(dt) = tz.from_local_datetime(&t).earliest() {
            return dt.with_timezone(&Utc);
        }
        t += Duration::hours(1);
    }
    Utc.from_utc_datetime(&day.and_time(NaiveTime::MIN))
}

/// The distance group of a distance: what the volunteer is shown is `band × 0.5 km`.
pub fn band(d_m: f64) -> i32 {
    // As the feed's SQL computes it (floor(d / 500 + 0.5)).
    (d_m / BAND_M + 0.5).floor() as i32
}

/// The distance (metres) every member of groups `..=b` is closer than.
pub fn band_upper_m(b: i32) -> f64 {
    (b as f64 + 0.5) * BAND_M
}

/// The distance shown before a claim: rounded to 0.5 km.
pub fn approx_km(d_m: f64) -> f64 {
    band(d_m) as f64 * BAND_M / 1000.0
}

/// The feed's order: distance group, then end of window, then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedKey {
    pub band: i32,
    pub window_end: DateTime<Utc>,
    pub id: Uuid,
}

impl FeedKey {
    pub fn new(d_m: f64, window_end: DateTime<Utc>, id: Uuid) -> Self {
        Self {
            band: band(d_m),
            window_end,
            id,
        }
    }
}

impl Ord for FeedKey {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.band, self.window_end, self.id).cmp(&(other.band, other.window_end, other.id))
    }
}

impl PartialOrd for FeedKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The radius (metres) the feed looks within after `radius_m` gave `found` of the `want`
/// visits a page needs: as far as the density seen so far says holds twice that many
/// (between half as far again and four times as far; four times when nothing was found),
/// at least one distance group further, ending on a
/// group boundary (so that every visit of the groups inside is seen), at most `limit_m`
/// (nothing lies beyond it). Searches start at [`band_upper_m`] of the first group wanted.
pub fn next_radius(radius_m: f64, found: usize, want: usize, limit_m: f64) -> f64 {
    let factor = if found == 0 {
        4.0
    } else {
        (2.0 * want as f64 / found as f64).sqrt().clamp(1.5, 4.0)
    };
    let target = (radius_m * factor).max(radius_m + BAND_M);
    // The first group boundary at or beyond the target.
    let b = (target / BAND_M - 0.5).ceil() as i32;
    band_upper_m(b).min(limit_m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const TZ: Tz = chrono_tz::Asia::Shanghai;
    const HOME: Point = Point {
        lat: 31.82,
        lng: 117.23,
    };

    /// Local (Beijing) time.
    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        TZ.with_ymd_and_hms(y, m, d, h, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn taker() -> Taker {
        Taker {
            skills: vec!["companionship".into()],
            home: Some(HOME),
            max_distance_km: 5.0,
            weekly_capacity: 2,
        }
    }

    /// A point `km` north of home.
    fn north(km: f64) -> Point {
        Point::new(HOME.lat + km / 111.195, HOME.lng)
    }

    fn offer(start: DateTime<Utc>, hours: i64) -> Offer {
        Offer {
            id: Uuid::now_v7(),
            status: "open".into(),
            window: Window::new(start, start + Duration::hours(hours)),
            volunteers_needed: 1,
            claims_count: 0,
            required_skills: vec![],
            assign_to_cadre: false,
            assigned_cadre_id: None,
            family_at: Some(north(1.0)),
        }
    }

    fn held(start: DateTime<Utc>, hours: i64) -> Held {
        Held {
            id: Uuid::now_v7(),
            window: Window::new(start, start + Duration::hours(hours)),
        }
    }

    #[test]
    fn an_open_visit_nearby_can_be_taken() {
        let d = check(&taker(), &[], &offer(at(2026, 12, 2, 0), 24), TZ).unwrap();
        assert!((d.unwrap() - 1000.0).abs() < 5.0);
    }

    #[test]
    fn cadre_visits_are_hidden() {
        let mut o = offer(at(2026, 12, 2, 0), 24);
        o.assign_to_cadre = true;
        assert_eq!(check(&taker(), &[], &o, TZ), Err(Refusal::CadreVisit));
        o.assign_to_cadre = false;
        o.assigned_cadre_id = Some(Uuid::now_v7());
        assert!(check(&taker(), &[], &o, TZ).unwrap_err().hides());
    }

    #[test]
    fn a_missing_skill_hides_the_visit() {
        let mut o = offer(at(2026, 12, 2, 0), 24);
        o.required_skills = vec!["companionship".into(), "counselling".into()];
        assert_eq!(
            check(&taker(), &[], &o, TZ),
            Err(Refusal::MissingSkill("counselling".into()))
        );
        let mut counsellor = taker();
        counsellor.skills.push("counselling".into());
        assert!(check(&counsellor, &[], &o, TZ).is_ok());
    }

    #[test]
    fn reach_is_measured_from_home() {
        let mut o = offer(at(2026, 12, 2, 0), 24);
        o.family_at = Some(north(4.9));
        assert!(check(&taker(), &[], &o, TZ).is_ok());
        o.family_at = Some(north(5.1));
        assert!(matches!(
            check(&taker(), &[], &o, TZ),
            Err(Refusal::OutOfReach(d)) if (d - 5100.0).abs() < 10.0
        ));
    }

    #[test]
    fn families_without_a_location_are_out_of_reach() {
        let mut o = offer(at(2026, 12, 2, 0), 24);
        o.family_at = None;
        assert_eq!(check(&taker(), &[], &o, TZ), Err(Refusal::NoLocation));
        // Without a home on record there is nothing to measure here.
        let mut homeless = taker();
        homeless.home = None;
        assert_eq!(check(&homeless, &[], &o, TZ), Ok(None));
    }

    #[test]
    fn full_and_closed_visits_cannot_be_taken() {
        let mut o = offer(at(2026, 12, 2, 0), 24);
        o.volunteers_needed = 2;
        o.claims_count = 2;
        assert_eq!(
            check(&taker(), &[], &o, TZ),
            Err(Refusal::Full { needed: 2 })
        );
        o.claims_count = 1;
        assert!(check(&taker(), &[], &o, TZ).is_ok());
        o.status = "claimed".into();
        assert_eq!(
            check(&taker(), &[], &o, TZ),
            Err(Refusal::Full { needed: 2 })
        );
        o.status = "cancelled".into();
        assert_eq!(
            check(&taker(), &[], &o, TZ),
            Err(Refusal::NotOpen("cancelled".into()))
        );
        assert!(!Refusal::NotOpen("cancelled".into()).hides());
    }

    #[test]
    fn a_held_visit_is_not_offered_again() {
        let o = offer(at(2026, 12, 2, 0), 24);
        let mine = Held {
            id: o.id,
            window: o.window,
        };
        assert_eq!(check(&taker(), &[mine], &o, TZ), Err(Refusal::AlreadyHeld));
    }

    #[test]
    fn capacity_counts_the_visits_starting_in_the_same_iso_week() {
        // 2026-11-30 is a Monday; capacity 2.
        let held_visits = [held(at(2026, 11, 30, 9), 2), held(at(2026, 12, 3, 9), 2)];
        let same_week = offer(at(2026, 12, 6, 9), 2); // Sunday
        assert!(matches!(
            check(&taker(), &held_visits, &same_week, TZ),
            Err(Refusal::OverCapacity {
                held: 2,
                capacity: 2,
                ..
            })
        ));
        let next_week = offer(at(2026, 12, 7, 0), 2); // Monday, local midnight
        assert!(check(&taker(), &held_visits, &next_week, TZ).is_ok());
        // One held: the candidate makes two, which fits.
        assert!(check(&taker(), &held_visits[..1], &same_week, TZ).is_ok());
        // Zero capacity: nothing.
        let mut none = taker();
        none.weekly_capacity = 0;
        assert!(check(&none, &[], &next_week, TZ).is_err());
    }

    #[test]
    fn the_week_is_the_local_one() {
        // Sunday 23:00 in Beijing is Sunday 15:00 UTC; Monday 01:00 Beijing is Sunday
        // 17:00 UTC: different ISO weeks locally, the same in UTC.
        let sunday = at(2026, 12, 6, 23);
        let monday = at(2026, 12, 7, 1);
        assert_eq!(sunday.iso_week(), monday.iso_week());
        assert_ne!(week_of(sunday, TZ), week_of(monday, TZ));
        let w = week_bounds(sunday, TZ);
        assert_eq!(w.start, at(2026, 11, 30, 0));
        assert_eq!(w.end, at(2026, 12, 7, 0));
    }

    #[test]
    fn overlapping_windows_are_refused_but_back_to_back_ones_are_not() {
        let h = held(at(2026, 12, 2, 0), 24); // all of Dec 2
        let overlapping = offer(at(2026, 12, 2, 20), 24);
        assert_eq!(
            check(&taker(), &[h], &overlapping, TZ),
            Err(Refusal::Overlaps(h.id))
        );
        let after = offer(at(2026, 12, 3, 0), 24);
        let before = offer(at(2026, 12, 1, 0), 24);
        assert!(check(&taker(), &[h], &after, TZ).is_ok());
        assert!(check(&taker(), &[h], &before, TZ).is_ok());
        // Inside, and around.
        assert!(check(&taker(), &[h], &offer(at(2026, 12, 2, 10), 1), TZ).is_err());
        assert!(check(&taker(), &[h], &offer(at(2026, 12, 1, 0), 72), TZ).is_err());
    }

    #[test]
    fn full_weeks_are_those_at_capacity() {
        let held_visits = [
            held(at(2026, 11, 30, 9), 2),
            held(at(2026, 12, 3, 9), 2),
            held(at(2026, 12, 8, 9), 2),
        ];
        let full = full_weeks(&held_visits, 2, TZ);
        assert_eq!(
            full,
            vec![Window::new(at(2026, 11, 30, 0), at(2026, 12, 7, 0))]
        );
        assert_eq!(full_weeks(&held_visits, 1, TZ).len(), 2);
        assert!(full_weeks(&held_visits, 3, TZ).is_empty());
    }

    #[test]
    fn distances_are_shown_to_half_a_kilometre() {
        assert_eq!(approx_km(0.0), 0.0);
        assert_eq!(approx_km(249.0), 0.0);
        assert_eq!(approx_km(250.0), 0.5);
        assert_eq!(approx_km(1_234.0), 1.0);
        assert_eq!(approx_km(1_260.0), 1.5);
        assert_eq!(approx_km(9_800.0), 10.0);
        // Everything in the groups up to b is closer than band_upper_m(b).
        for d in [0.0, 100.0, 249.9, 250.0, 740.0, 749.9, 1_999.0] {
            assert!(d < band_upper_m(band(d)), "{d}");
            assert!(band(d) == 0 || d >= band_upper_m(band(d) - 1), "{d}");
        }
    }

    #[test]
    fn the_feed_puts_near_before_far_and_urgent_before_relaxed() {
        let soon = at(2026, 12, 2, 0);
        let later = at(2026, 12, 20, 0);
        let a = FeedKey::new(100.0, later, Uuid::now_v7());
        let b = FeedKey::new(200.0, soon, Uuid::now_v7());
        let c = FeedKey::new(800.0, soon, Uuid::now_v7());
        let mut keys = vec![c, a, b];
        keys.sort();
        // a and b are both shown as 0 km: the one ending sooner first.
        assert_eq!(keys, vec![b, a, c]);
    }

    #[test]
    fn the_search_widens_with_the_density_found_on_group_boundaries() {
        // Three of 21 within 250 m: about 900 m holds twice 21; the boundary after is 1.25 km.
        assert_eq!(next_radius(250.0, 3, 21, 5_000.0), 1_250.0);
        // Nothing: four times as far.
        assert_eq!(next_radius(250.0, 0, 21, 5_000.0), 1_250.0);
        assert_eq!(next_radius(1_250.0, 0, 21, 50_000.0), 5_250.0);
        // Nearly enough: still half as far again (and at least one group further).
        assert_eq!(next_radius(1_250.0, 20, 21, 5_000.0), 2_250.0);
        assert_eq!(next_radius(250.0, 20, 21, 5_000.0), 750.0);
        // Never beyond the limit.
        assert_eq!(next_radius(2_750.0, 5, 21, 3_000.0), 3_000.0);
        // Every result but the limit is a group boundary.
        for r in [250.0, 750.0, 1_750.0, 9_250.0] {
            for found in [0, 1, 7, 30] {
                let next = next_radius(r, found, 21, 1e9);
                assert!(next > r);
                assert_eq!(band_upper_m(band(next - 1.0)), next, "{r} {found}");
            }
        }
    }
}
