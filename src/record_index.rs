//! The list indexes beside the event index (`crate::event_log`, in the same Durable Object,
//! `routes::event_log`): one table each for charges, Identity users and notifications, behind
//! `GET /charges`, `GET /identity/users` and `GET /notifications`. A row is written (or
//! removed) wherever KV's record is, by the KV adapter (`store::kv`), and carries the record's
//! own expiry, so the index keeps what KV keeps. Pure: the key → row mapping, the queries'
//! parameters, the SQL (values always bound) and the page.

use serde::Serialize;

use crate::billing::ChargeRecord;
use crate::error::AppError;
use crate::event_log::{
    parse_customer, parse_limit, parse_seconds, Bound, Entry, DEFAULT_EVENTS_LIMIT,
};
use crate::identity::{is_user_id, UserRecord};
use crate::notify::{Notification, Recipient};

/// One indexed kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Charges,
    Users,
    Notifications,
}

/// A filter parameter: its name, the column it matches, and what it accepts.
struct Param {
    name: &'static str,
    column: &'static str,
    check: fn(&str) -> Result<String, AppError>,
}

const CHARGE_PARAMS: &[Param] = &[
    Param {
        name: "status",
        column: "status",
        check: |v| {
            word(
                "status",
                v,
                "a charge status, e.g. `succeeded`, `recovered`",
            )
        },
    },
    Param {
        name: "recovery",
        column: "recovery",
        check: |v| {
            word(
                "recovery",
                v,
                "a recovery status (`open`, `processing`, `paid`, `failed`, `expired`) or `none`",
            )
        },
    },
    Param {
        name: "customer",
        column: "customer",
        check: |v| parse_customer(v).map(str::to_owned),
    },
];

const USER_PARAMS: &[Param] = &[Param {
    name: "status",
    column: "status",
    check: |v| {
        word(
            "status",
            v,
            "a user status, e.g. `verified`, `requires_input`, `processing`, `canceled`, `none`",
        )
    },
}];

const NOTIFICATION_PARAMS: &[Param] = &[
    Param {
        name: "state",
        column: "state",
        check: |v| match v {
            "pending" | "delivered" | "dead" => Ok(v.to_owned()),
            _ => Err(AppError::BadQuery(
                "`state` is one of `pending`, `delivered`, `dead`".into(),
            )),
        },
    },
    Param {
        name: "kind",
        column: "kind",
        check: |v| {
            crate::event_log::parse_type(v)
                .map_err(|_| bad_value("kind", "a notification kind, e.g. `charge.recovery`"))
        },
    },
    Param {
        name: "user",
        column: "recipient",
        check: |v| match is_user_id(v) {
            true => Ok(format!("user:{v}")),
            false => Err(bad_value("user", "a user id")),
        },
    },
    Param {
        name: "customer",
        column: "recipient",
        check: |v| parse_customer(v).map(|c| format!("customer:{c}")),
    },
];

fn bad_value(name: &str, what: &str) -> AppError {
    AppError::BadQuery(format!("`{name}` is {what}"))
}

/// A status word: lowercase letters and `_` (Stripe adds statuses, so any such word is
/// accepted and simply matches nothing when unknown).
fn word(name: &str, value: &str, what: &str) -> Result<String, AppError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(bad_value(name, what))
    }
}

impl Table {
    /// The table a KV key's record is indexed in, with the record's id.
    pub fn of_key(key: &str) -> Option<(Self, &str)> {
        if let Some(id) = key.strip_prefix("charge:") {
            return Some((Self::Charges, id));
        }
        if let Some(id) = key.strip_prefix("identity:user:") {
            return Some((Self::Users, id));
        }
        key.strip_prefix("notification:")
            .map(|id| (Self::Notifications, id))
    }

