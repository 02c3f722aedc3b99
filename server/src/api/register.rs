//! Import and export of the family register (台账) as spreadsheets.
//!
//! Coordinators already keep their register in Excel: one row per family member, Chinese
//! column headers, rows with the same 台账编号 forming one family. An import is checked
//! row by row with exactly the rules of `POST /families` (`NewFamily::validate`), reports
//! every bad row by the row number the coordinator sees, and writes all or nothing. An
//! export writes the same columns, so that it can be imported again (ID numbers masked,
//! which the importer skips).
//!
//! The pure parts (reading a file into cells, finding the header, grouping rows, parsing
//! 是/否 and dates, building `NewFamily` values) are plain functions tested below.

use std::{
    collections::{HashMap, HashSet},
    io::Cursor,
    sync::Arc,
};

use calamine::{Data, Reader, Xls, Xlsx};
use chrono::NaiveDate;
use entity::{
    BirthCalendar, FamilyCategory, MemberRelation, RegionLevel, family, family_member, region,
};
use poem_openapi::{
    ApiResponse, Multipart, Object, OpenApi,
    param::Query,
    payload::{Binary, Json},
    types::multipart::Upload,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use super::{
    Tag, families,
    families::{NewFamily, NewMember, insert_family},
    in_scope,
};
use crate::{
    app::AppState,
    audit,
    auth::{Manager, Scope},
    error::{ApiError, ApiResult},
    input::Validate,
};

pub struct Api(pub Arc<AppState>);

/// At most this many data rows in one file.
pub const MAX_ROWS: usize = 20_000;
/// The header may sit below a title row or two ("XX县计生特殊家庭台账").
const HEADER_SEARCH: usize = 10;
/// Cells right of this column are ignored (no register has that many columns).
const MAX_COLS: usize = 256;

// ---------------------------------------------------------------------------------------
// Columns
// ---------------------------------------------------------------------------------------

/// The columns of the register, in the order the export writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Col {
    RegisterNo,
    Village,
    Category,
    HeadName,
    Phone,
    Address,
    Lat,
    Lng,
    CareLevel,
    Sms,
    WeChat,
    Notes,
    MemberName,
    Relation,
    Gender,
    MemberPhone,
    IdNumber,
    Calendar,
    Birth,
    Leap,
    Deceased,
    DeathDate,
}

const NCOLS: usize = 22;

impl Col {
    pub const ALL: [Col; NCOLS] = [
        Col::RegisterNo,
        Col::Village,
        Col::Category,
        Col::HeadName,
        Col::Phone,
        Col::Address,
        Col::Lat,
        Col::Lng,
        Col::CareLevel,
        Col::Sms,
        Col::WeChat,
        Col::Notes,
        Col::MemberName,
        Col::Relation,
        Col::Gender,
        Col::MemberPhone,
        Col::IdNumber,
        Col::Calendar,
        Col::Birth,
        Col::Leap,
        Col::Deceased,
        Col::DeathDate,
    ];

    /// The Chinese header, as written by the export and expected by the import.
    pub fn header(self) -> &'static str {
        match self {
            Col::RegisterNo => "台账编号",
            Col::Village => "村/社区",
            Col::Category => "类别",
            Col::HeadName => "户主姓名",
            Col::Phone => "联系电话",
            Col::Address => "家庭住址",
            Col::Lat => "纬度",
            Col::Lng => "经度",
            Col::CareLevel => "关爱等级",
            Col::Sms => "短信通知",
            Col::WeChat => "微信通知",
            Col::Notes => "走访备注",
            Col::MemberName => "成员姓名",
            Col::Relation => "关系",
            Col::Gender => "性别",
            Col::MemberPhone => "成员电话",
            Col::IdNumber => "身份证号",
            Col::Calendar => "生日历法",
            Col::Birth => "出生日期",
            Col::Leap => "闰月",
            Col::Deceased => "是否已故",
            Col::DeathDate => "去世日期",
        }
    }

    pub fn required(self) -> bool {
        matches!(
            self,
            Col::RegisterNo | Col::Village | Col::Category | Col::HeadName | Col::Address
        )
    }

    /// Describes the family (taken from its first row) rather than one member.
    pub fn family_level(self) -> bool {
        self <= Col::Notes
    }

    /// Recognises a header cell: surrounding spaces and the asterisks templates use to
    /// mark required columns are ignored, and a few common spellings are accepted.
    pub fn from_header(s: &str) -> Option<Col> {
        let norm: String = s
            .chars()
            .filter(|c| !c.is_whitespace() && !matches!(c, '*' | '＊'))
            .map(|c| match c {
                '／' => '/',
                '（' => '(',
                '）' => ')',
                c => c,
            })
            .collect();
        if let Some(c) = Col::ALL.iter().find(|c| c.header() == norm) {
            return Some(*c);
        }
        match norm.as_str() {
            "村(社区)" | "村社区" | "村/居" => Some(Col::Village),
            "家庭类别" => Some(Col::Category),
            "户主" => Some(Col::HeadName),
            "住址" => Some(Col::Address),
            "与户主关系" => Some(Col::Relation),
            "身份证号码" => Some(Col::IdNumber),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reading a file into cells
// ---------------------------------------------------------------------------------------

/// One cell's value, whatever the file format.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Cell {
    #[default]
    Empty,
    Text(String),
    Number(f64),
    Date(NaiveDate),
    Bool(bool),
}

impl Cell {
    /// The value as a coordinator would read it: trimmed text, whole numbers without
    /// ".0", dates as YYYY-MM-DD.
    pub fn text(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(s) => s.trim().to_string(),
            Cell::Number(n) => fmt_number(*n),
            Cell::Date(d) => d.format("%Y-%m-%d").to_string(),
            Cell::Bool(b) => if *b { "是" } else { "否" }.to_string(),
        }
    }

    pub fn is_blank(&self) -> bool {
        match self {
            Cell::Empty => true,
            Cell::Text(s) => s.trim().is_empty(),
            _ => false,
        }
    }

    /// The trimmed text, or None when blank.
    pub fn opt_text(&self) -> Option<String> {
        Some(self.text()).filter(|s| !s.is_empty())
    }
}

fn fmt_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn from_data(d: Data) -> Cell {
    match d {
        Data::Empty => Cell::Empty,
        Data::Int(i) => Cell::Number(i as f64),
        Data::Float(f) => Cell::Number(f),
        Data::String(s) => Cell::Text(s),
        Data::Bool(b) => Cell::Bool(b),
        Data::DateTime(dt) if dt.is_datetime() => {
            let (y, m, d, ..) = dt.to_ymd_hms_milli();
            NaiveDate::from_ymd_opt(y.into(), m.into(), d.into())
                .map_or(Cell::Number(dt.as_f64()), Cell::Date)
        }
        Data::DateTime(dt) => Cell::Number(dt.as_f64()),
        Data::DateTimeIso(s) => s
            .get(..10)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .map_or(Cell::Text(s), Cell::Date),
        Data::DurationIso(s) => Cell::Text(s),
        Data::Error(e) => Cell::Text(e.to_string()),
    }
}

/// The non-blank rows of a sheet: (row number as shown in the spreadsheet, cells by
/// column from A).
#[derive(Debug, Default)]
pub struct Sheet {
    pub rows: Vec<(u32, Vec<Cell>)>,
}

impl Sheet {
    fn push(&mut self, no: u32, cells: Vec<Cell>) -> ApiResult<()> {
        if cells.iter().all(Cell::is_blank) {
            return Ok(());
        }
        self.rows.push((no, cells));
        // Stop reading early: the file is over the limit whatever its header.
        if self.rows.len() > MAX_ROWS + HEADER_SEARCH {
            return Err(too_many_rows(None));
        }
        Ok(())
    }
}

fn too_many_rows(n: Option<usize>) -> ApiError {
    let count = n
        .map(|n| format!("（本文件有 {n} 行）"))
        .unwrap_or_default();
    ApiError::field(
        "file",
        format!("一次最多导入 {MAX_ROWS} 行{count}，请把台账分成几个文件导入"),
    )
}

fn file_error(message: impl Into<String>) -> ApiError {
    ApiError::field("file", message)
}

/// Reads an uploaded file: XLSX (zip, "PK"), the old XLS format, or CSV in UTF-8.
pub fn read_file(bytes: &[u8]) -> ApiResult<Sheet> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(file_error("文件是空的"));
    }
    if bytes.starts_with(b"PK") {
        return read_xlsx(bytes);
    }
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        return read_xls(bytes);
    }
    if looks_binary(bytes) {
        return Err(file_error(
            "无法识别的文件格式：请上传 Excel 表格（.xlsx）或 UTF-8 编码的 CSV 文件",
        ));
    }
    read_csv(bytes)
}

fn looks_binary(bytes: &[u8]) -> bool {
    const MAGIC: &[&[u8]] = &[
        b"%PDF",
        b"\x89PNG",
        b"\xFF\xD8\xFF",
        b"GIF8",
        b"Rar!",
        b"\x1F\x8B",
    ];
    MAGIC.iter().any(|m| bytes.starts_with(m)) || bytes.iter().take(8192).any(|&b| b == 0)
}

