//! The festival surge (节日高峰): before the season around Spring Festival (by default
//! 腊月二十 to 正月十五) the care rules ask for many more visits than usual. Per township,
//! the home visits the rules require in the season (each counted by the volunteers it
//! needs) are compared with what the township's volunteers declared they can do (weekly
//! capacity over the season's days), weeks ahead, so that coordinators can recruit or
//! move people in time.
//!
//! Pure functions ([`season_of`], [`next_season`], [`assess`], [`warn_now`]) over plain
//! data, and [`demand`], which loads the families' forecast and the volunteers.

use std::collections::{BTreeMap, HashMap};

use chrono::{Duration, NaiveDate};
use entity::{VolunteerStatus, family, region, volunteer};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    calendar::{self, LunarDate},
    generate::{GenerateOptions, forecast},
    rules::Channel,
};

/// `[surge]`: the season and how early coordinators hear.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SurgeConfig {
    /// Warn from the daily job.
    pub enabled: bool,
    /// First and last day of the season as lunar "MM-DD" (a start month after the end
    /// month: the start is in the lunar year before).
    pub start: String,
    pub end: String,
    /// Weeks before the season's first day that warnings begin.
    pub warn_weeks: i64,
    /// The daily job (6-field cron, local time).
    pub cron: String,
}

impl Default for SurgeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            start: "12-20".into(),
            end: "01-15".into(),
            warn_weeks: 6,
            cron: "0 0 9 * * *".into(),
        }
    }
}

/// A season's bounds as lunar (month, day).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeasonSpec {
    pub start: (u32, u32),
    pub end: (u32, u32),
}

impl SurgeConfig {
    pub fn spec(&self) -> Result<SeasonSpec, String> {
        let parse = |name: &str, v: &str| -> Result<(u32, u32), String> {
            let (m, d) = v
                .trim()
                .split_once('-')
                .ok_or_else(|| format!("surge.{name} must be a lunar \"MM-DD\", not {v:?}"))?;
            let (m, d): (u32, u32) = (
                m.parse()
                    .map_err(|_| format!("surge.{name}: bad month in {v:?}"))?,
                d.parse()
                    .map_err(|_| format!("surge.{name}: bad day in {v:?}"))?,
            );
            if !(1..=12).contains(&m) || !(1..=30).contains(&d) {
                return Err(format!("surge.{name}: no lunar day {v:?}"));
            }
            Ok((m, d))
        };
        if self.warn_weeks < 0 || self.warn_weeks > 26 {
            return Err("surge.warn_weeks must be between 0 and 26".into());
        }
        crate::jobs::parse_cron(&self.cron).map_err(|e| format!("surge.cron: {e}"))?;
        Ok(SeasonSpec {
            start: parse("start", &self.start)?,
            end: parse("end", &self.end)?,
        })
    }
}

/// A season: its Gregorian days and the lunar year it ends in (its name: 2027 is the
/// season around the Spring Festival of 2027).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Season {
    pub year: i32,
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl Season {
    pub fn days(&self) -> i64 {
        (self.end - self.start).num_days() + 1
    }
}

fn lunar_day(year: i32, (month, day): (u32, u32)) -> Option<NaiveDate> {
    // A 30th in a 29-day month is its last day.
    let last = calendar::month_days(year, month, false)?;
    calendar::lunar_to_solar(LunarDate {
        year,
        month,
        day: day.min(last),
        leap: false,
    })
    .ok()
}

/// The season ending in lunar year `year`.
pub fn season_of(spec: SeasonSpec, year: i32) -> Option<Season> {
    let start_year = if spec.start > spec.end {
        year - 1
    } else {
        year
    };
    Some(Season {
        year,
        start: lunar_day(start_year, spec.start)?,
        end: lunar_day(year, spec.end)?,
    })
}

/// The first season that has not ended by `today`.
pub fn next_season(spec: SeasonSpec, today: NaiveDate) -> Option<Season> {
    use chrono::Datelike;
    (today.year()..=today.year() + 2)
        .filter_map(|y| season_of(spec, y))
        .find(|s| s.end >= today)
}

/// Whether warnings for `season` go out on `today`: from `weeks` weeks before it starts
/// until it starts.
pub fn warn_now(season: &Season, today: NaiveDate, weeks: i64) -> bool {
    today >= season.start - Duration::weeks(weeks) && today < season.start
}

/// What one region needs and can give over a season.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Load {
    /// Volunteer-visits the rules require (a visit needing two counts two).
    pub required: u32,
    /// The sum of the region's volunteers' declared weekly capacity.
    pub weekly_capacity: u32,
}

/// One region's forecast.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Forecast {
    /// The region (a township) by its path.
    pub path: String,
    pub required: u32,
    /// Visits its volunteers can take over the season.
    pub capacity: u32,
    /// How many will not fit (0 when they do).
    pub shortfall: u32,
}

/// Capacity over the season: the weekly figure for each of its days (rounded down).
pub fn assess(loads: &BTreeMap<String, Load>, days: i64) -> Vec<Forecast> {
    loads
        .iter()
        .map(|(path, l)| {
            let capacity = (i64::from(l.weekly_capacity) * days.max(0) / 7) as u32;
            Forecast {
                path: path.clone(),
                required: l.required,
                capacity,
                shortfall: l.required.saturating_sub(capacity),
            }
        })
        .collect()
}

