//! The PNG chart of `eddy bench peers`.
//!
//! One image, two panels side by side: throughput (events/s per workload,
//! one bar per target, the median over rounds with a min–max whisker) and
//! latency (per offered rate, one bar per target of p99 on a log scale,
//! with a whisker from p50 to p99.9). A target has the same colour in both
//! panels; one legend under them names the targets.
//!
//! Plotters draws text with `ab_glyph` and looks up no system font, so a
//! TrueType sans font is read from a few common paths and registered once
//! per process; without one, no chart is written.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Width of the image, pixels.
pub(super) const WIDTH: u32 = 1600;
/// Height of the image, pixels.
pub(super) const HEIGHT: u32 = 1000;

/// Where a sans font is looked for, in order: (regular, bold).
pub(super) const FONT_PATHS: &[(&str, &str)] = &[
    (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
        "/usr/share/fonts/liberation-sans/LiberationSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
        "/usr/share/fonts/truetype/freefont/FreeSansBold.ttf",
    ),
    (
        "/System/Library/Fonts/Supplemental/Arial.ttf",
        "/System/Library/Fonts/Supplemental/Arial Bold.ttf",
    ),
    (
        "C:\\Windows\\Fonts\\arial.ttf",
        "C:\\Windows\\Fonts\\arialbd.ttf",
    ),
];

/// The family name the font is registered under (plotters' default).
const FONT: &str = "sans-serif";

/// One throughput bar: a workload ("W1 publish"), a target with its durability ("eddy embedded, fsync always"), its median events/s and its spread (min, max over rounds).
#[derive(Debug, Clone)]
pub(super) struct Throughput {
    pub workload: String,
    pub target: String,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// One latency entry: a rate ("5,000/s"), a target, and p50 / p99 / p99.9 in milliseconds.
#[derive(Debug, Clone)]
pub(super) struct Latencies {
    pub rate: String,
    pub target: String,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

/// The font file registered for the chart, registering it on first use;
/// `None` when none of [`FONT_PATHS`] holds a usable font.
pub(super) fn font() -> Option<&'static Path> {
    static FONT_FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
    FONT_FILE
        .get_or_init(|| {
            FONT_PATHS.iter().find_map(|&(regular, bold)| {
                register(regular, FontStyle::Normal)?;
                // Titles are bold when the family has a bold face; plotters
                // falls back to the regular face otherwise.
                let _ = register(bold, FontStyle::Bold);
                Some(PathBuf::from(regular))
            })
        })
        .as_deref()
}

/// Reads the font at `path` and registers it for `style`; `None` if it is
/// missing or not a font. The bytes are leaked: plotters wants them
/// `'static`, and this runs at most once per path and process.
fn register(path: &str, style: FontStyle) -> Option<()> {
    let bytes = fs::read(path).ok()?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font(FONT, style, bytes).ok()
}

/// Draws both into one PNG at `path` ([`WIDTH`]×[`HEIGHT`]): on the left,
/// grouped bars of events/s per workload, one bar per target, with a
/// min–max whisker; on the right, per rate, one bar per target of p99 on a
/// log-scale axis in ms, with a whisker from p50 (a dot) to p99.9 (a cap).
/// A legend under both names the targets, each with one colour throughout.
/// With only one kind of result, its panel takes the whole width.
///
/// Returns `Ok(false)`, writing nothing, when no font can be found (see
/// [`FONT_PATHS`]); an error when there is nothing to draw or drawing or
/// writing fails. The file is written whole or not at all.
pub(super) fn write_png(
    path: &Path,
    throughput: &[Throughput],
    latency: &[Latencies],
) -> Result<bool> {
    let data = Data::new(throughput, latency);
    if data.throughput.bars.is_empty() && data.latency.bars.is_empty() {
        bail!("no throughput or latency results to chart");
    }
    if font().is_none() {
        return Ok(false);
    }
    let mut pixels = vec![255u8; WIDTH as usize * HEIGHT as usize * 3];
    draw(&mut pixels, &data).context("drawing the chart")?;
    save(path, &pixels).with_context(|| format!("writing the chart to {}", path.display()))?;
    Ok(true)
}

/// A plotters error as an anyhow one.
fn plot_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("plotters: {e}")
}

