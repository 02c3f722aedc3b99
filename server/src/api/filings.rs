//! The reports the association files upward (上报): for a period and a region, families
//! reached (户数, 户次), visits by kind (户次 and 人次), 慰问金 and goods delivered,
//! volunteer-visits and service hours, events held, wishes received and answered. As JSON,
//! and as the XLSX and CSV files with Chinese headers that go to the next tier up. Every
//! figure is counted from the records beneath it: a visit counts when its report was
//! submitted in the period (reported or confirmed since).

use std::{collections::HashMap, sync::Arc};

use chrono::{NaiveDate, Utc};
use entity::{
    event, event_invitation, event_signup, service_hours, visit_checkin, visit_record, visit_task,
    visit_task::status, wish, wish_answer,
};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::Query,
    payload::{Binary, Json},
};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
    QueryTrait,
    sea_query::{Query as SqlQuery, SelectStatement},
};
use serde_json::json;
use uuid::Uuid;

use super::{Tag, coverage::focus, in_scope, workload::PeriodView};
use crate::{
    app::AppState,
    audit,
    auth::{Manager, Scope},
    error::{ApiError, ApiResult},
    oversight::{self, DoneVisit, Period},
    report,
};

pub struct Api(pub Arc<AppState>);

#[derive(Object, Clone)]
pub struct KindFigures {
    pub kind: String,
    /// 节日慰问, 定期走访…
    pub label: String,
    /// 户次
    pub visits: u64,
    /// 人次: visitors who checked in.
    pub person_visits: u64,
}

/// One filed report.
#[derive(Object, Clone)]
pub struct Filing {
    pub period: PeriodView,
    pub region_id: Option<Uuid>,
    pub region_name: String,
    /// 户数: families reached at least once.
    pub families: u64,
    /// 户次: visits done.
    pub household_visits: u64,
    pub by_kind: Vec<KindFigures>,
    /// 慰问金, exact, in fen.
    pub cash_fen: i64,
    pub cash_yuan: f64,
    /// Visits that handed over goods.
    pub goods_visits: u64,
    /// 人次: visitors' check-ins on the visits done.
    pub volunteer_visits: u64,
    /// Different visitors.
    pub volunteers: u64,
    /// Service hours credited for those visits (on the family's confirmation).
    pub service_minutes: i64,
    pub service_hours: f64,
    /// Events (activities) of the region that started in the period.
    pub events_held: u64,
    /// Attendances recorded at them: families who came and volunteers who came.
    pub event_attendance: Option<u64>,
    /// Wishes posted in the period by families of the region.
    pub wishes_received: u64,
    /// Of those, the ones answered.
    pub wishes_answered: u64,
}

#[derive(ApiResponse)]
pub enum XlsxFile {
    /// The report as an Excel workbook (Chinese headers).
    #[oai(
        status = 200,
        content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )]
    Ok(
        Binary<Vec<u8>>,
        #[oai(header = "Content-Disposition")] String,
    ),
}

#[derive(ApiResponse)]
pub enum CsvFile {
    /// The report as a CSV file (UTF-8 with a byte-order mark; opens in Excel).
    #[oai(status = 200, content_type = "text/csv; charset=utf-8")]
    Ok(
        Binary<Vec<u8>>,
        #[oai(header = "Content-Disposition")] String,
    ),
}

/// A cell of the exported sheet.
enum Value {
    Text(String),
    Number(f64),
    Empty,
}

/// The report as lines of (指标, 数值), the same in both files.
fn lines(f: &Filing) -> Vec<(String, Value)> {
    let n = |v: u64| Value::Number(v as f64);
    let mut out = vec![
        ("地区".to_string(), Value::Text(f.region_name.clone())),
        (
            "统计期间".into(),
            Value::Text(format!("{}至{}", f.period.from, f.period.to)),
        ),
        ("走访户数（户）".into(), n(f.families)),
        ("走访户次（户次）".into(), n(f.household_visits)),
    ];
    for k in &f.by_kind {
        out.push((format!("{}（户次）", k.label), n(k.visits)));
        out.push((format!("{}（人次）", k.label), n(k.person_visits)));
    }
    out.extend([
        ("发放慰问金（元）".into(), Value::Number(f.cash_yuan)),
        ("送物资（户次）".into(), n(f.goods_visits)),
        ("志愿者走访（人次）".into(), n(f.volunteer_visits)),
        ("参与志愿者（人）".into(), n(f.volunteers)),
        (
            "志愿服务时长（小时）".into(),
            Value::Number(f.service_hours),
        ),
        ("开展活动（场）".into(), n(f.events_held)),
        (
            "活动参与（人次）".into(),
            f.event_attendance.map_or(Value::Empty, n),
        ),
        ("收到心愿（条）".into(), n(f.wishes_received)),
        ("已回复心愿（条）".into(), n(f.wishes_answered)),
    ]);
    out
}

