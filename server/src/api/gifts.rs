//! The 慰问金 ledger: per programme and festival a budget in a region; gifts to families
//! out of it — at most one per family per festival unless a coordinator overrides with a
//! reason (the database's unique `once_key` decides), a second coordinator's approval
//! above `[gifts] approval_above_yuan`, the family's confirmation of the visit that
//! delivered it as the receipt — and the reconciliation of the gifts received with the
//! 慰问金 the visit reports say was handed over. Writes are audited and all-or-nothing.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Utc};
use entity::{family, gift, gift_budget, region, visit_record, visit_task};
use poem_openapi::{
    Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, SqliteTransactionMode,
    TransactionOptions, TransactionTrait, sea_query::Expr,
};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{Page, Paging, Tag, in_scope, regions};
use crate::{
    app::AppState,
    audit,
    auth::{Ctx, Manager, Scope},
    crypto::mask_name,
    error::{ApiError, ApiResult},
    input::{Input, Validate, opt_text, text},
    oversight, report,
};

pub struct Api(pub Arc<AppState>);

#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct NewBudget {
    pub region_id: Uuid,
    /// 两节慰问, 特扶专项… (up to 50 characters)
    pub programme: String,
    /// The festival and year (2027春节), up to 50 characters.
    pub festival: String,
    pub budget_yuan: f64,
}

impl Validate for NewBudget {
    fn validate(&self) -> ApiResult<()> {
        text("programme", &self.programme, 1, 50)?;
        text("festival", &self.festival, 1, 50)?;
        budget_fen(self.budget_yuan).map(|_| ())
    }
}

fn budget_fen(yuan: f64) -> ApiResult<i64> {
    if !(yuan > 0.0 && yuan <= 100_000_000.0) {
        return Err(ApiError::field(
            "budget_yuan",
            "预算应大于 0 且不超过 1 亿元",
        ));
    }
    Ok((yuan * 100.0).round() as i64)
}

#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct NewGift {
    pub budget_id: Uuid,
    pub family_id: Uuid,
    /// The visit that delivers it (a visit of the family); the family's confirmation of
    /// that visit is the receipt.
    pub task_id: Option<Uuid>,
    /// 慰问金 in yuan, more than 0, at most two decimals.
    pub amount_yuan: f64,
    /// Goods given with it, up to 200 characters.
    pub goods: Option<String>,
    /// Why the family gets a second gift for the festival (required then), up to 200
    /// characters.
    pub override_reason: Option<String>,
}

impl Validate for NewGift {
    fn validate(&self) -> ApiResult<()> {
        amount_fen(self.amount_yuan)?;
        opt_text("goods", self.goods.as_deref(), 200)?;
        if let Some(r) = &self.override_reason {
            text("override_reason", r, 1, 200)?;
        }
        Ok(())
    }
}

fn amount_fen(yuan: f64) -> ApiResult<i64> {
    let fen = report::yuan_to_fen("amount_yuan", yuan)?;
    if fen <= 0 {
        return Err(ApiError::field("amount_yuan", "慰问金应大于 0"));
    }
    Ok(fen)
}

#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CancelGift {
    /// Why, up to 200 characters (kept in the audit log).
    pub reason: String,
}

impl Validate for CancelGift {
    fn validate(&self) -> ApiResult<()> {
        text("reason", &self.reason, 1, 200)
    }
}

#[derive(Object)]
pub struct BudgetView {
    pub id: Uuid,
    pub region_id: Uuid,
    pub region_name: String,
    pub programme: String,
    pub festival: String,
    pub budget_fen: i64,
    pub budget_yuan: f64,
    /// Gifts not cancelled (awaiting approval included).
    pub allocated_fen: i64,
    /// Gifts whose visit the family confirmed.
    pub received_fen: i64,
    pub remaining_fen: i64,
    pub gifts: u64,
}

