//! Balanced assignment: who should hold the visits nobody claimed. Pure logic over plain
//! data; `server` loads the open visits and the volunteers, asks [`propose`], and writes
//! the proposals.
//!
//! # The rules
//!
//! A volunteer can be proposed for a visit when all of these hold (the claim's rules, see
//! `server::eligibility`, plus availability and leave):
//!
//! - they have every skill it requires;
//! - the family's home lies within their `max_distance_km` of their home;
//! - they visit on at least one weekday of the window (local time) and are on leave on none
//!   of its days;
//! - the visits they hold starting in the window's ISO week, with those proposed, stay
//!   within `weekly_capacity`;
//! - its window overlaps none they hold or are proposed for (half-open: back to back is
//!   fine);
//! - a visit needing two gets two different people, and never someone in its `exclude`
//!   list (who declined it, or holds it already).
//!
//! # What is best
//!
//! A cost, in integer points, summed over the proposals and lowest wins; filling a place
//! always beats any cost ([`UNASSIGNED_COST`]). Per proposal:
//!
//! - continuity: `continuity / (1 + n)` where `n` is how often they visited the family
//!   (trust: the one who came before is cheapest);
//! - distance: `distance` per kilometre;
//! - balance: the squares of each volunteer's load relative to capacity, over the week
//!   (`load² / capacity`) and the month (`load² / (4 × capacity)`), counting what they hold
//!   already. Squares make a visit cheapest for the least loaded relative to capacity, so
//!   volunteers with nothing held are the first to be asked, and nobody ends far above the
//!   rest.
//!
//! Default weights put them in that order: once visiting the family outweighs any spread of
//! load, and twenty kilometres weigh about as much as one visit of load at capacity four.
//!
//! # How
//!
//! [`propose`] is a heuristic: candidates from a grid around each volunteer's home; a greedy
//! pass over the visits with the fewest candidates first; augmenting chains that move a
//! proposal to free a place for a visit left without one; then moves of single proposals to
//! cheaper holders until none helps. [`flow::exact`] solves the same problem exactly as a
//! min-cost flow (with convex per-volunteer arcs for balance) where windows are identical or
//! disjoint, to measure the heuristic against.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Duration, IsoWeek, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use uuid::Uuid;

use crate::geo::{Point, Window};

pub mod flow;
#[cfg(test)]
mod tests;

/// Points per unit of weight.
const SCALE: f64 = 1000.0;

/// The cost of a place left unfilled: more than any proposal can cost.
pub const UNASSIGNED_COST: i64 = 1_000_000_000;

/// Every weekday (bit 0 = Monday).
pub const EVERY_DAY: u8 = 0x7f;

/// The ISO week an instant falls in, in `tz`.
pub fn week_of(t: DateTime<Utc>, tz: Tz) -> IsoWeek {
    t.with_timezone(&tz).iso_week()
}

/// How much each objective weighs (`assign.weights` in the configuration).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    /// A volunteer who never visited the family costs this much; one who did, less.
    pub continuity: f64,
    /// Of the squared load relative to capacity, over the week and the month.
    pub balance: f64,
    /// Per kilometre from the volunteer's home.
    pub distance: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            continuity: 10.0,
            balance: 1.0,
            distance: 0.05,
        }
    }
}

/// An open visit with places to fill.
#[derive(Clone, Debug)]
pub struct Visit {
    pub id: Uuid,
    pub family: Uuid,
    pub window: Window,
    /// The family's home.
    pub at: Point,
    pub skills: Vec<String>,
    /// Volunteers still needed.
    pub places: u32,
    /// Volunteers not to propose: they declined it, or hold it already.
    pub exclude: Vec<Uuid>,
}

/// A volunteer as the assignment sees them.
#[derive(Clone, Debug)]
pub struct Volunteer {
    /// Their account (`task_claim.volunteer_id`).
    pub id: Uuid,
    pub skills: Vec<String>,
    pub home: Point,
    pub max_distance_km: f64,
    pub weekly_capacity: u32,
    /// The weekdays they visit on (bit 0 = Monday; [`EVERY_DAY`]).
    pub weekdays: u8,
    /// Declared leave, local dates, both ends included.
    pub leave: Vec<(NaiveDate, NaiveDate)>,
    /// The windows of the visits they hold (not cancelled or missed).
    pub held: Vec<Window>,
    /// Visits they hold starting this month.
    pub month_held: u32,
    /// How often they visited each family.
    pub history: HashMap<Uuid, u32>,
}

