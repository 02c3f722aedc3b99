//! The open visits volunteers can take, in memory, on a grid of cells by location: what
//! the feed needs of each (window, places, skills, where, what the page shows), so that a
//! feed request reads memory instead of asking the database for candidates.
//!
//! It is a cache. The database stays the authority: a claim decides with its own
//! transaction and answers a visit another instance has just filled with a clean 409.
//! Every instance loads all open visits at start, then reads, in the background every
//! `visits.feed_refresh_ms`, the visit rows whose `updated_at` moved since it last looked
//! (the database moves it on every write, migration m20261125_000013_visit_changes), back
//! by `visits.feed_margin_ms` for transactions that commit late; one refresh at a time.
//! A full reload every `visits.feed_full_reload_s` catches what no margin can (a very long
//! transaction, a village renamed). This instance's own claims, gives back and releases,
//! and plans made in it, are applied at once. With `feed_refresh_ms = 0` every feed read
//! refreshes first (tests write rows straight into the database and read at once).
//!
//! [`Grid`] and [`Grid::search`] are plain data and functions; [`FeedIndex`] is the thin
//! database layer around them.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration as StdDuration, Instant},
};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use entity::{FamilyCategory, StringList, family, region, visit_task};
use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement,
    sea_query::{Alias, Condition, Expr, ExprTrait, Query as Sql, SelectStatement},
};
use uuid::Uuid;

use crate::{
    eligibility::{FeedKey, Held, Offer, Point, Taker, Window, band_upper_m, check, next_radius},
    geo::{METRES_PER_DEGREE, bounding_box, metres_per_degree_lng},
};

/// A cell's side, degrees (about 280 m north–south; a feed's first circle is 250 m).
const CELL_DEG: f64 = 0.0025;

/// An open visit as the feed needs it.
#[derive(Debug, Clone)]
pub struct OpenVisit {
    /// Window, places, skills and the family's home (`family_at`, always known here), as
    /// [`check`] takes them.
    pub offer: Offer,
    /// The family's home.
    pub at: Point,
    pub kind: String,
    pub kinds: Option<Vec<String>>,
    pub channel: String,
    pub planned_date: Option<NaiveDate>,
    pub preferred_time: Option<String>,
    pub visitor_gender: Option<String>,
    pub gentle: bool,
    pub first_visit: bool,
    pub category: FamilyCategory,
    pub village: String,
}

impl OpenVisit {
    fn has_kind(&self, k: &str) -> bool {
        self.kind == k
            || self
                .kinds
                .as_ref()
                .is_some_and(|ks| ks.iter().any(|x| x == k))
    }
}

type Cell = (i32, i32);

fn cell_of(p: Point) -> Cell {
    (
        (p.lat / CELL_DEG).floor() as i32,
        (p.lng / CELL_DEG).floor() as i32,
    )
}

/// What a feed page asks of the grid. All of it is checked exactly here; the database is
/// not asked.
pub struct Search<'a> {
    pub now: DateTime<Utc>,
    /// Where distances are measured from.
    pub origin: Point,
    /// Nothing beyond this (metres; the circle's edge included).
    pub limit_m: f64,
    /// The page continues after this key (a cursor).
    pub after: Option<FeedKey>,
    pub kind: Option<&'a str>,
    /// Windows overlapping `[start, end)`, either end open.
    pub between: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    pub taker: &'a Taker,
    pub held: &'a [Held],
    pub tz: Tz,
    /// How many visits are wanted (a page and one more, to know there is a next page).
    pub want: usize,
}

/// A visit the search found, its key in the feed's order and its distance (metres).
pub type Found = (FeedKey, f64, Arc<OpenVisit>);

/// A visit in its cell, with what a search reads of every visit near kept in the cell's
/// own memory rather than behind the pointer.
struct Slot {
    lat: f64,
    lng: f64,
    end: DateTime<Utc>,
    visit: Arc<OpenVisit>,
}

