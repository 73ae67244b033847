//! Audits (stored reports): persisting one analysis job's reports in one transaction, and
//! reading them back with everything users filter by.

use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::types::ToSql;

use super::reference::{self, Named, Road};
use super::transcription::{self, NewTranscription};
use super::{Connection, GenericClient, Transaction};
use crate::domain::AuditMeta;
use crate::{Error, Result, metrics};

/// Where an audit's transcript comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TranscriptionSource {
    /// Already stored (the pipeline's case: transcribe stored it, analyze refers to it).
    Stored(i64),
    /// To be stored now, or reused if the same recording or text is already there (boxed: it
    /// is large beside an id).
    New(Box<NewTranscription>),
}

/// What a report pass produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportBody {
    Narrative(String),
    /// A metrics object, validated against the schema of its (report type, building).
    Metrics(Value),
}

/// A quotation found in a report, and whether it is a verbatim part of the transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub text: String,
    pub verified: bool,
}

/// One kept pass of a report type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportInput {
    /// 1-based order within the report type; unique within a submission.
    pub pass: i16,
    pub title: Option<String>,
    pub body: ReportBody,
    pub prompt_id: Option<i64>,
    pub engine: Option<String>,
    #[serde(default)]
    pub quotes: Vec<Quote>,
}

/// Everything one analysis job stores: the reports of one (scenario, report type, building)
/// for one recording, with the recording's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditSubmission {
    /// Scenario by stored name or id (`Интервью` or `interview`).
    pub scenario: String,
    /// Report type by stored name or id (`Общие факторы` or `common-factors`).
    pub report_type: String,
    /// Building of the report by stored name or id; `non-building` for building-independent
    /// report types.
    pub building: String,
    pub meta: AuditMeta,
    /// The building type of the place (name or id). Defaults to the report's building; needed
    /// when a place is given for a `non-building` report.
    pub place_building: Option<String>,
    pub transcription: TranscriptionSource,
    pub reports: Vec<ReportInput>,
    pub analysis_job_id: Option<i64>,
}

/// Ids of what a submission wrote or reused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersistedAudits {
    pub transcription_id: i64,
    /// One per report, in the order given.
    pub audit_ids: Vec<i64>,
    pub employee_id: Option<i64>,
    pub place_id: Option<i64>,
    pub city_id: Option<i64>,
    pub client_id: Option<i64>,
    pub zone_ids: Vec<i64>,
}

/// The steps of [`persist_in`], in order; a checkpoint runs after each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersistStep {
    Road,
    Employee,
    Place,
    Zones,
    City,
    Client,
    Transcription,
    Audits,
    UserRoad,
}

impl PersistStep {
    pub const ALL: [PersistStep; 9] = [
        PersistStep::Road,
        PersistStep::Employee,
        PersistStep::Place,
        PersistStep::Zones,
        PersistStep::City,
        PersistStep::Client,
        PersistStep::Transcription,
        PersistStep::Audits,
        PersistStep::UserRoad,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PersistStep::Road => "road",
            PersistStep::Employee => "employee",
            PersistStep::Place => "place",
            PersistStep::Zones => "zones",
            PersistStep::City => "city",
            PersistStep::Client => "client",
            PersistStep::Transcription => "transcription",
            PersistStep::Audits => "audits",
            PersistStep::UserRoad => "user_road",
        }
    }
}

/// Called after each step; an error aborts the transaction (tests inject faults with it).
pub type Checkpoint<'a> = &'a (dyn Fn(PersistStep) -> Result<()> + Sync);

/// Persists a submission in one transaction: nothing is visible until all of it is.
/// Persisting the same job again replaces its reports and leaves one set of rows.
pub async fn persist(
    conn: &mut Connection,
    submission: &AuditSubmission,
) -> Result<PersistedAudits> {
    let tx = conn.transaction().await?;
    let persisted = persist_in(&tx, submission, &|_| Ok(())).await?;
    tx.commit().await?;
    Ok(persisted)
}

