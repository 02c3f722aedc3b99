use std::time::Instant;

use chrono::TimeZone;

use super::flow::exact;
use super::*;

const TZ: Tz = chrono_tz::Asia::Shanghai;
const CITY: Point = Point {
    lat: 31.82,
    lng: 117.23,
};

/// Local (Beijing) time.
fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    TZ.with_ymd_and_hms(y, m, d, h, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

/// Day `n` from Monday 2026-11-30, all day.
fn day(n: i64) -> Window {
    let start = at(2026, 11, 30, 0) + Duration::days(n);
    Window::new(start, start + Duration::days(1))
}

/// A point `km` north and `east` km east of the city centre.
fn place(north: f64, east: f64) -> Point {
    Point::new(
        CITY.lat + north / 111.195,
        CITY.lng + east / (111.195 * CITY.lat.to_radians().cos()),
    )
}

fn visit(window: Window, at: Point) -> Visit {
    Visit {
        id: Uuid::now_v7(),
        family: Uuid::now_v7(),
        window,
        at,
        skills: vec![],
        places: 1,
        exclude: vec![],
    }
}

fn volunteer(home: Point, capacity: u32) -> Volunteer {
    Volunteer {
        id: Uuid::now_v7(),
        skills: vec!["companionship".into()],
        home,
        max_distance_km: 10.0,
        weekly_capacity: capacity,
        weekdays: EVERY_DAY,
        leave: vec![],
        held: vec![],
        month_held: 0,
        history: HashMap::new(),
    }
}

fn problem<'a>(visits: &'a [Visit], volunteers: &'a [Volunteer]) -> Problem<'a> {
    Problem {
        visits,
        volunteers,
        weights: Weights::default(),
        tz: TZ,
    }
}

/// Who was proposed for a visit.
fn holders(out: &Outcome, visit: Uuid) -> Vec<Uuid> {
    out.proposals
        .iter()
        .filter(|p| p.visit == visit)
        .map(|p| p.volunteer)
        .collect()
}

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A random county: `nv` visits on single days of two weeks over a square of `side_km`,
/// some needing two people or a skill, some families visited before; `nu` volunteers with
/// reach 5–15 km, capacity 1–5 a week, a few with visits held or days off or leave.
fn county(seed: u64, nv: usize, nu: usize, side_km: f64) -> (Vec<Visit>, Vec<Volunteer>) {
    let mut r = Rng(seed);
    let spot = |r: &mut Rng| place(r.unit() * side_km, r.unit() * side_km);
    let families: Vec<(Uuid, Point)> = (0..nv * 2 / 3 + 1)
        .map(|_| (Uuid::now_v7(), spot(&mut r)))
        .collect();
    let visits: Vec<Visit> = (0..nv)
        .map(|_| {
            let (family, at) = families[r.below(families.len() as u64) as usize];
            let mut v = visit(day(r.below(14) as i64), at);
            v.family = family;
            if r.below(10) == 0 {
                v.places = 2;
            }
            if r.below(6) == 0 {
                v.skills = vec!["health".into()];
            }
            v
        })
        .collect();
    let volunteers: Vec<Volunteer> = (0..nu)
        .map(|_| {
            let mut u = volunteer(spot(&mut r), 1 + r.below(5) as u32);
            u.max_distance_km = 5.0 + r.unit() * 10.0;
            if r.below(3) == 0 {
                u.skills.push("health".into());
            }
            if r.below(5) == 0 {
                u.held.push(day(r.below(14) as i64));
                u.month_held = 1 + r.below(4) as u32;
            }
            if r.below(8) == 0 {
                u.weekdays = 0b001_1111; // weekdays only
            }
            if r.below(12) == 0 {
                let from = NaiveDate::from_ymd_opt(2026, 12, 1 + r.below(10) as u32).unwrap();
                u.leave.push((from, from + Duration::days(3)));
            }
            for _ in 0..r.below(3) {
                let (f, _) = families[r.below(families.len() as u64) as usize];
                *u.history.entry(f).or_default() += 1 + r.below(3) as u32;
            }
            u
        })
        .collect();
    (visits, volunteers)
}

/// A city shaped like the seeded one (`nuanxin seed`): two counties of three townships of
/// five villages; families around the villages, volunteers living among them in turn with
/// reach 5–20 km and capacity 2–5; `nv` visits over `days` days, most open four days, the
/// counselling ones three (a third of those for two people). Many candidates per visit, and
/// loads over many weeks.
fn city(seed: u64, nv: usize, nu: usize, days: u64) -> (Vec<Visit>, Vec<Volunteer>) {
    let mut r = Rng(seed);
    let mut villages = Vec::new();
    for c in 0..2 {
        for t in 0..3 {
            let (n, e) = (
                16.7 * c as f64 + 5.6 * t as f64,
                -19.0 + 38.0 * c as f64 + 3.8 * t as f64,
            );
            for _ in 0..5 {
                villages.push((n + (r.unit() - 0.5) * 4.4, e + (r.unit() - 0.5) * 3.8));
            }
        }
    }
    let near = |r: &mut Rng, (n, e): (f64, f64), km: f64| {
        place(
            n + (r.unit() - 0.5) * 2.0 * km,
            e + (r.unit() - 0.5) * 2.0 * km,
        )
    };
    let visits: Vec<Visit> = (0..nv)
        .map(|_| {
            let village = villages[r.below(villages.len() as u64) as usize];
            let at = near(&mut r, village, 0.9);
            let start = day(r.below(days) as i64).start;
            let mut v = if r.below(6) == 0 {
                let mut v = visit(Window::new(start, start + Duration::days(3)), at);
                v.skills = vec!["counselling".into()];
                v.places = if r.below(5) < 3 { 2 } else { 1 };
                v
            } else {
                let mut v = visit(Window::new(start, start + Duration::days(4)), at);
                v.places = if r.below(9) == 0 { 2 } else { 1 };
                v
            };
            v.family = Uuid::now_v7();
            v
        })
        .collect();
    let volunteers: Vec<Volunteer> = (0..nu)
        .map(|i| {
            let home = near(&mut r, villages[i % villages.len()], 1.1);
            let mut u = volunteer(home, [2, 3, 3, 4, 5][i % 5]);
            u.max_distance_km = [5.0, 10.0, 15.0, 20.0][i % 4];
            if i % 5 == 0 {
                u.skills.push("counselling".into());
            }
            u
        })
        .collect();
    (visits, volunteers)
}

/// Every proposal keeps every rule of the module.
fn assert_valid(p: &Problem, out: &Outcome) {
    let by_id: HashMap<Uuid, &Volunteer> = p.volunteers.iter().map(|u| (u.id, u)).collect();
    let visits: HashMap<Uuid, &Visit> = p.visits.iter().map(|v| (v.id, v)).collect();
    let mut mine: HashMap<Uuid, Vec<&Visit>> = HashMap::new();
    for pr in &out.proposals {
        let v = visits[&pr.visit];
        let u = by_id[&pr.volunteer];
        assert!(v.skills.iter().all(|s| u.skills.contains(s)), "skills");
        assert!(
            u.home.distance_m(v.at) <= u.max_distance_km * 1000.0,
            "reach"
        );
        assert!(!v.exclude.contains(&u.id), "excluded");
        assert!(
            available(u, local_days(v.window, p.tz)),
            "availability or leave"
        );
        assert!(
            !u.held.iter().any(|h| h.overlaps(&v.window)),
            "overlaps held"
        );
        mine.entry(u.id).or_default().push(v);
    }
    for (uid, list) in &mine {
        let u = by_id[uid];
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                assert!(a.id != b.id, "one person twice on a visit");
                assert!(!a.window.overlaps(&b.window), "overlapping proposals");
            }
            let week = week_of(a.window.start, p.tz);
            let load = list
                .iter()
                .filter(|b| week_of(b.window.start, p.tz) == week)
                .count()
                + u.held
                    .iter()
                    .filter(|h| week_of(h.start, p.tz) == week)
                    .count();
            assert!(load as u32 <= u.weekly_capacity, "capacity");
        }
    }
    for v in p.visits {
        assert!(holders(out, v.id).len() as u32 <= v.places);
    }
}

