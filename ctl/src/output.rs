//! What a command prints: every result is a typed value that serializes to its `--json` form
//! (a contract scripts and the tests parse) and renders as text for people.

use std::process::ExitCode;

use serde::Serialize;
use store::Node;

/// A command's result.
pub(crate) trait Report: Serialize {
    /// The text shown without `--json` (nothing printed when empty).
    fn human(&self) -> String;
}

/// One row of a listing: the `--json` form is an array of these, the text a table.
pub(crate) trait Row: Serialize {
    const HEADER: &'static [&'static str];
    fn cells(&self) -> Vec<String>;
}

impl<T: Row> Report for Vec<T> {
    fn human(&self) -> String {
        table(T::HEADER, self.iter().map(Row::cells).collect())
    }
}

/// Print `report` as JSON, or as text.
pub(crate) fn out(json: bool, report: &impl Report) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        let text = report.human();
        if !text.is_empty() {
            println!("{text}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A result with a one-line text, e.g. `deleted user bob`.
#[derive(Serialize)]
pub(crate) struct Said<T: Serialize> {
    #[serde(flatten)]
    pub(crate) value: T,
    #[serde(skip)]
    pub(crate) text: String,
}

impl<T: Serialize> Report for Said<T> {
    fn human(&self) -> String {
        self.text.clone()
    }
}

/// `value` for `--json`, `text` for people.
pub(crate) fn said<T: Serialize>(value: T, text: impl Into<String>) -> Said<T> {
    Said { value, text: text.into() }
}

/// Columns padded to their widest cell, two spaces apart.
pub(crate) fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut text = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        text.push('\n');
        text.push_str(&line(row));
    }
    text
}

/// A file or folder as `--json` shows it.
#[derive(Serialize)]
pub(crate) struct FileJson {
    pub(crate) id: i64,
    pub(crate) path: String,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) size: u64,
    pub(crate) mtime: String,
    pub(crate) mtime_ns: i64,
    pub(crate) etag: String,
    pub(crate) blake3: Option<String>,
}

impl From<&Node> for FileJson {
    fn from(n: &Node) -> FileJson {
        FileJson {
            id: n.id.0,
            path: n.path.to_string(),
            kind: if n.is_dir { "dir" } else { "file" },
            size: n.size,
            mtime: n.mtime.to_rfc3339(),
            mtime_ns: n.mtime.0,
            etag: n.etag.0.clone(),
            blake3: n.content_hash.map(|h| h.to_hex()),
        }
    }
}

impl Row for FileJson {
    const HEADER: &'static [&'static str] = &["ID", "TYPE", "SIZE", "MODIFIED", "PATH"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.kind.to_owned(),
            if self.kind == "dir" { "-".into() } else { store::format_size(self.size) },
            self.mtime.clone(),
            self.path.clone(),
        ]
    }
}

/// A quota for people: its size, or `none`.
pub(crate) fn quota_text(q: Option<u64>) -> String {
    q.map_or_else(|| "none".to_owned(), store::format_size)
}