/// The open visits by cell.
#[derive(Default)]
pub struct Grid {
    cells: HashMap<Cell, Vec<Slot>>,
    where_is: HashMap<Uuid, Cell>,
    /// The `updated_at` of the row each visit was last changed by here, so that a refresh
    /// whose rows were read before a newer change was applied does not undo it.
    versions: HashMap<Uuid, DateTime<Utc>>,
}

impl Grid {
    pub fn len(&self) -> usize {
        self.where_is.len()
    }

    pub fn is_empty(&self) -> bool {
        self.where_is.is_empty()
    }

    pub fn remove(&mut self, id: Uuid) {
        if let Some(cell) = self.where_is.remove(&id)
            && let Some(list) = self.cells.get_mut(&cell)
        {
            list.retain(|slot| slot.visit.offer.id != id);
            if list.is_empty() {
                self.cells.remove(&cell);
            }
        }
    }

    pub fn put(&mut self, v: OpenVisit) {
        self.remove(v.offer.id);
        let cell = cell_of(v.at);
        self.where_is.insert(v.offer.id, cell);
        self.cells.entry(cell).or_default().push(Slot {
            lat: v.at.lat,
            lng: v.at.lng,
            end: v.offer.window.end,
            visit: Arc::new(v),
        });
    }

    /// Applies a visit's row of `version` (its `updated_at`): `Some` while volunteers can
    /// take it, `None` when not. An older row than the one applied last changes nothing.
    pub fn update(&mut self, id: Uuid, version: DateTime<Utc>, v: Option<OpenVisit>) {
        if self.versions.get(&id).is_some_and(|seen| *seen > version) {
            return;
        }
        self.versions.insert(id, version);
        match v {
            Some(v) => self.put(v),
            None => self.remove(id),
        }
    }

    /// Calls `f` with every visit in the cells that meet the box of `metres` around
    /// `center`: by cell in a small box, else over every cell (a box of a whole county
    /// holds more cells than there are visits).
    fn each_near<'a>(&'a self, center: Point, metres: f64, mut f: impl FnMut(&'a Slot)) {
        let (dlat, dlng) = bounding_box(center.lat, metres);
        let lo = cell_of(Point::new(center.lat - dlat, center.lng - dlng));
        let hi = cell_of(Point::new(center.lat + dlat, center.lng + dlng));
        let span = (hi.0 - lo.0 + 1) as i64 * (hi.1 - lo.1 + 1) as i64;
        if span > self.cells.len() as i64 {
            for (c, list) in &self.cells {
                if (lo.0..=hi.0).contains(&c.0) && (lo.1..=hi.1).contains(&c.1) {
                    list.iter().for_each(&mut f);
                }
            }
        } else {
            for a in lo.0..=hi.0 {
                for b in lo.1..=hi.1 {
                    if let Some(list) = self.cells.get(&(a, b)) {
                        list.iter().for_each(&mut f);
                    }
                }
            }
        }
    }

    /// The first visits of the feed for `s`, in its order (distance group, end of window,
    /// id), at least `s.want` of them when there are that many: the nearest circle made of
    /// whole distance groups that holds them, starting with the cursor's group and widened
    /// by the density seen ([`next_radius`]), or everything within the limit.
    pub fn search(&self, s: &Search<'_>) -> Vec<Found> {
        let from_band = s.after.map_or(0, |k| k.band);
        let m_lng = metres_per_degree_lng(s.origin.lat);
        let mut radius_m = band_upper_m(from_band).min(s.limit_m);
        loop {
            let closed = radius_m >= s.limit_m;
            let mut near = Vec::with_capacity(256);
            self.each_near(s.origin, radius_m, |slot| {
                if let Some((key, d)) = candidate(s, slot, m_lng, radius_m, closed) {
                    near.push((key, d, &slot.visit));
                }
            });
            // The rules only for the first in order: a village holds thousands.
            near.sort_unstable_by_key(|c| c.0);
            let mut found = Vec::with_capacity(s.want);
            for (key, d, v) in near {
                if check(s.taker, s.held, &v.offer, s.tz).is_ok() {
                    found.push((key, d, v.clone()));
                    if found.len() == s.want {
                        return found;
                    }
                }
            }
            if closed {
                return found;
            }
            radius_m = next_radius(radius_m, found.len(), s.want, s.limit_m);
        }
    }
}