#[test]
fn the_reason_says_history_distance_and_week() {
    let r = Reason {
        past_visits: 3,
        distance_km: 1.2,
        week_load: 2,
        week_capacity: 4,
        month_load: 5,
    };
    assert_eq!(r.text(), "走访过该家庭3次；1.2公里；当周2/4");
    let first = Reason {
        past_visits: 0,
        ..r
    };
    assert_eq!(first.text(), "首次走访该家庭；1.2公里；当周2/4");
}

#[test]
fn hard_rules_hold() {
    let home = place(0.0, 0.0);
    let mut nurse = volunteer(home, 4);
    nurse.skills.push("health".into());
    let far_away = volunteer(place(30.0, 0.0), 4);
    let mut on_leave = volunteer(home, 4);
    on_leave.leave.push((
        NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
        NaiveDate::from_ymd_opt(2026, 12, 2).unwrap(),
    ));
    let mut weekends = volunteer(home, 4);
    weekends.weekdays = 0b110_0000;
    let mut busy = volunteer(home, 4);
    busy.held.push(day(3));
    let full = {
        let mut u = volunteer(home, 1);
        u.held.push(day(6));
        u
    };
    let vols = vec![nurse.clone(), far_away, on_leave, weekends, busy, full];

    let mut health = visit(day(1), place(1.0, 0.0));
    health.skills = vec!["health".into()];
    let tuesday = visit(day(1), place(1.0, 0.0));
    let thursday = visit(day(3), place(1.0, 0.0));
    let friday = visit(day(4), place(1.0, 0.0));
    let visits = vec![
        health.clone(),
        tuesday.clone(),
        thursday.clone(),
        friday.clone(),
    ];
    let p = problem(&visits, &vols);
    let out = propose(&p);
    assert_valid(&p, &out);
    // Only the nurse has the skill.
    assert_eq!(holders(&out, health.id), vec![nurse.id]);
    // Tuesday: the nurse is busy with the health visit (same day); the one on leave and the
    // one who visits on weekends cannot; busy (held Thursday) can.
    assert_eq!(holders(&out, tuesday.id), vec![vols[4].id]);
    // Thursday: not the one holding a Thursday visit.
    assert!(!holders(&out, thursday.id).contains(&vols[4].id));
    // The one at capacity this week is never proposed; the one 30 km away neither.
    assert!(out.proposals.iter().all(|p| p.volunteer != vols[5].id));
    assert!(out.proposals.iter().all(|p| p.volunteer != vols[1].id));
    assert!(out.unfilled.is_empty(), "{:?}", out.unfilled);
}

