//! Demo data that looks like the real thing: one city, 2 counties, 6 townships, 30
//! villages; coordinators at every tier, cadres, 8 volunteer teams, 120 volunteers, and
//! families of every category with solar and lunar birthdays (some in leap months, some
//! on the 30th), bereaved families with their child's dates, and 一帮一 pairings.
//!
//! Deterministic (a fixed seed), so the README can name demo users by phone number.
//! `seed --families N` adds N more families to the same villages for benchmarks.

use chrono::{NaiveDate, Utc};
use entity::{
    BirthCalendar, FamilyCategory, FamilyStatus, MemberRelation, RegionLevel, Role, UserStatus,
    VolunteerStatus, app_user, family, family_member, pairing, region, role_grant, team, volunteer,
};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set,
    TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use crate::{api::volunteers::skill_list, app::AppState};

pub const DEMO_FAMILIES: usize = 300;

/// Demo people to log in as (dev login), by phone number.
pub const ADMIN_PHONE: &str = "13800000000";
pub const CITY_COORDINATOR_PHONE: &str = "13800000001";
/// County coordinators are 13800000011 and 13800000012; township ones 1380000002x.
pub const FIRST_COUNTY_COORDINATOR_PHONE: &str = "13800000011";
pub const FIRST_VOLUNTEER_PHONE: &str = "13900000000";

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "罗", "高", "梁", "郑", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹",
];
const GIVEN: &[&str] = &[
    "秀英", "桂兰", "玉兰", "淑珍", "凤英", "建国", "建华", "国强", "志刚", "德明", "文华", "永红",
    "春梅", "海燕", "丽华", "明", "伟", "芳", "军", "静", "磊", "洋", "勇", "艳", "杰", "娟", "涛",
    "超", "霞", "平", "刚", "桂芳", "金凤", "长青", "红梅", "福生", "振华", "宝山", "淑英", "素珍",
];
const COUNTIES: &[&str] = &["东城县", "西山县"];
const TOWNSHIPS: &[&str] = &["桃源镇", "青石乡", "柳河镇", "白云乡", "金山镇", "松溪乡"];
const VILLAGE_STEMS: &[&str] = &[
    "杨柳", "和平", "红星", "新民", "石桥", "枫林", "长岗", "前进", "团结", "东湖", "南塘", "北坡",
    "西园", "幸福", "光明", "丰收", "龙泉", "凤凰", "双河", "三里", "五星", "梨园", "竹林", "荷塘",
    "安居", "瓦房", "高庄", "李集", "王营", "新桥",
];
/// Volunteers of the demo set.
const DEMO_VOLUNTEERS: usize = 120;

const TEAMS: &[&str] = &[
    "暖心志愿服务队",
    "巾帼志愿服务队",
    "银龄志愿服务队",
    "心理关爱服务队",
    "医护志愿服务队",
    "青年志愿服务队",
    "法律援助服务队",
    "邻里守望服务队",
];

/// Loads the demo set when the database has no regions yet. Returns whether it did.
pub async fn load_if_empty(state: &AppState) -> anyhow::Result<bool> {
    if region::Entity::find().count(&state.db).await? > 0 {
        return Ok(false);
    }
    seed(state, DEMO_FAMILIES).await?;
    Ok(true)
}

