//! Prediction jobs: batch runs of a version over a data set, recorded like requests are — which
//! version and artifact turned which input into which output, with what settings — and with how
//! far they got, so an interrupted job resumes where its output ends.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Registry, Timestamp, find_model, find_version, to_u32};
use crate::error::StoreError;

/// A prediction job as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub model: String,
    pub version: u32,
    /// The artifact that ran.
    pub sha256: String,
    pub input_uri: String,
    pub input_sha256: String,
    pub input_rows: u64,
    /// The pipeline manifest given with the job (preprocessing commit, feature definitions).
    pub pipeline: Option<Value>,
    /// Device, threads, batch size, ONNX Runtime version, host.
    pub runtime: Value,
    pub output_uri: String,
    /// Set when the job succeeded.
    pub output_sha256: Option<String>,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    pub rows_done: u64,
    /// `[{"row": i, "error": "..."}]`: rows the model failed on.
    pub failed_rows: Value,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
}

/// What a new job is.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub id: &'a str,
    pub model: &'a str,
    pub version: u32,
    pub input_uri: &'a str,
    pub input_sha256: &'a str,
    pub input_rows: u64,
    pub pipeline: Option<Value>,
    pub runtime: Value,
    pub output_uri: &'a str,
}

/// A job row as selected (see `select_jobs!`).
#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    model: String,
    version_number: i64,
    sha256: String,
    input_uri: String,
    input_sha256: String,
    input_rows: i64,
    pipeline_json: Option<String>,
    runtime_json: String,
    output_uri: String,
    output_sha256: Option<String>,
    status: String,
    rows_done: i64,
    failed_rows_json: String,
    started_at: String,
    finished_at: Option<String>,
    error: Option<String>,
}

impl Registry {
    /// Records a new running job of `model` `version` (which must exist and not be collected).
    pub async fn create_job(&self, job: &NewJob<'_>) -> Result<Job, StoreError> {
        let mut tx = self.begin_write().await?;
        let model = find_model(&mut tx, job.model).await?;
        let version = find_version(&mut tx, &model, job.version).await?;
        super::refuse_collected(&version, job.model, job.version)?;
        let now = Timestamp::now();
        sqlx::query(
            "INSERT INTO jobs (id, model_id, version_number, sha256, input_uri, input_sha256, input_rows, pipeline_json, \
             runtime_json, output_uri, status, rows_done, failed_rows_json, started_at, started_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'running', 0, '[]', $11, $12)",
        )
        .bind(job.id)
        .bind(model.id)
        .bind(i64::from(job.version))
        .bind(&version.sha256)
        .bind(job.input_uri)
        .bind(job.input_sha256)
        .bind(i64::try_from(job.input_rows).unwrap_or(i64::MAX))
        .bind(job.pipeline.as_ref().map(Value::to_string))
        .bind(job.runtime.to_string())
        .bind(job.output_uri)
        .bind(&now.text)
        .bind(now.ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.job(job.id).await?.ok_or_else(|| StoreError::decode("a job just written is missing"))
    }

    /// Advances a running job: its output is on disk up to `rows_done`, with `failed_rows`.
    pub async fn checkpoint_job(&self, id: &str, rows_done: u64, failed_rows: &Value) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE jobs SET rows_done = $2, failed_rows_json = $3, status = 'running' WHERE id = $1")
            .bind(id)
            .bind(i64::try_from(rows_done).unwrap_or(i64::MAX))
            .bind(failed_rows.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends a job: `succeeded` with its output's sha256, or `failed` with why.
    pub async fn finish_job(
        &self,
        id: &str,
        output_sha256: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE jobs SET status = $2, output_sha256 = $3, error = $4, finished_at = $5 WHERE id = $1")
            .bind(id)
            .bind(if error.is_none() { "succeeded" } else { "failed" })
            .bind(output_sha256)
            .bind(error)
            .bind(&now.text)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The job `id`, if recorded.
    pub async fn job(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let row: Option<JobRow> = sqlx::query_as(SELECT_JOB_BY_ID).bind(id).fetch_optional(&mut *conn).await?;
        row.map(to_job).transpose()
    }

    /// Jobs, newest first, of `model` when given.
    pub async fn jobs(&self, model: Option<&str>) -> Result<Vec<Job>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let rows: Vec<JobRow> = sqlx::query_as(SELECT_JOBS).bind(model).fetch_all(&mut *conn).await?;
        rows.into_iter().map(to_job).collect()
    }
}

/// The select list and join of a job row (a macro, so the queries below are one literal each).
macro_rules! select_jobs {
    ($tail:literal) => {
        concat!(
            "SELECT j.id, m.name AS model, j.version_number, j.sha256, j.input_uri, j.input_sha256, j.input_rows, \
             j.pipeline_json, j.runtime_json, j.output_uri, j.output_sha256, j.status, j.rows_done, \
             j.failed_rows_json, j.started_at, j.finished_at, j.error FROM jobs j JOIN models m ON m.id = j.model_id ",
            $tail
        )
    };
}

const SELECT_JOB_BY_ID: &str = select_jobs!("WHERE j.id = $1");
const SELECT_JOBS: &str = select_jobs!("WHERE ($1 IS NULL OR m.name = $1) ORDER BY j.started_ms DESC, j.id");

fn to_job(r: JobRow) -> Result<Job, StoreError> {
    let json =
        |text: &str, what: &str| serde_json::from_str(text).map_err(|e| StoreError::decode(format!("job {what}: {e}")));
    Ok(Job {
        pipeline: r.pipeline_json.as_deref().map(|t| json(t, "pipeline")).transpose()?,
        runtime: json(&r.runtime_json, "runtime")?,
        failed_rows: json(&r.failed_rows_json, "failed rows")?,
        version: to_u32(r.version_number, "version number")?,
        input_rows: u64::try_from(r.input_rows).unwrap_or(0),
        rows_done: u64::try_from(r.rows_done).unwrap_or(0),
        id: r.id,
        model: r.model,
        sha256: r.sha256,
        input_uri: r.input_uri,
        input_sha256: r.input_sha256,
        output_uri: r.output_uri,
        output_sha256: r.output_sha256,
        status: r.status,
        started_at: r.started_at,
        finished_at: r.finished_at,
        error: r.error,
    })
}