/// The weekdays of a volunteer's `availability` (`{"weekdays": [1, 2, 3]}`, ISO numbers,
/// Monday = 1); anything else, or none listed: every day.
pub fn weekdays_of(availability: &serde_json::Value) -> u8 {
    let Some(days) = availability.get("weekdays").and_then(|d| d.as_array()) else {
        return EVERY_DAY;
    };
    weekday_bits(days.iter().filter_map(|d| d.as_u64()))
}

/// The bits of ISO weekday numbers (1 = Monday); numbers out of range are ignored, and
/// none left means every day.
pub fn weekday_bits(days: impl IntoIterator<Item = impl Into<u64>>) -> u8 {
    let bits = days
        .into_iter()
        .map(Into::into)
        .filter(|n| (1..=7).contains(n))
        .fold(0u8, |bits, n| bits | 1 << (n - 1));
    if bits == 0 { EVERY_DAY } else { bits }
}

/// The ISO weekday numbers of `bits`, in order.
pub fn weekday_numbers(bits: u8) -> Vec<u8> {
    (1..=7).filter(|d| bits & (1 << (d - 1)) != 0).collect()
}

#[derive(Clone, Copy, Debug)]
pub struct Problem<'a> {
    pub visits: &'a [Visit],
    pub volunteers: &'a [Volunteer],
    pub weights: Weights,
    pub tz: Tz,
}

/// Why a volunteer was proposed.
#[derive(Clone, Debug, PartialEq)]
pub struct Reason {
    /// Visits of theirs to this family before.
    pub past_visits: u32,
    pub distance_km: f64,
    /// Visits in the window's week, held and proposed, this one included.
    pub week_load: u32,
    pub week_capacity: u32,
    /// Visits this month, held and proposed.
    pub month_load: u32,
}

impl Reason {
    /// "走访过该家庭3次；1.2公里；当周2/4".
    pub fn text(&self) -> String {
        let history = if self.past_visits > 0 {
            format!("走访过该家庭{}次", self.past_visits)
        } else {
            "首次走访该家庭".to_string()
        };
        format!(
            "{history}；{:.1}公里；当周{}/{}",
            self.distance_km, self.week_load, self.week_capacity
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Proposal {
    pub visit: Uuid,
    pub volunteer: Uuid,
    pub reason: Reason,
}

#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub proposals: Vec<Proposal>,
    /// Visits left with places nobody can fill, and how many.
    pub unfilled: Vec<(Uuid, u32)>,
    /// The total cost ([`cost_of`]).
    pub cost: i64,
}

// ---------------------------------------------------------------------------------------
// What both solvers share: the candidates and the costs.

/// A volunteer who may hold a visit as far as the visit alone goes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cand {
    pub vol: u32,
    /// Continuity and distance.
    pub arc: i64,
}

/// A week as a number (ISO year × 100 + week).
type WeekKey = i32;

fn week_key(t: DateTime<Utc>, tz: Tz) -> WeekKey {
    let w = week_of(t, tz);
    w.year() * 100 + w.week() as i32
}

pub(crate) struct Prepared {
    pub week: Vec<WeekKey>,
    pub cands: Vec<Vec<Cand>>,
    /// Held visits per volunteer and week.
    pub held_weeks: Vec<Vec<(WeekKey, u32)>>,
    pub weights: Weights,
    /// The visits' weeks numbered from 0 (`weeks` of them), for flat per-volunteer tables.
    pub wk: Vec<u32>,
    pub weeks: usize,
}

impl Prepared {
    pub fn new(p: &Problem) -> Self {
        let week: Vec<WeekKey> = p
            .visits
            .iter()
            .map(|v| week_key(v.window.start, p.tz))
            .collect();
        let held_weeks = p
            .volunteers
            .iter()
            .map(|u| {
                let mut w: Vec<(WeekKey, u32)> = Vec::new();
                for h in &u.held {
                    bump(&mut w, week_key(h.start, p.tz), 1);
                }
                w
            })
            .collect();
        let mut keys = week.clone();
        keys.sort_unstable();
        keys.dedup();
        let wk = week
            .iter()
            .map(|w| keys.binary_search(w).unwrap_or_default() as u32)
            .collect();
        let mut me = Self {
            week,
            cands: vec![Vec::new(); p.visits.len()],
            held_weeks,
            weights: p.weights,
            wk,
            weeks: keys.len(),
        };
        me.candidates(p);
        me
    }

