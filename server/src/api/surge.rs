//! The festival surge (节日高峰预警) for coordinators: per township of their scope, the
//! volunteer-visits the care rules require in the coming season around Spring Festival,
//! what the volunteers declared they can do over it, and the shortfall. The logic is
//! `scheduler::surge`; the daily job warns the coordinators (see `notify::produce`).

use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use poem_openapi::{Object, OpenApi, param::Query, payload::Json};
use scheduler::surge;
use uuid::Uuid;

use super::{Page, Paging, Tag, community::region_names};
use crate::{
    app::AppState,
    auth::{Manager, Scope},
    error::{ApiError, ApiResult},
    notify::produce::last_id,
};

pub struct Api(pub Arc<AppState>);

#[derive(Object)]
pub struct SurgeRow {
    pub region_id: Uuid,
    pub region: String,
    /// Volunteer-visits the rules require in the season.
    pub required: u32,
    /// What the township's volunteers can take over it (weekly capacity × days ÷ 7).
    pub capacity: u32,
    pub shortfall: u32,
}

#[derive(Object)]
pub struct SurgeReport {
    /// The lunar year the season ends in.
    pub season: i32,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub days: i64,
    /// Warnings go out from this day.
    pub warn_from: NaiveDate,
    /// Townships, the largest shortfall first.
    pub regions: Page<SurgeRow>,
}

#[OpenApi(tag = "Tag::Planning")]
impl Api {
    /// The coming festival season (or the one ending in lunar `year`) per township of my
    /// scope: required visits, capacity and shortfall.
    #[oai(path = "/surge", method = "get")]
    async fn surge(
        &self,
        auth: Manager,
        year: Query<Option<i32>>,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<SurgeReport>> {
        let scope = auth.0.manager_scope()?;
        let state = &self.0;
        let paging = Paging::new(page.0, per_page.0)?;
        let spec = state
            .config
            .surge
            .spec()
            .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?;
        let today = state.today();
        let season = match year.0 {
            Some(y) => {
                crate::input::range("year", y, today.year_ce().1 as i32 - 1, 2099)?;
                surge::season_of(spec, y)
            }
            None => surge::next_season(spec, today),
        }
        .ok_or_else(|| ApiError::field("year", "无法计算该年的节日季"))?;
        let roots = match &scope {
            Scope::All => vec![String::new()],
            Scope::Subtrees(paths) => paths.clone(),
        };
        let opts = state.plan_options(season.start);
        let mut loads = std::collections::BTreeMap::new();
        for root in &roots {
            for (path, load) in surge::demand(&state.db, &opts, root, &season).await? {
                // A coordinator below township level sees their part of it.
                loads.entry(path).or_insert(load);
            }
        }
        let mut rows = surge::assess(&loads, season.days());
        rows.sort_by(|a, b| b.shortfall.cmp(&a.shortfall).then(a.path.cmp(&b.path)));
        let total = rows.len() as u64;
        let rows: Vec<surge::Forecast> = rows
            .into_iter()
            .skip(((paging.page - 1) * paging.per_page) as usize)
            .take(paging.per_page as usize)
            .collect();
        let names = region_names(&state.db, rows.iter().filter_map(|r| last_id(&r.path))).await?;
        let items = rows
            .into_iter()
            .filter_map(|r| {
                let id = last_id(&r.path)?;
                Some(SurgeRow {
                    region_id: id,
                    region: names.get(&id).cloned().unwrap_or_default(),
                    required: r.required,
                    capacity: r.capacity,
                    shortfall: r.shortfall,
                })
            })
            .collect();
        Ok(Json(SurgeReport {
            season: season.year,
            start: season.start,
            end: season.end,
            days: season.days(),
            warn_from: season.start - chrono::Duration::weeks(state.config.surge.warn_weeks),
            regions: paging.wrap(items, total),
        }))
    }
}
