//! Phones' SIP registrations, kept across restarts: the SIP layer reports an address-of-record's
//! bindings whenever a REGISTER changes them, and a starting server takes the live ones back.

use std::net::SocketAddr;

use crate::config::flag;
use crate::db::query;
use crate::{StoreError, Tx};

/// One binding of an address-of-record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipRegistration {
    pub aor: String,
    /// The Contact exactly as the phone registered it.
    pub contact: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Where the REGISTER came from.
    pub source: SocketAddr,
    /// Whether it came over a TCP connection (which a restart loses).
    pub over_tcp: bool,
    pub call_id: String,
    pub cseq: i64,
}

impl Tx<'_> {
    /// Replaces every binding of `aor` with `bindings` (none: the phone unregistered).
    pub async fn replace_sip_registrations(
        &mut self,
        aor: &str,
        bindings: &[SipRegistration],
    ) -> Result<(), StoreError> {
        query("DELETE FROM sip_registrations WHERE aor = $1")
            .bind(aor)
            .execute(&mut self.conn)
            .await?;
        for b in bindings {
            query(
                "INSERT INTO sip_registrations (aor, contact, expires_at, source, over_tcp, call_id, cseq) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(aor)
            .bind(b.contact.as_str())
            .bind(b.expires_at)
            .bind(b.source.to_string())
            .bind(flag(b.over_tcp))
            .bind(b.call_id.as_str())
            .bind(b.cseq)
            .execute(&mut self.conn)
            .await?;
        }
        Ok(())
    }

    /// The bindings still live at `now` (unix seconds), by address-of-record.
    pub async fn live_sip_registrations(&mut self, now: i64) -> Result<Vec<SipRegistration>, StoreError> {
        let rows = query(
            "SELECT aor, contact, expires_at, source, over_tcp, call_id, cseq FROM sip_registrations \
             WHERE expires_at > $1 ORDER BY aor, expires_at",
        )
        .bind(now)
        .fetch_all(&mut self.conn)
        .await?;
        rows.iter()
            .map(|row| {
                let source: String = row.try_get("source")?;
                Ok(SipRegistration {
                    aor: row.try_get("aor")?,
                    contact: row.try_get("contact")?,
                    expires_at: row.try_get("expires_at")?,
                    source: source
                        .parse()
                        .map_err(|_| StoreError::Corrupt(format!("registration source {source:?}")))?,
                    over_tcp: row.try_get::<i64>("over_tcp")? != 0,
                    call_id: row.try_get("call_id")?,
                    cseq: row.try_get("cseq")?,
                })
            })
            .collect()
    }

    /// Deletes the bindings expired at `now` (unix seconds); returns how many went.
    pub async fn sweep_sip_registrations(&mut self, now: i64) -> Result<u64, StoreError> {
        Ok(query("DELETE FROM sip_registrations WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut self.conn)
            .await?
            .rows_affected())
    }
}