/// Whether `v` is open, inside the circle of `radius_m` (`closed`: its edge included), after
/// the cursor and passes the filters: its key and distance. Whether the volunteer can take
/// it ([`check`]) is asked after.
/// `m_lng`: metres per degree of longitude at the origin.
fn candidate(
    s: &Search<'_>,
    slot: &Slot,
    m_lng: f64,
    radius_m: f64,
    closed: bool,
) -> Option<(FeedKey, f64)> {
    if slot.end <= s.now {
        return None;
    }
    // geo::planar_m, its factor computed once.
    let dy = (slot.lat - s.origin.lat) * METRES_PER_DEGREE;
    let dx = (slot.lng - s.origin.lng) * m_lng;
    let d = (dy * dy + dx * dx).sqrt();
    // Inside a group boundary the circle is open (a visit right on it belongs to the next
    // group, not yet complete); the limit is inclusive.
    if (closed && d > radius_m) || (!closed && d >= radius_m) {
        return None;
    }
    let v = &slot.visit;
    if v.offer.is_full() {
        return None;
    }
    let key = FeedKey::new(d, v.offer.window.end, v.offer.id);
    if s.after.is_some_and(|a| key <= a) {
        return None;
    }
    if s.kind.is_some_and(|k| !v.has_kind(k))
        || s.between.0.is_some_and(|start| v.offer.window.end <= start)
        || s.between.1.is_some_and(|end| v.offer.window.start >= end)
    {
        return None;
    }
    Some((key, d))
}

// ---------------------------------------------------------------------------------------
// Kept fresh from the database

/// How the index is kept fresh (`[visits]` settings).
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    /// Between background refreshes; zero: refresh before every read.
    pub refresh: StdDuration,
    /// How far before the previous refresh began (database clock) each refresh reads again.
    pub margin: Duration,
    /// Between full reloads; zero: never after the first.
    pub full_reload: StdDuration,
}

struct Mark {
    /// The database's clock when the last refresh began.
    since: Option<DateTime<Utc>>,
    loaded_at: Option<Instant>,
}

/// The grid of this instance and how fresh it is.
pub struct FeedIndex {
    grid: RwLock<Option<Grid>>,
    /// Held by the one refresh running.
    mark: tokio::sync::Mutex<Mark>,
    pub freshness: Freshness,
}

/// A visit row as the index reads it.
#[derive(FromQueryResult, Debug)]
struct Row {
    id: Uuid,
    status: String,
    assign_to_cadre: bool,
    assigned_cadre_id: Option<Uuid>,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    volunteers_needed: i32,
    claims_count: i32,
    required_skills: StringList,
    lat: Option<f64>,
    lng: Option<f64>,
    kind: String,
    kinds: Option<StringList>,
    channel: String,
    planned_date: Option<NaiveDate>,
    preferred_time: Option<String>,
    visitor_gender: Option<String>,
    gentle: bool,
    first_visit: bool,
    updated_at: DateTime<Utc>,
    category: FamilyCategory,
    village: String,
}