    /// Its SQL name, its path word at the index and its page's field.
    pub fn name(self) -> &'static str {
        match self {
            Self::Charges => "charges",
            Self::Users => "users",
            Self::Notifications => "notifications",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Charges, Self::Users, Self::Notifications]
            .into_iter()
            .find(|t| t.name() == name)
    }

    fn params(self) -> &'static [Param] {
        match self {
            Self::Charges => CHARGE_PARAMS,
            Self::Users => USER_PARAMS,
            Self::Notifications => NOTIFICATION_PARAMS,
        }
    }

    /// The filter columns, in [`Row::columns`] order (a column two parameters share is one).
    fn columns(self) -> Vec<&'static str> {
        let mut columns: Vec<&'static str> = Vec::new();
        for param in self.params() {
            if !columns.contains(&param.column) {
                columns.push(param.column);
            }
        }
        columns
    }

    /// The table and one index per filter column, each ending in the listing's order, so a
    /// filtered page reads only the rows it returns (plus one).
    pub fn schema(self) -> String {
        let name = self.name();
        let columns = self.columns();
        let mut sql = format!(
            "CREATE TABLE IF NOT EXISTS {name} (id TEXT PRIMARY KEY, at INTEGER NOT NULL, "
        );
        for column in &columns {
            sql.push_str(&format!("{column} TEXT, "));
        }
        sql.push_str("expires_at INTEGER, record TEXT NOT NULL); ");
        sql.push_str(&format!(
            "CREATE INDEX IF NOT EXISTS {name}_recent ON {name} (at, id); \
             CREATE INDEX IF NOT EXISTS {name}_expiry ON {name} (expires_at)"
        ));
        for column in &columns {
            sql.push_str(&format!(
                "; CREATE INDEX IF NOT EXISTS {name}_{column} ON {name} ({column}, at, id)"
            ));
        }
        sql
    }

    /// `INSERT OR REPLACE` of a [`Row`]: a record rewritten replaces its row.
    pub fn upsert(self) -> String {
        let columns = self.columns();
        let marks = vec!["?"; columns.len() + 4].join(", ");
        format!(
            "INSERT OR REPLACE INTO {} (id, at, {}, expires_at, record) VALUES ({marks})",
            self.name(),
            columns.join(", ")
        )
    }

    pub fn delete(self) -> String {
        format!("DELETE FROM {} WHERE id = ?", self.name())
    }

    /// Rows whose record expired (bind now), as KV's copy has.
    pub fn purge(self) -> String {
        format!(
            "DELETE FROM {} WHERE expires_at IS NOT NULL AND expires_at <= ?",
            self.name()
        )
    }

    /// The earliest expiry left: when the next purge is due.
    pub fn next_expiry(self) -> String {
        format!("SELECT MIN(expires_at) FROM {}", self.name())
    }

    /// The list this table answers, in the page's words: `{"charges":[…],"cursor":…}`.
    fn known(self) -> String {
        let mut names: Vec<String> = self
            .params()
            .iter()
            .map(|p| format!("`{}`", p.name))
            .collect();
        names.extend(["`since`", "`until`", "`limit`", "`cursor`"].map(String::from));
        format!("unknown parameter; the known ones are {}", names.join(", "))
    }
}

/// What an entity's queue sends the index once its piece of work is done, in one request
/// (`POST /batch`) instead of one per record: the event's row when the work was an event, and
/// the list row of each indexed record the work wrote (its last one, if written twice).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Batch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Entry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<BatchRow>,
}
crate::json::decode_map!(Batch {
    event: "event" default,
    rows: "rows" default,
});

/// A list row and its table's name ([`Table::name`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchRow {
    pub table: String,
    pub row: Row,
}
crate::json::decode_map!(BatchRow {
    table: "table" required,
    row: "row" required,
});

impl Batch {
    /// Adds `row`; a row of the same record already in the batch is replaced (the record's
    /// last write is the one KV keeps).
    pub fn push(&mut self, table: Table, row: Row) {
        let name = table.name();
        match self
            .rows
            .iter_mut()
            .find(|r| r.table == name && r.row.id == row.id)
        {
            Some(found) => found.row = row,
            None => self.rows.push(BatchRow {
                table: name.to_owned(),
                row,
            }),
        }
    }