    /// Every (visit, volunteer) pair that the rules allow on their own: a grid of the
    /// visits, each volunteer looking in the cells within their reach.
    fn candidates(&mut self, p: &Problem) {
        const CELL: f64 = 0.05; // degrees, about 5 km
        let cell = |pt: Point| {
            (
                (pt.lat / CELL).floor() as i32,
                (pt.lng / CELL).floor() as i32,
            )
        };
        let mut grid: HashMap<(i32, i32), Vec<u32>> = HashMap::new();
        for (i, v) in p.visits.iter().enumerate() {
            grid.entry(cell(v.at)).or_default().push(i as u32);
        }
        let days: Vec<(NaiveDate, NaiveDate)> = p
            .visits
            .iter()
            .map(|v| local_days(v.window, p.tz))
            .collect();
        let cos_lat: Vec<f64> = p
            .visits
            .iter()
            .map(|v| v.at.lat.to_radians().cos())
            .collect();
        for (ui, u) in p.volunteers.iter().enumerate() {
            if u.weekly_capacity == 0 {
                continue;
            }
            let home_cos = u.home.lat.to_radians().cos();
            let reach_m = u.max_distance_km * 1000.0;
            // A flat map first, with room to spare (it is within a percent of the sphere at
            // these distances): most of the cells' visits lie beyond reach.
            let per_lng = crate::geo::metres_per_degree_lng(u.home.lat);
            let rough = (reach_m * 1.05).powi(2);
            let (dlat, dlng) = crate::geo::bounding_box(u.home.lat, reach_m);
            let (c0, c1) = (
                cell(Point::new(u.home.lat - dlat, u.home.lng - dlng)),
                cell(Point::new(u.home.lat + dlat, u.home.lng + dlng)),
            );
            for cy in c0.0..=c1.0 {
                for cx in c0.1..=c1.1 {
                    let Some(list) = grid.get(&(cy, cx)) else {
                        continue;
                    };
                    for &vi in list {
                        let v = &p.visits[vi as usize];
                        let dy = (v.at.lat - u.home.lat) * crate::geo::METRES_PER_DEGREE;
                        let dx = (v.at.lng - u.home.lng) * per_lng;
                        if dy * dy + dx * dx > rough {
                            continue;
                        }
                        if !v.skills.iter().all(|s| u.skills.contains(s))
                            || v.exclude.contains(&u.id)
                            || !available(u, days[vi as usize])
                            || u.held.iter().any(|h| h.overlaps(&v.window))
                            || held_in(&self.held_weeks[ui], self.week[vi as usize])
                                >= u.weekly_capacity
                        {
                            continue;
                        }
                        let d = haversine_m(u.home, home_cos, v.at, cos_lat[vi as usize]);
                        if d > reach_m {
                            continue;
                        }
                        let past = u.history.get(&v.family).copied().unwrap_or(0);
                        let arc = self.arc(past, d / 1000.0);
                        self.cands[vi as usize].push(Cand {
                            vol: ui as u32,
                            arc,
                        });
                    }
                }
            }
        }
        // (arc, vol) is unique within a visit: the unstable sort orders as a stable one.
        for c in &mut self.cands {
            c.sort_unstable_by_key(|c| (c.arc, c.vol));
        }
    }

    /// Continuity and distance of a volunteer who visited `past` times, `km` away.
    fn arc(&self, past: u32, km: f64) -> i64 {
        let w = &self.weights;
        (SCALE * (w.continuity / (1.0 + past as f64) + w.distance * km)).round() as i64
    }

    /// The cost of the `load`-th visit of a week (1-based), capacity `cap`.
    pub fn week_step(&self, load: u32, cap: u32) -> i64 {
        (SCALE * self.weights.balance * (2 * load - 1) as f64 / cap as f64).round() as i64
    }

