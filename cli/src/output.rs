//! Text tables and JSON for lists.

use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::{CellAlignment, ColumnConstraint, Table, Width};
use ralio::{PaymentIntent, Transaction};

/// The longest a free-text cell may be before it is cut with `…`.
const TEXT_CAP: usize = 40;

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "-".to_owned(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

fn text(s: Option<&str>) -> String {
    match s {
        None | Some("") => "-".to_owned(),
        Some(s) if s.chars().count() > TEXT_CAP => {
            let cut: String = s.chars().take(TEXT_CAP - 1).collect();
            format!("{cut}…")
        }
        Some(s) => s.to_owned(),
    }
}

/// A borderless table with aligned columns; `right` lists right-aligned (numeric) columns.
fn table(header: &[&str], right: &[usize], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    for row in rows {
        // Cells hold server text: no control or bidi character reaches the terminal.
        t.add_row(
            row.iter()
                .map(|cell| crate::terminal::safe_line(cell).into_owned()),
        );
    }
    for &i in right {
        if let Some(col) = t.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    // Keep each column on one line whatever the terminal width.
    for col in t.column_iter_mut() {
        col.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(1)));
    }
    // The preset pads one space on each side; trim the line ends so output diffs cleanly.
    t.lines()
        .map(|l| l.trim_end().strip_prefix(' ').unwrap_or(&l).to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Transactions as an aligned table.
pub fn transactions_table(items: &[Transaction]) -> String {
    let rows = items
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                time(t.date),
                t.amount.to_string(),
                t.currency.clone(),
                t.status.to_string(),
                text(t.creditor.as_deref()),
                text(t.reference.as_deref()),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "DATE",
            "AMOUNT",
            "CURRENCY",
            "STATUS",
            "CREDITOR",
            "REFERENCE",
        ],
        &[2],
        rows,
    )
}

/// Payment intents as an aligned table.
pub fn intents_table(items: &[PaymentIntent]) -> String {
    let rows = items
        .iter()
        .map(|p| {
            let payees: Vec<&str> = p
                .instructions
                .iter()
                .filter_map(|i| i.creditor_name.as_deref())
                .collect();
            vec![
                p.id.clone(),
                time(p.created_at),
                p.total_amount.to_string(),
                p.currency.clone(),
                p.approval_status.to_string(),
                p.execution_status.to_string(),
                p.instruction_count.to_string(),
                text((!payees.is_empty()).then(|| payees.join(", ")).as_deref()),
                text(p.user_request_summary.as_deref()),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "CREATED",
            "AMOUNT",
            "CURRENCY",
            "APPROVAL",
            "EXECUTION",
            "LEGS",
            "PAYEE",
            "SUMMARY",
        ],
        &[2, 6],
        rows,
    )
}

/// The line under a table: what part of the list was shown. `first` is the position of the
/// page's first item (`None` when the server's page numbers put it out of range). Every number
/// here comes from the server: the arithmetic is checked.
pub fn footer(shown: usize, first: Option<u64>, total: u64, has_next: bool, noun: &str) -> String {
    if shown == 0 {
        return format!("no {noun}");
    }
    let last = first.and_then(|f| f.checked_add(u64::try_from(shown - 1).ok()?));
    let mut line = match (first, last) {
        (Some(first), Some(last)) => format!("{first}–{last} of {total} {noun}"),
        _ => format!("{shown} of {total} {noun} (the server's page number is out of range)"),
    };
    if has_next {
        line.push_str("; --page N for more, --all for every page");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::footer;

    #[test]
    fn footers_of_server_numbers_near_the_limits_do_not_overflow() {
        assert_eq!(footer(3, Some(51), 53, false, "items"), "51–53 of 53 items");
        assert_eq!(
            footer(2, Some(u64::MAX), u64::MAX, true, "items"),
            "2 of 18446744073709551615 items (the server's page number is out of range); --page N for more, --all for every page"
        );
        assert_eq!(
            footer(1, Some(u64::MAX), 1, false, "items"),
            format!("{}–{} of 1 items", u64::MAX, u64::MAX)
        );
        assert_eq!(footer(0, None, 9, false, "items"), "no items");
    }
}