#[derive(Object)]
pub struct GiftView {
    pub id: Uuid,
    pub budget_id: Uuid,
    pub family_id: Uuid,
    /// Masked: "孙*海".
    pub head_name: String,
    pub task_id: Option<Uuid>,
    pub amount_fen: i64,
    pub amount_yuan: f64,
    pub goods: String,
    /// `awaiting_approval`, `approved` or `cancelled`.
    pub status: String,
    pub override_reason: Option<String>,
    pub created_by: Uuid,
    pub approved_by: Option<Uuid>,
    /// When the family confirmed the visit that delivered it: the receipt.
    pub received_at: Option<DateTime<Utc>>,
}

/// A visit whose gifts and reported 慰问金 differ.
#[derive(Object)]
pub struct Mismatch {
    pub visit_id: Uuid,
    pub gifts_fen: i64,
    pub reported_cash_fen: i64,
}

/// Gifts received against what the visit reports say was handed over.
#[derive(Object)]
pub struct Reconciliation {
    pub budget_id: Uuid,
    /// Gifts whose visit the family confirmed.
    pub received_gifts: u64,
    pub received_fen: i64,
    /// 慰问金 in the reports of those visits.
    pub reported_cash_fen: i64,
    pub reconciled: bool,
    pub mismatches: Vec<Mismatch>,
}

async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, sea_orm::DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

async fn finish<T>(txn: DatabaseTransaction, out: ApiResult<T>) -> ApiResult<T> {
    match out {
        Ok(v) => {
            txn.commit().await?;
            Ok(v)
        }
        Err(e) => {
            let _ = txn.rollback().await;
            Err(e)
        }
    }
}

/// A budget of a region in scope (404 otherwise), with its region's path; its row locked
/// in a transaction so that gifts out of it are counted one at a time.
async fn budget_in_scope(
    db: &impl ConnectionTrait,
    scope: &Scope,
    id: Uuid,
    lock: bool,
) -> ApiResult<(gift_budget::Model, region::Model)> {
    let mut q = gift_budget::Entity::find_by_id(id);
    if lock {
        q = q.lock_exclusive();
    }
    let b = q.one(db).await?.ok_or(ApiError::NotFound("预算"))?;
    let r = regions::find_in_scope(db, scope, b.region_id)
        .await
        .map_err(|_| ApiError::NotFound("预算"))?;
    Ok((b, r))
}

/// When each visit was confirmed and the 慰问金 its report gives.
async fn receipts(
    db: &impl ConnectionTrait,
    tasks: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, (Option<DateTime<Utc>>, i64)>> {
    let ids: Vec<Uuid> = tasks.into_iter().collect();
    Ok(visit_record::Entity::find()
        .select_only()
        .columns([
            visit_record::Column::TaskId,
            visit_record::Column::ConfirmedAt,
            visit_record::Column::CashFen,
        ])
        .filter(visit_record::Column::TaskId.is_in(ids))
        .into_tuple::<(Uuid, Option<DateTime<Utc>>, i64)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(t, c, f)| (t, (c, f)))
        .collect())
}

async fn views(db: &impl ConnectionTrait, gifts: Vec<gift::Model>) -> ApiResult<Vec<GiftView>> {
    let names: HashMap<Uuid, String> = family::Entity::find()
        .select_only()
        .columns([family::Column::Id, family::Column::HeadName])
        .filter(family::Column::Id.is_in(gifts.iter().map(|g| g.family_id).collect::<Vec<_>>()))
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let got = receipts(db, gifts.iter().filter_map(|g| g.task_id)).await?;
    Ok(gifts
        .into_iter()
        .map(|g| GiftView {
            head_name: names
                .get(&g.family_id)
                .map(|n| mask_name(n))
                .unwrap_or_default(),
            received_at: g
                .task_id
                .and_then(|t| got.get(&t))
                .and_then(|r| r.0)
                .filter(|_| g.status == gift::status::APPROVED),
            amount_yuan: report::fen_to_yuan(g.amount_fen),
            id: g.id,
            budget_id: g.budget_id,
            family_id: g.family_id,
            task_id: g.task_id,
            amount_fen: g.amount_fen,
            goods: g.goods,
            status: g.status,
            override_reason: g.override_reason,
            created_by: g.created_by,
            approved_by: g.approved_by,
        })
        .collect())
}

