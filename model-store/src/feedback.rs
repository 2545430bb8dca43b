//! Online feedback: ground truth for earlier requests, judged against the prediction in their
//! lineage record and kept per version, so online quality (accuracy, MAE, RMSE) can be read
//! back per version over a window or all time.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;
use crate::registry::queries::{self, FeedbackRow};
use crate::registry::{Registry, Timestamp};

/// What kind of truth a feedback item carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedbackKind {
    /// The true class, compared with the predicted label (argmax).
    Label,
    /// The true number, compared with the predicted value (absolute and squared error).
    Value,
    /// A true/false outcome, compared with the predicted label (0/1) or value (≥ 0.5).
    Outcome,
}

impl FeedbackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::Label => "label",
            FeedbackKind::Value => "value",
            FeedbackKind::Outcome => "outcome",
        }
    }
}

/// One judged feedback item, ready to store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feedback {
    pub request_id: String,
    pub model: String,
    /// The version that answered the request (from its lineage record).
    pub version: u32,
    pub kind: FeedbackKind,
    /// The truth as given.
    pub truth: Value,
    /// Labels and outcomes: whether the prediction was right.
    pub correct: Option<bool>,
    /// Values: |predicted − truth|.
    pub abs_error: Option<f64>,
    /// The slice of the request (from its lineage record), when its model has slices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slice: Option<String>,
}

/// A version's online quality over some span.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct FeedbackSummary {
    /// Feedback items stored.
    pub count: u64,
    /// Items judged right or wrong (labels and outcomes), and how many were right.
    pub judged: u64,
    pub correct: u64,
    /// `correct / judged`, when anything was judged.
    pub accuracy: Option<f64>,
    /// Items with a numeric error (values), their mean absolute and root mean squared error.
    pub valued: u64,
    pub mae: Option<f64>,
    pub rmse: Option<f64>,
}

impl Feedback {
    /// Judges `truth` of `kind` against a lineage record's `prediction` summary
    /// (`{"label": n}` and/or `{"value": x}`). Errors say why the two cannot be compared.
    pub fn judge(
        request_id: &str,
        model: &str,
        version: u32,
        prediction: Option<&Value>,
        kind: FeedbackKind,
        truth: Value,
    ) -> Result<Feedback, String> {
        let prediction = prediction.ok_or_else(|| {
            format!("request '{request_id}' has no recorded prediction to judge (a batch or a non-numeric output)")
        })?;
        let label = prediction.get("label").and_then(Value::as_i64);
        let value = prediction.get("value").and_then(Value::as_f64);
        let (correct, abs_error) = match kind {
            FeedbackKind::Label => {
                let want = truth
                    .as_i64()
                    .or_else(|| truth.as_str().and_then(|s| s.parse().ok()))
                    .ok_or_else(|| format!("label must be a class index (an integer), not {truth}"))?;
                let got = label.ok_or("the model's prediction is not a class label; send a value instead")?;
                (Some(got == want), None)
            }
            FeedbackKind::Outcome => {
                let want = truth.as_bool().ok_or_else(|| format!("outcome must be true or false, not {truth}"))?;
                let got = match (label, value) {
                    (Some(l), _) => l == 1,
                    (None, Some(v)) => v >= 0.5,
                    (None, None) => return Err("the model's prediction is neither a label nor a value".to_owned()),
                };
                (Some(got == want), None)
            }
            FeedbackKind::Value => {
                let want = truth
                    .as_f64()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| format!("value must be a finite number, not {truth}"))?;
                let got = value.ok_or("the model's prediction is not a single value; send a label instead")?;
                (None, Some((got - want).abs()))
            }
        };
        Ok(Feedback {
            request_id: request_id.to_owned(),
            model: model.to_owned(),
            version,
            kind,
            truth,
            correct,
            abs_error,
            slice: None,
        })
    }

    /// This item, of a request in `slice`.
    pub fn in_slice(self, slice: Option<String>) -> Feedback {
        Feedback { slice, ..self }
    }
}

/// Labelled feedback of one slice of a version's traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SliceQuality {
    pub slice: String,
    /// Items judged right or wrong, and how many were right.
    pub judged: u64,
    pub correct: u64,
}

impl SliceQuality {
    /// `correct / judged`, when anything was judged.
    pub fn accuracy(&self) -> Option<f64> {
        (self.judged > 0).then(|| self.correct as f64 / self.judged as f64)
    }
}

/// `request_id, version, kind, truth_json, correct, abs_error, at` of a stored item.
type FeedbackExportRow = (String, i64, String, String, Option<i64>, Option<f64>, String);

/// Feedback as stored, for exports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredFeedback {
    pub request_id: String,
    pub version: u32,
    pub kind: String,
    pub truth: Value,
    pub correct: Option<bool>,
    pub abs_error: Option<f64>,
    /// When it arrived, RFC 3339 UTC.
    pub at: String,
}