impl Row {
    /// The visit, when volunteers can take it: open, not the cadre's, not full, located.
    fn into_open(self) -> Option<OpenVisit> {
        let open = self.status == visit_task::status::OPEN
            && !self.assign_to_cadre
            && self.assigned_cadre_id.is_none()
            && self.claims_count < self.volunteers_needed;
        if !open {
            return None;
        }
        let at = Point::from_opt(self.lat, self.lng)?;
        Some(OpenVisit {
            offer: Offer {
                id: self.id,
                status: visit_task::status::OPEN.into(),
                window: Window::new(self.window_start, self.window_end),
                volunteers_needed: self.volunteers_needed,
                claims_count: self.claims_count,
                required_skills: self.required_skills.0,
                assign_to_cadre: false,
                assigned_cadre_id: None,
                family_at: Some(at),
            },
            at,
            kind: self.kind,
            kinds: self.kinds.map(|k| k.0),
            channel: self.channel,
            planned_date: self.planned_date,
            preferred_time: self.preferred_time,
            visitor_gender: self.visitor_gender,
            gentle: self.gentle,
            first_visit: self.first_visit,
            category: self.category,
            village: self.village,
        })
    }
}

fn rows_select() -> SelectStatement {
    use visit_task::Column as T;
    let t = |c: T| (visit_task::Entity, c);
    Sql::select()
        .columns([
            t(T::Id),
            t(T::Status),
            t(T::AssignToCadre),
            t(T::AssignedCadreId),
            t(T::WindowStart),
            t(T::WindowEnd),
            t(T::VolunteersNeeded),
            t(T::ClaimsCount),
            t(T::RequiredSkills),
            t(T::Kind),
            t(T::Kinds),
            t(T::Channel),
            t(T::PlannedDate),
            t(T::PreferredTime),
            t(T::VisitorGender),
            t(T::Gentle),
            t(T::FirstVisit),
            t(T::UpdatedAt),
        ])
        // The family's location, copied onto its volunteer visits (m20261124_000005_feed).
        .expr_as(
            Expr::col((visit_task::Entity, Alias::new("lat"))),
            Alias::new("lat"),
        )
        .expr_as(
            Expr::col((visit_task::Entity, Alias::new("lng"))),
            Alias::new("lng"),
        )
        .column((family::Entity, family::Column::Category))
        .expr_as(
            Expr::col((region::Entity, region::Column::Name)),
            Alias::new("village"),
        )
        .from(visit_task::Entity)
        .inner_join(
            family::Entity,
            Expr::col((family::Entity, family::Column::Id))
                .equals((visit_task::Entity, T::FamilyId)),
        )
        .inner_join(
            region::Entity,
            Expr::col((region::Entity, region::Column::Id))
                .equals((family::Entity, family::Column::RegionId)),
        )
        .to_owned()
}

async fn read_rows(db: &impl ConnectionTrait, cond: Condition) -> Result<Vec<Row>, DbErr> {
    let backend = db.get_database_backend();
    let stmt = rows_select().cond_where(cond).to_owned();
    Row::find_by_statement(backend.build(&stmt)).all(db).await
}

/// The database's clock (`updated_at` is written by it).
async fn db_clock(db: &impl ConnectionTrait) -> Result<DateTime<Utc>, DbErr> {
    let sql = match db.get_database_backend() {
        DbBackend::Postgres => "SELECT clock_timestamp() AS now",
        _ => "SELECT strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now') AS now",
    };
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the database's clock".into()))?;
    row.try_get("", "now")
}

impl FeedIndex {
    pub fn new(freshness: Freshness) -> Self {
        Self {
            grid: RwLock::new(None),
            mark: tokio::sync::Mutex::new(Mark {
                since: None,
                loaded_at: None,
            }),
            freshness,
        }
    }

    /// Reads the grid, once it is loaded.
    pub fn read<R>(&self, f: impl FnOnce(&Grid) -> R) -> Option<R> {
        let guard = self.grid.read().expect("feed index lock");
        guard.as_ref().map(f)
    }

    pub fn is_loaded(&self) -> bool {
        self.grid.read().expect("feed index lock").is_some()
    }

    fn apply(&self, rows: Vec<Row>, now: DateTime<Utc>) {
        if rows.is_empty() {
            return;
        }
        let mut guard = self.grid.write().expect("feed index lock");
        let Some(grid) = guard.as_mut() else { return };
        for row in rows {
            let (id, version) = (row.id, row.updated_at);
            grid.update(
                id,
                version,
                row.into_open().filter(|v| v.offer.window.end > now),
            );
        }
    }