async fn budget_view(
    db: &impl ConnectionTrait,
    b: gift_budget::Model,
    region_name: String,
) -> ApiResult<BudgetView> {
    let gifts = gift::Entity::find()
        .filter(gift::Column::BudgetId.eq(b.id))
        .filter(gift::Column::Status.ne(gift::status::CANCELLED))
        .all(db)
        .await?;
    let got = receipts(db, gifts.iter().filter_map(|g| g.task_id)).await?;
    let allocated: i64 = gifts.iter().map(|g| g.amount_fen).sum();
    let received: i64 = gifts
        .iter()
        .filter(|g| g.status == gift::status::APPROVED)
        .filter(|g| {
            g.task_id
                .and_then(|t| got.get(&t))
                .is_some_and(|r| r.0.is_some())
        })
        .map(|g| g.amount_fen)
        .sum();
    Ok(BudgetView {
        id: b.id,
        region_id: b.region_id,
        region_name,
        budget_yuan: report::fen_to_yuan(b.budget_fen),
        allocated_fen: allocated,
        received_fen: received,
        remaining_fen: b.budget_fen - allocated,
        gifts: gifts.len() as u64,
        budget_fen: b.budget_fen,
        programme: b.programme,
        festival: b.festival,
    })
}

impl Api {
    async fn give(
        &self,
        txn: &DatabaseTransaction,
        ctx: &Ctx,
        body: &NewGift,
    ) -> ApiResult<GiftView> {
        let now = Utc::now();
        let scope = ctx.manager_scope()?;
        let (budget, budget_region) = budget_in_scope(txn, &scope, body.budget_id, true).await?;
        let fam = family::Entity::find_by_id(body.family_id)
            .one(txn)
            .await?
            .ok_or_else(|| ApiError::field("family_id", "家庭不存在"))?;
        let fam_path = region::Entity::find_by_id(fam.region_id)
            .one(txn)
            .await?
            .map(|r| r.path)
            .unwrap_or_default();
        if !fam_path.starts_with(&budget_region.path) || !scope.contains(&fam_path) {
            return Err(ApiError::field(
                "family_id",
                "该家庭不在此预算的地区或您的管辖范围内",
            ));
        }
        if let Some(t) = body.task_id {
            let visit = visit_task::Entity::find_by_id(t).one(txn).await?;
            if !visit
                .is_some_and(|v| v.family_id == fam.id && v.status != visit_task::status::CANCELLED)
            {
                return Err(ApiError::field("task_id", "请选择该家庭的一次走访"));
            }
        }
        let amount = amount_fen(body.amount_yuan)?;
        let allocated: Vec<i64> = gift::Entity::find()
            .select_only()
            .column(gift::Column::AmountFen)
            .filter(gift::Column::BudgetId.eq(budget.id))
            .filter(gift::Column::Status.ne(gift::status::CANCELLED))
            .into_tuple()
            .all(txn)
            .await?;
        let left = budget.budget_fen - allocated.iter().sum::<i64>();
        if amount > left {
            return Err(ApiError::conflict(
                "over_budget",
                format!("超出预算：剩余 {} 元", report::fen_to_yuan(left.max(0))),
            ));
        }
        let id = Uuid::now_v7();
        let first = oversight::gift_once_key(&budget.festival, fam.id, None);
        let given = gift::Entity::find()
            .filter(gift::Column::OnceKey.eq(first.as_str()))
            .one(txn)
            .await?
            .is_some();
        let reason = body.override_reason.as_deref().map(str::trim);
        let once_key = match (given, reason) {
            (false, _) => first,
            (true, Some(_)) => oversight::gift_once_key(&budget.festival, fam.id, Some(id)),
            (true, None) => {
                return Err(ApiError::conflict(
                    "already_given",
                    "该家庭本节日已发放过慰问金；如确需再次发放，请填写原因（override_reason）",
                ));
            }
        };
        let awaiting = oversight::needs_second_approval(amount, &self.0.config.gifts);
        let row = gift::ActiveModel {
            id: Set(id),
            budget_id: Set(budget.id),
            family_id: Set(fam.id),
            task_id: Set(body.task_id),
            amount_fen: Set(amount),
            goods: Set(body
                .goods
                .as_deref()
                .map(str::trim)
                .unwrap_or_default()
                .into()),
            status: Set(if awaiting {
                gift::status::AWAITING_APPROVAL
            } else {
                gift::status::APPROVED
            }
            .into()),
            once_key: Set(once_key),
            override_reason: Set(reason.map(Into::into)),
            created_by: Set(ctx.user_id),
            approved_by: Set(None),
            approved_at: Set(None),
            cancelled_at: Set(None),
            created_at: Set(now),
        }
        .insert(txn)
        .await
        .map_err(|e| match ApiError::from(e) {
            // Another coordinator gave the family its gift a moment ago.
            ApiError::Conflict { .. } => ApiError::conflict(
                "already_given",
                "该家庭本节日已发放过慰问金；如确需再次发放，请填写原因（override_reason）",
            ),
            other => other,
        })?;
        audit::record(
            txn,
            Some(ctx.user_id),
            "create_gift",
            "gift",
            Some(id),
            json!({"budget_id": budget.id, "family_id": fam.id, "amount_fen": amount,
                   "override_reason": reason}),
        )
        .await?;
        Ok(views(txn, vec![row]).await?.remove(0))
    }

