//! The file `tollgate export` writes and `tollgate import` reads: JSON lines, a header first, one line
//! per row, and an end line counting the rows (so a truncated file is told from a whole one).
//!
//! ```text
//! {"format":"tollgate-export","version":1,"schema_version":11,"exported_at":"2026-05-01T12:00:00Z"}
//! {"table":"users","row":{"id":"usr_…","password_hash":"$2b$12$…",…}}
//! {"end":true,"rows":1234}
//! ```
//!
//! Errors name the line and what is wrong with it, never its content: rows hold password hashes,
//! token HMACs and wrapped keys.

use serde::Serialize;
use serde_json::{Map, Value};
use tollgate::ValidationError;

/// What the header's `format` says.
pub(crate) const FORMAT: &str = "tollgate-export";
/// The version of this file format that this tollgate writes and reads.
pub(crate) const VERSION: u64 = 1;

/// The first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Header {
    pub(crate) format: &'static str,
    pub(crate) version: u64,
    pub(crate) schema_version: i64,
    pub(crate) exported_at: String,
}

/// A row's line.
#[derive(Debug, Serialize)]
pub(crate) struct RowLine<'a> {
    pub(crate) table: &'a str,
    pub(crate) row: &'a Map<String, Value>,
}

/// The last line.
#[derive(Debug, Serialize)]
pub(crate) struct EndLine {
    pub(crate) end: bool,
    pub(crate) rows: u64,
}

fn invalid(reason: String) -> ValidationError {
    ValidationError::new("file", reason)
}

/// Reads and checks the header: a tollgate export of a version this tollgate reads. Returns the
/// schema version it was exported at.
pub(crate) fn read_header(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> Result<i64, ValidationError> {
    let line = match lines.next() {
        None => return Err(invalid("is empty: not a tollgate export".to_owned())),
        Some(Err(_)) => return Err(invalid("line 1 cannot be read as text: not a tollgate export".to_owned())),
        Some(Ok(line)) => line,
    };
    let header: Value =
        serde_json::from_str(&line).map_err(|_| invalid("line 1 is not JSON: not a tollgate export".to_owned()))?;
    if header.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(invalid("line 1 is not the header of a tollgate export".to_owned()));
    }
    let version = header.get("version").and_then(Value::as_u64);
    let schema_version = header.get("schema_version").and_then(Value::as_i64);
    match (version, schema_version) {
        (Some(VERSION), Some(schema_version)) => Ok(schema_version),
        (Some(version), Some(schema_version)) => Err(invalid(format!(
            "is a tollgate export of version {version} (schema version {schema_version}); this tollgate reads \
             version {VERSION} only"
        ))),
        _ => Err(invalid("line 1 has no version and schema_version: not the header of a tollgate export".to_owned())),
    }
}

/// One line after the header.
#[derive(Debug, PartialEq)]
pub(crate) enum Item {
    /// A row of `table`, on line `line`.
    Row { line: u64, table: &'static str, row: Map<String, Value> },
    /// The end line: the file is whole.
    End { rows: u64 },
}

/// The lines after the header, checked: every row names a table of `tables`, tables come in that
/// order, the file ends with an end line counting its rows and nothing after it.
#[derive(Debug)]
pub(crate) struct Items<L> {
    lines: L,
    tables: &'static [&'static str],
    /// The number of the last line read (the header is line 1).
    line: u64,
    rows: u64,
    /// The position in `tables` of the last row's table.
    table: usize,
    ended: bool,
}

