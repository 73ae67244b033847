//! Reference data (scenarios, report types, buildings, their valid pairs) and the
//! get-or-create of people and places.
//!
//! Get-or-create is `INSERT ... ON CONFLICT DO NOTHING` plus a read in the same statement:
//! no row locks are taken for a name that exists, so concurrent writers sharing names never
//! wait on each other. When a concurrent transaction commits the same name after our
//! statement's snapshot, both halves come back empty and the statement is simply re-run with
//! a fresh snapshot.

use serde::Serialize;
use tokio_postgres::types::ToSql;

use super::GenericClient;
use crate::{Error, Result};

/// A resolved (scenario, report type, building) whose pair is valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Road {
    pub scenario_id: i16,
    pub scenario: String,
    pub report_type_id: i16,
    pub report_type: String,
    pub building_id: i16,
    pub building: String,
    /// The building's stored name (`Отель`...), which `place.building_type` references.
    pub building_type: String,
}

const RESOLVE_ROAD: &str = "
SELECT s.scenario_id, s.code, rt.report_type_id, rt.code, b.building_id, b.code, b.building_type,
       EXISTS (SELECT 1 FROM buildings_report_type brt
               WHERE brt.building_id = b.building_id AND brt.report_type_id = rt.report_type_id)
FROM (SELECT 1) AS one
LEFT JOIN scenario s ON s.scenario_name = $1 OR s.code = $1
LEFT JOIN report_type rt ON rt.scenario_id = s.scenario_id
                        AND (rt.report_type_desc = $2 OR rt.code = $2)
LEFT JOIN buildings b ON b.building_type = $3 OR b.code = $3";

/// Resolves names or ids of a scenario, a report type of that scenario and a building, and
/// checks that the pair is valid. Each error names the value at fault.
pub async fn resolve_road(
    client: &impl GenericClient,
    scenario: &str,
    report_type: &str,
    building: &str,
) -> Result<Road> {
    let stmt = client.prepare_cached(RESOLVE_ROAD).await?;
    let row = client
        .query_one(&stmt, &[&scenario, &report_type, &building])
        .await?;
    let Some(scenario_id) = row.get::<_, Option<i16>>(0) else {
        return Err(Error::UnknownScenario {
            name: scenario.to_owned(),
        });
    };
    let Some(report_type_id) = row.get::<_, Option<i16>>(2) else {
        return Err(Error::UnknownReportType {
            name: report_type.to_owned(),
            scenario: scenario.to_owned(),
        });
    };
    let Some(building_id) = row.get::<_, Option<i16>>(4) else {
        return Err(Error::UnknownBuilding {
            name: building.to_owned(),
        });
    };
    if !row.get::<_, bool>(7) {
        return Err(Error::InvalidPair {
            building: building.to_owned(),
            report_type: report_type.to_owned(),
        });
    }
    Ok(Road {
        scenario_id,
        scenario: row.get(1),
        report_type_id,
        report_type: row.get(3),
        building_id,
        building: row.get(5),
        building_type: row.get(6),
    })
}

/// The stored name of a building given its name or id (`hotel` -> `Отель`).
pub async fn building_type(client: &impl GenericClient, building: &str) -> Result<String> {
    let stmt = client
        .prepare_cached("SELECT building_type FROM buildings WHERE building_type = $1 OR code = $1")
        .await?;
    client
        .query_opt(&stmt, &[&building])
        .await?
        .map(|row| row.get(0))
        .ok_or_else(|| Error::UnknownBuilding {
            name: building.to_owned(),
        })
}

/// A report type with the buildings it is valid for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportTypeInfo {
    pub id: String,
    pub name: String,
    pub scenario: String,
    pub scenario_name: String,
    pub buildings: Vec<String>,
}

/// Every report type with its scenario and valid buildings, in a stable order.
pub async fn report_types(client: &impl GenericClient) -> Result<Vec<ReportTypeInfo>> {
    let stmt = client
        .prepare_cached(
            "SELECT rt.code, rt.report_type_desc, s.code, s.scenario_name,
                    array_agg(b.code ORDER BY b.building_id)
             FROM report_type rt
             JOIN scenario s ON s.scenario_id = rt.scenario_id
             JOIN buildings_report_type brt ON brt.report_type_id = rt.report_type_id
             JOIN buildings b ON b.building_id = brt.building_id
             GROUP BY rt.report_type_id, s.scenario_id
             ORDER BY rt.report_type_id",
        )
        .await?;
    Ok(client
        .query(&stmt, &[])
        .await?
        .into_iter()
        .map(|row| ReportTypeInfo {
            id: row.get(0),
            name: row.get(1),
            scenario: row.get(2),
            scenario_name: row.get(3),
            buildings: row.get(4),
        })
        .collect())
}

/// People and things known by their name alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    Employee,
    Client,
    City,
    Zone,
}