/// Adds `families` families; builds the regions, staff and volunteers first if missing.
pub async fn seed(state: &AppState, families: usize) -> anyhow::Result<()> {
    let db = &state.db;
    let txn = db.begin().await?;
    let villages = match villages(&txn).await? {
        v if v.is_empty() => {
            build_skeleton(&txn).await?;
            villages(&txn).await?
        }
        v => v,
    };
    txn.commit().await?;
    let cadres = cadres_by_township(db).await?;
    let offset = family::Entity::find().count(db).await? as usize;
    let mut rng = StdRng::seed_from_u64(2026 + offset as u64);
    // Batches keep memory flat and stay under SQLite's bound-parameter limit.
    for start in (0..families).step_by(500) {
        let end = (start + 500).min(families);
        let txn = db.begin().await?;
        let mut fams = Vec::new();
        let mut members = Vec::new();
        let mut pairings = Vec::new();
        for i in start..end {
            let village = &villages[(offset + i) % villages.len()];
            let (f, ms) = make_family(state, &mut rng, village, offset + i);
            if let Some(c) = cadres
                .iter()
                .find(|(t, _)| village.path.starts_with(t.as_str()))
            {
                pairings.push(pairing::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    family_id: Set(*f.id.as_ref()),
                    cadre_id: Set(c.1),
                    leader_id: Set(None),
                    started_on: Set(NaiveDate::from_ymd_opt(2024, 1, 1).expect("date")),
                    ended_on: Set(None),
                    created_at: Set(Utc::now()),
                });
            }
            fams.push(f);
            members.extend(ms);
        }
        family::Entity::insert_many(fams).exec(&txn).await?;
        for chunk in members.chunks(500) {
            family_member::Entity::insert_many(chunk.to_vec())
                .exec(&txn)
                .await?;
        }
        if !pairings.is_empty() {
            pairing::Entity::insert_many(pairings).exec(&txn).await?;
        }
        txn.commit().await?;
    }
    if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        // Fresh statistics (and a visibility map for index-only scans) after a bulk load,
        // as a DBA would run after importing a register.
        db.execute_unprepared("VACUUM ANALYZE family, family_member, pairing, region")
            .await?;
    }
    Ok(())
}

async fn villages(db: &impl ConnectionTrait) -> anyhow::Result<Vec<region::Model>> {
    Ok(region::Entity::find()
        .filter(region::Column::Level.eq(RegionLevel::Village))
        .all(db)
        .await?)
}

/// (township path, a cadre of that township)
async fn cadres_by_township(db: &impl ConnectionTrait) -> anyhow::Result<Vec<(String, Uuid)>> {
    let grants = role_grant::Entity::find()
        .filter(role_grant::Column::Role.eq(Role::Cadre))
        .all(db)
        .await?;
    let mut out = Vec::new();
    for g in grants {
        if let Some(rid) = g.region_id
            && let Some(r) = region::Entity::find_by_id(rid).one(db).await?
        {
            out.push((r.path, g.user_id));
        }
    }
    Ok(out)
}

fn name(rng: &mut StdRng) -> String {
    format!(
        "{}{}",
        SURNAMES.choose(rng).expect("names"),
        GIVEN.choose(rng).expect("names")
    )
}

