use tests::*;

use std::io::Cursor;

use calamine::{Reader, Xlsx};
use chrono::NaiveDate;
use rust_xlsxwriter::{Format, Workbook};
use serde_json::{Value, json};

const BOUNDARY: &str = "----nuanxin-register-test";

/// A multipart/form-data body like `wx.uploadFile` sends: (field, file name, bytes).
fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        body.extend(format!("--{BOUNDARY}\r\n").as_bytes());
        let disposition = match filename {
            Some(f) => format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            ),
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
        };
        body.extend(disposition.as_bytes());
        body.extend_from_slice(data);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload_form(app: &TestApp, token: &str, dry_run: bool, body: Vec<u8>) -> Reply {
    app.raw(
        "POST",
        &format!("/api/families/import?dry_run={dry_run}"),
        Some(token),
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        body,
    )
    .await
}

async fn upload(app: &TestApp, token: &str, dry_run: bool, name: &str, data: &[u8]) -> Reply {
    upload_form(app, token, dry_run, form(&[("file", Some(name), data)])).await
}

async fn family_total(app: &TestApp, token: &str) -> u64 {
    app.get("/api/families?per_page=1", Some(token)).await.ok()["total"]
        .as_u64()
        .expect("total")
}

/// The one family whose register number contains `q`, in full.
async fn family_by_number(app: &TestApp, token: &str, q: &str) -> Value {
    let list = app
        .get(&format!("/api/families?q={q}"), Some(token))
        .await
        .ok();
    assert_eq!(list["total"], 1, "{q}: {list}");
    let id = list["items"][0]["id"].as_str().expect("id").to_string();
    app.get(&format!("/api/families/{id}"), Some(token))
        .await
        .ok()
}

fn member<'a>(family: &'a Value, name: &str) -> &'a Value {
    family["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no member {name} in {family}"))
}

/// (row, column) of every reported error.
fn where_errors(report: &Value) -> Vec<(u64, String)> {
    report["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().expect("row"),
                e["column"].as_str().expect("column").to_string(),
            )
        })
        .collect()
}

