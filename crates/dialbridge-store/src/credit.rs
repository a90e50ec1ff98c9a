//! Credit holds ([`dialbridge_core::credit`]): one row per running call that costs money, and
//! the enterprise's `held` sum beside its balance, changed together in one transaction. Every
//! hold is taken or extended by a conditional update of the enterprise's row, so two
//! transactions can never both spend the same credit: on SQLite the single writer serialises
//! them; on PostgreSQL the second waits for the row and re-checks the condition on what the
//! first committed.

use dialbridge_core::{EnterpriseId, Hold, Money};

use crate::config::now_ms;
use crate::db::{query, query_as};
use crate::{Backend, StoreError, Tx};

/// Holds `amount` more of the enterprise's credit if what is available pays it (and something
/// is available); false when it does not, and then nothing was changed.
const HOLD_MORE: &str = "UPDATE enterprises SET held = held + $2 \
     WHERE id = $1 AND balance + credit_limit - held >= $2 AND balance + credit_limit - held > 0";

/// What the enterprise's holds add up to.
const SUM_OF_HOLDS: &str =
    "(SELECT COALESCE(SUM(rate_per_minute * minutes), 0) FROM credit_holds WHERE enterprise_id = enterprises.id)";

/// The enterprise's holds whose call is no longer running.
const ORPHAN_HOLDS: &str = "SELECT 1 FROM credit_holds h WHERE h.enterprise_id = enterprises.id \
     AND NOT EXISTS (SELECT 1 FROM cdrs c WHERE c.unique_id = h.unique_id AND c.ended_at IS NULL)";

/// The same, by `uniqueId`, for the enterprise `$1`.
const ORPHAN_HOLDS_OF_ONE: &str = "SELECT h.unique_id FROM credit_holds h WHERE h.enterprise_id = $1 \
     AND NOT EXISTS (SELECT 1 FROM cdrs c WHERE c.unique_id = h.unique_id AND c.ended_at IS NULL)";

fn hold_from(rate: i64, minutes: i64) -> Result<Hold, StoreError> {
    Ok(Hold {
        rate: Money::from_ten_thousandths(rate),
        minutes: u32::try_from(minutes).map_err(|_| StoreError::Corrupt(format!("a hold of {minutes} minutes")))?,
    })
}

/// The answer to a request to extend a call's hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// Held one minute longer: commit.
    Extended(Hold),
    /// The hold was no longer the one the request extends (an earlier request extended it):
    /// nothing changed.
    AlreadyExtended(Hold),
    /// The enterprise's available credit does not pay another minute: nothing changed.
    Refused(Hold),
    /// The call holds nothing (a free call, or one settled).
    NotHeld,
}