/// The body of [`persist`] inside a caller's transaction (so that analysis can add its chunks
/// and mark its job done in the same commit).
pub async fn persist_in(
    tx: &Transaction<'_>,
    s: &AuditSubmission,
    checkpoint: Checkpoint<'_>,
) -> Result<PersistedAudits> {
    let road = reference::resolve_road(tx, &s.scenario, &s.report_type, &s.building).await?;
    validate_reports(&road, &s.reports)?;
    checkpoint(PersistStep::Road)?;

    // Names are written one at a time in one global order (employee, place, zones sorted by
    // name, city, client): a transaction only ever waits for another's uncommitted insert of
    // a name that comes earlier in that order, so concurrent submissions cannot deadlock.
    // The transcription comes last in that order (two submissions of one recording may
    // insert it at once).
    let mut zones: Vec<&str> = s.meta.zones.iter().map(String::as_str).collect();
    zones.sort_unstable();
    zones.dedup();
    let employee_id = optional_name(tx, Named::Employee, s.meta.employee.as_deref()).await?;
    checkpoint(PersistStep::Employee)?;
    let place_id = match s.meta.place.as_deref() {
        None => None,
        Some(place) => {
            let building_type = place_building_type(tx, &road, s.place_building.as_deref()).await?;
            Some(reference::get_or_create_place(tx, place, &building_type).await?)
        }
    };
    checkpoint(PersistStep::Place)?;
    let mut zone_ids = Vec::with_capacity(zones.len());
    for zone in &zones {
        zone_ids.push(reference::get_or_create(tx, Named::Zone, zone).await?);
    }
    checkpoint(PersistStep::Zones)?;
    let city_id = optional_name(tx, Named::City, s.meta.city.as_deref()).await?;
    checkpoint(PersistStep::City)?;
    let client_id = optional_name(tx, Named::Client, s.meta.client.as_deref()).await?;
    checkpoint(PersistStep::Client)?;
    let transcription_id = match &s.transcription {
        TranscriptionSource::Stored(id) => {
            if !transcription::exists(tx, *id).await? {
                return Err(Error::UnknownTranscription { id: *id });
            }
            *id
        }
        TranscriptionSource::New(new) => transcription::get_or_create(tx, new).await?.0,
    };
    checkpoint(PersistStep::Transcription)?;
    let link_zones = async {
        match place_id {
            Some(place_id) => reference::link_place_zones(tx, place_id, &zone_ids).await,
            None => Ok(()),
        }
    };

    let passes: Vec<i16> = s.reports.iter().map(|r| r.pass).collect();
    let stale = tx.prepare_cached(DELETE_STALE_PASSES).await?;
    let upsert = tx.prepare_cached(UPSERT_AUDIT).await?;
    let delete_stale = async {
        tx.execute(
            &stale,
            &[
                &transcription_id,
                &road.report_type_id,
                &road.building_id,
                &passes,
            ],
        )
        .await
        .map_err(Error::from)
    };
    // In pass order, so that two workers on the same job lock rows in the same order.
    let mut order: Vec<&ReportInput> = s.reports.iter().collect();
    order.sort_by_key(|r| r.pass);
    let ids = futures::future::try_join_all(order.into_iter().map(|report| {
        upsert_audit(
            tx,
            &upsert,
            report,
            &road,
            s,
            [employee_id, client_id, place_id, city_id],
            transcription_id,
        )
    }));
    let ((), _stale, ids_by_pass) = tokio::try_join!(link_zones, delete_stale, ids)?;
    // Back to the order the reports were given in.
    let audit_ids: Vec<i64> = s
        .reports
        .iter()
        .map(|r| {
            ids_by_pass
                .iter()
                .find(|(pass, _)| *pass == r.pass)
                .map_or(0, |(_, id)| *id)
        })
        .collect();
    let zones_stmt = tx.prepare_cached(REPLACE_AUDIT_ZONES).await?;
    let road_stmt = tx.prepare_cached(INSERT_USER_ROAD).await?;
    let zone_params: [&(dyn ToSql + Sync); 2] = [&audit_ids, &zone_ids];
    let road_params: [&(dyn ToSql + Sync); 4] = [
        &audit_ids,
        &road.scenario_id,
        &road.report_type_id,
        &road.building_id,
    ];
    tokio::try_join!(
        tx.execute(&zones_stmt, &zone_params),
        tx.execute(&road_stmt, &road_params),
    )?;
    checkpoint(PersistStep::Audits)?;
    checkpoint(PersistStep::UserRoad)?;

    Ok(PersistedAudits {
        transcription_id,
        audit_ids,
        employee_id,
        place_id,
        city_id,
        client_id,
        zone_ids,
    })
}