#[test]
fn a_pair_visit_gets_two_people_and_back_to_back_is_fine() {
    let a = volunteer(place(0.0, 0.0), 3);
    let b = volunteer(place(0.5, 0.0), 3);
    let mut pair = visit(day(1), place(1.0, 0.0));
    pair.places = 2;
    let next = visit(day(2), place(1.0, 0.0)); // starts when the pair visit ends
    let visits = vec![pair.clone(), next.clone()];
    let vols = vec![a.clone(), b.clone()];
    let p = problem(&visits, &vols);
    let out = propose(&p);
    assert_valid(&p, &out);
    let mut two = holders(&out, pair.id);
    two.sort();
    let mut both = vec![a.id, b.id];
    both.sort();
    assert_eq!(two, both);
    assert_eq!(holders(&out, next.id).len(), 1);

    // One volunteer only: the second place stays open, said so.
    let vols = vec![a.clone()];
    let visits = vec![pair.clone()];
    let out = propose(&problem(&visits, &vols));
    assert_eq!(holders(&out, pair.id), vec![a.id]);
    assert_eq!(out.unfilled, vec![(pair.id, 1)]);
    // Who declined is not asked again.
    let mut declined = pair.clone();
    declined.places = 1;
    declined.exclude = vec![a.id];
    let visits = vec![declined.clone()];
    let out = propose(&problem(&visits, &vols));
    assert!(out.proposals.is_empty());
}