impl Named {
    fn get_or_create_sql(self) -> &'static str {
        match self {
            Named::Employee => {
                "WITH ins AS (INSERT INTO employee (employee_name) VALUES ($1)
                              ON CONFLICT ((md5(employee_name))) DO NOTHING RETURNING employee_id)
                 SELECT employee_id FROM ins
                 UNION ALL
                 SELECT employee_id FROM employee
                 WHERE md5(employee_name) = md5($1) AND employee_name = $1"
            }
            Named::Client => {
                "WITH ins AS (INSERT INTO client (client_name) VALUES ($1)
                              ON CONFLICT ((md5(client_name))) DO NOTHING RETURNING client_id)
                 SELECT client_id FROM ins
                 UNION ALL
                 SELECT client_id FROM client
                 WHERE md5(client_name) = md5($1) AND client_name = $1"
            }
            Named::City => {
                "WITH ins AS (INSERT INTO city (city_name) VALUES ($1)
                              ON CONFLICT ((md5(city_name))) DO NOTHING RETURNING city_id)
                 SELECT city_id FROM ins
                 UNION ALL
                 SELECT city_id FROM city WHERE md5(city_name) = md5($1) AND city_name = $1"
            }
            Named::Zone => {
                "WITH ins AS (INSERT INTO zone (zone_name) VALUES ($1)
                              ON CONFLICT ((md5(zone_name))) DO NOTHING RETURNING zone_id)
                 SELECT zone_id FROM ins
                 UNION ALL
                 SELECT zone_id FROM zone WHERE md5(zone_name) = md5($1) AND zone_name = $1"
            }
        }
    }

    /// The metadata field this kind of name comes from, for error messages.
    pub fn field(self) -> &'static str {
        match self {
            Named::Employee => "employee",
            Named::Client => "client",
            Named::City => "city",
            Named::Zone => "zone",
        }
    }
}

/// The id of the row named `name`, inserting it if it does not exist yet. The name is stored
/// exactly as given; it must not be blank.
pub async fn get_or_create(client: &impl GenericClient, kind: Named, name: &str) -> Result<i64> {
    check_name(kind.field(), name)?;
    get_or_create_with(client, kind.get_or_create_sql(), &[&name], kind.field()).await
}

const PLACE_SQL: &str = "
WITH ins AS (INSERT INTO place (place_name, building_type) VALUES ($1, $2)
             ON CONFLICT ((md5(place_name)), building_type) DO NOTHING RETURNING place_id)
SELECT place_id FROM ins
UNION ALL
SELECT place_id FROM place
WHERE md5(place_name) = md5($1) AND place_name = $1 AND building_type = $2";

/// The id of the place `name` of the given building (its stored name, see
/// [`building_type`]), inserting it if needed.
pub async fn get_or_create_place(
    client: &impl GenericClient,
    name: &str,
    building_type: &str,
) -> Result<i64> {
    check_name("place", name)?;
    get_or_create_with(client, PLACE_SQL, &[&name, &building_type], "place").await
}

/// Links zones to a place (existing links are kept).
pub async fn link_place_zones(
    client: &impl GenericClient,
    place_id: i64,
    zone_ids: &[i64],
) -> Result<()> {
    if zone_ids.is_empty() {
        return Ok(());
    }
    let stmt = client
        .prepare_cached(
            "INSERT INTO place_zone (place_id, zone_id)
             SELECT $1, z FROM unnest($2::bigint[]) AS z
             ON CONFLICT DO NOTHING",
        )
        .await?;
    client.execute(&stmt, &[&place_id, &zone_ids]).await?;
    Ok(())
}

/// The zones linked to a place, by name.
pub async fn place_zones(client: &impl GenericClient, place_id: i64) -> Result<Vec<String>> {
    let stmt = client
        .prepare_cached(
            "SELECT z.zone_name FROM place_zone pz JOIN zone z ON z.zone_id = pz.zone_id
             WHERE pz.place_id = $1 ORDER BY z.zone_name",
        )
        .await?;
    Ok(client
        .query(&stmt, &[&place_id])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

async fn get_or_create_with(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    field: &'static str,
) -> Result<i64> {
    let stmt = client.prepare_cached(sql).await?;
    // Each empty answer means a concurrent commit we could not see yet; a handful of re-runs
    // is far more than a real race needs.
    for _ in 0..8 {
        if let Some(row) = client.query_opt(&stmt, params).await? {
            return Ok(row.get(0));
        }
    }
    Err(Error::InvalidInput {
        field,
        reason: "could not be stored: it kept conflicting with a concurrent write".into(),
    })
}

pub(crate) fn check_name(field: &'static str, name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::InvalidInput {
            field,
            reason: "must not be blank".into(),
        });
    }
    if name.contains('\0') {
        return Err(Error::InvalidInput {
            field,
            reason: "must not contain a NUL character".into(),
        });
    }
    Ok(())
}

/// A scenario: its stable id and stored name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScenarioInfo {
    pub id: String,
    pub name: String,
}

/// Every scenario, in a stable order.
pub async fn scenarios(client: &impl GenericClient) -> Result<Vec<ScenarioInfo>> {
    let stmt = client
        .prepare_cached("SELECT code, scenario_name FROM scenario ORDER BY scenario_id")
        .await?;
    Ok(client
        .query(&stmt, &[])
        .await?
        .iter()
        .map(|r| ScenarioInfo {
            id: r.get(0),
            name: r.get(1),
        })
        .collect())
}

/// A building with the report types valid for it (the `buildings_report_type` pairs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildingInfo {
    pub id: String,
    pub name: String,
    /// Report type ids, in the catalog's order.
    pub report_types: Vec<String>,
}

/// Every building with its valid report types, in a stable order.
pub async fn buildings(client: &impl GenericClient) -> Result<Vec<BuildingInfo>> {
    let stmt = client
        .prepare_cached(
            "SELECT b.code, b.building_type,
                    ARRAY(SELECT rt.code FROM buildings_report_type brt
                          JOIN report_type rt ON rt.report_type_id = brt.report_type_id
                          WHERE brt.building_id = b.building_id ORDER BY rt.report_type_id)
             FROM buildings b ORDER BY b.building_id",
        )
        .await?;
    Ok(client
        .query(&stmt, &[])
        .await?
        .iter()
        .map(|r| BuildingInfo {
            id: r.get(0),
            name: r.get(1),
            report_types: r.get(2),
        })
        .collect())
}