    /// The cost of the `load`-th visit of the month.
    pub fn month_step(&self, load: u32, cap: u32) -> i64 {
        (SCALE * self.weights.balance * (2 * load - 1) as f64 / (4 * cap) as f64).round() as i64
    }
}

/// [`crate::geo::distance_m`] with the cosines of the latitudes given: the same sums in
/// the same order, so the same metres, without two cosines per pair.
fn haversine_m(a: Point, cos_a: f64, b: Point, cos_b: f64) -> f64 {
    const EARTH_RADIUS_M: f64 = 6_371_008.8;
    let dp = (b.lat - a.lat).to_radians();
    let dl = (b.lng - a.lng).to_radians();
    let h = (dp / 2.0).sin().powi(2) + cos_a * cos_b * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().asin()
}

fn held_in(weeks: &[(WeekKey, u32)], w: WeekKey) -> u32 {
    weeks.iter().find(|x| x.0 == w).map_or(0, |x| x.1)
}

fn bump(weeks: &mut Vec<(WeekKey, u32)>, w: WeekKey, by: i32) {
    match weeks.iter_mut().find(|x| x.0 == w) {
        Some(x) => x.1 = (x.1 as i32 + by) as u32,
        None => weeks.push((w, by as u32)),
    }
}

/// The local days a window touches: its first and last.
fn local_days(w: Window, tz: Tz) -> (NaiveDate, NaiveDate) {
    let first = w.start.with_timezone(&tz).date_naive();
    let last = (w.end - Duration::nanoseconds(1))
        .with_timezone(&tz)
        .date_naive()
        .max(first);
    (first, last)
}

/// On leave on none of the days, and visiting on one of them at least.
fn available(u: &Volunteer, (first, last): (NaiveDate, NaiveDate)) -> bool {
    if u.leave.iter().any(|(a, b)| *a <= last && first <= *b) {
        return false;
    }
    on_one_of(u.weekdays, (first, last))
}

/// Whether someone visiting on `weekdays` (bits as [`Volunteer::weekdays`]) can make a
/// visit in `window`: on one of its local days at least.
pub fn on_their_days(weekdays: u8, window: Window, tz: Tz) -> bool {
    on_one_of(weekdays, local_days(window, tz))
}

fn on_one_of(weekdays: u8, (first, last): (NaiveDate, NaiveDate)) -> bool {
    if weekdays & EVERY_DAY == EVERY_DAY || (last - first).num_days() >= 6 {
        return weekdays != 0;
    }
    let mut d = first;
    while d <= last {
        if weekdays & (1 << d.weekday().num_days_from_monday()) != 0 {
            return true;
        }
        d += Duration::days(1);
    }
    false
}

/// The total cost of an assignment (pairs of visit and volunteer indices): the proposals'
/// costs, the load squares beyond what was held, and [`UNASSIGNED_COST`] per place left.
/// A pair the rules do not allow on its own costs like an unfilled place.
pub(crate) fn total_cost(p: &Problem, pre: &Prepared, pairs: &[(usize, usize)]) -> i64 {
    let mut cost = 0i64;
    let mut weeks: HashMap<(usize, WeekKey), u32> = HashMap::new();
    let mut months: HashMap<usize, u32> = HashMap::new();
    let mut filled = vec![0u32; p.visits.len()];
    for &(vi, ui) in pairs {
        let Some(c) = pre.cands[vi].iter().find(|c| c.vol as usize == ui) else {
            continue;
        };
        filled[vi] += 1;
        cost += c.arc;
        let u = &p.volunteers[ui];
        let w = weeks
            .entry((ui, pre.week[vi]))
            .or_insert_with(|| held_in(&pre.held_weeks[ui], pre.week[vi]));
        *w += 1;
        cost += pre.week_step(*w, u.weekly_capacity);
        let m = months.entry(ui).or_insert(u.month_held);
        *m += 1;
        cost += pre.month_step(*m, u.weekly_capacity);
    }
    for (v, f) in p.visits.iter().zip(&filled) {
        cost += UNASSIGNED_COST * v.places.saturating_sub(*f) as i64;
    }
    cost
}

/// The total cost of proposals (by id), as [`Outcome::cost`] counts it.
pub fn cost_of(p: &Problem, proposals: &[(Uuid, Uuid)]) -> i64 {
    let pre = Prepared::new(p);
    let vi: HashMap<Uuid, usize> = p
        .visits
        .iter()
        .enumerate()
        .map(|(i, v)| (v.id, i))
        .collect();
    let ui: HashMap<Uuid, usize> = p
        .volunteers
        .iter()
        .enumerate()
        .map(|(i, u)| (u.id, i))
        .collect();
    let pairs: Vec<(usize, usize)> = proposals
        .iter()
        .filter_map(|(v, u)| Some((*vi.get(v)?, *ui.get(u)?)))
        .collect();
    total_cost(p, &pre, &pairs)
}

/// The proposals of an assignment, with their reasons.
pub(crate) fn outcome(p: &Problem, pre: &Prepared, pairs: &[(usize, usize)]) -> Outcome {
    let mut weeks: HashMap<(usize, WeekKey), u32> = HashMap::new();
    let mut months: HashMap<usize, u32> = HashMap::new();
    let mut filled = vec![0u32; p.visits.len()];
    for &(vi, ui) in pairs {
        *weeks
            .entry((ui, pre.week[vi]))
            .or_insert_with(|| held_in(&pre.held_weeks[ui], pre.week[vi])) += 1;
        *months.entry(ui).or_insert(p.volunteers[ui].month_held) += 1;
        filled[vi] += 1;
    }
    let proposals = pairs
        .iter()
        .map(|&(vi, ui)| {
            let (v, u) = (&p.visits[vi], &p.volunteers[ui]);
            let km = u.home.distance_m(v.at) / 1000.0;
            Proposal {
                visit: v.id,
                volunteer: u.id,
                reason: Reason {
                    past_visits: u.history.get(&v.family).copied().unwrap_or(0),
                    distance_km: (km * 10.0).round() / 10.0,
                    week_load: weeks[&(ui, pre.week[vi])],
                    week_capacity: u.weekly_capacity,
                    month_load: months[&ui],
                },
            }
        })
        .collect();
    let unfilled = p
        .visits
        .iter()
        .zip(&filled)
        .filter(|(v, f)| v.places > **f)
        .map(|(v, f)| (v.id, v.places - f))
        .collect();
    Outcome {
        proposals,
        unfilled,
        cost: total_cost(p, pre, pairs),
    }
}

// ---------------------------------------------------------------------------------------
// The heuristic

/// A load, and the cost of one more.
#[derive(Clone, Copy, Debug, Default)]
struct Load {
    load: u32,
    next: i64,
}

impl Load {
    fn set(&mut self, load: u32, step: impl Fn(u32) -> i64) {
        self.load = load;
        self.next = step(load + 1);
    }
}

/// The assignment under construction.
struct State<'a> {
    p: &'a Problem<'a>,
    pre: &'a Prepared,
    /// Per volunteer: load per week (held and proposed; flat, `ui * pre.weeks + wk`), load
    /// this month, proposed windows (sorted by start). With each load, what one more costs:
    /// the searches read these for every candidate.
    weeks: Vec<Load>,
    month: Vec<Load>,
    cap: Vec<u32>,
    /// No volunteer's next visit costs less than this in load (week, month): once a
    /// candidate's arc plus this cannot win, neither can the rest of its list. Lowered as
    /// loads fall, made tight again by [`Self::refloor`]; none when more load is cheaper.
    floor: Option<(i64, i64)>,
    windows: Vec<Vec<(Window, u32)>>,
    /// Per visit: the volunteers proposed (indices into `pre.cands[v]`).
    holders: Vec<Vec<u32>>,
}