async fn add_region(
    db: &impl ConnectionTrait,
    parent: Option<&region::Model>,
    level: RegionLevel,
    name: &str,
    code: String,
    (lat, lng): (f64, f64),
) -> anyhow::Result<region::Model> {
    let id = Uuid::now_v7();
    let path = match parent {
        Some(p) => format!("{}{id}/", p.path),
        None => format!("/{id}/"),
    };
    Ok(region::ActiveModel {
        id: Set(id),
        parent_id: Set(parent.map(|p| p.id)),
        level: Set(level),
        name: Set(name.into()),
        code: Set(code),
        path: Set(path),
        lat: Set(Some(lat)),
        lng: Set(Some(lng)),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?)
}

async fn add_user(
    db: &impl ConnectionTrait,
    name: &str,
    phone: &str,
    role: Option<(Role, Option<Uuid>)>,
) -> anyhow::Result<Uuid> {
    let id = Uuid::now_v7();
    let now = Utc::now();
    app_user::ActiveModel {
        id: Set(id),
        name: Set(name.into()),
        phone: Set(Some(phone.into())),
        openid: Set(None),
        unionid: Set(None),
        status: Set(UserStatus::Active),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?;
    if let Some((role, region_id)) = role {
        role_grant::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(id),
            role: Set(role),
            region_id: Set(region_id),
            granted_by: Set(None),
            created_at: Set(now),
        }
        .insert(db)
        .await?;
    }
    Ok(id)
}

async fn build_skeleton(db: &impl ConnectionTrait) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(1);
    let center = (31.82, 117.23);
    let city = add_region(
        db,
        None,
        RegionLevel::City,
        "安和市",
        "340100".into(),
        center,
    )
    .await?;
    add_user(db, "系统管理员", ADMIN_PHONE, Some((Role::Admin, None))).await?;
    add_user(
        db,
        "周海燕",
        CITY_COORDINATOR_PHONE,
        Some((Role::Coordinator, Some(city.id))),
    )
    .await?;
    let mut village_no = 0;
    let mut villages = Vec::new();
    for (ci, county_name) in COUNTIES.iter().enumerate() {
        let cpos = (
            center.0 + 0.15 * ci as f64,
            center.1 - 0.2 + 0.4 * ci as f64,
        );
        let county = add_region(
            db,
            Some(&city),
            RegionLevel::County,
            county_name,
            format!("34010{}", ci + 1),
            cpos,
        )
        .await?;
        add_user(
            db,
            &name(&mut rng),
            &format!("138000000{}", 11 + ci),
            Some((Role::Coordinator, Some(county.id))),
        )
        .await?;
        for ti in 0..3 {
            let tn = ci * 3 + ti;
            let tpos = (cpos.0 + 0.05 * ti as f64, cpos.1 + 0.04 * ti as f64);
            let township = add_region(
                db,
                Some(&county),
                RegionLevel::Township,
                TOWNSHIPS[tn],
                format!("34010{}{:03}", ci + 1, ti + 1),
                tpos,
            )
            .await?;
            add_user(
                db,
                &name(&mut rng),
                &format!("138000000{}", 21 + tn),
                Some((Role::Coordinator, Some(township.id))),
            )
            .await?;
            add_user(
                db,
                &name(&mut rng),
                &format!("138000001{:02}", tn),
                Some((Role::Cadre, Some(township.id))),
            )
            .await?;
            for vi in 0..5 {
                let vpos = (
                    tpos.0 + rng.random_range(-0.02..0.02),
                    tpos.1 + rng.random_range(-0.02..0.02),
                );
                let suffix = if vi % 3 == 1 { "社区" } else { "村" };
                let vname = format!("{}{suffix}", VILLAGE_STEMS[village_no]);
                let village = add_region(
                    db,
                    Some(&township),
                    RegionLevel::Village,
                    &vname,
                    format!("34010{}{:03}{:03}", ci + 1, ti + 1, vi + 1),
                    vpos,
                )
                .await?;
                if vi == 0 {
                    // A village coordinator in the first village of each township.
                    add_user(
                        db,
                        &name(&mut rng),
                        &format!("138000002{:02}", tn),
                        Some((Role::Coordinator, Some(village.id))),
                    )
                    .await?;
                }
                villages.push(village);
                village_no += 1;
            }
        }
    }
    let mut teams = Vec::new();
    for (i, t) in TEAMS.iter().enumerate() {
        let home = &villages[(i * 4) % villages.len()];
        let row = team::ActiveModel {
            id: Set(Uuid::now_v7()),
            name: Set((*t).into()),
            region_id: Set(home.parent_id.unwrap_or(home.id)),
            created_at: Set(Utc::now()),
        }
        .insert(db)
        .await?;
        teams.push(row.id);
    }
    add_volunteers(db, &villages, &teams, 0, DEMO_VOLUNTEERS, &mut rng).await?;
    Ok(())
}

/// Demo volunteers `first..first + count` (phones 139 + the number in eight digits),
/// living around the villages in turn; one in fifteen still waits for approval.
async fn add_volunteers(
    db: &impl ConnectionTrait,
    villages: &[region::Model],
    teams: &[Uuid],
    first: usize,
    count: usize,
    rng: &mut StdRng,
) -> anyhow::Result<()> {
    use entity::Skill::*;
    for i in first..first + count {
        let home = &villages[i % villages.len()];
        let approved = i % 15 != 14;
        let user = add_user(
            db,
            &name(rng),
            &format!("139{:08}", i),
            approved.then_some((Role::Volunteer, Some(home.id))),
        )
        .await?;
        let mut skills = vec![Companionship];
        if i % 5 == 0 {
            skills.push(Counselling);
        }
        if i % 4 == 1 {
            skills.push(Health);
        }
        if i % 17 == 3 {
            skills.push(Legal);
        }
        if i % 3 == 2 {
            skills.push(Care);
        }
        volunteer::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user),
            team_id: Set(Some(teams[i % teams.len()])),
            region_id: Set(home.id),
            skills: Set(skill_list(&skills)),
            home_lat: Set(home.lat.map(|l| l + rng.random_range(-0.01..0.01))),
            home_lng: Set(home.lng.map(|l| l + rng.random_range(-0.01..0.01))),
            max_distance_km: Set([5.0, 10.0, 15.0, 20.0][i % 4]),
            weekly_capacity: Set([2, 3, 3, 4, 5][i % 5]),
            availability: Set(json!({})),
            status: Set(if approved {
                VolunteerStatus::Approved
            } else {
                VolunteerStatus::Pending
            }),
            approved_by: Set(None),
            approved_at: Set(approved.then(Utc::now)),
            created_at: Set(Utc::now()),
            updated_at: Set(Utc::now()),
        }
        .insert(db)
        .await?;
    }
    Ok(())
}

