//! The access-control matrix: every endpoint × every role × own region / other region.
//! Every operation in the OpenAPI document must have a row here, so a new endpoint
//! without an access rule fails this test.

use std::collections::BTreeSet;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use tests::*;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Side {
    Own,
    Other,
}

/// Who may call an operation.
#[derive(Clone, Copy, PartialEq)]
enum Rule {
    /// No login needed (login, registration, token exchange).
    Public,
    /// Any logged-in person.
    LoggedIn,
    /// Administrators everywhere; coordinators in their region subtree. Out of scope
    /// answers this status (404 for an id in the path, 422 for an id in the body).
    Manager { other: u16 },
    /// The holders of a visit: the demo volunteer holds the "own" one (the "other" one is
    /// held by another volunteer). A manager who can see the visit but does not hold it
    /// gets 403; anyone else 404, as if it did not exist.
    Holder,
    /// People bound to a family as a member: the matrix's family member for a visit of
    /// their family ("own"); another family's visit answers `other` (0: no id to vary).
    /// Everyone else is refused with 403.
    FamilyMember { other: u16 },
    /// Approved volunteers (the demo volunteer); everyone else 403. The "other" side (a
    /// visit beyond the volunteer's reach) answers `other` (0: no id to vary).
    Volunteer { other: u16 },
    /// Reading one visit: a volunteer who could take it or holds it, coordinators of the
    /// family's region, administrators; anyone else 404.
    Visit,
    /// One of my own messages: the demo volunteer's ("own"); another person's message
    /// ("other") and anyone else answer 404, as if it did not exist.
    Recipient,
    /// A help request: the coordinators over the family (and administrators) and the
    /// people alerted to it; anyone else 404, as if it did not exist. Nobody in the matrix
    /// was alerted to the requests it uses.
    Responder,
}

/// Ids on each side: "own" is inside 东城县, "other" inside 西山县.
struct Ids {
    village: [String; 2],
    township: [String; 2],
    family: [String; 2],
    member: [String; 2],
    volunteer: [String; 2],
    pending_volunteer: [String; 2],
    team: [String; 2],
    pairing: [String; 2],
    cadre: [String; 2],
    held_visit: [String; 2],
    /// An open visit the demo volunteer can take ("own"), one beyond their reach ("other").
    open_visit: [String; 2],
    /// `/api/visits/{id}/claims/{user}/release` of a visit another volunteer claimed.
    release: [String; 2],
    /// A message in the demo volunteer's inbox ("own"), one in another volunteer's.
    message: [String; 2],
    /// A dead letter of a volunteer in 东城县 ("own") and one in 西山县.
    dead: [String; 2],
    /// A proposal waiting for a coordinator, for a family in 东城县 ("own") and in 西山县.
    proposal: [String; 2],
    /// A proposal applied to the demo volunteer ("own") and one applied to another.
    assigned: [String; 2],
    /// A 慰问金 budget of each township, and a gift out of it to the side's family.
    budget: [String; 2],
    gift: [String; 2],
    /// An event of each township (the matrix family is invited to the "own" one).
    event: [String; 2],
    /// A wish and a help request of each family.
    wish: [String; 2],
    help: [String; 2],
}

impl Ids {
    fn pick<'a>(&self, pair: &'a [String; 2], side: Side) -> &'a str {
        match side {
            Side::Own => &pair[0],
            Side::Other => &pair[1],
        }
    }
}

/// A small register file to upload (a dry run: nothing is written).
const IMPORT_CSV: &str =
    "台账编号,村/社区,类别,户主姓名,家庭住址\nM-1,杨柳村,失独,矩阵,测试路1号\n";
const BOUNDARY: &str = "matrix-boundary";

fn upload_body() -> Vec<u8> {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"r.csv\"\r\n\
         Content-Type: text/csv\r\n\r\n{IMPORT_CSV}\r\n--{BOUNDARY}--\r\n"
    )
    .into_bytes()
}

struct Case {
    method: &'static str,
    /// The path as in the OpenAPI document, `{id}` placeholders and all.
    spec_path: &'static str,
    rule: Rule,
    call: fn(&Ids, Side) -> (String, Option<Value>),
}

