//! The exact assignment, as a min-cost flow, to measure [`super::propose`] against.
//!
//! The network: source → visit (its places) → slot (volunteer, window; capacity 1) → week
//! (volunteer, ISO week) → volunteer → sink, and visit → sink at [`UNASSIGNED_COST`] a
//! place. Balance is convex, so it is a chain of parallel unit arcs of rising cost: week →
//! volunteer with the k-th arc costing the k-th visit of that week (as many arcs as the
//! capacity left), volunteer → sink the same for the month. A slot lets one visit per
//! window through, so the flow respects "no overlap" exactly when every two windows are
//! identical or disjoint (a visit per day, say); with windows that partly overlap it solves
//! a relaxation, and its cost is a lower bound of the optimum.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::{Outcome, Prepared, Problem, UNASSIGNED_COST, outcome};
use crate::geo::Window;

#[derive(Clone, Debug)]
struct Edge {
    to: usize,
    rev: usize,
    cap: i64,
    cost: i64,
}

/// A min-cost flow network with non-negative costs: successive shortest paths, Dijkstra
/// with potentials.
#[derive(Default)]
pub struct Network {
    g: Vec<Vec<Edge>>,
}

impl Network {
    pub fn node(&mut self) -> usize {
        self.g.push(Vec::new());
        self.g.len() - 1
    }

    /// Adds an arc; returns its place, for [`Network::flow_on`].
    pub fn arc(&mut self, from: usize, to: usize, cap: i64, cost: i64) -> (usize, usize) {
        debug_assert!(cost >= 0);
        let (rf, rt) = (
            self.g[to].len(),
            self.g[from].len() + usize::from(from == to),
        );
        self.g[from].push(Edge {
            to,
            rev: rf,
            cap,
            cost,
        });
        self.g[to].push(Edge {
            to: from,
            rev: rt,
            cap: 0,
            cost: -cost,
        });
        (from, self.g[from].len() - 1)
    }

    /// The flow on an arc.
    pub fn flow_on(&self, (from, i): (usize, usize)) -> i64 {
        let e = &self.g[from][i];
        self.g[e.to][e.rev].cap
    }

    /// Sends up to `limit` from `s` to `t` at least cost; returns (flow, cost).
    pub fn min_cost_flow(&mut self, s: usize, t: usize, limit: i64) -> (i64, i64) {
        let n = self.g.len();
        let mut potential = vec![0i64; n];
        let (mut flow, mut cost) = (0i64, 0i64);
        let mut dist = vec![i64::MAX; n];
        let mut prev: Vec<(usize, usize)> = vec![(usize::MAX, 0); n];
        while flow < limit {
            dist.fill(i64::MAX);
            dist[s] = 0;
            let mut heap = BinaryHeap::new();
            heap.push(Reverse((0i64, s)));
            while let Some(Reverse((d, x))) = heap.pop() {
                if d > dist[x] {
                    continue;
                }
                for (i, e) in self.g[x].iter().enumerate() {
                    if e.cap <= 0 {
                        continue;
                    }
                    let nd = d + e.cost + potential[x] - potential[e.to];
                    if nd < dist[e.to] {
                        dist[e.to] = nd;
                        prev[e.to] = (x, i);
                        heap.push(Reverse((nd, e.to)));
                    }
                }
            }
            if dist[t] == i64::MAX {
                break;
            }
            for (p, d) in potential.iter_mut().zip(&dist) {
                if *d < i64::MAX {
                    *p += d;
                }
            }
            let mut push = limit - flow;
            let mut x = t;
            while x != s {
                let (px, i) = prev[x];
                push = push.min(self.g[px][i].cap);
                x = px;
            }
            let mut x = t;
            while x != s {
                let (px, i) = prev[x];
                self.g[px][i].cap -= push;
                let rev = self.g[px][i].rev;
                self.g[x][rev].cap += push;
                cost += push * self.g[px][i].cost;
                x = px;
            }
            flow += push;
        }
        (flow, cost)
    }
}

/// The optimum (see the module), and whether it is exact: every two windows identical or
/// disjoint. Its `cost` is the flow's.
pub fn exact(p: &Problem) -> (Outcome, bool) {
    let pre = Prepared::new(p);
    let mut net = Network::default();
    let (s, t) = (net.node(), net.node());
    let vols: Vec<usize> = p.volunteers.iter().map(|_| net.node()).collect();
    let mut slots: HashMap<(usize, Window), usize> = HashMap::new();
    let mut weeks: HashMap<(usize, i32), usize> = HashMap::new();
    let mut arcs: Vec<((usize, usize), usize, usize)> = Vec::new();
    let mut total = 0i64;
    for (vi, v) in p.visits.iter().enumerate() {
        let node = net.node();
        net.arc(s, node, v.places as i64, 0);
        net.arc(node, t, v.places as i64, UNASSIGNED_COST);
        total += v.places as i64;
        for c in &pre.cands[vi] {
            let ui = c.vol as usize;
            let cap = p.volunteers[ui].weekly_capacity;
            let week = *weeks.entry((ui, pre.week[vi])).or_insert_with(|| {
                let w = net.node();
                let held = super::held_in(&pre.held_weeks[ui], pre.week[vi]);
                for load in held + 1..=cap {
                    net.arc(w, vols[ui], 1, pre.week_step(load, cap));
                }
                w
            });
            let slot = *slots.entry((ui, v.window)).or_insert_with(|| {
                let x = net.node();
                net.arc(x, week, 1, 0);
                x
            });
            arcs.push((net.arc(node, slot, 1, c.arc), vi, ui));
        }
    }
    // The month: as many rising arcs as the volunteer could take in all.
    for (ui, u) in p.volunteers.iter().enumerate() {
        let most: u32 = weeks
            .iter()
            .filter(|((x, _), _)| *x == ui)
            .map(|((_, w), _)| u.weekly_capacity - super::held_in(&pre.held_weeks[ui], *w))
            .sum();
        for k in 1..=most {
            net.arc(
                vols[ui],
                t,
                1,
                pre.month_step(u.month_held + k, u.weekly_capacity),
            );
        }
    }
    let (_, cost) = net.min_cost_flow(s, t, total);
    let pairs: Vec<(usize, usize)> = arcs
        .iter()
        .filter(|(a, _, _)| net.flow_on(*a) > 0)
        .map(|&(_, vi, ui)| (vi, ui))
        .collect();
    let mut out = outcome(p, &pre, &pairs);
    debug_assert_eq!(out.cost, cost);
    out.cost = cost;
    let mut windows: Vec<Window> = p.visits.iter().map(|v| v.window).collect();
    windows.sort_by_key(|w| (w.start, w.end));
    windows.dedup();
    let laminar = windows.windows(2).all(|w| !w[0].overlaps(&w[1]));
    (out, laminar)
}