    async fn gift_in_scope(
        &self,
        txn: &DatabaseTransaction,
        scope: &Scope,
        id: Uuid,
    ) -> ApiResult<gift::Model> {
        let g = gift::Entity::find_by_id(id)
            .lock_exclusive()
            .one(txn)
            .await?
            .ok_or(ApiError::NotFound("慰问金记录"))?;
        budget_in_scope(txn, scope, g.budget_id, false)
            .await
            .map_err(|_| ApiError::NotFound("慰问金记录"))?;
        Ok(g)
    }

    async fn approve_step(
        &self,
        txn: &DatabaseTransaction,
        ctx: &Ctx,
        id: Uuid,
    ) -> ApiResult<GiftView> {
        let scope = ctx.manager_scope()?;
        let g = self.gift_in_scope(txn, &scope, id).await?;
        if g.status != gift::status::AWAITING_APPROVAL {
            return Err(ApiError::state(
                "not_awaiting_approval",
                g.status,
                "该笔慰问金无需审批",
            ));
        }
        if g.created_by == ctx.user_id {
            return Err(ApiError::Forbidden("须由另一位协会工作者审批".into()));
        }
        let now = Utc::now();
        let mut row: gift::ActiveModel = g.into();
        row.status = Set(gift::status::APPROVED.into());
        row.approved_by = Set(Some(ctx.user_id));
        row.approved_at = Set(Some(now));
        let g = row.update(txn).await?;
        audit::record(
            txn,
            Some(ctx.user_id),
            "approve_gift",
            "gift",
            Some(g.id),
            json!({"amount_fen": g.amount_fen}),
        )
        .await?;
        Ok(views(txn, vec![g]).await?.remove(0))
    }