impl<'a> State<'a> {
    fn new(p: &'a Problem<'a>, pre: &'a Prepared) -> Self {
        let mut weeks = vec![Load::default(); p.volunteers.len() * pre.weeks];
        for (ui, u) in p.volunteers.iter().enumerate() {
            for w in &mut weeks[ui * pre.weeks..(ui + 1) * pre.weeks] {
                w.set(0, |l| pre.week_step(l, u.weekly_capacity.max(1)));
            }
        }
        for (vi, &wk) in pre.wk.iter().enumerate() {
            for c in &pre.cands[vi] {
                let ui = c.vol as usize;
                let cap = p.volunteers[ui].weekly_capacity;
                weeks[ui * pre.weeks + wk as usize]
                    .set(held_in(&pre.held_weeks[ui], pre.week[vi]), |l| {
                        pre.week_step(l, cap)
                    });
            }
        }
        let month = p
            .volunteers
            .iter()
            .map(|u| {
                let mut m = Load::default();
                m.set(u.month_held, |l| {
                    pre.month_step(l, u.weekly_capacity.max(1))
                });
                m
            })
            .collect();
        Self {
            p,
            pre,
            weeks,
            month,
            cap: p.volunteers.iter().map(|u| u.weekly_capacity).collect(),
            floor: None,
            windows: vec![Vec::new(); p.volunteers.len()],
            holders: vec![Vec::new(); p.visits.len()],
        }
    }