fn unreadable_excel() -> ApiError {
    file_error("无法读取该 Excel 文件：请确认是 .xlsx 表格，并且没有设置密码")
}

fn read_xlsx(bytes: &[u8]) -> ApiResult<Sheet> {
    let mut wb = Xlsx::new(Cursor::new(bytes)).map_err(|_| unreadable_excel())?;
    let name = wb
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| file_error("该 Excel 文件中没有工作表"))?;
    let mut reader = wb
        .worksheet_cells_reader(&name)
        .map_err(|_| unreadable_excel())?;
    let mut sheet = Sheet::default();
    let mut current: Option<(u32, Vec<Cell>)> = None;
    // Cells come row by row; streaming keeps an oversized file from filling memory.
    while let Some(cell) = reader.next_cell().map_err(|_| unreadable_excel())? {
        let (r, c) = cell.get_position();
        let c = c as usize;
        if c >= MAX_COLS {
            continue;
        }
        let value = from_data(Data::from(cell.get_value().clone()));
        if value.is_blank() {
            continue;
        }
        let no = r + 1;
        if current.as_ref().is_some_and(|(n, _)| *n != no)
            && let Some((n, cells)) = current.take()
        {
            sheet.push(n, cells)?;
        }
        let (_, cells) = current.get_or_insert_with(|| (no, Vec::new()));
        if cells.len() <= c {
            cells.resize(c + 1, Cell::Empty);
        }
        cells[c] = value;
    }
    if let Some((n, cells)) = current {
        sheet.push(n, cells)?;
    }
    Ok(sheet)
}

fn read_xls(bytes: &[u8]) -> ApiResult<Sheet> {
    let mut wb = Xls::new(Cursor::new(bytes)).map_err(|_| unreadable_excel())?;
    let range = wb
        .worksheet_range_at(0)
        .ok_or_else(|| file_error("该 Excel 文件中没有工作表"))?
        .map_err(|_| unreadable_excel())?;
    let (r0, c0) = range.start().unwrap_or((0, 0));
    let mut sheet = Sheet::default();
    for (i, row) in range.rows().enumerate() {
        let mut cells = vec![Cell::Empty; c0 as usize];
        cells.extend(
            row.iter()
                .take(MAX_COLS.saturating_sub(c0 as usize))
                .cloned()
                .map(from_data),
        );
        sheet.push(r0 + i as u32 + 1, cells)?;
    }
    Ok(sheet)
}

fn read_csv(bytes: &[u8]) -> ApiResult<Sheet> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| {
        file_error(
            "CSV 文件不是 UTF-8 编码（Excel 默认保存的 CSV 是 GBK 编码，暂不支持）：\
             请在 Excel 中“另存为 → CSV UTF-8（逗号分隔）”，或直接上传 .xlsx 文件",
        )
    })?;
    let first_line = text.lines().next().unwrap_or_default();
    let delimiter = if first_line.matches('\t').count() > first_line.matches(',').count() {
        b'\t'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let mut sheet = Sheet::default();
    // A spreadsheet row is a record: line breaks inside quoted cells do not start a row,
    // but blank lines (which the csv reader skips) do.
    let mut embedded_breaks = 0u64;
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or_default();
            file_error(format!("CSV 文件第 {line} 行格式有误：{e}"))
        })?;
        // The position is where reading began, before any blank lines it skipped.
        let (line, byte) = record
            .position()
            .map_or((1, 0), |p| (p.line(), p.byte() as usize));
        let skipped = text.as_bytes()[byte.min(text.len())..]
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .filter(|b| **b == b'\n')
            .count() as u64;
        let line = line + skipped;
        let no = (line - embedded_breaks) as u32;
        embedded_breaks += record
            .iter()
            .map(|f| f.matches('\n').count() as u64)
            .sum::<u64>();
        let cells = record
            .iter()
            .take(MAX_COLS)
            .map(|f| Cell::Text(f.to_string()))
            .collect();
        sheet.push(no, cells)?;
    }
    Ok(sheet)
}

// ---------------------------------------------------------------------------------------
// Header and rows
// ---------------------------------------------------------------------------------------

/// A problem found in the file, where the coordinator will look for it.
#[derive(Object, Clone, Debug, PartialEq)]
pub struct RowError {
    /// The row as numbered in the spreadsheet (the header is row 1).
    pub row: u32,
    /// The column header, e.g. 联系电话.
    pub column: String,
    pub message: String,
}

impl RowError {
    pub fn new(row: u32, col: Col, message: impl Into<String>) -> Self {
        Self {
            row,
            column: col.header().into(),
            message: message.into(),
        }
    }
}

/// A data row, its cells by column.
#[derive(Clone, Debug)]
pub struct Row {
    pub no: u32,
    cells: Vec<Cell>,
}

impl Row {
    pub fn new(no: u32, values: &[(Col, Cell)]) -> Self {
        let mut cells = vec![Cell::Empty; NCOLS];
        for (c, v) in values {
            cells[*c as usize] = v.clone();
        }
        Self { no, cells }
    }

    pub fn get(&self, col: Col) -> &Cell {
        &self.cells[col as usize]
    }

    pub fn text(&self, col: Col) -> Option<String> {
        self.get(col).opt_text()
    }
}

/// The rows of a sheet under its header, and the header's problems.
#[derive(Debug)]
pub struct Parsed {
    pub rows: Vec<Row>,
    pub errors: Vec<RowError>,
}

/// Finds the header (the first row naming at least two known columns, within the first
/// few rows), maps the columns, and reports duplicate or missing required columns once.
pub fn parse_sheet(sheet: Sheet) -> ApiResult<Parsed> {
    let known = |cells: &[Cell]| {
        cells
            .iter()
            .filter(|c| Col::from_header(&c.text()).is_some())
            .count()
    };
    let at = sheet
        .rows
        .iter()
        .take(HEADER_SEARCH)
        .position(|(_, cells)| known(cells) >= 2)
        .ok_or_else(|| {
            file_error(format!(
                "没有找到表头：第 1 行应为列名，至少包括 {}",
                required_headers()
            ))
        })?;
    let header_no = sheet.rows[at].0;
    let mut errors = Vec::new();
    let mut position: [Option<usize>; NCOLS] = [None; NCOLS];
    for (i, cell) in sheet.rows[at].1.iter().enumerate() {
        if let Some(col) = Col::from_header(&cell.text()) {
            if position[col as usize].is_some() {
                errors.push(RowError::new(
                    header_no,
                    col,
                    format!("“{}”列出现了不止一次", col.header()),
                ));
            } else {
                position[col as usize] = Some(i);
            }
        }
    }
    let missing: Vec<Col> = Col::ALL
        .into_iter()
        .filter(|c| c.required() && position[*c as usize].is_none())
        .collect();
    for c in &missing {
        errors.push(RowError::new(
            header_no,
            *c,
            format!("缺少必填列“{}”", c.header()),
        ));
    }
    let data = &sheet.rows[at + 1..];
    if data.len() > MAX_ROWS {
        return Err(too_many_rows(Some(data.len())));
    }
    if !missing.is_empty() {
        // Every row would fail for the same reason: the header says it once.
        return Ok(Parsed {
            rows: Vec::new(),
            errors,
        });
    }
    if data.is_empty() {
        errors.push(RowError::new(
            header_no,
            Col::RegisterNo,
            "表头下面没有数据行",
        ));
    }
    let rows = data
        .iter()
        .map(|(no, cells)| Row {
            no: *no,
            cells: Col::ALL
                .iter()
                .map(|c| {
                    position[*c as usize]
                        .and_then(|i| cells.get(i))
                        .cloned()
                        .unwrap_or_default()
                })
                .collect(),
        })
        .collect();
    Ok(Parsed { rows, errors })
}

fn required_headers() -> String {
    Col::ALL
        .iter()
        .filter(|c| c.required())
        .map(|c| c.header())
        .collect::<Vec<_>>()
        .join("、")
}

/// The rows of one 台账编号, in file order; the first row describes the family.
#[derive(Debug)]
pub struct Group {
    pub register_no: String,
    pub rows: Vec<Row>,
}

/// Groups rows by 台账编号 (consecutive or not), in order of first appearance. Rows
/// without a number are reported; later rows whose family columns differ from the first
/// row's are reported too (a blank family cell on a later row is fine).
pub fn group_rows(rows: Vec<Row>, errors: &mut Vec<RowError>) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for row in rows {
        let Some(no) = row.text(Col::RegisterNo) else {
            errors.push(RowError::new(row.no, Col::RegisterNo, "台账编号 不能为空"));
            continue;
        };
        match index.get(&no) {
            None => {
                index.insert(no.clone(), groups.len());
                groups.push(Group {
                    register_no: no,
                    rows: vec![row],
                });
            }
            Some(&i) => {
                let first = &groups[i].rows[0];
                for col in Col::ALL.into_iter().filter(|c| c.family_level()) {
                    let (Some(here), there) = (row.text(col), first.text(col)) else {
                        continue;
                    };
                    if there.as_ref() != Some(&here) {
                        let was = there.map_or("为空".to_string(), |t| format!("为“{t}”"));
                        errors.push(RowError::new(
                            row.no,
                            col,
                            format!(
                                "同一台账编号“{no}”的家庭信息不一致：第 {} 行{was}，此处为“{here}”（家庭信息以第一行为准）",
                                first.no
                            ),
                        ));
                    }
                }
                groups[i].rows.push(row);
            }
        }
    }
    groups
}

