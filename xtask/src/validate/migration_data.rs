//! No migration creates an agent, a provider key or a token: those hold secrets or grant access, and
//! development ones come from `cargo xtask seed` through the `tollgate` binary. A table rebuild may
//! copy the rows a table already has (`INSERT INTO tokens_rebuilt … SELECT … FROM tokens`), nothing
//! more: an `INSERT … VALUES`, `DEFAULT VALUES` or a `SELECT` of anything else into one of them, or into
//! a scratch table the migration renames to one of them, is a violation at its line.

use std::collections::BTreeMap;

use super::Violation;
use super::sql::{Token, statements};

/// The tables no migration may add rows to.
const GUARDED_TABLES: [&str; 3] = ["agents", "provider_keys", "tokens"];

/// Every statement of the migration `text` (shown as `shown`) that adds rows to a guarded table.
pub(super) fn check_migration_data(shown: &str, text: &str) -> Vec<Violation> {
    let statements = statements(text);
    // Scratch tables renamed to a guarded one: a rebuild, whose rows become the guarded table's.
    let mut rebuilds = BTreeMap::new();
    for statement in &statements {
        let tokens = &statement.tokens;
        if tokens.first().is_some_and(|token| token.is("alter"))
            && tokens.get(1).is_some_and(|token| token.is("table"))
            && let Some((scratch, after)) = name_at(tokens, 2)
            && tokens.get(after).is_some_and(|token| token.is("rename"))
            && tokens.get(after + 1).is_some_and(|token| token.is("to"))
            && let Some((new_name, _)) = name_at(tokens, after + 2)
            && GUARDED_TABLES.contains(&new_name.as_str())
        {
            rebuilds.insert(scratch, new_name);
        }
    }
    let mut violations = Vec::new();
    for statement in &statements {
        let Some(target) = insert_target(&statement.tokens) else { continue };
        let guarded = match rebuilds.get(&target) {
            Some(guarded) => guarded.clone(),
            None if GUARDED_TABLES.contains(&target.as_str()) => target.clone(),
            None => continue,
        };
        if copies_from(&statement.tokens, &guarded) {
            continue;
        }
        let into = if target == guarded { target } else { format!("{target} (renamed to {guarded} later)") };
        violations.push(Violation::at(
            shown,
            statement.line,
            format!(
                "inserts rows into {into}: no migration may create an agent, a provider key or a token (development \
                 ones come from cargo xtask seed, through tollgate; a rebuild may only copy the rows {guarded} has)"
            ),
        ));
    }
    violations
}

/// A lowercased, possibly schema-qualified table name at `index`, and the index after it.
fn name_at(tokens: &[Token], index: usize) -> Option<(String, usize)> {
    let first = tokens.get(index)?.name()?;
    if tokens.get(index + 1) == Some(&Token::Punct('.')) {
        return Some((tokens.get(index + 2)?.name()?.to_lowercase(), index + 3));
    }
    Some((first.to_lowercase(), index + 1))
}

/// The table an `INSERT`, `INSERT OR …` or `REPLACE` statement (possibly after a `WITH` clause) adds
/// rows to.
fn insert_target(tokens: &[Token]) -> Option<String> {
    let mut depth = 0usize;
    let start = tokens.iter().position(|token| {
        match token {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => depth = depth.saturating_sub(1),
            _ => {}
        }
        depth == 0 && (token.is("insert") || token.is("replace"))
    })?;
    // Only a statement that is an insert, not one that merely mentions the word (a trigger body).
    if start > 0 && !tokens.first().is_some_and(|token| token.is("with")) {
        return None;
    }
    let into = tokens[start..].iter().position(|token| token.is("into"))? + start;
    name_at(tokens, into + 1).map(|(name, _)| name)
}

/// Whether the insert copies rows from `table` (`… SELECT … FROM table …`) and adds none of its own.
fn copies_from(tokens: &[Token], table: &str) -> bool {
    let own_rows = tokens.iter().any(|token| token.is("values"));
    let from_table = tokens
        .windows(2)
        .any(|pair| pair[0].is("from") && pair[1].name().is_some_and(|name| name.to_lowercase() == table));
    !own_rows && from_table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines `check_migration_data` reports in `sql`.
    fn reported(sql: &str) -> Vec<usize> {
        check_migration_data("m.sql", sql).iter().map(|violation| violation.line.unwrap_or(0)).collect()
    }

    #[test]
    fn inserting_an_agent_a_provider_key_or_a_token_is_refused_at_its_line() {
        let sql = "CREATE TABLE tokens (id TEXT);\n\
                   INSERT INTO tokens (id) VALUES ('tok_1');\n\
                   insert or ignore into main.\"Agents\" (id) values ('agt_1');\n\
                   REPLACE INTO provider_keys DEFAULT VALUES;\n\
                   WITH seed (id) AS (SELECT 'tok_2') INSERT INTO tokens SELECT id FROM seed;\n\
                   INSERT INTO tokens SELECT 'tok_3';\n\
                   INSERT INTO audit_log (action) VALUES ('kept: not a secret');";
        assert_eq!(reported(sql), [2, 3, 4, 5, 6], "SQLite matches names case-insensitively, quoted or not");
        let sql = "INSERT INTO \"agents\" (id) VALUES ('agt_1');";
        assert_eq!(reported(sql), [1]);
        let message = check_migration_data("m.sql", sql)[0].to_string();
        assert!(
            message.starts_with("m.sql:1: inserts rows into agents: no migration may create an agent"),
            "{message}"
        );
    }

    #[test]
    fn a_rebuild_may_copy_the_rows_a_table_has_and_nothing_more() {
        let sql = "CREATE TABLE tokens_rebuilt (id TEXT, name TEXT);\n\
                   INSERT INTO tokens_rebuilt (id, name) SELECT id, name FROM tokens;\n\
                   INSERT INTO tokens_rebuilt (id, name) VALUES ('tok_1', 'dev');\n\
                   INSERT INTO tokens_rebuilt SELECT id, name FROM tokens_backup;\n\
                   DROP TABLE tokens;\n\
                   ALTER TABLE main.tokens_rebuilt RENAME TO \"Tokens\";\n\
                   CREATE TRIGGER t AFTER INSERT ON tokens BEGIN INSERT INTO audit_log VALUES (1); END;\n\
                   INSERT INTO quota_limits_rebuilt VALUES (1);";
        assert_eq!(reported(sql), [3, 4]);
        let message = check_migration_data("m.sql", sql)[0].to_string();
        assert!(message.contains("into tokens_rebuilt (renamed to tokens later)"), "{message}");
    }
}