    /// Drops the row of record `id` of `table`, if the batch has one.
    pub fn remove(&mut self, table: Table, id: &str) {
        let name = table.name();
        self.rows.retain(|r| !(r.table == name && r.row.id == id));
    }

    pub fn is_empty(&self) -> bool {
        self.event.is_none() && self.rows.is_empty()
    }

    /// Each row with its table (`None`: a name this index does not know).
    pub fn tables(&self) -> impl Iterator<Item = (Option<Table>, &Row)> {
        self.rows
            .iter()
            .map(|r| (Table::from_name(&r.table), &r.row))
    }
}

/// One row: the record's id, its time (the listing's order and `since`/`until`), its filter
/// columns in [`Table::columns`] order, its expiry (unix seconds; none: kept) and its JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub id: String,
    pub at: i64,
    pub columns: Vec<Option<String>>,
    pub expires_at: Option<i64>,
    pub record: String,
}
crate::json::decode_map!(Row {
    id: "id" required,
    at: "at" required,
    columns: "columns" required,
    expires_at: "expires_at" default,
    record: "record" required,
});

impl Row {
    /// The row for a record written under `key` (`None`: not an indexed key, or a value that
    /// is not the key's record). `ttl_seconds` is the write's own, so the row expires with it.
    pub fn of_write(
        key: &str,
        value: &str,
        ttl_seconds: Option<u64>,
        now: i64,
    ) -> Option<(Table, Self)> {
        let (table, id) = Table::of_key(key)?;
        let (at, columns) = match table {
            Table::Charges => {
                let charge: ChargeRecord = serde_json::from_str(value).ok()?;
                let recovery = charge.recovery.map_or("none".to_owned(), |r| r.status);
                (
                    charge.created_at,
                    vec![Some(charge.status), Some(recovery), charge.customer],
                )
            }
            Table::Users => {
                let user: UserRecord = serde_json::from_str(value).ok()?;
                (user.updated_at, vec![Some(user.status)])
            }
            Table::Notifications => {
                let notification: Notification = serde_json::from_str(value).ok()?;
                let recipient = match notification.recipient {
                    Recipient::User(id) => format!("user:{id}"),
                    Recipient::Customer(id) => format!("customer:{id}"),
                    Recipient::Operator => "operator".to_owned(),
                };
                (
                    notification.created_at,
                    vec![
                        Some(notification.state.as_str().to_owned()),
                        Some(notification.kind),
                        Some(recipient),
                    ],
                )
            }
        };
        let row = Self {
            id: id.to_owned(),
            at,
            columns,
            expires_at: ttl_seconds.map(|ttl| now + ttl as i64),
            record: value.to_owned(),
        };
        Some((table, row))
    }

    /// The values for [`Table::upsert`], in its order (`None` for a row of another shape).
    pub fn bindings(&self, table: Table) -> Option<Vec<Bound>> {
        if self.columns.len() != table.columns().len() {
            return None;
        }
        let mut bound = vec![Bound::Text(self.id.clone()), Bound::Integer(self.at)];
        bound.extend(
            self.columns
                .iter()
                .map(|c| c.clone().map_or(Bound::Null, Bound::Text)),
        );
        bound.push(self.expires_at.map_or(Bound::Null, Bound::Integer));
        bound.push(Bound::Text(self.record.clone()));
        Some(bound)
    }
}

/// Where a page ends: the last row's time and id (hex of `{at}.{id}` on the wire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub at: i64,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        crate::event_log::encode_position(self.at, &self.id)
    }

    /// A cursor a list route handed out, or `None`.
    pub fn decode(text: &str) -> Option<Self> {
        let (at, id) = crate::event_log::decode_position(text, 600, is_row_id)?;
        Some(Self { at, id })
    }
}