    fn cap(&self, ui: usize) -> u32 {
        self.cap[ui]
    }

    /// The floors now: anyone's first visit of a week, and anyone's next of the month.
    fn refloor(&mut self) {
        if self.pre.weights.balance < 0.0 {
            return;
        }
        let open = || (0..self.cap.len()).filter(|&ui| self.cap[ui] > 0);
        let week = open().map(|ui| self.pre.week_step(1, self.cap[ui])).min();
        let month = open().map(|ui| self.month[ui].next).min();
        self.floor = week.zip(month);
    }

    /// Below what adding any candidate costs beyond its arc.
    fn floor(&self) -> i64 {
        self.floor.map_or(i64::MIN / 4, |(w, m)| w + m)
    }

    fn week_at(&self, vi: usize, ui: usize) -> usize {
        ui * self.pre.weeks + self.pre.wk[vi] as usize
    }

    /// The load of `ui` in the week of `vi`.
    fn week_load(&self, vi: usize, ui: usize) -> u32 {
        self.weeks[self.week_at(vi, ui)].load
    }

    fn holds(&self, vi: usize, ui: u32) -> bool {
        self.holders[vi]
            .iter()
            .any(|&ci| self.pre.cands[vi][ci as usize].vol == ui)
    }

    /// The proposed visits of `ui` whose window overlaps `w`.
    fn overlapping(&self, ui: usize, w: Window) -> impl Iterator<Item = u32> + '_ {
        let list = &self.windows[ui];
        // Sorted by start: those starting before w.end; scan back while they could reach.
        let end = list.partition_point(|(x, _)| x.start < w.end);
        list[..end]
            .iter()
            .filter(move |(x, _)| x.overlaps(&w))
            .map(|(_, v)| *v)
    }

    /// Whether `ui` can take `vi` now.
    fn fits(&self, vi: usize, ui: usize) -> bool {
        self.week_load(vi, ui) < self.cap(ui) && self.fits_in_time(vi, ui)
    }

    /// Whether `ui` is free for `vi` as far as windows go, and not on it already.
    fn fits_in_time(&self, vi: usize, ui: usize) -> bool {
        self.overlapping(ui, self.p.visits[vi].window)
            .next()
            .is_none()
            && !self.holds(vi, ui as u32)
    }

    /// What adding candidate `ci` of `vi` costs.
    fn add_cost(&self, vi: usize, ci: usize) -> i64 {
        let c = &self.pre.cands[vi][ci];
        let ui = c.vol as usize;
        c.arc + self.weeks[self.week_at(vi, ui)].next + self.month[ui].next
    }

    /// What removing candidate `ci` of `vi` saves.
    fn remove_saving(&self, vi: usize, ci: usize) -> i64 {
        let c = &self.pre.cands[vi][ci];
        let ui = c.vol as usize;
        let cap = self.cap(ui);
        c.arc
            + self.pre.week_step(self.week_load(vi, ui), cap)
            + self.pre.month_step(self.month[ui].load, cap)
    }

    fn bump(&mut self, vi: usize, ui: usize, by: i32) {
        let (pre, cap) = (self.pre, self.cap[ui]);
        let at = self.week_at(vi, ui);
        let w = &mut self.weeks[at];
        w.set(w.load.wrapping_add_signed(by), |l| {
            pre.week_step(l, cap.max(1))
        });
        let m = &mut self.month[ui];
        m.set(m.load.wrapping_add_signed(by), |l| {
            pre.month_step(l, cap.max(1))
        });
        let next = m.next;
        if let Some((_, f)) = &mut self.floor {
            *f = (*f).min(next);
        }
    }

    fn add(&mut self, vi: usize, ci: usize) {
        let ui = self.pre.cands[vi][ci].vol as usize;
        self.bump(vi, ui, 1);
        let w = self.p.visits[vi].window;
        let list = &mut self.windows[ui];
        let at = list.partition_point(|(x, _)| x.start < w.start);
        list.insert(at, (w, vi as u32));
        self.holders[vi].push(ci as u32);
    }

    fn remove(&mut self, vi: usize, ci: usize) {
        let ui = self.pre.cands[vi][ci].vol as usize;
        self.bump(vi, ui, -1);
        let list = &mut self.windows[ui];
        let at = list
            .iter()
            .position(|(_, v)| *v == vi as u32)
            .expect("proposed");
        list.remove(at);
        let h = &mut self.holders[vi];
        let at = h.iter().position(|&c| c == ci as u32).expect("holder");
        h.swap_remove(at);
    }

    /// The cheapest candidate of `vi` that fits now.
    fn best_fit(&self, vi: usize) -> Option<(usize, i64)> {
        let mut best: Option<(usize, i64)> = None;
        for (ci, c) in self.pre.cands[vi].iter().enumerate() {
            // Sorted by arc cost: nothing later can beat the best once its arc alone does.
            if best.is_some_and(|(_, b)| c.arc + self.floor() >= b) {
                break;
            }
            // The cost first: it is cheaper to know than whether the windows allow.
            let ui = c.vol as usize;
            if self.week_load(vi, ui) >= self.cap(ui) {
                continue;
            }
            let cost = self.add_cost(vi, ci);
            if best.is_none_or(|(_, b)| cost < b) && self.fits_in_time(vi, ui) {
                best = Some((ci, cost));
            }
        }
        best
    }

    fn open_places(&self, vi: usize) -> u32 {
        self.p.visits[vi].places - self.holders[vi].len() as u32
    }

    /// Fills one place of `vi` by a chain of moves: `vi` takes a volunteer whose proposal
    /// for another visit is moved on, and so on, up to `depth` moves, the last to a
    /// volunteer who fits. Breadth first, so the shortest chain wins.
    fn augment(&mut self, vi: usize, depth: usize) -> bool {
        // Nodes: (visit needing a place, parent node, candidate taken, the visit ejected).
        struct Node {
            visit: usize,
            parent: usize,
            cand: usize,
        }
        let mut nodes = vec![Node {
            visit: vi,
            parent: usize::MAX,
            cand: usize::MAX,
        }];
        let mut seen: HashMap<usize, ()> = HashMap::new();
        seen.insert(vi, ());
        let mut level = 0..1;
        for _ in 0..=depth {
            let mut next = level.end..level.end;
            for n in level.clone() {
                let v = nodes[n].visit;
                if let Some((ci, _)) = self.best_fit(v) {
                    return self.apply_chain(&nodes_to_chain(&nodes, n, ci, |x| {
                        (x.visit, x.parent, x.cand)
                    }));
                }
                for (ci, c) in self.pre.cands[v].iter().enumerate() {
                    let ui = c.vol as usize;
                    if self.holds(v, c.vol) {
                        continue;
                    }
                    // The one proposal of ui that keeps v out, if there is exactly one.
                    let Some(blocker) = self.single_blocker(v, ui) else {
                        continue;
                    };
                    if seen.insert(blocker, ()).is_some() || nodes.len() > 4000 {
                        continue;
                    }
                    nodes.push(Node {
                        visit: blocker,
                        parent: n,
                        cand: ci,
                    });
                    next.end += 1;
                }
            }
            if next.is_empty() {
                return false;
            }
            level = next;
        }
        false
    }

    /// The visit whose proposal to `ui` alone keeps `vi` from them.
    fn single_blocker(&self, vi: usize, ui: usize) -> Option<usize> {
        let mut over = self.overlapping(ui, self.p.visits[vi].window);
        let first = over.next();
        if over.next().is_some() {
            return None;
        }
        let week = self.pre.week[vi];
        let full = self.week_load(vi, ui) >= self.cap(ui);
        match first {
            Some(b) => (!full || self.pre.week[b as usize] == week).then_some(b as usize),
            None if full => self.windows[ui]
                .iter()
                .map(|(_, b)| *b as usize)
                .find(|&b| self.pre.week[b] == week),
            None => None,
        }
    }

    /// Applies a chain: the last visit takes a volunteer who fits; each earlier visit takes
    /// the volunteer the next one leaves. Undone if a step no longer fits.
    fn apply_chain(&mut self, chain: &[(usize, usize)]) -> bool {
        // chain: (visit, candidate index), from the unfilled visit to the last.
        let mut done: Vec<(bool, usize, usize)> = Vec::new();
        let ok = 'steps: {
            let (last_v, last_c) = chain[chain.len() - 1];
            self.add(last_v, last_c);
            done.push((true, last_v, last_c));
            for k in (0..chain.len() - 1).rev() {
                let (v, ci) = chain[k];
                let ui = self.pre.cands[v][ci].vol;
                let (ejected, _) = chain[k + 1];
                let Some(old) = self.holders[ejected]
                    .iter()
                    .copied()
                    .find(|&c| self.pre.cands[ejected][c as usize].vol == ui)
                else {
                    break 'steps false;
                };
                self.remove(ejected, old as usize);
                done.push((false, ejected, old as usize));
                if !self.fits(v, ui as usize) {
                    break 'steps false;
                }
                self.add(v, ci);
                done.push((true, v, ci));
            }
            true
        };
        if !ok {
            for (added, v, ci) in done.into_iter().rev() {
                if added {
                    self.remove(v, ci);
                } else {
                    self.add(v, ci);
                }
            }
        }
        ok
    }

    /// Moves single proposals to cheaper holders; true if any moved.
    fn improve(&mut self) -> bool {
        self.refloor();
        let mut moved = false;
        for vi in 0..self.p.visits.len() {
            let mut k = 0;
            while k < self.holders[vi].len() {
                let ci = self.holders[vi][k] as usize;
                let saving = self.remove_saving(vi, ci);
                let from = self.pre.cands[vi][ci].vol;
                let mut best: Option<(usize, i64)> = None;
                let floor = self.floor();
                for (cj, c) in self.pre.cands[vi].iter().enumerate() {
                    if c.arc + floor >= saving {
                        break;
                    }
                    let ui = c.vol as usize;
                    if c.vol == from || self.week_load(vi, ui) >= self.cap(ui) {
                        continue;
                    }
                    let delta = self.add_cost(vi, cj) - saving;
                    if delta < 0 && best.is_none_or(|(_, b)| delta < b) && self.fits_in_time(vi, ui)
                    {
                        best = Some((cj, delta));
                    }
                }
                if let Some((cj, _)) = best {
                    self.remove(vi, ci);
                    self.add(vi, cj);
                    moved = true;
                    // The new holder took the last slot of the list: look at the next.
                    continue;
                }
                k += 1;
            }
        }
        moved
    }

    fn pairs(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (vi, h) in self.holders.iter().enumerate() {
            for &ci in h {
                out.push((vi, self.pre.cands[vi][ci as usize].vol as usize));
            }
        }
        out
    }
}