impl Tx<'_> {
    /// Takes a new call's first hold; false (and nothing written) when the enterprise's
    /// available credit does not pay it.
    pub async fn take_hold(
        &mut self,
        enterprise: EnterpriseId,
        unique_id: &str,
        hold: Hold,
    ) -> Result<bool, StoreError> {
        let done = query(HOLD_MORE)
            .bind(enterprise.get())
            .bind(hold.amount().ten_thousandths())
            .execute(&mut self.conn)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let now = now_ms();
        query(
            "INSERT INTO credit_holds (unique_id, enterprise_id, rate_per_minute, minutes, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(unique_id)
        .bind(enterprise.get())
        .bind(hold.rate.ten_thousandths())
        .bind(i64::from(hold.minutes))
        .bind(now)
        .execute(&mut self.conn)
        .await?;
        Ok(true)
    }

    /// What a running call holds; `None` when it holds nothing (a free call, or one settled).
    pub async fn hold(&mut self, unique_id: &str) -> Result<Option<Hold>, StoreError> {
        let row: Option<(i64, i64)> =
            query_as("SELECT rate_per_minute, minutes FROM credit_holds WHERE unique_id = $1")
                .bind(unique_id)
                .fetch_optional(&mut self.conn)
                .await?;
        row.map(|(rate, minutes)| hold_from(rate, minutes)).transpose()
    }

    /// Extends the hold of a call that holds `paid_minutes` by one minute, if the enterprise's
    /// credit pays it. Only the hold of exactly `paid_minutes` is extended, so asking twice
    /// extends once; the hold's row is changed first, which makes a second request for the same
    /// call wait for the first. Whatever the answer, the transaction holds no half-made change.
    pub async fn extend_hold(&mut self, unique_id: &str, paid_minutes: u32) -> Result<Extension, StoreError> {
        let now = now_ms();
        let extended: Option<(i64, i64)> = query_as(
            "UPDATE credit_holds SET minutes = minutes + 1, updated_at = $3 \
             WHERE unique_id = $1 AND minutes = $2 RETURNING enterprise_id, rate_per_minute",
        )
        .bind(unique_id)
        .bind(i64::from(paid_minutes))
        .bind(now)
        .fetch_optional(&mut self.conn)
        .await?;
        let Some((enterprise, rate)) = extended else {
            return Ok(match self.hold(unique_id).await? {
                Some(hold) => Extension::AlreadyExtended(hold),
                None => Extension::NotHeld,
            });
        };
        let before = hold_from(rate, i64::from(paid_minutes))?;
        let paid = query(HOLD_MORE)
            .bind(enterprise)
            .bind(rate)
            .execute(&mut self.conn)
            .await?;
        if paid.rows_affected() == 0 {
            query("UPDATE credit_holds SET minutes = $2 WHERE unique_id = $1")
                .bind(unique_id)
                .bind(i64::from(paid_minutes))
                .execute(&mut self.conn)
                .await?;
            return Ok(Extension::Refused(before));
        }
        Ok(Extension::Extended(before.extended()))
    }

    /// Releases an ending call's hold: its row is deleted and the credit it held comes back to
    /// the enterprise, in this transaction; returns what it held (`None`: nothing). Call it in
    /// the transaction that completes the call's CDR, before computing the charge from it.
    pub async fn release_hold(&mut self, unique_id: &str) -> Result<Option<Hold>, StoreError> {
        let row: Option<(i64, i64, i64)> =
            query_as("DELETE FROM credit_holds WHERE unique_id = $1 RETURNING enterprise_id, rate_per_minute, minutes")
                .bind(unique_id)
                .fetch_optional(&mut self.conn)
                .await?;
        let Some((enterprise, rate, minutes)) = row else {
            return Ok(None);
        };
        let hold = hold_from(rate, minutes)?;
        // Should `held` ever have drifted below this hold, it is rebuilt from the holds left
        // rather than clamped (a clamp would overstate what is available).
        query(&format!(
            "UPDATE enterprises SET held = CASE WHEN held >= $2 THEN held - $2 ELSE {SUM_OF_HOLDS} END, \
             updated_at = $3 WHERE id = $1"
        ))
        .bind(enterprise)
        .bind(hold.amount().ten_thousandths())
        .bind(now_ms())
        .execute(&mut self.conn)
        .await?;
        Ok(Some(hold))
    }

    /// Charges an ended call (after [`release_hold`](Self::release_hold)): `charge` is taken
    /// from the balance with one ledger row, when it costs something. Call it in the
    /// transaction that completes the call's CDR, so a call is charged exactly once.
    pub async fn settle_call(
        &mut self,
        enterprise: EnterpriseId,
        unique_id: &str,
        charge: Money,
    ) -> Result<(), StoreError> {
        if !charge.is_positive() {
            return Ok(());
        }
        let row: Option<(i64,)> =
            query_as("UPDATE enterprises SET balance = balance - $2, updated_at = $3 WHERE id = $1 RETURNING balance")
                .bind(enterprise.get())
                .bind(charge.ten_thousandths())
                .bind(now_ms())
                .fetch_optional(&mut self.conn)
                .await?;
        let (balance,) = row.ok_or_else(|| StoreError::NotFound(format!("enterprise {enterprise}")))?;
        let debit = Money::ZERO.saturating_sub(charge);
        self.write_ledger(enterprise, debit, balance, LedgerKind::CallCharge, Some(unique_id))
            .await
    }

    /// The enterprises whose `held` differs from their holds, or that have a hold whose call is
    /// no longer running (its CDR complete or gone): what [`reconcile_held`](Self::reconcile_held)
    /// would change.
    pub async fn enterprises_to_reconcile(&mut self) -> Result<Vec<EnterpriseId>, StoreError> {
        let rows: Vec<(i64,)> = query_as(&format!(
            "SELECT id FROM enterprises WHERE held <> {SUM_OF_HOLDS} OR EXISTS ({ORPHAN_HOLDS}) ORDER BY id"
        ))
        .fetch_all(&mut self.conn)
        .await?;
        rows.into_iter()
            .map(|(id,)| EnterpriseId::new(id).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }

    /// Under the enterprise's lock (so no admission or settlement of another node slips in
    /// between): deletes its holds whose call is no longer running, and rebuilds its `held`
    /// from the holds left. Returns how many holds were deleted and whether `held` changed.
    pub async fn reconcile_held(&mut self, enterprise: EnterpriseId) -> Result<(u64, bool), StoreError> {
        if self.store.backend() == Backend::Postgres {
            query("SELECT id FROM enterprises WHERE id = $1 FOR NO KEY UPDATE")
                .bind(enterprise.get())
                .execute(&mut self.conn)
                .await?;
        }
        let orphans = query(&format!(
            "DELETE FROM credit_holds WHERE unique_id IN ({ORPHAN_HOLDS_OF_ONE})"
        ))
        .bind(enterprise.get())
        .execute(&mut self.conn)
        .await?
        .rows_affected();
        let corrected = query(&format!(
            "UPDATE enterprises SET held = {SUM_OF_HOLDS} WHERE id = $1 AND held <> {SUM_OF_HOLDS}"
        ))
        .bind(enterprise.get())
        .execute(&mut self.conn)
        .await?
        .rows_affected();
        Ok((orphans, corrected > 0))
    }

    /// The calls holding the enterprise's credit now, and what each holds.
    pub async fn holds(&mut self, enterprise: EnterpriseId) -> Result<Vec<(String, Hold)>, StoreError> {
        let rows: Vec<(String, i64, i64)> = query_as(
            "SELECT unique_id, rate_per_minute, minutes FROM credit_holds WHERE enterprise_id = $1 ORDER BY unique_id",
        )
        .bind(enterprise.get())
        .fetch_all(&mut self.conn)
        .await?;
        rows.into_iter()
            .map(|(unique_id, rate, minutes)| Ok((unique_id, hold_from(rate, minutes)?)))
            .collect()
    }
}

/// Why the balance moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerKind {
    TopUp,
    /// An operator's negative correction.
    Adjustment,
    /// The settlement of an ended call.
    CallCharge,
}