// ---------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------

/// 是/否 (and the usual spellings of yes and no); None when blank.
pub fn parse_yes_no(cell: &Cell) -> Result<Option<bool>, String> {
    if let Cell::Bool(b) = cell {
        return Ok(Some(*b));
    }
    let Some(s) = cell.opt_text() else {
        return Ok(None);
    };
    match s.to_lowercase().as_str() {
        "是" | "√" | "✓" | "y" | "yes" | "true" | "1" => Ok(Some(true)),
        "否" | "×" | "✗" | "n" | "no" | "false" | "0" => Ok(Some(false)),
        _ => Err(format!("应填写 是 或 否，而不是“{s}”")),
    }
}

/// Splits "1960-06-30", "1960/6/30", "1960.6.30", "1960年6月30日" or "19600630" into
/// numbers. Anything after a space (a time) is ignored.
fn date_numbers(s: &str) -> Option<Vec<(usize, i32)>> {
    let s = s.split_whitespace().next()?;
    if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        return Some(vec![
            (4, s[..4].parse().ok()?),
            (2, s[4..6].parse().ok()?),
            (2, s[6..].parse().ok()?),
        ]);
    }
    s.split(['-', '/', '.', '年', '月', '日'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| p.parse().ok().map(|n| (p.len(), n)))
                .flatten()
        })
        .collect()
}

/// A full date: a date cell, or text as `date_numbers` reads it, year first.
pub fn parse_date(cell: &Cell) -> Result<Option<NaiveDate>, String> {
    if let Cell::Date(d) = cell {
        return Ok(Some(*d));
    }
    let Some(s) = cell.opt_text() else {
        return Ok(None);
    };
    match date_numbers(&s).as_deref() {
        Some(&[(4, y), (_, m), (_, d)]) => NaiveDate::from_ymd_opt(y, m as u32, d as u32)
            .map(Some)
            .ok_or_else(|| format!("“{s}”不是有效日期")),
        _ => Err(format!("“{s}”不是日期，应为 YYYY-MM-DD（如 2010-05-01）")),
    }
}

/// A birthday as written: (year, month, day), each optional.
pub type BirthParts = (Option<i32>, Option<i32>, Option<i32>);

/// A birthday: "1960-06-30", "06-30" (no year) or "1960" (year only). Lunar dates are
/// not calendar dates (1960-06-30 is fine here); whether they are plausible is for
/// `NewMember::validate`.
pub fn parse_birth(cell: &Cell) -> Result<BirthParts, String> {
    use chrono::Datelike;
    if let Cell::Date(d) = cell {
        return Ok((Some(d.year()), Some(d.month() as i32), Some(d.day() as i32)));
    }
    let Some(s) = cell.opt_text() else {
        return Ok((None, None, None));
    };
    match date_numbers(&s).as_deref() {
        Some(&[(4, y), (_, m), (_, d)]) => Ok((Some(y), Some(m), Some(d))),
        Some(&[(4, y), (_, m)]) => Ok((Some(y), Some(m), None)),
        Some(&[(1..=2, m), (1..=2, d)]) => Ok((None, Some(m), Some(d))),
        Some(&[(4, y)]) => Ok((Some(y), None, None)),
        _ => Err(format!(
            "“{s}”不是日期，应为 YYYY-MM-DD（如 1960-06-30；农历生日填农历日期）"
        )),
    }
}

fn parse_number(cell: &Cell, what: &str) -> Result<Option<f64>, String> {
    match cell {
        Cell::Number(n) => Ok(Some(*n)),
        c => match c.opt_text() {
            None => Ok(None),
            Some(s) => s
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(Some)
                .ok_or_else(|| format!("{what}应为数字，而不是“{s}”")),
        },
    }
}

fn parse_care_level(cell: &Cell) -> Result<Option<i32>, String> {
    let Some(s) = cell.opt_text() else {
        return Ok(None);
    };
    s.trim_end_matches('级')
        .parse::<i32>()
        .map(Some)
        .map_err(|_| format!("关爱等级应为 1、2 或 3，而不是“{s}”"))
}

/// The category by its label or code, and the other names registers use for it.
pub fn parse_category(s: &str) -> Option<FamilyCategory> {
    let s = s.trim();
    FamilyCategory::parse(s)
        .or_else(|| FamilyCategory::parse(s.trim_end_matches("家庭")))
        .or(match s {
            "独女户" | "纯女户" | "双女户" => Some(FamilyCategory::DaughtersOnly),
            "特扶对象" | "特别扶助" | "特别扶助对象" => {
                Some(FamilyCategory::SpecialSupport)
            }
            "伤残独生子女家庭" | "独生子女伤残" => {
                Some(FamilyCategory::DisabledChild)
            }
            _ => None,
        })
}

pub fn parse_relation(s: &str) -> Option<MemberRelation> {
    let s = s.trim();
    MemberRelation::parse(s).or(match s {
        "父" => Some(MemberRelation::Father),
        "母" => Some(MemberRelation::Mother),
        "儿子" | "女儿" | "子" | "女" | "独生子女" => Some(MemberRelation::Child),
        "丈夫" | "妻子" | "夫" | "妻" | "老伴" => Some(MemberRelation::Spouse),
        "孙子" | "孙女" | "外孙" | "外孙女" => Some(MemberRelation::Grandchild),
        _ => None,
    })
}

fn labels<T: Copy>(all: &[T], label: fn(T) -> &'static str) -> String {
    all.iter().map(|v| label(*v)).collect::<Vec<_>>().join("、")
}

// ---------------------------------------------------------------------------------------
// Villages
// ---------------------------------------------------------------------------------------

/// The regions in the caller's scope, to resolve the 村/社区 column by name or code.
pub struct VillageIndex {
    regions: Vec<region::Model>,
    by_id: HashMap<Uuid, usize>,
}

impl VillageIndex {
    pub fn new(regions: Vec<region::Model>) -> Self {
        let by_id = regions.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        Self { regions, by_id }
    }

    pub async fn load(db: &impl ConnectionTrait, scope: &Scope) -> ApiResult<Self> {
        let regions = region::Entity::find()
            .filter(in_scope(scope, region::Column::Id))
            .order_by_asc(region::Column::Path)
            .all(db)
            .await?;
        Ok(Self::new(regions))
    }

    fn describe(&self, r: &region::Model) -> String {
        let parent = r
            .parent_id
            .and_then(|p| self.by_id.get(&p))
            .map(|&i| self.regions[i].name.as_str())
            .unwrap_or_default();
        format!("{parent}{}（代码 {}）", r.name, r.code)
    }