fn cases() -> Vec<Case> {
    use Rule::*;
    let m404 = Manager { other: 404 };
    let m422 = Manager { other: 422 };
    vec![
        Case {
            method: "POST",
            spec_path: "/auth/wechat",
            rule: Public,
            call: |_, _| ("/api/auth/wechat".into(), Some(json!({"code": "x"}))),
        },
        Case {
            method: "POST",
            spec_path: "/auth/bind",
            rule: Public,
            call: |_, _| {
                (
                    "/api/auth/bind".into(),
                    Some(json!({"ticket": "t", "code": "c"})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/auth/refresh",
            rule: Public,
            call: |_, _| {
                (
                    "/api/auth/refresh".into(),
                    Some(json!({"refresh_token": "r"})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/auth/logout",
            rule: Public,
            call: |_, _| {
                (
                    "/api/auth/logout".into(),
                    Some(json!({"refresh_token": "r"})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/auth/dev",
            rule: Public,
            call: |_, _| {
                (
                    "/api/auth/dev".into(),
                    Some(json!({"phone": "13800000000"})),
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/auth/dev",
            rule: Public,
            call: |_, _| ("/api/auth/dev".into(), None),
        },
        Case {
            method: "POST",
            spec_path: "/auth/dev/wx-code",
            rule: Public,
            call: |_, _| {
                (
                    "/api/auth/dev/wx-code".into(),
                    Some(json!({"openid": "o-access-matrix"})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/volunteers/register",
            rule: Public,
            call: |_, _| ("/api/volunteers/register".into(), Some(json!({}))),
        },
        Case {
            method: "GET",
            spec_path: "/volunteers/areas",
            rule: Public,
            call: |_, _| ("/api/volunteers/areas".into(), None),
        },
        Case {
            method: "GET",
            spec_path: "/auth/me",
            rule: LoggedIn,
            call: |_, _| ("/api/auth/me".into(), None),
        },
        Case {
            method: "GET",
            spec_path: "/regions",
            rule: Manager { other: 0 },
            call: |_, _| ("/api/regions".into(), None),
        },
        Case {
            method: "GET",
            spec_path: "/regions/{id}",
            rule: m404,
            call: |i, s| (format!("/api/regions/{}", i.pick(&i.village, s)), None),
        },
        Case {
            method: "POST",
            spec_path: "/regions",
            rule: m422,
            call: |i, s| {
                (
                    "/api/regions".into(),
                    Some(
                        json!({"parent_id": i.pick(&i.township, s), "name": "矩阵村", "code": format!("M{}", &uuid::Uuid::new_v4().simple().to_string()[..12])}),
                    ),
                )
            },
        },
        Case {
            method: "PATCH",
            spec_path: "/regions/{id}",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/regions/{}", i.pick(&i.village, s)),
                    Some(json!({"lat": 31.9, "lng": 117.3})),
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/families",
            rule: Manager { other: 0 },
            call: |_, _| ("/api/families".into(), None),
        },
        Case {
            method: "POST",
            spec_path: "/families",
            rule: m422,
            call: |i, s| {
                (
                    "/api/families".into(),
                    Some(
                        json!({"region_id": i.pick(&i.village, s), "register_no": format!("M{}", &uuid::Uuid::new_v4().simple().to_string()[..12]), "category": "hardship", "head_name": "矩阵", "address": "测试路1号"}),
                    ),
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/families/{id}",
            rule: m404,
            call: |i, s| (format!("/api/families/{}", i.pick(&i.family, s)), None),
        },
        Case {
            method: "PATCH",
            spec_path: "/families/{id}",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/families/{}", i.pick(&i.family, s)),
                    Some(json!({"care_level": 2})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/families/{id}/members",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/families/{}/members", i.pick(&i.family, s)),
                    Some(json!({"name": "矩阵", "relation": "other"})),
                )
            },
        },
        Case {
            method: "PATCH",
            spec_path: "/families/{id}/members/{member_id}",
            rule: m404,
            call: |i, s| {
                (
                    format!(
                        "/api/families/{}/members/{}",
                        i.pick(&i.family, s),
                        i.pick(&i.member, s)
                    ),
                    Some(json!({"gender": "女"})),
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/families/{id}/members/{member_id}/id-number",
            rule: m404,
            call: |i, s| {
                (
                    format!(
                        "/api/families/{}/members/{}/id-number",
                        i.pick(&i.family, s),
                        i.pick(&i.member, s)
                    ),
                    None,
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/families/{id}/invites",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/families/{}/invites", i.pick(&i.family, s)),
                    Some(json!({"member_id": i.pick(&i.member, s)})),
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/families/export",
            rule: m404,
            call: |i, s| {
                let village = i.pick(&i.village, s);
                (format!("/api/families/export?region_id={village}"), None)
            },
        },
        // The upload names villages, not ids; rows outside one's scope are reported in
        // the dry-run report (see the register tests), so only the role gate is checked.
        Case {
            method: "POST",
            spec_path: "/families/import",
            rule: Manager { other: 0 },
            call: |_, _| {
                (
                    "/api/families/import?dry_run=true".into(),
                    Some(json!("multipart")),
                )
            },
        },
        Case {
            method: "DELETE",
            spec_path: "/families/{id}/members/{member_id}",
            rule: m404,
            call: |i, s| {
                (
                    format!(
                        "/api/families/{}/members/{}",
                        i.pick(&i.family, s),
                        i.pick(&i.member, s)
                    ),
                    None,
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/volunteers",
            rule: Manager { other: 0 },
            call: |_, _| ("/api/volunteers".into(), None),
        },
        Case {
            method: "GET",
            spec_path: "/volunteers/{id}",
            rule: m404,
            call: |i, s| (format!("/api/volunteers/{}", i.pick(&i.volunteer, s)), None),
        },
        Case {
            method: "PATCH",
            spec_path: "/volunteers/{id}",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/volunteers/{}", i.pick(&i.volunteer, s)),
                    Some(json!({"weekly_capacity": 4})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/volunteers/{id}/approve",
            rule: m404,
            call: |i, s| {
                (
                    format!(
                        "/api/volunteers/{}/approve",
                        i.pick(&i.pending_volunteer, s)
                    ),
                    Some(json!({})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/volunteers/{id}/reject",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/volunteers/{}/reject", i.pick(&i.pending_volunteer, s)),
                    Some(json!({})),
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/teams",
            rule: Manager { other: 0 },
            call: |_, _| ("/api/teams".into(), None),
        },
        Case {
            method: "POST",
            spec_path: "/teams",
            rule: m422,
            call: |i, s| {
                (
                    "/api/teams".into(),
                    Some(json!({"name": "矩阵队", "region_id": i.pick(&i.township, s)})),
                )
            },
        },
        Case {
            method: "PATCH",
            spec_path: "/teams/{id}",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/teams/{}", i.pick(&i.team, s)),
                    Some(json!({"name": "改名队"})),
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/pairings",
            rule: Manager { other: 0 },
            call: |_, _| ("/api/pairings".into(), None),
        },
        Case {
            method: "POST",
            spec_path: "/pairings",
            rule: m422,
            call: |i, s| {
                (
                    "/api/pairings".into(),
                    Some(
                        json!({"family_id": i.pick(&i.family, s), "cadre_id": i.pick(&i.cadre, s)}),
                    ),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/pairings/{id}/end",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/pairings/{}/end", i.pick(&i.pairing, s)),
                    Some(json!({})),
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/families/{id}/plan",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/families/{}/plan?months=2", i.pick(&i.family, s)),
                    None,
                )
            },
        },
        // The calendar address is the key (phone calendars cannot log in); a made-up one
        // is 404.
        Case {
            method: "GET",
            spec_path: "/calendar/{file}",
            rule: Public,
            call: |_, _| ("/api/calendar/made-up.ics".into(), None),
        },
        Case {
            method: "POST",
            spec_path: "/me/calendar-feed",
            rule: LoggedIn,
            call: |_, _| ("/api/me/calendar-feed".into(), Some(json!({}))),
        },
        Case {
            method: "DELETE",
            spec_path: "/me/calendar-feed",
            rule: LoggedIn,
            call: |_, _| ("/api/me/calendar-feed".into(), None),
        },
        Case {
            method: "GET",
            spec_path: "/notifications/dead",
            rule: Manager { other: 0 },
            call: |_, _| ("/api/notifications/dead".into(), None),
        },
        Case {
            method: "POST",
            spec_path: "/notifications/{id}/retry",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/notifications/{}/retry", i.pick(&i.dead, s)),
                    Some(json!({})),
                )
            },
        },
        // The SMS provider's webhook: its shared secret, no login (without it: 401).
        Case {
            method: "POST",
            spec_path: "/sms/inbound",
            rule: Public,
            call: |_, _| {
                (
                    "/api/sms/inbound".into(),
                    Some(json!({"mobile": "13800000000", "text": "1"})),
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/me/inbox",
            rule: LoggedIn,
            call: |_, _| ("/api/me/inbox".into(), None),
        },
        Case {
            method: "POST",
            spec_path: "/me/inbox/read-all",
            rule: LoggedIn,
            call: |_, _| ("/api/me/inbox/read-all".into(), Some(json!({}))),
        },
        Case {
            method: "POST",
            spec_path: "/me/inbox/{id}/read",
            rule: Recipient,
            call: |i, s| {
                (
                    format!("/api/me/inbox/{}/read", i.pick(&i.message, s)),
                    Some(json!({})),
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/me/subscriptions",
            rule: LoggedIn,
            call: |_, _| ("/api/me/subscriptions".into(), None),
        },
        Case {
            method: "POST",
            spec_path: "/me/subscriptions",
            rule: LoggedIn,
            call: |_, _| {
                (
                    "/api/me/subscriptions".into(),
                    Some(json!({"accepted": []})),
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/families/{id}/rules",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/families/{}/rules", i.pick(&i.family, s)),
                    None,
                )
            },
        },
        Case {
            method: "PUT",
            spec_path: "/families/{id}/rules",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/families/{}/rules", i.pick(&i.family, s)),
                    Some(json!({"overrides": []})),
                )
            },
        },
        // Starts a run in the background; a repeat within the minute gets the same run,
        // and one while the region's run is going is refused with 409 (both admitted).
        Case {
            method: "POST",
            spec_path: "/planning/runs",
            rule: m422,
            call: |i, s| {
                (
                    "/api/planning/runs".into(),
                    Some(json!({"region_id": i.pick(&i.township, s)})),
                )
            },
        },
        // The history is filtered to one's scope (see the planning tests).
        Case {
            method: "GET",
            spec_path: "/planning/runs",
            rule: Manager { other: 0 },
            call: |_, _| ("/api/planning/runs".into(), None),
        },
        Case {
            method: "GET",
            spec_path: "/staff",
            rule: Manager { other: 0 },
            call: |_, _| ("/api/staff".into(), None),
        },
        Case {
            method: "POST",
            spec_path: "/staff",
            rule: m422,
            call: |i, s| {
                (
                    "/api/staff".into(),
                    Some(
                        json!({"name": "矩阵", "phone": "13712340000", "role": "cadre", "region_id": i.pick(&i.township, s)}),
                    ),
                )
            },
        },
        // Doing a visit: its holders only. Bodies that pass the gate but not the visit's
        // state (no code issued, not checked in) are still admitted.
        Case {
            method: "POST",
            spec_path: "/visits/{id}/checkin",
            rule: Holder,
            call: |i, s| {
                (
                    format!("/api/visits/{}/checkin", i.pick(&i.held_visit, s)),
                    Some(json!({"code": "000000"})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/visits/{id}/checkout",
            rule: Holder,
            call: |i, s| {
                (
                    format!("/api/visits/{}/checkout", i.pick(&i.held_visit, s)),
                    Some(json!({})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/visits/{id}/report",
            rule: Holder,
            call: |i, s| {
                (
                    format!("/api/visits/{}/report", i.pick(&i.held_visit, s)),
                    Some(json!({"services": ["condolence"]})),
                )
            },
        },
        Case {
            method: "PATCH",
            spec_path: "/visits/{id}/report",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/visits/{}/report", i.pick(&i.held_visit, s)),
                    Some(json!({"cash_yuan": 10})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/visits/{id}/confirm",
            rule: Holder,
            call: |i, s| {
                (
                    format!("/api/visits/{}/confirm", i.pick(&i.held_visit, s)),
                    Some(json!({"code": "000000"})),
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/family/visits",
            rule: FamilyMember { other: 0 },
            call: |_, _| ("/api/family/visits".into(), None),
        },
        Case {
            method: "GET",
            spec_path: "/family/visits/{id}/code",
            rule: FamilyMember { other: 404 },
            call: |i, s| {
                (
                    format!("/api/family/visits/{}/code", i.pick(&i.held_visit, s)),
                    None,
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/family/visits/{id}/confirm",
            rule: FamilyMember { other: 404 },
            call: |i, s| {
                (
                    format!("/api/family/visits/{}/confirm", i.pick(&i.held_visit, s)),
                    Some(json!({"rating": 5})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/family/visits/{id}/decline",
            rule: FamilyMember { other: 404 },
            call: |i, s| {
                (
                    format!("/api/family/visits/{}/decline", i.pick(&i.held_visit, s)),
                    Some(json!({"reason": "矩阵"})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/family/visits/{id}/move",
            rule: FamilyMember { other: 404 },
            call: |i, s| {
                (
                    format!("/api/family/visits/{}/move", i.pick(&i.held_visit, s)),
                    Some(json!({"reason": "矩阵", "preferred_dates": ["2099-01-01"]})),
                )
            },
        },
        // Events.
        Case {
            method: "POST",
            spec_path: "/events",
            rule: m422,
            call: |i, s| {
                let start = chrono::Utc::now() + chrono::Duration::days(5);
                (
                    "/api/events".into(),
                    Some(
                        json!({"region_id": i.pick(&i.township, s), "kind": "training",
                                "title": "培训", "location": "文化站", "starts_at": start,
                                "ends_at": start + chrono::Duration::hours(1), "capacity": 5}),
                    ),
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/events",
            rule: Manager { other: 0 },
            call: |_, _| ("/api/events".into(), None),
        },
        Case {
            method: "GET",
            spec_path: "/events/birthday-families",
            rule: Manager { other: 0 },
            call: |_, _| {
                (
                    "/api/events/birthday-families?year=2026&month=2".into(),
                    None,
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/events/{id}",
            rule: m404,
            call: |i, s| (format!("/api/events/{}", i.pick(&i.event, s)), None),
        },
        Case {
            method: "PATCH",
            spec_path: "/events/{id}",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/events/{}", i.pick(&i.event, s)),
                    Some(json!({"title": "矩阵"})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/events/{id}/invitations",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/events/{}/invitations", i.pick(&i.event, s)),
                    Some(json!({"family_ids": [i.pick(&i.family, s)]})),
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/events/{id}/invitations",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/events/{}/invitations", i.pick(&i.event, s)),
                    None,
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/events/{id}/attendance",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/events/{}/attendance", i.pick(&i.event, s)),
                    Some(
                        json!({"families": [{"family_id": i.pick(&i.family, s), "attended": true}]}),
                    ),
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/volunteer/events",
            rule: Volunteer { other: 0 },
            call: |_, _| ("/api/volunteer/events".into(), None),
        },
        Case {
            method: "POST",
            spec_path: "/events/{id}/signup",
            rule: Volunteer { other: 404 },
            call: |i, s| {
                (
                    format!("/api/events/{}/signup", i.pick(&i.event, s)),
                    Some(json!({})),
                )
            },
        },
        Case {
            method: "DELETE",
            spec_path: "/events/{id}/signup",
            rule: Volunteer { other: 404 },
            call: |i, s| (format!("/api/events/{}/signup", i.pick(&i.event, s)), None),
        },
        Case {
            method: "GET",
            spec_path: "/family/events",
            rule: FamilyMember { other: 0 },
            call: |_, _| ("/api/family/events".into(), None),
        },
        Case {
            method: "POST",
            spec_path: "/family/events/{id}/reply",
            rule: FamilyMember { other: 404 },
            call: |i, s| {
                (
                    format!("/api/family/events/{}/reply", i.pick(&i.event, s)),
                    Some(json!({"accept": true})),
                )
            },
        },
        // The wish wall.
        Case {
            method: "POST",
            spec_path: "/family/wishes",
            rule: FamilyMember { other: 0 },
            call: |_, _| {
                (
                    "/api/family/wishes".into(),
                    Some(json!({"content": "想学用智能手机"})),
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/family/wishes",
            rule: FamilyMember { other: 0 },
            call: |_, _| ("/api/family/wishes".into(), None),
        },
        Case {
            method: "GET",
            spec_path: "/wishes/wall",
            rule: LoggedIn,
            call: |_, _| ("/api/wishes/wall".into(), None),
        },
        Case {
            method: "GET",
            spec_path: "/wishes",
            rule: Manager { other: 0 },
            call: |_, _| ("/api/wishes".into(), None),
        },
        Case {
            method: "GET",
            spec_path: "/wishes/stats",
            rule: Manager { other: 0 },
            call: |_, _| ("/api/wishes/stats".into(), None),
        },
        Case {
            method: "GET",
            spec_path: "/wishes/{id}",
            rule: m404,
            call: |i, s| (format!("/api/wishes/{}", i.pick(&i.wish, s)), None),
        },
        Case {
            method: "POST",
            spec_path: "/wishes/{id}/answers",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/wishes/{}/answers", i.pick(&i.wish, s)),
                    Some(json!({"content": "收到，我们来安排。", "public": true})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/wishes/{id}/assign",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/wishes/{}/assign", i.pick(&i.wish, s)),
                    Some(json!({"user_id": i.pick(&i.cadre, s)})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/wishes/{id}/done",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/wishes/{}/done", i.pick(&i.wish, s)),
                    Some(json!({})),
                )
            },
        },
        // Emergency help.
        Case {
            method: "POST",
            spec_path: "/family/help",
            rule: FamilyMember { other: 0 },
            call: |_, _| ("/api/family/help".into(), Some(json!({}))),
        },
        Case {
            method: "GET",
            spec_path: "/family/help",
            rule: FamilyMember { other: 0 },
            call: |_, _| ("/api/family/help".into(), None),
        },
        Case {
            method: "GET",
            spec_path: "/help",
            rule: Manager { other: 0 },
            call: |_, _| ("/api/help".into(), None),
        },
        Case {
            method: "GET",
            spec_path: "/help/{id}",
            rule: Responder,
            call: |i, s| (format!("/api/help/{}", i.pick(&i.help, s)), None),
        },
        Case {
            method: "POST",
            spec_path: "/help/{id}/ack",
            rule: Responder,
            call: |i, s| {
                (
                    format!("/api/help/{}/ack", i.pick(&i.help, s)),
                    Some(json!({})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/help/{id}/resolve",
            rule: Responder,
            call: |i, s| {
                (
                    format!("/api/help/{}/resolve", i.pick(&i.help, s)),
                    Some(json!({"resolution": "已上门查看"})),
                )
            },
        },
        // The festival surge.
        Case {
            method: "GET",
            spec_path: "/surge",
            rule: Manager { other: 0 },
            call: |_, _| ("/api/surge".into(), None),
        },
        Case {
            method: "GET",
            spec_path: "/me/hours",
            rule: LoggedIn,
            call: |_, _| ("/api/me/hours".into(), None),
        },
        Case {
            method: "GET",
            spec_path: "/me/hours/summary",
            rule: LoggedIn,
            call: |_, _| ("/api/me/hours/summary".into(), None),
        },
        // Finding and taking visits (the claim comes before giving it back).
        Case {
            method: "GET",
            spec_path: "/visits/feed",
            rule: Volunteer { other: 0 },
            call: |_, _| ("/api/visits/feed".into(), None),
        },
        Case {
            method: "POST",
            spec_path: "/visits/{id}/claims",
            rule: Volunteer { other: 404 },
            call: |i, s| {
                (
                    format!("/api/visits/{}/claims", i.pick(&i.open_visit, s)),
                    Some(json!({})),
                )
            },
        },
        Case {
            method: "DELETE",
            spec_path: "/visits/{id}/claims/mine",
            rule: Volunteer { other: 404 },
            call: |i, s| {
                (
                    format!("/api/visits/{}/claims/mine", i.pick(&i.open_visit, s)),
                    None,
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/visits/{id}/claims/{volunteer_user_id}/release",
            rule: m404,
            call: |i, s| {
                (
                    i.pick(&i.release, s).into(),
                    Some(json!({"reason": "矩阵"})),
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/visits/{id}",
            rule: Visit,
            call: |i, s| (format!("/api/visits/{}", i.pick(&i.open_visit, s)), None),
        },
        Case {
            method: "GET",
            spec_path: "/me/visits",
            rule: LoggedIn,
            call: |_, _| ("/api/me/visits".into(), None),
        },
        // Seeing the work: workload, coverage, filed reports, health readings, gifts.
        Case {
            method: "GET",
            spec_path: "/workload",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/workload?region_id={}", i.pick(&i.township, s)),
                    None,
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/workload/teams",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/workload/teams?region_id={}", i.pick(&i.township, s)),
                    None,
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/workload/unclaimed-villages",
            rule: m404,
            call: |i, s| {
                (
                    format!(
                        "/api/workload/unclaimed-villages?region_id={}",
                        i.pick(&i.township, s)
                    ),
                    None,
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/coverage",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/coverage?region_id={}", i.pick(&i.township, s)),
                    None,
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/coverage/not-visited",
            rule: m404,
            call: |i, s| {
                (
                    format!(
                        "/api/coverage/not-visited?region_id={}",
                        i.pick(&i.township, s)
                    ),
                    None,
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/coverage/lapses",
            rule: m404,
            call: |i, s| {
                (
                    format!(
                        "/api/coverage/lapses?kind=missed&region_id={}",
                        i.pick(&i.township, s)
                    ),
                    None,
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/filings",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/filings?region_id={}", i.pick(&i.township, s)),
                    None,
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/filings/xlsx",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/filings/xlsx?region_id={}", i.pick(&i.township, s)),
                    None,
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/filings/csv",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/filings/csv?region_id={}", i.pick(&i.township, s)),
                    None,
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/families/{id}/health-readings",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/families/{}/health-readings", i.pick(&i.family, s)),
                    None,
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/gift-budgets",
            rule: m422,
            call: |i, s| {
                (
                    "/api/gift-budgets".into(),
                    Some(
                        json!({"region_id": i.pick(&i.township, s), "programme": "两节慰问",
                                "festival": "矩阵中秋", "budget_yuan": 1000}),
                    ),
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/gift-budgets",
            rule: Manager { other: 0 },
            call: |_, _| ("/api/gift-budgets".into(), None),
        },
        Case {
            method: "GET",
            spec_path: "/gift-budgets/{id}/gifts",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/gift-budgets/{}/gifts", i.pick(&i.budget, s)),
                    None,
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/gift-budgets/{id}/reconciliation",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/gift-budgets/{}/reconciliation", i.pick(&i.budget, s)),
                    None,
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/gifts",
            rule: m404,
            call: |i, s| {
                (
                    "/api/gifts".into(),
                    Some(json!({"budget_id": i.pick(&i.budget, s),
                                "family_id": i.pick(&i.family, s), "amount_yuan": 1})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/gifts/{id}/approve",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/gifts/{}/approve", i.pick(&i.gift, s)),
                    Some(json!({})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/gifts/{id}/cancel",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/gifts/{}/cancel", i.pick(&i.gift, s)),
                    Some(json!({"reason": "矩阵"})),
                )
            },
        },
        // Assignment; marking a volunteer as left comes last (it may be the demo one).
        Case {
            method: "POST",
            spec_path: "/assignments/run",
            rule: m422,
            call: |i, s| {
                (
                    "/api/assignments/run".into(),
                    Some(json!({"region_id": i.pick(&i.village, s)})),
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/assignments/proposals",
            rule: Manager { other: 0 },
            call: |_, _| ("/api/assignments/proposals".into(), None),
        },
        Case {
            method: "POST",
            spec_path: "/assignments/proposals/{id}/apply",
            rule: m404,
            call: |i, s| {
                (
                    format!(
                        "/api/assignments/proposals/{}/apply",
                        i.pick(&i.proposal, s)
                    ),
                    Some(json!({})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/assignments/proposals/apply",
            rule: m422,
            call: |i, s| {
                (
                    "/api/assignments/proposals/apply".into(),
                    Some(json!({"ids": [i.pick(&i.proposal, s)]})),
                )
            },
        },
        Case {
            method: "PUT",
            spec_path: "/assignments/regions/{id}/auto",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/assignments/regions/{}/auto", i.pick(&i.village, s)),
                    Some(json!({"auto_apply": false})),
                )
            },
        },
        Case {
            method: "GET",
            spec_path: "/me/assignments",
            rule: LoggedIn,
            call: |_, _| ("/api/me/assignments".into(), None),
        },
        Case {
            method: "GET",
            spec_path: "/me/availability",
            rule: Volunteer { other: 0 },
            call: |_, _| ("/api/me/availability".into(), None),
        },
        Case {
            method: "PUT",
            spec_path: "/me/availability",
            rule: Volunteer { other: 0 },
            call: |_, _| {
                (
                    "/api/me/availability".into(),
                    Some(json!({"weekdays": [1, 2, 3, 4, 5, 6, 7]})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/me/leave",
            rule: Volunteer { other: 0 },
            call: |_, _| {
                (
                    "/api/me/leave".into(),
                    Some(json!({"start_date": "2099-01-01", "end_date": "2099-01-02"})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/assignments/proposals/{id}/accept",
            rule: Recipient,
            call: |i, s| {
                (
                    format!(
                        "/api/assignments/proposals/{}/accept",
                        i.pick(&i.assigned, s)
                    ),
                    Some(json!({})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/assignments/proposals/{id}/decline",
            rule: Recipient,
            call: |i, s| {
                (
                    format!(
                        "/api/assignments/proposals/{}/decline",
                        i.pick(&i.assigned, s)
                    ),
                    Some(json!({})),
                )
            },
        },
        // Cancelling the events: after every other row about them.
        Case {
            method: "POST",
            spec_path: "/events/{id}/cancel",
            rule: m404,
            call: |i, s| {
                (
                    format!("/api/events/{}/cancel", i.pick(&i.event, s)),
                    Some(json!({"reason": "矩阵"})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/visits/{id}/reschedule",
            rule: m404,
            call: |i, s| {
                // The visit of the release path (its claim released by then), kept ahead.
                let visit = i.pick(&i.release, s).split('/').nth(3).unwrap();
                let start = chrono::Utc::now() + chrono::Duration::days(15);
                (
                    format!("/api/visits/{visit}/reschedule"),
                    Some(json!({"window_start": start,
                                "window_end": start + chrono::Duration::days(1),
                                "reason": "矩阵"})),
                )
            },
        },
        Case {
            method: "POST",
            spec_path: "/assignments/volunteers/{id}/left",
            rule: m404,
            call: |i, s| {
                (
                    format!(
                        "/api/assignments/volunteers/{}/left",
                        i.pick(&i.volunteer, s)
                    ),
                    Some(json!({"reason": "矩阵"})),
                )
            },
        },
    ]
}

/// An event of each township (the "own" family invited), a wish and a help request of each
/// family.
async fn community(
    app: &TestApp,
    admin: &str,
    township: &[String; 2],
    family: &[String; 2],
) -> ([String; 2], [String; 2], [String; 2]) {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let mut event = [String::new(), String::new()];
    let mut wish = [String::new(), String::new()];
    let mut help = [String::new(), String::new()];
    let start = chrono::Utc::now() + chrono::Duration::days(10);
    for k in 0..2 {
        event[k] = app
            .post(
                "/api/events",
                Some(admin),
                json!({"region_id": township[k], "kind": "festival", "title": "重阳联欢",
                       "location": "文化站", "starts_at": start,
                       "ends_at": start + chrono::Duration::hours(2), "capacity": 10,
                       "volunteer_slots": 5}),
            )
            .await
            .ok()["id"]
            .as_str()
            .unwrap()
            .into();
        let fam: uuid::Uuid = family[k].parse().unwrap();
        let now = chrono::Utc::now();
        let w = entity::wish::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            family_id: Set(fam),
            posted_by: Set(None),
            content: Set("想要一台收音机".into()),
            status: Set("open".into()),
            resolved_at: Set(None),
            created_at: Set(now),
            kind: Set("other".into()),
            public: Set(true),
            assignee_id: Set(None),
            assigned_at: Set(None),
            first_answered_at: Set(None),
            done_note: Set(None),
        }
        .insert(&app.state.db)
        .await
        .unwrap();
        wish[k] = w.id.to_string();
        let h = entity::help_request::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            family_id: Set(fam),
            requester_id: Set(None),
            kind: Set("general".into()),
            message: Set(String::new()),
            status: Set("open".into()),
            acknowledged_at: Set(None),
            acknowledged_by: Set(None),
            resolved_at: Set(None),
            created_at: Set(now),
            escalation_level: Set(0),
            escalated_at: Set(None),
            resolved_by: Set(None),
            resolution: Set(None),
        }
        .insert(&app.state.db)
        .await
        .unwrap();
        help[k] = h.id.to_string();
    }
    app.post(
        &format!("/api/events/{}/invitations", event[0]),
        Some(admin),
        json!({"family_ids": [family[0]]}),
    )
    .await
    .ok();
    (event, wish, help)
}

async fn first_id(app: &TestApp, token: &str, path: &str) -> String {
    app.get(path, Some(token)).await.ok()["items"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("nothing at {path}"))
        .to_string()
}

/// A volunteer of the given status living anywhere in the county.
async fn volunteer_in(app: &TestApp, county: &str, status: entity::VolunteerStatus) -> String {
    use entity::{region, volunteer};
    let county =
        region::Entity::find_by_id(uuid::Uuid::parse_str(&app.region(county).await).unwrap())
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap();
    let regions: Vec<uuid::Uuid> = region::Entity::find()
        .filter(region::Column::Path.starts_with(&county.path))
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    volunteer::Entity::find()
        .filter(volunteer::Column::RegionId.is_in(regions))
        .filter(volunteer::Column::Status.eq(status))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("a volunteer there")
        .id
        .to_string()
}

/// A visit of each family, due now and held as claims hold them (an active claim, the
/// visit claimed): "own" by the demo volunteer, "other" by another volunteer.
async fn held_visits(app: &TestApp, family: &[String; 2]) -> [String; 2] {
    use entity::{app_user, task_claim, visit_task};
    use sea_orm::{ActiveModelTrait, ActiveValue::Set, IntoActiveModel, QueryOrder};
    let db = &app.state.db;
    let mut out = [String::new(), String::new()];
    for (k, phone) in [people::VOLUNTEER, "13900000001"].into_iter().enumerate() {
        let family: uuid::Uuid = family[k].parse().unwrap();
        server::jobs::replan(&app.state, family).await;
        let task = visit_task::Entity::find()
            .filter(visit_task::Column::FamilyId.eq(family))
            .filter(visit_task::Column::Status.eq("open"))
            .order_by_asc(visit_task::Column::WindowStart)
            .one(db)
            .await
            .unwrap()
            .expect("a planned visit");
        let user = app_user::Entity::find()
            .filter(app_user::Column::Phone.eq(phone))
            .one(db)
            .await
            .unwrap()
            .unwrap()
            .id;
        task_claim::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            task_id: Set(task.id),
            volunteer_id: Set(user),
            status: Set(task_claim::ACTIVE.into()),
            claimed_at: Set(chrono::Utc::now()),
            released_at: Set(None),
            released_by: Set(None),
        }
        .insert(db)
        .await
        .unwrap();
        let now = chrono::Utc::now();
        let mut t = task.into_active_model();
        t.status = Set("claimed".into());
        t.volunteers_needed = Set(1);
        t.claims_count = Set(1);
        // Not the cadre's: the matrix's cadre must not hold it.
        t.assigned_cadre_id = Set(None);
        t.window_start = Set(now - chrono::Duration::hours(1));
        t.window_end = Set(now + chrono::Duration::days(1));
        out[k] = t.update(db).await.unwrap().id.to_string();
    }
    out
}

/// Proposals of `status` for these visits and people (phones), as a run would write them.
async fn proposals(
    app: &TestApp,
    visits: &[String; 2],
    phones: [&str; 2],
    status: &str,
) -> [String; 2] {
    use entity::{app_user, assignment_proposal, family, visit_task};
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let db = &app.state.db;
    let mut out = [String::new(), String::new()];
    for k in 0..2 {
        let user = app_user::Entity::find()
            .filter(app_user::Column::Phone.eq(phones[k]))
            .one(db)
            .await
            .unwrap()
            .unwrap()
            .id;
        let task = visit_task::Entity::find_by_id(uuid::Uuid::parse_str(&visits[k]).unwrap())
            .one(db)
            .await
            .unwrap()
            .unwrap();
        let fam = family::Entity::find_by_id(task.family_id)
            .one(db)
            .await
            .unwrap()
            .unwrap();
        let id = uuid::Uuid::now_v7();
        assignment_proposal::ActiveModel {
            id: Set(id),
            task_id: Set(task.id),
            volunteer_id: Set(user),
            region_id: Set(fam.region_id),
            status: Set(status.into()),
            reason: Set("首次走访该家庭；1.0公里；当周1/3".into()),
            distance_km: Set(1.0),
            past_visits: Set(0),
            week_load: Set(1),
            week_capacity: Set(3),
            claim_id: Set(None),
            applied_by: Set(None),
            applied_at: Set(None),
            answered_at: Set(None),
            created_at: Set(chrono::Utc::now()),
        }
        .insert(db)
        .await
        .unwrap();
        out[k] = id.to_string();
    }
    out
}

/// A message in the inbox of the demo volunteer ("own") and of another volunteer.
async fn messages(app: &TestApp) -> [String; 2] {
    use entity::{app_user, notification};
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let mut out = [String::new(), String::new()];
    for (k, phone) in [people::VOLUNTEER, "13900000001"].into_iter().enumerate() {
        let user = app_user::Entity::find()
            .filter(app_user::Column::Phone.eq(phone))
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap()
            .id;
        let now = chrono::Utc::now();
        let id = uuid::Uuid::now_v7();
        notification::ActiveModel {
            id: Set(id),
            recipient_id: Set(user),
            template: Set("visit_cancelled".into()),
            payload: Set(json!({"date": "2026-11-26"})),
            dedupe_key: Set(format!("matrix:{id}")),
            status: Set(notification::SENT.into()),
            channel: Set(Some("inbox".into())),
            attempts: Set(1),
            next_attempt_at: Set(now),
            sent_at: Set(Some(now)),
            last_error: Set(None),
            read_at: Set(None),
            inbox_at: Set(Some(now)),
            due_at: Set(None),
            trail: Set(None),
            created_at: Set(now),
        }
        .insert(&app.state.db)
        .await
        .unwrap();
        out[k] = id.to_string();
    }
    out
}

/// A dead letter of a volunteer of each side.
async fn dead_letters(app: &TestApp, volunteers: &[String; 2]) -> [String; 2] {
    use entity::{notification, volunteer};
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let mut out = [String::new(), String::new()];
    for k in 0..2 {
        let user = volunteer::Entity::find_by_id(volunteers[k].parse::<uuid::Uuid>().unwrap())
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap()
            .user_id;
        let now = chrono::Utc::now();
        let id = uuid::Uuid::now_v7();
        notification::ActiveModel {
            id: Set(id),
            recipient_id: Set(user),
            template: Set("visit_cancelled".into()),
            payload: Set(json!({"date": "2026-11-26"})),
            dedupe_key: Set(format!("matrix:{id}")),
            status: Set(notification::DEAD.into()),
            channel: Set(Some("inbox".into())),
            attempts: Set(1),
            next_attempt_at: Set(now),
            sent_at: Set(None),
            last_error: Set(Some("WeChat answered errcode 47003".into())),
            read_at: Set(None),
            inbox_at: Set(Some(now)),
            due_at: Set(Some(now)),
            trail: Set(None),
            created_at: Set(now),
        }
        .insert(&app.state.db)
        .await
        .unwrap();
        out[k] = id.to_string();
    }
    out
}

/// Per side, for a family of the village made for it: a visit a week ahead for two, one
/// place taken (the demo volunteer lives near the "own" village and far from the
/// "other"), and a release path for a visit claimed by a volunteer.
async fn visit_rows(app: &TestApp, village: &[String; 2]) -> ([String; 2], [String; 2]) {
    use tests::visits::{VisitSpec, VolunteerSpec};
    let mut open = [String::new(), String::new()];
    let mut release = [String::new(), String::new()];
    let start = chrono::Utc::now() + chrono::Duration::days(8);
    for k in 0..2 {
        let v = entity::region::Entity::find_by_id(village[k].parse::<uuid::Uuid>().unwrap())
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap();
        let at = (v.lat.unwrap(), v.lng.unwrap());
        let f = app
            .family_at(
                &v.name,
                entity::FamilyCategory::Hardship,
                "矩阵户",
                Some(at),
            )
            .await;
        let half = app.visit(VisitSpec::new(f, start, 24).needing(2)).await;
        let claimed = app
            .visit(VisitSpec::new(f, start + chrono::Duration::days(7), 24))
            .await;
        // Claimed (in part), so that the planning rows leave them alone.
        let holder = app.volunteer(VolunteerSpec::at(at.0, at.1)).await;
        for visit in [half, claimed] {
            app.post(
                &format!("/api/visits/{visit}/claims"),
                Some(&holder.token),
                json!({}),
            )
            .await
            .ok();
        }
        open[k] = half.to_string();
        release[k] = format!("/api/visits/{claimed}/claims/{}/release", holder.user_id);
    }
    (open, release)
}

async fn ids(app: &TestApp) -> Ids {
    let admin = app.token_for(people::ADMIN).await;
    let village = [app.region("杨柳村").await, app.region("丰收村").await];
    let township = [app.region("桃源镇").await, app.region("白云乡").await];
    let family = [
        first_id(
            app,
            &admin,
            &format!("/api/families?region_id={}", village[0]),
        )
        .await,
        first_id(
            app,
            &admin,
            &format!("/api/families?region_id={}", village[1]),
        )
        .await,
    ];
    let mut member = [String::new(), String::new()];
    for k in 0..2 {
        let d = app
            .get(&format!("/api/families/{}", family[k]), Some(&admin))
            .await
            .ok();
        member[k] = d["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["deceased"] == false)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .into();
    }
    let mut team = [String::new(), String::new()];
    let mut cadre = [String::new(), String::new()];
    let mut pairing = [String::new(), String::new()];
    for k in 0..2 {
        team[k] = app
            .post(
                "/api/teams",
                Some(&admin),
                json!({"name": format!("队{k}"), "region_id": township[k]}),
            )
            .await
            .ok()["id"]
            .as_str()
            .unwrap()
            .into();
        cadre[k] = app.post("/api/staff", Some(&admin), json!({"name": format!("干部{k}"), "phone": "13712345678", "role": "cadre", "region_id": township[k]})).await.ok()["user_id"].as_str().unwrap().into();
        pairing[k] = first_id(
            app,
            &admin,
            &format!("/api/pairings?family_id={}", family[k]),
        )
        .await;
    }
    let (open_visit, release) = visit_rows(app, &village).await;
    let admin = app.token_for(people::ADMIN).await;
    let (mut budget, mut gift) = (
        [String::new(), String::new()],
        [String::new(), String::new()],
    );
    for k in 0..2 {
        budget[k] = app
            .post(
                "/api/gift-budgets",
                Some(&admin),
                json!({"region_id": township[k], "programme": "两节慰问",
                       "festival": "矩阵春节", "budget_yuan": 10000}),
            )
            .await
            .ok()["id"]
            .as_str()
            .unwrap()
            .into();
        gift[k] = app
            .post(
                "/api/gifts",
                Some(&admin),
                json!({"budget_id": budget[k], "family_id": family[k], "amount_yuan": 100}),
            )
            .await
            .ok()["id"]
            .as_str()
            .unwrap()
            .into();
    }
    let volunteer = [
        volunteer_in(app, "东城县", entity::VolunteerStatus::Approved).await,
        volunteer_in(app, "西山县", entity::VolunteerStatus::Approved).await,
    ];
    let (event, wish, help) = community(app, &admin, &township, &family).await;
    Ids {
        budget,
        gift,
        event,
        wish,
        help,
        dead: dead_letters(app, &volunteer).await,
        message: messages(app).await,
        proposal: proposals(
            app,
            &open_visit,
            [people::VOLUNTEER, "13900000001"],
            "proposed",
        )
        .await,
        assigned: proposals(
            app,
            &[open_visit[1].clone(), open_visit[0].clone()],
            [people::VOLUNTEER, "13900000002"],
            "applied",
        )
        .await,
        held_visit: held_visits(app, &family).await,
        open_visit,
        release,
        volunteer,
        pending_volunteer: [
            volunteer_in(app, "东城县", entity::VolunteerStatus::Pending).await,
            volunteer_in(app, "西山县", entity::VolunteerStatus::Pending).await,
        ],
        village,
        township,
        family,
        member,
        team,
        pairing,
        cadre,
    }
}

async fn call(app: &TestApp, case: &Case, ids: &Ids, side: Side, token: Option<&str>) -> Reply {
    let (path, body) = (case.call)(ids, side);
    match (case.method, body) {
        ("POST", Some(b)) if b == "multipart" => {
            let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
            app.raw("POST", &path, token, &content_type, upload_body())
                .await
        }
        ("GET", _) => app.get(&path, token).await,
        ("DELETE", _) => app.delete(&path, token).await,
        ("PATCH", Some(b)) => app.patch(&path, token, b).await,
        ("PUT", Some(b)) => app.put(&path, token, b).await,
        ("POST", Some(b)) => app.post(&path, token, b).await,
        (m, b) => panic!("no way to call {m} with {b:?}"),
    }
}

#[tokio::test]
async fn every_endpoint_answers_every_role_as_the_rules_say() {
    let app = spawn_app().await;
    let ids = ids(&app).await;

    // Every documented operation has a rule.
    let spec = app.get("/openapi.json", None).await.ok();
    let mut documented = BTreeSet::new();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let covered: BTreeSet<String> = cases()
        .iter()
        .map(|c| format!("{} {}", c.method, c.spec_path))
        .collect();
    let missing: Vec<_> = documented.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "endpoints without an access rule: {missing:?}"
    );

    // A bound family member, for the "family" role.
    let family_token = {
        let admin = app.token_for(people::ADMIN).await;
        let fam = first_id(
            &app,
            &admin,
            &format!("/api/families?region_id={}", ids.village[0]),
        )
        .await;
        let d = app
            .get(&format!("/api/families/{fam}"), Some(&admin))
            .await
            .ok();
        let mother = d["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["relation"] == "mother")
            .unwrap()["id"]
            .clone();
        let code = app
            .post(
                &format!("/api/families/{fam}/invites"),
                Some(&admin),
                json!({"member_id": mother}),
            )
            .await
            .ok()["code"]
            .as_str()
            .unwrap()
            .to_string();
        let ticket = app.wechat_login("o-matrix-family").await.ok()["ticket"]
            .as_str()
            .unwrap()
            .to_string();
        app.post(
            "/api/auth/bind",
            None,
            json!({"ticket": ticket, "code": code}),
        )
        .await
        .ok()["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let volunteer = app.token_for(people::VOLUNTEER).await;
    let cadre = app.token_for(people::TAOYUAN_CADRE).await;
    let coordinator = app.token_for(people::EAST_COUNTY).await;
    let admin = app.token_for(people::ADMIN).await;
    let denied_roles = [
        ("volunteer", volunteer.as_str()),
        ("family", family_token.as_str()),
        ("cadre", cadre.as_str()),
    ];

    for case in cases() {
        let what = format!("{} {}", case.method, case.spec_path);
        match case.rule {
            Rule::Public => {
                let r = call(&app, &case, &ids, Side::Own, None).await;
                // Reachable without a token (a made-up refresh token is still refused: 401).
                assert!(
                    !matches!(r.status.as_u16(), 403 | 500..),
                    "{what} anonymous: {} {}",
                    r.status,
                    r.body
                );
            }
            Rule::LoggedIn => {
                call(&app, &case, &ids, Side::Own, None)
                    .await
                    .error(401, "unauthorized");
                for (role, token) in denied_roles.iter().chain(
                    [
                        ("coordinator", coordinator.as_str()),
                        ("admin", admin.as_str()),
                    ]
                    .iter(),
                ) {
                    let r = call(&app, &case, &ids, Side::Own, Some(token)).await;
                    assert!(
                        r.status.is_success(),
                        "{what} as {role}: {} {}",
                        r.status,
                        r.body
                    );
                }
            }
            Rule::Manager { other } => {
                let r = call(&app, &case, &ids, Side::Own, None).await;
                assert_eq!(r.status.as_u16(), 401, "{what} anonymous: {}", r.body);
                for (role, token) in denied_roles {
                    for side in [Side::Own, Side::Other] {
                        let r = call(&app, &case, &ids, side, Some(token)).await;
                        assert_eq!(
                            r.status.as_u16(),
                            403,
                            "{what} as {role} ({side:?}): {}",
                            r.body
                        );
                    }
                }
                let r = call(&app, &case, &ids, Side::Own, Some(&coordinator)).await;
                // Admitted: done, or refused only because an earlier row already did it.
                assert!(
                    r.status.is_success() || r.status == 409,
                    "{what} as coordinator in own region: {} {}",
                    r.status,
                    r.body
                );
                if other != 0 {
                    let r = call(&app, &case, &ids, Side::Other, Some(&coordinator)).await;
                    assert_eq!(
                        r.status.as_u16(),
                        other,
                        "{what} as coordinator in another region: {}",
                        r.body
                    );
                }
                for side in [Side::Own, Side::Other] {
                    let r = call(&app, &case, &ids, side, Some(&admin)).await;
                    assert!(
                        !matches!(r.status.as_u16(), 401 | 403 | 500..),
                        "{what} as admin ({side:?}): {} {}",
                        r.status,
                        r.body
                    );
                }
            }
            Rule::Holder => {
                let r = call(&app, &case, &ids, Side::Own, None).await;
                assert_eq!(r.status.as_u16(), 401, "{what} anonymous: {}", r.body);
                let r = call(&app, &case, &ids, Side::Own, Some(&volunteer)).await;
                assert!(
                    !matches!(r.status.as_u16(), 401 | 403 | 404 | 500..),
                    "{what} as the holder: {} {}",
                    r.status,
                    r.body
                );
                let expect = [
                    ("volunteer", volunteer.as_str(), [0, 404]),
                    ("family", family_token.as_str(), [404, 404]),
                    ("cadre", cadre.as_str(), [404, 404]),
                    ("coordinator", coordinator.as_str(), [403, 404]),
                    ("admin", admin.as_str(), [403, 403]),
                ];
                for (role, token, [own, other]) in expect {
                    for (side, status) in [(Side::Own, own), (Side::Other, other)] {
                        if status == 0 {
                            continue;
                        }
                        let r = call(&app, &case, &ids, side, Some(token)).await;
                        assert_eq!(
                            r.status.as_u16(),
                            status,
                            "{what} as {role} ({side:?}): {}",
                            r.body
                        );
                    }
                }
            }
            Rule::Volunteer { other } => {
                let r = call(&app, &case, &ids, Side::Own, None).await;
                assert_eq!(r.status.as_u16(), 401, "{what} anonymous: {}", r.body);
                for (role, token) in [
                    ("family", family_token.as_str()),
                    ("cadre", cadre.as_str()),
                    ("coordinator", coordinator.as_str()),
                    ("admin", admin.as_str()),
                ] {
                    for side in [Side::Own, Side::Other] {
                        let r = call(&app, &case, &ids, side, Some(token)).await;
                        assert_eq!(
                            r.status.as_u16(),
                            403,
                            "{what} as {role} ({side:?}): {}",
                            r.body
                        );
                    }
                }
                let r = call(&app, &case, &ids, Side::Own, Some(&volunteer)).await;
                assert!(
                    r.status.is_success() || r.status == 409,
                    "{what} as the volunteer: {} {}",
                    r.status,
                    r.body
                );
                if other != 0 {
                    let r = call(&app, &case, &ids, Side::Other, Some(&volunteer)).await;
                    assert_eq!(
                        r.status.as_u16(),
                        other,
                        "{what} as the volunteer, out of reach: {}",
                        r.body
                    );
                }
            }
            Rule::Visit => {
                let r = call(&app, &case, &ids, Side::Own, None).await;
                assert_eq!(r.status.as_u16(), 401, "{what} anonymous: {}", r.body);
                let expect = [
                    ("volunteer", volunteer.as_str(), [200, 404]),
                    ("family", family_token.as_str(), [404, 404]),
                    ("cadre", cadre.as_str(), [404, 404]),
                    ("coordinator", coordinator.as_str(), [200, 404]),
                    ("admin", admin.as_str(), [200, 200]),
                ];
                for (role, token, [own, other]) in expect {
                    for (side, status) in [(Side::Own, own), (Side::Other, other)] {
                        let r = call(&app, &case, &ids, side, Some(token)).await;
                        assert_eq!(
                            r.status.as_u16(),
                            status,
                            "{what} as {role} ({side:?}): {}",
                            r.body
                        );
                    }
                }
            }
            Rule::Responder => {
                let r = call(&app, &case, &ids, Side::Own, None).await;
                assert_eq!(r.status.as_u16(), 401, "{what} anonymous: {}", r.body);
                for (role, token) in denied_roles {
                    for side in [Side::Own, Side::Other] {
                        let r = call(&app, &case, &ids, side, Some(token)).await;
                        assert_eq!(
                            r.status.as_u16(),
                            404,
                            "{what} as {role} ({side:?}): {}",
                            r.body
                        );
                    }
                }
                let r = call(&app, &case, &ids, Side::Own, Some(&coordinator)).await;
                assert!(
                    r.status.is_success() || r.status == 409,
                    "{what} as coordinator in own region: {} {}",
                    r.status,
                    r.body
                );
                let r = call(&app, &case, &ids, Side::Other, Some(&coordinator)).await;
                assert_eq!(
                    r.status.as_u16(),
                    404,
                    "{what} in another region: {}",
                    r.body
                );
                for side in [Side::Own, Side::Other] {
                    let r = call(&app, &case, &ids, side, Some(&admin)).await;
                    assert!(
                        r.status.is_success() || r.status == 409,
                        "{what} as admin ({side:?}): {} {}",
                        r.status,
                        r.body
                    );
                }
            }
            Rule::Recipient => {
                let r = call(&app, &case, &ids, Side::Own, None).await;
                assert_eq!(r.status.as_u16(), 401, "{what} anonymous: {}", r.body);
                let r = call(&app, &case, &ids, Side::Own, Some(&volunteer)).await;
                assert!(
                    r.status.is_success(),
                    "{what} as the recipient: {} {}",
                    r.status,
                    r.body
                );
                let r = call(&app, &case, &ids, Side::Other, Some(&volunteer)).await;
                assert_eq!(r.status.as_u16(), 404, "{what} someone else's: {}", r.body);
                for (role, token) in [
                    ("family", family_token.as_str()),
                    ("cadre", cadre.as_str()),
                    ("coordinator", coordinator.as_str()),
                    ("admin", admin.as_str()),
                ] {
                    let r = call(&app, &case, &ids, Side::Own, Some(token)).await;
                    assert_eq!(r.status.as_u16(), 404, "{what} as {role}: {}", r.body);
                }
            }
            Rule::FamilyMember { other } => {
                let r = call(&app, &case, &ids, Side::Own, None).await;
                assert_eq!(r.status.as_u16(), 401, "{what} anonymous: {}", r.body);
                for (role, token) in [
                    ("volunteer", volunteer.as_str()),
                    ("cadre", cadre.as_str()),
                    ("coordinator", coordinator.as_str()),
                    ("admin", admin.as_str()),
                ] {
                    let r = call(&app, &case, &ids, Side::Own, Some(token)).await;
                    assert_eq!(r.status.as_u16(), 403, "{what} as {role}: {}", r.body);
                }
                let r = call(&app, &case, &ids, Side::Own, Some(&family_token)).await;
                // Admitted: done, or refused only by the visit's state.
                assert!(
                    !matches!(r.status.as_u16(), 401 | 403 | 404 | 500..),
                    "{what} as the family: {} {}",
                    r.status,
                    r.body
                );
                if other != 0 {
                    let r = call(&app, &case, &ids, Side::Other, Some(&family_token)).await;
                    assert_eq!(
                        r.status.as_u16(),
                        other,
                        "{what} as another family: {}",
                        r.body
                    );
                }
            }
        }
    }
}
