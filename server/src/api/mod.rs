//! The HTTP API, one module per resource. Handlers are short: they check who may do what,
//! validate, and call the queries beside them.

use std::{marker::PhantomData, sync::Arc};

use poem_openapi::{
    ApiResponse, Object, OpenApi, OpenApiService, Tags,
    payload::{Json, Payload},
    registry::{MetaResponses, MetaSchemaRef, Registry},
    types::{ParseFromJSON, ToJSON, Type},
};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, ExprTrait, PaginatorTrait, Select,
    sea_query::{Expr, LikeExpr, Query, SimpleExpr},
};

use crate::{
    app::AppState,
    auth::Scope,
    error::{ApiError, ApiResult},
};

pub mod assignments;
pub mod auth;
pub mod calendar_feed;
pub mod care_rules;
pub mod community;
pub mod coverage;
pub mod events;
pub mod families;
pub mod filings;
pub mod gifts;
pub mod health;
pub mod health_readings;
pub mod help;
pub mod inbox;
pub mod notifications;
pub mod pairings;
pub mod planning;
pub mod regions;
pub mod register;
pub mod reports;
pub mod sms;
pub mod staff;
pub mod surge;
pub mod teams;
pub mod visits;
pub mod volunteers;
pub mod wishes;
pub mod workload;

pub fn service(state: Arc<AppState>) -> OpenApiService<impl OpenApi, ()> {
    OpenApiService::new(
        (
            auth::Api(state.clone()),
            regions::Api(state.clone()),
            families::Api(state.clone()),
            care_rules::Api(state.clone()),
            register::Api(state.clone()),
            volunteers::Api(state.clone()),
            visits::Api(state.clone()),
            calendar_feed::Api(state.clone()),
            teams::Api(state.clone()),
            pairings::Api(state.clone()),
            planning::Api(state.clone()),
            reports::Api(state.clone()),
            inbox::Api(state.clone()),
            notifications::Api(state.clone()),
            sms::Api(state.clone()),
            // A tuple holds at most 16 APIs.
            (
                staff::Api(state.clone()),
                // Seeing the work: workload, coverage, filed reports, gifts, health.
                workload::Api(state.clone()),
                coverage::Api(state.clone()),
                filings::Api(state.clone()),
                health_readings::Api(state.clone()),
                gifts::Api(state.clone()),
                assignments::Api(state.clone()),
                // Events, wishes, help, the festival surge.
                help::Api(state.clone()),
                events::Api(state.clone()),
                wishes::Api(state.clone()),
                surge::Api(state),
            ),
        ),
        "暖心 nuanxin",
        env!("CARGO_PKG_VERSION"),
    )
    .description("关爱计生特殊家庭：走访、提醒、协调。所有错误返回 {code, message, field}。")
    .server("/api")
}

#[derive(Tags)]
pub enum Tag {
    /// 登录、令牌与账号
    Auth,
    /// 行政区划：市/县/乡/村
    Regions,
    /// 家庭台账
    Families,
    /// 志愿者
    Volunteers,
    /// 走访：志愿者找走访、认领与放弃、协调员调出、走访详情、我的走访
    Visits,
    /// 志愿服务队
    Teams,
    /// 一帮一结对
    Pairings,
    /// 计划：家庭的走访计划预览、按地区生成计划、计划运行记录
    Planning,
    /// 协会工作者与责任干部
    Staff,
    /// 走访记录：签到签退、走访记录、家庭确认、志愿时长
    Reports,
    /// 消息：站内信、微信订阅消息授权
    Inbox,
    /// 分配：未被认领的走访的分配建议、应用与自动应用、志愿者接受或婉拒、请假与离队
    Assignments,
    /// 紧急求助：一键求助、即时通知、响应与升级
    Help,
    /// 心愿墙：家庭发布心愿、协会回复（公开或私下）、指派与完成、首次回复用时
    Wishes,
    /// 活动：集体庆生、节日联欢、培训；邀请家庭、志愿者报名、出席记录
    Events,
}

/// JSON serialized ahead of time (a cached page), sent as is and documented as `T`: the
/// response, its headers and the OpenAPI document are those of `Json<T>`.
pub struct JsonBytes<T> {
    bytes: Vec<u8>,
    doc: PhantomData<fn() -> T>,
}

impl<T> JsonBytes<T> {
    /// `bytes` must be `T` as `Json<T>` would serialize it.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            doc: PhantomData,
        }
    }
}

impl<T: Type> Payload for JsonBytes<T> {
    const CONTENT_TYPE: &'static str = <Json<T> as Payload>::CONTENT_TYPE;

    fn schema_ref() -> MetaSchemaRef {
        <Json<T> as Payload>::schema_ref()
    }

    fn register(registry: &mut Registry) {
        <Json<T> as Payload>::register(registry);
    }
}

impl<T> poem::IntoResponse for JsonBytes<T> {
    fn into_response(self) -> poem::Response {
        poem::Response::builder()
            .header(
                poem::http::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .body(self.bytes)
    }
}

impl<T: ToJSON> ApiResponse for JsonBytes<T> {
    fn meta() -> MetaResponses {
        <Json<T> as ApiResponse>::meta()
    }

