//! Text for bitmap figures, rasterised on one common baseline.
//!
//! plotters 0.3.7's `ab_glyph` text path places each glyph by its pixel bounding box rather than
//! by its pen position and baseline: letters with a left side bearing drift (`m essages`) and
//! small glyphs float (`620·8k`). [`CrispText`] wraps a bitmap backend and draws text itself with
//! the same bundled font and the same advance widths plotters measures with, so layout is
//! unchanged and only the glyph placement is corrected. SVG output needs none of this: the viewer
//! sets SVG text.

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind};

/// A drawing backend that delegates everything to `inner` except text.
pub struct CrispText<B> {
    inner: B,
    font: FontRef<'static>,
}

impl<B: DrawingBackend> CrispText<B> {
    /// `None` when the font bytes do not parse (a broken build, reported by the caller).
    pub fn new(inner: B, font: &'static [u8]) -> Option<Self> {
        FontRef::try_from_slice(font).ok().map(|font| Self { inner, font })
    }

    /// Pen advance of `text` at `size` px, as plotters' `ab_glyph` layout computes it.
    fn advance(&self, text: &str, size: f32) -> f32 {
        let scaled = self.font.as_scaled(PxScale::from(size));
        let mut prev = None;
        let mut x = 0.0;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                x += scaled.kern(p, id);
            }
            x += scaled.h_advance(id);
            prev = Some(id);
        }
        x
    }

    /// The layout box plotters reports for text: its width in whole pixels and `size / 1.24` high.
    fn layout_box(&self, text: &str, size: f64) -> (i32, i32) {
        (self.advance(text, size as f32) as i32, (size / 1.24) as i32)
    }
}

impl<B: DrawingBackend> DrawingBackend for CrispText<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(&mut self, from: BackendCoord, to: BackendCoord, style: &S) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        ul: BackendCoord,
        br: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_rect(ul, br, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<S: BackendTextStyle>(&self, text: &str, style: &S) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        let (w, h) = self.layout_box(text, style.size());
        Ok((w.max(0) as u32, h.max(0) as u32))
    }

    fn draw_text<S: BackendTextStyle>(&mut self, text: &str, style: &S, pos: BackendCoord) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let size = style.size();
        let (width, height) = self.layout_box(text, size);
        // Anchor the same box plotters would, so labels land where its layout expects them.
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let scale = PxScale::from(size as f32);
        let scaled = self.font.as_scaled(scale);
        // Baseline 0.835 em below the box top puts the middle of digits and capitals on the box's
        // middle, which is where tick labels (anchored at their centre) must sit.
        let em = scaled.h_scale_factor() * self.font.units_per_em().unwrap_or(2048.0);
        let baseline = 0.835 * em;

        let mut pixels: Vec<(i32, i32, f32)> = Vec::new();
        let mut pen = 0.0f32;
        let mut prev = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                pen += scaled.kern(p, id);
            }
            if let Some(outline) = self.font.outline_glyph(id.with_scale_and_position(scale, point(pen, baseline))) {
                let b = outline.px_bounds();
                outline.draw(|x, y, coverage| {
                    if coverage > 0.0 {
                        pixels.push((b.min.x as i32 + x as i32, b.min.y as i32 + y as i32, coverage));
                    }
                });
            }
            pen += scaled.h_advance(id);
            prev = Some(id);
        }

        let transform = style.transform();
        let (w, h) = self.get_size();
        for (x, y, coverage) in pixels {
            let (x, y) = transform.transform(x + dx, y + dy);
            let (x, y) = (pos.0 + x, pos.1 + y);
            if x >= 0 && y >= 0 && x < w as i32 && y < h as i32 {
                self.inner.draw_pixel((x, y), BackendColor { alpha: color.alpha * f64::from(coverage.min(1.0)), rgb: color.rgb })?;
            }
        }
        Ok(())
    }
}
