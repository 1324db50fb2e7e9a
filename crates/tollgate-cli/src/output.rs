//! Human output (aligned tables) and JSON output.

use serde::Serialize;

/// Prints `value` as pretty JSON on standard output.
pub(crate) fn print_json<T: Serialize + ?Sized>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => say!("{text}"),
        Err(error) => eprintln!("error: cannot encode output: {error}"),
    }
}

/// Prints `value` as one line of JSON (for streams: one event per line).
pub(crate) fn print_json_line<T: Serialize + ?Sized>(value: &T) {
    match serde_json::to_string(value) {
        Ok(text) => say!("{text}"),
        Err(error) => eprintln!("error: cannot encode output: {error}"),
    }
}

/// Prints rows under headers with columns padded to their widest cell.
pub(crate) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|header| header.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> =
            cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}", width = *width)).collect();
        say!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Prints `label: value` pairs aligned on the colon.
pub(crate) fn print_fields(fields: &[(&str, String)]) {
    let width = fields.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    for (label, value) in fields {
        say!("{label:<width$}  {value}");
    }
}

/// Shows an optional value, or `-`.
pub(crate) fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}