impl LedgerKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::TopUp => "top_up",
            LedgerKind::Adjustment => "adjustment",
            LedgerKind::CallCharge => "call_charge",
        }
    }

    fn parse(stored: &str) -> Result<Self, StoreError> {
        [LedgerKind::TopUp, LedgerKind::Adjustment, LedgerKind::CallCharge]
            .into_iter()
            .find(|kind| kind.as_str() == stored)
            .ok_or_else(|| StoreError::Corrupt(format!("ledger kind {stored:?}")))
    }
}

/// One movement of an enterprise's balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub amount: Money,
    pub balance_after: Money,
    pub kind: LedgerKind,
    /// The operator's reference of a top-up, the `uniqueId` of a call charge.
    pub reference: Option<String>,
    pub created_at: i64,
}

impl Tx<'_> {
    /// The enterprise's latest balance movements, newest first.
    pub async fn ledger(&mut self, enterprise: EnterpriseId, limit: u32) -> Result<Vec<LedgerEntry>, StoreError> {
        let rows: Vec<(i64, i64, String, Option<String>, i64)> = query_as(
            "SELECT amount, balance_after, kind, reference, created_at FROM balance_ledger \
             WHERE enterprise_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(enterprise.get())
        .bind(i64::from(limit))
        .fetch_all(&mut self.conn)
        .await?;
        rows.into_iter()
            .map(|(amount, balance_after, kind, reference, created_at)| {
                Ok(LedgerEntry {
                    amount: Money::from_ten_thousandths(amount),
                    balance_after: Money::from_ten_thousandths(balance_after),
                    kind: LedgerKind::parse(&kind)?,
                    reference,
                    created_at,
                })
            })
            .collect()
    }
}