/// Inserts or replaces one pass; returns (pass, audit id).
async fn upsert_audit(
    tx: &Transaction<'_>,
    stmt: &tokio_postgres::Statement,
    report: &ReportInput,
    road: &Road,
    s: &AuditSubmission,
    [employee_id, client_id, place_id, city_id]: [Option<i64>; 4],
    transcription_id: i64,
) -> Result<(i16, i64)> {
    let (text, kind, metrics) = match &report.body {
        ReportBody::Narrative(text) => (text.clone(), "narrative", None),
        ReportBody::Metrics(value) => (pretty_json(value), "metrics", Some(value)),
    };
    let quotes = serde_json::to_value(&report.quotes).unwrap_or(Value::Array(Vec::new()));
    let unverified =
        i32::try_from(report.quotes.iter().filter(|q| !q.verified).count()).unwrap_or(i32::MAX);
    let row = tx
        .query_one(
            stmt,
            &[
                &text,
                &employee_id,
                &client_id,
                &place_id,
                &s.meta.date,
                &city_id,
                &transcription_id,
                &road.report_type_id,
                &road.building_id,
                &report.pass,
                &report.title,
                &kind,
                &metrics,
                &report.prompt_id,
                &report.engine,
                &s.analysis_job_id,
                &quotes,
                &unverified,
            ],
        )
        .await?;
    Ok((report.pass, row.get(0)))
}

const DELETE_STALE_PASSES: &str = "
DELETE FROM audit
WHERE transcription_id = $1 AND report_type_id = $2 AND building_id = $3 AND pass <> ALL ($4)";

const UPSERT_AUDIT: &str = "
INSERT INTO audit (audit, employee_id, client_id, place_id, audit_date, city_id, transcription_id,
                   report_type_id, building_id, pass, pass_title, kind, metrics, prompt_id, engine,
                   analysis_job_id, quotes, unverified_quotes)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
ON CONFLICT (transcription_id, report_type_id, building_id, pass) DO UPDATE SET
    audit = EXCLUDED.audit, employee_id = EXCLUDED.employee_id, client_id = EXCLUDED.client_id,
    place_id = EXCLUDED.place_id, audit_date = EXCLUDED.audit_date, city_id = EXCLUDED.city_id,
    pass_title = EXCLUDED.pass_title, kind = EXCLUDED.kind, metrics = EXCLUDED.metrics,
    prompt_id = EXCLUDED.prompt_id, engine = EXCLUDED.engine,
    analysis_job_id = EXCLUDED.analysis_job_id, quotes = EXCLUDED.quotes,
    unverified_quotes = EXCLUDED.unverified_quotes, updated_at = now()
RETURNING audit_id";

const REPLACE_AUDIT_ZONES: &str = "
WITH gone AS (DELETE FROM audit_zone
              WHERE audit_id = ANY ($1::bigint[]) AND zone_id <> ALL ($2::bigint[]))
INSERT INTO audit_zone (audit_id, zone_id)
SELECT a, z FROM unnest($1::bigint[]) AS a CROSS JOIN unnest($2::bigint[]) AS z
ON CONFLICT DO NOTHING";

const INSERT_USER_ROAD: &str = "
INSERT INTO user_road (audit_id, scenario_id, report_type_id, building_id)
SELECT a, $2, $3, $4 FROM unnest($1::bigint[]) AS a
ON CONFLICT (audit_id) DO NOTHING";