fn message_at(report: &Value, row: u64, column: &str) -> String {
    report["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .find(|e| e["row"] == row && e["column"] == column)
        .and_then(|e| e["message"].as_str())
        .unwrap_or_else(|| panic!("no error at row {row} {column}: {report}"))
        .to_string()
}

/// The cells of the first sheet of a workbook, as text.
fn read_xlsx(bytes: &[u8]) -> Vec<Vec<String>> {
    let mut wb = Xlsx::new(Cursor::new(bytes.to_vec())).expect("an xlsx workbook");
    let range = wb
        .worksheet_range_at(0)
        .expect("a sheet")
        .expect("readable");
    range
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

async fn export(
    app: &TestApp,
    token: &str,
    query: &str,
) -> (reqwest::StatusCode, Vec<u8>, reqwest::header::HeaderMap) {
    let resp = app
        .http
        .get(app.url(&format!("/api/families/export{query}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("request sent");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body").to_vec();
    (status, bytes, headers)
}

const CSV_HEADER: &str = "台账编号,村/社区,类别,户主姓名,联系电话,家庭住址,关爱等级,短信通知,微信通知,走访备注,成员姓名,关系,性别,成员电话,身份证号,生日历法,出生日期,闰月,是否已故,去世日期";

/// Two families: one bereaved (three rows, the second family in between), in 杨柳村 by name
/// and 前进村 by code (340101002003).
fn good_csv() -> String {
    format!(
        "\u{feff}{CSV_HEADER}\n\
         CSV-001,杨柳村,失独,张建国,13912345678,杨柳村3组12号,3,是,否,老人喜欢下午来访,张建国,父亲,男,13912345678,11010519491231002X,农历,1960-06-30,是,否,\n\
         CSV-002,340101002003,空巢老人,刘桂兰,0551-6512345,前进村1组5号,,否,是,,刘桂兰,母亲,女,,,公历,1948/2/29,,否,\n\
         CSV-001,杨柳村,失独,张建国,13912345678,杨柳村3组12号,3,是,否,老人喜欢下午来访,李秀英,母亲,女,,,公历,1962-03-08,否,否,\n\
         CSV-001,,,,,,,,,,张明,子女,男,,,农历,1985-08-15,,是,2010-05-01\n"
    )
}

#[tokio::test]
async fn a_good_csv_creates_families_with_members_and_lunar_birthdays() {
    let app = spawn_app().await;
    let token = app.token_for(people::EAST_COUNTY).await;
    let before = family_total(&app, &token).await;

    // The trial run reports and writes nothing.
    let report = upload(&app, &token, true, "台账.csv", good_csv().as_bytes())
        .await
        .ok();
    assert_eq!(
        report,
        json!({"dry_run": true, "families": 2, "members": 4, "errors": []})
    );
    assert_eq!(family_total(&app, &token).await, before);
    assert_eq!(app.audit_count("import_register").await, 0);

    let report = upload(&app, &token, false, "台账.csv", good_csv().as_bytes())
        .await
        .ok();
    assert_eq!(
        report,
        json!({"dry_run": false, "families": 2, "members": 4, "errors": []})
    );
    assert_eq!(family_total(&app, &token).await, before + 2);
    assert_eq!(app.audit_count("import_register").await, 1);

    let f = family_by_number(&app, &token, "CSV-001").await;
    assert_eq!(f["category"], "bereaved");
    assert_eq!(f["region_id"], app.region("杨柳村").await);
    assert_eq!(f["head_name"], "张建国");
    assert_eq!(f["care_level"], 3);
    assert_eq!(
        (f["consent_sms"].clone(), f["consent_wechat"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(f["visitor_notes"], "老人喜欢下午来访");
    assert_eq!(f["members"].as_array().unwrap().len(), 3);
    let father = member(&f, "张建国");
    assert_eq!(father["relation"], "father");
    assert_eq!(father["birth_calendar"], "lunar");
    assert_eq!(
        (
            father["birth_year"].clone(),
            father["birth_month"].clone(),
            father["birth_day"].clone()
        ),
        (json!(1960), json!(6), json!(30))
    );
    assert_eq!(father["birth_leap_month"], true);
    assert_eq!(father["primary_contact"], true);
    assert_eq!(father["id_number"], "110105********002X");
    let mother = member(&f, "李秀英");
    assert_eq!(
        (
            mother["birth_calendar"].clone(),
            mother["birth_month"].clone()
        ),
        (json!("solar"), json!(3))
    );
    let child = member(&f, "张明");
    assert_eq!(child["birth_calendar"], "lunar");
    assert_eq!(child["deceased"], true);
    assert_eq!(child["death_date"], "2010-05-01");

    let f = family_by_number(&app, &token, "CSV-002").await;
    assert_eq!(f["region_id"], app.region("前进村").await);
    assert_eq!(f["category"], "empty_nest");
    assert_eq!(f["care_level"], 2, "the default");
    assert_eq!(member(&f, "刘桂兰")["birth_day"], 29);
}

#[tokio::test]
async fn a_good_xlsx_creates_families() {
    let app = spawn_app().await;
    let token = app.token_for(people::EAST_COUNTY).await;
    let before = family_total(&app, &token).await;

    // Columns in another order, a column the importer does not know, an Excel date cell,
    // a phone number typed as a number, a title row above the header.
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    let date = Format::new().set_num_format("yyyy年m月d日");
    let headers = [
        "成员姓名",
        "关系",
        "出生日期",
        "生日历法",
        "闰月",
        "台账编号",
        "类别",
        "户主姓名",
        "村/社区",
        "家庭住址",
        "联系电话",
        "备用列",
        "性别",
    ];
    ws.write_string(0, 0, "东城县计生特殊家庭台账（2026年）")
        .unwrap();
    for (c, h) in headers.iter().enumerate() {
        ws.write_string(1, c as u16, *h).unwrap();
    }
    let rows: [[&str; 13]; 3] = [
        [
            "王德明",
            "父亲",
            "1957-08-15",
            "农历",
            "是",
            "XLSX-01",
            "伤残",
            "王德明",
            "红星村",
            "红星村2组8号",
            "",
            "无关",
            "男",
        ],
        [
            "陈淑珍",
            "母亲",
            "",
            "公历",
            "",
            "XLSX-01",
            "伤残",
            "王德明",
            "红星村",
            "红星村2组8号",
            "",
            "",
            "女",
        ],
        [
            "王磊", "子女", "", "", "", "XLSX-01", "", "", "", "", "", "", "男",
        ],
    ];
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            if !v.is_empty() {
                ws.write_string(r as u32 + 2, c as u16, *v).unwrap();
            }
        }
    }
    ws.write_number(2, 10, 13987654321.0).unwrap();
    ws.write_datetime_with_format(3, 2, NaiveDate::from_ymd_opt(1959, 11, 3).unwrap(), &date)
        .unwrap();
    ws.write_datetime_with_format(4, 2, NaiveDate::from_ymd_opt(1988, 4, 1).unwrap(), &date)
        .unwrap();
    let bytes = wb.save_to_buffer().unwrap();

    let report = upload(&app, &token, false, "register.xlsx", &bytes)
        .await
        .ok();
    assert_eq!(report["errors"], json!([]), "{report}");
    assert_eq!(
        (report["families"].clone(), report["members"].clone()),
        (json!(1), json!(3))
    );
    assert_eq!(family_total(&app, &token).await, before + 1);

    let f = family_by_number(&app, &token, "XLSX-01").await;
    assert_eq!(f["category"], "disabled_child");
    assert_eq!(f["phone"], "13987654321");
    assert_eq!(f["region_id"], app.region("红星村").await);
    let father = member(&f, "王德明");
    assert_eq!(father["birth_calendar"], "lunar");
    assert_eq!(father["birth_leap_month"], true);
    assert_eq!(
        (father["birth_month"].clone(), father["birth_day"].clone()),
        (json!(8), json!(15))
    );
    let mother = member(&f, "陈淑珍");
    assert_eq!(
        (
            mother["birth_year"].clone(),
            mother["birth_month"].clone(),
            mother["birth_day"].clone()
        ),
        (json!(1959), json!(11), json!(3))
    );
    assert_eq!(member(&f, "王磊")["birth_year"], 1988);
}

#[tokio::test]
async fn a_dry_run_reports_every_bad_row_and_column() {
    let app = spawn_app().await;
    let token = app.token_for(people::EAST_COUNTY).await;
    // A second 杨柳村, in 青石乡: the name alone is now ambiguous in this county.
    app.post(
        "/api/regions",
        Some(&token),
        json!({"parent_id": app.region("青石乡").await, "name": "杨柳村", "code": "340101002099"}),
    )
    .await
    .ok();
    let before = family_total(&app, &token).await;
    let csv = format!(
        "{CSV_HEADER}\n\
         BAD-01,和平社区,失独,张三,12345,一组,3,是,否,,张三,父亲,男,,,,,,,\n\
         BAD-02,和平社区,富裕户,李四,,二组,,,,,李四,父亲,男,,,,,,,\n\
         BAD-03,和平社区,失独,王五,,三组,,,,,王五,父亲,男,,,公历,1960-13-01,,,\n\
         BAD-04,丰收村,失独,赵六,,四组,,,,,赵六,父亲,男,,,,,,,\n\
         340101001001-000001,340101001001,失独,孙七,,五组,,,,,孙七,父亲,男,,,,,,,\n\
         BAD-06,杨柳村,失独,周八,,六组,,,,,周八,父亲,男,,,,,,,\n\
         GOOD-07,和平社区,失独,吴九,,七组,,,,,吴九,父亲,男,,,,,,,\n\
         BAD-01,和平社区,伤残,张三,,一组,,,,,张小三,子女,男,,,农历,1990-02-30,,否,2020-01-01\n"
    );
    let report = upload(&app, &token, true, "台账.csv", csv.as_bytes())
        .await
        .ok();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["families"], 7);
    assert_eq!(
        where_errors(&report),
        [
            (2, "联系电话".to_string()),
            (3, "类别".to_string()),
            (4, "出生日期".to_string()),
            (5, "村/社区".to_string()),
            (6, "台账编号".to_string()),
            (7, "村/社区".to_string()),
            (9, "类别".to_string()),
            (9, "去世日期".to_string()),
        ],
        "{report:#}"
    );
    assert_eq!(message_at(&report, 2, "联系电话"), "电话号码格式不正确");
    assert!(message_at(&report, 3, "类别").contains("富裕户"));
    assert!(message_at(&report, 5, "村/社区").contains("不在您的管辖范围内"));
    assert_eq!(message_at(&report, 6, "台账编号"), "该村已有此台账编号");
    let ambiguous = message_at(&report, 7, "村/社区");
    assert!(
        ambiguous.contains("桃源镇杨柳村") && ambiguous.contains("青石乡杨柳村"),
        "{ambiguous}"
    );
    assert!(message_at(&report, 9, "类别").contains("第 2 行"));
    assert!(message_at(&report, 9, "去世日期").contains("仅已故成员"));
    assert_eq!(family_total(&app, &token).await, before);
}

#[tokio::test]
async fn a_real_import_with_one_bad_row_writes_nothing() {
    let app = spawn_app().await;
    let token = app.token_for(people::EAST_COUNTY).await;
    let before = family_total(&app, &token).await;
    let csv = format!(
        "{CSV_HEADER}\n\
         ALL-01,和平社区,失独,张三,,一组,,,,,张三,父亲,男,,,,,,,\n\
         ALL-02,和平社区,伤残,李四,,二组,,,,,李四,父亲,男,,,,,,,\n\
         ALL-03,红星村,特扶,王五,,三组,,,,,王五,父亲,男,13800138000x,,,,,,\n\
         ALL-04,红星村,二女户,赵六,,四组,,,,,赵六,父亲,男,,,,,,,\n"
    );
    let reply = upload(&app, &token, false, "台账.csv", csv.as_bytes()).await;
    assert_eq!(reply.status.as_u16(), 422, "{}", reply.body);
    assert_eq!(reply.body["dry_run"], false);
    assert_eq!(where_errors(&reply.body), [(4, "成员电话".to_string())]);
    assert_eq!(family_total(&app, &token).await, before);
    let list = app.get("/api/families?q=ALL-0", Some(&token)).await.ok();
    assert_eq!(list["total"], 0);
    assert_eq!(app.audit_count("import_register").await, 0);
}

#[tokio::test]
async fn missing_columns_are_reported_once() {
    let app = spawn_app().await;
    let token = app.token_for(people::EAST_COUNTY).await;
    let csv = "台账编号,类别,户主姓名\nA1,失独,张三\nA2,失独,李四\n";
    let reply = upload(&app, &token, false, "台账.csv", csv.as_bytes()).await;
    assert_eq!(reply.status.as_u16(), 422, "{}", reply.body);
    assert_eq!(
        where_errors(&reply.body),
        [(1, "村/社区".to_string()), (1, "家庭住址".to_string())]
    );
}

#[tokio::test]
async fn export_then_import_into_a_fresh_app_round_trips() {
    let app = spawn_app().await;
    let token = app.token_for(people::EAST_COUNTY).await;
    let in_scope = family_total(&app, &token).await;
    assert!(in_scope > 0);

    let (status, bytes, headers) = export(&app, &token, "").await;
    assert_eq!(status.as_u16(), 200);
    assert_eq!(
        headers["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"register.xlsx\""
    );
    assert_eq!(app.audit_count("export_register").await, 1);
    let first = read_xlsx(&bytes);
    let header = &first[0];
    assert_eq!(header[0], "台账编号");
    let id_col = header
        .iter()
        .position(|h| h == "身份证号")
        .expect("身份证号 column");
    let village_col = header.iter().position(|h| h == "村/社区").unwrap();
    // ID numbers only masked; only the caller's county.
    let cells: Vec<&String> = first.iter().flatten().collect();
    assert!(cells.iter().any(|c| c.as_str() == "110105********002X"));
    assert!(!cells.iter().any(|c| c.contains("11010519491231002")));
    assert!(first[1..].iter().all(|r| r[village_col] != "丰收村"));

    // Into a database with the regions but no families.
    let fresh = spawn_app_with(Options {
        demo_families: Some(0),
        ..Options::default()
    })
    .await;
    let fresh_token = fresh.token_for(people::EAST_COUNTY).await;
    assert_eq!(family_total(&fresh, &fresh_token).await, 0);
    let report = upload(&fresh, &fresh_token, false, "register.xlsx", &bytes)
        .await
        .ok();
    assert_eq!(report["errors"], json!([]), "{report}");
    assert_eq!(report["families"], in_scope);
    assert_eq!(report["members"], (first.len() - 1) as u64);
    assert_eq!(family_total(&fresh, &fresh_token).await, in_scope);

    // The same register, row for row, except the ID numbers, which were never exported.
    let (_, again, _) = export(&fresh, &fresh_token, "").await;
    let second = read_xlsx(&again);
    let without_id = |rows: &[Vec<String>]| -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| {
                let mut r = r.clone();
                r[id_col].clear();
                r
            })
            .collect()
    };
    assert_eq!(without_id(&second), without_id(&first));
    assert!(second[1..].iter().all(|r| r[id_col].is_empty()));

    // Lunar birthdays are among what survives.
    let calendar = header.iter().position(|h| h == "生日历法").unwrap();
    assert!(second[1..].iter().any(|r| r[calendar] == "农历"));

    // Filters narrow the export.
    let (_, bereaved, _) = export(&app, &token, "?category=bereaved").await;
    let bereaved = read_xlsx(&bereaved);
    let category = header.iter().position(|h| h == "类别").unwrap();
    assert!(bereaved.len() > 1);
    assert!(bereaved[1..].iter().all(|r| r[category] == "失独"));
    let taoyuan = app.region("桃源镇").await;
    let (_, township, _) = export(&app, &token, &format!("?region_id={taoyuan}")).await;
    let township = read_xlsx(&township);
    assert!(township.len() > 1 && township.len() < first.len());
}

#[tokio::test]
async fn only_coordinators_import_and_export() {
    let app = spawn_app().await;
    let token = app.token_for(people::VOLUNTEER).await;
    upload(&app, &token, true, "台账.csv", good_csv().as_bytes())
        .await
        .error(403, "forbidden");
    let (status, _, _) = export(&app, &token, "").await;
    assert_eq!(status.as_u16(), 403);
    // Another county's coordinator cannot import into this one.
    let west = app.token_for(people::WEST_COUNTY).await;
    let report = upload(&app, &west, true, "台账.csv", good_csv().as_bytes())
        .await
        .ok();
    assert!(message_at(&report, 2, "村/社区").contains("不在您的管辖范围内"));
}

#[tokio::test]
async fn a_non_file_upload_gets_a_clear_4xx() {
    let app = spawn_app().await;
    let token = app.token_for(people::EAST_COUNTY).await;

    // JSON instead of a form.
    let reply = app
        .post("/api/families/import", Some(&token), json!({"file": "x"}))
        .await;
    assert!(reply.status.is_client_error(), "{}", reply.body);
    assert_eq!(reply.body["code"], "unsupported_media_type");

    // A form without the file.
    upload_form(&app, &token, true, form(&[("note", None, b"hello")]))
        .await
        .invalid("file");
    // The field as text rather than a file.
    upload_form(
        &app,
        &token,
        true,
        form(&[("file", None, CSV_HEADER.as_bytes())]),
    )
    .await
    .invalid("file");
    // A picture.
    let reply = upload(
        &app,
        &token,
        true,
        "photo.png",
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
    )
    .await;
    let body = reply.invalid("file");
    assert!(
        body["message"].as_str().unwrap().contains(".xlsx"),
        "{body}"
    );
    // An empty file; a text file that is no register.
    upload(&app, &token, true, "empty.csv", b"")
        .await
        .invalid("file");
    upload(&app, &token, true, "notes.txt", "买米，买油".as_bytes())
        .await
        .invalid("file");
    // A CSV saved in GBK (“台账编号” in GBK) is refused with the way out.
    let body = upload(
        &app,
        &token,
        true,
        "台账.csv",
        b"\xCC\xA8\xD5\xCB\xB1\xE0\xBA\xC5,x\n",
    )
    .await
    .invalid("file");
    assert!(
        body["message"].as_str().unwrap().contains("UTF-8"),
        "{body}"
    );
}