/// One bar, in a panel's terms.
#[derive(Debug)]
struct Bar {
    /// Index into the panel's groups.
    group: usize,
    /// Index into all targets (colour, legend).
    target: usize,
    /// The bar's height.
    value: f64,
    /// A vertical line from .0 to .1, with a cap at .1 (and at .0 when
    /// there is no dot).
    whisker: Option<(f64, f64)>,
    /// A hollow dot (p50).
    dot: Option<f64>,
    /// The value written above the bar.
    label: String,
}

/// One panel's bars: groups along the x axis, a slot per target in each.
#[derive(Debug, Default)]
struct Panel {
    groups: Vec<String>,
    /// Targets (indices into all targets) that have a slot, in order.
    slots: Vec<usize>,
    bars: Vec<Bar>,
}

impl Panel {
    fn group(&mut self, name: &str) -> usize {
        index_of(&mut self.groups, name)
    }

    /// Adds a bar unless the (group, target) pair already has one.
    fn push(&mut self, bar: Bar) {
        if self
            .bars
            .iter()
            .any(|b| b.group == bar.group && b.target == bar.target)
        {
            return;
        }
        if !self.slots.contains(&bar.target) {
            self.slots.push(bar.target);
            self.slots.sort_unstable();
        }
        self.bars.push(bar);
    }

    fn slot(&self, target: usize) -> usize {
        self.slots.iter().position(|&t| t == target).unwrap_or(0)
    }

    /// The x range of bar `bar`: groups are one unit wide, with 10% of
    /// padding each side; each slot's bar fills 80% of the slot.
    fn bar_x(&self, bar: &Bar) -> (f64, f64) {
        let slot_width = 0.8 / self.slots.len().max(1) as f64;
        let left = bar.group as f64 + 0.1 + self.slot(bar.target) as f64 * slot_width;
        (left + slot_width * 0.1, left + slot_width * 0.9)
    }
}

/// Position of `name` in `names`, appending it if new.
fn index_of(names: &mut Vec<String>, name: &str) -> usize {
    match names.iter().position(|n| n == name) {
        Some(i) => i,
        None => {
            names.push(name.to_string());
            names.len() - 1
        }
    }
}

/// What is drawn: both panels and the targets they share.
#[derive(Debug)]
struct Data {
    targets: Vec<String>,
    colours: Vec<RGBColor>,
    throughput: Panel,
    latency: Panel,
}

impl Data {
    /// Orders groups and targets by first appearance; drops entries that
    /// cannot be drawn (a median that is not a finite number; a p99 that
    /// is not a positive one, since the latency axis is logarithmic).
    fn new(throughput: &[Throughput], latency: &[Latencies]) -> Self {
        let mut targets = Vec::new();
        let mut tp = Panel::default();
        for t in throughput.iter().filter(|t| t.median.is_finite()) {
            let value = t.median.max(0.0);
            let finite_or = |v: f64| if v.is_finite() { v.max(0.0) } else { value };
            let (lo, hi) = (finite_or(t.min), finite_or(t.max));
            let (group, target) = (tp.group(&t.workload), index_of(&mut targets, &t.target));
            tp.push(Bar {
                group,
                target,
                value,
                whisker: Some((lo.min(hi), lo.max(hi))),
                dot: None,
                label: count_label(value),
            });
        }
        let mut lat = Panel::default();
        for l in latency.iter().filter(|l| positive(l.p99_ms)) {
            let value = l.p99_ms;
            let p50 = positive(l.p50_ms).then_some(l.p50_ms);
            let p999 = positive(l.p999_ms).then_some(l.p999_ms);
            let whisker = match (p50, p999) {
                (None, None) => None,
                (lo, hi) => Some((lo.unwrap_or(value), hi.unwrap_or(value))),
            };
            let (group, target) = (lat.group(&l.rate), index_of(&mut targets, &l.target));
            lat.push(Bar {
                group,
                target,
                value,
                whisker,
                dot: p50,
                label: ms_label(value),
            });
        }
        let colours = colours(&targets);
        Self {
            targets,
            colours,
            throughput: tp,
            latency: lat,
        }
    }
}

fn positive(v: f64) -> bool {
    v.is_finite() && v > 0.0
}

