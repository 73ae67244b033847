-- Which report types each search configuration holds, written once: a configuration of one
-- report type holds it; a scenario-wide one holds its scenario's report types except those it
-- leaves out. The index writer, search filters and the populated-configuration check all read
-- membership from here (a chunk is in the configurations of its audit's report type).
CREATE VIEW index_config_member AS
SELECT ic.index_config_id, rt.report_type_id
FROM index_config ic
JOIN report_type rt
  ON rt.report_type_id = ic.report_type_id
  OR (ic.report_type_id IS NULL AND rt.scenario_id = ic.scenario_id
      AND NOT (rt.report_type_id = ANY (ic.excluded_report_type_ids)));