#[test]
fn continuity_comes_first_then_balance_then_distance() {
    let family = Uuid::now_v7();
    let near = volunteer(place(0.2, 0.0), 4);
    let mut before = volunteer(place(4.0, 0.0), 4);
    before.history.insert(family, 3);
    before.held = vec![day(0), day(2)];
    let mut v = visit(day(4), place(0.0, 0.0));
    v.family = family;
    let visits = vec![v.clone()];
    let vols = vec![near.clone(), before.clone()];
    let out = propose(&problem(&visits, &vols));
    // Farther and busier, but they know the family.
    assert_eq!(holders(&out, v.id), vec![before.id]);
    assert_eq!(
        out.proposals[0].reason.text(),
        "走访过该家庭3次；4.0公里；当周3/4"
    );

    // Nobody knows the family: the idle one, though farther.
    let mut busy_near = near.clone();
    busy_near.held = vec![day(0), day(2)];
    let idle_far = volunteer(place(4.0, 0.0), 4);
    let plain = visit(day(4), place(0.0, 0.0));
    let visits = vec![plain.clone()];
    let vols = vec![busy_near, idle_far.clone()];
    let out = propose(&problem(&visits, &vols));
    assert_eq!(holders(&out, plain.id), vec![idle_far.id]);
    assert_eq!(
        out.proposals[0].reason.text(),
        "首次走访该家庭；4.0公里；当周1/4"
    );

    // Equal loads: the nearer.
    let visits = vec![plain.clone()];
    let vols = vec![volunteer(place(3.0, 0.0), 4), near.clone()];
    let out = propose(&problem(&visits, &vols));
    assert_eq!(holders(&out, plain.id), vec![near.id]);
}

#[test]
fn availability_reads_iso_weekdays() {
    assert_eq!(weekdays_of(&serde_json::json!({})), EVERY_DAY);
    assert_eq!(weekdays_of(&serde_json::json!({"weekdays": []})), EVERY_DAY);
    assert_eq!(
        weekdays_of(&serde_json::json!({"weekdays": [1, 7]})),
        0b100_0001
    );
    assert_eq!(
        weekdays_of(&serde_json::json!({"weekdays": [6, 9]})),
        0b010_0000
    );
}

#[test]
fn an_even_spread_is_found_when_one_exists() {
    // 50 volunteers of capacity 8 around a village, 200 visits over two weeks: 4 each would
    // do. Some already hold visits this week; the idle ones count too.
    let mut r = Rng(7);
    let vols: Vec<Volunteer> = (0..50)
        .map(|i| {
            let mut u = volunteer(place(r.unit() * 4.0, r.unit() * 4.0), 8);
            if i % 5 == 0 {
                u.held = vec![Window::new(at(2026, 11, 30, 8), at(2026, 11, 30, 9))];
                u.month_held = 1;
            }
            u
        })
        .collect();
    let visits: Vec<Visit> = (0..200)
        .map(|i| {
            let start = at(2026, 11, 30, 10) + Duration::hours(i / 10 * 16 + i % 10);
            visit(
                Window::new(start, start + Duration::hours(1)),
                place(r.unit() * 4.0, r.unit() * 4.0),
            )
        })
        .collect();
    let p = problem(&visits, &vols);
    let out = propose(&p);
    assert_valid(&p, &out);
    assert!(out.unfilled.is_empty());
    let held: usize = vols.iter().map(|u| u.held.len()).sum();
    let mean = (200 + held) as f64 / vols.len() as f64;
    let mut loads: Vec<usize> = vols
        .iter()
        .map(|u| u.held.len() + out.proposals.iter().filter(|p| p.volunteer == u.id).count())
        .collect();
    loads.sort();
    println!("loads {loads:?}, mean {mean:.2}");
    assert!(
        *loads.last().unwrap() as f64 <= mean + 1.0,
        "max {} above mean {mean} + 1",
        loads.last().unwrap()
    );
    // Nobody is left idle while others carry more than the mean.
    assert!(
        loads[0] as f64 >= mean - 1.0,
        "min {} mean {mean}",
        loads[0]
    );
}

