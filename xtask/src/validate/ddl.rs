//! The schema that replaying CREATE/DROP/ALTER statements yields: tables with their columns,
//! indexes, triggers and views, each with the comparable form of its definition.

use std::collections::BTreeMap;

use super::sql::{Statement, Token};

/// A schema object's kind, as `sqlite_master.type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Table,
    Index,
    Trigger,
    View,
}

impl Kind {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text.to_lowercase().as_str() {
            "table" => Some(Self::Table),
            "index" => Some(Self::Index),
            "trigger" => Some(Self::Trigger),
            "view" => Some(Self::View),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::Index => "index",
            Self::Trigger => "trigger",
            Self::View => "view",
        }
    }
}

/// Where an object was declared: a migration file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) file: String,
    pub(crate) line: usize,
}

/// A table, index, trigger or view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Object {
    pub(crate) kind: Kind,
    pub(crate) name: String,
    /// The table it belongs to (itself for tables and views).
    pub(crate) table: String,
    /// A table's columns in order; `None` when unknown (`CREATE TABLE … AS SELECT`).
    pub(crate) columns: Option<Vec<String>>,
    /// The comparable form of its CREATE statement; `None` once an ALTER has rewritten it.
    pub(crate) definition: Option<Vec<String>>,
    /// Where it was declared (`None` for objects read from a database).
    pub(crate) origin: Option<Origin>,
}

/// Objects by lowercased name.
pub(crate) type Schema = BTreeMap<String, Object>;

/// The comparable form of a CREATE statement as SQLite stores it in `sqlite_master.sql`
/// (no `IF NOT EXISTS`, no `TEMP`).
pub(crate) fn definition(tokens: &[Token]) -> Vec<String> {
    let mut keys = Vec::with_capacity(tokens.len());
    let mut index = 0;
    while index < tokens.len() {
        let token = &tokens[index];
        if token.is("if")
            && tokens.get(index + 1).is_some_and(|t| t.is("not"))
            && tokens.get(index + 2).is_some_and(|t| t.is("exists"))
        {
            index += 3;
            continue;
        }
        if index == 1 && (token.is("temp") || token.is("temporary")) {
            index += 1;
            continue;
        }
        keys.push(token.key());
        index += 1;
    }
    keys
}

/// Reads a (possibly schema-qualified) name at `index`; returns it and the index after it.
fn name_at(tokens: &[Token], index: usize) -> Option<(String, usize)> {
    let first = tokens.get(index)?.name()?;
    if tokens.get(index + 1) == Some(&Token::Punct('.')) {
        let second = tokens.get(index + 2)?.name()?;
        return Some((second.to_lowercase(), index + 3));
    }
    Some((first.to_lowercase(), index + 1))
}

/// The column names of a `CREATE TABLE name ( … )` body starting at the `(` at `open`.
fn columns(tokens: &[Token], open: usize) -> Vec<String> {
    let mut columns = Vec::new();
    let mut depth = 0;
    let mut at_item_start = true;
    for token in &tokens[open..] {
        match token {
            Token::Punct('(') => {
                depth += 1;
                if depth == 1 {
                    at_item_start = true;
                    continue;
                }
            }
            Token::Punct(')') => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            Token::Punct(',') if depth == 1 => {
                at_item_start = true;
                continue;
            }
            _ => {}
        }
        if at_item_start && depth == 1 {
            at_item_start = false;
            let constraint = ["constraint", "primary", "unique", "check", "foreign"].iter().any(|word| token.is(word));
            if !constraint && let Some(name) = token.name() {
                // SQLite names are case-insensitive: compare them lowercased.
                columns.push(name.to_lowercase());
            }
        }
    }
    columns
}

