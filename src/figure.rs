//! Figures for papers: a study's bar chart (mean ± std per target and method) and a fusion
//! heatmap (layers × adapters, values in the cells, a colour bar with ticks), as PNG (at
//! print resolution) or SVG. Drawn with `plotters`; text uses the font egui ships, so a PNG
//! looks the same on every machine and needs no system fonts.
use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{Error, Result};
use crate::inspect::{colour, decimals, scaled, Heatmap};

/// Okabe–Ito colours (distinguishable with colour-blindness), one per series; the app's
/// charts use the same ones so a method has one colour on screen and on paper.
pub const PALETTE: [[u8; 3]; 8] = [
    [0, 114, 178],
    [230, 159, 0],
    [0, 158, 115],
    [204, 121, 167],
    [86, 180, 233],
    [213, 94, 0],
    [240, 228, 66],
    // Grey instead of Okabe–Ito's black: readable on the app's dark background and on paper.
    [136, 136, 136],
];

/// The colour of series `i`.
pub fn series_colour(i: usize) -> [u8; 3] {
    PALETTE[i % PALETTE.len()]
}

const FONT: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are egui's bundled Ubuntu font: a failure here is a build defect, and
        // text would then be missing from PNGs (SVGs name the family and are unaffected).
        let _ = plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        );
    });
}

/// What a figure file is, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Svg,
}

impl Format {
    pub fn of(path: &Path) -> Result<Format> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
        {
            Some(e) if e == "png" => Ok(Format::Png),
            Some(e) if e == "svg" => Ok(Format::Svg),
            _ => Err(Error::Invalid(format!(
                "{}: save a figure as .png or .svg",
                path.display()
            ))),
        }
    }
}

/// A drawing of a given size in points; PNGs are rendered at `PNG_SCALE` pixels per point.
trait Draw {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        scale: f64,
    ) -> std::result::Result<(), String>;
}

/// 3 pixels per point: a 6-inch-wide figure at 200+ dpi.
const PNG_SCALE: f64 = 3.0;

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

fn render(figure: &impl Draw, format: Format) -> Result<Vec<u8>> {
    register_font();
    let (w, h) = figure.size();
    let fail = |e: String| Error::Invalid(format!("drawing the figure: {e}"));
    match format {
        Format::Svg => {
            let mut svg = String::new();
            {
                let area = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
                figure.draw(&area, 1.0).map_err(fail)?;
                area.present().map_err(|e| fail(err(e)))?;
            }
            Ok(svg.into_bytes())
        }
        Format::Png => {
            let (pw, ph) = ((w as f64 * PNG_SCALE) as u32, (h as f64 * PNG_SCALE) as u32);
            let mut rgb = vec![255u8; (pw * ph * 3) as usize];
            {
                let area = BitMapBackend::with_buffer(&mut rgb, (pw, ph)).into_drawing_area();
                figure.draw(&area, PNG_SCALE).map_err(fail)?;
                area.present().map_err(|e| fail(err(e)))?;
            }
            encode_png(&rgb, pw, ph)
        }
    }
}

/// An RGB buffer as PNG bytes.
pub fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc
            .write_header()
            .map_err(|e| Error::Invalid(format!("PNG: {e}")))?;
        w.write_image_data(rgb)
            .map_err(|e| Error::Invalid(format!("PNG: {e}")))?;
    }
    Ok(bytes)
}

fn save(figure: &impl Draw, path: &Path) -> Result<()> {
    let bytes = render(figure, Format::of(path)?)?;
    crate::io::write_atomic(path, &bytes)
}

fn rgb(c: [u8; 3]) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

/// Grouped bars with error bars: one group per target, one bar per method.
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    pub title: String,
    pub y_label: String,
    /// Along the x axis (targets).
    pub groups: Vec<String>,
    /// One bar per group each, in the legend (methods).
    pub series: Vec<String>,
    /// `values[group][series]`: mean and standard deviation; None where nothing finished.
    pub values: Vec<Vec<Option<(f64, f64)>>>,
}

impl BarChart {
    /// The top of the y axis: the highest mean + std with some room, 1 for scores in [0, 1].
    pub fn y_max(&self) -> f64 {
        let top = self
            .values
            .iter()
            .flatten()
            .flatten()
            .map(|(m, s)| m + s)
            .fold(0.0, f64::max);
        match top {
            t if t <= 0.0 || !t.is_finite() => 1.0,
            t if t <= 1.0 => 1.0,
            t => t * 1.1,
        }
    }