    /// The village a cell names, which must be a village in scope and unambiguous.
    pub fn resolve(&self, value: &str) -> Result<Uuid, String> {
        let v = value.trim();
        let matches: Vec<&region::Model> = self
            .regions
            .iter()
            .filter(|r| r.name == v || r.code == v)
            .collect();
        let villages: Vec<&region::Model> = matches
            .iter()
            .copied()
            .filter(|r| r.level == RegionLevel::Village)
            .collect();
        match villages.as_slice() {
            [one] => Ok(one.id),
            [] if !matches.is_empty() => Err(format!("“{v}”不是村/社区，家庭应登记在村/社区一级")),
            [] => Err(format!("村/社区“{v}”不存在或不在您的管辖范围内")),
            many => Err(format!(
                "“{v}”在您的管辖范围内不唯一：{}，请改填村/社区代码",
                many.iter()
                    .map(|r| self.describe(r))
                    .collect::<Vec<_>>()
                    .join("、")
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Building NewFamily values
// ---------------------------------------------------------------------------------------

/// The family columns of a row, parsed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FamilyFields {
    pub region_id: Option<Uuid>,
    pub register_no: String,
    pub category: Option<FamilyCategory>,
    pub head_name: String,
    pub phone: Option<String>,
    pub address: String,
    pub lat: Option<f64>,
    pub lng: Option<f64>,
    pub care_level: Option<i32>,
    pub consent_sms: bool,
    pub consent_wechat: bool,
    pub visitor_notes: Option<String>,
}

impl FamilyFields {
    fn to_new(&self, members: Vec<NewMember>) -> NewFamily {
        NewFamily {
            region_id: self.region_id.unwrap_or_default(),
            register_no: self.register_no.clone(),
            // A placeholder only while checking a family that already has an error.
            category: self.category.unwrap_or(FamilyCategory::Hardship),
            head_name: self.head_name.clone(),
            phone: self.phone.clone(),
            address: self.address.clone(),
            lat: self.lat,
            lng: self.lng,
            care_level: self.care_level,
            consent_sms: self.consent_sms,
            consent_wechat: self.consent_wechat,
            preferences: None,
            visitor_notes: self.visitor_notes.clone(),
            counsel_notes: None,
            members,
        }
    }
}

/// The member columns of a row, parsed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemberFields {
    pub name: String,
    pub relation: Option<MemberRelation>,
    pub gender: Option<String>,
    pub phone: Option<String>,
    pub id_number: Option<String>,
    pub birth_calendar: Option<BirthCalendar>,
    pub birth_year: Option<i32>,
    pub birth_month: Option<i32>,
    pub birth_day: Option<i32>,
    pub birth_leap_month: bool,
    pub deceased: bool,
    pub death_date: Option<NaiveDate>,
    pub primary_contact: bool,
}

impl MemberFields {
    fn to_new(&self) -> NewMember {
        NewMember {
            name: self.name.clone(),
            relation: self.relation.unwrap_or(MemberRelation::Other),
            gender: self.gender.clone(),
            phone: self.phone.clone(),
            id_number: self.id_number.clone(),
            birth_calendar: self.birth_calendar,
            birth_year: self.birth_year,
            birth_month: self.birth_month,
            birth_day: self.birth_day,
            birth_leap_month: self.birth_leap_month,
            deceased: self.deceased,
            death_date: self.death_date,
            primary_contact: self.primary_contact,
        }
    }
}

/// Collects errors for one row.
struct Errs<'a> {
    row: u32,
    out: &'a mut Vec<RowError>,
}

impl Errs<'_> {
    fn push(&mut self, col: Col, message: impl Into<String>) {
        self.out.push(RowError::new(self.row, col, message));
    }

    fn take<T: Default>(&mut self, col: Col, r: Result<T, String>) -> T {
        r.unwrap_or_else(|m| {
            self.push(col, m);
            T::default()
        })
    }
}

fn family_fields(row: &Row, villages: &VillageIndex, errs: &mut Errs) -> FamilyFields {
    let region_id = match row.text(Col::Village) {
        None => {
            errs.push(Col::Village, "村/社区 不能为空");
            None
        }
        Some(v) => errs.take(Col::Village, villages.resolve(&v).map(Some)),
    };
    let category = match row.text(Col::Category) {
        None => {
            errs.push(Col::Category, "类别 不能为空");
            None
        }
        Some(c) => {
            let parsed = parse_category(&c);
            if parsed.is_none() {
                errs.push(
                    Col::Category,
                    format!(
                        "类别“{c}”无法识别，应为 {}",
                        labels(FamilyCategory::ALL, FamilyCategory::label)
                    ),
                );
            }
            parsed
        }
    };
    FamilyFields {
        region_id,
        register_no: row.text(Col::RegisterNo).unwrap_or_default(),
        category,
        head_name: row.text(Col::HeadName).unwrap_or_default(),
        phone: row.text(Col::Phone),
        address: row.text(Col::Address).unwrap_or_default(),
        lat: errs.take(Col::Lat, parse_number(row.get(Col::Lat), "纬度")),
        lng: errs.take(Col::Lng, parse_number(row.get(Col::Lng), "经度")),
        care_level: errs.take(Col::CareLevel, parse_care_level(row.get(Col::CareLevel))),
        consent_sms: errs
            .take(Col::Sms, parse_yes_no(row.get(Col::Sms)))
            .unwrap_or(false),
        consent_wechat: errs
            .take(Col::WeChat, parse_yes_no(row.get(Col::WeChat)))
            .unwrap_or(false),
        visitor_notes: row.text(Col::Notes),
    }
}

const MEMBER_COLS: [Col; 10] = [
    Col::MemberName,
    Col::Relation,
    Col::Gender,
    Col::MemberPhone,
    Col::IdNumber,
    Col::Calendar,
    Col::Birth,
    Col::Leap,
    Col::Deceased,
    Col::DeathDate,
];

/// The member of a row, or None when 成员姓名 is blank.
fn member_fields(row: &Row, errs: &mut Errs) -> Option<MemberFields> {
    let Some(name) = row.text(Col::MemberName) else {
        if let Some(c) = MEMBER_COLS.iter().find(|c| !row.get(**c).is_blank()) {
            errs.push(
                Col::MemberName,
                format!("填写了“{}”等成员信息，但成员姓名为空", c.header()),
            );
        }
        return None;
    };
    let relation = match row.text(Col::Relation) {
        None => {
            errs.push(Col::Relation, "关系 不能为空");
            None
        }
        Some(r) => {
            let parsed = parse_relation(&r);
            if parsed.is_none() {
                errs.push(
                    Col::Relation,
                    format!(
                        "关系“{r}”无法识别，应为 {}",
                        labels(MemberRelation::ALL, MemberRelation::label)
                    ),
                );
            }
            parsed
        }
    };
    let birth_calendar = row.text(Col::Calendar).and_then(|c| {
        let parsed = BirthCalendar::parse(&c);
        if parsed.is_none() {
            errs.push(
                Col::Calendar,
                format!("生日历法应为 公历 或 农历，而不是“{c}”"),
            );
        }
        parsed
    });
    let id_number = match row.get(Col::IdNumber) {
        // Excel keeps 15 significant digits: the number is already damaged.
        Cell::Number(_) => {
            errs.push(
                Col::IdNumber,
                "身份证号被 Excel 存成了数字，末几位已经丢失：请把该列设为“文本”后重新填写",
            );
            None
        }
        // A masked number (as exported) cannot be imported; the member is kept without it.
        c => c.opt_text().filter(|s| !s.contains('*')),
    };
    let (birth_year, birth_month, birth_day) =
        errs.take(Col::Birth, parse_birth(row.get(Col::Birth)));
    Some(MemberFields {
        name,
        relation,
        gender: row.text(Col::Gender),
        phone: row.text(Col::MemberPhone),
        id_number,
        birth_calendar,
        birth_year,
        birth_month,
        birth_day,
        birth_leap_month: errs
            .take(Col::Leap, parse_yes_no(row.get(Col::Leap)))
            .unwrap_or(false),
        deceased: errs
            .take(Col::Deceased, parse_yes_no(row.get(Col::Deceased)))
            .unwrap_or(false),
        death_date: errs.take(Col::DeathDate, parse_date(row.get(Col::DeathDate))),
        primary_contact: false,
    })
}

/// The column of a `NewMember` field, and how to name it inside a message.
fn member_column(field: &str) -> (Col, &'static str) {
    match field {
        "name" => (Col::MemberName, "成员姓名"),
        "relation" => (Col::Relation, "关系"),
        "gender" => (Col::Gender, "性别"),
        "phone" => (Col::MemberPhone, "成员电话"),
        "id_number" => (Col::IdNumber, "身份证号"),
        "birth_calendar" => (Col::Calendar, "生日历法"),
        "birth_year" => (Col::Birth, "出生年份"),
        "birth_month" => (Col::Birth, "出生月份"),
        "birth_day" => (Col::Birth, "出生日期"),
        "birth_leap_month" => (Col::Leap, "闰月"),
        "deceased" => (Col::Deceased, "是否已故"),
        "death_date" => (Col::DeathDate, "去世日期"),
        _ => (Col::MemberName, "成员"),
    }
}

/// The column of a `NewFamily` field (without members).
fn family_column(field: &str) -> (Col, &'static str) {
    match field {
        "region_id" => (Col::Village, "村/社区"),
        "register_no" => (Col::RegisterNo, "台账编号"),
        "category" => (Col::Category, "类别"),
        "head_name" => (Col::HeadName, "户主姓名"),
        "phone" => (Col::Phone, "联系电话"),
        "address" => (Col::Address, "家庭住址"),
        "location" | "location.lat" => (Col::Lat, "纬度"),
        "location.lng" => (Col::Lng, "经度"),
        "care_level" => (Col::CareLevel, "关爱等级"),
        "visitor_notes" => (Col::Notes, "走访备注"),
        "members" => (Col::MemberName, "成员"),
        _ => (Col::RegisterNo, "家庭"),
    }
}

/// A validation error in the coordinator's terms: the column, and the message with the
/// API's field name replaced by the column's.
fn translate(row: u32, col: Col, label: &str, field: &str, message: &str) -> RowError {
    RowError::new(row, col, message.replace(field, label))
}

/// Runs `validate` until it passes, clearing each offending field, so that one row's
/// problems are all reported (the API stops at the first).
fn all_errors<T: Validate>(
    value: &mut T,
    clear: fn(&mut T, &str) -> bool,
) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    loop {
        match value.validate() {
            Ok(()) => break,
            Err(ApiError::Validation { field, message }) => {
                let repeated = found.iter().any(|(f, _)| *f == field);
                let cleared = !repeated && clear(value, &field);
                if !repeated {
                    found.push((field, message));
                }
                if !cleared {
                    break;
                }
            }
            Err(other) => {
                found.push((String::new(), other.to_string()));
                break;
            }
        }
    }
    found
}

fn clear_family_field(f: &mut NewFamily, field: &str) -> bool {
    match field {
        "register_no" => f.register_no = "-".into(),
        "head_name" => f.head_name = "-".into(),
        "phone" => f.phone = None,
        "address" => f.address = "-".into(),
        "location" | "location.lat" | "location.lng" => {
            f.lat = None;
            f.lng = None;
        }
        "care_level" => f.care_level = None,
        "visitor_notes" => f.visitor_notes = None,
        "counsel_notes" => f.counsel_notes = None,
        p if p.starts_with("preferences") => f.preferences = None,
        _ => return false,
    }
    true
}

