//! Bar charts rendered on the server as SVG: no script, nothing to download, readable by screen
//! readers (a title per bar, and the figures in a table beside each chart).

use maud::{Markup, html};

/// The drawing's size in SVG units (it scales to its container).
const WIDTH: u32 = 720;
const HEIGHT: u32 = 180;
/// Room under the bars for the first and last labels.
const LABEL_BAND: u32 = 30;

/// One bar: its label (an hour or a day) and its value.
#[derive(Debug, Clone)]
pub(crate) struct Bar {
    pub(crate) label: String,
    pub(crate) value: i64,
}

/// A bar chart of `bars` titled `title`; `format` writes a value for the bar titles and the axis.
pub(crate) fn bar_chart(id: &str, title: &str, bars: &[Bar], format: fn(i64) -> String) -> Markup {
    let peak = bars.iter().map(|bar| bar.value).max().unwrap_or(0);
    let max = peak.max(1);
    let count = u32::try_from(bars.len()).unwrap_or(u32::MAX).max(1);
    let slot = WIDTH / count;
    let bar_width = slot.saturating_sub(2).max(1);
    let plot = HEIGHT - LABEL_BAND;
    let total: i64 = bars.iter().map(|bar| bar.value).sum();
    html! {
        figure.chart #(id) {
            figcaption { (title) ": " strong { (format(total)) } " in all, peak " (format(peak)) }
            svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(format!("{title}, {} bars", bars.len())) {
                line.axis x1="0" y1=(plot) x2=(WIDTH) y2=(plot) {}
                @for (index, bar) in bars.iter().enumerate() {
                    @let height = scaled(bar.value, max, plot);
                    @let x = u32::try_from(index).unwrap_or(0) * slot + 1;
                    rect.bar x=(x) y=(plot - height) width=(bar_width) height=(height) {
                        title { (bar.label) ": " (format(bar.value)) }
                    }
                }
                @if let (Some(first), Some(last)) = (bars.first(), bars.last()) {
                    text.label x="0" y=(HEIGHT - 6) { (first.label) }
                    text.label.end x=(WIDTH) y=(HEIGHT - 6) { (last.label) }
                }
            }
        }
    }
}

/// `value` of `max` as a height of at most `plot` units (a non-zero value is at least one unit).
fn scaled(value: i64, max: i64, plot: u32) -> u32 {
    if value <= 0 {
        return 0;
    }
    let height = (i128::from(value) * i128::from(plot) / i128::from(max)).clamp(1, i128::from(plot));
    u32::try_from(height).unwrap_or(plot)
}

/// A count with thousands separators.
pub(crate) fn count(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0 {
        out.push('-');
    }
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_keep_small_values_visible() {
        assert_eq!(scaled(0, 10, 100), 0);
        assert_eq!(scaled(10, 10, 100), 100);
        assert_eq!(scaled(1, 1_000_000, 100), 1);
        assert_eq!(scaled(i64::MAX, i64::MAX, 100), 100);
    }

    #[test]
    fn counts_have_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(-1_234_567), "-1,234,567");
    }

    #[test]
    fn a_chart_has_a_bar_per_value_and_escapes_labels() {
        let bars = vec![Bar { label: "<b>".into(), value: 3 }, Bar { label: "b".into(), value: 0 }];
        let svg = bar_chart("c", "Requests", &bars, count).into_string();
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"));
    }
}
