//! Serving claims: which replica serves which version, in which roles, until when. Written by
//! gateways (the whole claim of one replica replaced in one transaction), read by the commands
//! that would retire a version, so that none is archived from under live traffic by mistake.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{Registry, find_model};
use crate::error::StoreError;

/// One version a replica serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedVersion {
    pub model: String,
    pub version: u32,
    /// How it is served: `champion`, `challenger`, `shadow`, `backup`, or `loaded` (only
    /// reachable by a pinned path).
    pub roles: Vec<String>,
}

/// A live claim on a version: the replica that serves it and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServingClaim {
    pub replica: String,
    pub roles: Vec<String>,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Registry {
    /// Replaces everything `replica` claims with `served`, valid for `ttl`. Versions of models the
    /// registry does not know are skipped (a claim names registered versions only).
    pub async fn publish_serving(
        &self,
        replica: &str,
        served: &[ServedVersion],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let expires = now_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM serving WHERE replica = $1").bind(replica).execute(&mut *tx).await?;
        for s in served {
            let Ok(model) = find_model(&mut tx, &s.model).await else { continue };
            sqlx::query(
                "INSERT INTO serving (replica, model_id, version_number, roles, expires_at_ms) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(replica)
            .bind(model.id)
            .bind(i64::from(s.version))
            .bind(s.roles.join(","))
            .bind(expires)
            .execute(&mut *tx)
            .await?;
        }
        // Expired claims of any replica go too: a replica that died leaves nothing behind.
        sqlx::query("DELETE FROM serving WHERE expires_at_ms < $1").bind(now_ms()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Withdraws everything `replica` claims (a graceful stop).
    pub async fn withdraw_serving(&self, replica: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM serving WHERE replica = $1").bind(replica).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The live claims on `model` version `version`, by replica. `ModelNotFound` if the model
    /// is absent.
    pub async fn served_by(&self, model: &str, version: u32) -> Result<Vec<ServingClaim>, StoreError> {
        let mut tx = self.begin_read().await?;
        let model_row = find_model(&mut tx, model).await?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT replica, roles FROM serving \
             WHERE model_id = $1 AND version_number = $2 AND expires_at_ms >= $3 ORDER BY replica",
        )
        .bind(model_row.id)
        .bind(i64::from(version))
        .bind(now_ms())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|(replica, roles)| ServingClaim { replica, roles: roles.split(',').map(str::to_owned).collect() })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{register, temp_store};

    fn served(model: &str, version: u32, roles: &[&str]) -> ServedVersion {
        ServedVersion { model: model.to_owned(), version, roles: roles.iter().map(|r| (*r).to_owned()).collect() }
    }

    #[tokio::test]
    async fn claims_are_replaced_whole_expire_and_are_withdrawn() {
        let (_dir, store) = temp_store().await;
        register(&store, "m", b"v1").await;
        register(&store, "m", b"v2").await;
        let reg = store.registry();
        let ttl = Duration::from_secs(60);
        reg.publish_serving("a", &[served("m", 1, &["champion", "backup"]), served("nope", 1, &["champion"])], ttl)
            .await
            .expect("publish");
        reg.publish_serving("b", &[served("m", 1, &["shadow"])], ttl).await.expect("publish");
        let claims = reg.served_by("m", 1).await.expect("claims");
        assert_eq!(claims.len(), 2);
        assert_eq!(claims[0], ServingClaim { replica: "a".into(), roles: vec!["champion".into(), "backup".into()] });
        // Replica a now serves version 2 only: its claim on 1 is gone.
        reg.publish_serving("a", &[served("m", 2, &["champion"])], ttl).await.expect("publish");
        assert_eq!(reg.served_by("m", 1).await.expect("claims").len(), 1);
        reg.withdraw_serving("b").await.expect("withdraw");
        assert!(reg.served_by("m", 1).await.expect("claims").is_empty());
        // A claim past its time is no claim.
        reg.publish_serving("c", &[served("m", 1, &["champion"])], Duration::ZERO).await.expect("publish");
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(reg.served_by("m", 1).await.expect("claims").is_empty());
    }
}