fn number_text(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

pub fn write_csv(f: &Filing) -> Vec<u8> {
    let mut out = "\u{feff}".as_bytes().to_vec();
    {
        let mut w = csv::Writer::from_writer(&mut out);
        let _ = w.write_record(["指标", "数值"]);
        for (label, v) in lines(f) {
            let v = match v {
                Value::Text(t) => t,
                Value::Number(x) => number_text(x),
                Value::Empty => String::new(),
            };
            let _ = w.write_record([label, v]);
        }
        let _ = w.flush();
    }
    out
}

pub fn write_xlsx(f: &Filing) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("工作报表")?;
    let bold = Format::new().set_bold();
    ws.write_string_with_format(0, 0, "指标", &bold)?;
    ws.write_string_with_format(0, 1, "数值", &bold)?;
    ws.set_column_width(0, 24.0)?;
    ws.set_column_width(1, 24.0)?;
    for (i, (label, v)) in lines(f).into_iter().enumerate() {
        let r = i as u32 + 1;
        ws.write_string(r, 0, label)?;
        match v {
            Value::Text(t) => {
                ws.write_string(r, 1, t)?;
            }
            Value::Number(x) => {
                ws.write_number(r, 1, x)?;
            }
            Value::Empty => {}
        }
    }
    wb.save_to_buffer()
}

fn families_of(scope: &Scope) -> SelectStatement {
    SqlQuery::select()
        .column(entity::family::Column::Id)
        .from(entity::family::Entity)
        .cond_where(in_scope(scope, entity::family::Column::RegionId))
        .to_owned()
}

/// The visits of the scope reported in the period and not undone since: visits of the
/// families' care, not a cadre's message calls.
fn done_ids(scope: &Scope, p: &Period) -> SelectStatement {
    SqlQuery::select()
        .column(visit_task::Column::Id)
        .from(visit_task::Entity)
        .and_where(visit_task::care_visits())
        .and_where(visit_task::Column::FamilyId.in_subquery(families_of(scope)))
        .and_where(visit_task::Column::Status.is_in([status::REPORTED, status::CONFIRMED]))
        .and_where(
            visit_task::Column::Id.in_subquery(
                SqlQuery::select()
                    .column(visit_record::Column::TaskId)
                    .from(visit_record::Entity)
                    .and_where(visit_record::Column::SubmittedAt.gte(p.start))
                    .and_where(visit_record::Column::SubmittedAt.lt(p.end))
                    .to_owned(),
            ),
        )
        .to_owned()
}

/// Counts a report's figures from the records.
pub async fn compute(
    db: &DatabaseConnection,
    scope: &Scope,
    p: &Period,
) -> ApiResult<oversight::Figures> {
    let tasks: Vec<(Uuid, Uuid, String)> = visit_task::Entity::find()
        .select_only()
        .columns([
            visit_task::Column::Id,
            visit_task::Column::FamilyId,
            visit_task::Column::Kind,
        ])
        .filter(visit_task::Column::Id.in_subquery(done_ids(scope, p)))
        .into_tuple()
        .all(db)
        .await?;
    let records: HashMap<Uuid, (i64, String)> = visit_record::Entity::find()
        .select_only()
        .columns([
            visit_record::Column::TaskId,
            visit_record::Column::CashFen,
            visit_record::Column::Goods,
        ])
        .filter(visit_record::Column::TaskId.in_subquery(done_ids(scope, p)))
        .into_tuple::<(Uuid, i64, String)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(t, c, g)| (t, (c, g)))
        .collect();
    let mut people: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    let checkins: Vec<(Uuid, Uuid)> = visit_checkin::Entity::find()
        .select_only()
        .columns([visit_checkin::Column::TaskId, visit_checkin::Column::UserId])
        .filter(visit_checkin::Column::TaskId.in_subquery(done_ids(scope, p)))
        .into_tuple()
        .all(db)
        .await?;
    for (t, u) in checkins {
        people.entry(t).or_default().push(u);
    }
    let visits: Vec<DoneVisit> = tasks
        .into_iter()
        .map(|(task, family, kind)| {
            let (cash_fen, goods) = records.get(&task).cloned().unwrap_or_default();
            DoneVisit {
                task,
                family,
                kind,
                cash_fen,
                goods,
                people: people.remove(&task).unwrap_or_default(),
            }
        })
        .collect();
    let mut f = oversight::figures(&visits);
    let minutes: Vec<i32> = service_hours::Entity::find()
        .select_only()
        .column(service_hours::Column::Minutes)
        .filter(service_hours::Column::TaskId.in_subquery(done_ids(scope, p)))
        .into_tuple()
        .all(db)
        .await?;
    f.service_minutes = minutes.into_iter().map(i64::from).sum();
    let held = event::Entity::find()
        .filter(in_scope(scope, event::Column::RegionId))
        .filter(event::Column::Status.ne(event::CANCELLED))
        .filter(event::Column::StartsAt.gte(p.start))
        .filter(event::Column::StartsAt.lt(p.end))
        .filter(event::Column::StartsAt.lte(Utc::now()));
    f.events_held = held.clone().count(db).await?;
    let held_ids = held.select_only().column(event::Column::Id).into_query();
    // Attendance as recorded at the events: the families who came, and the volunteers.
    let families_came = event_invitation::Entity::find()
        .filter(event_invitation::Column::EventId.in_subquery(held_ids.clone()))
        .filter(event_invitation::Column::Attended.eq(true))
        .count(db)
        .await?;
    let volunteers_came = event_signup::Entity::find()
        .filter(event_signup::Column::EventId.in_subquery(held_ids))
        .filter(event_signup::Column::Attended.eq(true))
        .count(db)
        .await?;
    f.event_attendance = families_came + volunteers_came;
    let wishes = wish::Entity::find()
        .filter(wish::Column::FamilyId.in_subquery(families_of(scope)))
        .filter(wish::Column::CreatedAt.gte(p.start))
        .filter(wish::Column::CreatedAt.lt(p.end));
    f.wishes_received = wishes.clone().count(db).await?;
    f.wishes_answered = wishes
        .filter(
            wish::Column::Id.in_subquery(
                SqlQuery::select()
                    .column(wish_answer::Column::WishId)
                    .from(wish_answer::Entity)
                    .to_owned(),
            ),
        )
        .count(db)
        .await?;
    Ok(f)
}

