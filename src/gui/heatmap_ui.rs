//! Drawing a heatmap (layers × adapters or tokens × adapters) with its labels, the value in
//! each cell, the value on hover, how far each row is from uniform, and a colour legend.
use adapter_studio::inspect::{colour, decimals, scaled, Heatmap};
use egui::{Align2, Color32, FontId, Pos2, Rect, Sense, Stroke, Vec2};

fn rgb(v: f64) -> Color32 {
    let [r, g, b] = colour(v);
    Color32::from_rgb(r, g, b)
}

/// Draws `map` with colours over `range`; cells are `cell_h` pixels high (smaller for token
/// maps).
pub fn heatmap_ui(ui: &mut egui::Ui, map: &Heatmap, cell_h: f32, range: (f64, f64)) {
    let places = decimals(range);
    let font = FontId::proportional(11.0);
    let label_w = map
        .rows
        .iter()
        .map(|r| r.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 22) as f32
        * 6.5
        + 8.0;
    let cell_w = 64.0;
    let header_h = 20.0;
    let spreads = map.row_spreads();
    let spread_w = 64.0;
    let size = Vec2::new(
        label_w + cell_w * map.cols.len() as f32 + spread_w,
        header_h + cell_h * map.rows.len() as f32,
    );
    let (rect, response) = ui.allocate_exact_size(size, Sense::hover());
    let painter = ui.painter_at(rect);
    let text_colour = ui.visuals().text_color();
    let origin = rect.min;
    for (c, name) in map.cols.iter().enumerate() {
        let short = super::shortened(name, 10);
        painter.text(
            origin + Vec2::new(label_w + cell_w * (c as f32 + 0.5), header_h / 2.0),
            Align2::CENTER_CENTER,
            short,
            font.clone(),
            text_colour,
        );
    }
    let spread_x = label_w + cell_w * map.cols.len() as f32 + 8.0;
    painter.text(
        origin + Vec2::new(spread_x, header_h / 2.0),
        Align2::LEFT_CENTER,
        "max−min",
        font.clone(),
        text_colour,
    );
    for (r, name) in map.rows.iter().enumerate() {
        let y = header_h + cell_h * r as f32;
        if cell_h >= 14.0 {
            // How far the row is from uniform attention (0 = uniform).
            painter.text(
                origin + Vec2::new(spread_x, y + cell_h / 2.0),
                Align2::LEFT_CENTER,
                format!("{:.*}", places, spreads[r]),
                FontId::monospace(10.0),
                text_colour,
            );
        }
        let short = super::shortened(name, 22);
        painter.text(
            origin + Vec2::new(label_w - 6.0, y + cell_h / 2.0),
            Align2::RIGHT_CENTER,
            short,
            font.clone(),
            text_colour,
        );
        for c in 0..map.cols.len() {
            let v = map.get(r, c);
            let min = origin + Vec2::new(label_w + cell_w * c as f32, y);
            let cell = Rect::from_min_size(min, Vec2::new(cell_w, cell_h));
            let t = scaled(v, range);
            painter.rect_filled(cell.shrink(0.5), 0.0, rgb(t));
            if cell_h >= 14.0 {
                // Dark text on the bright end of the scale, light text on the dark end.
                let ink = if t > 0.6 {
                    Color32::BLACK
                } else {
                    Color32::WHITE
                };
                painter.text(
                    cell.center(),
                    Align2::CENTER_CENTER,
                    format!("{v:.*}", places),
                    FontId::monospace(10.0),
                    ink,
                );
            }
        }
    }
    if let Some(pos) = response.hover_pos() {
        let local = pos - origin - Vec2::new(label_w, header_h);
        if local.x >= 0.0 && local.y >= 0.0 {
            let (c, r) = ((local.x / cell_w) as usize, (local.y / cell_h) as usize);
            if r < map.rows.len() && c < map.cols.len() {
                let cell = Rect::from_min_size(
                    origin + Vec2::new(label_w + cell_w * c as f32, header_h + cell_h * r as f32),
                    Vec2::new(cell_w, cell_h),
                );
                painter.rect_stroke(
                    cell,
                    0.0,
                    Stroke::new(2.0, Color32::WHITE),
                    egui::StrokeKind::Inside,
                );
                response.on_hover_text_at_pointer(format!(
                    "{} · {}: {:.4}",
                    map.rows[r],
                    map.cols[c],
                    map.get(r, c)
                ));
            }
        }
    }
    let bar_w = (cell_w * map.cols.len() as f32).max(200.0);
    legend_ui(ui, label_w, bar_w, range, map.cols.len());
}

/// The colour scale over `range`, with uniform attention (1/`n`) marked where it lies.
fn legend_ui(ui: &mut egui::Ui, indent: f32, width: f32, range: (f64, f64), n: usize) {
    // Rows: the 1/N mark's label, the bar, the end values.
    let (rect, _) = ui.allocate_exact_size(Vec2::new(indent + width + 110.0, 40.0), Sense::hover());
    let painter = ui.painter_at(rect);
    let bar = Rect::from_min_size(rect.min + Vec2::new(indent, 13.0), Vec2::new(width, 10.0));
    let steps = 64;
    for i in 0..steps {
        let x0 = bar.min.x + bar.width() * i as f32 / steps as f32;
        let x1 = bar.min.x + bar.width() * (i + 1) as f32 / steps as f32;
        painter.rect_filled(
            Rect::from_min_max(Pos2::new(x0, bar.min.y), Pos2::new(x1, bar.max.y)),
            0.0,
            rgb((i as f64 + 0.5) / steps as f64),
        );
    }
    let font = FontId::proportional(11.0);
    let c = ui.visuals().text_color();
    let places = decimals(range);
    let (lo, hi) = range;
    painter.text(
        Pos2::new(bar.min.x, bar.max.y + 2.0),
        Align2::LEFT_TOP,
        format!("{lo:.places$}"),
        font.clone(),
        c,
    );
    painter.text(
        Pos2::new(bar.max.x, bar.max.y + 2.0),
        Align2::RIGHT_TOP,
        format!("{hi:.places$}"),
        font.clone(),
        c,
    );
    painter.text(
        Pos2::new(bar.max.x + 8.0, bar.center().y),
        Align2::LEFT_CENTER,
        "fusion weight",
        font.clone(),
        c,
    );
    let uniform = 1.0 / n.max(1) as f64;
    if n > 0 && hi > lo && (lo..=hi).contains(&uniform) {
        let x = bar.min.x + bar.width() * scaled(uniform, range) as f32;
        let red = ui.visuals().error_fg_color;
        painter.line_segment(
            [Pos2::new(x, bar.min.y - 2.0), Pos2::new(x, bar.max.y + 2.0)],
            Stroke::new(2.0, red),
        );
        painter.text(
            Pos2::new(x, bar.min.y - 2.0),
            Align2::CENTER_BOTTOM,
            format!("uniform 1/{n}"),
            font,
            red,
        );
    }
}