    /// Loads everything, or reads what changed since the last look (and reloads
    /// everything when a full reload is due). One at a time: a caller arriving during
    /// another's refresh waits for it and then refreshes again, so that it sees every
    /// change committed before it asked.
    pub async fn refresh(&self, db: &impl ConnectionTrait) -> Result<(), DbErr> {
        let mut mark = self.mark.lock().await;
        let now = Utc::now();
        let full_due = match mark.loaded_at {
            None => true,
            Some(at) => {
                !self.freshness.full_reload.is_zero() && at.elapsed() >= self.freshness.full_reload
            }
        };
        if full_due {
            use visit_task::Column as T;
            let started = Instant::now();
            // Rows changed from here on are read again by the next refresh.
            let clock = db_clock(db).await?;
            let rows = read_rows(
                db,
                Condition::all()
                    .add(Expr::col((visit_task::Entity, T::Status)).eq(visit_task::status::OPEN))
                    .add(Expr::col((visit_task::Entity, T::AssignToCadre)).eq(false))
                    .add(Expr::col((visit_task::Entity, T::AssignedCadreId)).is_null())
                    .add(Expr::col((visit_task::Entity, T::WindowEnd)).gt(now)),
            )
            .await?;
            let mut grid = Grid::default();
            for row in rows {
                let (id, version) = (row.id, row.updated_at);
                grid.update(id, version, row.into_open());
            }
            tracing::info!(
                visits = grid.len(),
                ms = started.elapsed().as_millis() as u64,
                "feed index loaded"
            );
            *self.grid.write().expect("feed index lock") = Some(grid);
            mark.since = Some(clock);
            mark.loaded_at = Some(Instant::now());
            return Ok(());
        }
        // A change committed since the last refresh was written after it began, less the
        // time its transaction took to commit: the margin.
        let clock = db_clock(db).await?;
        let since = mark
            .since
            .map_or(DateTime::UNIX_EPOCH, |t| t - self.freshness.margin);
        let rows = read_rows(
            db,
            Condition::all()
                .add(Expr::col((visit_task::Entity, visit_task::Column::UpdatedAt)).gt(since)),
        )
        .await?;
        mark.since = Some(clock);
        // Visits whose window has ended stay until the next full reload; searches skip
        // them (sweeping them here would hold every search up twice a second).
        self.apply(rows, now);
        Ok(())
    }

    /// Reads these visits again now (this instance changed them).
    pub async fn reload(&self, db: &impl ConnectionTrait, ids: &[Uuid]) -> Result<(), DbErr> {
        if ids.is_empty() || !self.is_loaded() {
            return Ok(());
        }
        let rows = read_rows(
            db,
            Condition::all()
                .add(Expr::col((visit_task::Entity, visit_task::Column::Id)).is_in(ids.to_vec())),
        )
        .await?;
        self.apply(rows, Utc::now());
        Ok(())
    }

    /// Reads again the visits changed since `since` (a plan made in this instance, which
    /// began then).
    pub async fn catch_up(
        &self,
        db: &impl ConnectionTrait,
        since: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        if !self.is_loaded() {
            return Ok(());
        }
        let rows = read_rows(
            db,
            Condition::all().add(
                Expr::col((visit_task::Entity, visit_task::Column::UpdatedAt))
                    .gt(since - self.freshness.margin),
            ),
        )
        .await?;
        self.apply(rows, Utc::now());
        Ok(())
    }

    /// Before a read: refreshes now when configured to refresh before every read.
    pub async fn before_read(&self, db: &impl ConnectionTrait) -> Result<(), DbErr> {
        if self.freshness.refresh.is_zero() {
            self.refresh(db).await?;
        }
        Ok(())
    }