    pub fn to_bytes(&self, format: Format) -> Result<Vec<u8>> {
        render(self, format)
    }

    /// Writes the chart as `.png` or `.svg`, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        save(self, path)
    }
}

impl Draw for BarChart {
    fn size(&self) -> (u32, u32) {
        let bars = self.groups.len().max(1) * (self.series.len().max(1) + 1);
        let longest = self
            .series
            .iter()
            .map(|n| n.chars().count())
            .max()
            .unwrap_or(0);
        let legend = 30 + 7 * longest as u32;
        ((bars as u32 * 22 + 160).clamp(420, 1200) + legend, 320)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        s: f64,
    ) -> std::result::Result<(), String> {
        let px = |v: f64| (v * s).round() as u32;
        area.fill(&WHITE).map_err(err)?;
        // The legend beside the plot, never over a bar.
        let longest = self
            .series
            .iter()
            .map(|n| n.chars().count())
            .max()
            .unwrap_or(0);
        let legend_w = (30.0 + 7.0 * longest as f64) * s;
        let (w, _) = area.dim_in_pixel();
        let (area, legend) = area.split_horizontally(w.saturating_sub(legend_w as u32));
        for (k, name) in self.series.iter().enumerate() {
            let y = (60.0 + 20.0 * k as f64) * s;
            let colour = rgb(series_colour(k));
            legend
                .draw(&Rectangle::new(
                    [
                        (0, y as i32 - px(5.0) as i32),
                        (px(10.0) as i32, y as i32 + px(5.0) as i32),
                    ],
                    colour.filled(),
                ))
                .map_err(err)?;
            legend
                .draw(&Text::new(
                    name.clone(),
                    (px(16.0) as i32, y as i32),
                    TextStyle::from((FONT, 11.0 * s).into_font()).pos(
                        plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Left,
                            plotters::style::text_anchor::VPos::Center,
                        ),
                    ),
                ))
                .map_err(err)?;
        }
        let area = &area;
        let n_groups = self.groups.len().max(1);
        let n_series = self.series.len().max(1);
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, (FONT, 15.0 * s))
            .margin(px(10.0))
            .x_label_area_size(px(30.0))
            .y_label_area_size(px(50.0))
            .build_cartesian_2d(0.0..n_groups as f64, 0.0..self.y_max())
            .map_err(err)?;
        let groups = self.groups.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n_groups * 2 + 1)
            .x_label_formatter(&|x| {
                // Labels at the group centres only.
                let i = x.floor() as usize;
                match (x - x.floor() - 0.5).abs() < 1e-6 {
                    true => groups.get(i).cloned().unwrap_or_default(),
                    false => String::new(),
                }
            })
            .y_desc(&self.y_label)
            .label_style((FONT, 12.0 * s))
            .axis_desc_style((FONT, 12.0 * s))
            .draw()
            .map_err(err)?;
        // Each group: n bars in 80% of its width.
        let width = 0.8 / n_series as f64;
        for (g, row) in self.values.iter().enumerate() {
            for (k, value) in row.iter().enumerate() {
                let Some((mean, std)) = *value else { continue };
                let x0 = g as f64 + 0.1 + k as f64 * width;
                let colour = rgb(series_colour(k));
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x0 + width * 0.08, 0.0), (x0 + width * 0.92, mean)],
                        colour.filled(),
                    )))
                    .map_err(err)?;
                let xc = x0 + width / 2.0;
                let (lo, hi) = (mean - std, mean + std);
                let bar = BLACK.stroke_width(px(1.0).max(1));
                let cap = width * 0.2;
                chart
                    .draw_series([
                        PathElement::new(vec![(xc, lo), (xc, hi)], bar),
                        PathElement::new(vec![(xc - cap, lo), (xc + cap, lo)], bar),
                        PathElement::new(vec![(xc - cap, hi), (xc + cap, hi)], bar),
                    ])
                    .map_err(err)?;
            }
        }
        Ok(())
    }
}

/// A heatmap with its labels, the value in each cell, and a colour bar for `range`.
pub struct HeatmapFigure<'a> {
    pub map: &'a Heatmap,
    /// The values at the two ends of the colour scale.
    pub range: (f64, f64),
}