/// Adds `count` more volunteers to a seeded city (for benchmarks), in one transaction.
pub async fn seed_volunteers(state: &AppState, count: usize) -> anyhow::Result<()> {
    let db = &state.db;
    let villages = villages(db).await?;
    anyhow::ensure!(
        !villages.is_empty(),
        "seed families first: there is no city yet"
    );
    let teams: Vec<Uuid> = team::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|t| t.id)
        .collect();
    let first = volunteer::Entity::find().count(db).await? as usize;
    let mut rng = StdRng::seed_from_u64(7 + first as u64);
    let txn = db.begin().await?;
    add_volunteers(&txn, &villages, &teams, first, count, &mut rng).await?;
    txn.commit().await?;
    Ok(())
}

fn category_for(n: usize) -> FamilyCategory {
    use FamilyCategory::*;
    // Roughly the mix of a county register: bereaved and disabled-child families first.
    [
        Bereaved,
        Bereaved,
        Bereaved,
        Bereaved,
        Bereaved,
        DisabledChild,
        DisabledChild,
        DisabledChild,
        DisabledChild,
        SpecialSupport,
        SpecialSupport,
        SpecialSupport,
        DaughtersOnly,
        DaughtersOnly,
        DaughtersOnly,
        Hardship,
        Hardship,
        EmptyNest,
        EmptyNest,
        LeftBehindChild,
    ][n % 20]
}

/// A birthday: (calendar, year, month, day, leap). About 40% lunar, a few in leap months
/// (1955 had 闰三月, 1957 闰八月, 1960 闰六月) and on the 30th.
fn birthday(rng: &mut StdRng, year: i32) -> (BirthCalendar, i32, i32, i32, bool) {
    match rng.random_range(0..20) {
        0 => (
            BirthCalendar::Lunar,
            1957,
            8,
            rng.random_range(1..=29),
            true,
        ),
        1 => (
            BirthCalendar::Lunar,
            1960,
            6,
            rng.random_range(1..=29),
            true,
        ),
        2 => (
            BirthCalendar::Lunar,
            year,
            rng.random_range(1..=12),
            30,
            false,
        ),
        3..=7 => (
            BirthCalendar::Lunar,
            year,
            rng.random_range(1..=12),
            rng.random_range(1..=29),
            false,
        ),
        8 => (BirthCalendar::Solar, 1956, 2, 29, false),
        _ => {
            let month = rng.random_range(1..=12);
            (
                BirthCalendar::Solar,
                year,
                month,
                rng.random_range(1..=28),
                false,
            )
        }
    }
}

