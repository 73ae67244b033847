//! Analysis jobs: one per (transcription, report type, building). The natural key makes a
//! job's id deterministic, so creating or sending a job twice is harmless.

use serde::{Deserialize, Serialize};

use super::GenericClient;
use crate::{Error, Result};

/// A job as it travels on the analyze queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub analysis_job_id: i64,
    pub recording_id: Option<i64>,
    pub transcription_id: i64,
    pub scenario: String,
    pub report_type: String,
    pub building: String,
}

const WANTED: &str = "
SELECT rt.report_type_id, b.building_id, s.code, rt.code, rt.report_type_desc, b.code
FROM report_type rt
JOIN scenario s ON s.scenario_id = rt.scenario_id
JOIN buildings_report_type brt ON brt.report_type_id = rt.report_type_id
JOIN buildings b ON b.building_id = brt.building_id
WHERE (s.code = $1 OR s.scenario_name = $1)
  AND (b.code = $2 OR b.building_type = $2 OR b.code = 'non-building')
ORDER BY rt.report_type_id, b.building_id";

const INSERT: &str = "
INSERT INTO analysis_job (recording_id, transcription_id, report_type_id, building_id)
SELECT $1, $2, r, b FROM unnest($3::smallint[], $4::smallint[]) AS j (r, b)
ON CONFLICT (transcription_id, report_type_id, building_id) DO NOTHING";

const SELECT: &str = "
SELECT analysis_job_id FROM analysis_job
WHERE transcription_id = $1 AND report_type_id = $2 AND building_id = $3";

/// Creates (or finds) the jobs a transcription needs: the requested report types (ids or
/// stored names), or every report type valid for the scenario and the place's building
/// (building-independent ones included) when none is requested.
pub async fn create_for_transcription(
    client: &impl GenericClient,
    recording_id: Option<i64>,
    transcription_id: i64,
    scenario: &str,
    building: &str,
    requested: &[String],
) -> Result<Vec<JobMessage>> {
    let stmt = client.prepare_cached(WANTED).await?;
    let rows = client.query(&stmt, &[&scenario, &building]).await?;
    if rows.is_empty() {
        return Err(Error::InvalidInput {
            field: "metadata",
            reason: format!("no report type fits scenario {scenario:?} and building {building:?}"),
        });
    }
    let chosen: Vec<&tokio_postgres::Row> = rows
        .iter()
        .filter(|r| {
            requested.is_empty()
                || requested
                    .iter()
                    .any(|q| q == r.get::<_, &str>(3) || q == r.get::<_, &str>(4))
        })
        .collect();
    for q in requested {
        if !chosen
            .iter()
            .any(|r| q == r.get::<_, &str>(3) || q == r.get::<_, &str>(4))
        {
            return Err(Error::InvalidInput {
                field: "report_types",
                reason: format!(
                    "{q:?} is not a report type of scenario {scenario:?} for building {building:?}"
                ),
            });
        }
    }
    let report_type_ids: Vec<i16> = chosen.iter().map(|r| r.get(0)).collect();
    let building_ids: Vec<i16> = chosen.iter().map(|r| r.get(1)).collect();
    let insert = client.prepare_cached(INSERT).await?;
    client
        .execute(
            &insert,
            &[
                &recording_id,
                &transcription_id,
                &report_type_ids,
                &building_ids,
            ],
        )
        .await?;
    let select = client.prepare_cached(SELECT).await?;
    let mut jobs = Vec::with_capacity(chosen.len());
    for r in chosen {
        let (report_type_id, building_id): (i16, i16) = (r.get(0), r.get(1));
        let row = client
            .query_one(&select, &[&transcription_id, &report_type_id, &building_id])
            .await?;
        jobs.push(JobMessage {
            analysis_job_id: row.get(0),
            recording_id,
            transcription_id,
            scenario: r.get(2),
            report_type: r.get(3),
            building: r.get(5),
        });
    }
    Ok(jobs)
}

/// Jobs of a recording not finished yet: what a redelivered notification re-sends when the
/// transcription was stored but the sending was cut short.
pub async fn unfinished_for_recording(
    client: &impl GenericClient,
    recording_id: i64,
) -> Result<Vec<JobMessage>> {
    let stmt = client
        .prepare_cached(
            "SELECT j.analysis_job_id, j.transcription_id, s.code, rt.code, b.code
             FROM analysis_job j
             JOIN report_type rt ON rt.report_type_id = j.report_type_id
             JOIN scenario s ON s.scenario_id = rt.scenario_id
             JOIN buildings b ON b.building_id = j.building_id
             WHERE j.recording_id = $1 AND j.status IN ('queued', 'running')
             ORDER BY j.analysis_job_id",
        )
        .await?;
    Ok(client
        .query(&stmt, &[&recording_id])
        .await?
        .into_iter()
        .map(|r| JobMessage {
            analysis_job_id: r.get(0),
            recording_id: Some(recording_id),
            transcription_id: r.get(1),
            scenario: r.get(2),
            report_type: r.get(3),
            building: r.get(4),
        })
        .collect())
}