    /// Loads, then refreshes every `refresh` until the task is dropped (not when
    /// refreshing before every read). A failed refresh is logged and tried again.
    pub fn spawn(
        self: &Arc<Self>,
        db: sea_orm::DatabaseConnection,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if self.freshness.refresh.is_zero() {
            return None;
        }
        let index = self.clone();
        Some(tokio::spawn(async move {
            loop {
                if let Err(e) = index.refresh(&db).await {
                    tracing::warn!(error = %e, "feed index refresh failed");
                }
                tokio::time::sleep(index.freshness.refresh).await;
            }
        }))
    }
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

    fn day(d: u32) -> DateTime<Utc> {
        TZ.with_ymd_and_hms(2026, 12, d, 0, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// An open visit `km_north` and `km_east` of home, on day `d`.
    fn visit(km_north: f64, km_east: f64, d: u32) -> OpenVisit {
        let at = Point::new(
            HOME.lat + km_north * 1000.0 / crate::geo::METRES_PER_DEGREE,
            HOME.lng + km_east * 1000.0 / crate::geo::metres_per_degree_lng(HOME.lat),
        );
        OpenVisit {
            offer: Offer {
                id: Uuid::now_v7(),
                status: "open".into(),
                window: Window::new(day(d), day(d + 1)),
                volunteers_needed: 1,
                claims_count: 0,
                required_skills: vec![],
                assign_to_cadre: false,
                assigned_cadre_id: None,
                family_at: Some(at),
            },
            at,
            kind: "routine".into(),
            kinds: None,
            channel: "home_visit".into(),
            planned_date: None,
            preferred_time: None,
            visitor_gender: None,
            gentle: false,
            first_visit: false,
            category: FamilyCategory::Bereaved,
            village: "村".into(),
        }
    }

    fn taker() -> Taker {
        Taker {
            skills: vec!["companionship".into()],
            home: Some(HOME),
            max_distance_km: 8.0,
            weekly_capacity: 50,
        }
    }

    fn search<'a>(taker: &'a Taker, held: &'a [Held], want: usize) -> Search<'a> {
        Search {
            now: day(1),
            origin: HOME,
            limit_m: taker.reach_m(),
            after: None,
            kind: None,
            between: (None, None),
            taker,
            held,
            tz: TZ,
            want,
        }
    }

    /// Every visit the volunteer can take, in the feed's order, by brute force.
    fn all_in_order(visits: &[OpenVisit], s: &Search<'_>) -> Vec<Uuid> {
        let mut keys: Vec<(FeedKey, Uuid)> = visits
            .iter()
            .map(|v| Arc::new(v.clone()))
            .filter(|v| check(s.taker, s.held, &v.offer, s.tz).is_ok())
            .filter_map(|v| {
                let slot = Slot {
                    lat: v.at.lat,
                    lng: v.at.lng,
                    end: v.offer.window.end,
                    visit: v.clone(),
                };
                let m_lng = metres_per_degree_lng(s.origin.lat);
                candidate(s, &slot, m_lng, s.limit_m, true).map(|(k, _)| (k, v.offer.id))
            })
            .collect();
        keys.sort();
        keys.into_iter().map(|k| k.1).collect()
    }

    fn scattered() -> Vec<OpenVisit> {
        // A village around home and farther ones, some beyond reach, 400 visits.
        (0..400)
            .map(|i| {
                let f = i as f64;
                let r = if i % 4 == 0 {
                    0.05 * (f % 40.0)
                } else {
                    0.03 * f
                };
                let a = f * 2.399;
                visit(r * a.sin(), r * a.cos(), 2 + (i % 20) as u32)
            })
            .collect()
    }

    #[test]
    fn pages_walk_the_feed_in_order_with_nothing_lost_or_repeated() {
        let visits = scattered();
        let mut grid = Grid::default();
        for v in &visits {
            grid.put(v.clone());
        }
        let t = taker();
        let mut s = search(&t, &[], 21);
        let expected = all_in_order(&visits, &s);
        assert!(
            expected.len() > 100 && expected.len() < 400,
            "{}",
            expected.len()
        );
        let mut seen = Vec::new();
        loop {
            let mut found = grid.search(&s);
            let more = found.len() > 20;
            found.truncate(20);
            seen.extend(found.iter().map(|f| f.2.offer.id));
            match (more, found.last()) {
                (true, Some(last)) => s.after = Some(last.0),
                _ => break,
            }
        }
        assert_eq!(seen, expected);
    }

    #[test]
    fn what_the_volunteer_cannot_take_is_left_out() {
        let mut skilled = visit(0.1, 0.0, 3);
        skilled.offer.required_skills = vec!["counselling".into()];
        let mut full = visit(0.1, 0.0, 3);
        full.offer.claims_count = 1;
        let past = visit(0.1, 0.0, 1);
        let overlapping = visit(0.2, 0.0, 5);
        let beyond = visit(9.0, 0.0, 3);
        let birthday = {
            let mut v = visit(0.3, 0.0, 6);
            v.kind = "festival".into();
            v.kinds = Some(vec!["festival".into(), "birthday".into()]);
            v
        };
        let fine = visit(0.3, 0.0, 3);
        let mut grid = Grid::default();
        for v in [
            &skilled,
            &full,
            &past,
            &overlapping,
            &beyond,
            &birthday,
            &fine,
        ] {
            grid.put(v.clone());
        }
        let t = taker();
        let held = [Held {
            id: Uuid::now_v7(),
            window: Window::new(day(5), day(6)),
        }];
        let mut s = search(&t, &held, 10);
        s.now = day(2) + Duration::hours(1);
        let ids: Vec<Uuid> = grid.search(&s).iter().map(|f| f.2.offer.id).collect();
        assert_eq!(ids, vec![fine.offer.id, birthday.offer.id]);
        s.kind = Some("birthday");
        let ids: Vec<Uuid> = grid.search(&s).iter().map(|f| f.2.offer.id).collect();
        assert_eq!(ids, vec![birthday.offer.id]);
        s.kind = None;
        s.between = (Some(day(6)), None);
        let ids: Vec<Uuid> = grid.search(&s).iter().map(|f| f.2.offer.id).collect();
        assert_eq!(ids, vec![birthday.offer.id]);
    }

    #[test]
    fn a_changed_visit_moves_and_a_gone_one_goes() {
        let mut grid = Grid::default();
        let mut v = visit(0.1, 0.0, 3);
        grid.put(v.clone());
        let t = taker();
        let s = search(&t, &[], 10);
        assert_eq!(grid.search(&s)[0].1.round(), 100.0);
        v = OpenVisit {
            offer: v.offer.clone(),
            ..visit(2.0, 0.0, 3)
        };
        v.offer.family_at = Some(v.at);
        grid.put(v.clone());
        assert_eq!(grid.len(), 1);
        assert_eq!(grid.search(&s)[0].1.round(), 2000.0);
        grid.remove(v.offer.id);
        assert!(grid.search(&s).is_empty());
        assert!(grid.is_empty());
        // A row read before a newer one was applied changes nothing.
        let newer = day(2);
        grid.update(v.offer.id, newer, None);
        grid.update(v.offer.id, newer - Duration::seconds(1), Some(v.clone()));
        assert!(grid.is_empty());
        grid.update(v.offer.id, newer + Duration::seconds(1), Some(v.clone()));
        assert_eq!(grid.len(), 1);
        grid.remove(v.offer.id);
    }

    #[test]
    fn a_search_far_and_wide_reads_every_cell_once() {
        let mut grid = Grid::default();
        let v = visit(150.0, 0.0, 3);
        grid.put(v.clone());
        let mut t = taker();
        t.max_distance_km = 200.0;
        let s = search(&t, &[], 10);
        let found = grid.search(&s);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].2.offer.id, v.offer.id);
    }
}
