//! The requests that end a running call's legs from a fresh process (see the SIP crate's
//! `LegEnding`), kept beside the call while it runs.

use std::net::SocketAddr;

use dialbridge_core::call::Leg;

use crate::config::flag;
use crate::db::query;
use crate::{StoreError, Tx};

/// The request that ends one leg of a running call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptLegEnding {
    pub leg: Leg,
    /// SIP text.
    pub request: String,
    pub destination: SocketAddr,
    pub over_tcp: bool,
}

fn leg_name(leg: Leg) -> &'static str {
    match leg {
        Leg::Agent => "agent",
        Leg::Customer => "customer",
    }
}

impl Tx<'_> {
    /// Keeps (or replaces) how to end one leg of a running call.
    pub async fn keep_leg_ending(&mut self, unique_id: &str, ending: &KeptLegEnding) -> Result<(), StoreError> {
        query(
            "INSERT INTO leg_endings (unique_id, leg, request, destination, over_tcp) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (unique_id, leg) DO UPDATE SET request = $3, destination = $4, over_tcp = $5",
        )
        .bind(unique_id)
        .bind(leg_name(ending.leg))
        .bind(ending.request.as_str())
        .bind(ending.destination.to_string())
        .bind(flag(ending.over_tcp))
        .execute(&mut self.conn)
        .await?;
        Ok(())
    }

    /// How to end each leg of a call, as last kept.
    pub async fn leg_endings(&mut self, unique_id: &str) -> Result<Vec<KeptLegEnding>, StoreError> {
        let rows =
            query("SELECT leg, request, destination, over_tcp FROM leg_endings WHERE unique_id = $1 ORDER BY leg")
                .bind(unique_id)
                .fetch_all(&mut self.conn)
                .await?;
        rows.iter()
            .map(|row| {
                let leg = match row.try_get::<String>("leg")?.as_str() {
                    "agent" => Leg::Agent,
                    "customer" => Leg::Customer,
                    other => return Err(StoreError::Corrupt(format!("leg {other:?}"))),
                };
                let destination: String = row.try_get("destination")?;
                Ok(KeptLegEnding {
                    leg,
                    request: row.try_get("request")?,
                    destination: destination
                        .parse()
                        .map_err(|_| StoreError::Corrupt(format!("leg destination {destination:?}")))?,
                    over_tcp: row.try_get::<i64>("over_tcp")? != 0,
                })
            })
            .collect()
    }

    /// Forgets how to end a call's legs (it was closed).
    pub async fn forget_leg_endings(&mut self, unique_id: &str) -> Result<(), StoreError> {
        query("DELETE FROM leg_endings WHERE unique_id = $1")
            .bind(unique_id)
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }
}