    async fn cancel_step(
        &self,
        txn: &DatabaseTransaction,
        ctx: &Ctx,
        id: Uuid,
        reason: &str,
    ) -> ApiResult<GiftView> {
        let scope = ctx.manager_scope()?;
        let g = self.gift_in_scope(txn, &scope, id).await?;
        if g.status == gift::status::CANCELLED {
            return Err(ApiError::state("cancelled", g.status, "该笔慰问金已取消"));
        }
        let now = Utc::now();
        // The family's place for the festival is free again.
        let key = oversight::gift_cancelled_key(&g.once_key, g.id);
        gift::Entity::update_many()
            .col_expr(gift::Column::Status, Expr::value(gift::status::CANCELLED))
            .col_expr(gift::Column::OnceKey, Expr::value(key))
            .col_expr(gift::Column::CancelledAt, Expr::value(now))
            .filter(gift::Column::Id.eq(g.id))
            .exec(txn)
            .await?;
        audit::record(
            txn,
            Some(ctx.user_id),
            "cancel_gift",
            "gift",
            Some(g.id),
            json!({"reason": reason.trim()}),
        )
        .await?;
        let g = gift::Entity::find_by_id(g.id)
            .one(txn)
            .await?
            .ok_or(ApiError::NotFound("慰问金记录"))?;
        Ok(views(txn, vec![g]).await?.remove(0))
    }
}

#[OpenApi(tag = "Tag::Families")]
impl Api {
    /// Set a programme's 慰问金 budget for a festival in a region of mine (one per
    /// region, programme and festival).
    #[oai(path = "/gift-budgets", method = "post")]
    async fn create_budget(
        &self,
        auth: Manager,
        body: Input<NewBudget>,
    ) -> ApiResult<Json<BudgetView>> {
        let scope = auth.0.manager_scope()?;
        let db = &self.0.db;
        let r = regions::referenced(db, &scope, "region_id", body.0.region_id).await?;
        let txn = db.begin().await?;
        let out = async {
            let b = gift_budget::ActiveModel {
                id: Set(Uuid::now_v7()),
                region_id: Set(r.id),
                programme: Set(body.0.programme.trim().into()),
                festival: Set(body.0.festival.trim().into()),
                budget_fen: Set(budget_fen(body.0.budget_yuan)?),
                created_by: Set(auth.0.user_id),
                created_at: Set(Utc::now()),
            }
            .insert(&txn)
            .await?;
            audit::record(
                &txn,
                Some(auth.0.user_id),
                "create_gift_budget",
                "gift_budget",
                Some(b.id),
                json!({"region_id": r.id, "budget_fen": b.budget_fen}),
            )
            .await?;
            budget_view(&txn, b, r.name.clone()).await
        }
        .await;
        Ok(Json(finish(txn, out).await?))
    }