impl Registry {
    /// Every feedback item stored for `model` (by request id), for exports.
    pub async fn feedback_of(&self, model: &str) -> Result<Vec<StoredFeedback>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let rows: Vec<FeedbackExportRow> = sqlx::query_as(
            "SELECT request_id, version, kind, truth_json, correct, abs_error, at FROM feedback \
             WHERE model = $1 ORDER BY at_ms, id",
        )
        .bind(model)
        .fetch_all(&mut *conn)
        .await?;
        rows.into_iter()
            .map(|(request_id, version, kind, truth, correct, abs_error, at)| {
                Ok(StoredFeedback {
                    request_id,
                    version: crate::registry::to_u32(version, "version number")?,
                    kind,
                    truth: serde_json::from_str(&truth)
                        .map_err(|e| StoreError::decode(format!("stored feedback truth: {e}")))?,
                    correct: correct.map(|c| c != 0),
                    abs_error,
                    at,
                })
            })
            .collect()
    }

    /// Stores judged feedback in one transaction. Returns, per item, whether it was new: an
    /// item for a request that already has feedback is not stored again (never counted twice).
    pub async fn insert_feedback(&self, items: &[Feedback]) -> Result<Vec<bool>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let now = Timestamp::now();
        let mut tx = self.begin_write().await?;
        let mut stored = Vec::with_capacity(items.len());
        for f in items {
            let row = FeedbackRow {
                request_id: &f.request_id,
                model: &f.model,
                version: i64::from(f.version),
                kind: f.kind.as_str(),
                truth_json: f.truth.to_string(),
                correct: f.correct.map(i64::from),
                abs_error: f.abs_error,
                sq_error: f.abs_error.map(|e| e * e),
                at: &now.text,
                at_ms: now.ms,
                slice: f.slice.as_deref(),
            };
            stored.push(queries::insert_feedback(&mut tx, &row).await?);
        }
        tx.commit().await?;
        Ok(stored)
    }

    /// Labelled feedback of `model` `version` per slice, all time, sorted by slice; items of
    /// requests without a slice are left out.
    pub async fn feedback_by_slice(&self, model: &str, version: u32) -> Result<Vec<SliceQuality>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let rows = queries::feedback_by_slice(&mut conn, model, i64::from(version)).await?;
        Ok(rows
            .into_iter()
            .map(|(slice, judged, correct)| SliceQuality {
                slice,
                judged: u64::try_from(judged).unwrap_or(0),
                correct: u64::try_from(correct.unwrap_or(0)).unwrap_or(0),
            })
            .collect())
    }

    /// Online quality of `model` `version` from feedback stored at or after `since_ms` (all
    /// time when `None`).
    pub async fn feedback_summary(
        &self,
        model: &str,
        version: u32,
        since_ms: Option<i64>,
    ) -> Result<FeedbackSummary, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let sums = queries::feedback_sums(&mut conn, model, i64::from(version), since_ms.unwrap_or(i64::MIN)).await?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let (judged, correct, valued) = (count(sums.judged), count(sums.correct.unwrap_or(0)), count(sums.valued));
        Ok(FeedbackSummary {
            count: count(sums.n),
            judged,
            correct,
            accuracy: (judged > 0).then(|| correct as f64 / judged as f64),
            valued,
            mae: (valued > 0).then(|| sums.abs_error.unwrap_or(0.0) / valued as f64),
            rmse: (valued > 0).then(|| (sums.sq_error.unwrap_or(0.0) / valued as f64).sqrt()),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tests::temp_store;

    fn judged(pred: Value, kind: FeedbackKind, truth: Value) -> Result<Feedback, String> {
        Feedback::judge("r", "m", 1, Some(&pred), kind, truth)
    }

    #[test]
    fn judging_labels_values_and_outcomes() {
        assert_eq!(judged(json!({"label": 3}), FeedbackKind::Label, json!(3)).expect("ok").correct, Some(true));
        assert_eq!(judged(json!({"label": 3}), FeedbackKind::Label, json!("2")).expect("ok").correct, Some(false));
        assert_eq!(
            judged(json!({"value": 0.7}), FeedbackKind::Value, json!(0.5))
                .expect("ok")
                .abs_error
                .map(|e| (e * 10.0).round()),
            Some(2.0)
        );
        assert_eq!(judged(json!({"value": 0.7}), FeedbackKind::Outcome, json!(true)).expect("ok").correct, Some(true));
        assert_eq!(judged(json!({"label": 0}), FeedbackKind::Outcome, json!(true)).expect("ok").correct, Some(false));
        assert!(
            judged(json!({"value": 0.7}), FeedbackKind::Label, json!(1)).unwrap_err().contains("not a class label")
        );
        assert!(judged(json!({"label": 1}), FeedbackKind::Label, json!("cat")).unwrap_err().contains("class index"));
        assert!(judged(json!({"value": 1}), FeedbackKind::Value, json!("x")).unwrap_err().contains("finite number"));
        assert!(
            Feedback::judge("r", "m", 1, None, FeedbackKind::Label, json!(1))
                .unwrap_err()
                .contains("no recorded prediction")
        );
    }

    #[tokio::test]
    async fn stored_once_and_summarised_per_version() {
        let (_dir, store) = temp_store().await;
        let reg = store.registry();
        let items: Vec<Feedback> = (0..10)
            .map(|i| {
                judged(json!({"label": i % 2}), FeedbackKind::Label, json!(0)).map(|mut f| {
                    f.request_id = format!("r{i}");
                    f
                })
            })
            .collect::<Result<_, _>>()
            .expect("judged");
        assert_eq!(reg.insert_feedback(&items).await.expect("insert"), vec![true; 10]);
        // Duplicates are not stored again.
        assert_eq!(reg.insert_feedback(&items[..3]).await.expect("again"), vec![false; 3]);
        let s = reg.feedback_summary("m", 1, None).await.expect("summary");
        assert_eq!((s.count, s.judged, s.correct, s.accuracy), (10, 10, 5, Some(0.5)));
        assert_eq!(reg.feedback_summary("m", 2, None).await.expect("other version").count, 0);
        let mut v = judged(json!({"value": 1.0}), FeedbackKind::Value, json!(4.0)).expect("value");
        v.request_id = "v1".into();
        reg.insert_feedback(&[v]).await.expect("value");
        let s = reg.feedback_summary("m", 1, None).await.expect("summary");
        assert_eq!((s.valued, s.mae, s.rmse), (1, Some(3.0), Some(3.0)));
        assert_eq!(reg.feedback_summary("m", 1, Some(i64::MAX)).await.expect("window").count, 0);
    }
}