/// Applies one migration statement to `schema`. Statements that do not change the schema's shape
/// (INSERT, UPDATE, PRAGMA, …) are ignored.
pub(crate) fn apply(schema: &mut Schema, statement: &Statement, file: &str) {
    let tokens = &statement.tokens;
    let origin = Origin { file: file.to_owned(), line: statement.line };
    let Some(first) = tokens.first() else { return };
    if first.is("create") {
        let mut index = 1;
        while tokens.get(index).is_some_and(|t| t.is("temp") || t.is("temporary") || t.is("unique")) {
            index += 1;
        }
        let Some(kind) = tokens.get(index).and_then(Token::name).and_then(|word| Kind::parse(&word)) else { return };
        index += 1;
        if tokens.get(index).is_some_and(|t| t.is("if")) {
            index += 3;
        }
        let Some((name, after)) = name_at(tokens, index) else { return };
        let on_table = || {
            let on = tokens[after..].iter().position(|t| t.is("on"))? + after;
            name_at(tokens, on + 1).map(|(table, _)| table)
        };
        let (table, columns) = match kind {
            Kind::Table => {
                let columns = (tokens.get(after) == Some(&Token::Punct('('))).then(|| columns(tokens, after));
                (name.clone(), columns)
            }
            Kind::View => (name.clone(), None),
            Kind::Index | Kind::Trigger => (on_table().unwrap_or_default(), None),
        };
        let object = Object {
            kind,
            name: name.clone(),
            table,
            columns,
            definition: Some(definition(tokens)),
            origin: Some(origin),
        };
        schema.entry(name).or_insert(object);
    } else if first.is("drop") {
        let mut index = 2;
        if tokens.get(index).is_some_and(|t| t.is("if")) {
            index += 2;
        }
        let Some((name, _)) = name_at(tokens, index) else { return };
        if schema.remove(&name).is_some_and(|object| object.kind == Kind::Table) {
            schema.retain(|_, object| object.table != name);
        }
    } else if first.is("alter") && tokens.get(1).is_some_and(|t| t.is("table")) {
        alter(schema, tokens);
    }
}

fn alter(schema: &mut Schema, tokens: &[Token]) {
    let Some((table, index)) = name_at(tokens, 2) else { return };
    let word = |offset: usize| tokens.get(index + offset).and_then(Token::name).map(|word| word.to_lowercase());
    let action = word(0).unwrap_or_default();
    let column_word = usize::from(word(1).as_deref() == Some("column"));
    if action == "rename" && word(1).as_deref() == Some("to") {
        rename_table(schema, &table, tokens, index + 2);
        return;
    }
    // SQLite rewrites the table's stored CREATE statement, and on a column rename also those of the
    // indexes and triggers that refer to it: compare those by shape only from now on.
    for object in schema.values_mut().filter(|object| object.table == table) {
        if object.kind == Kind::Table || action == "rename" {
            object.definition = None;
        }
    }
    match action.as_str() {
        "rename" => {
            let (Some(old), Some(new)) = (word(1 + column_word), word(3 + column_word)) else { return };
            if let Some(columns) = schema.get_mut(&table).and_then(|object| object.columns.as_mut()) {
                columns.iter_mut().filter(|column| **column == old).for_each(|column| *column = new.clone());
            }
        }
        "add" => {
            let Some(column) = word(1 + column_word) else { return };
            if let Some(columns) = schema.get_mut(&table).and_then(|object| object.columns.as_mut()) {
                columns.push(column);
            }
        }
        "drop" => {
            let Some(column) = word(1 + column_word) else { return };
            if let Some(columns) = schema.get_mut(&table).and_then(|object| object.columns.as_mut()) {
                columns.retain(|existing| *existing != column);
            }
        }
        _ => {}
    }
}