impl Api {
    async fn filing(
        &self,
        auth: &Manager,
        region_id: Option<Uuid>,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> ApiResult<Filing> {
        let state = &self.0;
        let p = Period::asked(from, to, state.today(), state.tz)?;
        let (scope, region) = focus(&state.db, &auth.0, region_id).await?;
        let f = compute(&state.db, &scope, &p).await?;
        Ok(Filing {
            period: (&p).into(),
            region_id: region.as_ref().map(|r| r.id),
            region_name: region.map_or_else(|| "全部地区".into(), |r| r.name),
            families: f.families,
            household_visits: f.household_visits,
            by_kind: f
                .by_kind
                .into_iter()
                .map(|(kind, (visits, person_visits))| KindFigures {
                    label: report::kind_label(&kind).into(),
                    kind,
                    visits,
                    person_visits,
                })
                .collect(),
            cash_fen: f.cash_fen,
            cash_yuan: report::fen_to_yuan(f.cash_fen),
            goods_visits: f.goods_visits,
            volunteer_visits: f.volunteer_visits,
            volunteers: f.volunteers,
            service_minutes: f.service_minutes,
            service_hours: report::hours(f.service_minutes),
            events_held: f.events_held,
            event_attendance: Some(f.event_attendance),
            wishes_received: f.wishes_received,
            wishes_answered: f.wishes_answered,
        })
    }

    async fn exported(&self, auth: &Manager, f: &Filing, format: &str) -> ApiResult<String> {
        audit::record(
            &self.0.db,
            Some(auth.0.user_id),
            "export_filing",
            "region",
            f.region_id,
            json!({"format": format, "from": f.period.from, "to": f.period.to}),
        )
        .await?;
        Ok(format!(
            "attachment; filename=\"report-{}-{}.{format}\"; filename*=UTF-8''%E5%B7%A5%E4%BD%9C%E6%8A%A5%E8%A1%A8-{}-{}.{format}",
            f.period.from, f.period.to, f.period.from, f.period.to
        ))
    }
}

#[OpenApi(prefix_path = "/filings", tag = "Tag::Families")]
impl Api {
    /// The report of my region (or a region of it) for a period (`from`/`to`, local
    /// days; default this month so far): families reached, visits by kind, 慰问金 and
    /// goods, volunteer-visits and hours, events, wishes.
    #[oai(path = "/", method = "get")]
    async fn get(
        &self,
        auth: Manager,
        region_id: Query<Option<Uuid>>,
        from: Query<Option<NaiveDate>>,
        to: Query<Option<NaiveDate>>,
    ) -> ApiResult<Json<Filing>> {
        Ok(Json(self.filing(&auth, region_id.0, from.0, to.0).await?))
    }

    /// The same report as an Excel workbook to file (指标/数值, Chinese headers).
    #[oai(path = "/xlsx", method = "get")]
    async fn xlsx(
        &self,
        auth: Manager,
        region_id: Query<Option<Uuid>>,
        from: Query<Option<NaiveDate>>,
        to: Query<Option<NaiveDate>>,
    ) -> ApiResult<XlsxFile> {
        let f = self.filing(&auth, region_id.0, from.0, to.0).await?;
        let bytes = write_xlsx(&f).map_err(|e| ApiError::Internal(e.into()))?;
        let name = self.exported(&auth, &f, "xlsx").await?;
        Ok(XlsxFile::Ok(Binary(bytes), name))
    }

    /// The same report as a CSV file.
    #[oai(path = "/csv", method = "get")]
    async fn csv(
        &self,
        auth: Manager,
        region_id: Query<Option<Uuid>>,
        from: Query<Option<NaiveDate>>,
        to: Query<Option<NaiveDate>>,
    ) -> ApiResult<CsvFile> {
        let f = self.filing(&auth, region_id.0, from.0, to.0).await?;
        let bytes = write_csv(&f);
        let name = self.exported(&auth, &f, "csv").await?;
        Ok(CsvFile::Ok(Binary(bytes), name))
    }
}