fn make_family(
    state: &AppState,
    rng: &mut StdRng,
    village: &region::Model,
    n: usize,
) -> (family::ActiveModel, Vec<family_member::ActiveModel>) {
    let category = category_for(n);
    let surname = *SURNAMES.choose(rng).expect("names");
    let father = format!("{surname}{}", GIVEN.choose(rng).expect("names"));
    let mother = name(rng);
    let now = Utc::now();
    let family_id = Uuid::now_v7();
    let phone = format!("137{:08}", n);
    let lat = village.lat.map(|l| l + rng.random_range(-0.008..0.008));
    let lng = village.lng.map(|l| l + rng.random_range(-0.008..0.008));
    let notes = match category {
        FamilyCategory::Bereaved => "不要主动提起孩子；老人喜欢下午来访。",
        FamilyCategory::DisabledChild => "孩子行动不便，进门前先敲门打招呼。",
        FamilyCategory::EmptyNest => "老人耳背，说话慢一些、大声一些。",
        _ => "",
    };
    let f = family::ActiveModel {
        id: Set(family_id),
        region_id: Set(village.id),
        register_no: Set(format!("{}-{:06}", village.code, n + 1)),
        category: Set(category),
        head_name: Set(father.clone()),
        phone: Set(Some(phone.clone())),
        address: Set(format!(
            "{}{}组{}号",
            village.name,
            rng.random_range(1..9),
            rng.random_range(1..80)
        )),
        lat: Set(lat),
        lng: Set(lng),
        care_level: Set(if category == FamilyCategory::Bereaved {
            3
        } else {
            rng.random_range(1..=3)
        }),
        status: Set(FamilyStatus::Active),
        consent_data: Set(true),
        consent_sms: Set(!n.is_multiple_of(3)),
        consent_wechat: Set(n.is_multiple_of(2)),
        consent_at: Set(Some(now)),
        do_not_disturb: Set(if category == FamilyCategory::Bereaved {
            json!({"quiet_from": "20:30", "quiet_to": "08:30", "no_festive_visits": n.is_multiple_of(10)})
        } else {
            json!({"no_festive_visits": false})
        }),
        visitor_notes: Set(notes.into()),
        counsel_notes: Set(if category == FamilyCategory::Bereaved {
            "丧子后长期情绪低落，清明前后需心理疏导。".into()
        } else {
            String::new()
        }),
        created_at: Set(now),
        updated_at: Set(now),
        care_overrides: Set(None),
        plan_stamp: Set(None),
    };
    let parent_year = rng.random_range(1950..1966);
    let member = |name: String,
                  relation,
                  gender: &str,
                  phone: Option<String>,
                  bday: (BirthCalendar, i32, i32, i32, bool),
                  deceased: bool,
                  death: Option<NaiveDate>| {
        family_member::ActiveModel {
            id: Set(Uuid::now_v7()),
            family_id: Set(family_id),
            name: Set(name),
            relation: Set(relation),
            gender: Set(Some(gender.into())),
            phone: Set(phone),
            id_number_enc: Set(None),
            id_number_masked: Set(None),
            birth_calendar: Set(bday.0),
            birth_year: Set(Some(bday.1)),
            birth_month: Set(Some(bday.2)),
            birth_day: Set(Some(bday.3)),
            birth_leap_month: Set(bday.4),
            deceased: Set(deceased),
            death_date: Set(death),
            primary_contact: Set(relation == MemberRelation::Father),
            user_id: Set(None),
            created_at: Set(now),
        }
    };
    let mut members = vec![
        member(
            father,
            MemberRelation::Father,
            "男",
            Some(phone),
            birthday(rng, parent_year),
            false,
            None,
        ),
        member(
            mother,
            MemberRelation::Mother,
            "女",
            None,
            birthday(rng, parent_year + 2),
            false,
            None,
        ),
    ];
    let child_year = rng.random_range(1978..1995);
    let child_name = format!("{surname}{}", GIVEN.choose(rng).expect("names"));
    match category {
        FamilyCategory::Bereaved => {
            let died = NaiveDate::from_ymd_opt(
                rng.random_range(2000..2022),
                rng.random_range(1..=12),
                rng.random_range(1..=28),
            )
            .expect("date");
            members.push(member(
                child_name,
                MemberRelation::Child,
                "男",
                None,
                birthday(rng, child_year),
                true,
                Some(died),
            ));
        }
        FamilyCategory::DaughtersOnly => {
            members.push(member(
                child_name,
                MemberRelation::Child,
                "女",
                None,
                birthday(rng, child_year),
                false,
                None,
            ));
            members.push(member(
                name(rng),
                MemberRelation::Child,
                "女",
                None,
                birthday(rng, child_year + 2),
                false,
                None,
            ));
        }
        FamilyCategory::LeftBehindChild => {
            members.push(member(
                child_name,
                MemberRelation::Grandchild,
                "男",
                None,
                birthday(rng, 2014),
                false,
                None,
            ));
        }
        _ => {
            members.push(member(
                child_name,
                MemberRelation::Child,
                "女",
                None,
                birthday(rng, child_year),
                false,
                None,
            ));
        }
    }
    // A few ID numbers on file, to show masking and encryption at rest.
    if n.is_multiple_of(25) {
        let id = "11010519491231002X";
        members[0].id_number_enc = Set(Some(state.secrets.encrypt(id)));
        members[0].id_number_masked = Set(Some(crate::crypto::mask_id_number(id)));
    }
    (f, members)
}
