//! Reference data: scenarios, report types, buildings and which (building, report type)
//! pairs are valid. Every role may read it: uploaders need it to fill in a recording.

use axum::Json;
use axum::extract::State;
use common::db::reference;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Caller, Permission};
use crate::problem::Problem;

/// A scenario.
#[derive(Debug, Serialize, ToSchema)]
pub struct Scenario {
    /// Stable id: `design` or `interview`.
    pub id: String,
    /// Stored name: `Дизайн`, `Интервью`.
    pub name: String,
}

/// A report type with the buildings it is valid for.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportType {
    /// Stable id, e.g. `common-factors`.
    pub id: String,
    /// Stored name, e.g. `Общие факторы`.
    pub name: String,
    pub scenario: String,
    pub scenario_name: String,
    /// Building ids; `non-building` for building-independent report types.
    pub buildings: Vec<String>,
}

/// A building with the report types valid for it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Building {
    /// Stable id: `hotel`, `restaurant`, `spa`, `non-building`.
    pub id: String,
    /// Stored name: `Отель`, `Ресторан`, `Центр Здоровья`, `non-building`.
    pub name: String,
    pub report_types: Vec<String>,
}

#[utoipa::path(get, path = "/scenarios", tag = "reference",
    responses((status = 200, description = "Every scenario", body = Vec<Scenario>)))]
pub async fn scenarios(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Scenario>>, Problem> {
    caller.require(Permission::Reference)?;
    let conn = state.pool.get().await?;
    let rows = reference::scenarios(&conn).await?;
    Ok(Json(
        rows.into_iter()
            .map(|s| Scenario {
                id: s.id,
                name: s.name,
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/report-types", tag = "reference",
    responses((status = 200, description = "Every report type with its valid buildings",
               body = Vec<ReportType>)))]
pub async fn report_types(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ReportType>>, Problem> {
    caller.require(Permission::Reference)?;
    let conn = state.pool.get().await?;
    let rows = reference::report_types(&conn).await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| ReportType {
                id: r.id,
                name: r.name,
                scenario: r.scenario,
                scenario_name: r.scenario_name,
                buildings: r.buildings,
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/buildings", tag = "reference",
    responses((status = 200, description = "Every building with its valid report types",
               body = Vec<Building>)))]
pub async fn buildings(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Building>>, Problem> {
    caller.require(Permission::Reference)?;
    let conn = state.pool.get().await?;
    let rows = reference::buildings(&conn).await?;
    Ok(Json(
        rows.into_iter()
            .map(|b| Building {
                id: b.id,
                name: b.name,
                report_types: b.report_types,
            })
            .collect(),
    ))
}