/// A colour per target: shades of one hue per system (Eddy blue, NATS
/// green, Redis red, RabbitMQ orange), other hues for anything else.
fn colours(targets: &[String]) -> Vec<RGBColor> {
    const FAMILIES: [(&[&str], &[RGBColor]); 4] = [
        (
            &["eddy"],
            &[
                RGBColor(31, 78, 154),
                RGBColor(92, 146, 222),
                RGBColor(164, 200, 240),
            ],
        ),
        (
            &["nats", "jetstream"],
            &[
                RGBColor(30, 132, 73),
                RGBColor(118, 196, 138),
                RGBColor(186, 228, 194),
            ],
        ),
        (
            &["redis"],
            &[
                RGBColor(192, 57, 43),
                RGBColor(240, 132, 116),
                RGBColor(248, 190, 180),
            ],
        ),
        (
            &["rabbit"],
            &[
                RGBColor(214, 110, 20),
                RGBColor(246, 180, 96),
                RGBColor(250, 214, 160),
            ],
        ),
    ];
    const OTHERS: &[RGBColor] = &[
        RGBColor(123, 82, 160),
        RGBColor(64, 160, 170),
        RGBColor(140, 100, 70),
        RGBColor(200, 170, 40),
        RGBColor(220, 110, 170),
        RGBColor(120, 120, 120),
    ];
    let mut used = [0usize; FAMILIES.len()];
    let mut others = 0usize;
    targets
        .iter()
        .map(|target| {
            let lower = target.to_lowercase();
            let family = FAMILIES
                .iter()
                .position(|(keys, _)| keys.iter().any(|k| lower.contains(k)));
            if let Some(f) = family {
                let shades = FAMILIES[f].1;
                if used[f] < shades.len() {
                    used[f] += 1;
                    return shades[used[f] - 1];
                }
            }
            others += 1;
            OTHERS[(others - 1) % OTHERS.len()]
        })
        .collect()
}

/// Events/s as "150k": ≤ 2 significant decimals after scaling, for axis ticks.
fn count_tick(v: f64) -> String {
    let (scaled, suffix) = scale(v);
    format!("{}{suffix}", trim(format!("{scaled:.2}")))
}

/// Events/s as "148k", "37k", "4.2k", for a bar's label.
fn count_label(v: f64) -> String {
    let (scaled, suffix) = scale(v);
    let text = if scaled.abs() >= 10.0 {
        format!("{scaled:.0}")
    } else {
        trim(format!("{scaled:.1}"))
    };
    format!("{text}{suffix}")
}

fn scale(v: f64) -> (f64, &'static str) {
    let a = v.abs();
    if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    }
}

/// "2.50" → "2.5", "3.00" → "3".
fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Milliseconds for a log-axis tick (1-2-5 values): "0.05", "2", "1000".
fn ms_tick(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        trim(format!("{v:.4}"))
    }
}

/// Milliseconds for a bar's label: "120", "12", "4.2", "0.42".
fn ms_label(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        trim(format!("{v:.1}"))
    } else if v >= 0.01 {
        trim(format!("{v:.2}"))
    } else {
        "<0.01".to_string()
    }
}

/// The smallest "nice" number (1, 2, 2.5, 5 × 10ⁿ) at or above `v > 0`.
fn nice_ceil(v: f64, steps: &[f64]) -> f64 {
    let decade = 10f64.powf(v.log10().floor());
    steps
        .iter()
        .map(|s| s * decade)
        .find(|&n| n >= v * (1.0 - 1e-9))
        .unwrap_or(10.0 * decade)
}

/// The largest "nice" number at or below `v > 0`.
fn nice_floor(v: f64, steps: &[f64]) -> f64 {
    let decade = 10f64.powf(v.log10().floor());
    steps
        .iter()
        .rev()
        .map(|s| s * decade)
        .find(|&n| n <= v * (1.0 + 1e-9))
        .unwrap_or(decade)
}