fn clear_member_field(m: &mut NewMember, field: &str) -> bool {
    match field {
        "name" => m.name = "-".into(),
        "phone" => m.phone = None,
        "gender" => m.gender = None,
        "id_number" => m.id_number = None,
        "birth_year" | "birth_month" | "birth_day" | "birth_leap_month" => {
            m.birth_year = None;
            m.birth_month = None;
            m.birth_day = None;
            m.birth_leap_month = false;
        }
        "death_date" => m.death_date = None,
        _ => return false,
    }
    true
}

/// A family ready to insert.
pub struct Planned {
    pub first_row: u32,
    pub family: NewFamily,
}

/// What the file would do.
pub struct Plan {
    pub ready: Vec<Planned>,
    /// (village, register number, first row) of every family whose village resolved, to
    /// check against the families already registered.
    pub keys: Vec<(Uuid, String, u32)>,
    pub families: u64,
    pub members: u64,
    pub errors: Vec<RowError>,
}

/// Groups the rows into families, parses and validates them with the API's rules.
pub fn plan(parsed: Parsed, villages: &VillageIndex) -> Plan {
    let mut errors = parsed.errors;
    let groups = group_rows(parsed.rows, &mut errors);
    let mut plan = Plan {
        ready: Vec::new(),
        keys: Vec::new(),
        families: groups.len() as u64,
        members: 0,
        errors: Vec::new(),
    };
    for group in &groups {
        let before = errors.len();
        let first = &group.rows[0];
        let fields = family_fields(
            first,
            villages,
            &mut Errs {
                row: first.no,
                out: &mut errors,
            },
        );
        if let Some(v) = fields.region_id {
            plan.keys.push((v, fields.register_no.clone(), first.no));
        }
        for (field, message) in all_errors(&mut fields.to_new(Vec::new()), clear_family_field) {
            let (col, label) = family_column(&field);
            errors.push(translate(first.no, col, label, &field, &message));
        }
        let mut members: Vec<(u32, MemberFields)> = Vec::new();
        for row in &group.rows {
            let mut errs = Errs {
                row: row.no,
                out: &mut errors,
            };
            let Some(m) = member_fields(row, &mut errs) else {
                continue;
            };
            for (field, message) in all_errors(&mut m.to_new(), clear_member_field) {
                let (col, label) = member_column(&field);
                errors.push(translate(row.no, col, label, &field, &message));
            }
            members.push((row.no, m));
        }
        plan.members += members.len() as u64;
        if errors.len() > before {
            continue;
        }
        // The householder, when listed and living, is the family's primary contact.
        let head = fields.head_name.trim();
        if let Some((_, m)) = members
            .iter_mut()
            .find(|(_, m)| !m.deceased && m.name.trim() == head)
        {
            m.primary_contact = true;
        }
        let family = fields.to_new(members.iter().map(|(_, m)| m.to_new()).collect());
        // Finally the whole value, exactly as `POST /families` checks it.
        if let Err(e) = family.validate() {
            errors.push(whole_family_error(first.no, &members, e));
            continue;
        }
        plan.ready.push(Planned {
            first_row: first.no,
            family,
        });
    }
    errors.sort_by_key(|e| e.row);
    plan.errors = errors;
    plan
}

/// Places an error of the whole `NewFamily` (e.g. more than 20 members) on its row.
fn whole_family_error(first_row: u32, members: &[(u32, MemberFields)], e: ApiError) -> RowError {
    let ApiError::Validation { field, message } = e else {
        return RowError::new(first_row, Col::RegisterNo, e.to_string());
    };
    if let Some(rest) = field.strip_prefix("members[")
        && let Some((i, sub)) = rest.split_once("].")
        && let Ok(i) = i.parse::<usize>()
    {
        let (col, label) = member_column(sub);
        let row = members.get(i).map_or(first_row, |(r, _)| *r);
        return translate(row, col, label, &field, &message);
    }
    if field == "members" {
        // The first member over the limit.
        let row = members.get(20).map_or(first_row, |(r, _)| *r);
        return RowError::new(row, Col::MemberName, message);
    }
    let (col, label) = family_column(&field);
    translate(first_row, col, label, &field, &message)
}

/// The (village, register number) pairs already taken.
async fn taken(
    db: &impl ConnectionTrait,
    keys: &[(Uuid, String, u32)],
) -> ApiResult<HashSet<(Uuid, String)>> {
    let mut out = HashSet::new();
    for chunk in keys.chunks(300) {
        let villages: HashSet<Uuid> = chunk.iter().map(|k| k.0).collect();
        let numbers: HashSet<&str> = chunk.iter().map(|k| k.1.as_str()).collect();
        let rows = family::Entity::find()
            .filter(family::Column::RegionId.is_in(villages))
            .filter(family::Column::RegisterNo.is_in(numbers))
            .all(db)
            .await?;
        out.extend(rows.into_iter().map(|f| (f.region_id, f.register_no)));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------

fn yes_no(b: bool) -> Cell {
    Cell::Text(if b { "是" } else { "否" }.into())
}

fn opt_text_cell(s: Option<&str>) -> Cell {
    s.filter(|s| !s.trim().is_empty())
        .map_or(Cell::Empty, |s| Cell::Text(s.into()))
}

/// A birthday as the import reads it back: "1960-06-30", "06-30" or "1960".
pub fn birth_text(year: Option<i32>, month: Option<i32>, day: Option<i32>) -> String {
    match (year, month, day) {
        (Some(y), Some(m), Some(d)) => format!("{y:04}-{m:02}-{d:02}"),
        (None, Some(m), Some(d)) => format!("{m:02}-{d:02}"),
        (Some(y), Some(m), None) => format!("{y:04}-{m:02}"),
        (Some(y), None, _) => format!("{y:04}"),
        _ => String::new(),
    }
}

/// The rows of one family: one per member (a family without members gets one row).
pub fn export_rows(
    f: &family::Model,
    village: &str,
    members: &[family_member::Model],
) -> Vec<Vec<Cell>> {
    let family_cells = [
        Cell::Text(f.register_no.clone()),
        Cell::Text(village.into()),
        Cell::Text(f.category.label().into()),
        Cell::Text(f.head_name.clone()),
        opt_text_cell(f.phone.as_deref()),
        Cell::Text(f.address.clone()),
        f.lat.map_or(Cell::Empty, Cell::Number),
        f.lng.map_or(Cell::Empty, Cell::Number),
        Cell::Number(f.care_level.into()),
        yes_no(f.consent_sms),
        yes_no(f.consent_wechat),
        opt_text_cell(Some(&f.visitor_notes)),
    ];
    if members.is_empty() {
        let mut row = family_cells.to_vec();
        row.resize(NCOLS, Cell::Empty);
        return vec![row];
    }
    members
        .iter()
        .map(|m| {
            let mut row = family_cells.to_vec();
            row.extend([
                Cell::Text(m.name.clone()),
                Cell::Text(m.relation.label().into()),
                opt_text_cell(m.gender.as_deref()),
                opt_text_cell(m.phone.as_deref()),
                // Never the full number: the masked form, which the import skips.
                opt_text_cell(m.id_number_masked.as_deref()),
                Cell::Text(m.birth_calendar.label().into()),
                opt_text_cell(Some(&birth_text(m.birth_year, m.birth_month, m.birth_day))),
                yes_no(m.birth_leap_month),
                yes_no(m.deceased),
                m.death_date.map_or(Cell::Empty, |d| {
                    Cell::Text(d.format("%Y-%m-%d").to_string())
                }),
            ]);
            row
        })
        .collect()
}

/// Writes the register as an XLSX workbook: header, then the rows, all text except
/// coordinates and care level (phone and ID numbers stay text, never numbers).
pub fn write_xlsx(rows: &[Vec<Cell>]) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("台账")?;
    let bold = Format::new().set_bold();
    let text = Format::new().set_num_format("@");
    for (c, col) in Col::ALL.iter().enumerate() {
        let c = c as u16;
        ws.write_string_with_format(0, c, col.header(), &bold)?;
        let width = match col {
            Col::Address | Col::Notes => 30.0,
            Col::IdNumber => 22.0,
            Col::RegisterNo | Col::Phone | Col::MemberPhone | Col::Village => 16.0,
            _ => 10.0,
        };
        ws.set_column_width(c, width)?;
    }
    ws.set_freeze_panes(1, 0)?;
    for (r, row) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        for (c, cell) in row.iter().enumerate() {
            let c = c as u16;
            match cell {
                Cell::Empty => {}
                Cell::Number(n) => {
                    ws.write_number(r, c, *n)?;
                }
                other => {
                    ws.write_string_with_format(r, c, other.text(), &text)?;
                }
            }
        }
    }
    wb.save_to_buffer()
}