    fn register(registry: &mut Registry) {
        <Json<T> as ApiResponse>::register(registry);
    }
}

/// One page of a list.
#[derive(Object)]
pub struct Page<T: ParseFromJSON + ToJSON> {
    pub items: Vec<T>,
    pub total: u64,
    pub page: u64,
    pub per_page: u64,
}

pub const MAX_PER_PAGE: u64 = 100;

/// Which page of a list was asked for (1-based), checked.
pub struct Paging {
    pub page: u64,
    pub per_page: u64,
}

impl Paging {
    pub fn new(page: Option<u64>, per_page: Option<u64>) -> ApiResult<Self> {
        let page = page.unwrap_or(1);
        let per_page = per_page.unwrap_or(20);
        if page == 0 {
            return Err(ApiError::field("page", "page 从 1 开始"));
        }
        if per_page == 0 || per_page > MAX_PER_PAGE {
            return Err(ApiError::field(
                "per_page",
                format!("per_page 应在 1 到 {MAX_PER_PAGE} 之间"),
            ));
        }
        Ok(Self { page, per_page })
    }

    /// The rows of this page and the total count.
    pub async fn fetch<E>(
        &self,
        db: &sea_orm::DatabaseConnection,
        select: Select<E>,
    ) -> ApiResult<(Vec<E::Model>, u64)>
    where
        E: EntityTrait,
        E::Model: Sync,
    {
        let paginator = select.paginate(db, self.per_page);
        let total = paginator.num_items().await?;
        let rows = paginator.fetch_page(self.page - 1).await?;
        Ok((rows, total))
    }

    pub fn wrap<T: ParseFromJSON + ToJSON>(&self, items: Vec<T>, total: u64) -> Page<T> {
        Page {
            items,
            total,
            page: self.page,
            per_page: self.per_page,
        }
    }

    /// `Json(self.wrap(items, total))` as sent, around items serialized beforehand (a JSON
    /// array): the keys in serde_json's order, which the test below holds to.
    pub fn wrap_json(&self, items: &[u8], total: u64) -> Vec<u8> {
        let tail = format!(
            ",\"page\":{},\"per_page\":{},\"total\":{}}}",
            self.page, self.per_page, total
        );
        let mut out = Vec::with_capacity(items.len() + tail.len() + 9);
        out.extend_from_slice(b"{\"items\":");
        out.extend_from_slice(items);
        out.extend_from_slice(tail.as_bytes());
        out
    }
}

/// Fetches one page of a query and maps each row.
pub async fn page_of<E, T>(
    db: &sea_orm::DatabaseConnection,
    select: Select<E>,
    page: Option<u64>,
    per_page: Option<u64>,
    map: impl Fn(E::Model) -> T,
) -> ApiResult<Page<T>>
where
    E: EntityTrait,
    E::Model: Sync,
    T: ParseFromJSON + ToJSON,
{
    let paging = Paging::new(page, per_page)?;
    let (rows, total) = paging.fetch(db, select).await?;
    Ok(paging.wrap(rows.into_iter().map(map).collect(), total))
}

/// Rows whose region column lies in the caller's scope.
pub fn in_scope(scope: &Scope, region_col: impl ColumnTrait) -> Condition {
    match scope {
        Scope::All => Condition::all(),
        Scope::Subtrees(paths) => {
            let mut any = Condition::any();
            for p in paths {
                any = any.add(Expr::col(entity::region::Column::Path).like(format!("{p}%")));
            }
            let sub = Query::select()
                .column(entity::region::Column::Id)
                .from(entity::region::Entity)
                .cond_where(any)
                .to_owned();
            Condition::all().add(region_col.in_subquery(sub))
        }
    }
}

/// A trimmed, non-empty search term.
pub fn search_term(q: Option<&str>) -> Option<&str> {
    q.map(str::trim).filter(|q| !q.is_empty())
}

/// `col LIKE 'term%'`: can use an index, unlike `contains`.
pub fn starts_with(col: impl ColumnTrait, term: &str) -> SimpleExpr {
    Expr::col(col).like(LikeExpr::new(format!("{}%", escape_like(term))).escape('\\'))
}

fn escape_like(term: &str) -> String {
    term.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// `col LIKE '%term%'`, with the term's own wildcards taken literally on every backend.
pub fn contains(col: impl ColumnTrait, term: &str) -> SimpleExpr {
    Expr::col(col).like(LikeExpr::new(format!("%{}%", escape_like(term))).escape('\\'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Object, Clone)]
    struct Row {
        name: String,
        phone: Option<String>,
    }

    #[test]
    fn a_page_around_serialized_items_is_the_page_serialized() {
        let rows = vec![
            Row {
                name: "王秀英 \"一\"".into(),
                phone: Some("138****0000".into()),
            },
            Row {
                name: "李".into(),
                phone: None,
            },
        ];
        for (rows, page, per_page, total) in [(rows, 3, 2, 41), (vec![], 1, 20, 0)] {
            let paging = Paging { page, per_page };
            let items = serde_json::to_vec(&rows.to_json()).unwrap();
            let whole = serde_json::to_vec(&paging.wrap(rows, total).to_json()).unwrap();
            assert_eq!(
                String::from_utf8(paging.wrap_json(&items, total)).unwrap(),
                String::from_utf8(whole).unwrap()
            );
        }
    }
}