/// The linear throughput axis: 0 to a nice top with room for the labels,
/// and ticks every nice step.
fn linear_axis(bars: &[Bar]) -> (Range<f64>, Vec<f64>) {
    let max = bars
        .iter()
        .map(|b| b.whisker.map_or(b.value, |(_, hi)| hi.max(b.value)))
        .fold(0.0, f64::max);
    let top = if max > 0.0 {
        nice_ceil(
            max * 1.12,
            &[1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0],
        )
    } else {
        1.0
    };
    let step = nice_ceil(top / 8.0, &[1.0, 2.0, 2.5, 5.0]);
    let ticks = (0..)
        .map(|i| i as f64 * step)
        .take_while(|&t| t <= top * (1.0 + 1e-9))
        .collect();
    (0.0..top, ticks)
}

/// The log latency axis: from a nice floor under the smallest value to a
/// nice ceiling with room for the labels above the tallest whisker; ticks
/// at 1, 2, 5 × 10ⁿ (only 10ⁿ when the range spans many decades) and light
/// lines at every integer multiple of 10ⁿ.
fn log_axis(bars: &[Bar]) -> (Range<f64>, Vec<f64>, Vec<f64>) {
    let values = bars.iter().flat_map(|b| {
        let (lo, hi) = b.whisker.unwrap_or((b.value, b.value));
        [b.value, lo, hi]
    });
    let (min, max) = values.fold((f64::INFINITY, 0f64), |(mn, mx), v| (mn.min(v), mx.max(v)));
    let (min, max) = if min.is_finite() && max > 0.0 {
        (min, max)
    } else {
        (1.0, 1.0)
    };
    let lo = nice_floor(min / 1.5, &[1.0, 2.0, 5.0]);
    let hi = nice_ceil(max * 1.8, &[1.0, 2.0, 5.0]);
    let decades = (hi / lo).log10();
    let (ticks, light) = (decade_points(lo, hi, decades), decade_points(lo, hi, 0.0));
    let ticks = if decades > 6.0 {
        ticks
    } else {
        ticks
            .into_iter()
            .chain(light.iter().copied())
            .filter(|v| {
                let m = v / 10f64.powf(v.log10().floor());
                [1.0, 2.0, 5.0].iter().any(|s| (m - s).abs() < 1e-6)
            })
            .collect()
    };
    let mut ticks = ticks;
    ticks.sort_by(f64::total_cmp);
    ticks.dedup_by(|a, b| (*a / *b - 1.0).abs() < 1e-9);
    (lo..hi, ticks, light)
}

/// Powers of ten within [lo, hi] when `decades` is over 6, otherwise every
/// integer multiple of a power of ten.
fn decade_points(lo: f64, hi: f64, decades: f64) -> Vec<f64> {
    let first = lo.log10().floor() as i32;
    let last = hi.log10().ceil() as i32;
    let multiples: &[f64] = if decades > 6.0 {
        &[1.0]
    } else {
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    };
    (first..=last)
        .flat_map(|e| multiples.iter().map(move |m| m * 10f64.powi(e)))
        .filter(|&v| v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9))
        .collect()
}

/// A linear axis with the ticks given. (Plotters' own f64 axis with
/// `with_key_points` lacks the default formatting its mesh wants.)
#[derive(Debug, Clone)]
struct Linear {
    range: Range<f64>,
    ticks: Vec<f64>,
}

impl Linear {
    fn new(range: Range<f64>, ticks: Vec<f64>) -> Self {
        Self { range, ticks }
    }
}

impl Ranged for Linear {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        if span <= 0.0 || !value.is_finite() {
            return limit.0;
        }
        let share = (value - self.range.start) / span;
        limit.0 + (f64::from(limit.1 - limit.0) * share).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            vec![]
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// The words of one panel.
struct Words<'a> {
    title: &'a str,
    subtitle: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    y_tick: &'a dyn Fn(&f64) -> String,
}

const INK: RGBColor = RGBColor(34, 34, 34);
const MUTED: RGBColor = RGBColor(90, 90, 90);

