//! An entity's table in its Durable Object's SQLite (`ctx.storage.sql`), behind the
//! [`Table`] port. Only built for wasm32. `sql.exec` is synchronous: nothing else runs in the
//! Durable Object while a statement does.

use std::cell::Cell;

use worker::{SqlCursor, SqlStorage, SqlStorageValue};

use super::entity::{Outlook, Row, Table};
use super::StoreError;

/// One row per key; `pending` until KV has the row's value.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS records (key TEXT PRIMARY KEY, value TEXT NOT NULL, \
     expires_at INTEGER, pending INTEGER NOT NULL DEFAULT 1); \
     CREATE INDEX IF NOT EXISTS records_expiry ON records (expires_at) WHERE expires_at IS NOT NULL; \
     CREATE INDEX IF NOT EXISTS records_pending ON records (pending) WHERE pending = 1";

pub struct SqlTable(pub SqlStorage);

/// Every row of a statement, read in a loop: `collect::<Result<Vec<_>, _>>()` compiled its
/// own adapter (`try_process`) for it. One copy for the entity tables, the event index and
/// the setup ceiling; the first row that does not read is the error, as with `collect`.
pub fn all_rows(cursor: &SqlCursor) -> worker::Result<Vec<Vec<SqlStorageValue>>> {
    let mut rows = Vec::new();
    for row in cursor.raw() {
        rows.push(row?);
    }
    Ok(rows)
}

fn failed(error: worker::Error) -> StoreError {
    StoreError::Unavailable(format!("entity table: {error}"))
}

impl SqlTable {
    /// The table, created when `created` says this instance has not made sure of it yet (its
    /// first use, or after its storage was deleted): three statements saved on every other
    /// piece of work.
    pub fn open(sql: SqlStorage, created: &Cell<bool>) -> Result<Self, StoreError> {
        if !created.get() {
            Self::run(&sql, SCHEMA, vec![])?;
            created.set(true);
        }
        Ok(Self(sql))
    }

    fn run(
        sql: &SqlStorage,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> Result<Vec<Vec<SqlStorageValue>>, StoreError> {
        let cursor = sql.exec(query, bindings).map_err(failed)?;
        all_rows(&cursor).map_err(failed)
    }

    fn exec(
        &self,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> Result<Vec<Vec<SqlStorageValue>>, StoreError> {
        Self::run(&self.0, query, bindings)
    }
}

fn row_of(value: SqlStorageValue, expires_at: SqlStorageValue) -> Option<Row> {
    let SqlStorageValue::String(value) = value else {
        return None;
    };
    let expires_at = match expires_at {
        SqlStorageValue::Integer(at) => Some(at),
        SqlStorageValue::Float(at) => Some(at as i64),
        _ => None,
    };
    Some(Row { value, expires_at })
}

impl Table for SqlTable {
    fn read(&self, key: &str) -> Result<Option<Row>, StoreError> {
        let rows = self.exec(
            "SELECT value, expires_at FROM records WHERE key = ?",
            vec![key.into()],
        )?;
        Ok(rows.into_iter().next().and_then(|mut row| {
            let expires_at = row.pop()?;
            let value = row.pop()?;
            row_of(value, expires_at)
        }))
    }

    fn write(&self, key: &str, row: &Row) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO records (key, value, expires_at, pending) VALUES (?, ?, ?, 1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
             expires_at = excluded.expires_at, pending = 1",
            vec![key.into(), row.value.as_str().into(), row.expires_at.into()],
        )?;
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.exec("DELETE FROM records WHERE key = ?", vec![key.into()])?;
        Ok(())
    }

    fn replicated(&self, key: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE records SET pending = 0 WHERE key = ?",
            vec![key.into()],
        )?;
        Ok(())
    }

    fn pending(&self) -> Result<Vec<(String, Row)>, StoreError> {
        let rows = self.exec(
            "SELECT key, value, expires_at FROM records WHERE pending = 1",
            vec![],
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|mut row| {
                let expires_at = row.pop()?;
                let value = row.pop()?;
                let SqlStorageValue::String(key) = row.pop()? else {
                    return None;
                };
                Some((key, row_of(value, expires_at)?))
            })
            .collect())
    }

    fn purge_expired(&self, now: i64) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM records WHERE expires_at IS NOT NULL AND expires_at <= ?",
            vec![now.into()],
        )?;
        Ok(())
    }

    fn expire_replicated(&self, at: i64) -> Result<(), StoreError> {
        self.exec(
            "UPDATE records SET expires_at = ? \
             WHERE pending = 0 AND (expires_at IS NULL OR expires_at > ?)",
            vec![at.into(), at.into()],
        )?;
        Ok(())
    }

    fn outlook(&self) -> Result<Outlook, StoreError> {
        let rows = self.exec("SELECT COUNT(*), MIN(expires_at) FROM records", vec![])?;
        let mut row = rows.into_iter().next().unwrap_or_default().into_iter();
        let number = |value: Option<SqlStorageValue>| match value {
            Some(SqlStorageValue::Integer(n)) => Some(n),
            Some(SqlStorageValue::Float(n)) => Some(n as i64),
            _ => None,
        };
        Ok(Outlook {
            rows: number(row.next()).unwrap_or(0).max(0) as usize,
            next_expiry: number(row.next()),
        })
    }
}