fn pretty_json(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

fn validate_reports(road: &Road, reports: &[ReportInput]) -> Result<()> {
    if reports.is_empty() {
        return Err(Error::InvalidInput {
            field: "reports",
            reason: "at least one report is required".into(),
        });
    }
    let mut passes: Vec<i16> = reports.iter().map(|r| r.pass).collect();
    passes.sort_unstable();
    if let Some(w) = passes.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::InvalidInput {
            field: "reports",
            reason: format!("pass {} appears twice", w[0]),
        });
    }
    for report in reports {
        if report.pass < 1 {
            return Err(Error::InvalidInput {
                field: "reports",
                reason: format!("pass {} is not a positive number", report.pass),
            });
        }
        match &report.body {
            ReportBody::Narrative(text) if text.trim().is_empty() => {
                return Err(Error::InvalidInput {
                    field: "reports",
                    reason: format!("pass {} has an empty text", report.pass),
                });
            }
            ReportBody::Narrative(text) if text.contains('\0') => {
                return Err(Error::InvalidInput {
                    field: "reports",
                    reason: format!("pass {} contains a NUL character", report.pass),
                });
            }
            ReportBody::Narrative(_) => {}
            ReportBody::Metrics(value) => {
                metrics::validate(&road.report_type, &road.building, value)?
            }
        }
    }
    Ok(())
}

async fn optional_name(
    tx: &Transaction<'_>,
    kind: Named,
    name: Option<&str>,
) -> Result<Option<i64>> {
    match name {
        None => Ok(None),
        Some(name) => Ok(Some(reference::get_or_create(tx, kind, name).await?)),
    }
}

async fn place_building_type(
    tx: &Transaction<'_>,
    road: &Road,
    given: Option<&str>,
) -> Result<String> {
    match given {
        Some(building) => {
            let building_type = reference::building_type(tx, building).await?;
            if building_type == "non-building" {
                return Err(Error::InvalidInput {
                    field: "place_building",
                    reason: "a place must be a hotel, restaurant or spa".into(),
                });
            }
            Ok(building_type)
        }
        None if road.building != "non-building" => Ok(road.building_type.clone()),
        None => Err(Error::InvalidInput {
            field: "place_building",
            reason: format!(
                "the place's building type is required for the building-independent report {}",
                road.report_type
            ),
        }),
    }
}

// Reading ---------------------------------------------------------------------------------

/// A stored report with the names users filter and group by (the old system's query).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRow {
    pub audit_id: i64,
    pub audit_text: String,
    pub audit_date: NaiveDate,
    pub transcription_id: i64,
    pub audio_file_name: String,
    pub number_audio: Option<i32>,
    pub employee_name: Option<String>,
    pub client_name: Option<String>,
    pub place_name: Option<String>,
    /// The place's building type.
    pub building_type: Option<String>,
    /// Zones this audit covers.
    pub zone_names: Vec<String>,
    pub city_name: Option<String>,
    pub scenario_name: String,
    pub scenario: String,
    pub report_type_desc: String,
    pub report_type: String,
    /// The report's building id (`non-building` for building-independent reports).
    pub building: String,
    pub pass: i16,
    pub pass_title: Option<String>,
    pub kind: String,
    pub metrics: Option<Value>,
    pub unverified_quotes: i32,
    pub created_at: DateTime<Utc>,
}

/// Which audits to list. Names may be stored names or ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    pub scenario: String,
    pub report_type: Option<String>,
    /// The report's building, or the building type of its place.
    pub building: Option<String>,
    pub city: Option<String>,
    pub date_from: Option<NaiveDate>,
    pub date_to: Option<NaiveDate>,
}

/// One page of a keyset-paginated listing, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next_after: Option<i64>,
}

const SELECT_AUDIT: &str = "
SELECT a.audit_id, a.audit, a.audit_date, a.transcription_id, t.audio_file_name, t.number_audio,
       e.employee_name, c.client_name, p.place_name, p.building_type,
       ARRAY(SELECT z.zone_name FROM audit_zone az JOIN zone z ON z.zone_id = az.zone_id
             WHERE az.audit_id = a.audit_id ORDER BY z.zone_name) AS zone_names,
       ci.city_name, s.scenario_name, s.code, rt.report_type_desc, rt.code, b.code,
       a.pass, a.pass_title, a.kind, a.metrics, a.unverified_quotes, a.created_at
FROM audit a
JOIN user_road ur ON ur.audit_id = a.audit_id
JOIN scenario s ON s.scenario_id = ur.scenario_id
JOIN report_type rt ON rt.report_type_id = ur.report_type_id
JOIN buildings b ON b.building_id = ur.building_id
JOIN transcription t ON t.transcription_id = a.transcription_id
LEFT JOIN employee e ON e.employee_id = a.employee_id
LEFT JOIN client c ON c.client_id = a.client_id
LEFT JOIN place p ON p.place_id = a.place_id
LEFT JOIN city ci ON ci.city_id = a.city_id";