/// How the village is written: its name when no other village anywhere has that name
/// (so the file reads naturally and imports in any scope), its code otherwise.
fn village_labels(villages: &[region::Model]) -> HashMap<Uuid, String> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for v in villages {
        *count.entry(v.name.as_str()).or_default() += 1;
    }
    villages
        .iter()
        .map(|v| {
            let label = if count[v.name.as_str()] == 1 {
                v.name.clone()
            } else {
                v.code.clone()
            };
            (v.id, label)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The endpoints
// ---------------------------------------------------------------------------------------

#[derive(Multipart)]
pub struct RegisterUpload {
    /// The register (required): an Excel workbook (.xlsx; the first sheet is read) or a
    /// CSV file in UTF-8.
    pub file: Option<Upload>,
}

/// The outcome of an import, or of a trial run.
#[derive(Object, Debug)]
pub struct ImportReport {
    /// A trial run writes nothing.
    pub dry_run: bool,
    /// Families in the file (written, when a real import succeeds).
    pub families: u64,
    /// Members in the file.
    pub members: u64,
    /// Every problem, by row and column; the import writes nothing while there are any.
    pub errors: Vec<RowError>,
}

#[derive(ApiResponse)]
pub enum ImportResponse {
    /// The report: of the trial run, or of the completed import.
    #[oai(status = 200)]
    Ok(Json<ImportReport>),
    /// The file has errors; nothing was written. The report lists them.
    #[oai(status = 422)]
    Rejected(Json<ImportReport>),
}

#[derive(ApiResponse)]
pub enum ExportResponse {
    /// The register as an Excel workbook.
    #[oai(
        status = 200,
        content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )]
    Ok(
        Binary<Vec<u8>>,
        #[oai(header = "Content-Disposition")] String,
    ),
}

fn join_error(e: tokio::task::JoinError) -> ApiError {
    ApiError::Internal(e.into())
}

#[OpenApi(prefix_path = "/families", tag = "Tag::Families")]
impl Api {
    /// Import the register from a spreadsheet.
    ///
    /// Multipart field `file`: .xlsx or UTF-8 .csv, Chinese column headers (those of the
    /// export), one row per family member; rows with the same 台账编号 form one family.
    /// With `dry_run=true` (the default) nothing is written and the report lists every
    /// bad row; with `dry_run=false` everything is written in one go, or nothing (422
    /// with the report) if any row is bad.
    #[oai(path = "/import", method = "post")]
    async fn import(
        &self,
        auth: Manager,
        /// true (default): only check the file.
        dry_run: Query<Option<bool>>,
        body: RegisterUpload,
    ) -> ApiResult<ImportResponse> {
        let scope = auth.0.manager_scope()?;
        let dry_run = dry_run.0.unwrap_or(true);
        let upload = body
            .file
            .ok_or_else(|| file_error("请在 file 字段上传台账文件（.xlsx 或 .csv）"))?;
        if upload.file_name().is_none() {
            return Err(file_error(
                "file 字段应是上传的文件（.xlsx 或 .csv），而不是一段文字",
            ));
        }
        let bytes = upload
            .into_vec()
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
        let parsed = tokio::task::spawn_blocking(move || read_file(&bytes).and_then(parse_sheet))
            .await
            .map_err(join_error)??;
        let state = &self.0;
        let villages = VillageIndex::load(&state.db, &scope).await?;
        let mut plan = plan(parsed, &villages);
        let taken = taken(&state.db, &plan.keys).await?;
        for (v, no, row) in &plan.keys {
            if taken.contains(&(*v, no.clone())) {
                plan.errors
                    .push(RowError::new(*row, Col::RegisterNo, "该村已有此台账编号"));
            }
        }
        plan.errors.sort_by_key(|e| e.row);
        let mut report = ImportReport {
            dry_run,
            families: plan.families,
            members: plan.members,
            errors: plan.errors,
        };
        if dry_run {
            return Ok(ImportResponse::Ok(Json(report)));
        }
        if !report.errors.is_empty() {
            return Ok(ImportResponse::Rejected(Json(report)));
        }
        let txn = state.db.begin().await?;
        for p in &plan.ready {
            match insert_family(state, &txn, &p.family, auth.0.user_id).await {
                Ok(_) => {}
                // Registered by someone else since the check: nothing is written.
                Err(ApiError::Validation { message, .. }) => {
                    report
                        .errors
                        .push(RowError::new(p.first_row, Col::RegisterNo, message));
                    return Ok(ImportResponse::Rejected(Json(report)));
                }
                Err(e) => return Err(e),
            }
        }
        audit::record(
            &txn,
            Some(auth.0.user_id),
            "import_register",
            "family",
            None,
            json!({"families": report.families, "members": report.members}),
        )
        .await?;
        txn.commit().await?;
        state.family_lists.clear();
        Ok(ImportResponse::Ok(Json(report)))
    }

