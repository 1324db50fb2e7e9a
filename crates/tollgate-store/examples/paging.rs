//! The storage traits' shared shapes from their docs alone: how a backend answers a list with cursor
//! paging (fetch one row more than asked, keep `limit`, the last kept key is the next cursor), and
//! how a caller walks every page. Run: `cargo run -p tollgate-store --example paging`.

use tollgate_store::{Page, PageRequest};

/// A backend's list: the rows after `page.cursor`, in key order, at most `limit + 1` of them.
fn list(rows: &[u32], page: &PageRequest) -> Page<u32> {
    let after = page.cursor.as_deref().map(|cursor| cursor.parse::<u32>().expect("a cursor this list made"));
    let fetched: Vec<u32> = rows
        .iter()
        .copied()
        .filter(|row| after.is_none_or(|after| *row > after))
        .take(page.limit as usize + 1)
        .collect();
    Page::from_overfetch(fetched, page.limit, |row| row.to_string())
}

fn main() {
    let rows: Vec<u32> = (1..=7).collect();
    let mut page = PageRequest::first(3);
    let mut seen = Vec::new();
    loop {
        let answer = list(&rows, &page);
        println!("page {:?}, next cursor {:?}", answer.items, answer.next_cursor);
        seen.extend(answer.items);
        match answer.next_cursor {
            Some(cursor) => page = PageRequest::after(3, cursor),
            None => break,
        }
    }
    assert_eq!(seen, rows, "every row once, in order");
    assert_eq!(PageRequest::first(0).limit, 1, "limits are clamped to 1..=MAX_LIMIT");
}