static GET_SQL: LazyLock<String> =
    LazyLock::new(|| format!("{SELECT_AUDIT}\nWHERE a.audit_id = $1"));

/// The listing's SQL and parameters with a condition for each filter given, and none for
/// those left out. (One statement with `$n IS NULL OR ...` for every filter looks simpler,
/// but PostgreSQL then re-plans it on every call, because a custom plan for the given values
/// always looks cheaper than the generic one: at 10,000 audits planning took 40 ms and the
/// query 0.25 ms. Each combination of filters is a statement of its own, prepared once per
/// connection, whose generic plan PostgreSQL settles on.)
fn list_query<'a>(
    filter: &'a AuditFilter,
    building_type: &'a Option<String>,
    after: &'a Option<i64>,
    fetch: i64,
) -> (String, Vec<&'a (dyn ToSql + Sync)>) {
    let mut sql = format!("{SELECT_AUDIT}\nWHERE (s.scenario_name = $1 OR s.code = $1)");
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&filter.scenario];
    // Appends `AND <condition>` with `$n` standing for `value`'s parameter number.
    let mut and = |value: &'a (dyn ToSql + Sync), condition: &str| {
        params.push(value);
        let n = format!("${}", params.len());
        sql.push_str("\n  AND ");
        sql.push_str(&condition.replace("$n", &n));
    };
    if let Some(report_type) = &filter.report_type {
        and(report_type, "(rt.report_type_desc = $n OR rt.code = $n)");
    }
    if let Some(building) = &filter.building {
        // The report's building, or the building type of its place (a place typed `Отель`
        // matches `hotel`): `building_type` is the type the code names.
        and(
            building,
            "(b.building_type = $n OR b.code = $n OR p.building_type = $t)",
        );
    }
    if let Some(city) = &filter.city {
        and(city, "ci.city_name = $n");
    }
    if let Some(from) = &filter.date_from {
        and(from, "a.audit_date >= $n");
    }
    if let Some(to) = &filter.date_to {
        and(to, "a.audit_date <= $n");
    }
    if let Some(after) = after {
        and(after, "a.audit_id < $n");
    }
    // The place type's parameter, referenced by the building condition.
    if sql.contains("$t") {
        params.push(building_type);
        sql = sql.replace("$t", &format!("${}", params.len()));
    }
    // The page size is written into the statement (it is a checked number): with `LIMIT $n`
    // the generic plan assumes a tenth of all rows and looks dearer than a custom one, so
    // PostgreSQL would plan every call again.
    sql.push_str(&format!("\nORDER BY a.audit_id DESC\nLIMIT {fetch}"));
    (sql, params)
}

/// Audits of a scenario matching the filter, newest first, `limit` (1-1000) per page.
pub async fn list(
    client: &impl GenericClient,
    filter: &AuditFilter,
    after: Option<i64>,
    limit: u16,
) -> Result<Page<AuditRow>> {
    if !(1..=1000).contains(&limit) {
        return Err(Error::InvalidInput {
            field: "limit",
            reason: format!("{limit} is not between 1 and 1000"),
        });
    }
    if let (Some(from), Some(to)) = (filter.date_from, filter.date_to)
        && from > to
    {
        return Err(Error::InvalidInput {
            field: "date_from",
            reason: format!("{from} is after date_to {to}"),
        });
    }
    // One extra row tells whether another page exists.
    let fetch = i64::from(limit) + 1;
    // The building type a building code names (`hotel` -> `Отель`), for places' types.
    let building_type: Option<String> = match &filter.building {
        Some(b) => client
            .query_opt(
                "SELECT building_type FROM buildings WHERE building_type = $1 OR code = $1",
                &[b],
            )
            .await?
            .map(|r| r.get(0)),
        None => None,
    };
    let (sql, params) = list_query(filter, &building_type, &after, fetch);
    let stmt = client.prepare_cached(&sql).await?;
    let rows = client.query(&stmt, &params).await?;
    let mut items: Vec<AuditRow> = rows.iter().map(audit_row).collect();
    if items.is_empty() {
        check_filter_names(client, filter).await?;
    }
    let next_after = if items.len() > usize::from(limit) {
        items.truncate(usize::from(limit));
        items.last().map(|a| a.audit_id)
    } else {
        None
    };
    Ok(Page { items, next_after })
}