    /// Budgets of my region, with what is allocated, received and left.
    #[oai(path = "/gift-budgets", method = "get")]
    async fn budgets(
        &self,
        auth: Manager,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<BudgetView>>> {
        let paging = Paging::new(page.0, per_page.0)?;
        let db = &self.0.db;
        let scope = auth.0.manager_scope()?;
        let select = gift_budget::Entity::find()
            .filter(in_scope(&scope, gift_budget::Column::RegionId))
            .order_by_desc(gift_budget::Column::CreatedAt)
            .order_by_asc(gift_budget::Column::Id);
        let (rows, total) = paging.fetch(db, select).await?;
        let mut items = Vec::with_capacity(rows.len());
        for b in rows {
            let name = region::Entity::find_by_id(b.region_id)
                .one(db)
                .await?
                .map(|r| r.name)
                .unwrap_or_default();
            items.push(budget_view(db, b, name).await?);
        }
        Ok(Json(paging.wrap(items, total)))
    }

    /// Give a family 慰问金 out of a budget: at most once per festival unless
    /// `override_reason` says why; above the configured amount it waits for a second
    /// coordinator's approval.
    #[oai(path = "/gifts", method = "post")]
    async fn create_gift(&self, auth: Manager, body: Input<NewGift>) -> ApiResult<Json<GiftView>> {
        let txn = begin(&self.0.db).await?;
        let out = self.give(&txn, &auth.0, &body.0).await;
        Ok(Json(finish(txn, out).await?))
    }

    /// The gifts of a budget, newest first (family names masked), each with its receipt.
    #[oai(path = "/gift-budgets/:id/gifts", method = "get")]
    async fn gifts(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<GiftView>>> {
        let paging = Paging::new(page.0, per_page.0)?;
        let db = &self.0.db;
        let scope = auth.0.manager_scope()?;
        budget_in_scope(db, &scope, id.0, false).await?;
        let select = gift::Entity::find()
            .filter(gift::Column::BudgetId.eq(id.0))
            .order_by_desc(gift::Column::CreatedAt)
            .order_by_asc(gift::Column::Id);
        let (rows, total) = paging.fetch(db, select).await?;
        Ok(Json(paging.wrap(views(db, rows).await?, total)))
    }

    /// Approve a gift above the configured amount (another coordinator than the one who
    /// entered it).
    #[oai(path = "/gifts/:id/approve", method = "post")]
    async fn approve(&self, auth: Manager, id: Path<Uuid>) -> ApiResult<Json<GiftView>> {
        let txn = begin(&self.0.db).await?;
        let out = self.approve_step(&txn, &auth.0, id.0).await;
        Ok(Json(finish(txn, out).await?))
    }

    /// Cancel a gift, with the reason; the family may then be given one again.
    #[oai(path = "/gifts/:id/cancel", method = "post")]
    async fn cancel(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        body: Input<CancelGift>,
    ) -> ApiResult<Json<GiftView>> {
        let txn = begin(&self.0.db).await?;
        let out = self.cancel_step(&txn, &auth.0, id.0, &body.0.reason).await;
        Ok(Json(finish(txn, out).await?))
    }

    /// The gifts received (their visit confirmed by the family) against the 慰问金 the
    /// reports of those visits give; the visits where they differ.
    #[oai(path = "/gift-budgets/:id/reconciliation", method = "get")]
    async fn reconciliation(
        &self,
        auth: Manager,
        id: Path<Uuid>,
    ) -> ApiResult<Json<Reconciliation>> {
        let db = &self.0.db;
        let scope = auth.0.manager_scope()?;
        let (b, _) = budget_in_scope(db, &scope, id.0, false).await?;
        let gifts = gift::Entity::find()
            .filter(gift::Column::BudgetId.eq(b.id))
            .filter(gift::Column::Status.eq(gift::status::APPROVED))
            .filter(gift::Column::TaskId.is_not_null())
            .all(db)
            .await?;
        let got = receipts(db, gifts.iter().filter_map(|g| g.task_id)).await?;
        let mut per_visit: HashMap<Uuid, i64> = HashMap::new();
        let mut received_gifts = 0;
        for g in &gifts {
            let Some(t) = g.task_id else { continue };
            if got.get(&t).is_some_and(|r| r.0.is_some()) {
                *per_visit.entry(t).or_default() += g.amount_fen;
                received_gifts += 1;
            }
        }
        let mut mismatches: Vec<Mismatch> = per_visit
            .iter()
            .filter_map(|(t, fen)| {
                let cash = got.get(t).map_or(0, |r| r.1);
                (cash != *fen).then_some(Mismatch {
                    visit_id: *t,
                    gifts_fen: *fen,
                    reported_cash_fen: cash,
                })
            })
            .collect();
        mismatches.sort_by_key(|m| m.visit_id);
        let received_fen = per_visit.values().sum();
        let reported_cash_fen = per_visit
            .keys()
            .map(|t| got.get(t).map_or(0, |r| r.1))
            .sum();
        Ok(Json(Reconciliation {
            budget_id: b.id,
            received_gifts,
            received_fen,
            reported_cash_fen,
            reconciled: mismatches.is_empty(),
            mismatches,
        }))
    }
}
