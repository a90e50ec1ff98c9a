//! Credit holds ([`dialbridge_core::credit`]): one row per running call that costs money, and
//! the enterprise's `held` sum beside its balance, changed together in one transaction. Every
//! hold is taken or extended by a conditional update of the enterprise's row, so two
//! transactions can never both spend the same credit: on SQLite the single writer serialises
//! them; on PostgreSQL the second waits for the row and re-checks the condition on what the
//! first committed.

use dialbridge_core::{EnterpriseId, Hold, Money};

use crate::config::now_ms;
use crate::db::{query, query_as};
use crate::{StoreError, Tx};

/// Holds `amount` more of the enterprise's credit if what is available pays it (and something
/// is available); false when it does not, and then nothing was changed.
const HOLD_MORE: &str = "UPDATE enterprises SET held = held + $2 \
     WHERE id = $1 AND balance + credit_limit - held >= $2 AND balance + credit_limit - held > 0";

fn hold_from(rate: i64, minutes: i64) -> Result<Hold, StoreError> {
    Ok(Hold {
        rate: Money::from_ten_thousandths(rate),
        minutes: u32::try_from(minutes).map_err(|_| StoreError::Corrupt(format!("a hold of {minutes} minutes")))?,
    })
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

    /// Extends the hold of a call that holds `paid_minutes` by one minute. Returns the hold as
    /// it is now: one minute longer; as it was when the enterprise's credit does not pay
    /// another minute; already longer when an earlier request extended it (asking twice
    /// extends once). `None` when the call holds nothing.
    pub async fn extend_hold(&mut self, unique_id: &str, paid_minutes: u32) -> Result<Option<Hold>, StoreError> {
        let row: Option<(i64, i64, i64)> =
            query_as("SELECT enterprise_id, rate_per_minute, minutes FROM credit_holds WHERE unique_id = $1")
                .bind(unique_id)
                .fetch_optional(&mut self.conn)
                .await?;
        let Some((enterprise, rate, minutes)) = row else {
            return Ok(None);
        };
        let hold = hold_from(rate, minutes)?;
        if hold.minutes != paid_minutes {
            return Ok(Some(hold));
        }
        let done = query(HOLD_MORE)
            .bind(enterprise)
            .bind(rate)
            .execute(&mut self.conn)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(Some(hold));
        }
        let extended = hold.extended();
        query("UPDATE credit_holds SET minutes = $2, updated_at = $3 WHERE unique_id = $1")
            .bind(unique_id)
            .bind(i64::from(extended.minutes))
            .bind(now_ms())
            .execute(&mut self.conn)
            .await?;
        Ok(Some(extended))
    }

    /// Settles an ended call: its hold (if any) is released and `charge` taken from the
    /// balance, with one ledger row when it costs something. Call it in the transaction that
    /// completes the call's CDR, so a call is settled exactly once.
    pub async fn settle_call(
        &mut self,
        enterprise: EnterpriseId,
        unique_id: &str,
        charge: Money,
    ) -> Result<(), StoreError> {
        let released: Option<(i64,)> =
            query_as("DELETE FROM credit_holds WHERE unique_id = $1 RETURNING rate_per_minute * minutes")
                .bind(unique_id)
                .fetch_optional(&mut self.conn)
                .await?;
        let released = released.map_or(0, |(amount,)| amount);
        if released == 0 && !charge.is_positive() {
            return Ok(());
        }
        let row: Option<(i64,)> = query_as(
            "UPDATE enterprises SET balance = balance - $2, held = held - $3, updated_at = $4 WHERE id = $1 RETURNING balance",
        )
        .bind(enterprise.get())
        .bind(charge.ten_thousandths())
        .bind(released)
        .bind(now_ms())
        .fetch_optional(&mut self.conn)
        .await?;
        let (balance,) = row.ok_or_else(|| StoreError::NotFound(format!("enterprise {enterprise}")))?;
        if charge.is_positive() {
            let debit = Money::ZERO.saturating_sub(charge);
            self.write_ledger(enterprise, debit, balance, LedgerKind::CallCharge, Some(unique_id))
                .await?;
        }
        Ok(())
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