/// An empty listing is ambiguous: say so when it is empty because a name is unknown.
async fn check_filter_names(client: &impl GenericClient, filter: &AuditFilter) -> Result<()> {
    let stmt = client
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM scenario WHERE scenario_name = $1 OR code = $1),
                    $2::text IS NULL OR EXISTS (SELECT 1 FROM report_type rt
                        JOIN scenario s ON s.scenario_id = rt.scenario_id
                        WHERE (s.scenario_name = $1 OR s.code = $1)
                          AND (rt.report_type_desc = $2 OR rt.code = $2)),
                    $3::text IS NULL OR EXISTS (SELECT 1 FROM buildings
                        WHERE building_type = $3 OR code = $3)",
        )
        .await?;
    let row = client
        .query_one(
            &stmt,
            &[&filter.scenario, &filter.report_type, &filter.building],
        )
        .await?;
    if !row.get::<_, bool>(0) {
        return Err(Error::UnknownScenario {
            name: filter.scenario.clone(),
        });
    }
    if !row.get::<_, bool>(1) {
        return Err(Error::UnknownReportType {
            name: filter.report_type.clone().unwrap_or_default(),
            scenario: filter.scenario.clone(),
        });
    }
    if !row.get::<_, bool>(2) {
        return Err(Error::UnknownBuilding {
            name: filter.building.clone().unwrap_or_default(),
        });
    }
    Ok(())
}

/// One audit by id.
pub async fn get(client: &impl GenericClient, audit_id: i64) -> Result<Option<AuditRow>> {
    let stmt = client.prepare_cached(&GET_SQL).await?;
    Ok(client
        .query_opt(&stmt, &[&audit_id])
        .await?
        .as_ref()
        .map(audit_row))
}

fn audit_row(row: &tokio_postgres::Row) -> AuditRow {
    AuditRow {
        audit_id: row.get(0),
        audit_text: row.get(1),
        audit_date: row.get(2),
        transcription_id: row.get(3),
        audio_file_name: row.get(4),
        number_audio: row.get(5),
        employee_name: row.get(6),
        client_name: row.get(7),
        place_name: row.get(8),
        building_type: row.get(9),
        zone_names: row.get(10),
        city_name: row.get(11),
        scenario_name: row.get(12),
        scenario: row.get(13),
        report_type_desc: row.get(14),
        report_type: row.get(15),
        building: row.get(16),
        pass: row.get(17),
        pass_title: row.get(18),
        kind: row.get(19),
        metrics: row.get(20),
        unverified_quotes: row.get(21),
        created_at: row.get(22),
    }
}

/// How a stored report was made and what it quotes: what [`AuditRow`] leaves out because
/// listings do not need it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditProvenance {
    /// Quotations found in the report, each checked against the transcript.
    pub quotes: Vec<Quote>,
    pub engine: Option<String>,
    pub prompt_id: Option<i64>,
    pub analysis_job_id: Option<i64>,
    /// The recording the transcript came from, when the pipeline made it.
    pub recording_id: Option<i64>,
    pub updated_at: DateTime<Utc>,
}

/// The provenance and quotes of one audit; `None` when there is no such audit.
pub async fn provenance(
    client: &impl GenericClient,
    audit_id: i64,
) -> Result<Option<AuditProvenance>> {
    let stmt = client
        .prepare_cached(
            "SELECT a.quotes, a.engine, a.prompt_id, a.analysis_job_id, t.recording_id,
                    a.updated_at
             FROM audit a JOIN transcription t ON t.transcription_id = a.transcription_id
             WHERE a.audit_id = $1",
        )
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&audit_id]).await? else {
        return Ok(None);
    };
    let quotes: Value = row.get(0);
    Ok(Some(AuditProvenance {
        quotes: serde_json::from_value(quotes).map_err(|e| Error::InvalidInput {
            field: "quotes",
            reason: e.to_string(),
        })?,
        engine: row.get(1),
        prompt_id: row.get(2),
        analysis_job_id: row.get(3),
        recording_id: row.get(4),
        updated_at: row.get(5),
    }))
}
