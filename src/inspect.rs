//! Fusion attention as heatmaps: layers × adapters (mean over a validation set, per gold or
//! predicted class, or for one input) and tokens × adapters for one layer; with the colour
//! scale, CSV and PNG that the app's inspector shows and exports.
use std::path::Path;

use crate::error::{Error, Result};
use crate::predict::Prediction;
use crate::training::run_dir::AttentionRecord;

/// A matrix with labelled rows and columns (values are fusion weights in [0, 1]).
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    pub title: String,
    pub row_name: String,
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    /// values[row][col]
    pub values: Vec<Vec<f64>>,
}

/// Which average of an evaluation's attention to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    Mean,
    Gold(String),
    Predicted(String),
}

impl View {
    pub fn label(&self) -> String {
        match self {
            View::Mean => "all validation examples".into(),
            View::Gold(c) => format!("gold class “{c}”"),
            View::Predicted(c) => format!("predicted class “{c}”"),
        }
    }
}

/// Which values the two ends of the colour scale stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scale {
    /// The data range when the weights are close together (where 0–1 would show one flat
    /// colour), else 0–1.
    #[default]
    Auto,
    /// The smallest to the largest value shown.
    Data,
    /// 0 to 1, comparable across maps.
    ZeroOne,
}

impl Scale {
    pub const ALL: [Scale; 3] = [Scale::Auto, Scale::Data, Scale::ZeroOne];
    pub fn label(self) -> &'static str {
        match self {
            Scale::Auto => "automatic",
            Scale::Data => "data range",
            Scale::ZeroOne => "0–1",
        }
    }
    /// The values at the low and high end of the scale for `map`.
    pub fn range(self, map: &Heatmap) -> (f64, f64) {
        let (lo, hi) = map.data_range();
        match self {
            Scale::ZeroOne => (0.0, 1.0),
            Scale::Data => (lo, hi),
            // Below a thousandth the differences are noise: spreading them over the whole
            // scale would paint equal weights in opposite colours.
            Scale::Auto if hi - lo < 1e-3 => (0.0, 1.0),
            Scale::Auto if hi - lo < 0.3 => (lo, hi),
            Scale::Auto => (0.0, 1.0),
        }
    }
}

/// Decimals that tell values apart on a scale spanning `range`: 2 for 0–1, 3 for weights a
/// few hundredths apart, more for closer ones (at most 5).
pub fn decimals(range: (f64, f64)) -> usize {
    let span = range.1 - range.0;
    // Also catches NaN: no span to read decimals from.
    if span.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return 3;
    }
    ((-span.log10()).ceil() as i64 + 1).clamp(2, 5) as usize
}

/// `v` on a colour scale from `range.0` (0) to `range.1` (1), clamped.
pub fn scaled(v: f64, range: (f64, f64)) -> f64 {
    let (lo, hi) = range;
    match hi > lo {
        true => ((v - lo) / (hi - lo)).clamp(0.0, 1.0),
        false => 0.5,
    }
}

fn layer_rows(layers: &[usize]) -> Vec<String> {
    layers.iter().map(|l| format!("layer {l}")).collect()
}

impl Heatmap {
    /// The layers × adapters map of one evaluation in `view` (None for a class it has not seen).
    pub fn of_record(rec: &AttentionRecord, view: &View) -> Option<Heatmap> {
        let values = match view {
            View::Mean => &rec.mean,
            View::Gold(c) => rec.by_gold.get(c)?,
            View::Predicted(c) => rec.by_predicted.get(c)?,
        };
        Some(Heatmap {
            title: format!("step {}: {}", rec.step, view.label()),
            row_name: "layer".into(),
            rows: layer_rows(&rec.layers),
            cols: rec.adapters.clone(),
            values: values.clone(),
        })
    }

    /// One input's layers × adapters map: its weights averaged over its tokens (the numbers
    /// `predict --json` reports as `fusion_attention`).
    pub fn of_prediction(p: &Prediction) -> Option<Heatmap> {
        Some(Heatmap {
            title: format!("“{}”", p.text),
            row_name: "layer".into(),
            rows: layer_rows(&p.fusion_layers),
            cols: p.fusion_adapters.clone(),
            values: p.fusion_attention.clone()?,
        })
    }