/// The chain from the root to node `n`, which takes candidate `ci`.
fn nodes_to_chain<N>(
    nodes: &[N],
    mut n: usize,
    ci: usize,
    parts: impl Fn(&N) -> (usize, usize, usize),
) -> Vec<(usize, usize)> {
    let mut chain = Vec::new();
    let mut cand = ci;
    loop {
        let (visit, parent, c) = parts(&nodes[n]);
        chain.push((visit, cand));
        if parent == usize::MAX {
            break;
        }
        cand = c;
        n = parent;
    }
    chain.reverse();
    chain
}

/// Proposes holders for the open places of the visits. See the module.
pub fn propose(p: &Problem) -> Outcome {
    let pre = Prepared::new(p);
    let mut s = State::new(p, &pre);
    // Scarce visits first: fewest candidates per place, then soonest.
    let mut order: Vec<usize> = (0..p.visits.len()).collect();
    order.sort_by_key(|&vi| {
        let v = &p.visits[vi];
        (
            pre.cands[vi].len() / v.places.max(1) as usize,
            v.window.start,
            vi,
        )
    });
    for (k, &vi) in order.iter().enumerate() {
        if k % 256 == 0 {
            s.refloor();
        }
        while s.open_places(vi) > 0 {
            match s.best_fit(vi) {
                Some((ci, _)) => s.add(vi, ci),
                None => break,
            }
        }
    }
    for _ in 0..3 {
        let mut any = false;
        for &vi in &order {
            while s.open_places(vi) > 0 && s.augment(vi, 3) {
                any = true;
            }
        }
        if !any {
            break;
        }
    }
    for _ in 0..50 {
        if !s.improve() {
            break;
        }
    }
    outcome(p, &pre, &s.pairs())
}