    /// Export the register of my scope as an Excel workbook.
    ///
    /// The import's columns, one row per member (ID numbers masked), so the file can be
    /// imported again. Filter by region (its whole subtree) or category. Audited.
    #[oai(path = "/export", method = "get")]
    async fn export(
        &self,
        auth: Manager,
        region_id: Query<Option<Uuid>>,
        category: Query<Option<FamilyCategory>>,
    ) -> ApiResult<ExportResponse> {
        let scope = auth.0.manager_scope()?;
        let db = &self.0.db;
        let select = families::scoped(db, &scope, region_id.0, category.0).await?;
        let families = select
            .order_by_asc(family::Column::RegisterNo)
            .order_by_asc(family::Column::Id)
            .all(db)
            .await?;
        let mut members: HashMap<Uuid, Vec<family_member::Model>> = HashMap::new();
        for chunk in families.chunks(500) {
            let rows = family_member::Entity::find()
                .filter(family_member::Column::FamilyId.is_in(chunk.iter().map(|f| f.id)))
                .order_by_asc(family_member::Column::CreatedAt)
                .order_by_asc(family_member::Column::Id)
                .all(db)
                .await?;
            for m in rows {
                members.entry(m.family_id).or_default().push(m);
            }
        }
        let villages = region::Entity::find()
            .filter(region::Column::Level.eq(RegionLevel::Village))
            .all(db)
            .await?;
        let labels = village_labels(&villages);
        let mut rows = Vec::new();
        let mut member_count = 0;
        for f in &families {
            let ms = members.get(&f.id).map(Vec::as_slice).unwrap_or_default();
            member_count += ms.len();
            let village = labels
                .get(&f.region_id)
                .map(String::as_str)
                .unwrap_or_default();
            rows.extend(export_rows(f, village, ms));
        }
        let bytes = tokio::task::spawn_blocking(move || write_xlsx(&rows))
            .await
            .map_err(join_error)?
            .map_err(|e| ApiError::Internal(e.into()))?;
        audit::record(
            db,
            Some(auth.0.user_id),
            "export_register",
            "family",
            None,
            json!({
                "families": families.len(),
                "members": member_count,
                "region_id": region_id.0,
                "category": category.0.map(|c| c.code()),
            }),
        )
        .await?;
        Ok(ExportResponse::Ok(
            Binary(bytes),
            "attachment; filename=\"register.xlsx\"".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn t(s: &str) -> Cell {
        Cell::Text(s.into())
    }

    fn region(name: &str, code: &str, level: RegionLevel, parent: Option<Uuid>) -> region::Model {
        region::Model {
            id: Uuid::new_v4(),
            parent_id: parent,
            level,
            name: name.into(),
            code: code.into(),
            path: String::new(),
            lat: None,
            lng: None,
            created_at: Utc::now(),
        }
    }

    /// 桃源镇 with 杨柳村, 青石乡 with 杨柳村 and 前进村.
    fn index() -> (VillageIndex, Uuid, Uuid, Uuid) {
        let t1 = region("桃源镇", "T1", RegionLevel::Township, None);
        let t2 = region("青石乡", "T2", RegionLevel::Township, None);
        let a = region("杨柳村", "V1", RegionLevel::Village, Some(t1.id));
        let b = region("杨柳村", "V2", RegionLevel::Village, Some(t2.id));
        let c = region("前进村", "V3", RegionLevel::Village, Some(t2.id));
        let ids = (a.id, b.id, c.id);
        (
            VillageIndex::new(vec![t1, t2, a, b, c]),
            ids.0,
            ids.1,
            ids.2,
        )
    }

    fn csv_sheet(text: &str) -> Sheet {
        read_file(text.as_bytes()).expect("reads")
    }

    fn plan_csv(text: &str) -> Plan {
        let (villages, ..) = index();
        plan(parse_sheet(csv_sheet(text)).expect("header"), &villages)
    }

    const HEADER: &str = "台账编号,村/社区,类别,户主姓名,联系电话,家庭住址,成员姓名,关系,性别,生日历法,出生日期,闰月,是否已故,去世日期,身份证号";

    #[test]
    fn headers_are_recognised_loosely() {
        assert_eq!(Col::from_header(" 台账编号* "), Some(Col::RegisterNo));
        assert_eq!(Col::from_header("村／社区"), Some(Col::Village));
        assert_eq!(Col::from_header("村（社区）"), Some(Col::Village));
        assert_eq!(Col::from_header("备注2"), None);
        for c in Col::ALL {
            assert_eq!(Col::from_header(c.header()), Some(c));
        }
    }

    #[test]
    fn missing_required_columns_are_reported_once_and_extras_ignored() {
        let sheet = csv_sheet("台账编号,类别,备用列\nA1,失独,x\nA2,失独,y\n");
        let parsed = parse_sheet(sheet).unwrap();
        assert!(parsed.rows.is_empty());
        let cols: Vec<_> = parsed.errors.iter().map(|e| e.column.as_str()).collect();
        assert_eq!(cols, ["村/社区", "户主姓名", "家庭住址"]);
        assert!(parsed.errors.iter().all(|e| e.row == 1));
    }

    #[test]
    fn header_may_follow_a_title_and_rows_keep_their_numbers() {
        let sheet = csv_sheet(&format!(
            "东城县计生特殊家庭台账\n{HEADER}\nA1,杨柳村,失独,张三,,一组\n\nA2,杨柳村,失独,李四,,二组\n"
        ));
        let parsed = parse_sheet(sheet).unwrap();
        let rows: Vec<u32> = parsed.rows.iter().map(|r| r.no).collect();
        // The blank line is row 4 in Excel too.
        assert_eq!(rows, [3, 5]);
    }

    #[test]
    fn no_header_is_a_file_error() {
        assert!(matches!(
            parse_sheet(csv_sheet("hello\nworld\n")),
            Err(ApiError::Validation { field, .. }) if field == "file"
        ));
    }

    #[test]
    fn csv_bom_quotes_and_tabs() {
        let mut bytes = b"\xEF\xBB\xBF".to_vec();
        bytes.extend("台账编号,走访备注\nA1,\"第一行\n第二行\"\nA2,x\n".as_bytes());
        let sheet = read_file(&bytes).unwrap();
        assert_eq!(sheet.rows[0].1[0], t("台账编号"));
        // The line break inside quotes does not start a spreadsheet row.
        assert_eq!(
            sheet.rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        let sheet = read_file("台账编号\r\nA1\r\n\r\n\"x\r\ny\"\r\nA3\r\n".as_bytes()).unwrap();
        assert_eq!(
            sheet.rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            [1, 2, 4, 5]
        );
        let sheet = read_file("台账编号\t类别\nA1\t失独\n".as_bytes()).unwrap();
        assert_eq!(sheet.rows[1].1, [t("A1"), t("失独")]);
    }

    #[test]
    fn gbk_and_binary_files_are_refused_clearly() {
        // "台账" in GBK.
        let err = read_file(b"\xCC\xA8\xD5\xCB,x\n").unwrap_err();
        assert!(err.to_string().contains("UTF-8"), "{err}");
        let err = read_file(b"%PDF-1.4 ...").unwrap_err();
        assert!(err.to_string().contains(".xlsx"), "{err}");
        assert!(read_file(b"PK\x03\x04garbage").is_err());
        assert!(read_file(b"").is_err());
    }

    #[test]
    fn too_many_rows_is_a_file_error() {
        let mut text = String::from("台账编号,村/社区\n");
        for i in 0..=MAX_ROWS {
            text.push_str(&format!("A{i},杨柳村\n"));
        }
        let err = read_file(text.as_bytes())
            .and_then(parse_sheet)
            .expect_err("refused");
        assert!(err.to_string().contains("20000"), "{err}");
    }

    #[test]
    fn xlsx_cells_numbers_and_dates() {
        use rust_xlsxwriter::{Format, Workbook};
        let mut wb = Workbook::new();
        let ws = wb.add_worksheet();
        ws.write_string(0, 0, "标题").unwrap();
        ws.write_string(2, 1, "台账编号").unwrap();
        ws.write_string(2, 2, "出生日期").unwrap();
        ws.write_number(3, 1, 17.0).unwrap();
        let date = Format::new().set_num_format("yyyy-mm-dd");
        ws.write_datetime_with_format(3, 2, NaiveDate::from_ymd_opt(1960, 6, 30).unwrap(), &date)
            .unwrap();
        ws.write_number(3, 3, 13800138000.0).unwrap();
        let bytes = wb.save_to_buffer().unwrap();
        let sheet = read_file(&bytes).unwrap();
        assert_eq!(sheet.rows.len(), 3);
        assert_eq!(sheet.rows[1].0, 3);
        let (no, cells) = &sheet.rows[2];
        assert_eq!(*no, 4);
        assert_eq!(cells[1].text(), "17");
        assert_eq!(
            cells[2],
            Cell::Date(NaiveDate::from_ymd_opt(1960, 6, 30).unwrap())
        );
        assert_eq!(cells[3].text(), "13800138000");
    }

    #[test]
    fn yes_no() {
        assert_eq!(parse_yes_no(&t("是")), Ok(Some(true)));
        assert_eq!(parse_yes_no(&t(" 否 ")), Ok(Some(false)));
        assert_eq!(parse_yes_no(&t("Y")), Ok(Some(true)));
        assert_eq!(parse_yes_no(&Cell::Number(0.0)), Ok(Some(false)));
        assert_eq!(parse_yes_no(&Cell::Bool(true)), Ok(Some(true)));
        assert_eq!(parse_yes_no(&t("")), Ok(None));
        assert!(parse_yes_no(&t("也许")).is_err());
    }

    #[test]
    fn dates() {
        let d = |y, m, d| Some(NaiveDate::from_ymd_opt(y, m, d).unwrap());
        assert_eq!(parse_date(&t("2010-05-01")), Ok(d(2010, 5, 1)));
        assert_eq!(parse_date(&t("2010/5/1")), Ok(d(2010, 5, 1)));
        assert_eq!(parse_date(&t("2010年5月1日")), Ok(d(2010, 5, 1)));
        assert_eq!(parse_date(&t("20100501")), Ok(d(2010, 5, 1)));
        assert_eq!(parse_date(&t("2010-05-01 00:00:00")), Ok(d(2010, 5, 1)));
        assert_eq!(
            parse_date(&Cell::Date(d(2010, 5, 1).unwrap())),
            Ok(d(2010, 5, 1))
        );
        assert_eq!(parse_date(&Cell::Empty), Ok(None));
        assert!(parse_date(&t("2010-02-30")).is_err());
        assert!(parse_date(&t("5/1/2010")).is_err());
        assert!(parse_date(&t("去年")).is_err());
    }

    #[test]
    fn birthdays_keep_lunar_dates_as_written() {
        assert_eq!(
            parse_birth(&t("1960-06-30")),
            Ok((Some(1960), Some(6), Some(30)))
        );
        assert_eq!(
            parse_birth(&t("1960/2/30")),
            Ok((Some(1960), Some(2), Some(30)))
        );
        assert_eq!(parse_birth(&t("08-15")), Ok((None, Some(8), Some(15))));
        assert_eq!(parse_birth(&t("1960")), Ok((Some(1960), None, None)));
        assert_eq!(parse_birth(&t("1960-06")), Ok((Some(1960), Some(6), None)));
        assert_eq!(
            parse_birth(&Cell::Number(19600630.0)),
            Ok((Some(1960), Some(6), Some(30)))
        );
        assert!(parse_birth(&t("六月三十")).is_err());
        for (y, m, d) in [
            (Some(1960), Some(6), Some(30)),
            (None, Some(8), Some(15)),
            (Some(1960), None, None),
        ] {
            assert_eq!(parse_birth(&t(&birth_text(y, m, d))), Ok((y, m, d)));
        }
    }

    #[test]
    fn categories_and_relations_by_their_usual_names() {
        assert_eq!(parse_category("失独"), Some(FamilyCategory::Bereaved));
        assert_eq!(parse_category("失独家庭"), Some(FamilyCategory::Bereaved));
        assert_eq!(parse_category("bereaved"), Some(FamilyCategory::Bereaved));
        assert_eq!(
            parse_category("纯女户"),
            Some(FamilyCategory::DaughtersOnly)
        );
        assert_eq!(parse_category("富裕户"), None);
        assert_eq!(parse_relation("女儿"), Some(MemberRelation::Child));
        assert_eq!(parse_relation("配偶"), Some(MemberRelation::Spouse));
        assert_eq!(parse_relation("邻居"), None);
    }

    #[test]
    fn villages_by_name_or_code() {
        let (villages, a, _, c) = index();
        assert_eq!(villages.resolve("前进村"), Ok(c));
        assert_eq!(villages.resolve("V1"), Ok(a));
        let err = villages.resolve("杨柳村").unwrap_err();
        assert!(
            err.contains("桃源镇杨柳村") && err.contains("青石乡杨柳村"),
            "{err}"
        );
        assert!(
            villages
                .resolve("桃源镇")
                .unwrap_err()
                .contains("不是村/社区")
        );
        assert!(
            villages
                .resolve("丰收村")
                .unwrap_err()
                .contains("不在您的管辖范围内")
        );
    }

    #[test]
    fn rows_with_one_number_form_one_family_from_its_first_row() {
        let plan = plan_csv(&format!(
            "{HEADER}\n\
             A1,前进村,失独,张建国,13912345678,一组3号,张建国,父亲,男,农历,1960-06-30,是,否,,\n\
             A2,前进村,伤残,王五,,二组,王五,父亲,男,,,,,,\n\
             A1,,,,,,李秀英,母亲,女,公历,1962/3/8,,,,110105********002X\n\
             A1,前进村,失独,张建国,,,张明,子女,男,,1985-08-15,,是,2010-05-01,\n"
        ));
        assert_eq!(plan.errors, []);
        assert_eq!((plan.families, plan.members), (2, 4));
        let f = &plan.ready[0].family;
        assert_eq!(f.register_no, "A1");
        assert_eq!(f.phone.as_deref(), Some("13912345678"));
        assert_eq!(f.members.len(), 3);
        let father = &f.members[0];
        assert_eq!(father.birth_calendar, Some(BirthCalendar::Lunar));
        assert_eq!((father.birth_month, father.birth_day), (Some(6), Some(30)));
        assert!(father.birth_leap_month && father.primary_contact);
        // The masked ID number is skipped, not refused.
        assert_eq!(f.members[1].id_number, None);
        assert!(f.members[2].deceased);
        assert_eq!(plan.ready[1].first_row, 3);
    }

    #[test]
    fn every_bad_row_is_reported_in_the_coordinators_terms() {
        let plan = plan_csv(&format!(
            "{HEADER}\n\
             A1,前进村,失独,张建国,12345,,张建国,父亲,男,,,,,,\n\
             A2,丰收村,富裕户,王五,,二组,王五,爷爷,不详,,1960-13-01,,否,2010-05-01,110105194912310021\n\
             A1,前进村,伤残,,,,,,,,,,,,\n\
             ,前进村,失独,赵六,,三组,,,,,,,,,\n\
             A3,杨柳村,失独,赵六,,三组,,,,,,也许,,,\n"
        ));
        let got: Vec<(u32, &str)> = plan
            .errors
            .iter()
            .map(|e| (e.row, e.column.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (2, "联系电话"),
                (2, "家庭住址"),
                (3, "村/社区"),
                (3, "类别"),
                (3, "关系"),
                (3, "性别"),
                (3, "身份证号"),
                (3, "出生日期"),
                (3, "去世日期"),
                (4, "类别"),
                (5, "台账编号"),
                (6, "村/社区"),
                (6, "成员姓名"),
            ],
            "{:#?}",
            plan.errors
        );
        let msg = |row, col| {
            plan.errors
                .iter()
                .find(|e| e.row == row && e.column == col)
                .map(|e| e.message.clone())
                .unwrap()
        };
        assert_eq!(msg(2, "联系电话"), "电话号码格式不正确");
        assert_eq!(msg(2, "家庭住址"), "家庭住址 不能为空");
        assert!(msg(4, "类别").contains("第 2 行为“失独”"));
        assert!(msg(3, "出生日期").contains("出生月份"));
        assert!(plan.ready.is_empty());
    }

    #[test]
    fn numeric_id_numbers_are_refused_with_a_reason() {
        let (villages, ..) = index();
        let row = Row::new(
            2,
            &[
                (Col::RegisterNo, t("A1")),
                (Col::Village, t("前进村")),
                (Col::Category, t("失独")),
                (Col::HeadName, t("张三")),
                (Col::Address, t("一组")),
                (Col::MemberName, t("张三")),
                (Col::Relation, t("父亲")),
                (Col::IdNumber, Cell::Number(110105194912310020.0)),
            ],
        );
        let plan = plan(
            Parsed {
                rows: vec![row],
                errors: vec![],
            },
            &villages,
        );
        assert_eq!(plan.errors.len(), 1);
        assert!(plan.errors[0].message.contains("文本"));
    }

    #[test]
    fn more_than_twenty_members_is_reported_on_the_21st() {
        let mut text = format!("{HEADER}\n");
        for i in 0..21 {
            text.push_str(&format!("A1,前进村,失独,张三,,一组,成员{i},其他,,,,,,,\n"));
        }
        let plan = plan_csv(&text);
        assert_eq!(plan.errors.len(), 1, "{:?}", plan.errors);
        assert_eq!(
            (plan.errors[0].row, plan.errors[0].column.as_str()),
            (22, "成员姓名")
        );
    }

    #[test]
    fn an_export_reads_back_as_the_same_family() {
        let (villages, _, _, c) = index();
        let now = Utc::now();
        let f = family::Model {
            id: Uuid::new_v4(),
            region_id: c,
            register_no: "340101-000001".into(),
            category: FamilyCategory::Bereaved,
            head_name: "张建国".into(),
            phone: Some("13700000001".into()),
            address: "前进村3组12号".into(),
            lat: Some(31.823_456_789),
            lng: Some(117.234_567_891),
            care_level: 3,
            status: entity::FamilyStatus::Active,
            consent_data: true,
            consent_sms: true,
            consent_wechat: false,
            consent_at: None,
            do_not_disturb: json!({}),
            visitor_notes: "老人喜欢下午来访".into(),
            counsel_notes: "不导出".into(),
            created_at: now,
            updated_at: now,
            care_overrides: None,
            plan_stamp: None,
        };
        let member =
            |name: &str, relation, cal, (y, m, d), leap, deceased, death| family_member::Model {
                id: Uuid::new_v4(),
                family_id: f.id,
                name: name.into(),
                relation,
                gender: Some("男".into()),
                phone: None,
                id_number_enc: None,
                id_number_masked: Some("110105********002X".into()),
                birth_calendar: cal,
                birth_year: y,
                birth_month: m,
                birth_day: d,
                birth_leap_month: leap,
                deceased,
                death_date: death,
                primary_contact: relation == MemberRelation::Father,
                user_id: None,
                created_at: now,
            };
        let members = [
            member(
                "张建国",
                MemberRelation::Father,
                BirthCalendar::Lunar,
                (Some(1960), Some(6), Some(30)),
                true,
                false,
                None,
            ),
            member(
                "张明",
                MemberRelation::Child,
                BirthCalendar::Solar,
                (None, Some(2), Some(29)),
                false,
                true,
                NaiveDate::from_ymd_opt(2010, 5, 1),
            ),
        ];
        let mut rows = vec![(0u32, Col::ALL.iter().map(|c| t(c.header())).collect())];
        rows.extend(
            export_rows(&f, "前进村", &members)
                .into_iter()
                .enumerate()
                .map(|(i, r)| (i as u32 + 2, r)),
        );
        let plan = plan(parse_sheet(Sheet { rows }).unwrap(), &villages);
        assert_eq!(plan.errors, []);
        let got = &plan.ready[0].family;
        assert_eq!(
            (
                got.region_id,
                got.register_no.as_str(),
                got.category,
                got.head_name.as_str()
            ),
            (c, "340101-000001", FamilyCategory::Bereaved, "张建国")
        );
        assert_eq!((got.lat, got.lng, got.care_level), (f.lat, f.lng, Some(3)));
        assert_eq!((got.consent_sms, got.consent_wechat), (true, false));
        assert_eq!(got.visitor_notes.as_deref(), Some("老人喜欢下午来访"));
        for (m, g) in members.iter().zip(&got.members) {
            assert_eq!(g.name, m.name);
            assert_eq!(g.relation, m.relation);
            assert_eq!(g.birth_calendar, Some(m.birth_calendar));
            assert_eq!(
                (g.birth_year, g.birth_month, g.birth_day),
                (m.birth_year, m.birth_month, m.birth_day)
            );
            assert_eq!(
                (g.birth_leap_month, g.deceased, g.death_date),
                (m.birth_leap_month, m.deceased, m.death_date)
            );
            assert_eq!(g.primary_contact, m.primary_contact);
            assert_eq!(g.id_number, None);
        }
    }

    #[test]
    fn a_family_without_members_exports_one_row() {
        let now = Utc::now();
        let f = family::Model {
            id: Uuid::new_v4(),
            region_id: Uuid::new_v4(),
            register_no: "1".into(),
            category: FamilyCategory::EmptyNest,
            head_name: "王".into(),
            phone: None,
            address: "x".into(),
            lat: None,
            lng: None,
            care_level: 2,
            status: entity::FamilyStatus::Active,
            consent_data: true,
            consent_sms: false,
            consent_wechat: false,
            consent_at: None,
            do_not_disturb: json!({}),
            visitor_notes: String::new(),
            counsel_notes: String::new(),
            created_at: now,
            updated_at: now,
            care_overrides: None,
            plan_stamp: None,
        };
        let rows = export_rows(&f, "村", &[]);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].len(), NCOLS);
        assert!(rows[0][Col::MemberName as usize].is_blank());
        assert!(write_xlsx(&rows).unwrap().starts_with(b"PK"));
    }

    #[test]
    fn village_labels_prefer_unique_names() {
        let (villages, a, b, c) = index();
        let all: Vec<region::Model> = villages
            .regions
            .into_iter()
            .filter(|r| r.level == RegionLevel::Village)
            .collect();
        let labels = village_labels(&all);
        assert_eq!(labels[&a], "V1");
        assert_eq!(labels[&b], "V2");
        assert_eq!(labels[&c], "前进村");
    }
}