impl<L: Iterator<Item = std::io::Result<String>>> Items<L> {
    /// The items of `lines`, read after the header.
    pub(crate) fn new(lines: L, tables: &'static [&'static str]) -> Self {
        Self { lines, tables, line: 1, rows: 0, table: 0, ended: false }
    }

    fn at(&self, reason: &str) -> ValidationError {
        invalid(format!("line {}: {reason}", self.line))
    }

    fn item(&mut self, text: &str) -> Result<Item, ValidationError> {
        let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(text) else {
            return Err(self.at("not a JSON object: not a line of a tollgate export"));
        };
        if object.get("end") == Some(&Value::Bool(true)) {
            let rows = object.get("rows").and_then(Value::as_u64);
            return match rows {
                Some(rows) if object.len() == 2 && rows == self.rows => Ok(Item::End { rows }),
                Some(rows) if object.len() == 2 => Err(self.at(&format!(
                    "the end line counts {rows} rows but the file holds {}: rows are missing or added",
                    self.rows
                ))),
                _ => Err(self.at("an end line is {\"end\":true,\"rows\":N}")),
            };
        }
        let (table, row) = (object.remove("table"), object.remove("row"));
        let (Some(Value::String(table)), Some(Value::Object(row)), true) = (table, row, object.is_empty()) else {
            return Err(self.at("not a row: a row is {\"table\":\"…\",\"row\":{…}}"));
        };
        let Some(position) = self.tables.iter().position(|known| *known == table) else {
            return Err(self.at("names a table this tollgate does not import"));
        };
        if position < self.table {
            return Err(self.at("a row of a table that came earlier in the file: the tables are out of order"));
        }
        self.table = position;
        self.rows += 1;
        Ok(Item::Row { line: self.line, table: self.tables[position], row })
    }

    /// The next item; `None` after the end line. An error names the line.
    pub(crate) fn next_item(&mut self) -> Result<Option<Item>, ValidationError> {
        let next = self.lines.next();
        self.line += 1;
        match next {
            None if self.ended => Ok(None),
            None => Err(invalid(format!(
                "ends after line {} without its end line: the export is truncated or was cut short",
                self.line - 1
            ))),
            Some(_) if self.ended => Err(self.at("more lines after the end line")),
            Some(Err(_)) => Err(self.at("cannot be read as text")),
            Some(Ok(text)) => {
                let item = self.item(&text)?;
                self.ended = matches!(item, Item::End { .. });
                Ok(Some(item))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::BufRead as _;

    use super::*;

    const TABLES: &[&str] = &["users", "tokens"];
    const HEADER: &str = r#"{"format":"tollgate-export","version":1,"schema_version":11,"exported_at":"x"}"#;

    /// Reads `text` to its end: the schema version and the items, or the first error.
    fn check(text: &str) -> Result<(i64, Vec<Item>), String> {
        let mut lines = text.as_bytes().lines();
        let schema_version = read_header(&mut lines).map_err(|error| error.to_string())?;
        let mut items = Items::new(lines, TABLES);
        let mut read = Vec::new();
        while let Some(item) = items.next_item().map_err(|error| error.to_string())? {
            read.push(item);
        }
        Ok((schema_version, read))
    }

    #[test]
    fn a_whole_file_reads_in_order() {
        let text = format!(
            "{HEADER}\n{}\n{}\n{}\n",
            r#"{"table":"users","row":{"id":"usr_1"}}"#,
            r#"{"table":"tokens","row":{"id":"tok_1"}}"#,
            r#"{"end":true,"rows":2}"#
        );
        let (schema_version, items) = check(&text).unwrap();
        assert_eq!(schema_version, 11);
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[1], Item::Row { line: 3, table: "tokens", row } if row["id"] == "tok_1"));
        assert_eq!(items[2], Item::End { rows: 2 });
    }

    #[test]
    fn every_fault_names_its_line_and_never_the_content() {
        let secret = "$2b$12$SECRETSECRETSECRET";
        let row = format!(r#"{{"table":"users","row":{{"password_hash":"{secret}"}}}}"#);
        for (text, expected) in [
            (String::new(), "is empty"),
            (format!("{{\"format\":\"x\"}}\n{row}"), "line 1 is not the header"),
            (
                format!("{}\n", HEADER.replace("\"version\":1", "\"version\":2")),
                "version 2 (schema version 11); this tollgate reads version 1",
            ),
            (format!("{HEADER}\n{row}\n"), "ends after line 2 without its end line"),
            (
                format!("{HEADER}\n{row}\n{{\"end\":true,\"rows\":5}}\n"),
                "line 3: the end line counts 5 rows but the file holds 1",
            ),
            (format!("{HEADER}\n{row}\n{{\"end\":true,\"rows\":1}}\n{row}\n"), "line 4: more lines after the end line"),
            (format!("{HEADER}\n{}\n", &row[..row.len() - 3]), "line 2: not a JSON object"),
            (
                format!("{HEADER}\n{}\n", row.replace("users", "secrets")),
                "line 2: names a table this tollgate does not import",
            ),
            (
                format!("{HEADER}\n{{\"table\":\"tokens\",\"row\":{{}}}}\n{row}\n"),
                "line 3: a row of a table that came earlier",
            ),
            (format!("{HEADER}\n{{\"table\":\"users\",\"row\":{{}},\"extra\":1}}\n"), "line 2: not a row"),
            (format!("{HEADER}\n\n"), "line 2: not a JSON object"),
        ] {
            let error = check(&text).unwrap_err();
            assert!(error.starts_with("file: "), "{error}");
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
            assert!(!error.contains("SECRET"), "{error}");
        }
    }
}