/// `ALTER TABLE old RENAME TO new`, as in a table rebuild (create `x_rebuilt`, copy, drop `x`, rename).
/// SQLite rewrites the name in the table's stored CREATE statement to `"new"` and leaves the rest as it
/// was, so the definition stays comparable when the old name occurs only there; the indexes and
/// triggers on the table are rewritten too and are compared by shape only from then on.
fn rename_table(schema: &mut Schema, table: &str, tokens: &[Token], new_name_at: usize) {
    // The new name as written: SQLite keeps its case inside the quotes (`RENAME TO` takes no schema).
    let Some(Token::Word { text: written, .. }) = tokens.get(new_name_at) else { return };
    let new_name = written.to_lowercase();
    for object in schema.values_mut().filter(|object| object.table == table && object.kind != Kind::Table) {
        object.definition = None;
    }
    let Some(mut object) = schema.remove(table) else { return };
    object.definition = object.definition.take().and_then(|mut keys| {
        let denotes_old = |key: &String| {
            let unquoted = key.strip_prefix('"').and_then(|rest| rest.strip_suffix('"')).unwrap_or(key);
            unquoted.to_lowercase() == table
        };
        let mut positions = keys.iter().enumerate().filter(|(_, key)| denotes_old(key)).map(|(position, _)| position);
        let first = positions.next()?;
        let open = keys.iter().position(|key| key == "(")?;
        (positions.next().is_none() && first < open).then(|| {
            keys[first] = format!("\"{written}\"");
            keys
        })
    });
    object.name = new_name.clone();
    object.table = new_name.clone();
    for dependent in schema.values_mut().filter(|dependent| dependent.table == table) {
        dependent.table = new_name.clone();
    }
    schema.insert(new_name, object);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::sql::statements;

    fn replay(sql: &str) -> Schema {
        let mut schema = Schema::new();
        for statement in statements(sql) {
            apply(&mut schema, &statement, "m.sql");
        }
        schema
    }

    #[test]
    fn replaying_ddl_tracks_tables_columns_indexes_and_triggers() {
        let schema = replay(
            "CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, \"Name\" TEXT CHECK (length(\"Name\") > 0), \
             UNIQUE (id, \"Name\"));\n\
             CREATE UNIQUE INDEX users_name ON users (\"Name\");\n\
             CREATE TABLE old (x INTEGER);\n CREATE INDEX old_x ON old (x);\n DROP TABLE old;\n\
             ALTER TABLE users ADD COLUMN email TEXT;\n ALTER TABLE users RENAME COLUMN email TO mail;\n\
             ALTER TABLE users RENAME TO people;",
        );
        let names: Vec<&str> = schema.keys().map(String::as_str).collect();
        assert_eq!(names, ["people", "users_name"]);
        let people = &schema["people"];
        assert_eq!(people.columns.as_deref(), Some(&["id".to_owned(), "name".to_owned(), "mail".to_owned()][..]));
        assert_eq!(people.definition, None, "altered tables are compared by columns only");
        assert_eq!(schema["users_name"].table, "people");
        assert_eq!(people.origin.as_ref().map(|origin| origin.line), Some(1));
    }

    #[test]
    fn a_table_rebuild_keeps_the_new_definition_under_the_old_name_and_scratch_tables_leave_no_trace() {
        let schema = replay(
            "CREATE TABLE log (a INTEGER, h BLOB UNIQUE);\n\
             CREATE INDEX log_a ON log (a);\n\
             CREATE TRIGGER log_keep BEFORE DELETE ON log BEGIN SELECT RAISE(ABORT, 'kept'); END;\n\
             CREATE TABLE _upgrade_names (name TEXT PRIMARY KEY) STRICT, WITHOUT ROWID;\n\
             CREATE TABLE log_rebuilt (a INTEGER CHECK (a > 0), h BLOB);\n\
             INSERT INTO log_rebuilt SELECT a, h FROM log;\n\
             DROP TABLE log;\n\
             ALTER TABLE log_rebuilt RENAME TO Log;\n\
             CREATE INDEX log_a ON log (a);\n\
             DROP TABLE _upgrade_names;",
        );
        let names: Vec<&str> = schema.keys().map(String::as_str).collect();
        assert_eq!(names, ["log", "log_a"], "the old index and trigger went with the old table");
        let log = &schema["log"];
        // SQLite stores the renamed table as `CREATE TABLE "Log" (…)`, the rest as written.
        let stored = &statements("CREATE TABLE \"Log\" (a INTEGER CHECK (a > 0), h BLOB)")[0].tokens;
        assert_eq!(log.definition, Some(definition(stored)));
        assert_eq!(log.columns.as_deref(), Some(&["a".to_owned(), "h".to_owned()][..]));
        assert_eq!(log.origin.as_ref().map(|origin| origin.line), Some(5), "declared where it was rebuilt");
        assert_eq!(schema["log_a"].origin.as_ref().map(|origin| origin.line), Some(9));
    }

    #[test]
    fn a_rename_whose_old_name_recurs_in_the_definition_compares_by_columns_only() {
        let schema = replay(
            "CREATE TABLE node_rebuilt (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES node_rebuilt (id));\n\
             CREATE INDEX node_parent ON node_rebuilt (parent);\n\
             ALTER TABLE node_rebuilt RENAME TO node;",
        );
        assert_eq!(schema["node"].definition, None, "SQLite rewrote the reference as well");
        assert_eq!((schema["node_parent"].table.as_str(), schema["node_parent"].definition.as_ref()), ("node", None));
    }

    #[test]
    fn definitions_ignore_case_spacing_comments_and_if_not_exists() {
        let declared = &statements("create table if not exists T (a  INTEGER /* c */)")[0].tokens;
        let stored = &statements("CREATE TABLE T (\n a integer\n)")[0].tokens;
        assert_eq!(definition(declared), definition(stored));
        let other = &statements("CREATE TABLE T (a TEXT)")[0].tokens;
        assert_ne!(definition(declared), definition(other));
    }
}