impl HeatmapFigure<'_> {
    pub fn to_bytes(&self, format: Format) -> Result<Vec<u8>> {
        render(self, format)
    }
    pub fn save(&self, path: &Path) -> Result<()> {
        save(self, path)
    }
    /// Room under the cells for the longest upright column name.
    fn bottom(&self) -> f64 {
        let longest = self
            .map
            .cols
            .iter()
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(0);
        (16.0 + 6.5 * longest as f64).max(40.0)
    }
}

const CELL_W: f64 = 70.0;
const CELL_H: f64 = 22.0;
const LEFT: f64 = 90.0;
const TOP: f64 = 40.0;
const BAR_W: f64 = 90.0;

impl Draw for HeatmapFigure<'_> {
    fn size(&self) -> (u32, u32) {
        let cols = self.map.cols.len().max(1) as f64;
        let rows = self.map.rows.len().max(1) as f64;
        (
            (LEFT + cols * CELL_W + BAR_W + 20.0).max(360.0) as u32,
            (TOP + rows * CELL_H + self.bottom()) as u32,
        )
    }

    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        s: f64,
    ) -> std::result::Result<(), String> {
        let p = |v: f64| (v * s).round() as i32;
        area.fill(&WHITE).map_err(err)?;
        let m = self.map;
        let text = |size: f64| TextStyle::from((FONT, size * s).into_font()).color(&BLACK);
        let centred = |size: f64| {
            text(size).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Center,
            ))
        };
        let right = |size: f64| {
            text(size).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Right,
                plotters::style::text_anchor::VPos::Center,
            ))
        };
        area.draw(&Text::new(m.title.clone(), (p(10.0), p(10.0)), text(14.0)))
            .map_err(err)?;
        for (r, row_label) in m.rows.iter().enumerate() {
            let y = TOP + r as f64 * CELL_H;
            area.draw(&Text::new(
                row_label.clone(),
                (p(LEFT - 6.0), p(y + CELL_H / 2.0)),
                right(11.0),
            ))
            .map_err(err)?;
            for c in 0..m.cols.len() {
                let x = LEFT + c as f64 * CELL_W;
                let v = m.get(r, c);
                let fill = colour(scaled(v, self.range));
                area.draw(&Rectangle::new(
                    [(p(x), p(y)), (p(x + CELL_W), p(y + CELL_H))],
                    rgb(fill).filled(),
                ))
                .map_err(err)?;
                // Dark text on the light end of the scale, white on the dark end.
                let luma = 0.299 * fill[0] as f64 + 0.587 * fill[1] as f64 + 0.114 * fill[2] as f64;
                let ink = if luma > 140.0 { BLACK } else { WHITE };
                area.draw(&Text::new(
                    format!("{v:.*}", decimals(self.range)),
                    (p(x + CELL_W / 2.0), p(y + CELL_H / 2.0)),
                    centred(10.0).color(&ink),
                ))
                .map_err(err)?;
            }
        }
        let grid_bottom = TOP + m.rows.len() as f64 * CELL_H;
        for (c, name) in m.cols.iter().enumerate() {
            let x = LEFT + c as f64 * CELL_W + CELL_W / 2.0;
            // Adapter names upright, so long names fit under narrow columns.
            let style = text(11.0).transform(FontTransform::Rotate270).pos(
                plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Right,
                    plotters::style::text_anchor::VPos::Center,
                ),
            );
            area.draw(&Text::new(
                name.clone(),
                (p(x), p(grid_bottom + 6.0)),
                style,
            ))
            .map_err(err)?;
        }
        // The colour bar: vertical, low at the bottom, 5 ticks.
        let bx = LEFT + m.cols.len() as f64 * CELL_W + 24.0;
        let (top, bottom) = (TOP, grid_bottom.max(TOP + 100.0));
        let steps = 64;
        for i in 0..steps {
            let t0 = i as f64 / steps as f64;
            let y1 = bottom - t0 * (bottom - top);
            let y0 = bottom - (i + 1) as f64 / steps as f64 * (bottom - top);
            area.draw(&Rectangle::new(
                [(p(bx), p(y0)), (p(bx + 14.0), p(y1) + 1)],
                rgb(colour(t0)).filled(),
            ))
            .map_err(err)?;
        }
        let (lo, hi) = self.range;
        for i in 0..=4 {
            let t = i as f64 / 4.0;
            let y = bottom - t * (bottom - top);
            area.draw(&PathElement::new(
                vec![(p(bx + 14.0), p(y)), (p(bx + 18.0), p(y))],
                BLACK,
            ))
            .map_err(err)?;
            area.draw(&Text::new(
                format!("{:.3}", lo + t * (hi - lo)),
                (p(bx + 20.0), p(y)),
                text(10.0).pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Left,
                    plotters::style::text_anchor::VPos::Center,
                )),
            ))
            .map_err(err)?;
        }
        // Uniform attention (1/N per adapter), where the scale reaches it: the reference a
        // reader compares each cell with.
        let uniform = 1.0 / m.cols.len().max(1) as f64;
        if (lo..=hi).contains(&uniform) && hi > lo {
            let y = bottom - (uniform - lo) / (hi - lo) * (bottom - top);
            area.draw(&PathElement::new(
                vec![(p(bx - 4.0), p(y)), (p(bx + 14.0), p(y))],
                ShapeStyle::from(&RED).stroke_width(p(1.5).max(1) as u32),
            ))
            .map_err(err)?;
            area.draw(&Text::new(
                format!("1/{}", m.cols.len()),
                (p(bx - 6.0), p(y)),
                right(10.0).color(&RED),
            ))
            .map_err(err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> BarChart {
        BarChart {
            title: "demo study".into(),
            y_label: "accuracy".into(),
            groups: vec!["sentiment".into(), "topic".into()],
            series: vec!["head-only".into(), "fusion".into()],
            values: vec![
                vec![Some((0.58, 0.02)), Some((0.91, 0.01))],
                vec![None, Some((0.75, 0.05))],
            ],
        }
    }

    #[test]
    fn a_bar_chart_svg_names_its_title_axis_targets_and_methods() {
        let svg = String::from_utf8(chart().to_bytes(Format::Svg).unwrap()).unwrap();
        for word in [
            "demo study",
            "accuracy",
            "sentiment",
            "topic",
            "head-only",
            "fusion",
        ] {
            assert!(svg.contains(word), "{word} missing from the SVG");
        }
    }

    #[test]
    fn a_bar_chart_png_is_print_sized_and_coloured_with_the_series_colours() {
        let bytes = chart().to_bytes(Format::Png).unwrap();
        let mut dec = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let (w, h) = (dec.info().width, dec.info().height);
        assert!(w >= 1200 && h >= 900, "{w}×{h} is too small to print");
        let mut buf = vec![0; dec.output_buffer_size().unwrap()];
        dec.next_frame(&mut buf).unwrap();
        for k in 0..2 {
            let c = series_colour(k);
            assert!(
                buf.chunks(3).filter(|p| p == &c).count() > 1000,
                "no bar in series {k}'s colour"
            );
        }
        // Text was drawn (the font is registered): some dark grey anti-aliased pixels.
        assert!(buf
            .chunks(3)
            .any(|p| p[0] == p[1] && p[1] == p[2] && (60..200).contains(&p[0])));
    }

    #[test]
    fn a_scores_chart_tops_at_one_and_a_loss_chart_above_its_highest_bar() {
        assert_eq!(chart().y_max(), 1.0);
        let mut loss = chart();
        loss.values = vec![vec![Some((2.0, 0.5))]];
        assert!((loss.y_max() - 2.75).abs() < 1e-9);
    }

    #[test]
    fn a_heatmap_figure_has_labels_values_and_colour_bar_ticks() {
        let map = Heatmap {
            title: "fusion attention".into(),
            row_name: "layer".into(),
            rows: vec!["layer 0".into(), "layer 1".into()],
            cols: vec!["sst2".into(), "topic_news".into()],
            values: vec![vec![0.25, 0.75], vec![0.5, 0.5]],
        };
        let fig = HeatmapFigure {
            map: &map,
            range: (0.25, 0.75),
        };
        let svg = String::from_utf8(fig.to_bytes(Format::Svg).unwrap()).unwrap();
        for word in [
            "fusion attention",
            "layer 1",
            "sst2",
            "topic_news",
            "0.750",
            "0.500",
            "0.375",
            "1/2",
        ] {
            assert!(svg.contains(word), "{word} missing from the SVG");
        }
        assert!(fig.to_bytes(Format::Png).unwrap().starts_with(b"\x89PNG"));
    }

    #[test]
    fn a_figure_refuses_an_unknown_extension_by_name() {
        let e = chart()
            .save(Path::new("/tmp/x.jpg"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.jpg") && e.contains(".svg"), "{e}");
    }
}