#[test]
fn a_city_over_two_months_keeps_every_rule() {
    // The seeded city's shape, small: tens of candidates per visit, windows of several
    // days that overlap one another, loads over nine weeks, pair visits.
    let (visits, vols) = city(3, 600, 120, 57);
    let p = problem(&visits, &vols);
    let out = propose(&p);
    assert_valid(&p, &out);
    assert_eq!(out.cost, cost_of(&p, &pairs(&out)));
    let places: u32 = visits.iter().map(|v| v.places).sum();
    let left: u32 = out.unfilled.iter().map(|u| u.1).sum();
    assert_eq!(out.proposals.len() as u32 + left, places);
}

#[test]
fn the_heuristic_is_within_five_percent_of_the_optimum() {
    println!("seed  visits  volunteers  filled(h/opt)  cost heuristic  cost optimum  gap");
    for seed in 1..=6 {
        let (visits, vols) = county(seed, 200, 50, 25.0);
        let p = problem(&visits, &vols);
        let h = propose(&p);
        assert_valid(&p, &h);
        let (opt, exact_) = exact(&p);
        assert!(exact_, "single-day windows: the flow is exact");
        assert_valid(&p, &opt);
        assert_eq!(h.cost, cost_of(&p, &pairs(&h)));
        assert_eq!(opt.cost, cost_of(&p, &pairs(&opt)));
        let places: u32 = visits.iter().map(|v| v.places).sum();
        let filled = |o: &Outcome| places - o.unfilled.iter().map(|u| u.1).sum::<u32>();
        // The optimum fills as many places as can be filled; so must the heuristic.
        assert_eq!(filled(&h), filled(&opt), "seed {seed}");
        let left = (places - filled(&opt)) as i64 * UNASSIGNED_COST;
        let (hc, oc) = (h.cost - left, opt.cost - left);
        let gap = (hc - oc) as f64 / oc as f64;
        println!(
            "{seed:>4}  {:>6}  {:>10}  {:>6}/{:<6}  {hc:>14}  {oc:>12}  {:.2}%",
            visits.len(),
            vols.len(),
            filled(&h),
            filled(&opt),
            gap * 100.0
        );
        assert!(oc <= hc, "nothing beats the optimum");
        assert!(
            gap <= 0.05,
            "seed {seed}: {:.2}% above the optimum",
            gap * 100.0
        );
    }
}

fn pairs(o: &Outcome) -> Vec<(Uuid, Uuid)> {
    o.proposals.iter().map(|p| (p.visit, p.volunteer)).collect()
}

/// 10,000 open visits over 2,000 volunteers in a city 80 km across. Run with
/// `cargo test --release -p scheduler assign::tests::bench -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_ten_thousand_visits_over_two_thousand_volunteers() {
    let (visits, vols) = county(42, 10_000, 2_000, 80.0);
    let p = problem(&visits, &vols);
    let t = Instant::now();
    let out = propose(&p);
    let took = t.elapsed();
    let places: u32 = visits.iter().map(|v| v.places).sum();
    let left: u32 = out.unfilled.iter().map(|u| u.1).sum();
    println!(
        "assign: {} visits ({places} places) over {} volunteers: {} proposed, {left} places \
         nobody can fill, in {:.3} s",
        visits.len(),
        vols.len(),
        out.proposals.len(),
        took.as_secs_f64()
    );
    assert_valid(&p, &out);
}

/// The seeded city's shape: 10,000 visits over 60 days, 2,000 volunteers. Run as the one
/// above.
#[test]
#[ignore]
fn bench_a_city_over_sixty_days() {
    let (visits, vols) = city(42, 10_000, 2_000, 57);
    let p = problem(&visits, &vols);
    let t = Instant::now();
    let out = propose(&p);
    let took = t.elapsed();
    let left: u32 = out.unfilled.iter().map(|u| u.1).sum();
    println!(
        "assign (city): {} visits over {} volunteers: {} proposed, {left} places nobody can \
         fill, cost {}, in {:.3} s",
        visits.len(),
        vols.len(),
        out.proposals.len(),
        out.cost,
        took.as_secs_f64()
    );
    assert_valid(&p, &out);
}