/// The first `depth` ids of a region path ("/a/b/c/d/", 3 → "/a/b/c/"): the township of
/// a village. None above that depth.
pub fn prefix(path: &str, depth: usize) -> Option<String> {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    (parts.len() >= depth).then(|| format!("/{}/", parts[..depth].join("/")))
}

/// Regions are compared at the township level (市/县/乡/村: the third).
pub const TOWNSHIP_DEPTH: usize = 3;

/// The load of every township under `root` (all when empty) over `season`: the home
/// visits the families' rules require that are open to volunteers (not the cadres' own),
/// and the approved volunteers' weekly capacity. Volunteers registered above township level
/// belong to no township and are not counted.
pub async fn demand(
    db: &DatabaseConnection,
    opts: &GenerateOptions,
    root: &str,
    season: &Season,
) -> Result<BTreeMap<String, Load>, DbErr> {
    let mut opts = opts.clone();
    opts.region_path = (!root.is_empty()).then(|| root.to_string());
    let planned = forecast(db, &opts, season.start, season.end).await?;

    let paths: HashMap<Uuid, String> = region::Entity::find()
        .select_only()
        .columns([region::Column::Id, region::Column::Path])
        .filter(region::Column::Path.starts_with(root))
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let family_region: HashMap<Uuid, Uuid> = family::Entity::find()
        .select_only()
        .columns([family::Column::Id, family::Column::RegionId])
        .filter(family::Column::RegionId.is_in(paths.keys().copied()))
        .into_tuple::<(Uuid, Uuid)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let township = |region: &Uuid| paths.get(region).and_then(|p| prefix(p, TOWNSHIP_DEPTH));

    let mut loads: BTreeMap<String, Load> = BTreeMap::new();
    for (family, visits) in planned {
        let Some(t) = family_region.get(&family).and_then(township) else {
            continue;
        };
        let required: u32 = visits
            .iter()
            .filter(|v| v.channel == Channel::HomeVisit && !v.assign_to_cadre)
            .map(|v| u32::from(v.volunteers_needed))
            .sum();
        loads.entry(t).or_default().required += required;
    }
    let volunteers: Vec<(Uuid, i32)> = volunteer::Entity::find()
        .select_only()
        .columns([
            volunteer::Column::RegionId,
            volunteer::Column::WeeklyCapacity,
        ])
        .filter(volunteer::Column::Status.eq(VolunteerStatus::Approved))
        .filter(volunteer::Column::RegionId.is_in(paths.keys().copied()))
        .into_tuple()
        .all(db)
        .await?;
    for (region, weekly) in volunteers {
        if let Some(t) = township(&region) {
            loads.entry(t).or_default().weekly_capacity += weekly.max(0) as u32;
        }
    }
    Ok(loads)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn spec() -> SeasonSpec {
        SurgeConfig::default().spec().unwrap()
    }

    #[test]
    fn the_default_season_runs_from_la_yue_twentieth_to_the_lantern_festival() {
        // 春节 2027 is 6 February; 腊月 of lunar 2026 has 30 days (除夕 5 February), so
        // 腊月二十 is 27 January and 正月十五 (元宵) is 20 February.
        let s = season_of(spec(), 2027).unwrap();
        assert_eq!((s.start, s.end), (d(2027, 1, 27), d(2027, 2, 20)));
        assert_eq!(s.days(), 25);
        // 元宵 2026 is 3 March: on 10 March the next season is 2027's.
        assert_eq!(next_season(spec(), d(2026, 3, 10)).unwrap().year, 2027);
        // On its own last day a season is still the current one.
        assert_eq!(next_season(spec(), s.end).unwrap(), s);
    }

    #[test]
    fn warnings_begin_weeks_ahead_and_stop_when_the_season_starts() {
        let s = season_of(spec(), 2027).unwrap();
        assert!(!warn_now(
            &s,
            s.start - Duration::weeks(6) - Duration::days(1),
            6
        ));
        assert!(warn_now(&s, s.start - Duration::weeks(6), 6));
        assert!(warn_now(&s, s.start - Duration::days(1), 6));
        assert!(!warn_now(&s, s.start, 6));
    }

    #[test]
    fn capacity_is_weekly_capacity_over_the_days_and_the_rest_is_short() {
        let mut loads = BTreeMap::new();
        loads.insert(
            "/c/k/t1/".to_string(),
            Load {
                required: 40,
                weekly_capacity: 7,
            },
        );
        loads.insert(
            "/c/k/t2/".to_string(),
            Load {
                required: 10,
                weekly_capacity: 14,
            },
        );
        let f = assess(&loads, 25);
        // 7 a week over 25 days: 25 visits; 14 a week: 50.
        assert_eq!((f[0].capacity, f[0].shortfall), (25, 15));
        assert_eq!((f[1].capacity, f[1].shortfall), (50, 0));
    }

    #[test]
    fn a_village_belongs_to_its_township() {
        assert_eq!(prefix("/c/k/t/v/", 3).as_deref(), Some("/c/k/t/"));
        assert_eq!(prefix("/c/k/t/", 3).as_deref(), Some("/c/k/t/"));
        assert_eq!(prefix("/c/k/", 3), None);
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = |f: fn(&mut SurgeConfig)| {
            let mut c = SurgeConfig::default();
            f(&mut c);
            c.spec().is_err()
        };
        assert!(bad(|c| c.start = "13-01".into()));
        assert!(bad(|c| c.end = "0115".into()));
        assert!(bad(|c| c.warn_weeks = -1));
        assert!(bad(|c| c.cron = "every day".into()));
    }
}