    /// One input's tokens × adapters map at row `layer_row` of its layers.
    pub fn of_tokens(p: &Prediction, layer_row: usize) -> Option<Heatmap> {
        let values = p.fusion_tokens.as_ref()?.get(layer_row)?.clone();
        let layer = p.fusion_layers.get(layer_row)?;
        Some(Heatmap {
            title: format!("layer {layer}, token by token"),
            row_name: "token".into(),
            rows: p.tokens.clone(),
            cols: p.fusion_adapters.clone(),
            values,
        })
    }

    pub fn get(&self, row: usize, col: usize) -> f64 {
        self.values
            .get(row)
            .and_then(|r| r.get(col))
            .copied()
            .unwrap_or(f64::NAN)
    }

    /// Mean of each column (an adapter's average weight).
    pub fn column_means(&self) -> Vec<f64> {
        (0..self.cols.len())
            .map(|c| {
                let n = self.values.len().max(1) as f64;
                self.values.iter().map(|r| r[c]).sum::<f64>() / n
            })
            .collect()
    }

    /// Per row, the largest minus the smallest weight: 0 for uniform attention, near 1 when
    /// one adapter takes it all.
    pub fn row_spreads(&self) -> Vec<f64> {
        self.values
            .iter()
            .map(|r| {
                let hi = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
                if hi >= lo {
                    hi - lo
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// The same map with the columns ordered by mean weight, largest first.
    pub fn sorted_by_mean(&self) -> Heatmap {
        let means = self.column_means();
        let mut order: Vec<usize> = (0..self.cols.len()).collect();
        order.sort_by(|a, b| means[*b].total_cmp(&means[*a]));
        Heatmap {
            cols: order.iter().map(|&c| self.cols[c].clone()).collect(),
            values: self
                .values
                .iter()
                .map(|r| order.iter().map(|&c| r[c]).collect())
                .collect(),
            ..self.clone()
        }
    }

    /// `row,adapter…` header and one line per row; values with 6 decimals.
    pub fn to_csv(&self) -> String {
        let quote = |s: &str| {
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        let mut out = quote(&self.row_name);
        for c in &self.cols {
            out.push(',');
            out.push_str(&quote(c));
        }
        out.push('\n');
        for (r, row) in self.rows.iter().zip(&self.values) {
            out.push_str(&quote(r));
            for v in row {
                out.push_str(&format!(",{v:.6}"));
            }
            out.push('\n');
        }
        out
    }

    /// The smallest and largest value (0–1 when there are none): the colour scale that shows
    /// differences in near-uniform weights, where 0–1 shows one flat colour.
    pub fn data_range(&self) -> (f64, f64) {
        let values = self
            .values
            .iter()
            .flatten()
            .copied()
            .filter(|v| v.is_finite());
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        match lo <= hi {
            true => (lo, hi),
            false => (0.0, 1.0),
        }
    }

    /// Writes the map as a labelled figure (`.png`, `.svg`, colours over `range`) or as
    /// `.csv`, atomically.
    pub fn save(&self, path: &Path, range: (f64, f64)) -> Result<()> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => crate::io::write_atomic(path, self.to_csv().as_bytes()),
            Some("png" | "svg") => crate::figure::HeatmapFigure { map: self, range }.save(path),
            _ => Err(Error::Invalid(format!(
                "{}: save a heatmap as .png, .svg or .csv",
                path.display()
            ))),
        }
    }
}

/// The colour of a weight in [0, 1] on the viridis scale (dark blue → green → yellow), which
/// stays readable in grey and for colour-blind readers; NaN is grey.
pub fn colour(value: f64) -> [u8; 3] {
    const STOPS: [[f64; 3]; 6] = [
        [68.0, 1.0, 84.0],
        [65.0, 68.0, 135.0],
        [42.0, 120.0, 142.0],
        [34.0, 168.0, 132.0],
        [122.0, 209.0, 81.0],
        [253.0, 231.0, 37.0],
    ];
    if value.is_nan() {
        return [128, 128, 128];
    }
    let t = value.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f64;
    let mut out = [0u8; 3];
    for (k, o) in out.iter_mut().enumerate() {
        *o = (STOPS[i][k] + (STOPS[i + 1][k] - STOPS[i][k]) * f).round() as u8;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AttentionRecord {
        AttentionRecord {
            step: 7,
            adapters: vec!["a".into(), "b".into(), "c".into()],
            layers: vec![0, 1],
            mean: vec![vec![0.2, 0.5, 0.3], vec![0.1, 0.1, 0.8]],
            by_gold: [(
                "pos".to_string(),
                vec![vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0]],
            )]
            .into_iter()
            .collect(),
            by_predicted: Default::default(),
            entropy: vec![0.94, 0.58],
            spread: vec![0.3, 0.7],
        }
    }

    #[test]
    fn views_of_a_record_pick_the_matching_average() {
        let r = record();
        let m = Heatmap::of_record(&r, &View::Mean).unwrap();
        assert_eq!(m.rows, ["layer 0", "layer 1"]);
        assert_eq!(m.get(1, 2), 0.8);
        let g = Heatmap::of_record(&r, &View::Gold("pos".into())).unwrap();
        assert_eq!(g.get(0, 0), 1.0);
        assert!(Heatmap::of_record(&r, &View::Predicted("pos".into())).is_none());
    }

    #[test]
    fn sorting_orders_adapters_by_mean_weight_and_keeps_cells_with_their_adapter() {
        let s = Heatmap::of_record(&record(), &View::Mean)
            .unwrap()
            .sorted_by_mean();
        assert_eq!(s.cols, ["c", "b", "a"]);
        assert_eq!(s.values[1], [0.8, 0.1, 0.1]);
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_layer() {
        let csv = Heatmap::of_record(&record(), &View::Mean).unwrap().to_csv();
        assert_eq!(
            csv,
            "layer,a,b,c\nlayer 0,0.200000,0.500000,0.300000\nlayer 1,0.100000,0.100000,0.800000\n"
        );
    }

    #[test]
    fn automatic_scale_spreads_near_uniform_weights_and_keeps_zero_one_for_spread_ones() {
        let near = Heatmap {
            values: vec![vec![0.32, 0.34, 0.34]],
            ..Heatmap::of_record(&record(), &View::Mean).unwrap()
        };
        assert_eq!(Scale::Auto.range(&near), (0.32, 0.34));
        assert_eq!(decimals(Scale::Auto.range(&near)), 3);
        assert_eq!(decimals((0.0, 1.0)), 2);
        assert_eq!(decimals((0.3331, 0.3336)), 5);
        // Differences below a thousandth are not spread into colours.
        let flat = Heatmap {
            values: vec![vec![0.3333, 0.3334, 0.3333]],
            ..near.clone()
        };
        assert_eq!(Scale::Auto.range(&flat), (0.0, 1.0));
        let spread = Heatmap::of_record(&record(), &View::Mean).unwrap();
        assert_eq!(Scale::Auto.range(&spread), (0.0, 1.0));
        assert_eq!(Scale::Data.range(&spread), (0.1, 0.8));
        assert!((scaled(0.33, (0.32, 0.34)) - 0.5).abs() < 1e-9);
        let spreads = spread.row_spreads();
        assert!((spreads[0] - 0.3).abs() < 1e-9 && (spreads[1] - 0.7).abs() < 1e-9);
    }

    #[test]
    fn data_range_spans_the_values_and_defaults_to_zero_one() {
        let h = Heatmap::of_record(&record(), &View::Mean).unwrap();
        assert_eq!(h.data_range(), (0.1, 0.8));
        let empty = Heatmap {
            values: vec![],
            ..h
        };
        assert_eq!(empty.data_range(), (0.0, 1.0));
    }

    #[test]
    fn colour_scale_runs_from_dark_to_bright() {
        let lum = |c: [u8; 3]| 0.3 * c[0] as f64 + 0.59 * c[1] as f64 + 0.11 * c[2] as f64;
        let steps: Vec<f64> = (0..=10).map(|i| lum(colour(i as f64 / 10.0))).collect();
        assert!(steps.windows(2).all(|w| w[0] < w[1]), "{steps:?}");
    }
}