/// An id a list's row can have (a charge's, a user's or a notification's).
fn is_row_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.@".contains(&b))
}

/// A list query over one table, validated: filters combine with AND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub table: Table,
    /// `(column, value)`, in the order given.
    pub filters: Vec<(&'static str, String)>,
    /// `at >= since`.
    pub since: Option<i64>,
    /// `at < until`.
    pub until: Option<i64>,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

impl ListQuery {
    /// Reads the query string (without `?`) as `GET /events` does: an unknown parameter (the
    /// message lists the known ones), one given twice or a value out of shape is a 400
    /// `bad_query` that names the parameter and never quotes the value.
    pub fn parse(table: Table, query: Option<&str>) -> Result<Self, AppError> {
        let mut parsed = Self {
            table,
            filters: Vec::new(),
            since: None,
            until: None,
            limit: DEFAULT_EVENTS_LIMIT,
            cursor: None,
        };
        crate::event_log::take_each_once(query, |name, value| parsed.take(name, value))?;
        let shared =
            parsed.filters.iter().enumerate().any(|(i, (column, _))| {
                parsed.filters[..i].iter().any(|(other, _)| other == column)
            });
        if shared {
            return Err(AppError::BadQuery(
                "give `customer` or `user`, not both: a notification has one recipient".into(),
            ));
        }
        crate::event_log::check_range(parsed.since, parsed.until)?;
        Ok(parsed)
    }

    fn take(&mut self, name: &str, value: &str) -> Result<(), AppError> {
        if let Some(param) = self.table.params().iter().find(|p| p.name == name) {
            self.filters.push((param.column, (param.check)(value)?));
            return Ok(());
        }
        match name {
            "since" => self.since = Some(parse_seconds("since", value)?),
            "until" => self.until = Some(parse_seconds("until", value)?),
            "limit" => self.limit = parse_limit(value)?,
            "cursor" if value.is_empty() => self.cursor = None,
            "cursor" => {
                self.cursor = Some(Cursor::decode(value).ok_or_else(|| {
                    AppError::BadQuery("`cursor` is not a cursor returned by this route".into())
                })?)
            }
            _ => return Err(AppError::BadQuery(self.table.known())),
        }
        Ok(())
    }

    /// The page's SQL and bindings: newest first, one row more than `limit`.
    pub fn sql(&self) -> (String, Vec<Bound>) {
        let mut clauses: Vec<String> = Vec::new();
        let mut bound = Vec::new();
        for (column, value) in &self.filters {
            clauses.push(format!("{column} = ?"));
            bound.push(Bound::Text(value.clone()));
        }
        if let Some(since) = self.since {
            clauses.push("at >= ?".into());
            bound.push(Bound::Integer(since));
        }
        if let Some(until) = self.until {
            clauses.push("at < ?".into());
            bound.push(Bound::Integer(until));
        }
        if let Some(cursor) = &self.cursor {
            clauses.push("(at < ? OR (at = ? AND id < ?))".into());
            bound.extend([
                Bound::Integer(cursor.at),
                Bound::Integer(cursor.at),
                Bound::Text(cursor.id.clone()),
            ]);
        }
        let mut sql = format!("SELECT at, id, record FROM {}", self.table.name());
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        sql.push_str(" ORDER BY at DESC, id DESC LIMIT ?");
        bound.push(Bound::Integer(self.limit as i64 + 1));
        (sql, bound)
    }

    /// The page's JSON from the rows the SQL returned (`(at, id, record)`, newest first): the
    /// records as stored, and the cursor when there is a next page.
    pub fn page(&self, rows: &[(i64, String, String)]) -> String {
        let shown = &rows[..rows.len().min(self.limit)];
        let records: Vec<&str> = shown.iter().map(|(_, _, r)| r.as_str()).collect();
        let cursor = match shown.last() {
            Some((at, id, _)) if rows.len() > self.limit => format!(
                "\"{}\"",
                Cursor {
                    at: *at,
                    id: id.clone()
                }
                .encode()
            ),
            _ => "null".to_owned(),
        };
        format!(
            "{{\"{}\":[{}],\"cursor\":{cursor}}}",
            self.table.name(),
            records.join(",")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(table: Table, query: &str) -> String {
        match ListQuery::parse(table, Some(query)) {
            Err(AppError::BadQuery(message)) => message,
            other => panic!("{query}: {other:?}"),
        }
    }

    #[test]
    fn a_batch_keeps_each_records_last_row_and_crosses_the_binding() {
        let row = |id: &str, at: i64| Row {
            id: id.into(),
            at,
            columns: vec![Some("processing".into())],
            expires_at: None,
            record: "{}".into(),
        };
        let mut batch = Batch::default();
        assert!(batch.is_empty());
        assert_eq!(serde_json::to_string(&batch).unwrap(), "{}");
        batch.push(Table::Users, row("ann", 1));
        batch.push(Table::Charges, row("ann", 2));
        batch.push(Table::Users, row("ann", 3));
        assert!(!batch.is_empty());
        let text = serde_json::to_string(&batch).unwrap();
        let back: Batch = serde_json::from_str(&text).unwrap();
        assert_eq!(back, batch);
        let tables: Vec<_> = back.tables().map(|(t, r)| (t, r.at)).collect();
        assert_eq!(tables, [(Some(Table::Users), 3), (Some(Table::Charges), 2)]);
        let unknown: Batch =
            serde_json::from_str(r#"{"rows":[{"table":"x","row":{"id":"a","at":1,"columns":[],"expires_at":null,"record":"{}"}}]}"#)
                .unwrap();
        assert_eq!(unknown.tables().next().map(|(t, _)| t), Some(None));
    }

    #[test]
    fn keys_map_to_their_tables() {
        assert_eq!(Table::of_key("charge:pi_1"), Some((Table::Charges, "pi_1")));
        assert_eq!(
            Table::of_key("identity:user:u_1"),
            Some((Table::Users, "u_1"))
        );
        assert_eq!(
            Table::of_key("notification:evt_1.x"),
            Some((Table::Notifications, "evt_1.x"))
        );
        for other in [
            "charge_key:k",
            "event:evt_1",
            "identity:session:vs_1",
            "customer:cus_1",
        ] {
            assert_eq!(Table::of_key(other), None, "{other}");
        }
        for table in [Table::Charges, Table::Users, Table::Notifications] {
            assert_eq!(Table::from_name(table.name()), Some(table));
        }
    }

    #[test]
    fn each_table_has_an_index_per_filter_and_binds_every_column() {
        let schema = Table::Charges.schema();
        for index in [
            "charges_recent ON charges (at, id)",
            "charges_status ON charges (status, at, id)",
            "charges_recovery ON charges (recovery, at, id)",
            "charges_customer ON charges (customer, at, id)",
        ] {
            assert!(schema.contains(index), "{schema}");
        }
        assert!(Table::Notifications
            .schema()
            .contains("notifications_recipient ON"));
        assert_eq!(
            Table::Notifications.upsert(),
            "INSERT OR REPLACE INTO notifications (id, at, state, kind, recipient, expires_at, record) \
             VALUES (?, ?, ?, ?, ?, ?, ?)"
        );
    }

    #[test]
    fn a_charge_write_is_its_row_with_its_recovery_and_expiry() {
        let json = r#"{"version":1,"id":"pi_1","customer":"cus_9","amount":500,"currency":"eur",
            "status":"requires_payment_method","paid":false,"created_at":100,"updated_at":120,
            "recovery":{"checkout_session":"cs_1","url":null,"status":"open"}}"#;
        let (table, row) = Row::of_write("charge:pi_1", json, None, 5_000).unwrap();
        assert_eq!(table, Table::Charges);
        assert_eq!(
            (row.id.as_str(), row.at, row.expires_at),
            ("pi_1", 100, None)
        );
        assert_eq!(
            row.columns,
            [
                Some("requires_payment_method".into()),
                Some("open".into()),
                Some("cus_9".into())
            ]
        );
        let bound = row.bindings(table).unwrap();
        assert_eq!(bound.len(), table.upsert().matches('?').count());
        let plain = json.replace(
            r#""recovery":{"checkout_session":"cs_1","url":null,"status":"open"}"#,
            r#""recovery":null"#,
        );
        let (_, row) = Row::of_write("charge:pi_1", &plain, Some(60), 5_000).unwrap();
        assert_eq!(
            (row.columns[1].as_deref(), row.expires_at),
            (Some("none"), Some(5_060))
        );
        assert_eq!(Row::of_write("charge:pi_1", "{", None, 0), None);
        assert_eq!(Row::of_write("event:evt_1", json, None, 0), None);
        assert_eq!(row.bindings(Table::Users), None);
    }

    #[test]
    fn users_and_notifications_rows_carry_their_filters() {
        let user = crate::identity::UserRecord::new("u_1");
        let json = serde_json::to_string(&user).unwrap();
        let (table, row) = Row::of_write("identity:user:u_1", &json, None, 0).unwrap();
        assert_eq!(
            (table, row.columns.clone()),
            (Table::Users, vec![Some("none".into())])
        );
        let mut note = Notification::new(
            "evt_1",
            "charge.recovery",
            Recipient::Customer("cus_1".into()),
            Default::default(),
        );
        note.created_at = 77;
        let json = serde_json::to_string(&note).unwrap();
        let (table, row) =
            Row::of_write("notification:evt_1.charge.recovery", &json, Some(90), 10).unwrap();
        assert_eq!(table, Table::Notifications);
        assert_eq!(
            (row.at, row.expires_at, row.columns),
            (
                77,
                Some(100),
                vec![
                    Some("pending".into()),
                    Some("charge.recovery".into()),
                    Some("customer:cus_1".into())
                ]
            )
        );
        note.recipient = Recipient::Operator;
        let json = serde_json::to_string(&note).unwrap();
        let (_, row) = Row::of_write("notification:x", &json, None, 0).unwrap();
        assert_eq!(row.columns[2].as_deref(), Some("operator"));
    }

    #[test]
    fn filters_are_bound_never_interpolated_newest_first() {
        let query = ListQuery::parse(
            Table::Charges,
            Some("status=requires_payment_method&recovery=open&customer=cus_1x&since=10&until=20&limit=5"),
        )
        .unwrap();
        let (sql, bound) = query.sql();
        assert_eq!(
            sql,
            "SELECT at, id, record FROM charges WHERE status = ? AND recovery = ? AND customer = ? \
             AND at >= ? AND at < ? ORDER BY at DESC, id DESC LIMIT ?"
        );
        assert_eq!(
            bound,
            vec![
                Bound::Text("requires_payment_method".into()),
                Bound::Text("open".into()),
                Bound::Text("cus_1x".into()),
                Bound::Integer(10),
                Bound::Integer(20),
                Bound::Integer(6),
            ]
        );
        let (sql, bound) = ListQuery::parse(Table::Users, None).unwrap().sql();
        assert_eq!(
            sql,
            "SELECT at, id, record FROM users ORDER BY at DESC, id DESC LIMIT ?"
        );
        assert_eq!(bound, vec![Bound::Integer(21)]);
        let (sql, bound) = ListQuery::parse(
            Table::Notifications,
            Some("user=u_1&kind=identity.verified&state=dead"),
        )
        .unwrap()
        .sql();
        assert!(
            sql.contains("WHERE recipient = ? AND kind = ? AND state = ?"),
            "{sql}"
        );
        assert_eq!(bound[0], Bound::Text("user:u_1".into()));
        let (_, bound) = ListQuery::parse(Table::Notifications, Some("customer=cus_2"))
            .unwrap()
            .sql();
        assert_eq!(bound[0], Bound::Text("customer:cus_2".into()));
    }

    #[test]
    fn the_cursor_continues_after_the_last_row() {
        let rows: Vec<(i64, String, String)> = [(30, "pi_c"), (20, "pi_b"), (20, "pi_a")]
            .iter()
            .map(|(at, id)| (*at, id.to_string(), format!("{{\"id\":\"{id}\"}}")))
            .collect();
        let query = ListQuery::parse(Table::Charges, Some("limit=2")).unwrap();
        let page = query.page(&rows);
        let value: serde_json::Value = serde_json::from_str(&page).unwrap();
        assert_eq!(value["charges"].as_array().unwrap().len(), 2);
        let cursor = value["cursor"].as_str().unwrap();
        assert_eq!(
            Cursor::decode(cursor),
            Some(Cursor {
                at: 20,
                id: "pi_b".into()
            })
        );
        let next = ListQuery::parse(Table::Charges, Some(&format!("cursor={cursor}"))).unwrap();
        let (sql, bound) = next.sql();
        assert!(sql
            .ends_with("WHERE (at < ? OR (at = ? AND id < ?)) ORDER BY at DESC, id DESC LIMIT ?"));
        assert_eq!(bound[2], Bound::Text("pi_b".into()));
        assert_eq!(
            query.page(&rows[..2]),
            r#"{"charges":[{"id":"pi_c"},{"id":"pi_b"}],"cursor":null}"#
        );
        assert_eq!(
            ListQuery::parse(Table::Users, None).unwrap().page(&[]),
            r#"{"users":[],"cursor":null}"#
        );
    }

    #[test]
    fn bad_queries_name_the_parameter_and_never_quote_the_value() {
        for (table, query, name) in [
            (Table::Charges, "status=Paid", "`status`"),
            (Table::Charges, "status=", "`status`"),
            (Table::Charges, "recovery=op%20en", "`recovery`"),
            (Table::Charges, "customer=cust_1", "`customer`"),
            (Table::Charges, "since=-1", "`since`"),
            (Table::Charges, "since=9&until=9", "`since`"),
            (Table::Charges, "limit=101", "`limit`"),
            (
                Table::Charges,
                "status=succeeded&status=canceled",
                "`status` is given twice",
            ),
            (Table::Users, "status=X1", "`status`"),
            (Table::Users, "until=1.5", "`until`"),
            (Table::Notifications, "state=sent", "`state`"),
            (Table::Notifications, "kind=Charge", "`kind`"),
            (Table::Notifications, "user=a%20b", "`user`"),
            (Table::Notifications, "customer=cust_1", "`customer`"),
            (
                Table::Notifications,
                "user=u_1&customer=cus_1",
                "`customer` or `user`",
            ),
            (Table::Notifications, "cursor=%3Cscript%3E", "`cursor`"),
        ] {
            let message = bad(table, query);
            assert!(message.contains(name), "{query}: {message}");
            for quoted in ["Paid", "cust_1", "X1", "sent", "Charge", "script", "op en"] {
                assert!(!message.contains(quoted), "{query}: {message}");
            }
        }
        let message = bad(Table::Charges, "outcome=failed");
        assert!(message.starts_with("unknown parameter"), "{message}");
        for known in [
            "`status`",
            "`recovery`",
            "`customer`",
            "`since`",
            "`until`",
            "`limit`",
            "`cursor`",
        ] {
            assert!(message.contains(known), "{message}");
        }
        assert!(!bad(Table::Users, "customer=cus_1").contains("`recovery`"));
        let error = ListQuery::parse(Table::Users, Some("limit=0")).unwrap_err();
        assert_eq!((error.status(), error.code()), (400, "bad_query"));
        for forged in [hex::encode("1.a b"), hex::encode("x.pi_1"), "zz".into()] {
            assert!(bad(Table::Charges, &format!("cursor={forged}")).contains("`cursor`"));
        }
    }
}