fn draw(pixels: &mut [u8], data: &Data) -> Result<()> {
    let root = BitMapBackend::with_buffer(pixels, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let root = root.margin(12, 12, 20, 20);
    let title = match (
        data.throughput.bars.is_empty(),
        data.latency.bars.is_empty(),
    ) {
        (false, true) => "Eddy and peer brokers: throughput",
        (true, false) => "Eddy and peer brokers: latency",
        _ => "Eddy and peer brokers: throughput and latency",
    };
    let root = root
        .titled(title, (FONT, 32, FontStyle::Bold).into_font().color(&INK))
        .map_err(plot_err)?;

    let legend_height = legend_height(&root, data)?;
    let (_, height) = root.dim_in_pixel();
    let (panels, legend) = root.split_vertically(height.saturating_sub(legend_height));
    draw_legend(&legend, data)?;

    let tp = &data.throughput;
    let lat = &data.latency;
    let throughput_words = Words {
        title: "Throughput by workload",
        subtitle: "Bar: median over rounds. Whisker: slowest to fastest round.",
        x_desc: "Workload",
        y_desc: "Events per second",
        y_tick: &|v: &f64| count_tick(*v),
    };
    let latency_words = Words {
        title: "Latency by offered rate",
        subtitle: "Bar: p99. Whisker: p50 (dot) to p99.9 (cap). Log scale.",
        x_desc: "Offered rate",
        y_desc: "Latency, milliseconds (log scale)",
        y_tick: &|v: &f64| ms_tick(*v),
    };
    let draw_throughput = |area: &DrawingArea<BitMapBackend<'_>, Shift>| -> Result<()> {
        let (range, ticks) = linear_axis(&tp.bars);
        let y = Linear::new(range, ticks);
        draw_panel(area, data, tp, &throughput_words, y)
    };
    let draw_latency = |area: &DrawingArea<BitMapBackend<'_>, Shift>| -> Result<()> {
        let (range, ticks, light) = log_axis(&lat.bars);
        let y = range
            .log_scale()
            .with_key_points(ticks)
            .with_light_points(light);
        draw_panel(area, data, lat, &latency_words, y)
    };
    match (tp.bars.is_empty(), lat.bars.is_empty()) {
        (false, false) => {
            // Width in proportion to the bars each panel holds, within limits.
            let weight = |p: &Panel| (p.groups.len() * (p.slots.len() + 1)) as f64;
            let share = (weight(tp) / (weight(tp) + weight(lat))).clamp(0.42, 0.62);
            let (width, _) = panels.dim_in_pixel();
            let (left, right) = panels.split_horizontally((f64::from(width) * share) as u32);
            draw_throughput(&left.margin(0, 0, 0, 20))?;
            draw_latency(&right.margin(0, 0, 20, 0))?;
        }
        (false, true) => draw_throughput(&panels)?,
        (true, false) => draw_latency(&panels)?,
        (true, true) => bail!("no throughput or latency results to chart"),
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

const LEGEND_FONT: u32 = 18;
const SWATCH: i32 = 18;
const LEGEND_ROW: i32 = 30;
const LEGEND_GAP: i32 = 36;

/// The legend's entries laid out in rows: (target index, x, width) per row.
fn legend_rows(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    data: &Data,
) -> Result<Vec<Vec<(usize, i32)>>> {
    let style = (FONT, LEGEND_FONT).into_font();
    let (width, _) = area.dim_in_pixel();
    let width = width as i32;
    let mut rows: Vec<Vec<(usize, i32)>> = vec![];
    let mut used = 0;
    for (i, target) in data.targets.iter().enumerate() {
        let (text_width, _) = area
            .estimate_text_size(target, &style.clone().into())
            .map_err(plot_err)?;
        let entry = SWATCH + 8 + text_width as i32;
        match rows.last_mut() {
            Some(row) if used + LEGEND_GAP + entry <= width => {
                row.push((i, entry));
                used += LEGEND_GAP + entry;
            }
            _ => {
                rows.push(vec![(i, entry)]);
                used = entry;
            }
        }
    }
    Ok(rows)
}

fn legend_height(area: &DrawingArea<BitMapBackend<'_>, Shift>, data: &Data) -> Result<u32> {
    let rows = legend_rows(area, data)?.len() as u32;
    Ok(rows * LEGEND_ROW as u32 + 16)
}

/// One row after another, each centred: a colour swatch, then the name.
fn draw_legend(area: &DrawingArea<BitMapBackend<'_>, Shift>, data: &Data) -> Result<()> {
    let style = (FONT, LEGEND_FONT)
        .into_font()
        .color(&INK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let (width, _) = area.dim_in_pixel();
    for (r, row) in legend_rows(area, data)?.iter().enumerate() {
        let row_width: i32 =
            row.iter().map(|(_, w)| w).sum::<i32>() + LEGEND_GAP * (row.len() as i32 - 1);
        let mut x = (width as i32 - row_width).max(0) / 2;
        let mid = 12 + r as i32 * LEGEND_ROW + LEGEND_ROW / 2;
        for &(i, entry) in row {
            let top = mid - SWATCH / 2;
            let swatch = [(x, top), (x + SWATCH, top + SWATCH)];
            area.draw(&Rectangle::new(swatch, data.colours[i].filled()))
                .map_err(plot_err)?;
            area.draw(&Rectangle::new(swatch, INK.stroke_width(1)))
                .map_err(plot_err)?;
            area.draw(&Text::new(
                data.targets[i].as_str(),
                (x + SWATCH + 8, mid),
                style.clone(),
            ))
            .map_err(plot_err)?;
            x += entry + LEGEND_GAP;
        }
    }
    Ok(())
}

/// The largest of `sizes` at which every text is at most `max_width`
/// pixels wide, if any.
fn fitting_size(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    texts: impl Iterator<Item = impl AsRef<str>> + Clone,
    sizes: &[u32],
    max_width: f64,
) -> Result<Option<u32>> {
    for &size in sizes {
        let style: TextStyle<'_> = (FONT, size).into_font().into();
        let mut widest = 0;
        for text in texts.clone() {
            let (w, _) = area
                .estimate_text_size(text.as_ref(), &style)
                .map_err(plot_err)?;
            widest = widest.max(w);
        }
        if f64::from(widest) <= max_width {
            return Ok(Some(size));
        }
    }
    Ok(None)
}

/// One panel: title and subtitle, axes, bars, whiskers and values.
fn draw_panel<Y>(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    data: &Data,
    panel: &Panel,
    words: &Words<'_>,
    y: Y,
) -> Result<()>
where
    Y: Ranged<ValueType = f64, FormatOption = DefaultFormatting>,
{
    let area = area
        .titled(
            words.title,
            (FONT, 26, FontStyle::Bold).into_font().color(&INK),
        )
        .map_err(plot_err)?;
    let area = area
        .titled(words.subtitle, (FONT, 17).into_font().color(&MUTED))
        .map_err(plot_err)?;

    let groups = panel.groups.len().max(1);
    let centres: Vec<f64> = (0..groups).map(|g| g as f64 + 0.5).collect();
    let base = y.range().start;

    // Size the group names to their groups' width (estimated: the y label
    // area and margins are known).
    let (width, _) = area.dim_in_pixel();
    let plot_width = f64::from(width).max(1.0) - 100.0 - 20.0;
    let group_px = plot_width / groups as f64;
    let group_font = fitting_size(
        &area,
        panel.groups.iter(),
        &[18, 16, 14, 12, 11],
        group_px * 0.95,
    )?
    .unwrap_or(11);

    let mut chart = ChartBuilder::on(&area)
        .margin_top(16)
        .margin_right(20)
        .x_label_area_size(64)
        .y_label_area_size(100)
        .build_cartesian_2d(Linear::new(0.0..groups as f64, centres), y)
        .map_err(plot_err)?;
    let group_name = |x: &f64| {
        let g = x.floor();
        if g >= 0.0 {
            panel.groups.get(g as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&group_name)
        .y_label_formatter(words.y_tick)
        .x_label_style((FONT, group_font).into_font().color(&INK))
        .y_label_style((FONT, 16).into_font().color(&INK))
        .x_desc(words.x_desc)
        .y_desc(words.y_desc)
        .axis_desc_style((FONT, 18).into_font().color(&INK))
        .bold_line_style(BLACK.mix(0.15))
        .light_line_style(BLACK.mix(0.05))
        .axis_style(INK.stroke_width(1))
        .draw()
        .map_err(plot_err)?;

    let plot_px = f64::from(chart.plotting_area().dim_in_pixel().0);
    let slot_px = plot_px / groups as f64 * 0.8 / panel.slots.len().max(1) as f64;
    let cap_half = ((slot_px * 0.8 * 0.22) as i32).clamp(3, 12);
    let whisker_style = INK.stroke_width(2);

    for bar in &panel.bars {
        let (x0, x1) = panel.bar_x(bar);
        let colour = data.colours[bar.target];
        let rect = [(x0, base), (x1, bar.value)];
        chart
            .draw_series([
                Rectangle::new(rect, colour.filled()),
                Rectangle::new(rect, INK.mix(0.6).stroke_width(1)),
            ])
            .map_err(plot_err)?;
        let x = (x0 + x1) / 2.0;
        if let Some((lo, hi)) = bar.whisker {
            let cap = |v: f64| {
                EmptyElement::at((x, v))
                    + PathElement::new(vec![(-cap_half, 0), (cap_half, 0)], whisker_style)
            };
            let area = chart.plotting_area();
            area.draw(&PathElement::new(vec![(x, lo), (x, hi)], whisker_style))
                .map_err(plot_err)?;
            area.draw(&cap(hi)).map_err(plot_err)?;
            if bar.dot.is_none() {
                area.draw(&cap(lo)).map_err(plot_err)?;
            }
        }
        if let Some(p50) = bar.dot {
            let radius = (cap_half - 2).clamp(3, 5);
            let area = chart.plotting_area();
            area.draw(&Circle::new((x, p50), radius, WHITE.filled()))
                .map_err(plot_err)?;
            area.draw(&Circle::new((x, p50), radius, INK.stroke_width(2)))
                .map_err(plot_err)?;
        }
    }

    // Values above the whiskers, if they fit their slots.
    let label_font = fitting_size(
        &area,
        panel.bars.iter().map(|b| b.label.as_str()),
        &[15, 14, 13, 12],
        slot_px * 1.05,
    )?;
    if let Some(size) = label_font {
        let style = (FONT, size)
            .into_font()
            .color(&INK)
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        for bar in &panel.bars {
            let (x0, x1) = panel.bar_x(bar);
            let top = bar.whisker.map_or(bar.value, |(_, hi)| hi.max(bar.value));
            let label = EmptyElement::at(((x0 + x1) / 2.0, top))
                + Text::new(bar.label.clone(), (0, -6), style.clone());
            chart.plotting_area().draw(&label).map_err(plot_err)?;
        }
    }
    Ok(())
}

/// Writes `pixels` (RGB, [`WIDTH`]×[`HEIGHT`]) to `path` as a PNG: to a
/// temporary file beside it first, then renamed into place, so a failure
/// leaves nothing behind.
fn save(path: &Path, pixels: &[u8]) -> Result<()> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .context("the chart's path has no file name")?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // The encoder picks the format from the extension: hence `.png`.
    let tmp = dir.join(format!(
        ".{}.{}-{}.tmp.png",
        name.to_string_lossy(),
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| -> Result<()> {
        let mut backend = BitMapBackend::new(&tmp, (WIDTH, HEIGHT));
        backend
            .blit_bitmap((0, 0), (WIDTH, HEIGHT), pixels)
            .map_err(plot_err)?;
        backend.present().map_err(plot_err)
    })()
    .and_then(|()| fs::rename(&tmp, path).context("moving the chart into place"));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGETS: [&str; 5] = [
        "eddy embedded, fsync always",
        "eddy embedded, fsync never",
        "NATS JetStream, file storage",
        "Redis Streams, no persistence",
        "Redis Streams, appendfsync always",
    ];

    fn sample() -> (Vec<Throughput>, Vec<Latencies>) {
        let workloads = [
            ("W1 publish", 1.0),
            ("W2 fan-out to 4", 0.45),
            ("W3 work queue", 0.7),
        ];
        let speed = [0.35, 1.0, 0.6, 0.9, 0.08];
        let mut throughput = vec![];
        for (workload, w) in workloads {
            for (target, s) in TARGETS.iter().zip(speed) {
                let median = 160_000.0 * w * s;
                throughput.push(Throughput {
                    workload: workload.to_string(),
                    target: target.to_string(),
                    median,
                    min: median * 0.88,
                    max: median * 1.07,
                });
            }
        }
        let p99 = [4.2, 0.9, 2.5, 0.6, 38.0];
        let mut latency = vec![];
        for (rate, r) in [("5,000/s", 1.0), ("20,000/s", 2.6)] {
            for (target, p) in TARGETS.iter().zip(p99) {
                latency.push(Latencies {
                    rate: rate.to_string(),
                    target: target.to_string(),
                    p50_ms: p * r * 0.3,
                    p99_ms: p * r,
                    p999_ms: p * r * 2.4,
                });
            }
        }
        (throughput, latency)
    }

    /// Width and height from a PNG's IHDR chunk, after checking the signature.
    fn png_size(bytes: &[u8]) -> (u32, u32) {
        assert!(bytes.len() > 24, "a PNG of {} bytes", bytes.len());
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
        assert_eq!(&bytes[12..16], b"IHDR", "no IHDR chunk first");
        let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        (be(&bytes[16..20]), be(&bytes[20..24]))
    }

    #[test]
    fn chart_of_sample_results_is_a_png_of_the_requested_size() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("peers.png");
        let (throughput, latency) = sample();
        let written = write_png(&path, &throughput, &latency).expect("chart");
        if !written {
            eprintln!("no font found in {FONT_PATHS:?}: the chart was skipped");
            assert!(!path.exists(), "nothing is written without a font");
            return;
        }
        let bytes = fs::read(&path).expect("read the chart");
        assert_eq!(png_size(&bytes), (WIDTH, HEIGHT));
        // Only the chart is left in the directory: no temporary file.
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);
        // To look at it: EDDY_PEERS_CHART_SAMPLE=/tmp/sample.png cargo test …
        if let Some(copy) = std::env::var_os("EDDY_PEERS_CHART_SAMPLE") {
            fs::copy(&path, copy).expect("copy the sample chart");
        }
    }

    #[test]
    fn empty_or_odd_inputs_do_not_panic() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("empty.png");
        let err = write_png(&path, &[], &[]).expect_err("nothing to draw");
        assert!(
            err.to_string().contains("no throughput or latency"),
            "{err}"
        );
        assert!(!path.exists());

        let (throughput, latency) = sample();
        let odd = [
            Throughput {
                workload: "W1 publish".into(),
                target: "nothing at all".into(),
                median: 0.0,
                min: f64::NAN,
                max: f64::INFINITY,
            },
            Throughput {
                workload: "W1 publish".into(),
                target: "not a number".into(),
                median: f64::NAN,
                min: 0.0,
                max: 0.0,
            },
        ];
        let odd_latency = [Latencies {
            rate: "1/s".into(),
            target: "zero".into(),
            p50_ms: 0.0,
            p99_ms: 1e-6,
            p999_ms: f64::NAN,
        }];
        let cases: [(&str, &[Throughput], &[Latencies]); 5] = [
            ("throughput only", &throughput, &[]),
            ("latency only", &[], &latency),
            ("zeros and NaN", &odd, &odd_latency),
            ("one bar", &throughput[..1], &latency[..1]),
            ("unusable only", &odd[1..], &[]),
        ];
        for (name, throughput, latency) in cases {
            let path = dir.path().join(format!("{name}.png"));
            match write_png(&path, throughput, latency) {
                Ok(true) => {
                    let bytes = fs::read(&path).expect("read the chart");
                    assert_eq!(png_size(&bytes), (WIDTH, HEIGHT), "{name}");
                }
                Ok(false) => assert!(!path.exists(), "{name}"),
                Err(e) => {
                    eprintln!("{name}: {e:#}");
                    assert!(!path.exists(), "{name}");
                }
            }
        }
    }

    #[test]
    fn numbers_read_plainly() {
        assert_eq!(count_tick(150_000.0), "150k");
        assert_eq!(count_tick(12_500.0), "12.5k");
        assert_eq!(count_tick(0.0), "0");
        assert_eq!(count_tick(1_250_000.0), "1.25M");
        assert_eq!(count_label(148_321.0), "148k");
        assert_eq!(count_label(4_230.0), "4.2k");
        assert_eq!(ms_tick(0.05), "0.05");
        assert_eq!(ms_tick(200.0), "200");
        assert_eq!(ms_label(4.26), "4.3");
        assert_eq!(ms_label(0.004), "<0.01");
    }
}
